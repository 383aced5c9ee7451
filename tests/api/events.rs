//! The session event log and `GET /api/messaging/sessions/{id}/watch`: what each change
//! records, and how a reader long-polls the log.

use std::collections::HashSet;
use std::fmt::Display;
use std::time::{Duration, Instant};

use futures::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::backend_tests;
use crate::helpers::{assert_error, id_of, ms, paths, Kind, Reply, TestApp, MINUTE, T0};

backend_tests!(
    create_and_send_record_their_events,
    renew_heartbeat_and_timeout_changes_record_their_events,
    activity_that_renews_nothing_records_no_renewal,
    deleting_a_session_records_its_end,
    deleting_an_agent_ends_its_sessions_in_their_logs,
    the_reaper_records_why_each_session_expired,
    a_replayed_create_or_send_records_nothing_new,
    a_refused_call_records_nothing,
    watch_answers_at_once_with_the_events_after_the_cursor,
    watch_limit_pages_through_every_event_exactly_once,
    a_waiting_watch_is_woken_by_a_new_message,
    a_waiting_watch_ignores_other_sessions,
    a_waiting_watch_is_woken_by_the_reaper,
    a_watch_with_nothing_new_times_out_empty,
    a_watch_of_a_session_that_is_over_answers_at_once,
    the_log_outlives_a_deleted_session,
    a_token_dies_with_its_session_even_for_its_log,
    access_token_opens_the_watch_of_its_own_session,
    another_sessions_token_is_403,
    a_watch_without_credential_is_401,
    bad_watch_parameters_are_400,
    watch_of_an_unknown_session_is_404,
    the_reaper_purges_a_deleted_sessions_log_after_retention,
    the_retention_window_counts_from_the_last_event,
    a_long_lived_session_keeps_the_window_and_an_older_cursor_is_410,
);

const HOUR: i64 = 60 * MINUTE;

/// Well under any long-poll timeout these tests use, well over a prompt answer.
const PROMPT: Duration = Duration::from_secs(5);

/// `/api/messaging/sessions/{id}/watch?{query}`.
fn watch(id: impl Display, query: impl Display) -> String {
    format!("{}/watch?{query}", paths::session(id).as_ref())
}

/// A timestamp as the API writes it: RFC 3339, milliseconds, `Z`.
fn at(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .expect("a valid instant")
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A watch with the app's default credential that must answer 200; returns the body.
async fn watch_ok(app: &TestApp, id: &str, query: &str) -> Value {
    let (status, body) = app.get(watch(id, query)).await;
    assert_eq!(status, StatusCode::OK, "watch {id}?{query}: {body}");
    body
}

/// A watch that must answer 200; returns the body and how long it took.
async fn timed_watch(app: &TestApp, id: &str, query: &str) -> (Value, Duration) {
    let started = Instant::now();
    let body = watch_ok(app, id, query).await;
    (body, started.elapsed())
}

/// The whole log of a session, oldest first, read without waiting.
async fn log(app: &TestApp, id: &str) -> Vec<Value> {
    let body = watch_ok(app, id, "cursor=0&limit=500&timeout=0").await;
    body["events"].as_array().expect("events").clone()
}

/// The events of a watch answer.
fn events(body: &Value) -> &Vec<Value> {
    body["events"].as_array().expect("events array")
}

fn types(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["type"].as_str().expect("type"))
        .collect()
}

fn cursors(events: &[Value]) -> Vec<i64> {
    events
        .iter()
        .map(|e| e["cursor"].as_i64().expect("cursor"))
        .collect()
}

/// Asserts a whole log's envelope: cursors 1..=n without gaps, the session and agent.
fn assert_log(events: &[Value], session: &str, agent: &str) {
    let expected: Vec<i64> = (1..=events.len() as i64).collect();
    assert_eq!(cursors(events), expected, "{events:#?}");
    for e in events {
        assert_eq!(e["sessionId"], session, "{e}");
        assert_eq!(e["agentId"], agent, "{e}");
    }
}

/// A create answer without its token: the session as a read shows it.
fn without_token(created: &Value) -> Value {
    let mut session = created.clone();
    let fields = session.as_object_mut().unwrap();
    fields.remove("sessionToken");
    fields.remove("participantTokens");
    session
}

/// The `sessionToken` of a create answer.
fn token_of(created: &Value) -> String {
    created["sessionToken"]
        .as_str()
        .unwrap_or_else(|| panic!("a created session has a token: {created}"))
        .to_owned()
}

/// The messages of a session as the messages route lists them, by id.
async fn listed_messages(app: &TestApp, id: &str) -> Vec<Value> {
    let (status, page) = app.get(paths::messages(id)).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page["messages"].as_array().unwrap().clone()
}

