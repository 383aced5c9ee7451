//! The background reaper: records expiry of due sessions in bounded batches, purges closed
//! sessions (and their messages) once their retention window has passed, and drops
//! idempotency records after 24 hours.
//!
//! Requests never wait for it: a session past `expiresAt` already answers 410. Safe with
//! several instances on one PostgreSQL: every state change is a conditional UPDATE, so each
//! session is expired exactly once.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::clock::Clock;
use crate::db::repo::{idempotency, session_events, sessions as repo};
use crate::db::{write_transaction, DbConnection, DbError, DbPool};
use crate::domain::EventKind;
use crate::domain::SessionId;
use crate::events::EventBus;
use crate::service::idempotency::TTL_MS;
use crate::timeout::policy;

/// Runs `batch` in its own short write transaction until it reports that it touched nothing;
/// returns how many rows all batches touched.
fn drain(
    conn: &mut DbConnection,
    mut batch: impl FnMut(&mut DbConnection) -> diesel::QueryResult<usize>,
) -> Result<usize, DbError> {
    let mut total = 0;
    loop {
        match write_transaction(conn, &mut batch)? {
            0 => return Ok(total),
            n => total += n,
        }
    }
}

#[derive(Clone)]
pub struct Reaper {
    pool: DbPool,
    clock: Arc<dyn Clock>,
    events: Arc<EventBus>,
    batch_size: i64,
    retention_ms: i64,
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReapReport {
    /// Ids this pass marked expired.
    pub expired: Vec<SessionId>,
    pub purged: usize,
    /// Logs of sessions deleted longer than the retention window ago (a purged session's log
    /// goes with it).
    pub events_purged: usize,
    /// Idempotency records older than 24 h that were dropped.
    pub idempotency_keys_purged: usize,
}

impl Reaper {
    pub fn new(
        pool: DbPool,
        clock: Arc<dyn Clock>,
        events: Arc<EventBus>,
        batch_size: i64,
        retention_hours: u64,
    ) -> Self {
        let retention_ms = i64::try_from(retention_hours)
            .unwrap_or(i64::MAX / 3_600_000)
            .saturating_mul(3_600_000);
        Self {
            pool,
            clock,
            events,
            batch_size,
            retention_ms,
        }
    }

    /// One pass: expire everything due, then purge everything past retention, batch by batch
    /// (each batch is its own short transaction). Blocking; call from a blocking thread.
    pub fn run_once(&self) -> Result<ReapReport, DbError> {
        let now = self.clock.now_ms();
        let mut conn = self.pool.get()?;
        let mut report = ReapReport::default();
        let mut notices = Vec::new();
        drain(&mut conn, |c| {
            let expired = repo::expire_due(c, now, self.batch_size)?;
            for s in &expired {
                let kind = EventKind::SessionExpired {
                    reason: policy::expiry_reason(
                        s.created_at,
                        s.max_duration_minutes,
                        s.expires_at,
                    ),
                    expired_at: s.expires_at,
                };
                session_events::append(c, s.id, s.agent_id, kind, now)?;
            }
            report.expired.extend(expired.iter().map(|s| s.id));
            notices.extend(expired.iter().map(|s| (s.id, s.agent_id)));
            Ok(expired.len())
        })?;
        // Committed: wake whoever waits on these sessions' logs and their agents' feeds.
        for (session, agent) in notices {
            self.events.publish(session, agent);
        }
        let closed_before = now.saturating_sub(self.retention_ms);
        report.purged = drain(&mut conn, |c| {
            repo::purge_closed(c, closed_before, self.batch_size)
        })?;
        report.events_purged = drain(&mut conn, |c| {
            session_events::purge_deleted(c, closed_before, self.batch_size)
        })?;
        report.idempotency_keys_purged = drain(&mut conn, |c| {
            idempotency::purge(c, now.saturating_sub(TTL_MS), self.batch_size)
        })?;
        Ok(report)
    }

    /// Runs a pass every `interval` until `shutdown` turns true.
    pub async fn run(self, interval: Duration, mut shutdown: watch::Receiver<bool>) {
        // The first pass comes one interval after start, not at once.
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = shutdown.changed() => break,
            }
            if *shutdown.borrow() {
                break;
            }
            let this = self.clone();
            match tokio::task::spawn_blocking(move || this.run_once()).await {
                Ok(Ok(r)) if !r.expired.is_empty() || r.purged > 0 => {
                    tracing::info!(expired = r.expired.len(), purged = r.purged, "reaper pass");
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "reaper pass failed"),
                Err(e) => tracing::error!(error = %e, "reaper task panicked"),
            }
        }
        tracing::info!("reaper stopped");
    }
}
