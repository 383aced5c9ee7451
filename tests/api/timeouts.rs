//! Time travel with the manual clock: expiry, renewal, the cap, the warning, the hierarchy.

use reqwest::StatusCode;
use serde_json::json;

use crate::backend_tests;
use crate::helpers::{assert_error, id_of, ms, paths, Kind, TestApp, MINUTE, T0};

backend_tests!(
    an_expired_session_answers_410_everywhere,
    heartbeat_renews_only_with_auto_renew,
    max_duration_caps_renewal,
    warning_threshold_sets_is_near_expiration,
    hierarchy_merges_global_agent_and_session,
    patch_recomputes_expiry_from_now,
);

async fn an_expired_session_answers_410_everywhere(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let id = app.session().await;
    let path = paths::session(&id);

    app.clock.advance_ms(30 * MINUTE - 1);
    let (status, body) = app.get(&path).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["timeRemaining"], 1);

    app.clock.advance_ms(1);
    let (status, body) = app.get(&path).await;
    assert_error(status, &body, StatusCode::GONE, "SESSION_EXPIRED");
    assert_eq!(body["details"]["expiredAt"], "2026-01-01T00:30:00.000Z");
    for (status, body) in [
        app.post_empty(paths::renew(&id)).await,
        app.post_empty(paths::heartbeat(&id)).await,
        app.patch(paths::timeout(&id), json!({"timeoutMinutes": 60}))
            .await,
    ] {
        assert_error(status, &body, StatusCode::GONE, "SESSION_EXPIRED");
        assert_eq!(body["details"]["expiredAt"], "2026-01-01T00:30:00.000Z");
    }
    // Counted as expired before any reaper pass.
    assert_eq!(app.session_count("active").await, 0);
    assert_eq!(app.session_count("expired").await, 1);
    let (_, health) = app.get(paths::health()).await;
    assert_eq!(health["activeSessions"], 0);
    assert_eq!(health["invalidSessions"], 1);
}

async fn heartbeat_renews_only_with_auto_renew(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let agent = app.agent().await;
    let renewing = id_of(&app.session_with(&agent, json!({})).await);
    let fixed = id_of(
        &app.session_with(&agent, json!({"timeoutConfig": {"autoRenew": false}}))
            .await,
    );

    app.clock.advance_minutes(20);
    let (_, body) = app.post_empty(paths::heartbeat(&renewing)).await;
    assert_eq!(ms(&body["expiresAt"]), T0 + 50 * MINUTE);
    assert_eq!(body["renewalCount"], 1);

    let (status, body) = app.post_empty(paths::heartbeat(&fixed)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(ms(&body["expiresAt"]), T0 + 30 * MINUTE, "no auto-renew");
    assert_eq!(
        ms(&body["lastActivity"]),
        T0 + 20 * MINUTE,
        "activity recorded"
    );
    assert_eq!(body["renewalCount"], 0);

    // An explicit renew still works without auto-renew.
    let (status, body) = app.post_empty(paths::renew(&fixed)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(ms(&body["expiresAt"]), T0 + 50 * MINUTE);

    app.clock.advance_minutes(29);
    let (status, _) = app.get(paths::session(&renewing)).await;
    assert_eq!(status, StatusCode::OK, "renewed by the heartbeat");
    app.clock.advance_minutes(1);
    let (status, _) = app.get(paths::session(&renewing)).await;
    assert_eq!(status, StatusCode::GONE);
}

async fn max_duration_caps_renewal(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let agent = app.agent().await;
    let id = id_of(
        &app.session_with(&agent, json!({"timeoutConfig": {"maxDurationMinutes": 60}}))
            .await,
    );
    let path = paths::session(&id);

    app.clock.advance_minutes(20);
    let (_, body) = app.post_empty(paths::renew(&id)).await;
    assert_eq!(ms(&body["expiresAt"]), T0 + 50 * MINUTE);

    app.clock.advance_minutes(20);
    let (status, body) = app.post_empty(paths::renew(&id)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        ms(&body["expiresAt"]),
        T0 + 60 * MINUTE,
        "capped at createdAt + max"
    );
    assert_eq!(body["renewalCount"], 2);

    app.clock.advance_minutes(5);
    let (status, body) = app.post_empty(paths::renew(&id)).await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "SESSION_RENEWAL_FAILED",
    );
    let (status, body) = app.post_empty(paths::heartbeat(&id)).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a heartbeat at the cap is not an error"
    );
    assert_eq!(ms(&body["expiresAt"]), T0 + 60 * MINUTE);
    assert_eq!(body["renewalCount"], 2);

    app.clock.set(T0 + 60 * MINUTE);
    let (status, body) = app.get(&path).await;
    assert_error(status, &body, StatusCode::GONE, "SESSION_EXPIRED");
}