fn listed<'a>(messages: &'a [Value], id: &Value) -> &'a Value {
    messages
        .iter()
        .find(|m| m["id"] == *id)
        .unwrap_or_else(|| panic!("message {id} is listed: {messages:#?}"))
}

async fn create_and_send_record_their_events(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let agent = app.agent().await;
    let created = app
        .session_with(&agent, json!({"metadata": {"platform": "web"}}))
        .await;
    let id = id_of(&created);

    // At the creation instant activity moves nothing: the message alone is recorded.
    let first = app.message(&id, "hello").await;
    // A minute later it moves `expiresAt` (auto-renew): the message, then the renewal.
    app.clock.advance_minutes(1);
    let second = app.message(&id, "again").await;

    let messages = listed_messages(&app, &id).await;
    let log = log(&app, &id).await;
    assert_log(&log, &id, &agent);
    assert_eq!(
        types(&log),
        [
            "session.created",
            "message.created",
            "message.created",
            "session.renewed"
        ]
    );
    assert_eq!(log[0]["timestamp"], at(T0));
    assert_eq!(log[0]["data"], without_token(&created));
    assert!(log[0]["data"].get("sessionToken").is_none());

    assert_eq!(log[1]["timestamp"], at(T0));
    assert_eq!(log[1]["data"], *listed(&messages, &first["id"]));
    assert_eq!(log[1]["data"]["content"], "hello");

    assert_eq!(log[2]["timestamp"], at(T0 + MINUTE));
    assert_eq!(log[2]["data"], *listed(&messages, &second["id"]));
    assert_eq!(log[3]["timestamp"], at(T0 + MINUTE));
    assert_eq!(
        log[3]["data"],
        json!({
            "expiresAt": at(T0 + 31 * MINUTE),
            "renewalCount": 1,
            "lastActivity": at(T0 + MINUTE),
        })
    );
}

async fn renew_heartbeat_and_timeout_changes_record_their_events(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let agent = app.agent().await;
    let id = id_of(&app.session_with(&agent, json!({})).await);

    app.clock.advance_minutes(1);
    let (status, renewed) = app.post_empty(paths::renew(&id)).await;
    assert_eq!(status, StatusCode::OK, "{renewed}");
    app.clock.advance_minutes(1);
    let (status, beat) = app.post_empty(paths::heartbeat(&id)).await;
    assert_eq!(status, StatusCode::OK, "{beat}");
    app.clock.advance_minutes(1);
    let (status, patched) = app
        .patch(paths::timeout(&id), json!({"timeoutMinutes": 60}))
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");

    let log = log(&app, &id).await;
    assert_log(&log, &id, &agent);
    assert_eq!(
        types(&log),
        [
            "session.created",
            "session.renewed",
            "session.renewed",
            "session.timeout_updated"
        ]
    );
    assert_eq!(log[1]["timestamp"], at(T0 + MINUTE));
    assert_eq!(
        log[1]["data"],
        json!({
            "expiresAt": at(T0 + 31 * MINUTE),
            "renewalCount": 1,
            "lastActivity": at(T0 + MINUTE),
        })
    );
    assert_eq!(log[2]["timestamp"], at(T0 + 2 * MINUTE));
    assert_eq!(
        log[2]["data"],
        json!({
            "expiresAt": at(T0 + 32 * MINUTE),
            "renewalCount": 2,
            "lastActivity": at(T0 + 2 * MINUTE),
        })
    );
    for (event, answer) in [(&log[1], &renewed), (&log[2], &beat)] {
        for field in ["expiresAt", "renewalCount", "lastActivity"] {
            assert_eq!(event["data"][field], answer[field], "{field}: {event}");
        }
    }
    assert_eq!(log[3]["timestamp"], at(T0 + 3 * MINUTE));
    assert_eq!(
        log[3]["data"],
        json!({
            "timeoutConfig": {
                "timeoutMinutes": 60,
                "autoRenew": true,
                "maxDurationMinutes": 720,
                "warningThresholdMinutes": 5
            },
            "expiresAt": at(T0 + 63 * MINUTE),
        })
    );
    assert_eq!(log[3]["data"]["timeoutConfig"], patched["timeoutConfig"]);
    assert_eq!(log[3]["data"]["expiresAt"], patched["expiresAt"]);
}

