-- pgbench baseline for POST /api/messaging/sessions/{id}/messages on PostgreSQL: the
-- statements the service runs for one message, in one transaction (src/service/messages.rs
-- `send`, src/service/sessions.rs `mutate`, src/service/events.rs `record`, src/db/repo/*.rs;
-- as seen with log_statement=all): lock the session row, read it, write it back renewed with
-- a version check, read the last message position, insert the message, then for each of the
-- two events (message.created, session.renewed) read the session's last event number, take
-- the next number of the agent's feed (agent_feeds row lock), insert the event and NOTIFY.
-- benches/load.sh makes one copy per seeded session (__SESSION_ID__, __AGENT_ID__ filled in)
-- and runs them with `pgbench -M prepared`, search_path set to the seeded schema. The service
-- computes `now` itself; here it is clock_timestamp() in milliseconds.
BEGIN;
UPDATE sessions SET version = version WHERE id = '__SESSION_ID__';
SELECT id, agent_id, user_id, status, metadata, timeout_minutes, auto_renew,
       max_duration_minutes, warning_threshold_minutes, config_sources, created_at,
       last_activity, expires_at, renewal_count, closed_at, version
FROM sessions WHERE id = '__SESSION_ID__' \gset s_
UPDATE sessions
SET timeout_minutes = :s_timeout_minutes, auto_renew = :s_auto_renew,
    max_duration_minutes = :s_max_duration_minutes,
    warning_threshold_minutes = :s_warning_threshold_minutes,
    config_sources = :s_config_sources,
    last_activity = (extract(epoch FROM clock_timestamp()) * 1000)::bigint,
    expires_at = (extract(epoch FROM clock_timestamp()) * 1000)::bigint + 1800000,
    renewal_count = CAST(:s_renewal_count AS bigint) + 1, version = CAST(:s_version AS bigint) + 1
WHERE id = '__SESSION_ID__' AND version = :s_version;
SELECT seq, created_at FROM messages WHERE session_id = '__SESSION_ID__'
ORDER BY seq DESC LIMIT 1 \gset m_
INSERT INTO messages (id, session_id, seq, author_id, is_agent, content, metadata,
                      attachments, created_at)
VALUES (gen_random_uuid()::text, '__SESSION_ID__', CAST(:m_seq AS bigint) + 1, :s_user_id, false, 'hello',
        '{}', '[]',
        greatest((extract(epoch FROM clock_timestamp()) * 1000)::bigint, CAST(:m_created_at AS bigint) + 1));
SELECT max(seq) AS seq FROM session_events WHERE session_id = '__SESSION_ID__' \gset e_
UPDATE agent_feeds SET last_seq = last_seq + 1 WHERE agent_id = '__AGENT_ID__'
RETURNING last_seq \gset f_
INSERT INTO session_events (session_id, seq, agent_id, agent_seq, event_type, payload,
                            created_at)
VALUES ('__SESSION_ID__', CAST(:e_seq AS bigint) + 1, '__AGENT_ID__', :f_last_seq, 'message.created',
        '{"type":"message.created","data":{"message":{"id":"4bf22a0e-116f-41cb-befa-b1a539802493","session_id":"__SESSION_ID__","seq":1,"author":{"user":"9f70950d-a24b-432c-aad4-7bbd673f40d9"},"content":"hello","metadata":{},"attachments":[],"created_at":1796139761052}}}',
        (extract(epoch FROM clock_timestamp()) * 1000)::bigint);
NOTIFY agent_sessions_events, '__SESSION_ID__ __AGENT_ID__';
SELECT max(seq) AS seq FROM session_events WHERE session_id = '__SESSION_ID__' \gset e_
UPDATE agent_feeds SET last_seq = last_seq + 1 WHERE agent_id = '__AGENT_ID__'
RETURNING last_seq \gset f_
INSERT INTO session_events (session_id, seq, agent_id, agent_seq, event_type, payload,
                            created_at)
VALUES ('__SESSION_ID__', CAST(:e_seq AS bigint) + 1, '__AGENT_ID__', :f_last_seq, 'session.renewed',
        '{"type":"session.renewed","data":{"expires_at":1796141561052,"renewal_count":1,"last_activity":1796139761052}}',
        (extract(epoch FROM clock_timestamp()) * 1000)::bigint);
NOTIFY agent_sessions_events, '__SESSION_ID__ __AGENT_ID__';
COMMIT;
