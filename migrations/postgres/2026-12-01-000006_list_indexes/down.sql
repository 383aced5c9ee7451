DROP INDEX sessions_agent_status;
DROP INDEX sessions_user_status;
DROP INDEX sessions_agent;
DROP INDEX sessions_user;
DROP INDEX sessions_created_at;
CREATE INDEX sessions_agent ON sessions (agent_id, created_at);
CREATE INDEX sessions_user ON sessions (user_id, created_at);
CREATE INDEX sessions_created_at ON sessions (created_at);