async fn activity_that_renews_nothing_records_no_renewal(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let agent = app.agent().await;
    let id = id_of(
        &app.session_with(&agent, json!({"timeoutConfig": {"autoRenew": false}}))
            .await,
    );

    app.clock.advance_minutes(1);
    let (status, beat) = app.post_empty(paths::heartbeat(&id)).await;
    assert_eq!(status, StatusCode::OK, "{beat}");
    assert_eq!(beat["renewalCount"], 0, "autoRenew is off: {beat}");
    assert_eq!(
        types(&log(&app, &id).await),
        ["session.created"],
        "a heartbeat that renews nothing records nothing"
    );

    app.clock.advance_minutes(1);
    app.message(&id, "no renewal").await;
    let log = log(&app, &id).await;
    assert_log(&log, &id, &agent);
    assert_eq!(
        types(&log),
        ["session.created", "message.created"],
        "a message that renews nothing records no renewal"
    );
}

async fn deleting_a_session_records_its_end(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let agent = app.agent().await;
    let id = id_of(&app.session_with(&agent, json!({})).await);

    app.clock.advance_minutes(2);
    let (status, body) = app.delete(paths::session(&id)).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let log = log(&app, &id).await;
    assert_log(&log, &id, &agent);
    assert_eq!(types(&log), ["session.created", "session.ended"]);
    assert_eq!(log[1]["timestamp"], at(T0 + 2 * MINUTE));
    assert_eq!(
        log[1]["data"],
        json!({"reason": "deleted", "endedAt": at(T0 + 2 * MINUTE)})
    );
}

async fn deleting_an_agent_ends_its_sessions_in_their_logs(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let doomed = app.agent().await;
    let ended: Vec<String> = join_all((0..2).map(|_| app.session_with(&doomed, json!({}))))
        .await
        .iter()
        .map(id_of)
        .collect();
    let other_agent = app.agent().await;
    let other = id_of(&app.session_with(&other_agent, json!({})).await);

    app.clock.advance_minutes(3);
    let (status, body) = app.delete(paths::agent(&doomed)).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    for id in &ended {
        let log = log(&app, id).await;
        assert_log(&log, id, &doomed);
        assert_eq!(types(&log), ["session.created", "session.ended"]);
        assert_eq!(log[1]["timestamp"], at(T0 + 3 * MINUTE));
        assert_eq!(
            log[1]["data"],
            json!({"reason": "agent_deleted", "endedAt": at(T0 + 3 * MINUTE)})
        );
    }
    assert_eq!(
        types(&log(&app, &other).await),
        ["session.created"],
        "another agent's session is untouched"
    );
}

async fn the_reaper_records_why_each_session_expired(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let agent = app.agent().await;
    // Idle: 30 minutes without activity. Capped: its 10-minute maximum comes first.
    let idle = id_of(&app.session_with(&agent, json!({})).await);
    let capped = id_of(
        &app.session_with(&agent, json!({"timeoutConfig": {"maxDurationMinutes": 10}}))
            .await,
    );
    let live_agent = app.agent_with(json!({"timeoutMinutes": 60})).await;
    let live = id_of(&app.session_with(&live_agent, json!({})).await);

    app.clock.advance_minutes(31);
    let report = app.reap().await;
    assert_eq!(report.expired.len(), 2, "{report:?}");
    assert!(
        app.reap().await.expired.is_empty(),
        "each session expires once"
    );

    for (id, reason, expired_at) in [
        (&idle, "idle", T0 + 30 * MINUTE),
        (&capped, "max_duration", T0 + 10 * MINUTE),
    ] {
        let log = log(&app, id).await;
        assert_log(&log, id, &agent);
        assert_eq!(types(&log), ["session.created", "session.expired"], "{id}");
        assert_eq!(
            log[1]["timestamp"],
            at(T0 + 31 * MINUTE),
            "the reaper's now"
        );
        assert_eq!(
            log[1]["data"],
            json!({"reason": reason, "expiredAt": at(expired_at)})
        );
    }
    assert_eq!(types(&log(&app, &live).await), ["session.created"]);
}

/// POSTs `body` with an `Idempotency-Key`; returns the answer.
async fn post_with_key(app: &TestApp, path: impl AsRef<str>, key: &str, body: Value) -> Reply {
    app.call(Method::POST, path)
        .header("Idempotency-Key", key)
        .json(body)
        .send()
        .await
}

