-- pgbench baseline for GET /api/messaging/sessions/{id} on PostgreSQL: the one statement the
-- service runs (src/db/repo/sessions.rs `find`), every column of the session by primary key.
-- benches/load.sh makes one copy per seeded session (__SESSION_ID__ filled in) and runs them
-- with `pgbench -M prepared`, search_path set to the seeded schema.
SELECT id, agent_id, user_id, status, metadata, timeout_minutes, auto_renew,
       max_duration_minutes, warning_threshold_minutes, config_sources, created_at,
       last_activity, expires_at, renewal_count, closed_at, version
FROM sessions
WHERE id = '__SESSION_ID__';
