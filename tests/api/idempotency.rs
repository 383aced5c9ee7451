//! `Idempotency-Key` on creating a session and on sending a message.

use std::collections::HashSet;

use futures::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::backend_tests;
use crate::helpers::{assert_error, id_of, paths, Kind, Reply, TestApp};

backend_tests!(
    a_retried_create_replays_the_original,
    a_create_key_reused_with_another_body_is_422,
    concurrent_creates_with_one_key_create_one_session,
    keys_are_forgotten_after_24_hours,
    a_malformed_key_is_400,
    a_retried_send_replays_the_original,
    a_send_key_reused_with_another_body_is_422,
    a_send_key_is_scoped_to_its_session,
    concurrent_sends_with_one_key_store_one_message,
    a_replayed_create_is_the_first_answer_byte_for_byte,
    a_replayed_send_is_the_first_answer_byte_for_byte,
);

/// Sends the same keyed POST twice, a few minutes apart, with the same headers; returns both
/// answers as received.
async fn twice(
    app: &TestApp,
    path: impl AsRef<str> + Copy,
    headers: &[(&str, &str)],
    body: Value,
) -> [crate::helpers::Reply; 2] {
    let send = || async {
        let mut call = app.call(Method::POST, path).json(body.clone());
        for (name, value) in headers {
            call = call.header(name, value);
        }
        call.send().await
    };
    let first = send().await;
    app.clock.advance_minutes(3);
    let again = send().await;
    [first, again]
}

/// POSTs `body` with an `Idempotency-Key`; returns the status, the body and whether the
/// answer says it was replayed.
async fn post_with_key(
    app: &TestApp,
    path: impl AsRef<str>,
    key: &str,
    body: Value,
) -> (StatusCode, Value, bool) {
    let reply = app
        .call(Method::POST, path)
        .header("Idempotency-Key", key)
        .json(body)
        .send()
        .await;
    let replayed = reply.headers.contains_key("idempotent-replayed");
    (reply.status, reply.body, replayed)
}

/// A create-session request for a new agent and user.
async fn create_request(app: &TestApp) -> Value {
    json!({"agentId": app.agent().await, "userId": uuid::Uuid::new_v4()})
}

async fn a_retried_create_replays_the_original(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let agent = app.agent().await;
    let user = uuid::Uuid::new_v4();
    let body = json!({"agentId": agent, "userId": user, "metadata": {"a": 1, "b": 2}});

    let (status, first, replayed) = post_with_key(&app, paths::sessions(), "create-1", body).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert!(!replayed);
    app.clock.advance_minutes(3);
    // Same JSON, keys in another order: the same request.
    let same = json!({"metadata": {"b": 2, "a": 1}, "userId": user, "agentId": agent});
    let (status, again, replayed) = post_with_key(&app, paths::sessions(), "create-1", same).await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(replayed);
    assert_eq!(
        without_token(&again),
        without_token(&first),
        "the original body, not a new session"
    );
    assert_ne!(
        again["sessionToken"], first["sessionToken"],
        "only the token's digest was kept: a replay hands out a fresh one"
    );
    assert_eq!(app.session_count("all").await, 1);
}

async fn a_create_key_reused_with_another_body_is_422(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let body = create_request(&app).await;
    let (status, _, _) = post_with_key(&app, paths::sessions(), "create-1", body).await;
    assert_eq!(status, StatusCode::CREATED);

    let other = create_request(&app).await;
    let (status, err, _) = post_with_key(&app, paths::sessions(), "create-1", other).await;
    assert_error(
        status,
        &err,
        StatusCode::UNPROCESSABLE_ENTITY,
        "IDEMPOTENCY_KEY_REUSED",
    );
    assert_eq!(app.session_count("all").await, 1);
}

async fn concurrent_creates_with_one_key_create_one_session(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let body = create_request(&app).await;

    let racers =
        (0..6).map(|_| post_with_key(&app, paths::sessions(), "create-race", body.clone()));
    let results = join_all(racers).await;
    let bodies: HashSet<String> = results
        .iter()
        .map(|(status, body, _)| {
            assert_eq!(*status, StatusCode::CREATED, "{body}");
            id_of(body)
        })
        .collect();
    assert_eq!(bodies.len(), 1);
    assert_eq!(app.session_count("all").await, 1);
}

