//! The connection pool, and how work reaches a connection: on the blocking pool, or inline for
//! point reads on SQLite. It also knows when the database is down, so requests fail at once
//! with 503 instead of each waiting out the pool's timeout, and recover by themselves.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::connection::TransactionManager;
use diesel::pg::PgConnection;
use diesel::r2d2::{self, ManageConnection};
use diesel::sqlite::SqliteConnection;
use diesel::Connection;

use super::group_commit::{retry_conflicts, GroupCommit};
use super::{write_transaction, Backend, DbConnection, DbError};
use crate::service::{ServiceError, ServiceResult};

pub type PooledConnection = r2d2::PooledConnection<ConnectionManager>;

/// How long a request waits for a free connection while the database is believed up.
const CHECKOUT_TIMEOUT: Duration = Duration::from_secs(5);
/// How often a waiting request looks whether the database was found down meanwhile.
const DOWN_CHECK: Duration = Duration::from_millis(50);

/// Picks the backend from the URL scheme, so a bad URL reports the real error at once
/// (diesel's derived `establish` tries each backend and hides it).
#[derive(Debug, Clone)]
pub struct ConnectionManager {
    url: String,
    backend: Backend,
}

impl ConnectionManager {
    pub fn new(url: &str) -> Self {
        let backend = Backend::of_url(url);
        let url = match backend {
            Backend::Postgres => plain_on_loopback(url),
            Backend::Sqlite => url.to_owned(),
        };
        Self { url, backend }
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub(super) fn sqlite_path(&self) -> &str {
        self.url.strip_prefix("sqlite://").unwrap_or(&self.url)
    }

    pub fn establish(&self) -> Result<DbConnection, DbError> {
        Ok(match self.backend {
            Backend::Postgres => DbConnection::Postgresql(PgConnection::establish(&self.url)?),
            Backend::Sqlite => {
                let mut conn = SqliteConnection::establish(self.sqlite_path())?;
                // Per connection: wait for another process's writer instead of failing, enforce
                // foreign keys (cascading deletes), and fsync the WAL at every commit: with
                // NORMAL a power cut can lose the last acknowledged writes, and nothing
                // acknowledged may be lost (group commit pays for it, see `group_commit`).
                conn.batch_execute(
                    "PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON; \
                     PRAGMA synchronous = FULL;",
                )?;
                DbConnection::Sqlite(conn)
            }
        })
    }
}

/// A PostgreSQL URL for a server on this machine gets `sslmode=disable` unless it names an
/// `sslmode` itself: libpq's default (`prefer`) negotiates TLS even on loopback, which protects
/// nothing there and costs a handshake per connection and encryption on every round trip.
fn plain_on_loopback(url: &str) -> String {
    let Some((_, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, query) = match rest.split_once('?') {
        Some((before, query)) => (before, Some(query)),
        None => (rest, None),
    };
    let authority = authority.split('/').next().unwrap_or_default();
    let host_port = authority.rsplit('@').next().unwrap_or_default();
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host_port.split(':').next().unwrap_or_default(),
    };
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    // Several hosts, a host given as a parameter (it wins over the URL's), or any TLS setting
    // (in the URL or in libpq's environment): left exactly as written.
    let several_hosts = host_port.contains(',');
    let decides_elsewhere = query.is_some_and(|q| {
        q.split('&').any(|p| {
            ["host=", "hostaddr=", "ssl"]
                .iter()
                .any(|k| p.starts_with(k))
        })
    }) || std::env::var_os("PGSSLMODE").is_some();
    if !loopback || several_hosts || decides_elsewhere {
        return url.to_owned();
    }
    let url = url.trim_end_matches(['?', '&']);
    if url.contains('?') {
        format!("{url}&sslmode=disable")
    } else {
        format!("{url}?sslmode=disable")
    }
}

thread_local! {
    /// Set when work on this thread failed inside the database: the connection it used is
    /// checked before it goes back into the pool (its drop runs on the same thread).
    static SUSPECT: Cell<bool> = const { Cell::new(false) };
}

impl ManageConnection for ConnectionManager {
    type Connection = DbConnection;
    type Error = DbError;

    fn connect(&self) -> Result<DbConnection, DbError> {
        self.establish()
    }

    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), DbError> {
        Ok(conn.batch_execute("SELECT 1")?)
    }

    /// A connection dropped mid-transaction (a panic, a failed rollback) must not go back into
    /// the pool, nor one that failed a query and no longer answers (the server restarted).
    /// Checkouts are not tested (that was one more statement, on PostgreSQL one more round
    /// trip, per request): a dead connection is found by the error it gives instead.
    fn has_broken(&self, conn: &mut DbConnection) -> bool {
        if std::thread::panicking() || DbConnection::is_broken_transaction_manager(conn) {
            return true;
        }
        SUSPECT.with(|s| s.replace(false)) && self.is_valid(conn).is_err()
    }
}

