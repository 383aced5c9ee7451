use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::backend_tests;
use crate::helpers::{assert_error, id_of, ms, paths, Kind, Reply, TestApp, MINUTE, T0};

backend_tests!(
    create_returns_the_full_session,
    a_read_returns_what_create_returned,
    get_counts_down_time_remaining,
    a_read_is_not_activity,
    get_warns_near_expiration,
    get_unknown_session_is_404,
    get_malformed_id_is_400,
    a_corrupt_stored_status_is_a_500_not_an_expiry,
    list_defaults_to_active_sessions_newest_first,
    list_stats_count_every_session,
    list_summaries_carry_the_session_fields,
    list_filters_by_status,
    list_filters_by_user,
    list_filters_by_agent_with_limit_and_offset,
    list_rejects_bad_query_parameters,
    list_accepts_the_maximum_limit,
    delete_confirms_the_deletion,
    a_deleted_session_is_404,
    deleting_twice_is_404,
    an_expired_session_can_be_deleted,
    debug_header_shows_where_each_setting_came_from,
    debug_header_shows_patched_settings_as_session_sourced,
    renew_extends_the_session_from_now,
    a_heartbeat_after_a_renew_renews_again,
    renew_and_heartbeat_of_an_unknown_session_are_404,
    unknown_route_is_a_json_404,
    unsupported_method_is_a_json_405,
);

/// A create request with every optional field, the user id in upper case.
fn full_create_request(agent: &str, user: &str) -> Value {
    json!({
        "agentId": agent,
        "userId": user.to_uppercase(),
        "metadata": {"platform": "web", "nested": {"a": [1, 2]}},
        "timeoutConfig": {"maxDurationMinutes": 180}
    })
}

async fn create_returns_the_full_session(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let agent = app.agent().await;
    let user = uuid::Uuid::new_v4().to_string();
    let (status, body) = app
        .post(paths::sessions(), full_create_request(&agent, &user))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(uuid::Uuid::parse_str(body["sessionId"].as_str().unwrap()).is_ok());
    assert_eq!(body["agentId"], agent);
    assert_eq!(body["userId"], user, "ids are normalized to lower case");
    assert_eq!(body["createdAt"], "2026-01-01T00:00:00.000Z");
    assert_eq!(body["lastActivity"], "2026-01-01T00:00:00.000Z");
    assert_eq!(body["expiresAt"], "2026-01-01T00:30:00.000Z");
    assert_eq!(
        body["timeoutConfig"],
        json!({"timeoutMinutes": 30, "autoRenew": true, "maxDurationMinutes": 180, "warningThresholdMinutes": 5})
    );
    assert_eq!(body["renewalCount"], 0);
    assert_eq!(body["timeRemaining"], 30 * MINUTE);
    assert_eq!(body["isNearExpiration"], false);
    assert_eq!(body["status"], "active");
    assert_eq!(
        body["metadata"],
        json!({"platform": "web", "nested": {"a": [1, 2]}})
    );
    assert!(body.get("debug").is_none());
}

async fn a_read_returns_what_create_returned(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let agent = app.agent().await;
    let user = uuid::Uuid::new_v4().to_string();
    let (status, created) = app
        .post(paths::sessions(), full_create_request(&agent, &user))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let mut created = created;
    let token = created.as_object_mut().unwrap().remove("sessionToken");
    assert_eq!(
        created.as_object_mut().unwrap().remove("participantTokens"),
        Some(json!([])),
        "a one-user session hands out no other tokens"
    );
    assert!(
        token.is_some_and(|t| t.as_str().is_some_and(|t| t.starts_with("ast_"))),
        "create hands out the session's token"
    );

    let (status, read) = app.get(paths::session(id_of(&created))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        read, created,
        "a read returns what create returned, but for the tokens"
    );
}

async fn get_counts_down_time_remaining(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let id = app.session().await;

    app.clock.advance_minutes(10);
    let (_, body) = app.get(paths::session(&id)).await;
    assert_eq!(body["timeRemaining"], 20 * MINUTE);
    assert_eq!(body["isNearExpiration"], false);
}

async fn a_read_is_not_activity(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let id = app.session().await;

    app.clock.advance_minutes(10);
    let (_, body) = app.get(paths::session(&id)).await;
    assert_eq!(
        body["lastActivity"], "2026-01-01T00:00:00.000Z",
        "a read is not activity"
    );
}

async fn get_warns_near_expiration(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let id = app.session().await;

    app.clock.advance_minutes(25);
    let (_, body) = app.get(paths::session(&id)).await;
    assert_eq!(body["timeRemaining"], 5 * MINUTE);
    assert_eq!(body["isNearExpiration"], true);
}

async fn get_unknown_session_is_404(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let (status, body) = app.get(paths::session(uuid::Uuid::new_v4())).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "SESSION_NOT_FOUND");
}

async fn get_malformed_id_is_400(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let (status, body) = app.get(paths::session("not-a-uuid")).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
}

