-- siaga call records, schema 1 (PostgreSQL; the same tables as migrations/sqlite/, in
-- PostgreSQL's types where they are better).
--
-- Conventions, for every table siaga writes:
--   * Timestamps (columns ending in _at) are BIGINT milliseconds since the Unix epoch, UTC,
--     as on SQLite: one representation, one set of queries, no time zone to get wrong.
--     Read them as times with to_timestamp(received_at / 1000.0).
--   * Ids are UUIDs (version 4) in PostgreSQL's UUID type: 16 bytes instead of 36
--     characters of text, checked on the way in, and ordered bytewise whatever the
--     database's collation (SQLite has no UUID type and stores the lower-case hyphenated
--     text, which orders the same way). Never MAX(id)+1: several nodes share one database;
--     node_id is the writing node's `node.id`.
--
-- call_events is the append-only event log and the source of truth. calls is one summary
-- row per call, which the writer updates in the same transaction as it appends an event.
-- call_events has no foreign key to calls: the log accepts an event even when the call's
-- `received` event has not been written yet (the summary is completed when it is).

CREATE TABLE calls (
    id                         UUID PRIMARY KEY NOT NULL, -- the call's UUID
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
    id       UUID PRIMARY KEY NOT NULL, -- the event's UUID: writing it twice is a no-op
    call_id  UUID NOT NULL,             -- calls.id
    node_id  TEXT NOT NULL,             -- the node that wrote it
    seq      BIGINT NOT NULL,           -- 1, 2, 3 … in the order the call's events were written
    at       BIGINT NOT NULL,           -- when it happened
    kind     TEXT NOT NULL,             -- received, queued, offered, no_answer, rejected,
                                        -- leg_failed, answered, ended, media
    operator TEXT,                      -- the operator of an operator-leg event
    detail   TEXT                       -- JSON object of the kind's other fields, or NULL:
                                        -- the same text as on SQLite (query it as detail::jsonb)
);

CREATE INDEX call_events_call_at ON call_events (call_id, at);
