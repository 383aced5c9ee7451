//! What one request costs at each layer, side by side in one run, on embedded SQLite:
//!
//! - `get_session/db_read` — the indexed primary-key read alone: the floor, the database.
//! - `get_session/service` — the same read through the service (blocking pool, connection
//!   checkout, row to domain mapping, the expiry check).
//! - `get_session/http` — the whole request: actix-web, routing, JSON, over loopback, in the
//!   open mode (no credential, no key configured).
//! - `get_session/http_api_key` — the same with an API key (`Authorization: Bearer`; the
//!   bootstrap key, whose check is a stored key's minus one hash-map lookup), on an instance
//!   that requires credentials: what authentication costs.
//! - `get_session/http_session_token` — the same with the session's token (a database lookup).
//! - `get_session/http_api_key_rate_limited` — the API key with the rate limits on (high
//!   enough never to refuse): what counting costs.
//! - `send_message/db_write` — the smallest durable write: one `BEGIN IMMEDIATE` transaction
//!   that updates the session row.
//! - `send_message/http` — a whole message POST (lock, read, renew, insert, commit, JSON).
//!
//! Run with `cargo bench`; criterion prints each with its confidence interval.

use std::sync::Arc;

use agent_sessions::clock::SystemClock;
use agent_sessions::config::Settings;
use agent_sessions::db::repo::sessions as repo;
use agent_sessions::db::{write_transaction, DbConnection};
use agent_sessions::domain::{Caller, SessionId};
use agent_sessions::rate_limit::RateLimitSettings;
use agent_sessions::service;
use agent_sessions::state::AppState;
use agent_sessions::Application;
use criterion::{criterion_group, criterion_main, Criterion};
use diesel::connection::SimpleConnection;
use serde_json::{json, Value};

/// Rate limits off: a benchmark sends thousands of requests to one session.
const NO_LIMITS: RateLimitSettings = RateLimitSettings {
    session_per_minute: 0,
    user_per_hour: 0,
    agent_per_hour: 0,
};

/// A running instance on its own SQLite file with one agent and one session.
struct Instance {
    base: String,
    pool: agent_sessions::db::DbPool,
    settings: Settings,
    session: SessionId,
    token: String,
    _dir: tempfile::TempDir,
}

/// Starts an instance; `key` is stored first (so credentials are required) and used for setup.
fn instance(
    rt: &tokio::runtime::Runtime,
    client: &reqwest::Client,
    key: Option<&str>,
    limits: RateLimitSettings,
) -> Instance {
    let dir = tempfile::tempdir().expect("temp dir");
    let settings = Settings {
        bind: "127.0.0.1:0".parse().expect("address"),
        database_url: dir.path().join("bench.db").display().to_string(),
        workers: Some(1),
        rate_limits: limits,
        api_key: key.map(|k| agent_sessions::secret::Secret::from_text(k.to_owned())),
        ..Settings::default()
    };
    let app = rt
        .block_on(async { Application::build(settings.clone(), Arc::new(SystemClock)) })
        .expect("app");
    let base = format!("http://127.0.0.1:{}", app.port());
    let pool = app.pool();
    rt.spawn(app.run_until_stopped());
    let bearer = format!("Bearer {}", key.unwrap_or("none"));
    let with_key = |r: reqwest::RequestBuilder| match key {
        Some(_) => r.header("authorization", &bearer),
        None => r,
    };
    let agent = uuid::Uuid::new_v4();
    let session: Value = rt.block_on(async {
        with_key(client.put(format!("{base}/api/agents/{agent}")))
            .json(&json!({}))
            .send()
            .await
            .expect("put agent");
        with_key(client.post(format!("{base}/api/messaging/sessions")))
            .json(&json!({ "agentId": agent, "userId": uuid::Uuid::new_v4() }))
            .send()
            .await
            .expect("create session")
            .json()
            .await
            .expect("session body")
    });
    Instance {
        base,
        pool,
        settings,
        session: session["sessionId"]
            .as_str()
            .expect("session id")
            .parse()
            .expect("a session id"),
        token: session["sessionToken"]
            .as_str()
            .expect("session token")
            .to_owned(),
        _dir: dir,
    }
}

