//! Queries, one module per table. Repositories store and fetch; they never decide policy.

pub mod agents;
pub mod api_keys;
pub mod idempotency;
pub mod messages;
pub mod participants;
pub mod session_events;
pub mod session_tokens;
pub mod sessions;
