-- siaga call records, schema 3: agent (operator) state transitions, and an index for the
-- callback worklist (issue 5), as migrations/sqlite/0003. Conventions as in 0001: times
-- are BIGINT ms since the Unix epoch, UTC; ids are UUIDs; node_id is the writing node's
-- `node.id`.
--
-- agent_events is append-only, like call_events: one row per transition of one operator's
-- ACD state (logged_out, available, ringing, on_call, wrap_up, not_ready). The event's
-- UUID is its primary key, so writing an event twice is a no-op. Transitions of one
-- operator often share a millisecond (on_call -> wrap_up -> available with no wrap-up
-- time), so `seq` numbers an operator's events of the same `at` in the order they were
-- written, and (at, seq) is the operator's order.
--
-- `operator` is collated "C" (bytewise), as SQLite compares text: the supervisor's view
-- orders a millisecond's transitions by operator, and must list them in the same order on
-- both backends whatever the database's default collation.

CREATE TABLE agent_events (
    id         UUID PRIMARY KEY NOT NULL, -- the event's UUID: writing it twice is a no-op
    node_id    TEXT NOT NULL,             -- the node that wrote it
    operator   TEXT COLLATE "C" NOT NULL, -- operators[].id
    at         BIGINT NOT NULL,           -- when the state changed
    seq        BIGINT NOT NULL,           -- 1, 2, 3 … among the operator's events of this `at`
    from_state TEXT NOT NULL,             -- logged_out, available, ringing, on_call, wrap_up,
                                          -- not_ready (an open set)
    to_state   TEXT NOT NULL,             -- the same words
    reason     TEXT,                      -- not-ready reason or cause (no_answer, registered …)
    call_id    UUID                       -- calls.id of the call concerned, or NULL
);

-- One operator's history ("who went not_ready with reason no_answer"), and the next seq.
CREATE INDEX agent_events_operator_at ON agent_events (operator, at, seq);

-- Every operator's transitions in a time range (the supervisor's view).
CREATE INDEX agent_events_at ON agent_events (at);

-- The callback worklist asks, per abandoned call, whether the same caller got through
-- later: calls by caller, in time.
CREATE INDEX calls_caller_received_at ON calls (caller, received_at);
