//! Time travel with the manual clock: expiry, renewal, the cap, the warning, the hierarchy.

use reqwest::StatusCode;
use serde_json::json;

use crate::backend_tests;
use crate::helpers::{assert_error, id_of, ms, paths, Kind, TestApp, MINUTE, T0};

backend_tests!(
    a_session_expires_exactly_at_its_timeout,
    an_expired_session_answers_410_to_every_action,
    an_expired_session_counts_as_expired_before_any_reap,
    heartbeat_renews_with_auto_renew,
    heartbeat_without_auto_renew_only_records_activity,
    renew_works_without_auto_renew,
    renew_is_capped_at_max_duration,
    renew_at_the_cap_is_422,
    heartbeat_at_the_cap_is_not_an_error,
    a_capped_session_expires_at_the_cap,
    warning_threshold_sets_is_near_expiration,
    health_counts_sessions_within_the_warning_threshold,
    session_overrides_agent_overrides_global,
    an_agent_without_overrides_gets_the_global_defaults,
    changing_an_agent_affects_new_sessions_only,
    patch_recomputes_expiry_from_now,
    patch_max_duration_caps_the_expiry,
    patch_max_duration_below_the_session_age_is_422,
    an_empty_patch_keeps_the_config,
);

async fn a_session_expires_exactly_at_its_timeout(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let id = app.session().await;

    app.clock.advance_ms(30 * MINUTE - 1);
    let (status, body) = app.get(paths::session(&id)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["timeRemaining"], 1);

    app.clock.advance_ms(1);
    let (status, body) = app.get(paths::session(&id)).await;
    assert_error(status, &body, StatusCode::GONE, "SESSION_EXPIRED");
    assert_eq!(body["details"]["expiredAt"], "2026-01-01T00:30:00.000Z");
}

async fn an_expired_session_answers_410_to_every_action(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let id = app.session().await;

    app.clock.advance_minutes(30);
    for (status, body) in [
        app.post_empty(paths::renew(&id)).await,
        app.post_empty(paths::heartbeat(&id)).await,
        app.patch(paths::timeout(&id), json!({"timeoutMinutes": 60}))
            .await,
    ] {
        assert_error(status, &body, StatusCode::GONE, "SESSION_EXPIRED");
        assert_eq!(body["details"]["expiredAt"], "2026-01-01T00:30:00.000Z");
    }
}

async fn an_expired_session_counts_as_expired_before_any_reap(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    app.session().await;

    app.clock.advance_minutes(30);
    assert_eq!(app.session_count("active").await, 0);
    assert_eq!(app.session_count("expired").await, 1);
    let (_, health) = app.get(paths::health()).await;
    assert_eq!(health["activeSessions"], 0);
    assert_eq!(health["invalidSessions"], 1);
}

async fn heartbeat_renews_with_auto_renew(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let renewing = app.session().await;

    app.clock.advance_minutes(20);
    let (_, body) = app.post_empty(paths::heartbeat(&renewing)).await;
    assert_eq!(ms(&body["expiresAt"]), T0 + 50 * MINUTE);
    assert_eq!(body["renewalCount"], 1);

    app.clock.advance_minutes(29);
    let (status, _) = app.get(paths::session(&renewing)).await;
    assert_eq!(status, StatusCode::OK, "renewed by the heartbeat");
    app.clock.advance_minutes(1);
    let (status, _) = app.get(paths::session(&renewing)).await;
    assert_eq!(status, StatusCode::GONE);
}

/// A session of a new agent with `autoRenew: false`.
async fn session_without_auto_renew(app: &TestApp) -> String {
    let agent = app.agent().await;
    id_of(
        &app.session_with(&agent, json!({"timeoutConfig": {"autoRenew": false}}))
            .await,
    )
}