async fn a_replayed_create_or_send_records_nothing_new(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let agent = app.agent().await;
    let request = json!({"agentId": agent, "userId": uuid::Uuid::new_v4()});
    let first = post_with_key(&app, paths::sessions(), "create-1", request.clone()).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    let id = id_of(&first.body);
    app.clock.advance_minutes(1);
    let again = post_with_key(&app, paths::sessions(), "create-1", request).await;
    assert_eq!(again.status, StatusCode::CREATED, "{}", again.body);
    assert_eq!(id_of(&again.body), id, "the replay is the first session");
    assert_eq!(types(&log(&app, &id).await), ["session.created"]);

    // The first send renews (a minute on); its replay records neither event again.
    let message = json!({"content": "once"});
    for _ in 0..2 {
        let reply = post_with_key(&app, paths::messages(&id), "send-1", message.clone()).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        app.clock.advance_minutes(1);
    }
    let log = log(&app, &id).await;
    assert_log(&log, &id, &agent);
    assert_eq!(
        types(&log),
        ["session.created", "message.created", "session.renewed"]
    );
}

async fn a_refused_call_records_nothing(kind: Kind) {
    let app = TestApp::spawn_secured(kind).await;
    let agent = app.agent().await;
    let id = id_of(&app.session_with(&agent, json!({})).await);
    let other = app.session_with(&app.agent().await, json!({})).await;
    let other_token = token_of(&other);
    let other_agent_key = app
        .create_key(
            &["sessions:write"],
            Some(other["agentId"].as_str().unwrap()),
        )
        .await;
    let read_only_key = app.create_key(&["sessions:read"], None).await;
    // A minute on, an accepted send or heartbeat would renew: a leak would show twice.
    app.clock.advance_minutes(1);

    let send = |body: Value| app.call(Method::POST, paths::messages(&id)).json(body);
    let refused: Vec<(&str, Reply)> = vec![
        ("empty content", send(json!({"content": ""})).send().await),
        (
            "foreign author",
            send(json!({"content": "x", "authorId": uuid::Uuid::new_v4()}))
                .send()
                .await,
        ),
        (
            "another session's token",
            send(json!({"content": "x"}))
                .bearer(&other_token)
                .send()
                .await,
        ),
        (
            "a key bound to another agent",
            send(json!({"content": "x"}))
                .bearer(&other_agent_key)
                .send()
                .await,
        ),
        (
            "a key without the scope",
            send(json!({"content": "x"}))
                .bearer(&read_only_key)
                .send()
                .await,
        ),
        (
            "heartbeat with another session's token",
            app.call(Method::POST, paths::heartbeat(&id))
                .bearer(&other_token)
                .send()
                .await,
        ),
        (
            "renew by a key bound to another agent",
            app.call(Method::POST, paths::renew(&id))
                .bearer(&other_agent_key)
                .send()
                .await,
        ),
        (
            "a timeout out of range",
            app.call(Method::PATCH, paths::timeout(&id))
                .json(json!({"timeoutMinutes": 1}))
                .send()
                .await,
        ),
        (
            "a maximum already past",
            app.call(Method::PATCH, paths::timeout(&id))
                .json(json!({"maxDurationMinutes": 1}))
                .send()
                .await,
        ),
        (
            "delete with another session's token",
            app.call(Method::DELETE, paths::session(&id))
                .bearer(&other_token)
                .send()
                .await,
        ),
    ];
    for (what, reply) in &refused {
        assert!(
            reply.status.is_client_error(),
            "{what}: refused, got {} {}",
            reply.status,
            reply.body
        );
    }
    assert_eq!(
        types(&log(&app, &id).await),
        ["session.created"],
        "refused calls record nothing"
    );
    let (_, session) = app.get(paths::session(&id)).await;
    assert_eq!(session["renewalCount"], 0, "{session}");
    assert_eq!(session["lastActivity"], at(T0), "{session}");
}

async fn watch_answers_at_once_with_the_events_after_the_cursor(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let id = app.session().await;
    for content in ["one", "two", "three"] {
        app.message(&id, content).await;
    }

    let (body, took) = timed_watch(&app, &id, "cursor=2&timeout=10000").await;
    assert!(took < PROMPT, "answered at once, took {took:?}");
    assert_eq!(cursors(events(&body)), [3, 4], "{body}");
    assert_eq!(types(events(&body)), ["message.created", "message.created"]);
    assert_eq!(body["events"][0]["data"]["content"], "two");
    assert_eq!(body["events"][1]["data"]["content"], "three");
    assert_eq!(body["cursor"], 4, "the last event's cursor");

    let (body, took) = timed_watch(&app, &id, "timeout=10000").await;
    assert!(took < PROMPT, "answered at once, took {took:?}");
    assert_eq!(
        cursors(events(&body)),
        [1, 2, 3, 4],
        "the cursor defaults to 0"
    );
}

