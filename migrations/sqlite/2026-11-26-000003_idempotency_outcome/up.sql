-- An idempotency record now keeps the operation's outcome (the domain value, as JSON) instead
-- of an HTTP status and body: the API renders it, so a replay answers exactly like the first
-- response. Records in the old shape cannot be read back; they are dropped (a retry across
-- this upgrade runs again instead of replaying).
DELETE FROM idempotency_keys;
ALTER TABLE idempotency_keys DROP COLUMN status_code;
ALTER TABLE idempotency_keys RENAME COLUMN response_body TO outcome;
