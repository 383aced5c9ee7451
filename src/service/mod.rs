//! Use-cases: one function per operation. Each owns its transaction, asks the pure timeout
//! policy for every decision, and returns domain values or a [`ServiceError`]; nothing here
//! knows about HTTP.

pub mod agents;
pub mod error;
pub mod events;
pub mod health;
pub mod idempotency;
pub mod keys;
pub mod lifecycle;
pub mod messages;
pub mod participants;
pub mod sessions;
pub mod tokens;

pub use error::{ServiceError, ServiceResult};