fn request_path(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let client = reqwest::Client::new();
    let key = "bench-key-0123456789abcdef0123456789";
    let open = instance(&rt, &client, None, NO_LIMITS);
    let keyed = instance(&rt, &client, Some(key), NO_LIMITS);
    let limited = instance(
        &rt,
        &client,
        Some(key),
        RateLimitSettings {
            session_per_minute: 1_000_000_000,
            user_per_hour: 1_000_000_000,
            agent_per_hour: 1_000_000_000,
        },
    );
    let (base, pool, id) = (&open.base, open.pool.clone(), open.session);
    let clock: Arc<dyn agent_sessions::clock::Clock> = Arc::new(SystemClock);
    let stopping = tokio::sync::watch::Sender::new(false);
    let state = AppState {
        pool: pool.clone(),
        auth: Arc::new(
            agent_sessions::auth::Authenticator::new(pool.clone(), None, true).expect("auth"),
        ),
        limits: Arc::new(agent_sessions::rate_limit::RateLimits::new(
            NO_LIMITS,
            clock.clone(),
        )),
        events: Arc::new(agent_sessions::events::EventBus::default()),
        stopping: stopping.subscribe(),
        streams: Arc::new(agent_sessions::events::StreamSlots::new(5, 100)),
        deadlines: Arc::new(agent_sessions::reaper::Deadlines::default()),
        metrics: Arc::new(agent_sessions::metrics::Metrics::new()),
        clock,
        settings: Arc::new(open.settings.clone()),
        started_at: 0,
    };

    let mut group = c.benchmark_group("get_session");
    group.bench_function("db_read", |b| {
        let mut conn = pool.get().expect("connection");
        b.iter(|| repo::find(&mut conn, id).expect("read").expect("row"))
    });
    group.bench_function("service", |b| {
        b.iter(|| {
            rt.block_on(service::sessions::get(&state, &Caller::Open, id))
                .expect("get")
        })
    });
    let mut get = |name: &str, instance: &Instance, credential: Option<&str>| {
        let url = format!(
            "{}/api/messaging/sessions/{}",
            instance.base, instance.session
        );
        let header = credential.map(|c| format!("Bearer {c}"));
        group.bench_function(name, |b| {
            b.iter(|| {
                rt.block_on(async {
                    let mut req = client.get(&url);
                    if let Some(h) = &header {
                        req = req.header("authorization", h);
                    }
                    let resp = req.send().await.expect("get");
                    assert!(resp.status().is_success(), "{}", resp.status());
                    resp.bytes().await.expect("body")
                })
            })
        });
    };
    get("http", &open, None);
    get("http_api_key", &keyed, Some(key));
    get("http_session_token", &keyed, Some(&keyed.token));
    get("http_api_key_rate_limited", &limited, Some(key));
    group.finish();

    let mut group = c.benchmark_group("send_message");
    group.bench_function("db_write", |b| {
        let mut conn = pool.get().expect("connection");
        let sql = format!("UPDATE sessions SET version = version + 1 WHERE id = '{id}'");
        b.iter(|| {
            write_transaction(&mut conn, |c: &mut DbConnection| c.batch_execute(&sql))
                .expect("write")
        })
    });
    let url = format!("{base}/api/messaging/sessions/{id}/messages");
    group.bench_function("http", |b| {
        b.iter(|| {
            rt.block_on(async {
                let resp = client
                    .post(&url)
                    .json(&json!({ "content": "benchmark message" }))
                    .send()
                    .await
                    .expect("post");
                assert!(resp.status().is_success());
                resp.bytes().await.expect("body")
            })
        })
    });
    group.finish();
}

criterion_group!(benches, request_path);
criterion_main!(benches);