async fn keys_are_forgotten_after_24_hours(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let body = create_request(&app).await;
    let (status, _, _) = post_with_key(&app, paths::sessions(), "create-1", body).await;
    assert_eq!(status, StatusCode::CREATED);

    // The reaper purges keys older than 24 hours.
    app.clock.advance_minutes(3 + 24 * 60);
    let report = app.reap().await;
    assert!(report.idempotency_keys_purged >= 1);
    let other = create_request(&app).await;
    let (status, _, replayed) = post_with_key(&app, paths::sessions(), "create-1", other).await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(!replayed);
}

async fn a_malformed_key_is_400(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let body = create_request(&app).await;
    let (status, err, _) =
        post_with_key(&app, paths::sessions(), "bad key with spaces", body).await;
    assert_error(status, &err, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
}

async fn a_retried_send_replays_the_original(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let path = paths::messages(app.session().await);
    let body = json!({"content": "only once"});
    let (status, first, _) = post_with_key(&app, &path, "msg-1", body.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");

    app.clock.advance_minutes(1);
    let (status, again, replayed) = post_with_key(&app, &path, "msg-1", body).await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(replayed);
    assert_eq!(again, first);
}

async fn a_send_key_reused_with_another_body_is_422(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let path = paths::messages(app.session().await);
    let (status, _, _) = post_with_key(&app, &path, "msg-1", json!({"content": "only once"})).await;
    assert_eq!(status, StatusCode::CREATED);

    let (status, err, _) = post_with_key(&app, &path, "msg-1", json!({"content": "changed"})).await;
    assert_error(
        status,
        &err,
        StatusCode::UNPROCESSABLE_ENTITY,
        "IDEMPOTENCY_KEY_REUSED",
    );
}

async fn a_send_key_is_scoped_to_its_session(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let body = json!({"content": "only once"});
    let first = paths::messages(app.session().await);
    let (status, _, _) = post_with_key(&app, first, "msg-1", body.clone()).await;
    assert_eq!(status, StatusCode::CREATED);

    // The same key on another session is another request.
    let other = paths::messages(app.session().await);
    let (status, _, replayed) = post_with_key(&app, other, "msg-1", body).await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(!replayed);
}

async fn concurrent_sends_with_one_key_store_one_message(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let path = paths::messages(app.session().await);

    let racers = (0..6).map(|_| post_with_key(&app, &path, "msg-race", json!({"content": "race"})));
    for (status, body, _) in join_all(racers).await {
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let (_, page) = app.get(&path).await;
    assert_eq!(page["messages"].as_array().unwrap().len(), 1);
    assert_eq!(app.stored_messages().await, 1);
}

async fn a_replayed_create_is_the_first_answer_byte_for_byte(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let body = json!({
        "agentId": app.agent().await,
        "userId": uuid::Uuid::new_v4(),
        "metadata": {"z": [1, {"y": null}], "a": "\u{e9}"},
        "timeoutConfig": {"timeoutMinutes": 45},
    });
    let headers = [("Idempotency-Key", "create-bytes"), ("X-Debug", "true")];
    let [first, again] = twice(&app, paths::sessions().as_ref(), &headers, body).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);
    assert!(first.body["debug"].is_object(), "{}", first.text);
    assert_eq!(again.status, StatusCode::CREATED);
    assert_eq!(again.headers["idempotent-replayed"], "true");
    // Byte for byte but for the token, which is new on every replay.
    let token = |r: &Reply| r.body["sessionToken"].as_str().unwrap().to_owned();
    assert_eq!(
        again.text.replace(&token(&again), "TOKEN"),
        first.text.replace(&token(&first), "TOKEN")
    );
}

/// A create answer without its `sessionToken`.
fn without_token(body: &Value) -> Value {
    let mut body = body.clone();
    body.as_object_mut().unwrap().remove("sessionToken");
    body
}

async fn a_replayed_send_is_the_first_answer_byte_for_byte(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let path = paths::messages(app.session().await);
    let body = json!({
        "content": "only once",
        "attachments": [{"type": "image", "url": "https://example.com/a.png", "name": "a"}],
        "metadata": {"n": 1.5},
    });
    let headers = [("Idempotency-Key", "send-bytes")];
    let [first, again] = twice(&app, path.as_ref(), &headers, body).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);
    assert_eq!(again.status, StatusCode::CREATED);
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert_eq!(again.text, first.text);
    assert_eq!(app.stored_messages().await, 1);
}
