//! Crash safety: under concurrent message load the server process is killed with SIGKILL,
//! restarted on the same database, and every message it acknowledged (201) must be there
//! exactly once — same id, same `createdAt`, in the order it was sent, with its
//! `message.created` event in the session's log and the agent's feed. Half of the senders send
//! an `Idempotency-Key`; their request cut by the kill is retried after the restart and must
//! be stored exactly once too (replayed if it had been stored). Once on a fresh SQLite file,
//! once on a fresh PostgreSQL schema (`TEST_DATABASE_URL`; skipped when unreachable, except
//! under `CI=true`).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::sync::Notify;
use tokio::task::JoinSet;

/// Sessions written to at the same time.
const SESSIONS: usize = 8;
/// Concurrent senders, `SENDERS / SESSIONS` per session; the first `SESSIONS` send an
/// `Idempotency-Key`.
const SENDERS: usize = 16;
/// Acknowledged messages (across all senders) after which the server is killed.
const KILL_AFTER: usize = 300;
/// The longest any step may take before the test fails.
const WAIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_keeps_every_acknowledged_message_across_kill_9() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = dir.path().join("crash.db").display().to_string();
    crash_and_check("sqlite", &url, dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_keeps_every_acknowledged_message_across_kill_9() {
    let Some(schema) = PgSchema::create() else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    crash_and_check("postgres", &schema.url, dir.path()).await;
}

/// A fresh PostgreSQL schema, dropped at the end.
struct PgSchema {
    admin_url: String,
    name: String,
    /// The database URL with the schema as `search_path`.
    url: String,
}

impl PgSchema {
    /// `None` (with a message) when PostgreSQL is unreachable; under `CI=true` that fails.
    fn create() -> Option<PgSchema> {
        let admin_url = std::env::var("TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
        let mut conn = match PgConnection::establish(&admin_url) {
            Ok(conn) => conn,
            Err(e) => {
                if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
                    panic!("PostgreSQL is required under CI=true: {e}");
                }
                eprintln!("skipping the PostgreSQL crash test: {e}");
                return None;
            }
        };
        let name = format!("crash_{}", uuid::Uuid::new_v4().simple());
        conn.batch_execute(&format!("CREATE SCHEMA {name}"))
            .expect("create schema");
        let sep = if admin_url.contains('?') { '&' } else { '?' };
        let url = format!("{admin_url}{sep}options=-csearch_path%3D{name}");
        Some(PgSchema {
            admin_url,
            name,
            url,
        })
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        if let Ok(mut conn) = PgConnection::establish(&self.admin_url) {
            let _ = conn.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name));
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `serve` process in the open loopback mode with the rate limits off; its stdout and
/// stderr go to `log`. Killed (SIGKILL) when dropped.
struct Server {
    child: Child,
    base: String,
    log: PathBuf,
}

impl Server {
    /// Starts the server on a free port and waits until `/readyz` answers 200.
    async fn start(client: &reqwest::Client, database_url: &str, log: PathBuf) -> Server {
        let port = free_port();
        let out = std::fs::File::create(&log).expect("log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_agent-sessions"));
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("AGENT_SESSIONS_") {
                cmd.env_remove(key);
            }
        }
        cmd.arg("serve")
            .current_dir(env!("CARGO_TARGET_TMPDIR"))
            .env("DATABASE_URL", database_url)
            .env("AGENT_SESSIONS_BIND", format!("127.0.0.1:{port}"))
            .env("RUST_LOG", "warn")
            .env("AGENT_SESSIONS_RATE_LIMIT_SESSION_PER_MINUTE", "0")
            .env("AGENT_SESSIONS_RATE_LIMIT_USER_PER_HOUR", "0")
            .env("AGENT_SESSIONS_RATE_LIMIT_AGENT_PER_HOUR", "0")
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log file"))
            .stderr(out);
        let mut server = Server {
            child: cmd.spawn().expect("server starts"),
            base: format!("http://127.0.0.1:{port}"),
            log,
        };
        let started = Instant::now();
        loop {
            let ready = client
                .get(format!("{}/readyz", server.base))
                .timeout(Duration::from_secs(1))
                .send()
                .await;
            if ready.is_ok_and(|r| r.status() == StatusCode::OK) {
                return server;
            }
            if let Some(status) = server.child.try_wait().expect("server status") {
                panic!(
                    "the server exited ({status}) at start-up:\n{}",
                    server.log()
                );
            }
            assert!(
                started.elapsed() < WAIT,
                "the server was not ready within {WAIT:?}:\n{}",
                server.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Everything the process printed so far.
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `kill -9`, and reaps the process.
    fn kill_9(&mut self) {
        self.child.kill().expect("SIGKILL");
        let status = self.child.wait().expect("reaped");
        assert!(!status.success(), "killed, not exited: {status}");
    }

    /// A URL on this server.
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends a request; the status and the JSON body (`Null` when empty).
async fn call(request: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let resp = request.send().await.expect("request answered");
    let status = resp.status();
    let text = resp.text().await.expect("body read");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
    };
    (status, body)
}

/// Unix milliseconds of an RFC 3339 timestamp.
fn ms(value: &Value) -> i64 {
    chrono::DateTime::parse_from_rfc3339(value.as_str().expect("a timestamp string"))
        .unwrap_or_else(|e| panic!("{e}: {value}"))
        .timestamp_millis()
}

/// What one sender did before the kill.
#[derive(Debug)]
struct SenderLog {
    sender: usize,
    session: usize,
    keyed: bool,
    /// The contents of every attempt, in order (each attempt's content is unique).
    attempts: Vec<String>,
    /// Attempt number → the 201 body (`Null` if the head arrived but the body was cut).
    acked: HashMap<usize, Value>,
    /// The attempt that failed because of the kill: it may or may not be stored.
    cut: Option<usize>,
}

/// Sends messages one after the other until a request fails, which must be because the server
/// was killed. Any answer but a 201 fails the test.
#[allow(clippy::too_many_arguments)]
async fn sender(
    client: reqwest::Client,
    url: String,
    sender: usize,
    session: usize,
    run: String,
    acked_total: Arc<AtomicUsize>,
    threshold: Arc<Notify>,
    killed: Arc<AtomicBool>,
) -> Result<SenderLog, String> {
    let keyed = sender < SESSIONS;
    let mut log = SenderLog {
        sender,
        session,
        keyed,
        attempts: Vec::new(),
        acked: HashMap::new(),
        cut: None,
    };
    loop {
        let n = log.attempts.len();
        let content = format!("{run}-s{sender}-n{n}");
        log.attempts.push(content.clone());
        let mut request = client.post(&url).json(&json!({ "content": content }));
        if keyed {
            request = request.header("Idempotency-Key", &content);
        }
        let resp = match request.send().await {
            Ok(resp) => resp,
            Err(_) if killed.load(Ordering::SeqCst) => {
                log.cut = Some(n);
                return Ok(log);
            }
            Err(e) => {
                return Err(format!(
                    "sender {sender}: {content} failed before the kill: {e}"
                ))
            }
        };
        let status = resp.status();
        let replayed = resp.headers().contains_key("idempotent-replayed");
        if status != StatusCode::CREATED || replayed {
            let body = resp.text().await.unwrap_or_default();
            return Err(format!(
                "sender {sender}: {content} answered {status} (replayed: {replayed}): {body}"
            ));
        }
        // The 201 head is the acknowledgment; a body cut by the kill leaves only the id unknown.
        let body = match resp.json::<Value>().await {
            Ok(body) => body,
            Err(_) if killed.load(Ordering::SeqCst) => Value::Null,
            Err(e) => return Err(format!("sender {sender}: {content}: unreadable 201: {e}")),
        };
        if !body.is_null() && body["content"] != content.as_str() {
            return Err(format!("sender {sender}: sent {content}, 201 says {body}"));
        }
        log.acked.insert(n, body);
        if acked_total.fetch_add(1, Ordering::SeqCst) + 1 == KILL_AFTER {
            threshold.notify_one();
        }
    }
}

async fn crash_and_check(backend: &str, database_url: &str, dir: &Path) {
    let t0 = Instant::now();
    let client = reqwest::Client::builder()
        .timeout(WAIT)
        .build()
        .expect("client");
    let mut server = Server::start(&client, database_url, dir.join("server-1.log")).await;

    let agent = uuid::Uuid::new_v4().to_string();
    let (status, body) = call(
        client
            .put(server.url(&format!("/api/agents/{agent}")))
            .json(&json!({"name": "crash"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let mut sessions = Vec::new();
    for _ in 0..SESSIONS {
        let (status, body) = call(
            client
                .post(server.url("/api/messaging/sessions"))
                .json(&json!({"agentId": agent, "userId": uuid::Uuid::new_v4()})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        sessions.push(body["sessionId"].as_str().expect("sessionId").to_owned());
    }

    // Load, and the kill while it is in flight.
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let acked_total = Arc::new(AtomicUsize::new(0));
    let threshold = Arc::new(Notify::new());
    let killed = Arc::new(AtomicBool::new(false));
    let mut senders = JoinSet::new();
    let load_started = Instant::now();
    for s in 0..SENDERS {
        let session = s % SESSIONS;
        senders.spawn(sender(
            client.clone(),
            server.url(&format!(
                "/api/messaging/sessions/{}/messages",
                sessions[session]
            )),
            s,
            session,
            run.clone(),
            acked_total.clone(),
            threshold.clone(),
            killed.clone(),
        ));
    }
    tokio::select! {
        _ = threshold.notified() => {}
        done = senders.join_next() => panic!(
            "a sender stopped before the kill: {done:?}\n{}",
            server.log()
        ),
        _ = tokio::time::sleep(WAIT) => panic!(
            "only {} of {KILL_AFTER} messages acknowledged within {WAIT:?}\n{}",
            acked_total.load(Ordering::SeqCst),
            server.log()
        ),
    }
    killed.store(true, Ordering::SeqCst);
    server.kill_9();
    let load_time = load_started.elapsed();
    let log_before = server.log();
    let mut logs = Vec::new();
    let joined = tokio::time::timeout(WAIT, async {
        while let Some(done) = senders.join_next().await {
            logs.push(
                done.expect("sender task")
                    .unwrap_or_else(|e| panic!("{e}\n{log_before}")),
            );
        }
    })
    .await;
    assert!(
        joined.is_ok(),
        "senders still running {WAIT:?} after the kill"
    );
    logs.sort_by_key(|l| l.sender);
    let acked: usize = logs.iter().map(|l| l.acked.len()).sum();
    let cut = logs.iter().filter(|l| l.cut.is_some()).count();
    assert_eq!(
        cut, SENDERS,
        "every sender ends on a request cut by the kill"
    );

    // Restart on the same database: everything acknowledged is there.
    let server = Server::start(&client, database_url, dir.join("server-2.log")).await;
    let stored = check(&client, &server, &agent, &sessions, &logs).await;
    let cut_stored = logs
        .iter()
        .filter(|l| stored.contains_key(&l.attempts[l.cut.unwrap()]))
        .count();

    // The keyed senders retry their cut request with the same key: stored exactly once.
    let mut replays = 0;
    for log in logs.iter_mut().filter(|l| l.keyed) {
        let n = log.cut.take().expect("a cut attempt");
        let content = log.attempts[n].clone();
        let resp = client
            .post(server.url(&format!(
                "/api/messaging/sessions/{}/messages",
                sessions[log.session]
            )))
            .header("Idempotency-Key", &content)
            .json(&json!({ "content": content }))
            .send()
            .await
            .expect("retry answered");
        let status = resp.status();
        let replayed = resp.headers().contains_key("idempotent-replayed");
        let body: Value = resp.json().await.expect("retry body");
        assert_eq!(status, StatusCode::CREATED, "retry of {content}: {body}");
        assert_eq!(body["content"], content.as_str(), "{body}");
        match stored.get(&content) {
            Some(message) => {
                assert!(
                    replayed,
                    "{content} was stored before the kill: the retry replays"
                );
                assert_eq!(body["id"], message["id"], "{content}: replayed id");
                assert_eq!(body["createdAt"], message["createdAt"], "{content}");
                replays += 1;
            }
            None => assert!(!replayed, "{content} was not stored: the retry stores it"),
        }
        log.acked.insert(n, body);
    }
    let after_retries = check(&client, &server, &agent, &sessions, &logs).await;
    assert_eq!(
        after_retries.len(),
        stored.len() + (SESSIONS - replays),
        "the retries stored exactly the cut attempts that were missing"
    );

    eprintln!(
        "{backend}: {acked} acknowledged in {load_time:?} before the kill, {} stored after the \
         restart ({cut_stored} of {SENDERS} cut requests had been stored; {replays} of \
         {SESSIONS} keyed retries replayed); {:?} in all",
        stored.len(),
        t0.elapsed()
    );
    let log = server.log();
    assert!(
        !log.contains("ERROR") && !log.contains("panicked"),
        "the restarted server logged an error:\n{log}"
    );
}

/// Reads everything back and checks it against what the senders saw; returns the stored
/// messages by content.
async fn check(
    client: &reqwest::Client,
    server: &Server,
    agent: &str,
    sessions: &[String],
    logs: &[SenderLog],
) -> HashMap<String, Value> {
    // content → (sender, attempt)
    let mut attempts = HashMap::new();
    for log in logs {
        for (n, content) in log.attempts.iter().enumerate() {
            attempts.insert(content.as_str(), (log, n));
        }
    }
    let mut stored: HashMap<String, Value> = HashMap::new();
    let mut session_events = 0;
    let mut message_ids = HashSet::new();
    for (index, session) in sessions.iter().enumerate() {
        let (status, info) =
            call(client.get(server.url(&format!("/api/messaging/sessions/{session}")))).await;
        assert_eq!(status, StatusCode::OK, "session {session}: {info}");
        assert_eq!(info["status"], "active", "{info}");

        let messages = messages(client, server, session).await;
        let mut position = HashMap::new();
        for (i, m) in messages.iter().enumerate() {
            let content = m["content"].as_str().expect("content").to_owned();
            let Some((log, _)) = attempts.get(content.as_str()) else {
                panic!("session {session}: a message nobody sent: {m}");
            };
            assert_eq!(log.session, index, "{content} stored in the wrong session");
            assert!(
                message_ids.insert(m["id"].clone()),
                "two messages with one id: {m}"
            );
            position.insert(content.clone(), i);
            let again = stored.insert(content.clone(), m.clone());
            assert!(again.is_none(), "{content} stored twice:\n{again:?}\n{m}");
        }
        for log in logs.iter().filter(|l| l.session == index) {
            let mut last = None;
            for (n, content) in log.attempts.iter().enumerate() {
                let Some(ack) = log.acked.get(&n) else {
                    let at = position.get(content);
                    assert!(
                        at.is_none() || log.cut == Some(n),
                        "{content} was never acknowledged nor cut, yet stored"
                    );
                    if let Some(&at) = at {
                        assert!(
                            last < Some(at),
                            "{content} stored before an earlier message"
                        );
                    }
                    continue;
                };
                let at = *position
                    .get(content)
                    .unwrap_or_else(|| panic!("acknowledged message lost: {ack}"));
                assert!(
                    last < Some(at),
                    "sender {}: {content} stored before its predecessor",
                    log.sender
                );
                last = Some(at);
                if !ack.is_null() {
                    let m = &messages[at];
                    assert_eq!(m["id"], ack["id"], "{content}: id");
                    assert_eq!(m["createdAt"], ack["createdAt"], "{content}: createdAt");
                    assert_eq!(m["authorId"], ack["authorId"], "{content}: authorId");
                    let status = &ack["sessionStatus"];
                    assert!(
                        info["renewalCount"].as_i64() >= status["renewalCount"].as_i64(),
                        "{content} acknowledged renewal {}, the session has {}",
                        status["renewalCount"],
                        info["renewalCount"]
                    );
                    assert!(
                        ms(&info["expiresAt"]) >= ms(&status["expiresAt"]),
                        "{content}"
                    );
                }
            }
        }

        // The session's log: gap-free, one message.created per message in the same order,
        // one session.renewed per renewal.
        let events = events(
            client,
            server,
            &format!("/api/messaging/sessions/{session}"),
        )
        .await;
        session_events += events.len();
        assert_eq!(
            events.first().map(|e| &e["type"]),
            Some(&json!("session.created"))
        );
        let logged: Vec<&Value> = events
            .iter()
            .filter(|e| e["type"] == "message.created")
            .map(|e| &e["data"]["id"])
            .collect();
        let ids: Vec<&Value> = messages.iter().map(|m| &m["id"]).collect();
        assert_eq!(logged, ids, "session {session}: message.created events");
        let renewals = events
            .iter()
            .filter(|e| e["type"] == "session.renewed")
            .count();
        assert_eq!(
            Some(renewals as i64),
            info["renewalCount"].as_i64(),
            "session {session}: session.renewed events"
        );
    }

    // The agent's feed: gap-free, every event of every session once.
    let feed = events(client, server, &format!("/api/agents/{agent}")).await;
    assert_eq!(
        feed.len(),
        session_events,
        "the agent feed holds every session event"
    );
    let logged: HashSet<&Value> = feed
        .iter()
        .filter(|e| e["type"] == "message.created")
        .map(|e| &e["data"]["id"])
        .collect();
    assert_eq!(
        logged.len(),
        message_ids.len(),
        "message.created in the agent feed"
    );
    assert!(logged.iter().all(|id| message_ids.contains(*id)));
    stored
}

/// Every message of a session, oldest first, paging `before` from the newest; checks that
/// `createdAt` strictly decreases through the pages.
async fn messages(client: &reqwest::Client, server: &Server, session: &str) -> Vec<Value> {
    let mut all: Vec<Value> = Vec::new();
    let mut before: Option<i64> = None;
    for _ in 0..1000 {
        let mut url = server.url(&format!(
            "/api/messaging/sessions/{session}/messages?limit=100"
        ));
        if let Some(b) = before {
            url.push_str(&format!("&before={b}"));
        }
        let (status, body) = call(client.get(url)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let page = body["messages"].as_array().expect("messages");
        for m in page {
            let at = ms(&m["createdAt"]);
            if let Some(newer) = all.last() {
                assert!(
                    ms(&newer["createdAt"]) > at,
                    "not newest first:\n{newer}\n{m}"
                );
            }
            all.push(m.clone());
        }
        if !body["hasMore"].as_bool().expect("hasMore") {
            all.reverse();
            return all;
        }
        assert!(!page.is_empty(), "hasMore with an empty page: {body}");
        let cursor = body["cursors"]["before"].as_i64().expect("cursors.before");
        assert_eq!(cursor, ms(&page[page.len() - 1]["createdAt"]), "{body}");
        before = Some(cursor);
    }
    panic!("session {session}: more than 1000 pages");
}

/// Every event of a feed (`{prefix}/watch`), checking the cursors count 1, 2, 3 … without gaps.
async fn events(client: &reqwest::Client, server: &Server, prefix: &str) -> Vec<Value> {
    let mut all: Vec<Value> = Vec::new();
    for _ in 0..1000 {
        let cursor = all.len();
        let (status, body) = call(client.get(server.url(&format!(
            "{prefix}/watch?cursor={cursor}&timeout=0&limit=500"
        ))))
        .await;
        assert_eq!(status, StatusCode::OK, "{prefix}: {body}");
        let page = body["events"].as_array().expect("events");
        if page.is_empty() {
            assert_eq!(body["cursor"], cursor, "{prefix}: {body}");
            return all;
        }
        for e in page {
            assert_eq!(e["cursor"], all.len() + 1, "{prefix}: a gap before {e}");
            all.push(e.clone());
        }
        assert_eq!(body["cursor"], all.len(), "{prefix}: {body}");
    }
    panic!("{prefix}: more than 1000 pages of events");
}
