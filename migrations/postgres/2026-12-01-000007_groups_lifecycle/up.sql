-- Group sessions, the paused and closed lifecycle, and the conversation state.
-- Existing sessions keep working: they become one-user (`dm`) sessions at stage `greeting`.
ALTER TABLE sessions ADD COLUMN title TEXT;
-- The conversation state as JSON; `stage` repeats its stage so that lists can filter by it.
ALTER TABLE sessions ADD COLUMN state TEXT NOT NULL DEFAULT '{"stage":"greeting"}';
ALTER TABLE sessions ADD COLUMN stage TEXT NOT NULL DEFAULT 'greeting';
-- Why an ended session ended: the close reason (or `closed`), or `agent_deleted`.
ALTER TABLE sessions ADD COLUMN end_reason TEXT;
UPDATE sessions SET end_reason = 'agent_deleted' WHERE status = 'ended';

-- The users of each session, its creator included (the agent is implied by sessions.agent_id).
CREATE TABLE session_participants (
    session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    user_id TEXT NOT NULL,
    joined_at BIGINT NOT NULL,
    PRIMARY KEY (session_id, user_id)
);
-- Lists filtered by user match any participant: this index replaces the two on
-- sessions.user_id, which no query uses any more.
CREATE INDEX session_participants_user ON session_participants (user_id, session_id);
DROP INDEX sessions_user;
DROP INDEX sessions_user_status;
INSERT INTO session_participants (session_id, user_id, joined_at)
    SELECT id, user_id, created_at FROM sessions;