async fn heartbeat_without_auto_renew_only_records_activity(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let fixed = session_without_auto_renew(&app).await;

    app.clock.advance_minutes(20);
    let (status, body) = app.post_empty(paths::heartbeat(&fixed)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(ms(&body["expiresAt"]), T0 + 30 * MINUTE, "no auto-renew");
    assert_eq!(
        ms(&body["lastActivity"]),
        T0 + 20 * MINUTE,
        "activity recorded"
    );
    assert_eq!(body["renewalCount"], 0);
}

async fn renew_works_without_auto_renew(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let fixed = session_without_auto_renew(&app).await;

    app.clock.advance_minutes(20);
    let (status, body) = app.post_empty(paths::renew(&fixed)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(ms(&body["expiresAt"]), T0 + 50 * MINUTE);
}

/// A session with a 60-minute maximum duration, renewed at 00:20 (to 00:50).
async fn session_capped_at_60_minutes_renewed_once(app: &TestApp) -> String {
    let agent = app.agent().await;
    let id = id_of(
        &app.session_with(&agent, json!({"timeoutConfig": {"maxDurationMinutes": 60}}))
            .await,
    );
    app.clock.advance_minutes(20);
    let (_, body) = app.post_empty(paths::renew(&id)).await;
    assert_eq!(ms(&body["expiresAt"]), T0 + 50 * MINUTE);
    id
}

/// [`session_capped_at_60_minutes_renewed_once`], renewed again at 00:40 up to the cap.
async fn session_renewed_up_to_its_cap(app: &TestApp) -> String {
    let id = session_capped_at_60_minutes_renewed_once(app).await;
    app.clock.advance_minutes(20);
    let (status, _) = app.post_empty(paths::renew(&id)).await;
    assert_eq!(status, StatusCode::OK);
    id
}

async fn renew_is_capped_at_max_duration(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let id = session_capped_at_60_minutes_renewed_once(&app).await;

    app.clock.advance_minutes(20);
    let (status, body) = app.post_empty(paths::renew(&id)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        ms(&body["expiresAt"]),
        T0 + 60 * MINUTE,
        "capped at createdAt + max"
    );
    assert_eq!(body["renewalCount"], 2);
}

async fn renew_at_the_cap_is_422(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let id = session_renewed_up_to_its_cap(&app).await;

    app.clock.advance_minutes(5);
    let (status, body) = app.post_empty(paths::renew(&id)).await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "SESSION_RENEWAL_FAILED",
    );
}

async fn heartbeat_at_the_cap_is_not_an_error(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let id = session_renewed_up_to_its_cap(&app).await;

    app.clock.advance_minutes(5);
    let (status, body) = app.post_empty(paths::heartbeat(&id)).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a heartbeat at the cap is not an error"
    );
    assert_eq!(ms(&body["expiresAt"]), T0 + 60 * MINUTE);
    assert_eq!(body["renewalCount"], 2);
}

async fn a_capped_session_expires_at_the_cap(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let id = session_renewed_up_to_its_cap(&app).await;

    app.clock.set(T0 + 60 * MINUTE);
    let (status, body) = app.get(paths::session(&id)).await;
    assert_error(status, &body, StatusCode::GONE, "SESSION_EXPIRED");
}

/// A session of a new agent that warns 10 minutes before it expires at 00:30.
async fn session_warning_10_minutes_ahead(app: &TestApp) -> String {
    let agent = app.agent().await;
    id_of(
        &app.session_with(
            &agent,
            json!({"timeoutConfig": {"warningThresholdMinutes": 10}}),
        )
        .await,
    )
}

async fn warning_threshold_sets_is_near_expiration(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let id = session_warning_10_minutes_ahead(&app).await;

    app.clock.advance_ms(20 * MINUTE - 1);
    let (_, body) = app.get(paths::session(&id)).await;
    assert_eq!(body["isNearExpiration"], false);

    app.clock.advance_ms(1);
    let (_, body) = app.get(paths::session(&id)).await;
    assert_eq!(body["isNearExpiration"], true);
    assert_eq!(body["timeRemaining"], 10 * MINUTE);
    let (_, list) = app.get(paths::sessions()).await;
    assert_eq!(list["sessions"][0]["isNearExpiration"], true);
}