async fn watch_limit_pages_through_every_event_exactly_once(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let id = app.session().await;
    let contents: Vec<String> = (1..=9).map(|i| format!("message {i}")).collect();
    for content in &contents {
        app.message(&id, content).await;
    }

    let (mut cursor, mut seen, mut pages) = (0, Vec::new(), Vec::new());
    loop {
        let body = watch_ok(&app, &id, &format!("cursor={cursor}&limit=3&timeout=0")).await;
        let page = events(&body).clone();
        if page.is_empty() {
            assert_eq!(body["cursor"], cursor, "no events: the cursor is unchanged");
            break;
        }
        assert_eq!(body["cursor"], page.last().unwrap()["cursor"], "{body}");
        cursor = body["cursor"].as_i64().unwrap();
        pages.push(page.len());
        seen.extend(page);
        assert!(pages.len() <= 10, "paging ends: {pages:?}");
    }
    assert_eq!(pages, [3, 3, 3, 1]);
    assert_eq!(cursors(&seen), (1..=10).collect::<Vec<_>>());
    let sent: Vec<&str> = seen[1..]
        .iter()
        .map(|e| e["data"]["content"].as_str().unwrap())
        .collect();
    assert_eq!(sent, contents, "every message once, oldest first");

    let body = watch_ok(&app, &id, "limit=500&timeout=0").await;
    assert_eq!(events(&body).len(), 10, "limit 500 is allowed");
}

async fn a_waiting_watch_is_woken_by_a_new_message(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let id = app.session().await;

    let started = Instant::now();
    let (body, sent) = tokio::join!(watch_ok(&app, &id, "cursor=1&timeout=10000"), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        app.message(&id, "wake up").await
    });
    let took = started.elapsed();
    assert!(took < PROMPT, "woken by the message, took {took:?}");
    assert_eq!(cursors(events(&body)), [2], "{body}");
    assert_eq!(body["events"][0]["type"], "message.created");
    assert_eq!(body["events"][0]["data"]["id"], sent["id"]);
    assert_eq!(body["events"][0]["data"]["content"], "wake up");
    assert_eq!(body["cursor"], 2);
}

async fn a_waiting_watch_ignores_other_sessions(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let id = app.session().await;
    let other = app.session().await;

    let started = Instant::now();
    let (body, _) = tokio::join!(watch_ok(&app, &id, "cursor=1&timeout=300"), async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        app.message(&other, "not for you").await
    });
    let took = started.elapsed();
    assert_eq!(body, json!({"events": [], "cursor": 1}));
    assert!(
        took >= Duration::from_millis(300),
        "kept waiting until the timeout, took {took:?}"
    );
}

async fn a_waiting_watch_is_woken_by_the_reaper(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let id = app.session().await;

    let started = Instant::now();
    let (body, _) = tokio::join!(watch_ok(&app, &id, "cursor=1&timeout=10000"), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        app.clock.advance_minutes(31);
        app.reap().await
    });
    let took = started.elapsed();
    assert!(took < PROMPT, "woken by the expiry, took {took:?}");
    assert_eq!(types(events(&body)), ["session.expired"], "{body}");
    assert_eq!(body["cursor"], 2);
}

async fn a_watch_with_nothing_new_times_out_empty(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let id = app.session().await;

    for cursor in [1, 7] {
        let (body, took) = timed_watch(&app, &id, &format!("cursor={cursor}&timeout=50")).await;
        assert_eq!(body, json!({"events": [], "cursor": cursor}));
        assert!(
            took >= Duration::from_millis(50),
            "waited the timeout, took {took:?}"
        );
        assert!(took < PROMPT, "gave up at the timeout, took {took:?}");
    }
}

async fn a_watch_of_a_session_that_is_over_answers_at_once(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let expired = app.session().await;
    let doomed = app.agent().await;
    let ended = id_of(&app.session_with(&doomed, json!({})).await);
    let (status, _) = app.delete(paths::agent(&doomed)).await;
    assert_eq!(status, StatusCode::OK);
    let deleted = app.session().await;
    let (status, _) = app.delete(paths::session(&deleted)).await;
    assert_eq!(status, StatusCode::OK);

    // Over once its last event is recorded (the scheduler records an expiry when it happens;
    // this app's frozen clock leaves it to this explicit pass): nothing more will come.
    app.clock.advance_minutes(31);
    app.reap().await;
    for (id, last) in [(&expired, 2), (&ended, 2), (&deleted, 2)] {
        let query = format!("cursor={last}&timeout=10000");
        let (body, took) = timed_watch(&app, id, &query).await;
        assert!(took < PROMPT, "{id}: answered at once, took {took:?}");
        assert_eq!(body, json!({"events": [], "cursor": last}), "{id}");
    }
}

