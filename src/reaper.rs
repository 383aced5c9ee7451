//! The background reaper: records expiry of due sessions in bounded batches, purges closed
//! sessions (and their messages) once their retention window has passed, and drops
//! idempotency records after 24 hours.
//!
//! Requests never wait for it: a session past `expiresAt` already answers 410. Safe with
//! several instances on one PostgreSQL: every state change is a conditional UPDATE, so each
//! session is expired exactly once.

use std::sync::Arc;
use std::time::Duration;

use std::sync::atomic::{AtomicI64, Ordering};

use tokio::sync::{watch, Notify};

use crate::clock::Clock;
use crate::db::repo::{idempotency, session_events, sessions as repo};
use crate::db::{write_transaction, DbConnection, DbError, DbPool};
use crate::domain::EventKind;
use crate::domain::SessionId;
use crate::events::EventBus;
use crate::metrics::Metrics;
use crate::service::idempotency::TTL_MS;
use crate::timeout::policy;

/// More expired or warned sessions than this in one pass wake every reader once.
const WAKE_ALL_AFTER: usize = 1000;

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

/// What the scheduler plans for, and how the service tells it of a deadline that may come
/// first (a new session, a shortened timeout) without waking it for every later one.
pub struct Deadlines {
    /// The instant the scheduler sleeps towards (`i64::MAX`: none).
    planned: AtomicI64,
    wake: Notify,
}

impl Default for Deadlines {
    fn default() -> Self {
        Self {
            planned: AtomicI64::new(i64::MAX),
            wake: Notify::new(),
        }
    }
}

impl Deadlines {
    /// A session now has a deadline at `at` (its warning window opening, or its expiry):
    /// wakes the scheduler if that comes before what it planned for.
    pub fn consider(&self, at: crate::clock::Millis) {
        if at < self.planned.load(Ordering::SeqCst) {
            self.wake.notify_one();
        }
    }

    fn plan(&self, at: Option<crate::clock::Millis>) {
        self.planned.store(at.unwrap_or(i64::MAX), Ordering::SeqCst);
    }
}

/// How many of the soonest-expiring sessions the scheduler looks at for the next deadline.
const LOOKAHEAD: i64 = 100;
/// The shortest pause between two passes.
const MIN_PAUSE: Duration = Duration::from_millis(100);

/// Warns one session that entered its warning window, under its row lock, unless it was warned
/// for its current `expires_at` already (by another instance, say); the agent if it did.
fn warn(
    conn: &mut DbConnection,
    id: SessionId,
    now: i64,
) -> diesel::QueryResult<Option<crate::domain::AgentId>> {
    repo::lock(conn, id)?;
    let Some(session) = repo::find(conn, id)? else {
        return Ok(None);
    };
    let due = session.status.is_open()
        && session.is_near_expiration(now)
        && repo::warned_for(conn, id)? != Some(session.expires_at);
    if !due {
        return Ok(None);
    }
    repo::set_warned_for(conn, id, session.expires_at)?;
    let kind = EventKind::SessionExpiring {
        expires_at: session.expires_at,
    };
    session_events::append(conn, id, session.agent_id, kind, now)?;
    Ok(Some(session.agent_id))
}

#[derive(Clone)]
pub struct Reaper {
    pool: DbPool,
    clock: Arc<dyn Clock>,
    events: Arc<EventBus>,
    /// Told when a session gets a deadline that may come before the planned one.
    deadlines: Arc<Deadlines>,
    batch_size: i64,
    retention_ms: i64,
    metrics: Arc<Metrics>,
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReapReport {
    /// Ids this pass marked expired.
    pub expired: Vec<SessionId>,
    /// Ids this pass warned (`session.expiring`).
    pub warned: Vec<SessionId>,
    pub purged: usize,
    /// Events purged: logs of sessions deleted longer than the retention window ago (a purged
    /// session's log goes with it), and events older than the window of long-lived sessions.
    pub events_purged: usize,
    /// Idempotency records older than 24 h that were dropped.
    pub idempotency_keys_purged: usize,
}

impl Reaper {
    pub fn new(
        pool: DbPool,
        clock: Arc<dyn Clock>,
        events: Arc<EventBus>,
        deadlines: Arc<Deadlines>,
        batch_size: i64,
        retention_hours: u64,
        metrics: Arc<Metrics>,
    ) -> Self {
        let retention_ms = i64::try_from(retention_hours)
            .unwrap_or(i64::MAX / 3_600_000)
            .saturating_mul(3_600_000);
        Self {
            pool,
            clock,
            events,
            deadlines,
            batch_size,
            retention_ms,
            metrics,
        }
    }

    /// One pass: expire everything due, then purge everything past retention, batch by batch
    /// (each batch is its own short transaction). Blocking; call from a blocking thread.
    pub fn run_once(&self) -> Result<ReapReport, DbError> {
        self.pass(true)
    }

    /// Warnings and expiries due now; with `purge`, the retention purges as well (they run at
    /// the sweep interval only: a deadline pass has no reason to scan for them).
    fn pass(&self, purge: bool) -> Result<ReapReport, DbError> {
        let started = std::time::Instant::now();
        let report = self.pass_inner(purge)?;
        let m = &self.metrics;
        m.reaper_pass_seconds
            .observe(started.elapsed().as_secs_f64());
        m.reaper_expired_per_pass
            .observe(report.expired.len() as f64);
        m.expiries.inc_by(report.expired.len() as u64);
        Ok(report)
    }

