//! Group commit for SQLite. Every acknowledged write waits for its fsync (`synchronous =
//! FULL`), and SQLite has one writer: one commit per request caps writes at the disk's fsync
//! rate. Instead one writer thread takes every write that is waiting, runs each in its own
//! SAVEPOINT (so a failing request rolls back alone) inside one `BEGIN IMMEDIATE … COMMIT`,
//! and answers them all once that commit is durable — never before.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{mpsc, Arc};

use diesel::connection::TransactionManager;
use diesel::Connection;

use super::pool::ConnectionManager;
use super::{begin_write, commit_write, DbConnection};
use crate::service::{ServiceError, ServiceResult};

/// Most writes in one commit: bounds how long the first one waits for the last.
const MAX_BATCH: usize = 256;
/// Most writes waiting; more answer 503 at once instead of queueing without end.
const MAX_QUEUED: usize = 10_000;

/// How many times a write that lost a race is retried (see [`retry_conflicts`]).
const MAX_ATTEMPTS: usize = 8;

/// Runs `attempt` again while it fails with [`ServiceError::Conflict`] (an optimistic version
/// check failed, or a concurrent insert of the same unique key won); every attempt starts from
/// a fresh read, so retries are safe.
pub(crate) fn retry_conflicts<T>(
    mut attempt: impl FnMut() -> ServiceResult<T>,
) -> ServiceResult<T> {
    for _ in 0..MAX_ATTEMPTS - 1 {
        match attempt() {
            Err(ServiceError::Conflict) => continue,
            other => return other,
        }
    }
    attempt()
}

/// Answers one write once the commit that holds it is over.
type Reply = Box<dyn FnOnce(Result<(), &str>) + Send>;
/// Runs one write inside the open transaction and says how to answer it.
type Job = Box<dyn FnOnce(&mut DbConnection) -> Reply + Send>;

/// Numbers for the metrics.
#[derive(Default)]
pub struct CommitStats {
    /// Writes waiting for the writer.
    pub queued: AtomicI64,
    /// Called with the size of every committed batch.
    pub on_batch: std::sync::OnceLock<Box<dyn Fn(usize) + Send + Sync>>,
}

/// The queue in front of the writer thread; the thread ends when the last handle is dropped.
pub struct GroupCommit {
    jobs: mpsc::SyncSender<Job>,
    stats: Arc<CommitStats>,
}

impl GroupCommit {
    /// Opens the writer's own connection and starts its thread.
    pub fn start(manager: &ConnectionManager) -> Result<Self, super::DbError> {
        let conn = manager.establish()?;
        let (jobs, queue) = mpsc::sync_channel::<Job>(MAX_QUEUED);
        let stats = Arc::new(CommitStats::default());
        let writer = Writer {
            conn: Some(conn),
            manager: manager.clone(),
            stats: stats.clone(),
        };
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer.run(queue))
            .map_err(|e| super::DbError::Migration(format!("cannot start the writer: {e}")))?;
        Ok(Self { jobs, stats })
    }

    pub fn stats(&self) -> &Arc<CommitStats> {
        &self.stats
    }

    /// Runs `f` in the next group commit, in its own savepoint, retried on
    /// [`ServiceError::Conflict`]; answers once the commit is durable.
    pub async fn write<T, F>(&self, mut f: F) -> ServiceResult<T>
    where
        T: Send + 'static,
        F: FnMut(&mut DbConnection) -> ServiceResult<T> + Send + 'static,
    {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |conn| {
            // The caller is gone (its client disconnected): nobody would learn the outcome.
            if answer.is_closed() {
                return Box::new(|_| {});
            }
            // `transaction` inside the open transaction is a savepoint: rolled back alone
            // when `f` fails.
            let result = retry_conflicts(|| conn.transaction(&mut f));
            Box::new(move |committed| {
                let outcome = match (result, committed) {
                    (Ok(_), Err(e)) => Err(ServiceError::Internal(format!("commit failed: {e}"))),
                    (result, _) => result,
                };
                let _ = answer.send(outcome);
            })
        });
        self.stats.queued.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = self.jobs.try_send(job) {
            self.stats.queued.fetch_sub(1, Ordering::Relaxed);
            return Err(match e {
                mpsc::TrySendError::Full(_) => {
                    ServiceError::Busy("too many writes are waiting".into())
                }
                mpsc::TrySendError::Disconnected(_) => {
                    ServiceError::Unavailable("the writer has stopped".into())
                }
            });
        }
        // Closed without an answer: the transaction could not be opened, or a write in the
        // same batch panicked; nothing of this write was committed.
        answered
            .await
            .map_err(|_| ServiceError::Unavailable("the write could not be committed".into()))?
    }
}

