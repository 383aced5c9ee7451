//! Storage baselines and bulk seeding for the load harness (`bash benches/load.sh`).
//!
//! The harness compares what the service does over HTTP with what the storage alone can do on
//! the same machine, in the same run. This program is the SQLite side of that (PostgreSQL's is
//! pgbench) and seeds the large `sessions` table the list scenario reads:
//!
//! ```sh
//! # single-row INSERT commits in a loop, on a fresh file with the service's PRAGMAs
//! cargo run --release --example storage_baseline -- sqlite-commits --path /tmp/c.db --threads 1 --seconds 10
//! # reads of one session by primary key (all columns, as the service reads it)
//! cargo run --release --example storage_baseline -- sqlite-reads --path db.sqlite --ids ids.txt --threads 2 --seconds 10
//! # N sessions over M agents, inserted straight into a migrated service database
//! cargo run --release --example storage_baseline -- seed --path db.sqlite --agent <uuid> --sessions 1000000
//! ```
//!
//! Each measurement ends with one machine-readable line,
//! `BASELINE name=... threads=... ops=... seconds=... rate=... p50_us=... p99_us=...`.
//!
//! Queries go through diesel's query builder (tables declared below, from the migrations), so
//! their prepared statements are cached per connection as the service's are; `sql_query` is
//! never cached and would measure statement preparation too.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::{Parser, Subcommand};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sqlite::SqliteConnection;

// The service's own schema: the seed writes the very rows the service reads.
use agent_sessions::db::schema::{agents, sessions};

// The table the commit baseline writes: a message-sized row.
diesel::table! {
    baseline_commits (id) {
        id -> Text,
        session_id -> Text,
        seq -> BigInt,
        content -> Text,
        created_at -> BigInt,
    }
}

#[derive(Parser)]
#[command(about = "SQLite storage baselines and bulk seeding for benches/load.sh")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Single-row INSERT commits in a loop on a fresh file (WAL, synchronous=FULL): the floor
    /// under a durable write such as sending a message.
    SqliteCommits {
        /// The file to create (an existing one, and its -wal/-shm, is replaced).
        #[arg(long)]
        path: PathBuf,
        /// Writers, each with its own connection (SQLite has one writer at a time).
        #[arg(long, default_value_t = 1)]
        threads: usize,
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
    },
    /// Reads of one session by primary key, all columns, rotating over the ids in `--ids`:
    /// the floor under GET session.
    SqliteReads {
        /// A database migrated by the service.
        #[arg(long)]
        path: PathBuf,
        /// A file with one session id per line.
        #[arg(long)]
        ids: PathBuf,
        #[arg(long, default_value_t = 2)]
        threads: usize,
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
    },
    /// Inserts `--sessions` sessions spread over `--agents` agents (the first being `--agent`,
    /// which must exist and own at least one session: its timeout columns are the template)
    /// into a database the service has migrated.
    Seed {
        #[arg(long)]
        path: PathBuf,
        /// The measured agent: every `--agents`-th session is its.
        #[arg(long)]
        agent: String,
        #[arg(long, default_value_t = 1_000_000)]
        sessions: i64,
        #[arg(long, default_value_t = 1_000)]
        agents: i64,
        /// Rows per transaction (the running server may want the write lock in between).
        #[arg(long, default_value_t = 100_000)]
        batch: i64,
        /// Run ANALYZE afterwards (the service never does: without it SQLite's planner has no
        /// statistics to choose between the indexes of `sessions`).
        #[arg(long)]
        analyze: bool,
    },
}

