-- Back to one user per session, active or over: the previous release knows no paused
-- sessions, and its tokens all speak for the session's user.
UPDATE sessions SET status = 'active' WHERE status = 'paused';
DELETE FROM session_tokens
    WHERE user_id <> (SELECT s.user_id FROM sessions s WHERE s.id = session_tokens.session_id);
DROP TABLE session_participants;
CREATE INDEX sessions_user ON sessions (user_id, created_at, id);
CREATE INDEX sessions_user_status ON sessions (user_id, status, created_at, id, expires_at);
ALTER TABLE sessions DROP COLUMN end_reason;
ALTER TABLE sessions DROP COLUMN stage;
ALTER TABLE sessions DROP COLUMN state;
ALTER TABLE sessions DROP COLUMN title;
