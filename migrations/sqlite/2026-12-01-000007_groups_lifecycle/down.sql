DROP TABLE session_participants;
CREATE INDEX sessions_user ON sessions (user_id, created_at, id);
CREATE INDEX sessions_user_status ON sessions (user_id, status, created_at, id, expires_at);
ALTER TABLE sessions DROP COLUMN end_reason;
ALTER TABLE sessions DROP COLUMN stage;
ALTER TABLE sessions DROP COLUMN state;
ALTER TABLE sessions DROP COLUMN title;
