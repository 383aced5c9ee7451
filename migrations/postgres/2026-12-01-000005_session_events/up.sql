-- The durable event log of each session, written in the same transaction as the change it
-- reports. `seq` counts up from 1 per session and is assigned under the session's row lock,
-- so it is gap-free in commit order: a reader holding cursor C sees every later event.
-- No foreign key: `session.ended` must outlive a deleted session. The reaper drops a log with
-- its session at the purge, and the log of a deleted session once its `session.ended` is older
-- than the retention window (found through session_events_ended).
-- `agent_seq` orders the agent's feed (every event of every session of one agent): it counts
-- up from 1 per agent, taken from agent_feeds under that row's lock, so it too is gap-free in
-- commit order.
CREATE TABLE session_events (
    session_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    agent_id TEXT NOT NULL,
    agent_seq BIGINT NOT NULL,
    event_type TEXT NOT NULL,
    -- the event's data as JSON (the domain's shape; the API renders it)
    payload TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (session_id, seq)
);
CREATE INDEX session_events_ended ON session_events (event_type, created_at);
-- Events older than the retention window are purged from long-lived sessions too.
CREATE INDEX session_events_created_at ON session_events (created_at);
CREATE UNIQUE INDEX session_events_agent_feed ON session_events (agent_id, agent_seq);

-- The last `agent_seq` handed out per agent, and the highest one purged (with its session):
-- a reader whose cursor is below it has missed events it can no longer get. No foreign key:
-- an agent's feed outlives the agent (its sessions' `session.ended` come after its deletion).
CREATE TABLE agent_feeds (
    agent_id TEXT PRIMARY KEY NOT NULL,
    last_seq BIGINT NOT NULL,
    purged_through BIGINT NOT NULL DEFAULT 0
);

-- The `expires_at` each session was last warned for (`session.expiring`): a session is warned
-- once per entry into its warning window, and a renewal (a new `expires_at`) can bring another.
-- Written under the session's row lock, so several instances warn each session once.
CREATE TABLE expiry_warnings (
    session_id TEXT PRIMARY KEY NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    expires_at BIGINT NOT NULL
);
