//! `GET /api/messaging/sessions/{id}/events`: the event log as Server-Sent Events.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::backend_tests;
use crate::helpers::sse::EventStream;
use crate::helpers::{id_of, paths, Kind, TestApp};

backend_tests!(
    a_stream_sends_the_log_then_live_events_and_ends_with_the_session,
    a_stream_resumes_after_last_event_id,
    a_stream_starts_after_the_cursor_parameter,
    a_stream_ends_with_the_reapers_expiry,
    a_stream_opens_with_its_own_token_as_access_token,
    a_stream_is_refused_with_a_status_not_inside_the_stream,
    a_sessions_open_streams_are_limited_and_given_back,
    a_credentials_open_streams_are_limited,
    a_waiting_watch_holds_a_slot_until_it_answers,
    a_reconnect_after_the_last_event_is_204,
);

/// Opens the session's stream with the app's default credential (and `header` if given).
async fn open_events(app: &TestApp, session: &str, header: Option<(&str, &str)>) -> EventStream {
    let path = format!("{}/events", paths::session(session).as_ref());
    EventStream::open(app, path, header).await
}

async fn a_stream_sends_the_log_then_live_events_and_ends_with_the_session(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let id = app.session().await;
    let mut events = open_events(&app, &id, None).await;
    let created = events.expect(1, "session.created").await;
    assert_eq!(created.data["data"]["sessionId"], id.as_str());

    // A minute on, the message also renews the session.
    app.clock.advance_minutes(1);
    app.message(&id, "live").await;
    let message = events.expect(2, "message.created").await;
    assert_eq!(message.data["data"]["content"], "live");
    events.expect(3, "session.renewed").await;

    let (status, _) = app.delete(paths::session(&id)).await;
    assert_eq!(status, StatusCode::OK);
    let ended = events.expect(4, "session.ended").await;
    assert_eq!(ended.data["data"]["reason"], "deleted");
    assert!(
        events.next().await.is_none(),
        "the stream ends with the session"
    );
}

async fn a_stream_resumes_after_last_event_id(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let id = app.session().await;
    for text in ["one", "two"] {
        app.message(&id, text).await;
    }
    // A reconnecting EventSource sends the last id it saw: nothing before it comes again.
    let mut events = open_events(&app, &id, Some(("Last-Event-ID", "2"))).await;
    let two = events.expect(3, "message.created").await;
    assert_eq!(two.data["data"]["content"], "two");
    app.message(&id, "three").await;
    let three = events.expect(4, "message.created").await;
    assert_eq!(three.data["data"]["content"], "three");
}

async fn a_stream_starts_after_the_cursor_parameter(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let id = app.session().await;
    app.message(&id, "one").await;
    let path = format!("{}/events?cursor=1", paths::session(&id).as_ref());
    let mut events = EventStream::of(app.call(Method::GET, path).open().await);
    let one = events.expect(2, "message.created").await;
    assert_eq!(one.data["data"]["content"], "one");
}

async fn a_stream_ends_with_the_reapers_expiry(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let id = app.session().await;
    let mut events = open_events(&app, &id, Some(("Last-Event-ID", "1"))).await;
    app.clock.advance_minutes(31);
    app.reap().await;
    let expired = events.expect(2, "session.expired").await;
    assert_eq!(expired.data["data"]["reason"], "idle");
    assert!(events.next().await.is_none());
}

async fn a_stream_opens_with_its_own_token_as_access_token(kind: Kind) {
    let app = TestApp::spawn_secured(kind).await;
    let agent = app.agent().await;
    let created = app.session_with(&agent, json!({})).await;
    let id = id_of(&created);
    let token = created["sessionToken"].as_str().unwrap();
    let path = format!(
        "{}/events?access_token={token}",
        paths::session(&id).as_ref()
    );
    let mut events = EventStream::of(
        app.call(Method::GET, path)
            .without_credential()
            .open()
            .await,
    );
    events.expect(1, "session.created").await;
}

