//! Use-cases: one function per operation. Each owns its transaction, asks the pure timeout
//! policy for every decision, and returns domain values or a [`ServiceError`]; nothing here
//! knows about HTTP.

pub mod agents;
pub mod error;
pub mod events;
pub mod health;
pub mod idempotency;
pub mod keys;
pub mod messages;
pub mod sessions;
pub mod tokens;

pub use error::{ServiceError, ServiceResult};

use crate::db::{write_transaction, DbConnection};

/// How many times a transaction that lost a race is retried.
const MAX_ATTEMPTS: usize = 8;

/// Runs `f` in a write transaction, retrying the whole transaction when it returns
/// [`ServiceError::Conflict`] (an optimistic version check failed, or a concurrent insert of
/// the same unique key won). Every attempt starts from a fresh read, so retries are safe.
pub(crate) fn transact<T>(
    conn: &mut DbConnection,
    mut f: impl FnMut(&mut DbConnection) -> ServiceResult<T>,
) -> ServiceResult<T> {
    for _ in 0..MAX_ATTEMPTS - 1 {
        match write_transaction(conn, &mut f) {
            Err(ServiceError::Conflict) => continue,
            other => return other,
        }
    }
    write_transaction(conn, f)
}
