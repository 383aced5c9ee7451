-- Bulk seed of the list scenario on PostgreSQL, run by benches/load.sh with psql after the
-- server has migrated the schema (search_path set by PGOPTIONS):
--
--   psql -v agent=<measured agent id> -v n=<sessions> -v agents=<agents> -v now=<unix ms> \
--        -v step=<ms between two sessions' created_at> -f pg_seed.sql
--
-- The same rows as `storage_baseline seed` (examples/storage_baseline.rs; keep them in step):
-- session i belongs to agent i % agents (0 is the measured agent, registered over HTTP; the
-- others are inserted here); created_at climbs evenly from 23 h ago to 1 h ago, distinct.
-- Sessions created in the last 11 h are active, last active up to 10 minutes ago (none reaches
-- its warning window during a run); older ones expired after their idle timeout less than
-- 24 h ago (the reaper does not purge them during a run). The timeout columns are copied from
-- a session the measured agent created over HTTP.
\set ON_ERROR_STOP on

BEGIN;

CREATE TEMP TABLE load_agents ON COMMIT DROP AS
SELECT k, CASE WHEN k = 0 THEN :'agent' ELSE gen_random_uuid()::text END AS id
FROM generate_series(0, :agents - 1) AS k;

INSERT INTO agents (id, name, created_at, updated_at)
SELECT id, 'load-' || k, :now - 90000000 + k, :now - 90000000 + k
FROM load_agents
WHERE k > 0;

INSERT INTO sessions (id, agent_id, user_id, status, metadata, timeout_minutes, auto_renew,
                      max_duration_minutes, warning_threshold_minutes, config_sources,
                      created_at, last_activity, expires_at, renewal_count, closed_at, version)
SELECT gen_random_uuid()::text, a.id, gen_random_uuid()::text,
       CASE WHEN s.active THEN 'active' ELSE 'expired' END,
       '{}', t.timeout_minutes, t.auto_renew, t.max_duration_minutes,
       t.warning_threshold_minutes, t.config_sources,
       s.created_at, s.last_activity, x.expires_at, s.i % 40,
       CASE WHEN s.active THEN NULL ELSE x.expires_at END,
       s.i % 40
FROM (SELECT timeout_minutes, auto_renew, max_duration_minutes, warning_threshold_minutes,
             config_sources
      FROM sessions WHERE agent_id = :'agent' LIMIT 1) AS t
CROSS JOIN LATERAL (
    SELECT i, c.created_at, c.active,
           CASE WHEN c.active THEN :now - (i * 7919) % 600000
                ELSE c.created_at + (i * 7919) % 600000 END AS last_activity
    FROM generate_series(0::bigint, :n - 1) AS i
    CROSS JOIN LATERAL (
        SELECT :now - 82800000 + i * :step AS created_at,
               :now - 82800000 + i * :step >= :now - 39600000 AS active
    ) AS c
) AS s
CROSS JOIN LATERAL (
    SELECT least(s.last_activity + t.timeout_minutes * 60000,
                 s.created_at + t.max_duration_minutes * 60000) AS expires_at
) AS x
JOIN load_agents AS a ON a.k = s.i % :agents;

COMMIT;

-- What autovacuum would do within a minute or so; done now so that every run plans alike.
ANALYZE agents;
ANALYZE sessions;
