use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::backend_tests;
use crate::helpers::{paths, Kind, TestApp};

backend_tests!(
    probes_answer_without_credentials,
    readiness_is_503_on_an_unmigrated_database,
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
    app.execute_sql("DROP TABLE messages; DROP TABLE session_tokens; DROP TABLE expiry_warnings; DROP TABLE session_participants; DROP TABLE sessions")
        .await;
    let (status, body) = app.get(paths::health()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["status"], "unhealthy");
}

async fn probes_answer_without_credentials(kind: Kind) {
    let app = TestApp::spawn_secured(kind).await;
    for path in ["/livez", "/readyz"] {
        let reply = app
            .call(Method::GET, path)
            .without_credential()
            .send()
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.text);
        assert_eq!(reply.body, json!({"status": "ok"}));
    }
    // The health report is not a probe: it needs `sessions:health`.
    app.call(Method::GET, paths::health())
        .without_credential()
        .send()
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
}

async fn readiness_is_503_on_an_unmigrated_database(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    app.execute_sql(
        "DELETE FROM __diesel_schema_migrations WHERE version = \
         (SELECT MAX(version) FROM __diesel_schema_migrations)",
    )
    .await;
    let reply = app.call(Method::GET, "/readyz").send().await;
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        reply.text
    );
    assert_eq!(reply.body["status"], "database not migrated");
    let live = app.call(Method::GET, "/livez").send().await;
    assert_eq!(live.status, StatusCode::OK, "alive all the same");
}
