//! The reaper, restarts and several instances on one database.

use std::collections::HashSet;

use reqwest::StatusCode;
use serde_json::json;

use crate::backend_tests;
use crate::helpers::{assert_error, id_of, paths, Kind, TestApp, MINUTE, T0};

backend_tests!(
    reaper_expires_each_due_session_once,
    reaper_purges_after_retention_counted_from_expiry,
    reaper_drains_due_sessions_in_batches,
    two_instances_expire_each_session_exactly_once,
    data_survives_a_restart,
    instances_starting_together_share_one_migrated_database,
);

const HOUR: i64 = 60 * MINUTE;

/// Three sessions, the clock at 00:06: `short` (a 5-minute timeout) timed out at 00:05, `long`
/// (30 minutes) is active, and `ended` was ended at 00:06 by deleting its agent.
struct ThreeSessions {
    short: String,
    long: String,
    ended: String,
}

impl ThreeSessions {
    async fn create(app: &TestApp) -> ThreeSessions {
        let short_agent = app.agent_with(json!({"timeoutMinutes": 5})).await;
        let short = id_of(&app.session_with(&short_agent, json!({})).await);
        let long = app.session().await;
        let doomed_agent = app.agent().await;
        let ended = id_of(&app.session_with(&doomed_agent, json!({})).await);

        app.clock.advance_minutes(6);
        let (status, _) = app.delete(paths::agent(&doomed_agent)).await;
        assert_eq!(status, StatusCode::OK);
        ThreeSessions { short, long, ended }
    }
}

async fn reaper_expires_each_due_session_once(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let ThreeSessions { short, .. } = ThreeSessions::create(&app).await;

    let report = app.reap().await;
    assert_eq!(ids(&report.expired), vec![short.clone()]);
    assert_eq!(report.purged, 0);
    assert_eq!(
        ids(&app.reap().await.expired),
        Vec::<String>::new(),
        "expired exactly once"
    );

    let (status, body) = app.get(paths::session(&short)).await;
    assert_error(status, &body, StatusCode::GONE, "SESSION_EXPIRED");
    assert_eq!(body["details"]["expiredAt"], "2026-01-01T00:05:00.000Z");
    let (_, expired) = app.get(paths::sessions().query("status=expired")).await;
    assert_eq!(expired["total"], 2, "the expired and the ended session");
}

async fn reaper_purges_after_retention_counted_from_expiry(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let ThreeSessions { short, long, ended } = ThreeSessions::create(&app).await;
    let report = app.reap().await;
    assert_eq!(ids(&report.expired), vec![short.clone()]);

    // Retention (24 h by default) counts from expiry: the short session goes first.
    app.clock.set(T0 + 5 * MINUTE + 24 * HOUR);
    let report = app.reap().await;
    assert_eq!(
        ids(&report.expired),
        vec![long.clone()],
        "the long one expired meanwhile"
    );
    assert_eq!(report.purged, 1);
    let (status, body) = app.get(paths::session(&short)).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "SESSION_NOT_FOUND");
    let (status, _) = app.get(paths::session(&ended)).await;
    assert_eq!(status, StatusCode::GONE, "ended at 00:06, still retained");

    app.clock.set(T0 + 30 * MINUTE + 24 * HOUR);
    let report = app.reap().await;
    assert_eq!(report.purged, 2);
    for id in [&long, &ended] {
        let (status, _) = app.get(paths::session(id)).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
    assert_eq!(app.session_count("all").await, 0);
}

async fn reaper_drains_due_sessions_in_batches(kind: Kind) {
    let app = TestApp::spawn_with(kind, |s| {
        s.reaper_batch_size = 2;
        s.retention_hours = 1;
    })
    .await;
    let agent = app.agent().await;
    let mut due = HashSet::new();
    for _ in 0..5 {
        due.insert(id_of(&app.session_with(&agent, json!({})).await));
    }
    app.clock.advance_minutes(1);
    let live = id_of(&app.session_with(&agent, json!({})).await);

    app.clock.set(T0 + 30 * MINUTE);
    let report = app.reap().await;
    assert_eq!(
        ids(&report.expired).into_iter().collect::<HashSet<_>>(),
        due
    );
    assert_eq!(report.expired.len(), 5);
    let (status, _) = app.get(paths::session(&live)).await;
    assert_eq!(status, StatusCode::OK);

    app.clock.set(T0 + 30 * MINUTE + HOUR);
    assert_eq!(app.reap().await.purged, 5);
    assert_eq!(app.session_count("all").await, 1);
}

async fn two_instances_expire_each_session_exactly_once(kind: Kind) {
    let first = TestApp::spawn_with(kind, |s| s.reaper_batch_size = 3).await;
    let agent = first.agent().await;
    let mut due = HashSet::new();
    for _ in 0..40 {
        due.insert(id_of(&first.session_with(&agent, json!({})).await));
    }
    let db = first.db.clone();
    let second = TestApp::spawn_on(db, |s| s.reaper_batch_size = 3).await;
    first.clock.set(T0 + HOUR);
    second.clock.set(T0 + HOUR);

    for _ in 0..3 {
        let (a, b) = (first.reaper.clone(), second.reaper.clone());
        let ra = tokio::task::spawn_blocking(move || a.run_once());
        let rb = tokio::task::spawn_blocking(move || b.run_once());
        let (ra, rb) = (ra.await.unwrap().unwrap(), rb.await.unwrap().unwrap());
        let mut all = ids(&ra.expired);
        all.extend(ids(&rb.expired));
        let unique: HashSet<_> = all.iter().cloned().collect();
        assert_eq!(unique.len(), all.len(), "no session expired twice");
        if !all.is_empty() {
            assert_eq!(unique, due, "every due session expired");
        }
    }
    assert_eq!(first.session_count("expired").await, 40);
    second.stop().await;
}

async fn data_survives_a_restart(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let agent = app.agent_with(json!({"timeoutMinutes": 45})).await;
    let created = app
        .session_with(&agent, json!({"metadata": {"kept": true}}))
        .await;
    let id = id_of(&created);
    app.clock.advance_minutes(5);
    let (_, renewed) = app.post_empty(paths::renew(&id)).await;
    let db = app.stop().await;

    let app = TestApp::spawn_on(db, |_| {}).await;
    app.clock.advance_minutes(5);
    let (status, read) = app.get(paths::session(&id)).await;
    assert_eq!(status, StatusCode::OK, "{read}");
    assert_eq!(read["expiresAt"], renewed["expiresAt"]);
    assert_eq!(read["renewalCount"], 1);
    assert_eq!(read["metadata"], json!({"kept": true}));
    let (status, agent_body) = app.get(paths::agent(&agent)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(agent_body["timeoutConfig"], json!({"timeoutMinutes": 45}));
}

async fn instances_starting_together_share_one_migrated_database(kind: Kind) {
    let db = kind.fresh_db();
    // Several instances migrate one fresh database at the same moment.
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(4));
    let starts: Vec<_> = (0..4)
        .map(|_| {
            let (url, barrier) = (db.url.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                agent_sessions::db::connect(&url, 2).map(drop)
            })
        })
        .collect();
    for start in starts {
        start.join().unwrap().expect("every instance starts");
    }
    let app = TestApp::spawn_on(db, |_| {}).await;
    let agent = app.agent().await;
    app.session_with(&agent, json!({})).await;
}

/// Session ids as the API shows them.
fn ids(expired: &[agent_sessions::domain::SessionId]) -> Vec<String> {
    expired.iter().map(ToString::to_string).collect()
}