/// The sessions the list tests list, created 1 ms apart. Agent A's three, all of `user`, are
/// active; agent B (5-minute timeout) has `b1` of another user and then `b2` of `user`, both
/// expired: the clock stands at 00:06.
struct ListFixture {
    agent_b: String,
    user: String,
    a_ids: Vec<String>,
    b1: String,
    b2: String,
}

impl ListFixture {
    async fn create(app: &TestApp) -> ListFixture {
        let agent_a = app.agent().await;
        let agent_b = app.agent_with(json!({"timeoutMinutes": 5})).await;
        let user = uuid::Uuid::new_v4().to_string();
        let mut a_ids = Vec::new();
        for _ in 0..3 {
            a_ids.push(id_of(
                &app.session_with(&agent_a, json!({"userId": user})).await,
            ));
            app.clock.advance_ms(1);
        }
        let b1 = id_of(&app.session_with(&agent_b, json!({})).await);
        app.clock.advance_ms(1);
        let b2 = id_of(&app.session_with(&agent_b, json!({"userId": user})).await);

        // Agent B's sessions expire after 5 minutes; A's live on.
        app.clock.advance_minutes(6);
        ListFixture {
            agent_b,
            user,
            a_ids,
            b1,
            b2,
        }
    }
}

/// The session ids of a list page, in order.
fn session_ids(page: &Value) -> Vec<String> {
    page["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["sessionId"].as_str().unwrap().to_owned())
        .collect()
}

async fn list_defaults_to_active_sessions_newest_first(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let fixture = ListFixture::create(&app).await;

    let (status, page) = app.get(paths::sessions()).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["total"], 3, "default status is active");
    assert_eq!(page["limit"], 50);
    assert_eq!(page["offset"], 0);
    let newest_first: Vec<_> = fixture.a_ids.iter().rev().cloned().collect();
    assert_eq!(session_ids(&page), newest_first);
}

async fn list_stats_count_every_session(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    ListFixture::create(&app).await;

    let (status, page) = app.get(paths::sessions()).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(
        page["stats"],
        json!({"totalSessions": 5, "activeSessions": 3, "pausedSessions": 0, "expiredSessions": 2})
    );
}

async fn list_summaries_carry_the_session_fields(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    app.session().await;

    let (status, page) = app.get(paths::sessions()).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let first = &page["sessions"][0];
    for field in [
        "agentId",
        "userId",
        "createdAt",
        "expiresAt",
        "timeRemaining",
        "isNearExpiration",
        "renewalCount",
        "lastActivity",
    ] {
        assert!(first.get(field).is_some(), "summary has {field}: {first}");
    }
    assert_eq!(first["metadata"], json!({}), "summaries carry the metadata");
}

async fn list_filters_by_status(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let fixture = ListFixture::create(&app).await;

    let (_, expired) = app.get(paths::sessions().query("status=expired")).await;
    assert_eq!(expired["total"], 2);
    assert_eq!(session_ids(&expired), vec![fixture.b2, fixture.b1]);
    assert_eq!(expired["sessions"][0]["status"], "expired");
    assert_eq!(expired["sessions"][0]["timeRemaining"], 0);
}

async fn list_filters_by_user(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let fixture = ListFixture::create(&app).await;

    let query = format!("userId={}&status=all", fixture.user);
    let (_, by_user) = app.get(paths::sessions().query(query)).await;
    assert_eq!(by_user["total"], 4);
    assert_eq!(
        by_user["stats"],
        json!({"totalSessions": 4, "activeSessions": 3, "pausedSessions": 0, "expiredSessions": 1})
    );
}

async fn list_filters_by_agent_with_limit_and_offset(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let fixture = ListFixture::create(&app).await;

    let query = format!("agentId={}&status=all&limit=1&offset=1", fixture.agent_b);
    let (_, by_agent) = app.get(paths::sessions().query(query)).await;
    assert_eq!(by_agent["total"], 2);
    assert_eq!(by_agent["sessions"].as_array().unwrap().len(), 1);
    assert_eq!(by_agent["sessions"][0]["sessionId"], fixture.b1);
}

async fn list_rejects_bad_query_parameters(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    for bad in [
        "limit=0",
        "limit=101",
        "limit=abc",
        "offset=-1",
        "status=gone",
        "agentId=nope",
        "userId=1",
    ] {
        let (status, body) = app.get(paths::sessions().query(bad)).await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
    }
}

async fn list_accepts_the_maximum_limit(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let (_, max) = app.get(paths::sessions().query("limit=100")).await;
    assert_eq!(max["limit"], 100);
}

async fn delete_confirms_the_deletion(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let id = app.session().await;

    let (status, body) = app.delete(paths::session(&id)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let message = format!("Session {id} deleted successfully");
    assert_eq!(
        body,
        json!({"success": true, "message": message, "data": {"success": true, "message": message}})
    );
}

async fn a_deleted_session_is_404(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let id = app.session().await;
    let (status, _) = app.delete(paths::session(&id)).await;
    assert_eq!(status, StatusCode::OK);

    let (status, body) = app.get(paths::session(&id)).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "SESSION_NOT_FOUND");
}