async fn the_log_outlives_a_deleted_session(kind: Kind) {
    let app = TestApp::spawn_secured(kind).await;
    let agent = app.agent().await;
    let id = id_of(&app.session_with(&agent, json!({})).await);
    let (status, body) = app.delete(paths::session(&id)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = app.get(paths::session(&id)).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "SESSION_NOT_FOUND");

    let reader = app.create_key(&["sessions:read"], None).await;
    let own_agent_key = app.create_key(&["sessions:read"], Some(&agent)).await;
    for key in [&reader, &own_agent_key] {
        let reply = app
            .call(Method::GET, watch(&id, "cursor=1&timeout=0"))
            .bearer(key)
            .send()
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        assert_eq!(types(events(&reply.body)), ["session.ended"]);
        assert_eq!(reply.body["events"][0]["data"]["reason"], "deleted");
        assert_eq!(reply.body["events"][0]["agentId"], agent);
        assert_eq!(reply.body["cursor"], 2);
    }

    let stranger = app.agent().await;
    let other_agent_key = app.create_key(&["sessions:read"], Some(&stranger)).await;
    app.call(Method::GET, watch(&id, "cursor=0&timeout=0"))
        .bearer(&other_agent_key)
        .send()
        .await
        .assert_error(StatusCode::FORBIDDEN, "FORBIDDEN");
}

async fn a_token_dies_with_its_session_even_for_its_log(kind: Kind) {
    let app = TestApp::spawn_secured(kind).await;
    let agent = app.agent().await;
    let created = app.session_with(&agent, json!({})).await;
    let (id, token) = (id_of(&created), token_of(&created));
    let reply = app
        .call(Method::GET, watch(&id, "cursor=0&timeout=0"))
        .bearer(&token)
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::OK, "before: {}", reply.body);

    let (status, body) = app.delete(paths::session(&id)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app.call(Method::GET, watch(&id, "cursor=0&timeout=0"))
        .bearer(&token)
        .send()
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    app.call(
        Method::GET,
        watch(&id, format!("cursor=0&timeout=0&access_token={token}")),
    )
    .without_credential()
    .send()
    .await
    .assert_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
}

async fn access_token_opens_the_watch_of_its_own_session(kind: Kind) {
    let app = TestApp::spawn_secured(kind).await;
    let created = app.session_with(&app.agent().await, json!({})).await;
    let (id, token) = (id_of(&created), token_of(&created));

    let reply = app
        .call(
            Method::GET,
            watch(&id, format!("access_token={token}&timeout=0")),
        )
        .without_credential()
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(types(events(&reply.body)), ["session.created"]);
    assert_eq!(reply.body["events"][0]["sessionId"], id);

    let reply = app
        .call(Method::GET, watch(&id, "timeout=0"))
        .bearer(&token)
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::OK, "the header works too");
}

async fn another_sessions_token_is_403(kind: Kind) {
    let app = TestApp::spawn_secured(kind).await;
    let agent = app.agent().await;
    let id = id_of(&app.session_with(&agent, json!({})).await);
    let other_token = token_of(&app.session_with(&agent, json!({})).await);

    app.call(
        Method::GET,
        watch(&id, format!("access_token={other_token}&timeout=0")),
    )
    .without_credential()
    .send()
    .await
    .assert_error(StatusCode::FORBIDDEN, "FORBIDDEN");
    app.call(Method::GET, watch(&id, "timeout=0"))
        .bearer(&other_token)
        .send()
        .await
        .assert_error(StatusCode::FORBIDDEN, "FORBIDDEN");

    let no_scope = app.create_key(&["sessions:write"], None).await;
    app.call(Method::GET, watch(&id, "timeout=0"))
        .bearer(&no_scope)
        .send()
        .await
        .assert_error(StatusCode::FORBIDDEN, "FORBIDDEN");
}

async fn a_watch_without_credential_is_401(kind: Kind) {
    let app = TestApp::spawn_secured(kind).await;
    let created = app.session_with(&app.agent().await, json!({})).await;
    let (id, token) = (id_of(&created), token_of(&created));

    for query in [
        "timeout=0".to_owned(),
        "timeout=0&access_token=".to_owned(),
        format!(
            "timeout=0&access_token=ast_{}",
            uuid::Uuid::new_v4().simple()
        ),
    ] {
        app.call(Method::GET, watch(&id, &query))
            .without_credential()
            .send()
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    }
    // The query parameter opens the watch routes only.
    app.call(
        Method::GET,
        paths::session(&id).query(format!("access_token={token}")),
    )
    .without_credential()
    .send()
    .await
    .assert_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
}