fn main() {
    let result = match Cli::parse().command {
        Command::SqliteCommits {
            path,
            threads,
            seconds,
        } => sqlite_commits(&path, threads, seconds),
        Command::SqliteReads {
            path,
            ids,
            threads,
            seconds,
        } => sqlite_reads(&path, &ids, threads, seconds),
        Command::Seed {
            path,
            agent,
            sessions,
            agents,
            batch,
            analyze,
        } => seed(&path, &agent, sessions, agents, batch, analyze),
    };
    if let Err(e) = result {
        eprintln!("storage_baseline: {e}");
        std::process::exit(1);
    }
}

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// A connection with the PRAGMAs of the service (src/db/mod.rs): WAL, fsync at every commit,
/// wait for another writer, foreign keys enforced.
fn open(path: &Path) -> Result<SqliteConnection> {
    let url = path.to_str().ok_or("the path is not UTF-8")?;
    let mut conn = SqliteConnection::establish(url)?;
    conn.batch_execute(
        "PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL;",
    )?;
    Ok(conn)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Runs `op` in a loop on `threads` threads, each with the state `prepare` gives it, for
/// `seconds`, and prints the rate and the latency percentiles of one `op`.
fn measure<S>(
    name: &str,
    threads: usize,
    seconds: f64,
    prepare: impl Fn(usize) -> Result<S> + Sync,
    op: impl Fn(&mut S, u64) -> Result<()> + Sync,
) -> Result<()> {
    let threads = threads.max(1);
    let barrier = Barrier::new(threads);
    let duration = Duration::from_secs_f64(seconds);
    let (latencies, elapsed) = std::thread::scope(|scope| -> Result<(Vec<u64>, Duration)> {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let (barrier, prepare, op) = (&barrier, &prepare, &op);
                scope.spawn(move || -> Result<(Vec<u64>, Duration)> {
                    let state = prepare(t);
                    // Everyone starts together, also when one failed to prepare.
                    barrier.wait();
                    let mut state = state?;
                    let mut latencies = Vec::with_capacity(1 << 20);
                    let start = Instant::now();
                    let mut n = t as u64;
                    while start.elapsed() < duration {
                        let before = Instant::now();
                        op(&mut state, n)?;
                        latencies.push(before.elapsed().as_nanos() as u64);
                        n += threads as u64;
                    }
                    Ok((latencies, start.elapsed()))
                })
            })
            .collect();
        let mut all = Vec::new();
        let mut elapsed = Duration::ZERO;
        for worker in workers {
            let (latencies, took) = worker.join().map_err(|_| "a worker panicked")??;
            all.extend(latencies);
            elapsed = elapsed.max(took);
        }
        Ok((all, elapsed))
    })?;
    report(name, threads, latencies, elapsed);
    Ok(())
}

fn report(name: &str, threads: usize, mut latencies: Vec<u64>, elapsed: Duration) {
    latencies.sort_unstable();
    let percentile = |p: f64| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        let rank = ((p / 100.0) * latencies.len() as f64).ceil() as usize;
        latencies[rank.clamp(1, latencies.len()) - 1] as f64 / 1000.0
    };
    let seconds = elapsed.as_secs_f64();
    let rate = latencies.len() as f64 / seconds;
    let (p50, p99) = (percentile(50.0), percentile(99.0));
    println!(
        "{name}: {threads} thread(s), {} ops in {seconds:.2} s: {rate:.0}/s, p50 {p50:.1} µs, p99 {p99:.1} µs",
        latencies.len()
    );
    println!(
        "BASELINE name={name} threads={threads} ops={} seconds={seconds:.3} rate={rate:.1} p50_us={p50:.1} p99_us={p99:.1}",
        latencies.len()
    );
}

#[derive(Insertable)]
#[diesel(table_name = baseline_commits)]
struct CommitRow<'a> {
    id: String,
    session_id: &'a str,
    seq: i64,
    content: &'a str,
    created_at: i64,
}

fn sqlite_commits(path: &Path, threads: usize, seconds: f64) -> Result<()> {
    for suffix in ["", "-wal", "-shm"] {
        let mut file = path.as_os_str().to_owned();
        file.push(suffix);
        let _ = std::fs::remove_file(file);
    }
    {
        let mut conn = open(path)?;
        conn.batch_execute(
            "PRAGMA journal_mode = WAL;
             CREATE TABLE baseline_commits (
                 id TEXT PRIMARY KEY NOT NULL,
                 session_id TEXT NOT NULL,
                 seq BIGINT NOT NULL,
                 content TEXT NOT NULL,
                 created_at BIGINT NOT NULL
             );
             CREATE UNIQUE INDEX baseline_commits_session_seq ON baseline_commits (session_id, seq);",
        )?;
    }
    let session = uuid::Uuid::new_v4().to_string();
    measure(
        "sqlite-commits",
        threads,
        seconds,
        |_| open(path),
        |conn, n| {
            // Autocommit: one INSERT is one durable (fsync'd) transaction.
            diesel::insert_into(baseline_commits::table)
                .values(CommitRow {
                    id: uuid::Uuid::new_v4().to_string(),
                    session_id: &session,
                    seq: n as i64,
                    content: "hello",
                    created_at: now_ms(),
                })
                .execute(conn)?;
            Ok(())
        },
    )
}

/// All columns of a session, as the service reads one.
#[derive(Queryable, Selectable)]
#[diesel(table_name = sessions)]
#[allow(dead_code)]
struct SessionRow {
    id: String,
    agent_id: String,
    user_id: String,
    status: String,
    metadata: String,
    timeout_minutes: i64,
    auto_renew: bool,
    max_duration_minutes: i64,
    warning_threshold_minutes: i64,
    config_sources: String,
    created_at: i64,
    last_activity: i64,
    expires_at: i64,
    renewal_count: i64,
    closed_at: Option<i64>,
    version: i64,
}

