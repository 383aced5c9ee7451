-- The outcome of a POST sent with an Idempotency-Key (the session created, or the message with
-- the session as it left it, as JSON), written in the same transaction as the change and
-- replayed for 24 hours. It replaces idempotency_keys, which held an HTTP status and body:
-- that table is left in place so that instances of the previous version keep working during a
-- rolling upgrade, and is dropped by a later migration once it has aged out (24 h). A retry
-- that spans the upgrade runs again instead of replaying.
CREATE TABLE idempotency_outcomes (
    scope TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    outcome TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (scope, idempotency_key)
);
CREATE INDEX idempotency_outcomes_created_at ON idempotency_outcomes (created_at);
