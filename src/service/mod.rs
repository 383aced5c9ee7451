//! Use-cases: one function per operation. Each owns its transaction and asks the pure timeout
//! policy for every decision.

pub mod agents;
pub mod health;
pub mod idempotency;
pub mod messages;
pub mod sessions;

use crate::db::{write_transaction, DbConnection};
use crate::error::ApiError;

/// How many times a transaction that lost a race is retried.
const MAX_ATTEMPTS: usize = 8;

/// Runs `f` in a write transaction, retrying the whole transaction when it returns
/// [`ApiError::Conflict`] (an optimistic version check failed, or a concurrent insert of the
/// same unique key won). Every attempt starts from a fresh read, so retries are safe.
pub(crate) fn transact<T>(
    conn: &mut DbConnection,
    mut f: impl FnMut(&mut DbConnection) -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    for _ in 0..MAX_ATTEMPTS - 1 {
        match write_transaction(conn, &mut f) {
            Err(ApiError::Conflict) => continue,
            other => return other,
        }
    }
    write_transaction(conn, f)
}