struct Writer {
    /// `None` after a failure that may have left it in an unknown state: reopened at the next
    /// batch (SQLite rolls back whatever a closed connection had open).
    conn: Option<DbConnection>,
    manager: ConnectionManager,
    stats: Arc<CommitStats>,
}

impl Writer {
    fn run(mut self, queue: mpsc::Receiver<Job>) {
        while let Ok(first) = queue.recv() {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match queue.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            self.stats
                .queued
                .fetch_sub(batch.len() as i64, Ordering::Relaxed);
            self.commit(batch);
        }
    }

    /// One transaction for the whole batch; every reply leaves after the commit. Whatever goes
    /// wrong on the way, no write is answered as committed unless the COMMIT of the outer
    /// transaction succeeded, and a connection in an unknown state is not used again.
    fn commit(&mut self, batch: Vec<Job>) {
        let size = batch.len();
        let conn = match self
            .conn
            .take()
            .map_or_else(|| self.manager.establish(), Ok)
        {
            Ok(conn) => self.conn.insert(conn),
            Err(e) => {
                // Nothing ran; each caller sees its reply channel closed (503).
                tracing::error!(error = %e, batch = size, "the writer cannot open its connection");
                return;
            }
        };
        let guard = match begin_write(conn) {
            Ok(guard) => guard,
            Err(e) => {
                tracing::error!(error = %e, batch = size, "cannot open a write transaction");
                self.conn = None;
                return;
            }
        };
        let mut replies = Vec::with_capacity(size);
        for job in batch {
            let ran = catch_unwind(AssertUnwindSafe(|| job(conn)));
            // Each job must leave exactly the outer transaction open: SQLite may have rolled it
            // back (disk full, I/O error) or a savepoint may have stayed open; then nothing of
            // the batch can be trusted to commit.
            let intact = ran.is_ok() && depth(conn) == Some(1);
            match ran {
                Ok(reply) if intact => replies.push(reply),
                outcome => {
                    tracing::error!(
                        batch = size,
                        panicked = outcome.is_err(),
                        "a write left the group commit's transaction broken; the batch is rolled back"
                    );
                    if let Ok(reply) = outcome {
                        replies.push(reply);
                    }
                    // Closing the connection rolls back what it had open; then the lock goes.
                    self.conn = None;
                    drop(guard);
                    for reply in replies {
                        reply(Err("the transaction of its batch failed"));
                    }
                    return;
                }
            }
        }
        let started = std::time::Instant::now();
        match commit_write(conn, guard) {
            Ok(()) => {
                tracing::trace!(
                    batch = size,
                    commit_us = started.elapsed().as_micros() as u64,
                    "group commit"
                );
                for reply in replies {
                    reply(Ok(()));
                }
                if let Some(observe) = self.stats.on_batch.get() {
                    observe(size);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, batch = size, "group commit failed");
                self.conn = None;
                let e = e.to_string();
                for reply in replies {
                    reply(Err(&e));
                }
            }
        }
    }
}

/// The connection's transaction depth as diesel tracks it (`None` outside a transaction or
/// when the connection is broken).
fn depth(conn: &mut DbConnection) -> Option<u32> {
    // The multi-connection's manager reads the depth of whichever connection it holds.
    <DbConnection as Connection>::TransactionManager::transaction_manager_status_mut(conn)
        .transaction_depth()
        .ok()
        .flatten()
        .map(|d| d.get())
}
