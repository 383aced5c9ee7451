use reqwest::StatusCode;
use serde_json::json;

use crate::backend_tests;
use crate::helpers::{assert_error, id_of, paths, Kind, TestApp};

backend_tests!(
    put_creates_an_agent,
    put_replaces_an_existing_agent,
    list_agents_pages_oldest_first,
    list_agents_rejects_a_bad_limit,
    get_unknown_agent_is_404,
    deleting_an_agent_ends_its_sessions,
    a_deleted_agent_is_gone,
    deleting_an_agent_spares_other_agents_sessions,
    a_timed_out_session_keeps_its_expiry_when_its_agent_is_deleted,
    sessions_need_a_registered_agent,
    put_malformed_agent_id_is_400,
    invalid_agent_input_is_rejected_and_nothing_is_written,
    concurrent_first_puts_create_one_agent,
);

async fn put_creates_an_agent(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let id = uuid::Uuid::new_v4().to_string();

    let (status, created) = app
        .put(
            paths::agent(&id),
            json!({"name": "Helper", "timeoutConfig": {"timeoutMinutes": 60}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["agentId"], id);
    assert_eq!(created["name"], "Helper");
    assert_eq!(created["timeoutConfig"], json!({"timeoutMinutes": 60}));
    assert_eq!(
        created["effectiveTimeoutConfig"],
        json!({"timeoutMinutes": 60, "autoRenew": true, "maxDurationMinutes": 720, "warningThresholdMinutes": 5})
    );
    assert_eq!(created["createdAt"], "2026-01-01T00:00:00.000Z");
}

async fn put_replaces_an_existing_agent(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let path = paths::agent(uuid::Uuid::new_v4());
    let (status, _) = app
        .put(
            &path,
            json!({"name": "Helper", "timeoutConfig": {"timeoutMinutes": 60}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);

    app.clock.advance_minutes(1);
    let (status, replaced) = app
        .put(&path, json!({"timeoutConfig": {"autoRenew": false}}))
        .await;
    assert_eq!(status, StatusCode::OK, "{replaced}");
    assert_eq!(replaced["name"], json!(null));
    assert_eq!(replaced["timeoutConfig"], json!({"autoRenew": false}));
    assert_eq!(replaced["createdAt"], "2026-01-01T00:00:00.000Z");
    assert_eq!(replaced["updatedAt"], "2026-01-01T00:01:00.000Z");

    let (status, read) = app.get(&path).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(read, replaced);
}

async fn list_agents_pages_oldest_first(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(app.agent().await);
        app.clock.advance_ms(1);
    }
    let (status, page) = app.get(paths::agents().query("limit=2&offset=1")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["total"], 3);
    assert_eq!(page["limit"], 2);
    assert_eq!(page["offset"], 1);
    let listed: Vec<_> = page["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["agentId"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(listed, ids[1..].to_vec());
}

async fn list_agents_rejects_a_bad_limit(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let (status, body) = app.get(paths::agents().query("limit=0")).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
}

async fn get_unknown_agent_is_404(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let (status, body) = app.get(paths::agent(uuid::Uuid::new_v4())).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "AGENT_NOT_FOUND");
}

async fn deleting_an_agent_ends_its_sessions(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let agent = app.agent().await;
    let session = id_of(&app.session_with(&agent, json!({})).await);

    app.clock.advance_minutes(1);
    let (status, body) = app.delete(paths::agent(&agent)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["success"], true);

    let (status, body) = app.get(paths::session(&session)).await;
    assert_error(status, &body, StatusCode::GONE, "SESSION_ENDED");
    assert_eq!(body["details"]["endedAt"], "2026-01-01T00:01:00.000Z");
    assert_eq!(body["details"]["reason"], "agent_deleted");
}

async fn a_deleted_agent_is_gone(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let agent = app.agent().await;
    let (status, _) = app.delete(paths::agent(&agent)).await;
    assert_eq!(status, StatusCode::OK);

    let (status, body) = app.get(paths::agent(&agent)).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "AGENT_NOT_FOUND");
    let (status, body) = app.delete(paths::agent(&agent)).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "AGENT_NOT_FOUND");
}

async fn deleting_an_agent_spares_other_agents_sessions(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let agent = app.agent().await;
    let other = app.session().await;

    let (status, _) = app.delete(paths::agent(&agent)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app.get(paths::session(&other)).await;
    assert_eq!(status, StatusCode::OK, "other agents' sessions live on");
}

async fn a_timed_out_session_keeps_its_expiry_when_its_agent_is_deleted(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let short_agent = app.agent_with(json!({"timeoutMinutes": 5})).await;
    app.clock.advance_minutes(1);
    let timed_out = id_of(&app.session_with(&short_agent, json!({})).await);

    // The session timed out at 00:06; its agent goes at 00:07.
    app.clock.advance_minutes(6);
    let (status, _) = app.delete(paths::agent(&short_agent)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = app.get(paths::session(&timed_out)).await;
    assert_error(status, &body, StatusCode::GONE, "SESSION_EXPIRED");
    assert_eq!(body["details"]["expiredAt"], "2026-01-01T00:06:00.000Z");
}

async fn sessions_need_a_registered_agent(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let (status, body) = app
        .post(
            paths::sessions(),
            json!({"agentId": uuid::Uuid::new_v4(), "userId": uuid::Uuid::new_v4()}),
        )
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "AGENT_NOT_FOUND");
    assert_eq!(app.session_count("all").await, 0);
}

async fn put_malformed_agent_id_is_400(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let (status, body) = app.put(paths::agent("not-a-uuid"), json!({})).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
    assert_eq!(body["details"]["field"], "agentId");
    let (_, page) = app.get(paths::agents()).await;
    assert_eq!(page["total"], 0);
}

async fn invalid_agent_input_is_rejected_and_nothing_is_written(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let id = uuid::Uuid::new_v4();
    for (bad, field) in [
        (
            json!({"timeoutConfig": {"timeoutMinutes": 4}}),
            "timeoutConfig.timeoutMinutes",
        ),
        (
            json!({"timeoutConfig": {"maxDurationMinutes": 4321}}),
            "timeoutConfig.maxDurationMinutes",
        ),
        (
            json!({"timeoutConfig": {"warningThresholdMinutes": 0}}),
            "timeoutConfig.warningThresholdMinutes",
        ),
        (
            json!({"timeoutConfig": {"timeoutMinutes": 10.5}}),
            "timeoutConfig.timeoutMinutes",
        ),
        (json!({"name": "x".repeat(201)}), "name"),
    ] {
        let (status, body) = app.put(paths::agent(id), bad).await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
        assert_eq!(body["details"]["field"], field, "{body}");
    }
    let (_, page) = app.get(paths::agents()).await;
    assert_eq!(page["total"], 0);
}

async fn concurrent_first_puts_create_one_agent(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let path = paths::agent(uuid::Uuid::new_v4());
    let puts = (0..8).map(|i| app.put(&path, json!({ "name": format!("racer {i}") })));
    let statuses: Vec<StatusCode> = futures::future::join_all(puts)
        .await
        .into_iter()
        .map(|(status, body)| {
            assert!(status.is_success(), "{status}: {body}");
            status
        })
        .collect();
    let created = statuses
        .iter()
        .filter(|s| **s == StatusCode::CREATED)
        .count();
    assert_eq!(created, 1, "{statuses:?}");
    let (_, page) = app.get(paths::agents()).await;
    assert_eq!(page["total"], 1);
}
