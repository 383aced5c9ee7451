//! Deadlines are pushed when they happen: `session.expiring` when a session enters its warning
//! window and `session.expired` at its expiry, by the scheduler, without waiting for a sweep.
//! The apps here run on a manual clock their scheduler follows; no test runs a reaper pass.

use std::time::Duration;

use agent_sessions::clock::ManualClock;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::backend_tests;
use crate::helpers::{paths, Kind, TestApp, MINUTE, T0};

backend_tests!(
    the_warning_and_the_expiry_are_pushed_when_the_clock_passes_them,
    a_renewal_brings_a_new_warning,
    several_instances_warn_and_expire_each_session_once,
);

async fn following(kind: Kind) -> TestApp {
    TestApp::spawn_with_clock(kind.fresh_db(), ManualClock::following(T0), |_| {}).await
}

/// The session's events after `cursor`, waiting (real time, at most 5 s) for the first one.
async fn next_events(app: &TestApp, session: &str, cursor: i64) -> Vec<Value> {
    let path = format!(
        "{}/watch?cursor={cursor}&timeout=5000",
        paths::session(session).as_ref()
    );
    let (status, body) = app.get(path).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["events"].as_array().unwrap().clone()
}

fn types(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["type"].as_str().unwrap()).collect()
}

async fn the_warning_and_the_expiry_are_pushed_when_the_clock_passes_them(kind: Kind) {
    let app = following(kind).await;
    let id = app.session().await; // 30 minutes, warned 5 minutes before
    app.clock.advance_minutes(24);
    let quiet = {
        let path = format!(
            "{}/watch?cursor=1&timeout=300",
            paths::session(&id).as_ref()
        );
        app.get(path).await.1
    };
    assert_eq!(quiet["events"], json!([]), "nothing is due yet");

    app.clock.advance_minutes(1);
    let warned = next_events(&app, &id, 1).await;
    assert_eq!(types(&warned), ["session.expiring"], "{warned:?}");
    assert_eq!(warned[0]["data"]["expiresAt"], "2026-01-01T00:30:00.000Z");
    assert_eq!(warned[0]["data"]["timeRemaining"], 5 * MINUTE);
    assert_eq!(warned[0]["timestamp"], "2026-01-01T00:25:00.000Z");

    app.clock.advance_minutes(5);
    let expired = next_events(&app, &id, 2).await;
    assert_eq!(types(&expired), ["session.expired"], "{expired:?}");
    assert_eq!(expired[0]["data"]["reason"], "idle");
    assert_eq!(expired[0]["data"]["expiredAt"], "2026-01-01T00:30:00.000Z");
}

async fn a_renewal_brings_a_new_warning(kind: Kind) {
    let app = following(kind).await;
    let id = app.session().await;
    app.clock.advance_minutes(26);
    assert_eq!(
        types(&next_events(&app, &id, 1).await),
        ["session.expiring"]
    );

    // Renewed at 00:26: it now expires at 00:56 and is warned again at 00:51, once.
    let (status, _) = app.post_empty(paths::renew(&id)).await;
    assert_eq!(status, StatusCode::OK);
    app.clock.advance_minutes(25);
    let again = next_events(&app, &id, 3).await;
    assert_eq!(types(&again), ["session.expiring"], "{again:?}");
    assert_eq!(again[0]["data"]["expiresAt"], "2026-01-01T00:56:00.000Z");
    app.clock.advance_ms(1000);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, log) = app
        .get(format!(
            "{}/watch?cursor=0&timeout=0",
            paths::session(&id).as_ref()
        ))
        .await;
    let all: Vec<Value> = log["events"].as_array().unwrap().clone();
    assert_eq!(
        types(&all),
        [
            "session.created",
            "session.expiring",
            "session.renewed",
            "session.expiring"
        ]
    );
}

async fn several_instances_warn_and_expire_each_session_once(kind: Kind) {
    let db = kind.fresh_db();
    let clock = ManualClock::following(T0);
    let first = TestApp::spawn_with_clock(db.clone(), clock.clone(), |_| {}).await;
    let second = TestApp::spawn_with_clock(db, clock.clone(), |_| {}).await;
    let agent = first.agent().await;
    let mut sessions = Vec::new();
    for _ in 0..5 {
        sessions.push(crate::helpers::id_of(
            &first.session_with(&agent, json!({})).await,
        ));
    }
    // Both instances' schedulers race for every deadline; each is recorded once. (Which
    // instance records it varies, and on SQLite the other one is not woken: read the logs.)
    clock.advance_minutes(25);
    for id in &sessions {
        log_becomes(&second, id, &["session.created", "session.expiring"]).await;
    }
    clock.advance_minutes(5);
    for id in &sessions {
        log_becomes(
            &first,
            id,
            &["session.created", "session.expiring", "session.expired"],
        )
        .await;
    }
    // And nothing more comes.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for id in &sessions {
        assert_eq!(next_events_now(&second, id, 0).await.len(), 3, "{id}");
    }
}

/// Waits (up to 5 s) until the session's whole log has exactly these types.
async fn log_becomes(app: &TestApp, session: &str, expected: &[&str]) {
    let started = std::time::Instant::now();
    loop {
        let log = next_events_now(app, session, 0).await;
        if types(&log) == expected {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{session}: {:?}, expected {expected:?}",
            types(&log)
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The events after `cursor`, at once.
async fn next_events_now(app: &TestApp, session: &str, cursor: i64) -> Vec<Value> {
    let path = format!(
        "{}/watch?cursor={cursor}&timeout=0",
        paths::session(session).as_ref()
    );
    app.get(path).await.1["events"].as_array().unwrap().clone()
}