async fn warning_threshold_sets_is_near_expiration(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let agent = app.agent().await;
    let id = id_of(
        &app.session_with(
            &agent,
            json!({"timeoutConfig": {"warningThresholdMinutes": 10}}),
        )
        .await,
    );
    let path = paths::session(&id);
    app.clock.advance_ms(20 * MINUTE - 1);
    let (_, body) = app.get(&path).await;
    assert_eq!(body["isNearExpiration"], false);
    let (_, health) = app.get(paths::health()).await;
    assert_eq!(health["expiringSoon"], 0);

    app.clock.advance_ms(1);
    let (_, body) = app.get(&path).await;
    assert_eq!(body["isNearExpiration"], true);
    assert_eq!(body["timeRemaining"], 10 * MINUTE);
    let (_, health) = app.get(paths::health()).await;
    assert_eq!(health["expiringSoon"], 1);
    let (_, list) = app.get(paths::sessions()).await;
    assert_eq!(list["sessions"][0]["isNearExpiration"], true);
}

async fn hierarchy_merges_global_agent_and_session(kind: Kind) {
    let app = TestApp::spawn_with(kind, |s| {
        s.timeouts.timeout_minutes = 20;
        s.timeouts.warning_threshold_minutes = 2;
    })
    .await;
    let agent = app
        .agent_with(json!({"maxDurationMinutes": 100, "warningThresholdMinutes": 4}))
        .await;
    let body = app
        .session_with(
            &agent,
            json!({"timeoutConfig": {"warningThresholdMinutes": 3}}),
        )
        .await;
    assert_eq!(
        body["timeoutConfig"],
        json!({"timeoutMinutes": 20, "autoRenew": true, "maxDurationMinutes": 100, "warningThresholdMinutes": 3})
    );
    assert_eq!(ms(&body["expiresAt"]), T0 + 20 * MINUTE);

    // A session of an agent without overrides gets the global defaults.
    let plain = app.agent().await;
    let body = app.session_with(&plain, json!({})).await;
    assert_eq!(
        body["timeoutConfig"],
        json!({"timeoutMinutes": 20, "autoRenew": true, "maxDurationMinutes": 720, "warningThresholdMinutes": 2})
    );

    // Changing the agent affects new sessions only.
    let existing = id_of(&app.session_with(&agent, json!({})).await);
    let (status, _) = app
        .put(
            paths::agent(&agent),
            json!({"timeoutConfig": {"timeoutMinutes": 90}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, old) = app.get(paths::session(&existing)).await;
    assert_eq!(old["timeoutConfig"]["timeoutMinutes"], 20);
    assert_eq!(old["timeoutConfig"]["maxDurationMinutes"], 100);
    let new = app.session_with(&agent, json!({})).await;
    assert_eq!(
        new["timeoutConfig"],
        json!({"timeoutMinutes": 90, "autoRenew": true, "maxDurationMinutes": 720, "warningThresholdMinutes": 2})
    );
}

async fn patch_recomputes_expiry_from_now(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let id = app.session().await;
    let path = paths::timeout(&id);

    app.clock.advance_minutes(10);
    let (status, body) = app.patch(&path, json!({"timeoutMinutes": 60})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["timeoutConfig"]["timeoutMinutes"], 60);
    assert_eq!(
        body["timeoutConfig"]["autoRenew"], true,
        "fields not given are kept"
    );
    assert_eq!(ms(&body["expiresAt"]), T0 + 70 * MINUTE);
    assert_eq!(body["renewalCount"], 0);

    app.clock.advance_minutes(10);
    let (_, body) = app.patch(&path, json!({"maxDurationMinutes": 30})).await;
    assert_eq!(
        ms(&body["expiresAt"]),
        T0 + 30 * MINUTE,
        "capped by the new max"
    );

    let (status, body) = app.patch(&path, json!({"maxDurationMinutes": 15})).await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "MAX_DURATION_EXCEEDED",
    );
    assert_eq!(body["details"]["field"], "maxDurationMinutes");
    assert_eq!(body["details"]["sessionAgeMs"], 20 * MINUTE);

    let (status, body) = app.patch(&path, json!({})).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "an empty patch keeps the config: {body}"
    );
    assert_eq!(body["timeoutConfig"]["maxDurationMinutes"], 30);
}
