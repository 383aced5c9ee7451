//! The one source of time. Every timestamp the service stores or compares comes from a
//! [`Clock`], never from SQL `now()`, so SQLite and PostgreSQL behave the same and tests can
//! travel in time with [`ManualClock`].

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use tokio::sync::watch;

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

pub trait Clock: Send + Sync + 'static {
    fn now_ms(&self) -> Millis;

    /// Whether time moves by itself (the wall clock): then deadlines can be slept towards.
    fn is_realtime(&self) -> bool {
        true
    }

    /// For a clock that is moved by hand: tells when it moves, so a scheduler can follow it.
    fn moves(&self) -> Option<watch::Receiver<Millis>> {
        None
    }
}

/// The wall clock, read at every call.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> Millis {
        chrono::Utc::now().timestamp_millis()
    }
}

/// A clock that only moves when told to; shared between a test and the app it drives.
/// Made with [`ManualClock::new`], the app's scheduler cannot follow it (deadlines pass only
/// when a test runs a reaper pass itself); made with [`ManualClock::following`], every move is
/// announced and the scheduler acts on the deadlines it passes, as it would in real time.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<AtomicI64>,
    moves: Option<Arc<watch::Sender<Millis>>>,
}

impl ManualClock {
    pub fn new(start_ms: Millis) -> Self {
        Self {
            now: Arc::new(AtomicI64::new(start_ms)),
            moves: None,
        }
    }

    /// A manual clock whose moves the app's scheduler follows.
    pub fn following(start_ms: Millis) -> Self {
        Self {
            moves: Some(Arc::new(watch::Sender::new(start_ms))),
            ..Self::new(start_ms)
        }
    }

    pub fn set(&self, ms: Millis) {
        self.now.store(ms, Ordering::SeqCst);
        self.announce();
    }

    pub fn advance_ms(&self, ms: i64) {
        self.now.fetch_add(ms, Ordering::SeqCst);
        self.announce();
    }

    fn announce(&self) {
        if let Some(moves) = &self.moves {
            moves.send_replace(self.now.load(Ordering::SeqCst));
        }
    }

    pub fn advance_minutes(&self, minutes: i64) {
        self.advance_ms(minutes * 60_000);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> Millis {
        self.now.load(Ordering::SeqCst)
    }

    fn is_realtime(&self) -> bool {
        false
    }

    fn moves(&self) -> Option<watch::Receiver<Millis>> {
        self.moves.as_ref().map(|m| m.subscribe())
    }
}

/// Formats unix milliseconds as RFC 3339 UTC with milliseconds (`2026-01-02T03:04:05.678Z`).
pub fn to_rfc3339(ms: Millis) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
