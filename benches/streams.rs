//! Real-time load harness (not criterion: it drives real server processes and prints numbers):
//!
//! - message-to-stream latency: from sending a message to the `message.created` frame on an
//!   open SSE stream, on one instance (SQLite), and across two instances sharing one
//!   PostgreSQL (posted through one, streamed from the other: NOTIFY/LISTEN);
//! - the server's RSS holding 10,000 idle SSE streams (goal: under 200 MB).
//!
//! Run with `cargo bench --bench streams`. The PostgreSQL part runs when `TEST_DATABASE_URL`
//! (default `postgres://postgres@127.0.0.1:5432/test`) is reachable. The servers run as their
//! own processes (the release binary), so their RSS is theirs alone.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};
use serde_json::{json, Value};

const MESSAGES: usize = 300;
const IDLE_STREAMS: usize = 10_000;
const STREAMS_PER_SESSION: usize = 100;

struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a free port")
        .local_addr()
        .expect("an address")
        .port()
}

/// Starts the release binary on `database_url` with the limits out of the way.
async fn start(database_url: &str) -> Server {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_agent-sessions"))
        .arg("serve")
        .env("DATABASE_URL", database_url)
        .env("AGENT_SESSIONS_BIND", format!("127.0.0.1:{port}"))
        .env("AGENT_SESSIONS_RATE_LIMIT_SESSION_PER_MINUTE", "0")
        .env("AGENT_SESSIONS_RATE_LIMIT_USER_PER_HOUR", "0")
        .env("AGENT_SESSIONS_RATE_LIMIT_AGENT_PER_HOUR", "0")
        .env("AGENT_SESSIONS_MAX_STREAMS_PER_SESSION", "10000")
        .env("AGENT_SESSIONS_MAX_STREAMS_PER_CREDENTIAL", "1000000")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the server starts");
    let server = Server {
        child,
        base: format!("http://127.0.0.1:{port}"),
    };
    let client = reqwest::Client::new();
    for _ in 0..200 {
        if client
            .get(format!("{}/livez", server.base))
            .send()
            .await
            .is_ok()
        {
            return server;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the server did not come up");
}

/// The server's resident memory, in KiB.
fn rss_kib(server: &Server) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.child.id()))
        .expect("the server's status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// Registers an agent and creates `count` sessions of it; returns the session ids.
async fn sessions(client: &reqwest::Client, base: &str, count: usize) -> Vec<String> {
    let agent = uuid::Uuid::new_v4();
    client
        .put(format!("{base}/api/agents/{agent}"))
        .json(&json!({}))
        .send()
        .await
        .expect("agent");
    let mut ids = Vec::new();
    for _ in 0..count {
        let created: Value = client
            .post(format!("{base}/api/messaging/sessions"))
            .json(&json!({ "agentId": agent, "userId": uuid::Uuid::new_v4() }))
            .send()
            .await
            .expect("session")
            .json()
            .await
            .expect("session body");
        ids.push(created["sessionId"].as_str().expect("id").to_owned());
    }
    ids
}

/// An open SSE stream, read frame by frame.
struct Frames {
    response: reqwest::Response,
    buffer: String,
}

impl Frames {
    async fn open(client: &reqwest::Client, base: &str, session: &str) -> Frames {
        let response = client
            .get(format!("{base}/api/messaging/sessions/{session}/events"))
            .header("Last-Event-ID", "1")
            .send()
            .await
            .expect("stream");
        assert!(response.status().is_success(), "{}", response.status());
        Frames {
            response,
            buffer: String::new(),
        }
    }

    /// Reads until a `message.created` frame.
    async fn next_message(&mut self) {
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                if block.contains("event: message.created") {
                    return;
                }
            }
            let chunk = self.response.chunk().await.expect("read").expect("open");
            self.buffer
                .push_str(std::str::from_utf8(&chunk).expect("UTF-8"));
        }
    }
}

/// Sends messages through `writer` and times each until `reader`'s stream shows it.
async fn latency(label: &str, writer: &str, reader: &str) {
    let client = reqwest::Client::new();
    let session = sessions(&client, writer, 1).await.remove(0);
    let mut frames = Frames::open(&client, reader, &session).await;
    let url = format!("{writer}/api/messaging/sessions/{session}/messages");
    let mut samples = Vec::with_capacity(MESSAGES);
    for i in 0..MESSAGES + 20 {
        let started = Instant::now();
        let sent = client
            .post(&url)
            .json(&json!({ "content": format!("message {i}") }))
            .send()
            .await
            .expect("send");
        assert!(sent.status().is_success(), "{}", sent.status());
        frames.next_message().await;
        if i >= 20 {
            samples.push(started.elapsed());
        }
    }
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    println!(
        "{label:<44} p50 {:>7.2} ms   p99 {:>7.2} ms   ({MESSAGES} messages)",
        at(0.50).as_secs_f64() * 1000.0,
        at(0.99).as_secs_f64() * 1000.0
    );
}

/// Opens `IDLE_STREAMS` SSE streams and reports the server's RSS before and after.
async fn idle_streams(server: &Server) {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    let ids = sessions(&client, &server.base, IDLE_STREAMS / STREAMS_PER_SESSION).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss_kib(server);
    let mut open = Vec::with_capacity(IDLE_STREAMS);
    for chunk in ids
        .iter()
        .flat_map(|id| std::iter::repeat_n(id, STREAMS_PER_SESSION))
        .collect::<Vec<_>>()
        .chunks(500)
    {
        let opened = futures::future::join_all(
            chunk
                .iter()
                .map(|id| Frames::open(&client, &server.base, id)),
        )
        .await;
        open.extend(opened);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss_kib(server);
    println!(
        "server RSS, idle: {:>7.1} MB   with {} open SSE streams: {:>7.1} MB   ({:.1} KB per stream; goal: under 200 MB)",
        before as f64 / 1024.0,
        open.len(),
        after as f64 / 1024.0,
        (after.saturating_sub(before)) as f64 / open.len() as f64
    );
    drop(open);
}

/// A fresh schema on the test PostgreSQL, if it can be reached.
fn postgres() -> Option<String> {
    let admin = std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let mut conn = PgConnection::establish(&admin).ok()?;
    let schema = format!("bench_{}", uuid::Uuid::new_v4().simple());
    conn.batch_execute(&format!("CREATE SCHEMA {schema}"))
        .ok()?;
    let sep = if admin.contains('?') { '&' } else { '?' };
    Some(format!("{admin}{sep}options=-csearch_path%3D{schema}"))
}

fn main() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let dir = tempfile::tempdir().expect("temp dir");
        let sqlite = start(&dir.path().join("bench.db").display().to_string()).await;
        latency("latency, one instance (SQLite)", &sqlite.base, &sqlite.base).await;
        match postgres() {
            Some(url) => {
                let (a, b) = (start(&url).await, start(&url).await);
                latency("latency, one instance (PostgreSQL)", &a.base, &a.base).await;
                latency(
                    "latency, across two instances (PostgreSQL)",
                    &a.base,
                    &b.base,
                )
                .await;
            }
            None => println!("PostgreSQL not reachable: its latencies are skipped"),
        }
        idle_streams(&sqlite).await;
    });
}