async fn health_counts_sessions_within_the_warning_threshold(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    session_warning_10_minutes_ahead(&app).await;

    app.clock.advance_ms(20 * MINUTE - 1);
    let (_, health) = app.get(paths::health()).await;
    assert_eq!(health["expiringSoon"], 0);

    app.clock.advance_ms(1);
    let (_, health) = app.get(paths::health()).await;
    assert_eq!(health["expiringSoon"], 1);
}

/// An app whose global defaults are a 20-minute timeout and a 2-minute warning.
async fn spawn_with_20_minute_defaults(kind: Kind) -> TestApp {
    TestApp::spawn_with(kind, |s| {
        s.timeouts.timeout_minutes = 20;
        s.timeouts.warning_threshold_minutes = 2;
    })
    .await
}

/// An agent overriding the maximum duration (100) and the warning (4 minutes).
async fn agent_with_overrides(app: &TestApp) -> String {
    app.agent_with(json!({"maxDurationMinutes": 100, "warningThresholdMinutes": 4}))
        .await
}

async fn session_overrides_agent_overrides_global(kind: Kind) {
    let app = spawn_with_20_minute_defaults(kind).await;
    let agent = agent_with_overrides(&app).await;

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
}

async fn an_agent_without_overrides_gets_the_global_defaults(kind: Kind) {
    let app = spawn_with_20_minute_defaults(kind).await;
    let plain = app.agent().await;

    let body = app.session_with(&plain, json!({})).await;
    assert_eq!(
        body["timeoutConfig"],
        json!({"timeoutMinutes": 20, "autoRenew": true, "maxDurationMinutes": 720, "warningThresholdMinutes": 2})
    );
}

async fn changing_an_agent_affects_new_sessions_only(kind: Kind) {
    let app = spawn_with_20_minute_defaults(kind).await;
    let agent = agent_with_overrides(&app).await;
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

    app.clock.advance_minutes(10);
    let (status, body) = app
        .patch(paths::timeout(&id), json!({"timeoutMinutes": 60}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["timeoutConfig"]["timeoutMinutes"], 60);
    assert_eq!(
        body["timeoutConfig"]["autoRenew"], true,
        "fields not given are kept"
    );
    assert_eq!(ms(&body["expiresAt"]), T0 + 70 * MINUTE);
    assert_eq!(body["renewalCount"], 0);
}

async fn patch_max_duration_caps_the_expiry(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let id = app.session().await;
    app.clock.advance_minutes(10);
    let (status, _) = app
        .patch(paths::timeout(&id), json!({"timeoutMinutes": 60}))
        .await;
    assert_eq!(status, StatusCode::OK);

    app.clock.advance_minutes(10);
    let (_, body) = app
        .patch(paths::timeout(&id), json!({"maxDurationMinutes": 30}))
        .await;
    assert_eq!(
        ms(&body["expiresAt"]),
        T0 + 30 * MINUTE,
        "capped by the new max"
    );
}

async fn patch_max_duration_below_the_session_age_is_422(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let id = app.session().await;

    app.clock.advance_minutes(20);
    let (status, body) = app
        .patch(paths::timeout(&id), json!({"maxDurationMinutes": 15}))
        .await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "MAX_DURATION_EXCEEDED",
    );
    assert_eq!(body["details"]["field"], "maxDurationMinutes");
    assert_eq!(body["details"]["sessionAgeMs"], 20 * MINUTE);
}

async fn an_empty_patch_keeps_the_config(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let id = app.session().await;
    let (status, _) = app
        .patch(paths::timeout(&id), json!({"maxDurationMinutes": 30}))
        .await;
    assert_eq!(status, StatusCode::OK);

    let (status, body) = app.patch(paths::timeout(&id), json!({})).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "an empty patch keeps the config: {body}"
    );
    assert_eq!(body["timeoutConfig"]["maxDurationMinutes"], 30);
}
