-- The durable event log of each session, written in the same transaction as the change it
-- reports. `seq` counts up from 1 per session and is assigned under the session's row lock,
-- so it is gap-free in commit order: a reader holding cursor C sees every later event.
-- No foreign key: `session.ended` must outlive a deleted session. The reaper drops a log with
-- its session at the purge, and the log of a deleted session once its `session.ended` is older
-- than the retention window (found through session_events_ended).
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
CREATE INDEX session_events_ended ON session_events (event_type, created_at);