async fn bad_watch_parameters_are_400(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let id = app.session().await;
    for (query, field) in [
        ("cursor=-1", "cursor"),
        ("cursor=abc", "cursor"),
        ("cursor=1.5", "cursor"),
        ("timeout=-1", "timeout"),
        ("timeout=60001", "timeout"),
        ("timeout=soon", "timeout"),
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=ten", "limit"),
    ] {
        let (status, body) = app.get(watch(&id, query)).await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
        assert_eq!(body["details"]["field"], field, "{query}: {body}");
    }
    let (status, body) = app.get(watch("not-a-uuid", "timeout=0")).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");

    for ok in [
        "cursor=0&timeout=0&limit=1",
        "timeout=60000&limit=500",
        "cursor=0&timeout=0",
    ] {
        let (status, body) = app.get(watch(&id, ok)).await;
        assert_eq!(status, StatusCode::OK, "{ok}: {body}");
    }
}

async fn watch_of_an_unknown_session_is_404(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let (status, body) = app.get(watch(uuid::Uuid::new_v4(), "timeout=10000")).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "SESSION_NOT_FOUND");
}

async fn the_reaper_purges_a_deleted_sessions_log_after_retention(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let id = app.session().await;
    let kept = app.session().await;
    app.clock.advance_minutes(1);
    let (status, _) = app.delete(paths::session(&id)).await;
    assert_eq!(status, StatusCode::OK);

    // The session.ended event is at 00:01; the window is 24 h. Only the events older than
    // the window go (both sessions' session.created, at 00:00).
    app.clock.set(T0 + MINUTE + 24 * HOUR - 1);
    let report = app.reap().await;
    assert_eq!(report.events_purged, 2, "{report:?}");
    assert_eq!(types(&log(&app, &id).await), ["session.ended"]);

    app.clock.set(T0 + MINUTE + 24 * HOUR);
    let report = app.reap().await;
    assert!(report.events_purged > 0, "{report:?}");
    let (status, body) = app.get(watch(&id, "timeout=0")).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "SESSION_NOT_FOUND");
    // A session that still exists keeps what is within the window (it expired meanwhile:
    // recorded by the first pass).
    assert_eq!(types(&log(&app, &kept).await), ["session.expired"]);
}

async fn the_retention_window_counts_from_the_last_event(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let agent = app.agent().await;
    let long = json!({"timeoutConfig": {"timeoutMinutes": 1440, "maxDurationMinutes": 4320}});
    let id = id_of(&app.session_with(&agent, long).await);

    // Created at 00:00 (day 1), deleted 20 hours later.
    app.clock.advance_minutes(20 * 60);
    let (status, _) = app.delete(paths::session(&id)).await;
    assert_eq!(status, StatusCode::OK);

    // 24 h after the first event but only 4 h after the last: the log is kept, all but the
    // events older than the window.
    app.clock.set(T0 + 24 * HOUR);
    app.reap().await;
    let (status, body) = app.get(watch(&id, "timeout=0")).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the log is kept 24 h after its last event (session.ended at 20:00): {body}"
    );
    assert_eq!(types(events(&body)), ["session.ended"]);

    app.clock.set(T0 + 44 * HOUR);
    app.reap().await;
    let (status, body) = app.get(watch(&id, "timeout=0")).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "SESSION_NOT_FOUND");
}