async fn deleting_twice_is_404(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let id = app.session().await;
    let (status, _) = app.delete(paths::session(&id)).await;
    assert_eq!(status, StatusCode::OK);

    let (status, body) = app.delete(paths::session(&id)).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "SESSION_NOT_FOUND");
}

async fn an_expired_session_can_be_deleted(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let expired = app.session().await;
    app.clock.advance_minutes(31);
    let (status, _) = app.get(paths::session(&expired)).await;
    assert_eq!(status, StatusCode::GONE);

    let (status, _) = app.delete(paths::session(&expired)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app.get(paths::session(&expired)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(app.session_count("all").await, 0);
}

async fn debug_header_shows_where_each_setting_came_from(kind: Kind) {
    let app = TestApp::spawn_with(kind, |s| s.timeouts.warning_threshold_minutes = 7).await;
    let agent = app
        .agent_with(json!({"timeoutMinutes": 45, "autoRenew": false}))
        .await;

    let Reply { status, body, .. } = app
        .call(Method::POST, paths::sessions())
        .header("X-Debug", "true")
        .json(json!({
            "agentId": agent,
            "userId": uuid::Uuid::new_v4(),
            "timeoutConfig": {"autoRenew": true}
        }))
        .send()
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(
        body["timeoutConfig"],
        json!({"timeoutMinutes": 45, "autoRenew": true, "maxDurationMinutes": 720, "warningThresholdMinutes": 7})
    );
    assert_eq!(
        body["debug"]["timeoutConfigSources"],
        json!({"timeoutMinutes": "agent", "autoRenew": "session", "maxDurationMinutes": "global", "warningThresholdMinutes": "global"})
    );
}

async fn debug_header_shows_patched_settings_as_session_sourced(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let agent = app.agent_with(json!({"timeoutMinutes": 45})).await;
    let id = id_of(&app.session_with(&agent, json!({})).await);

    let (status, _) = app
        .patch(paths::timeout(&id), json!({"maxDurationMinutes": 60}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let body = app
        .call(Method::GET, paths::session(&id))
        .header("X-Debug", "true")
        .send()
        .await
        .body;
    assert_eq!(
        body["debug"]["timeoutConfigSources"]["maxDurationMinutes"],
        "session"
    );
    assert_eq!(
        body["debug"]["timeoutConfigSources"]["timeoutMinutes"],
        "agent"
    );
}

async fn renew_extends_the_session_from_now(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let id = app.session().await;

    app.clock.advance_minutes(10);
    let (status, renewed) = app.post_empty(paths::renew(&id)).await;
    assert_eq!(status, StatusCode::OK, "{renewed}");
    assert_eq!(renewed["sessionId"], id);
    assert_eq!(renewed["renewalCount"], 1);
    assert_eq!(ms(&renewed["expiresAt"]), T0 + 40 * MINUTE);
    assert_eq!(ms(&renewed["lastActivity"]), T0 + 10 * MINUTE);
    assert_eq!(renewed["timeRemaining"], 30 * MINUTE);
}

async fn a_heartbeat_after_a_renew_renews_again(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let id = app.session().await;
    app.clock.advance_minutes(10);
    let (status, _) = app.post_empty(paths::renew(&id)).await;
    assert_eq!(status, StatusCode::OK);

    app.clock.advance_minutes(5);
    let (status, beat) = app.post_empty(paths::heartbeat(&id)).await;
    assert_eq!(status, StatusCode::OK, "{beat}");
    assert_eq!(beat["renewalCount"], 2);
    assert_eq!(ms(&beat["expiresAt"]), T0 + 45 * MINUTE);
    assert_eq!(ms(&beat["lastActivity"]), T0 + 15 * MINUTE);
}

async fn renew_and_heartbeat_of_an_unknown_session_are_404(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    for action in [paths::renew, paths::heartbeat] {
        let (status, body) = app.post_empty(action(uuid::Uuid::new_v4())).await;
        assert_error(status, &body, StatusCode::NOT_FOUND, "SESSION_NOT_FOUND");
    }
}

async fn unknown_route_is_a_json_404(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let (status, body) = app.get("/api/nothing-here").await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "NOT_FOUND");
}

async fn unsupported_method_is_a_json_405(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let (status, body) = app.put(paths::sessions(), json!({})).await;
    assert_error(
        status,
        &body,
        StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
    );
}

/// A row the service cannot read back is a server error, never silently "expired".
async fn a_corrupt_stored_status_is_a_500_not_an_expiry(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let id = app.session().await;
    app.execute_sql("UPDATE sessions SET status = 'paused-ish'")
        .await;
    let (status, body) = app.get(paths::session(&id)).await;
    assert_error(
        status,
        &body,
        StatusCode::INTERNAL_SERVER_ERROR,
        "INTERNAL_ERROR",
    );
    assert!(body.get("details").is_none(), "no internals leak: {body}");
}
