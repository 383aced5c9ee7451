-- Lists filter by agent or user (and usually status) and read newest first. These indexes
-- hold the filter and the whole order (id breaks ties of created_at), so a page reads its
-- rows straight off the index and stops after `limit`; the counts read the index only.
-- `status` changes once in a session's life (expiry, end), so they cost nothing per message.
DROP INDEX sessions_agent;
DROP INDEX sessions_user;
DROP INDEX sessions_created_at;
CREATE INDEX sessions_agent ON sessions (agent_id, created_at, id);
CREATE INDEX sessions_user ON sessions (user_id, created_at, id);
CREATE INDEX sessions_created_at ON sessions (created_at, id);
CREATE INDEX sessions_agent_status ON sessions (agent_id, status, created_at, id);
CREATE INDEX sessions_user_status ON sessions (user_id, status, created_at, id);
