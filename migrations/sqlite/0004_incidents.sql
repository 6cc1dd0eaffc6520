-- siaga call records, schema 4: incidents, the calls linked to them, and their handoffs to
-- field agencies (issue 6). Conventions as in 0001: times are BIGINT ms since the Unix
-- epoch, UTC; ids are TEXT UUIDs (version 4); node_id is the writing node's `node.id`.
--
-- An incident is what the operator classifies a call as (category and subcategory: ids of
-- the configured [[categories]]), where and what it is about. One incident may gather
-- several calls about the same event; a call belongs to at most one incident (the primary
-- key of incident_calls). A call's `disposition` stays its outcome (answered, abandoned …):
-- the category is the incident's. No foreign key to calls, as for call_events: the call's
-- row is written by the event writer, on its own schedule.
--
-- A handoff is the incident handed to one field agency ([[agencies]] id): several per
-- incident (a fire with injuries goes to the fire brigade and the ambulance).

CREATE TABLE incidents (
    id          TEXT PRIMARY KEY NOT NULL, -- the incident's UUID
    node_id     TEXT NOT NULL,             -- the node that created it
    category    TEXT NOT NULL,             -- categories[].id
    subcategory TEXT,                      -- categories[].subcategories[].id, or NULL
    location    TEXT,                      -- the place as the caller describes it
    latitude    REAL CHECK (latitude BETWEEN -90 AND 90),    -- WGS 84 degrees, or NULL
    longitude   REAL CHECK (longitude BETWEEN -180 AND 180), -- WGS 84 degrees, or NULL
    caller_name TEXT,                      -- as the caller gives it; personal data
    notes       TEXT,                      -- the operator's notes
    operator    TEXT,                      -- operators[].id of who created it
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    CHECK ((latitude IS NULL) = (longitude IS NULL))
);

-- The call log's filter and the statistics' grouping by category.
CREATE INDEX incidents_category ON incidents (category);

CREATE TABLE incident_calls (
    call_id     TEXT PRIMARY KEY NOT NULL,                 -- calls.id: at most one incident
    incident_id TEXT NOT NULL REFERENCES incidents (id),   -- incidents.id
    linked_at   BIGINT NOT NULL,                           -- when the call was linked
    operator    TEXT                                       -- who linked it
);

CREATE INDEX incident_calls_incident ON incident_calls (incident_id);

CREATE TABLE handoffs (
    id              TEXT PRIMARY KEY NOT NULL,               -- the handoff's UUID
    incident_id     TEXT NOT NULL REFERENCES incidents (id), -- incidents.id
    node_id         TEXT NOT NULL,                           -- the node that recorded it
    agency          TEXT NOT NULL,                           -- agencies[].id
    method          TEXT NOT NULL
        CHECK (method IN ('call_transfer', 'phone', 'radio', 'app')),
    handed_off_at   BIGINT NOT NULL,  -- when the agency was given the incident
    reference       TEXT,             -- the agency's reference (ticket) number
    acknowledged_at BIGINT,           -- when the agency confirmed it took the incident
    closed_at       BIGINT,           -- when the agency reported it done
    outcome         TEXT,             -- what the agency reported
    operator        TEXT,             -- who handed it off
    updated_at      BIGINT NOT NULL
);

CREATE INDEX handoffs_incident ON handoffs (incident_id, handed_off_at);
CREATE INDEX handoffs_agency ON handoffs (agency);