    fn pass_inner(&self, purge: bool) -> Result<ReapReport, DbError> {
        let now = self.clock.now_ms();
        let mut conn = self.pool.get()?;
        let mut report = ReapReport::default();
        let mut notices = Vec::new();
        // One short transaction per warning: it locks the session, then its agent's feed row,
        // the order every writer takes them in (a batch holding one agent's feed row while
        // waiting for the next session could deadlock with a sender of that session).
        loop {
            let due = repo::in_warning_window(&mut conn, now, self.batch_size)?;
            let mut warned = 0;
            for id in due {
                if let Some(agent) = write_transaction(&mut conn, |c| warn(c, id, now))? {
                    report.warned.push(id);
                    notices.push((id, agent));
                    warned += 1;
                }
            }
            if warned == 0 {
                break;
            }
        }
        drain(&mut conn, |c| {
            let expired = repo::expire_due(c, now, self.batch_size)?;
            let events = expired.iter().map(|s| {
                let kind = EventKind::SessionExpired {
                    reason: policy::expiry_reason(
                        s.created_at,
                        s.max_duration_minutes,
                        s.expires_at,
                    ),
                    expired_at: s.expires_at,
                };
                (s.id, s.agent_id, kind)
            });
            session_events::append_batch(c, events.collect(), now)?;
            report.expired.extend(expired.iter().map(|s| s.id));
            notices.extend(expired.iter().map(|s| (s.id, s.agent_id)));
            Ok(expired.len())
        })?;
        // Committed: wake whoever waits on these sessions' logs and their agents' feeds (all
        // readers at once after a large pass: cheaper than a notice per session).
        if notices.len() > WAKE_ALL_AFTER {
            self.events.wake_all();
        } else {
            for (session, agent) in notices {
                self.events.publish(session, agent);
            }
        }
        if !purge {
            return Ok(report);
        }
        let closed_before = now.saturating_sub(self.retention_ms);
        report.purged = drain(&mut conn, |c| {
            repo::purge_closed(c, closed_before, self.batch_size)
        })?;
        report.events_purged = drain(&mut conn, |c| {
            session_events::purge_deleted(c, closed_before, self.batch_size)
        })?;
        // Long-lived sessions keep only the events of the retention window.
        report.events_purged += drain(&mut conn, |c| {
            session_events::purge_old(c, closed_before, self.batch_size)
        })?;
        report.idempotency_keys_purged = drain(&mut conn, |c| {
            idempotency::purge(c, now.saturating_sub(TTL_MS), self.batch_size)
        })?;
        Ok(report)
    }

    /// When the next session needs a pass: the earliest expiry or warning among the sessions
    /// that expire first.
    fn next_deadline(&self) -> Result<Option<i64>, DbError> {
        let mut conn = self.pool.get()?;
        Ok(repo::soonest(&mut conn, LOOKAHEAD)?
            .into_iter()
            .map(|(expires_at, warning, warned_for)| {
                policy::next_deadline(expires_at, warning, warned_for)
            })
            .min())
    }

    /// How long to wait before the next pass: until the next deadline when time can be
    /// followed (the wall clock, or a manual clock that announces its moves), else the sweep
    /// interval. Never longer than the interval, which also catches what the lookahead missed.
    async fn wait(&self, interval: Duration, follows_time: bool) -> Duration {
        if !follows_time {
            return interval;
        }
        let this = self.clone();
        let deadline = match tokio::task::spawn_blocking(move || this.next_deadline()).await {
            Ok(Ok(deadline)) => deadline,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot read the next deadline");
                None
            }
            Err(e) => {
                tracing::error!(error = %e, "deadline task panicked");
                None
            }
        };
        self.deadlines.plan(deadline);
        match deadline {
            Some(at) => {
                let ms = (at - self.clock.now_ms()).max(0).unsigned_abs();
                // The floor keeps a deadline that a pass could not clear (a failing database,
                // say) from turning the loop into a busy one.
                Duration::from_millis(ms).clamp(MIN_PAUSE, interval.max(MIN_PAUSE))
            }
            None => interval,
        }
    }

    /// Runs a pass at every deadline (a warning window opening, an expiry), so that
    /// `session.expiring` and `session.expired` are pushed when they happen, and at least every
    /// `interval`, until `shutdown` turns true.
    pub async fn run(self, interval: Duration, mut shutdown: watch::Receiver<bool>) {
        let mut moves = self.clock.moves();
        let follows_time = self.clock.is_realtime() || moves.is_some();
        let mut last_sweep = tokio::time::Instant::now();
        loop {
            let wait = self.wait(interval, follows_time).await;
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                // A deadline before the planned one, or the (manual) clock moved: plan again.
                _ = self.deadlines.wake.notified() => continue,
                Some(_) = async { match moves.as_mut() {
                    Some(m) => m.changed().await.ok(),
                    None => std::future::pending().await,
                } } => continue,
                _ = shutdown.changed() => break,
            }
            if *shutdown.borrow() {
                break;
            }
            // The purges at the sweep interval; a deadline pass only warns and expires.
            let sweep = last_sweep.elapsed() >= interval;
            if sweep {
                last_sweep = tokio::time::Instant::now();
            }
            let this = self.clone();
            match tokio::task::spawn_blocking(move || this.pass(sweep)).await {
                Ok(Ok(r)) if !r.expired.is_empty() || !r.warned.is_empty() || r.purged > 0 => {
                    tracing::info!(
                        warned = r.warned.len(),
                        expired = r.expired.len(),
                        purged = r.purged,
                        "reaper pass"
                    );
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "reaper pass failed"),
                Err(e) => tracing::error!(error = %e, "reaper task panicked"),
            }
        }
        tracing::info!("reaper stopped");
    }
}
