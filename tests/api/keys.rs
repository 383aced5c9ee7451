//! `/api/keys`: key management over HTTP.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::backend_tests;
use crate::helpers::{paths, Kind, TestApp};

backend_tests!(
    a_created_key_works_at_once_and_its_secret_is_shown_once,
    a_revoked_key_is_refused,
    revoking_an_unknown_key_is_404,
    a_key_cannot_grant_a_scope_it_does_not_hold,
    a_bound_key_cannot_manage_keys,
    a_key_needs_keys_manage_to_manage_keys,
    a_key_request_is_validated,
    a_revocation_reaches_every_instance_within_a_second,
);

const KEYS: &str = "/api/keys";

async fn a_created_key_works_at_once_and_its_secret_is_shown_once(kind: Kind) {
    let app = TestApp::spawn_secured(kind).await;
    let agent = app.agent().await;
    let created = app
        .call(Method::POST, KEYS)
        .json(json!({"scopes": ["sessions:read", "sessions:create"], "agentId": agent, "name": " web "}))
        .send()
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let secret = created.body["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("ask_"), "{secret}");
    assert_eq!(created.body["name"], "web");
    assert_eq!(created.body["agentId"], agent);
    assert_eq!(
        created.body["scopes"],
        json!(["sessions:create", "sessions:read"])
    );
    assert!(created.body["revokedAt"].is_null());

    let reply = app
        .call(Method::GET, paths::sessions())
        .bearer(&secret)
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::OK, "a new key works at once");

    let list = app.call(Method::GET, KEYS).send().await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(!list.text.contains(&secret), "never listed: {}", list.text);
    let keys = list.body["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["keyId"], created.body["keyId"]);
    assert!(keys[0].get("secret").is_none());
}

async fn a_revoked_key_is_refused(kind: Kind) {
    let app = TestApp::spawn_secured(kind).await;
    let created = app
        .call(Method::POST, KEYS)
        .json(json!({"scopes": ["sessions:read"]}))
        .send()
        .await;
    let secret = created.body["secret"].as_str().unwrap().to_owned();
    let path = format!("{KEYS}/{}", created.body["keyId"].as_str().unwrap());
    let revoked = app.call(Method::DELETE, &path).send().await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.text);
    assert_eq!(revoked.body["revokedAt"], "2026-01-01T00:00:00.000Z");
    // Revoked through this instance: refused at once (other instances reload within 0.5 s;
    // tests/cli.rs shows a CLI revocation reaching a running server).
    app.call(Method::GET, paths::sessions())
        .bearer(&secret)
        .send()
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    let again = app.call(Method::DELETE, &path).send().await;
    assert_eq!(
        again.status,
        StatusCode::OK,
        "revoking twice changes nothing"
    );
    assert_eq!(again.body["revokedAt"], revoked.body["revokedAt"]);
}