/// What the pool knows about the database, fed by r2d2's connection events.
#[derive(Debug, Default)]
pub struct Health {
    /// The last attempt to open a connection failed and none succeeded since.
    down: AtomicBool,
    /// Requests waiting for a connection (a metric).
    waiting: AtomicI64,
}

impl Health {
    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::Relaxed)
    }

    pub fn waiting(&self) -> i64 {
        self.waiting.load(Ordering::Relaxed)
    }
}

#[derive(Debug)]
struct Watch(Arc<Health>);

impl r2d2::HandleError<DbError> for Watch {
    fn handle_error(&self, error: DbError) {
        if !self.0.down.swap(true, Ordering::Relaxed) {
            tracing::error!(%error, "the database is unreachable; requests answer 503 until it is back");
        }
    }
}

impl r2d2::HandleEvent for Watch {
    fn handle_acquire(&self, _: r2d2::event::AcquireEvent) {
        if self.0.down.swap(false, Ordering::Relaxed) {
            tracing::info!("the database is reachable again");
        }
    }
}

/// The connection pool with its health; cheap to clone.
#[derive(Clone)]
pub struct DbPool {
    pool: r2d2::Pool<ConnectionManager>,
    health: Arc<Health>,
    backend: Backend,
    /// SQLite: the group committer, started at the first write.
    writer: Arc<OnceLock<GroupCommit>>,
    manager: ConnectionManager,
}

impl DbPool {
    pub(super) fn build(manager: ConnectionManager, size: u32) -> Result<Self, DbError> {
        let health = Arc::new(Health::default());
        let backend = manager.backend;
        let writer = Arc::new(OnceLock::new());
        let kept = manager.clone();
        let pool = r2d2::Pool::builder()
            .max_size(size)
            .connection_timeout(CHECKOUT_TIMEOUT)
            .test_on_check_out(false)
            .error_handler(Box::new(Watch(health.clone())))
            .event_handler(Box::new(Watch(health.clone())))
            .build(manager)?;
        Ok(Self {
            pool,
            health,
            backend,
            writer,
            manager: kept,
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn health(&self) -> &Health {
        &self.health
    }

    /// `(open connections, idle connections)`.
    pub fn state(&self) -> (u32, u32) {
        let s = self.pool.state();
        (s.connections, s.idle_connections)
    }

    /// A connection, waiting up to the pool's timeout; none at once while the database is
    /// known to be down (an idle connection is still tried: it may work again).
    pub fn get(&self) -> Result<PooledConnection, DbError> {
        self.get_timeout(CHECKOUT_TIMEOUT)
    }

    pub fn get_timeout(&self, timeout: Duration) -> Result<PooledConnection, DbError> {
        if let Some(conn) = self.pool.try_get() {
            return Ok(conn);
        }
        if self.health.is_down() {
            return Err(DbError::Down);
        }
        // Wait in short slices: r2d2 does not wake waiters when a reconnect fails, and a
        // request must not sit out the whole timeout once the database is known to be down.
        self.health.waiting.fetch_add(1, Ordering::Relaxed);
        let deadline = std::time::Instant::now() + timeout;
        let conn = loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.pool.get_timeout(left.min(DOWN_CHECK)) {
                Ok(conn) => break Ok(conn),
                Err(_) if self.health.is_down() => break Err(DbError::Down),
                Err(e) if left <= DOWN_CHECK => break Err(e.into()),
                Err(_) => continue,
            }
        };
        self.health.waiting.fetch_sub(1, Ordering::Relaxed);
        conn
    }

    /// Runs blocking diesel work with a connection on the blocking pool, never on an async
    /// worker; `timeout` bounds the wait for the connection (else the pool's own).
    pub async fn run<T, F>(&self, timeout: Option<Duration>, f: F) -> ServiceResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConnection) -> ServiceResult<T> + Send + 'static,
    {
        let pool = self.clone();
        tokio::task::spawn_blocking(move || {
            let conn = pool.get_timeout(timeout.unwrap_or(CHECKOUT_TIMEOUT))?;
            pool.with_connection(conn, f)
        })
        .await
        .map_err(|e| ServiceError::Internal(format!("blocking task failed: {e}")))?
    }

    /// Runs `f` in a write transaction, again while it fails with [`ServiceError::Conflict`];
    /// answers once the transaction is committed. On SQLite it joins the next group commit
    /// (see [`GroupCommit`]); on PostgreSQL it is a transaction of its own on the blocking pool.
    pub async fn write<T, F>(&self, mut f: F) -> ServiceResult<T>
    where
        T: Send + 'static,
        F: FnMut(&mut DbConnection) -> ServiceResult<T> + Send + 'static,
    {
        match self.backend {
            Backend::Sqlite => self.group_commit()?.write(f).await,
            Backend::Postgres => {
                self.run(None, move |conn| {
                    retry_conflicts(|| write_transaction(conn, &mut f))
                })
                .await
            }
        }
    }

    /// Writes waiting for the SQLite group commit (0 on PostgreSQL).
    pub fn write_queue_depth(&self) -> i64 {
        self.writer.get().map_or(0, |w| {
            w.stats().queued.load(std::sync::atomic::Ordering::Relaxed)
        })
    }

    /// The SQLite writer, started on first use (a `migrate` or `keys` command never writes
    /// through it).
    pub fn group_commit(&self) -> Result<&GroupCommit, DbError> {
        if let Some(writer) = self.writer.get() {
            return Ok(writer);
        }
        let started = GroupCommit::start(&self.manager)?;
        Ok(self.writer.get_or_init(|| started))
    }

    /// A few indexed reads (a session and its participants). On SQLite it runs right here on the async worker when a connection
    /// is idle: it is a few microseconds of CPU against a local file (readers never wait in
    /// WAL mode), while the hop to the blocking pool and back costs two thread wake-ups, the
    /// largest cost of a GET in the profile. On PostgreSQL it is a network round trip and goes
    /// to the blocking pool.
    pub async fn point_read<T, F>(&self, f: F) -> ServiceResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConnection) -> ServiceResult<T> + Send + 'static,
    {
        if self.backend == Backend::Sqlite {
            if let Some(conn) = self.pool.try_get() {
                return self.with_connection(conn, f);
            }
        }
        self.run(None, f).await
    }

