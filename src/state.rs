//! What every request handler and background task shares.

use std::sync::Arc;
use std::time::Duration;

use crate::auth::Authenticator;
use crate::clock::{Clock, Millis};
use crate::config::Settings;
use crate::db::{DbConnection, DbPool};
use crate::events::{EventBus, StreamSlots};
use crate::rate_limit::RateLimits;
use crate::service::ServiceResult;

/// How long a health probe waits for a database connection.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Clone)]
pub struct AppState {
    pub pool: DbPool,
    pub clock: Arc<dyn Clock>,
    pub settings: Arc<Settings>,
    pub started_at: Millis,
    pub auth: Arc<Authenticator>,
    pub limits: Arc<RateLimits>,
    pub events: Arc<EventBus>,
    pub streams: Arc<StreamSlots>,
    /// Pokes the reaper's scheduler: a session got a deadline that may come first.
    pub deadlines: Arc<crate::reaper::Deadlines>,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// True once the service is stopping.
    pub stopping: tokio::sync::watch::Receiver<bool>,
}

impl AppState {
    pub fn now(&self) -> Millis {
        self.clock.now_ms()
    }

    /// Runs blocking diesel work on the blocking pool, never on an async worker.
    pub async fn db<T, F>(&self, f: F) -> ServiceResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConnection) -> ServiceResult<T> + Send + 'static,
    {
        self.pool.run(None, f).await
    }

    /// Like [`AppState::db`], but gives up on a connection after `PROBE_TIMEOUT`: health
    /// probes must answer "unhealthy" before an orchestrator's own timeout, not after the
    /// pool's.
    pub async fn db_probe<T, F>(&self, f: F) -> ServiceResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConnection) -> ServiceResult<T> + Send + 'static,
    {
        self.pool.run(Some(PROBE_TIMEOUT), f).await
    }

    /// Runs `f` in a write transaction, retried when it loses a race (see [`DbPool::write`]).
    pub async fn write<T, F>(&self, f: F) -> ServiceResult<T>
    where
        T: Send + 'static,
        F: FnMut(&mut DbConnection) -> ServiceResult<T> + Send + 'static,
    {
        self.pool.write(f).await
    }

    /// A few indexed reads (see [`DbPool::point_read`]).
    pub async fn point_read<T, F>(&self, f: F) -> ServiceResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConnection) -> ServiceResult<T> + Send + 'static,
    {
        self.pool.point_read(f).await
    }
}