async fn revoking_an_unknown_key_is_404(kind: Kind) {
    let app = TestApp::spawn_secured(kind).await;
    let path = format!("{KEYS}/{}", uuid::Uuid::new_v4());
    app.call(Method::DELETE, &path)
        .send()
        .await
        .assert_error(StatusCode::NOT_FOUND, "KEY_NOT_FOUND");
    app.call(Method::DELETE, format!("{KEYS}/nope"))
        .send()
        .await
        .assert_error(StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
}

async fn a_key_cannot_grant_a_scope_it_does_not_hold(kind: Kind) {
    let app = TestApp::spawn_secured(kind).await;
    let manager = app
        .create_key(&["keys:manage", "sessions:read"], None)
        .await;
    let ok = app
        .call(Method::POST, KEYS)
        .bearer(&manager)
        .json(json!({"scopes": ["sessions:read"]}))
        .send()
        .await;
    assert_eq!(ok.status, StatusCode::CREATED, "{}", ok.text);
    let escalation = app
        .call(Method::POST, KEYS)
        .bearer(&manager)
        .json(json!({"scopes": ["sessions:read", "sessions:manage"]}))
        .send()
        .await;
    escalation.assert_error(StatusCode::FORBIDDEN, "FORBIDDEN");
    let list = app.call(Method::GET, KEYS).send().await;
    assert_eq!(
        list.body["keys"].as_array().unwrap().len(),
        2,
        "the refused key was not stored"
    );
}

async fn a_bound_key_cannot_manage_keys(kind: Kind) {
    let app = TestApp::spawn_secured(kind).await;
    let agent = app.agent().await;
    let bound = app.create_key(&["keys:manage"], Some(&agent)).await;
    app.call(Method::GET, KEYS)
        .bearer(&bound)
        .send()
        .await
        .assert_error(StatusCode::FORBIDDEN, "FORBIDDEN");
}

async fn a_key_needs_keys_manage_to_manage_keys(kind: Kind) {
    let app = TestApp::spawn_secured(kind).await;
    let reader = app.create_key(&["sessions:read"], None).await;
    for (method, path) in [
        (Method::GET, KEYS.to_owned()),
        (Method::POST, KEYS.to_owned()),
        (Method::DELETE, format!("{KEYS}/{}", uuid::Uuid::new_v4())),
    ] {
        let reply = app
            .call(method.clone(), &path)
            .bearer(&reader)
            .json(json!({"scopes": ["sessions:read"]}))
            .send()
            .await;
        reply.assert_error(StatusCode::FORBIDDEN, "FORBIDDEN");
        let reply = app
            .call(method.clone(), &path)
            .without_credential()
            .send()
            .await;
        reply.assert_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    }
}

async fn a_key_request_is_validated(kind: Kind) {
    let app = TestApp::spawn_secured(kind).await;
    for (body, field) in [
        (json!({"scopes": []}), "scopes"),
        (json!({"scopes": ["sessions:admin"]}), "scopes[0]"),
        (
            json!({"scopes": ["sessions:read"], "agentId": "x"}),
            "agentId",
        ),
        (
            json!({"scopes": ["sessions:read"], "name": "a".repeat(201)}),
            "name",
        ),
    ] {
        let reply = app.call(Method::POST, KEYS).json(body).send().await;
        reply.assert_error(StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
        assert_eq!(reply.body["details"]["field"], field, "{}", reply.text);
    }
    let list = app.call(Method::GET, KEYS).send().await;
    assert_eq!(list.body["keys"], json!([]), "nothing stored");
}

/// Polls `GET /api/messaging/sessions` with `secret` on `app` until it answers `expected`;
/// false if it has not after `within`. Key snapshots reload on real time (every 0.5 s), not
/// on the manual clock, so this is the one place tests wait on the wall clock.
async fn answers_within(
    app: &TestApp,
    secret: &str,
    expected: StatusCode,
    within: Duration,
) -> bool {
    let started = std::time::Instant::now();
    loop {
        let reply = app
            .call(Method::GET, paths::sessions())
            .bearer(secret)
            .send()
            .await;
        if reply.status == expected {
            return true;
        }
        if started.elapsed() > within {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn a_revocation_reaches_every_instance_within_a_second(kind: Kind) {
    let first = TestApp::spawn_secured(kind).await;
    let second = TestApp::spawn_secured_on(first.db.clone(), |_| {}).await;
    let created = first
        .call(Method::POST, KEYS)
        .json(json!({"scopes": ["sessions:read"]}))
        .send()
        .await;
    let secret = created.body["secret"].as_str().unwrap().to_owned();
    assert!(
        answers_within(&second, &secret, StatusCode::OK, Duration::from_millis(0)).await,
        "a key made on one instance works on another at once"
    );
    // Let the second instance's snapshot take the key in, so that it answers from memory.
    tokio::time::sleep(Duration::from_millis(600)).await;

    let path = format!("{KEYS}/{}", created.body["keyId"].as_str().unwrap());
    let revoked = first.call(Method::DELETE, &path).send().await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.text);
    assert!(
        answers_within(
            &second,
            &secret,
            StatusCode::UNAUTHORIZED,
            Duration::from_millis(1000)
        )
        .await,
        "the other instance refuses the revoked key within a second"
    );
}
