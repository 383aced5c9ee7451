-- The durable event log of each session, written in the same transaction as the change it
-- reports. `seq` counts up from 1 per session and is assigned under the session's row lock,
-- so it is gap-free in commit order: a reader holding cursor C sees every later event.
-- No foreign key: `session.ended` must outlive a deleted session; the reaper purges events of
-- sessions that are gone once the retention window has passed.
CREATE TABLE session_events (
    session_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    agent_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    -- the event's data as JSON (the domain's shape; the API renders it)
    payload TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (session_id, seq)
);
CREATE INDEX session_events_created_at ON session_events (created_at);
