DROP TABLE idempotency_outcomes;