    /// Runs `f` on `conn`. A failure in the database makes the connection suspect, so it is
    /// checked before going back into the pool (and dropped when it no longer answers). Any
    /// other outcome proves the database answers, which clears a "down" that a failed
    /// reconnect set meanwhile (a full PostgreSQL refusing one more connection): only a
    /// database that answers nothing keeps requests failing fast.
    fn with_connection<T>(
        &self,
        mut conn: PooledConnection,
        f: impl FnOnce(&mut DbConnection) -> ServiceResult<T>,
    ) -> ServiceResult<T> {
        let result = f(&mut conn);
        if matches!(
            result,
            Err(ServiceError::Internal(_) | ServiceError::Unavailable(_))
        ) {
            SUSPECT.with(|s| s.set(true));
        } else {
            self.health.down.store(false, Ordering::Relaxed);
        }
        drop(conn);
        SUSPECT.with(|s| s.set(false));
        result
    }
}

#[cfg(test)]
mod tests {
    use super::plain_on_loopback;

    #[test]
    fn loopback_postgres_urls_go_without_tls_unless_they_ask() {
        for (url, expected) in [
            (
                "postgres://postgres@127.0.0.1:5432/test",
                "postgres://postgres@127.0.0.1:5432/test?sslmode=disable",
            ),
            (
                "postgres://u:p@localhost/db?options=-csearch_path%3Dx",
                "postgres://u:p@localhost/db?options=-csearch_path%3Dx&sslmode=disable",
            ),
            (
                "postgresql://[::1]:5432/db",
                "postgresql://[::1]:5432/db?sslmode=disable",
            ),
            (
                "postgres://127.0.0.1/db?sslmode=require",
                "postgres://127.0.0.1/db?sslmode=require",
            ),
            (
                "postgres://db.example.com/db",
                "postgres://db.example.com/db",
            ),
            (
                "postgres://u@10.0.0.5:5432/db",
                "postgres://u@10.0.0.5:5432/db",
            ),
            (
                "postgres://localhost,db.example.com/db",
                "postgres://localhost,db.example.com/db",
            ),
            (
                "postgres://localhost/db?host=remote.example.com",
                "postgres://localhost/db?host=remote.example.com",
            ),
            (
                "postgres://127.0.0.1/db?sslrootcert=x",
                "postgres://127.0.0.1/db?sslrootcert=x",
            ),
            (
                "postgres:///db?host=/var/run/postgresql",
                "postgres:///db?host=/var/run/postgresql",
            ),
            (
                "postgres://127.0.0.1/db?",
                "postgres://127.0.0.1/db?sslmode=disable",
            ),
            (
                "postgres://127.0.0.1/db?a=b&",
                "postgres://127.0.0.1/db?a=b&sslmode=disable",
            ),
        ] {
            assert_eq!(plain_on_loopback(url), expected, "{url}");
        }
    }
}
