//! Spawns the real app on port 0 against a fresh database and talks to it over HTTP.

use std::sync::{Arc, OnceLock};

use agent_sessions::clock::Clock;
use agent_sessions::clock::ManualClock;
use agent_sessions::config::Settings;
use agent_sessions::db::{DbConnection, DbPool};
use agent_sessions::domain::Scopes;
use agent_sessions::rate_limit::RateLimitSettings;
use agent_sessions::reaper::{ReapReport, Reaper};
use agent_sessions::secret::Secret;
use agent_sessions::service::keys::{self, NewKey};
use agent_sessions::Application;
use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// 2026-01-01T00:00:00Z: every test starts here on its manual clock.
pub const T0: i64 = 1_767_225_600_000;
pub const MINUTE: i64 = 60_000;

/// A fresh, empty database for one test.
pub struct TestDb {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    pg_schema: Option<(String, String)>,
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((admin_url, schema)) = &self.pg_schema {
            if let Ok(mut conn) = PgConnection::establish(admin_url) {
                let _ = conn.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Postgres,
}

fn postgres_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

impl Kind {
    /// `Some(Postgres)` when the test server is reachable. Under `CI=true` a missing server is
    /// a failure, not a skip.
    pub fn postgres() -> Option<Kind> {
        static AVAILABLE: OnceLock<bool> = OnceLock::new();
        let ok = *AVAILABLE.get_or_init(|| match PgConnection::establish(&postgres_url()) {
            Ok(_) => true,
            Err(e) => {
                if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
                    panic!("PostgreSQL is required under CI=true: {e}");
                }
                eprintln!("skipping PostgreSQL tests: {e}");
                false
            }
        });
        ok.then_some(Kind::Postgres)
    }

    pub fn fresh_db(self) -> Arc<TestDb> {
        Arc::new(match self {
            Kind::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = dir.path().join("test.db").display().to_string();
                TestDb {
                    url,
                    _dir: Some(dir),
                    pg_schema: None,
                }
            }
            Kind::Postgres => {
                let admin = postgres_url();
                let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
                let mut conn = PgConnection::establish(&admin).expect("postgres");
                conn.batch_execute(&format!("CREATE SCHEMA {schema}"))
                    .expect("create schema");
                let sep = if admin.contains('?') { '&' } else { '?' };
                TestDb {
                    url: format!("{admin}{sep}options=-csearch_path%3D{schema}"),
                    _dir: None,
                    pg_schema: Some((admin, schema)),
                }
            }
        })
    }
}

/// Runs each listed `async fn(Kind)` once on SQLite and once on PostgreSQL.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::Kind::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(kind) = $crate::helpers::Kind::postgres() {
                        super::$name(kind).await
                    }
                }
            )*
        }
    };
}

pub fn test_settings(db: &TestDb) -> Settings {
    Settings {
        bind: "127.0.0.1:0".parse().unwrap(),
        database_url: db.url.clone(),
        pool_size: 4,
        workers: Some(1),
        // The background reaper never fires during a test; tests run passes explicitly.
        reaper_interval_secs: 3600,
        // Tests send many requests at one instant of the manual clock; the rate-limit tests
        // turn the limits on.
        rate_limits: RateLimitSettings {
            session_per_minute: 0,
            user_per_hour: 0,
            agent_per_hour: 0,
        },
        ..Settings::default()
    }
}

/// The bootstrap key of [`TestApp::spawn_secured`]: every scope.
pub const ADMIN_KEY: &str = "test-admin-key-0123456789abcdef0123456789";

