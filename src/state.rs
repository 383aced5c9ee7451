//! What every request handler and background task shares.

use std::sync::Arc;

use crate::clock::{Clock, Millis};
use crate::config::Settings;
use crate::db::{DbConnection, DbPool};
use crate::error::ApiError;

#[derive(Clone)]
pub struct AppState {
    pub pool: DbPool,
    pub clock: Arc<dyn Clock>,
    pub settings: Arc<Settings>,
    pub started_at: Millis,
}

impl AppState {
    pub fn now(&self) -> Millis {
        self.clock.now_ms()
    }

    /// Runs blocking diesel work on the blocking pool, never on an async worker.
    pub async fn db<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConnection) -> Result<T, ApiError> + Send + 'static,
    {
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = pool.get()?;
            f(&mut conn)
        })
        .await
        .map_err(|e| ApiError::Internal(format!("blocking task failed: {e}")))?
    }
}
