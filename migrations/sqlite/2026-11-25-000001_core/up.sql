-- Times are unix milliseconds (BIGINT), ids are UUID text: one schema for both backends.
CREATE TABLE agents (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT,
    timeout_minutes BIGINT,
    auto_renew BOOLEAN,
    max_duration_minutes BIGINT,
    warning_threshold_minutes BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX agents_created_at ON agents (created_at, id);

CREATE TABLE sessions (
    id TEXT PRIMARY KEY NOT NULL,
    agent_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    -- active | expired | ended
    status TEXT NOT NULL,
    metadata TEXT NOT NULL,
    timeout_minutes BIGINT NOT NULL,
    auto_renew BOOLEAN NOT NULL,
    max_duration_minutes BIGINT NOT NULL,
    warning_threshold_minutes BIGINT NOT NULL,
    config_sources TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_activity BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    renewal_count BIGINT NOT NULL,
    -- when the session stopped being active; the retention window counts from here
    closed_at BIGINT,
    -- optimistic concurrency: every update bumps it and requires the value it read
    version BIGINT NOT NULL
);
CREATE INDEX sessions_due ON sessions (status, expires_at);
CREATE INDEX sessions_closed_at ON sessions (closed_at);
CREATE INDEX sessions_agent ON sessions (agent_id, created_at);
CREATE INDEX sessions_user ON sessions (user_id, created_at);
CREATE INDEX sessions_created_at ON sessions (created_at);