pub struct TestApp {
    address: String,
    client: reqwest::Client,
    /// Sent as `Authorization: Bearer` by every request unless the request says otherwise:
    /// [`ADMIN_KEY`] on a secured app, nothing on an open one.
    credential: Option<String>,
    pub clock: ManualClock,
    pub reaper: Reaper,
    pub pool: DbPool,
    pub db: Arc<TestDb>,
    handle: actix_web::dev::ServerHandle,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl TestApp {
    pub async fn spawn(kind: Kind) -> TestApp {
        Self::spawn_on(kind.fresh_db(), |_| {}).await
    }

    pub async fn spawn_with(kind: Kind, tweak: impl FnOnce(&mut Settings)) -> TestApp {
        Self::spawn_on(kind.fresh_db(), tweak).await
    }

    /// An app that requires credentials: the bootstrap key is [`ADMIN_KEY`], which the
    /// helpers send unless a request says otherwise.
    pub async fn spawn_secured(kind: Kind) -> TestApp {
        Self::spawn_secured_with(kind, |_| {}).await
    }

    pub async fn spawn_secured_with(kind: Kind, tweak: impl FnOnce(&mut Settings)) -> TestApp {
        Self::spawn_secured_on(kind.fresh_db(), tweak).await
    }

    /// A secured app on an existing database (a second instance).
    pub async fn spawn_secured_on(db: Arc<TestDb>, tweak: impl FnOnce(&mut Settings)) -> TestApp {
        let mut app = Self::spawn_on(db, |s| {
            s.api_key = Some(Secret::from_text(ADMIN_KEY.to_owned()));
            tweak(s);
        })
        .await;
        app.credential = Some(ADMIN_KEY.to_owned());
        app
    }

    /// Stores an API key with these scopes (bound to `agent` if given) and returns its secret.
    pub async fn create_key(&self, scopes: &[&str], agent: Option<&str>) -> String {
        let input = NewKey {
            name: Some("test".to_owned()),
            scopes: Scopes::parse(&scopes.join(" ")).expect("scopes"),
            agent_id: agent.map(|a| a.parse().expect("agent id")),
        };
        let pool = self.pool.clone();
        let now = self.clock.now_ms();
        tokio::task::spawn_blocking(move || {
            let mut conn = pool.get().unwrap();
            keys::create(&mut conn, input, now).expect("key created")
        })
        .await
        .unwrap()
        .secret
        .expose()
        .to_owned()
    }

    pub async fn spawn_on(db: Arc<TestDb>, tweak: impl FnOnce(&mut Settings)) -> TestApp {
        Self::spawn_with_clock(db, ManualClock::new(T0), tweak).await
    }

    /// An app on `clock`: a [`ManualClock::following`] one lets its scheduler act on the
    /// deadlines the test moves the clock past (several apps may share one).
    pub async fn spawn_with_clock(
        db: Arc<TestDb>,
        clock: ManualClock,
        tweak: impl FnOnce(&mut Settings),
    ) -> TestApp {
        let mut settings = test_settings(&db);
        tweak(&mut settings);
        let app = Application::build(settings, Arc::new(clock.clone())).expect("app builds");
        let address = format!("http://127.0.0.1:{}", app.port());
        let reaper = app.reaper();
        let pool = app.pool();
        let handle = app.handle();
        let task = tokio::spawn(app.run_until_stopped());
        TestApp {
            address,
            client: reqwest::Client::new(),
            credential: None,
            clock,
            reaper,
            pool,
            db,
            handle,
            task,
        }
    }

    /// The server's base URL, e.g. `http://127.0.0.1:41234`.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Stops the server (draining requests) and waits for it and its reaper to finish.
    pub async fn stop(self) -> Arc<TestDb> {
        self.handle.stop(true).await;
        let _ = self.task.await;
        self.db
    }

    /// One reaper pass at the manual clock's time.
    pub async fn reap(&self) -> ReapReport {
        let reaper = self.reaper.clone();
        tokio::task::spawn_blocking(move || reaper.run_once())
            .await
            .unwrap()
            .expect("reaper pass")
    }

    /// Runs raw SQL on the app's database (to break it in failure tests).
    pub async fn execute_sql(&self, sql: &'static str) {
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = pool.get().unwrap();
            let conn: &mut DbConnection = &mut conn;
            conn.batch_execute(sql).unwrap();
        })
        .await
        .unwrap();
    }

    /// How many messages are stored, in any session (to prove deletion).
    pub async fn stored_messages(&self) -> i64 {
        use diesel::{QueryDsl, RunQueryDsl};
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = pool.get().unwrap();
            let conn: &mut DbConnection = &mut conn;
            agent_sessions::db::schema::messages::table
                .count()
                .get_result::<i64>(conn)
                .unwrap()
        })
        .await
        .unwrap()
    }

    /// Sends a message as the session's user; returns the 201 body.
    pub async fn message(&self, session_id: &str, content: &str) -> Value {
        let (status, body) = self
            .post(paths::messages(session_id), json!({ "content": content }))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body
    }

    /// Starts a request to `path`; add headers or a body, then `.send()` it.
    pub fn call(&self, method: Method, path: impl AsRef<str>) -> Call {
        let url = format!("{}{}", self.address, path.as_ref());
        Call {
            request: self.client.request(method, url),
            allow_non_json: false,
            credential: self.credential.clone(),
        }
    }

    /// GET; the status and JSON body (`Null` if empty). Like `post`, `put`, `patch`, `delete`.
    pub async fn get(&self, path: impl AsRef<str>) -> (StatusCode, Value) {
        self.call(Method::GET, path).send().await.status_and_body()
    }

    pub async fn post(&self, path: impl AsRef<str>, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path)
            .json(body)
            .send()
            .await
            .status_and_body()
    }

    /// A POST without a body (renew, heartbeat).
    pub async fn post_empty(&self, path: impl AsRef<str>) -> (StatusCode, Value) {
        self.call(Method::POST, path).send().await.status_and_body()
    }

    pub async fn patch(&self, path: impl AsRef<str>, body: Value) -> (StatusCode, Value) {
        self.call(Method::PATCH, path)
            .json(body)
            .send()
            .await
            .status_and_body()
    }

    pub async fn put(&self, path: impl AsRef<str>, body: Value) -> (StatusCode, Value) {
        self.call(Method::PUT, path)
            .json(body)
            .send()
            .await
            .status_and_body()
    }

    pub async fn delete(&self, path: impl AsRef<str>) -> (StatusCode, Value) {
        self.call(Method::DELETE, path)
            .send()
            .await
            .status_and_body()
    }

    /// Registers an agent with the given timeout overrides and returns its id.
    pub async fn agent_with(&self, timeout_config: Value) -> String {
        let id = uuid::Uuid::new_v4().to_string();
        let (status, body) = self
            .put(
                paths::agent(&id),
                json!({ "name": "test agent", "timeoutConfig": timeout_config }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        id
    }

    /// Registers an agent without timeout overrides and returns its id.
    pub async fn agent(&self) -> String {
        self.agent_with(json!({})).await
    }

    /// Creates a session (201 expected) and returns its body.
    pub async fn session_with(&self, agent_id: &str, extra: Value) -> Value {
        let mut body = json!({ "agentId": agent_id, "userId": uuid::Uuid::new_v4() });
        if let (Some(obj), Some(more)) = (body.as_object_mut(), extra.as_object()) {
            obj.extend(more.clone());
        }
        let (status, created) = self.post(paths::sessions(), body).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        created
    }

    /// A new session of a new default agent; returns the session id.
    pub async fn session(&self) -> String {
        let agent = self.agent().await;
        id_of(&self.session_with(&agent, json!({})).await)
    }

    /// How many sessions the list counts for `status` (`active`, `expired` or `all`).
    pub async fn session_count(&self, status: &str) -> i64 {
        let (code, body) = self
            .get(paths::sessions().query(format!("status={status}")))
            .await;
        assert_eq!(code, StatusCode::OK, "{body}");
        body["total"].as_i64().unwrap()
    }
}

/// A request being built by [`TestApp::call`].
#[must_use = "a request does nothing until it is sent"]
pub struct Call {
    request: reqwest::RequestBuilder,
    allow_non_json: bool,
    credential: Option<String>,
}

impl Call {
    /// Sends `Authorization: Bearer <secret>` (an API key or a session token) instead of the
    /// app's default credential.
    pub fn bearer(mut self, secret: &str) -> Call {
        self.credential = Some(secret.to_owned());
        self
    }

    /// Sends no `Authorization` header (add `X-API-KEY` with [`Call::header`] if wanted).
    pub fn without_credential(mut self) -> Call {
        self.credential = None;
        self
    }

    /// Adds a request header, e.g. `X-Debug` or `Idempotency-Key`.
    pub fn header(mut self, name: &str, value: &str) -> Call {
        self.request = self.request.header(name, value);
        self
    }

    /// A JSON body (and its content type).
    pub fn json(mut self, body: Value) -> Call {
        self.request = self.request.json(&body);
        self
    }

    /// A raw body sent as-is with the given content type (for malformed or non-JSON bodies).
    pub fn body(mut self, content_type: &str, body: impl Into<String>) -> Call {
        self.request = self
            .request
            .header("content-type", content_type)
            .body(body.into());
        self
    }

    /// Accepts an answer that is not JSON (the docs pages). Without it a non-empty answer
    /// must be JSON.
    pub fn allow_non_json(mut self) -> Call {
        self.allow_non_json = true;
        self
    }

    /// Sends the request and returns the answer unread (an event stream).
    pub async fn open(self) -> reqwest::Response {
        let request = match &self.credential {
            Some(secret) => self.request.bearer_auth(secret),
            None => self.request,
        };
        request.send().await.expect("request sent")
    }

    /// Sends the request and reads the whole answer.
    pub async fn send(self) -> Reply {
        let allow_non_json = self.allow_non_json;
        let resp = self.open().await;
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("body");
        let ct = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let is_json = ct.starts_with("application/json");
        let body = if text.is_empty() || (allow_non_json && !is_json) {
            Value::Null
        } else {
            assert!(is_json, "non-JSON body ({ct}): {text}");
            serde_json::from_str(&text).expect("JSON body")
        };
        Reply {
            status,
            headers,
            body,
            text,
        }
    }
}

/// What the server answered.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    /// The parsed JSON body; `Null` when the body is empty, or is not JSON and that was allowed.
    pub body: Value,
    /// The body as received.
    pub text: String,
}