fn sqlite_reads(path: &Path, ids: &Path, threads: usize, seconds: f64) -> Result<()> {
    let ids: Vec<String> = std::fs::read_to_string(ids)?
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    if ids.is_empty() {
        return Err("no session ids to read".into());
    }
    let ids = Arc::new(ids);
    measure(
        "sqlite-reads",
        threads,
        seconds,
        |_| open(path),
        |conn, n| {
            let id = &ids[n as usize % ids.len()];
            let row: Option<SessionRow> = sessions::table
                .find(id)
                .select(SessionRow::as_select())
                .get_result(conn)
                .optional()?;
            if row.is_none() {
                return Err(format!("session {id} not found").into());
            }
            Ok(())
        },
    )
}

#[derive(Insertable)]
#[diesel(table_name = agents)]
struct AgentRow {
    id: String,
    name: Option<String>,
    created_at: i64,
    updated_at: i64,
}

#[derive(Insertable)]
#[diesel(table_name = sessions)]
struct NewSession<'a> {
    id: String,
    agent_id: &'a str,
    user_id: String,
    status: &'a str,
    metadata: &'a str,
    timeout_minutes: i64,
    auto_renew: bool,
    max_duration_minutes: i64,
    warning_threshold_minutes: i64,
    config_sources: &'a str,
    created_at: i64,
    last_activity: i64,
    expires_at: i64,
    renewal_count: i64,
    closed_at: Option<i64>,
    version: i64,
}

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;

/// The same rows as benches/load/pg_seed.sql (keep them in step): session `i` belongs to agent
/// `i % agents` (0 is the measured agent); `created_at` climbs evenly from 23 h ago to 1 h ago,
/// one distinct millisecond or more apart. Sessions created in the last 11 h are active, last
/// active up to 10 minutes ago (so none reaches its warning window during a run); older ones
/// expired after their idle timeout, less than 24 h ago (so the reaper does not purge them
/// during a run).
fn seed(
    path: &Path,
    agent: &str,
    sessions_n: i64,
    agents_n: i64,
    batch: i64,
    analyze: bool,
) -> Result<()> {
    let started = Instant::now();
    let mut conn = open(path)?;
    // A large page cache for the seeding connection only: random UUID keys touch index pages
    // all over the file.
    conn.batch_execute("PRAGMA cache_size = -262144;")?;
    let (tm, auto_renew, md, wt, config_sources): (i64, bool, i64, i64, String) = sessions::table
        .filter(sessions::agent_id.eq(agent))
        .select((
            sessions::timeout_minutes,
            sessions::auto_renew,
            sessions::max_duration_minutes,
            sessions::warning_threshold_minutes,
            sessions::config_sources,
        ))
        .first(&mut conn)
        .optional()?
        .ok_or("the measured agent has no session to copy the timeout columns from")?;

    let now = now_ms();
    let mut agent_ids = vec![agent.to_owned()];
    conn.transaction(|conn| -> QueryResult<()> {
        for k in 1..agents_n.max(1) {
            let id = uuid::Uuid::new_v4().to_string();
            diesel::insert_into(agents::table)
                .values(AgentRow {
                    id: id.clone(),
                    name: Some(format!("load-{k}")),
                    created_at: now - 25 * HOUR + k,
                    updated_at: now - 25 * HOUR + k,
                })
                .execute(conn)?;
            agent_ids.push(id);
        }
        Ok(())
    })?;

    let step = (22 * HOUR / sessions_n.max(1)).max(1);
    let mut i = 0;
    while i < sessions_n {
        let end = (i + batch.max(1)).min(sessions_n);
        conn.transaction(|conn| -> QueryResult<()> {
            for i in i..end {
                let created_at = now - 23 * HOUR + i * step;
                let active = created_at >= now - 11 * HOUR;
                let jitter = (i * 7919) % (10 * MINUTE);
                let last_activity = if active {
                    now - jitter
                } else {
                    created_at + jitter
                };
                let expires_at = (last_activity + tm * MINUTE).min(created_at + md * MINUTE);
                diesel::insert_into(sessions::table)
                    .values(NewSession {
                        id: uuid::Uuid::new_v4().to_string(),
                        agent_id: &agent_ids[(i % agents_n.max(1)) as usize],
                        user_id: uuid::Uuid::new_v4().to_string(),
                        status: if active { "active" } else { "expired" },
                        metadata: "{}",
                        timeout_minutes: tm,
                        auto_renew,
                        max_duration_minutes: md,
                        warning_threshold_minutes: wt,
                        config_sources: &config_sources,
                        created_at,
                        last_activity,
                        expires_at,
                        renewal_count: i % 40,
                        closed_at: (!active).then_some(expires_at),
                        version: i % 40,
                    })
                    .execute(conn)?;
            }
            Ok(())
        })?;
        i = end;
    }
    if analyze {
        conn.batch_execute("ANALYZE;")?;
    }
    println!(
        "seeded {sessions_n} sessions over {} agents in {:.1} s{}",
        agent_ids.len(),
        started.elapsed().as_secs_f64(),
        if analyze { " (then ANALYZE)" } else { "" }
    );
    Ok(())
}