async fn a_stream_is_refused_with_a_status_not_inside_the_stream(kind: Kind) {
    let app = TestApp::spawn_secured(kind).await;
    let agent = app.agent().await;
    let mine = app.session_with(&agent, json!({})).await;
    let other = id_of(&app.session_with(&agent, json!({})).await);
    let token = mine["sessionToken"].as_str().unwrap();
    let events = |id: &str| format!("{}/events", paths::session(id).as_ref());

    app.call(Method::GET, events(&other))
        .bearer(token)
        .send()
        .await
        .assert_error(StatusCode::FORBIDDEN, "FORBIDDEN");
    app.call(Method::GET, events(&other))
        .without_credential()
        .send()
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    app.call(Method::GET, events(&uuid::Uuid::new_v4().to_string()))
        .send()
        .await
        .assert_error(StatusCode::NOT_FOUND, "SESSION_NOT_FOUND");
    let reply = app
        .call(Method::GET, events(&other))
        .header("Last-Event-ID", "x")
        .send()
        .await;
    reply.assert_error(StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
    assert_eq!(reply.body["details"]["field"], "Last-Event-ID");
}

fn events_path(id: &str) -> String {
    format!("{}/events", paths::session(id).as_ref())
}

async fn a_sessions_open_streams_are_limited_and_given_back(kind: Kind) {
    let app = TestApp::spawn_with(kind, |s| s.max_streams_per_session = 2).await;
    let id = app.session().await;
    let mut first = open_events(&app, &id, None).await;
    let mut second = open_events(&app, &id, None).await;
    let refused = app.call(Method::GET, events_path(&id)).send().await;
    refused.assert_error(StatusCode::TOO_MANY_REQUESTS, "TOO_MANY_STREAMS");
    assert_eq!(refused.body["details"]["limit"], "streams_per_session");
    let watch = format!("{}/watch?timeout=0", paths::session(&id).as_ref());
    app.call(Method::GET, &watch)
        .send()
        .await
        .assert_error(StatusCode::TOO_MANY_REQUESTS, "TOO_MANY_STREAMS");
    // Another session is not affected.
    let other = app.session().await;
    open_events(&app, &other, None).await;

    // The streams end with the session and give their slots back.
    let (status, _) = app.delete(paths::session(&id)).await;
    assert_eq!(status, StatusCode::OK);
    for events in [&mut first, &mut second] {
        events.expect(1, "session.created").await;
        events.expect(2, "session.ended").await;
        assert!(events.next().await.is_none());
    }
    let reopened = app.call(Method::GET, events_path(&id)).open().await;
    assert_eq!(
        reopened.status(),
        StatusCode::OK,
        "the slots were given back"
    );
}

async fn a_credentials_open_streams_are_limited(kind: Kind) {
    let app = TestApp::spawn_secured_with(kind, |s| s.max_streams_per_credential = 2).await;
    let agent = app.agent().await;
    let reader = app.create_key(&["sessions:read"], None).await;
    let mut sessions = Vec::new();
    for _ in 0..3 {
        sessions.push(id_of(&app.session_with(&agent, json!({})).await));
    }
    let _open: Vec<_> = futures::future::join_all(sessions[..2].iter().map(|id| {
        app.call(Method::GET, events_path(id))
            .bearer(&reader)
            .open()
    }))
    .await;
    let refused = app
        .call(Method::GET, events_path(&sessions[2]))
        .bearer(&reader)
        .send()
        .await;
    refused.assert_error(StatusCode::TOO_MANY_REQUESTS, "TOO_MANY_STREAMS");
    assert_eq!(refused.body["details"]["limit"], "streams_per_credential");
    // Another credential has its own count.
    let admin = app
        .call(Method::GET, events_path(&sessions[2]))
        .open()
        .await;
    assert_eq!(admin.status(), StatusCode::OK);
}

async fn a_waiting_watch_holds_a_slot_until_it_answers(kind: Kind) {
    let app = TestApp::spawn_with(kind, |s| s.max_streams_per_session = 1).await;
    let id = app.session().await;
    let watch = |query: &str| format!("{}/watch?{query}", paths::session(&id).as_ref());
    let waiting = app
        .call(Method::GET, watch("cursor=1&timeout=10000"))
        .send();
    let meanwhile = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let refused = app
            .call(Method::GET, watch("cursor=1&timeout=0"))
            .send()
            .await;
        app.message(&id, "wake up").await;
        refused
    };
    let (answered, refused) = tokio::join!(waiting, meanwhile);
    refused.assert_error(StatusCode::TOO_MANY_REQUESTS, "TOO_MANY_STREAMS");
    assert_eq!(answered.status, StatusCode::OK, "{}", answered.text);
    let again = app
        .call(Method::GET, watch("cursor=2&timeout=0"))
        .send()
        .await;
    assert_eq!(
        again.status,
        StatusCode::OK,
        "the slot was given back: {}",
        again.text
    );
}

async fn a_reconnect_after_the_last_event_is_204(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let id = app.session().await;
    let (status, _) = app.delete(paths::session(&id)).await;
    assert_eq!(status, StatusCode::OK);
    // An EventSource that saw `session.ended` (cursor 2) reconnects with it: nothing more
    // will come, and a 204 makes it stop reconnecting.
    let reply = app
        .call(Method::GET, events_path(&id))
        .header("Last-Event-ID", "2")
        .open()
        .await;
    assert_eq!(reply.status(), StatusCode::NO_CONTENT);
    // From before the end, the stream sends it and ends.
    let mut events = open_events(&app, &id, Some(("Last-Event-ID", "1"))).await;
    events.expect(2, "session.ended").await;
    assert!(events.next().await.is_none());
}

/// PostgreSQL: a stream on one instance receives a message posted through another instance
/// sharing the database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_stream_receives_a_message_posted_through_another_instance() {
    let Some(kind) = Kind::postgres() else {
        return;
    };
    let writer = TestApp::spawn(kind).await;
    let reader = TestApp::spawn_on(writer.db.clone(), |_| {}).await;
    let id = writer.session().await;
    let mut events = open_events(&reader, &id, None).await;
    events.expect(1, "session.created").await;
    // The reader's LISTEN connection is up by now (it connected at start-up).
    tokio::time::sleep(Duration::from_millis(200)).await;
    let sent = writer.message(&id, "across instances").await;
    let frame = events.expect(2, "message.created").await;
    assert_eq!(frame.data["data"]["id"], sent["id"]);
}
