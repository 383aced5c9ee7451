DELETE FROM idempotency_keys;
ALTER TABLE idempotency_keys RENAME COLUMN outcome TO response_body;
ALTER TABLE idempotency_keys ADD COLUMN status_code INTEGER NOT NULL DEFAULT 201;
