//! What one request costs at each layer, side by side in one run, on embedded SQLite:
//!
//! - `get_session/db_read` — the indexed primary-key read alone: the floor, the database.
//! - `get_session/service` — the same read through the service (blocking pool, connection
//!   checkout, row to domain mapping, the expiry check).
//! - `get_session/http` — the whole request: actix-web, routing, JSON, over loopback.
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
use agent_sessions::domain::SessionId;
use agent_sessions::service;
use agent_sessions::state::AppState;
use agent_sessions::Application;
use criterion::{criterion_group, criterion_main, Criterion};
use diesel::connection::SimpleConnection;
use serde_json::{json, Value};

fn request_path(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let settings = Settings {
        bind: "127.0.0.1:0".parse().expect("address"),
        database_url: dir.path().join("bench.db").display().to_string(),
        workers: Some(1),
        ..Settings::default()
    };
    let clock = Arc::new(SystemClock);
    let app = rt
        .block_on(async { Application::build(settings.clone(), clock.clone()) })
        .expect("app");
    let base = format!("http://127.0.0.1:{}", app.port());
    let pool = app.pool();
    rt.spawn(app.run_until_stopped());

    let client = reqwest::Client::new();
    let agent = uuid::Uuid::new_v4();
    let session: Value = rt.block_on(async {
        client
            .put(format!("{base}/api/agents/{agent}"))
            .json(&json!({}))
            .send()
            .await
            .expect("put agent");
        client
            .post(format!("{base}/api/messaging/sessions"))
            .json(&json!({ "agentId": agent, "userId": uuid::Uuid::new_v4() }))
            .send()
            .await
            .expect("create session")
            .json()
            .await
            .expect("session body")
    });
    let id: SessionId = session["sessionId"]
        .as_str()
        .expect("session id")
        .parse()
        .expect("a session id");
    let state = AppState {
        pool: pool.clone(),
        clock,
        settings: Arc::new(settings),
        started_at: 0,
    };

    let mut group = c.benchmark_group("get_session");
    group.bench_function("db_read", |b| {
        let mut conn = pool.get().expect("connection");
        b.iter(|| repo::find(&mut conn, id).expect("read").expect("row"))
    });
    group.bench_function("service", |b| {
        b.iter(|| {
            rt.block_on(service::sessions::get(&state, id))
                .expect("get")
        })
    });
    let url = format!("{base}/api/messaging/sessions/{id}");
    group.bench_function("http", |b| {
        b.iter(|| {
            rt.block_on(async {
                let resp = client.get(&url).send().await.expect("get");
                assert!(resp.status().is_success());
                resp.bytes().await.expect("body")
            })
        })
    });
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
