-- siaga call records, schema 1 (SQLite; the PostgreSQL backend of a later issue uses the
-- same tables and types, in migrations/postgres/).
--
-- Conventions, for every table siaga writes:
--   * Timestamps (columns ending in _at) are BIGINT milliseconds since the Unix epoch, UTC.
--   * Ids are TEXT: lower-case hyphenated UUIDs (version 4), never MAX(id)+1, so several
--     nodes can share one database; node_id is the writing node's `node.id`.
--
-- call_events is the append-only event log and the source of truth. calls is one summary
-- row per call, which the writer updates in the same transaction as it appends an event.
-- call_events has no foreign key to calls: the log accepts an event even when the call's
-- `received` event has not been written yet (the summary is completed when it is).

CREATE TABLE calls (
    id                         TEXT PRIMARY KEY NOT NULL, -- the call's UUID
    node_id                    TEXT NOT NULL,             -- the node that took the call
    trunk_call_id              TEXT NOT NULL,             -- the trunk leg's SIP Call-ID
    caller                     TEXT,                      -- ANI; NULL when withheld
    called                     TEXT NOT NULL,             -- number or URN dialled
    trunk                      TEXT NOT NULL,             -- the trunk's configured name
    received_at                BIGINT NOT NULL,           -- the trunk's INVITE arrived
    queued_at                  BIGINT,                    -- first entered the ACD queue
    first_offered_at           BIGINT,                    -- first operator phone rung
    answered_at                BIGINT,                    -- an operator answered
    ended_at                   BIGINT,                    -- the call ended
    operator                   TEXT,                      -- who answered
    disposition                TEXT,                      -- outcome, set at the end (open set)
    ended_by                   TEXT,                      -- caller | operator | siaga
    caller_to_operator_packets BIGINT,                    -- RTP packets relayed
    operator_to_caller_packets BIGINT                     -- RTP packets relayed
);

CREATE INDEX calls_received_at ON calls (received_at);

CREATE TABLE call_events (
    id       TEXT PRIMARY KEY NOT NULL, -- the event's UUID: writing it twice is a no-op
    call_id  TEXT NOT NULL,             -- calls.id
    node_id  TEXT NOT NULL,             -- the node that wrote it
    seq      BIGINT NOT NULL,           -- 1, 2, 3 … in the order the call's events were written
    at       BIGINT NOT NULL,           -- when it happened
    kind     TEXT NOT NULL,             -- received, queued, offered, no_answer, rejected,
                                        -- leg_failed, answered, ended, media
    operator TEXT,                      -- the operator of an operator-leg event
    detail   TEXT                       -- JSON object of the kind's other fields, or NULL
);

CREATE INDEX call_events_call_at ON call_events (call_id, at);
