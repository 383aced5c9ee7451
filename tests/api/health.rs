use reqwest::StatusCode;
use serde_json::json;

use crate::backend_tests;
use crate::helpers::{paths, Kind, TestApp};

backend_tests!(
    health_of_a_fresh_service,
    health_counts_active_sessions_and_uptime,
    health_is_503_when_the_database_fails,
);

async fn health_of_a_fresh_service(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let (status, body) = app.get(paths::health()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({
            "status": "healthy", "activeSessions": 0, "timestamp": "2026-01-01T00:00:00.000Z",
            "expiringSoon": 0, "invalidSessions": 0, "uptime": 0
        })
    );
}

async fn health_counts_active_sessions_and_uptime(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    app.session().await;
    app.session().await;
    app.clock.advance_ms(90_500);
    let (_, body) = app.get(paths::health()).await;
    assert_eq!(body["activeSessions"], 2);
    assert_eq!(body["uptime"], 90);
    assert_eq!(body["timestamp"], "2026-01-01T00:01:30.500Z");
}

async fn health_is_503_when_the_database_fails(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    app.execute_sql("DROP TABLE messages; DROP TABLE session_tokens; DROP TABLE sessions")
        .await;
    let (status, body) = app.get(paths::health()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["status"], "unhealthy");
}
