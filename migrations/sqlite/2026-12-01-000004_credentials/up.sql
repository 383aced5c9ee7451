-- API keys: only a SHA-256 digest of the secret is stored; the secret is shown once.
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT,
    secret_hash TEXT NOT NULL UNIQUE,
    -- space-separated scopes, e.g. "sessions:read sessions:write"
    scopes TEXT NOT NULL,
    -- a key bound to one agent sees only that agent's sessions and writes as the agent
    agent_id TEXT,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);

-- Per-session tokens: the digest only. A token dies with its session (cascade on delete and
-- purge); re-issuing one deletes the earlier.
CREATE TABLE session_tokens (
    token_hash TEXT PRIMARY KEY NOT NULL,
    session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    -- the participant the token writes as, and the session's agent (for rate limits)
    user_id TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX session_tokens_session ON session_tokens (session_id, user_id);
