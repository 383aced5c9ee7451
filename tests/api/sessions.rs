use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::backend_tests;
use crate::helpers::{assert_error, id_of, ms, paths, Kind, Reply, TestApp, MINUTE, T0};

backend_tests!(
    create_returns_the_full_session,
    get_returns_time_remaining_and_warning,
    list_filters_pages_and_counts,
    delete_removes_the_session,
    debug_header_shows_provenance,
    renew_and_heartbeat_return_the_session,
    unknown_routes_and_methods_answer_json,
);

async fn create_returns_the_full_session(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let agent = app.agent().await;
    let user = uuid::Uuid::new_v4().to_string();
    let (status, body) = app
        .post(
            paths::sessions(),
            json!({
                "agentId": agent,
                "userId": user.to_uppercase(),
                "metadata": {"platform": "web", "nested": {"a": [1, 2]}},
                "timeoutConfig": {"maxDurationMinutes": 180}
            }),
        )
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

    let (status, read) = app.get(paths::session(id_of(&body))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(read, body, "a read returns what create returned");
}

async fn get_returns_time_remaining_and_warning(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let id = app.session().await;
    let path = paths::session(&id);

    app.clock.advance_minutes(10);
    let (_, body) = app.get(&path).await;
    assert_eq!(body["timeRemaining"], 20 * MINUTE);
    assert_eq!(body["isNearExpiration"], false);
    assert_eq!(
        body["lastActivity"], "2026-01-01T00:00:00.000Z",
        "a read is not activity"
    );

    app.clock.advance_minutes(15);
    let (_, body) = app.get(&path).await;
    assert_eq!(body["timeRemaining"], 5 * MINUTE);
    assert_eq!(body["isNearExpiration"], true);

    let (status, body) = app.get(paths::session(uuid::Uuid::new_v4())).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "SESSION_NOT_FOUND");
    let (status, body) = app.get(paths::session("not-a-uuid")).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
}

async fn list_filters_pages_and_counts(kind: Kind) {
    let app = TestApp::spawn(kind).await;
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

    let (status, page) = app.get(paths::sessions()).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["total"], 3, "default status is active");
    assert_eq!(page["limit"], 50);
    assert_eq!(page["offset"], 0);
    assert_eq!(
        page["stats"],
        json!({"totalSessions": 5, "activeSessions": 3, "expiredSessions": 2})
    );
    let ids: Vec<_> = page["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["sessionId"].as_str().unwrap().to_owned())
        .collect();
    let newest_first: Vec<_> = a_ids.iter().rev().cloned().collect();
    assert_eq!(ids, newest_first);
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

    let (_, expired) = app.get(paths::sessions().query("status=expired")).await;
    assert_eq!(expired["total"], 2);
    let expired_ids: Vec<_> = expired["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["sessionId"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(expired_ids, vec![b2.clone(), b1.clone()]);
    assert_eq!(expired["sessions"][0]["status"], "expired");
    assert_eq!(expired["sessions"][0]["timeRemaining"], 0);

    let (_, by_user) = app
        .get(paths::sessions().query(format!("userId={user}&status=all")))
        .await;
    assert_eq!(by_user["total"], 4);
    assert_eq!(
        by_user["stats"],
        json!({"totalSessions": 4, "activeSessions": 3, "expiredSessions": 1})
    );

    let (_, by_agent) = app
        .get(paths::sessions().query(format!("agentId={agent_b}&status=all&limit=1&offset=1")))
        .await;
    assert_eq!(by_agent["total"], 2);
    assert_eq!(by_agent["sessions"].as_array().unwrap().len(), 1);
    assert_eq!(by_agent["sessions"][0]["sessionId"], b1);

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
    let (_, max) = app.get(paths::sessions().query("limit=100")).await;
    assert_eq!(max["limit"], 100);
}

async fn delete_removes_the_session(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let id = app.session().await;
    let path = paths::session(&id);

    let (status, body) = app.delete(&path).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let message = format!("Session {id} deleted successfully");
    assert_eq!(
        body,
        json!({"success": true, "message": message, "data": {"success": true, "message": message}})
    );
    let (status, body) = app.get(&path).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "SESSION_NOT_FOUND");
    let (status, body) = app.delete(&path).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "SESSION_NOT_FOUND");

    // An expired session can be deleted too.
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

async fn debug_header_shows_provenance(kind: Kind) {
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

    // PATCH makes the patched field session-sourced; GET shows it with the header.
    let id = id_of(&body);
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

async fn renew_and_heartbeat_return_the_session(kind: Kind) {
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

    app.clock.advance_minutes(5);
    let (status, beat) = app.post_empty(paths::heartbeat(&id)).await;
    assert_eq!(status, StatusCode::OK, "{beat}");
    assert_eq!(beat["renewalCount"], 2);
    assert_eq!(ms(&beat["expiresAt"]), T0 + 45 * MINUTE);
    assert_eq!(ms(&beat["lastActivity"]), T0 + 15 * MINUTE);

    for action in [paths::renew, paths::heartbeat] {
        let (status, body) = app.post_empty(action(uuid::Uuid::new_v4())).await;
        assert_error(status, &body, StatusCode::NOT_FOUND, "SESSION_NOT_FOUND");
    }
}

async fn unknown_routes_and_methods_answer_json(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let (status, body) = app.get("/api/nothing-here").await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "NOT_FOUND");
    let (status, body) = app.put(paths::sessions(), json!({})).await;
    assert_error(
        status,
        &body,
        StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
    );
}
