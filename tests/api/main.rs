//! Black-box API tests: the real server on port 0, over HTTP, on SQLite and on PostgreSQL.

mod helpers;

mod agent_feed;
mod agents;
mod authorization;
mod chat;
mod conversation_state;
mod cors;
mod deadlines;
mod docs;
mod echo_agent;
mod events;
mod group_commit;
mod groups;
mod health;
mod idempotency;
mod keys;
mod lifecycle;
mod messages;
mod metrics;
mod outage;
mod rate_limits;
mod reaper;
mod routes;
mod sessions;
mod streams;
mod timeouts;
mod upgrade;
mod validation;