/// PostgreSQL: concurrent senders in one session leave a gap-free log, and a reader paging
/// with watch meanwhile sees every message exactly once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_concurrent_senders_leave_a_gap_free_log() {
    let Some(kind) = Kind::postgres() else {
        return;
    };
    const SENDERS: usize = 8;
    const EACH: usize = 10;
    const TOTAL: usize = SENDERS * EACH;

    let app = TestApp::spawn(kind).await;
    let agent = app.agent().await;
    let id = id_of(&app.session_with(&agent, json!({})).await);
    // A minute on: the first message renews, the others (same instant) do not.
    app.clock.advance_minutes(1);

    let reader = async {
        let deadline = Instant::now() + Duration::from_secs(60);
        let (mut cursor, mut seen) = (1_i64, Vec::new());
        while seen
            .iter()
            .filter(|e: &&Value| e["type"] == "message.created")
            .count()
            < TOTAL
        {
            assert!(Instant::now() < deadline, "the reader saw {seen:#?}");
            let body = watch_ok(&app, &id, &format!("cursor={cursor}&timeout=200")).await;
            let page = events(&body).clone();
            if let Some(last) = page.last() {
                assert_eq!(body["cursor"], last["cursor"], "{body}");
            } else {
                assert_eq!(body["cursor"], cursor, "{body}");
            }
            cursor = body["cursor"].as_i64().unwrap();
            seen.extend(page);
        }
        seen
    };
    let senders = join_all((0..SENDERS).map(|s| {
        let app = &app;
        let id = &id;
        async move {
            let mut ids = Vec::new();
            for m in 0..EACH {
                let sent = app.message(id, &format!("sender {s} message {m}")).await;
                ids.push(sent["id"].as_str().unwrap().to_owned());
            }
            ids
        }
    }));
    let (seen, sent) = tokio::join!(reader, senders);
    let sent: HashSet<String> = sent.into_iter().flatten().collect();
    assert_eq!(sent.len(), TOTAL);

    // The log: the creation, every message and the one renewal, cursors 1..=n exactly.
    let log = log(&app, &id).await;
    assert_log(&log, &id, &agent);
    assert_eq!(log.len(), 1 + TOTAL + 1, "{:?}", types(&log));
    let count = |t: &str| types(&log).iter().filter(|&&x| x == t).count();
    assert_eq!(count("message.created"), TOTAL);
    assert_eq!(count("session.renewed"), 1);
    let logged: HashSet<String> = log
        .iter()
        .filter(|e| e["type"] == "message.created")
        .map(|e| e["data"]["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(logged, sent, "every sent message is logged");

    // The reader: every event after the creation exactly once, in cursor order.
    let read: Vec<i64> = cursors(&seen);
    let expected: Vec<i64> = (2..=read.len() as i64 + 1).collect();
    assert_eq!(read, expected, "no gap, no repeat, in order");
    let read_messages: Vec<String> = seen
        .iter()
        .filter(|e| e["type"] == "message.created")
        .map(|e| e["data"]["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(read_messages.len(), TOTAL, "each message seen once");
    assert_eq!(
        read_messages.iter().cloned().collect::<HashSet<_>>(),
        sent,
        "every message seen"
    );
    // Messages are logged in the order their sequence numbers were assigned.
    let in_log: Vec<&Value> = log
        .iter()
        .filter(|e| e["type"] == "message.created")
        .collect();
    for (a, b) in in_log.iter().zip(in_log.iter().skip(1)) {
        assert!(
            ms(&a["data"]["createdAt"]) < ms(&b["data"]["createdAt"]),
            "createdAt increases with the cursor: {a} then {b}"
        );
    }
}

/// PostgreSQL: a watch on one instance is woken by a message sent through another instance
/// sharing the database (NOTIFY with the commit, LISTEN on the other side), well before its
/// timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_watch_is_woken_by_another_instance() {
    let Some(kind) = Kind::postgres() else {
        return;
    };
    let writer = TestApp::spawn(kind).await;
    let reader = TestApp::spawn_on(writer.db.clone(), |_| {}).await;
    let id = writer.session().await;
    // The reader's listener connects in the background; give it a moment.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let started = Instant::now();
    let (body, sent) = tokio::join!(watch_ok(&reader, &id, "cursor=1&timeout=20000"), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        writer.message(&id, "from the other instance").await
    });
    let took = started.elapsed();
    assert!(took < PROMPT, "woken through PostgreSQL, took {took:?}");
    assert_eq!(body["events"][0]["data"]["id"], sent["id"], "{body}");
}

async fn a_long_lived_session_keeps_the_window_and_an_older_cursor_is_410(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let agent = app.agent().await;
    let long = json!({"timeoutConfig": {"timeoutMinutes": 1440, "maxDurationMinutes": 4320}});
    let id = id_of(&app.session_with(&agent, long).await);
    app.message(&id, "day one").await; // cursor 2
    app.clock.advance_minutes(23 * 60);
    app.message(&id, "still here").await; // cursors 3 (message) and 4 (renewed)

    // A day and an hour on: the session lives, its first day's events are gone.
    app.clock.advance_minutes(2 * 60);
    let report = app.reap().await;
    assert_eq!(report.events_purged, 2, "{report:?}");
    let (status, body) = app.get(watch(&id, "cursor=1&timeout=0")).await;
    assert_error(status, &body, StatusCode::GONE, "CURSOR_EXPIRED");
    assert_eq!(body["details"]["oldestCursor"], 3);
    assert_eq!(
        cursors(events(&watch_ok(&app, &id, "cursor=0&timeout=0").await)),
        [3, 4]
    );
    assert_eq!(
        cursors(events(&watch_ok(&app, &id, "cursor=2&timeout=0").await)),
        [3, 4]
    );
    // The agent's feed says the same to a reader behind.
    let feed = format!("/api/agents/{agent}/watch?cursor=1&timeout=0");
    let (status, body) = app.get(feed).await;
    assert_error(status, &body, StatusCode::GONE, "CURSOR_EXPIRED");
}