impl Reply {
    fn status_and_body(self) -> (StatusCode, Value) {
        (self.status, self.body)
    }

    /// Asserts the error body shape and code (see [`assert_error`]).
    pub fn assert_error(&self, expected: StatusCode, code: &str) {
        assert_error(self.status, &self.body, expected, code);
    }
}

/// The `sessionId` of a session body.
pub fn id_of(session: &Value) -> String {
    session["sessionId"].as_str().expect("sessionId").to_owned()
}

/// Parses an RFC 3339 timestamp into unix milliseconds.
pub fn ms(value: &Value) -> i64 {
    chrono::DateTime::parse_from_rfc3339(value.as_str().expect("timestamp string"))
        .expect("RFC 3339")
        .timestamp_millis()
}

/// Asserts the error body shape and code.
pub fn assert_error(status: StatusCode, body: &Value, expected: StatusCode, code: &str) {
    assert_eq!(status, expected, "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

/// The service's routes, so that tests name a route instead of spelling its URL.
pub mod paths {
    use std::fmt::Display;

    /// A path on the test server, e.g. `/api/agents/{id}`; pass it (or `&` it) to a request.
    #[derive(Debug, Clone)]
    pub struct ApiPath(String);

    impl ApiPath {
        /// The path with a query string: `sessions().query("status=all")`.
        pub fn query(&self, query: impl Display) -> ApiPath {
            ApiPath(format!("{}?{query}", self.0))
        }

        /// The path one segment deeper.
        fn join(self, segment: &str) -> ApiPath {
            ApiPath(format!("{}/{segment}", self.0))
        }
    }

    impl AsRef<str> for ApiPath {
        fn as_ref(&self) -> &str {
            &self.0
        }
    }

    /// `/api/messaging/sessions`: create and list.
    pub fn sessions() -> ApiPath {
        ApiPath("/api/messaging/sessions".to_owned())
    }

    /// `/api/messaging/sessions/health`.
    pub fn health() -> ApiPath {
        sessions().join("health")
    }

    /// One session: get and delete. Any `id` goes, valid or not.
    pub fn session(id: impl Display) -> ApiPath {
        sessions().join(&id.to_string())
    }

    /// A session's messages: send and list.
    pub fn messages(id: impl Display) -> ApiPath {
        session(id).join("messages")
    }

    /// Renews a session (POST).
    pub fn renew(id: impl Display) -> ApiPath {
        session(id).join("renew")
    }

    /// A session's heartbeat (POST).
    pub fn heartbeat(id: impl Display) -> ApiPath {
        session(id).join("heartbeat")
    }

    /// A session's timeout configuration (PATCH).
    pub fn timeout(id: impl Display) -> ApiPath {
        session(id).join("timeout")
    }

    /// Issues a new session token (POST).
    pub fn token(id: impl Display) -> ApiPath {
        session(id).join("token")
    }

    /// `/api/agents`: list.
    pub fn agents() -> ApiPath {
        ApiPath("/api/agents".to_owned())
    }

    /// One agent: put, get and delete.
    pub fn agent(id: impl Display) -> ApiPath {
        agents().join(&id.to_string())
    }

    /// A session's participants: add (POST) and remove (DELETE with a body).
    pub fn participants(id: impl Display) -> ApiPath {
        session(id).join("participants")
    }

    /// One participant of a session: remove (DELETE).
    pub fn participant(id: impl Display, user: impl Display) -> ApiPath {
        participants(id).join(&user.to_string())
    }

    /// Pauses a session (POST).
    pub fn pause(id: impl Display) -> ApiPath {
        session(id).join("pause")
    }

    /// Resumes a paused session (POST).
    pub fn resume(id: impl Display) -> ApiPath {
        session(id).join("resume")
    }

    /// Closes a session (POST, optional body `{"reason"}`).
    pub fn close(id: impl Display) -> ApiPath {
        session(id).join("close")
    }

    /// A session's transcript: the session and its messages (GET).
    pub fn transcript(id: impl Display) -> ApiPath {
        session(id).join("transcript")
    }

    /// A session's conversation state (PATCH).
    pub fn state(id: impl Display) -> ApiPath {
        session(id).join("state")
    }

    /// A session's event log, long-polled (GET, with a query).
    pub fn watch(id: impl Display) -> ApiPath {
        session(id).join("watch")
    }

    /// A session's event log as Server-Sent Events (GET).
    pub fn events(id: impl Display) -> ApiPath {
        session(id).join("events")
    }
}

/// Server-Sent Events as a client reads them.
pub mod sse {
    use std::time::Duration;

    use reqwest::StatusCode;
    use serde_json::Value;

    /// One event of a stream: its `id:`, `event:` and parsed `data:`.
    #[derive(Debug)]
    pub struct Frame {
        pub id: i64,
        pub event: String,
        pub data: Value,
    }

    /// An open event stream, read frame by frame.
    pub struct EventStream {
        response: reqwest::Response,
        buffer: String,
    }

    impl EventStream {
        /// A 200 `text/event-stream` answer, to read.
        pub fn of(response: reqwest::Response) -> EventStream {
            assert_eq!(response.status(), StatusCode::OK);
            let content_type = response.headers()["content-type"].to_str().unwrap();
            assert!(
                content_type.starts_with("text/event-stream"),
                "{content_type}"
            );
            EventStream {
                response,
                buffer: String::new(),
            }
        }

        /// Opens `path` as `app`'s default credential (and with `header` if given).
        pub async fn open(
            app: &super::TestApp,
            path: impl AsRef<str>,
            header: Option<(&str, &str)>,
        ) -> EventStream {
            let mut call = app.call(reqwest::Method::GET, path);
            if let Some((name, value)) = header {
                call = call.header(name, value);
            }
            EventStream::of(call.open().await)
        }

        /// The next event must be `event` at position `id` (its `id:` and its `cursor`).
        pub async fn expect(&mut self, id: i64, event: &str) -> Frame {
            let frame = self
                .next()
                .await
                .unwrap_or_else(|| panic!("the stream ended before event {id} ({event})"));
            assert_eq!((frame.id, frame.event.as_str()), (id, event), "{frame:?}");
            assert_eq!(frame.data["cursor"], id, "{frame:?}");
            assert_eq!(frame.data["type"], event, "{frame:?}");
            frame
        }

        /// The next event (keep-alive comments skipped); `None` once the stream has ended.
        pub async fn next(&mut self) -> Option<Frame> {
            loop {
                if let Some(end) = self.buffer.find("\n\n") {
                    let block: String = self.buffer.drain(..end + 2).collect();
                    if block.starts_with(':') {
                        continue;
                    }
                    let field = |name: &str| {
                        block
                            .lines()
                            .find_map(|l| l.strip_prefix(name))
                            .unwrap_or_else(|| panic!("no {name} in {block:?}"))
                            .to_owned()
                    };
                    return Some(Frame {
                        id: field("id: ").parse().expect("a numeric id"),
                        event: field("event: "),
                        data: serde_json::from_str(&field("data: ")).expect("JSON data"),
                    });
                }
                let chunk = tokio::time::timeout(Duration::from_secs(5), self.response.chunk())
                    .await
                    .expect("an event or the end within 5 s")
                    .expect("the stream reads");
                match chunk {
                    Some(bytes) => self.buffer.push_str(std::str::from_utf8(&bytes).unwrap()),
                    None => return None,
                }
            }
        }
    }
}

/// A timestamp as the API writes it: RFC 3339, milliseconds, `Z`.
pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .expect("a valid instant")
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The `sessionToken` of a create answer.
pub fn session_token(created: &Value) -> String {
    created["sessionToken"]
        .as_str()
        .unwrap_or_else(|| panic!("a created session has a sessionToken: {created}"))
        .to_owned()
}

/// The `type` of each event of a log, in order.
pub fn event_types(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["type"].as_str().expect("an event type").to_owned())
        .collect()
}

/// The events of `log` of type `kind`.
pub fn events_of<'a>(log: &'a [Value], kind: &str) -> Vec<&'a Value> {
    log.iter().filter(|e| e["type"] == kind).collect()
}

impl TestApp {
    /// A session's whole event log, oldest first, read with the long-poll route without
    /// waiting (`cursor=0&timeout=0`), with the app's default credential.
    pub async fn event_log(&self, session_id: &str) -> Vec<Value> {
        let (status, body) = self
            .get(paths::watch(session_id).query("cursor=0&limit=500&timeout=0"))
            .await;
        assert_eq!(status, StatusCode::OK, "watch {session_id}: {body}");
        body["events"].as_array().expect("events").clone()
    }

    /// DELETE with a JSON body; the status and JSON body.
    pub async fn delete_with(&self, path: impl AsRef<str>, body: Value) -> (StatusCode, Value) {
        self.call(Method::DELETE, path)
            .json(body)
            .send()
            .await
            .status_and_body()
    }
}
