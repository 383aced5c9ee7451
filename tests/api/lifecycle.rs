//! Pause, resume and close, and the transcript that outlives a session until its purge. Time
//! moves only on the manual clock; the reaper runs when a test says so.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::backend_tests;
use crate::helpers::sse::EventStream;
use crate::helpers::{
    assert_error, event_types, events_of, id_of, ms, paths, rfc3339, session_token, Kind, TestApp,
    MINUTE, T0,
};

backend_tests!(
    pause_sets_expires_at_to_the_cap,
    a_paused_session_outlives_its_idle_deadline_even_after_a_reap,
    a_paused_session_expires_at_its_cap,
    a_paused_session_is_warned_once_before_its_cap,
    resume_restarts_the_idle_clock_from_now,
    resume_is_capped_at_max_duration,
    pausing_twice_is_a_no_op_without_an_event,
    resuming_an_active_session_is_a_no_op_without_an_event,
    sending_while_paused_is_409_and_stores_nothing,
    heartbeat_while_paused_answers_200_without_renewing,
    renew_while_paused_is_409,
    reads_work_while_paused,
    list_counts_and_filters_paused_sessions,
    pause_and_resume_record_one_event_each,
    pause_resume_and_close_need_sessions_manage_or_the_creators_token,
    close_ends_the_session_with_the_given_reason,
    close_without_a_reason_ends_with_closed,
    close_with_a_reason_over_500_chars_is_400,
    after_close_every_session_route_answers_410_session_ended,
    the_transcript_of_a_closed_session_pages_like_messages,
    the_transcript_of_a_closed_session_reads_until_the_purge,
    the_transcript_of_an_expired_session_ends_with_idle,
    the_transcript_of_a_session_expired_at_its_cap_ends_with_max_duration,
    the_transcript_is_readable_with_any_participants_token,
    a_closed_session_can_be_deleted_then_is_404,
    close_records_one_session_closed_and_ends_the_event_stream,
    every_new_event_appears_once_in_the_session_log_and_the_agent_feed,
);

const HOUR: i64 = 60 * MINUTE;
/// The default maximum duration (12 h).
const CAP: i64 = 720 * MINUTE;

async fn read(app: &TestApp, id: &str) -> Value {
    let (status, body) = app.get(paths::session(id)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn pause(app: &TestApp, id: &str) -> Value {
    let (status, body) = app.post_empty(paths::pause(id)).await;
    assert_eq!(status, StatusCode::OK, "pause: {body}");
    body
}

async fn resume(app: &TestApp, id: &str) -> Value {
    let (status, body) = app.post_empty(paths::resume(id)).await;
    assert_eq!(status, StatusCode::OK, "resume: {body}");
    body
}

async fn close(app: &TestApp, id: &str, body: Value) -> Value {
    let (status, body) = app.post(paths::close(id), body).await;
    assert_eq!(status, StatusCode::OK, "close: {body}");
    body
}

async fn transcript(app: &TestApp, id: &str, query: &str) -> Value {
    let (status, body) = app.get(paths::transcript(id).query(query)).await;
    assert_eq!(status, StatusCode::OK, "transcript?{query}: {body}");
    body
}

/// The fields of a session answer that a no-op must leave alone.
fn lasting(session: &Value) -> Value {
    json!({
        "status": session["status"],
        "expiresAt": session["expiresAt"],
        "lastActivity": session["lastActivity"],
        "renewalCount": session["renewalCount"],
        "timeoutConfig": session["timeoutConfig"],
    })
}

fn contents(page: &Value) -> Vec<String> {
    page["messages"]
        .as_array()
        .unwrap_or_else(|| panic!("messages: {page}"))
        .iter()
        .map(|m| m["content"].as_str().unwrap().to_owned())
        .collect()
}

async fn pause_sets_expires_at_to_the_cap(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let id = app.session().await;

    app.clock.advance_minutes(5);
    let paused = pause(&app, &id).await;
    assert_eq!(paused["sessionId"], id);
    assert_eq!(paused["status"], "paused");
    assert_eq!(
        ms(&paused["expiresAt"]),
        T0 + CAP,
        "createdAt + maxDuration"
    );
    assert!(paused.get("endReason").is_none(), "{paused}");
    let read = read(&app, &id).await;
    assert_eq!(read["status"], "paused");
    assert_eq!(read["expiresAt"], paused["expiresAt"]);
}

async fn a_paused_session_outlives_its_idle_deadline_even_after_a_reap(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let id = app.session().await;
    app.clock.advance_minutes(5);
    pause(&app, &id).await;

    // Idle since 00:00: an active session would have expired at 00:30.
    app.clock.set(T0 + 2 * HOUR);
    let report = app.reap().await;
    assert!(report.expired.is_empty(), "{report:?}");
    let session = read(&app, &id).await;
    assert_eq!(session["status"], "paused");
    assert_eq!(ms(&session["expiresAt"]), T0 + CAP);
    assert_eq!(app.session_count("expired").await, 0);
}

async fn a_paused_session_expires_at_its_cap(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let id = app.session().await;
    pause(&app, &id).await;

    app.clock.set(T0 + CAP - 1);
    assert!(app.reap().await.expired.is_empty());
    assert_eq!(read(&app, &id).await["status"], "paused");

    app.clock.set(T0 + CAP);
    let report = app.reap().await;
    assert_eq!(
        report
            .expired
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        vec![id.clone()]
    );
    let (status, body) = app.get(paths::session(&id)).await;
    assert_error(status, &body, StatusCode::GONE, "SESSION_EXPIRED");
    assert_eq!(body["details"]["expiredAt"], rfc3339(T0 + CAP), "{body}");
}

async fn a_paused_session_is_warned_once_before_its_cap(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let id = app.session().await;
    pause(&app, &id).await;

    // The default warning window is 5 minutes.
    app.clock.set(T0 + CAP - 5 * MINUTE - 1);
    assert!(app.reap().await.warned.is_empty());
    app.clock.set(T0 + CAP - 5 * MINUTE);
    let report = app.reap().await;
    assert_eq!(
        report
            .warned
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        vec![id.clone()]
    );
    assert!(app.reap().await.warned.is_empty(), "warned once");
    let session = read(&app, &id).await;
    assert_eq!(session["status"], "paused");
    assert_eq!(session["isNearExpiration"], true);
    let log = app.event_log(&id).await;
    let expiring: Vec<&Value> = log
        .iter()
        .filter(|e| e["type"] == "session.expiring")
        .collect();
    assert_eq!(expiring.len(), 1, "{log:?}");
    assert_eq!(expiring[0]["data"]["expiresAt"], rfc3339(T0 + CAP));
}

async fn resume_restarts_the_idle_clock_from_now(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let id = app.session().await;
    app.clock.advance_minutes(5);
    pause(&app, &id).await;

    app.clock.set(T0 + HOUR);
    let resumed = resume(&app, &id).await;
    assert_eq!(resumed["status"], "active");
    assert_eq!(
        ms(&resumed["expiresAt"]),
        T0 + HOUR + 30 * MINUTE,
        "now + timeout"
    );
    assert_eq!(read(&app, &id).await["status"], "active");

    app.clock.set(T0 + HOUR + 30 * MINUTE - 1);
    assert!(app.reap().await.expired.is_empty());
    app.clock.set(T0 + HOUR + 30 * MINUTE);
    assert_eq!(
        app.reap().await.expired.len(),
        1,
        "the idle clock runs again"
    );
    let (status, body) = app.get(paths::session(&id)).await;
    assert_error(status, &body, StatusCode::GONE, "SESSION_EXPIRED");
}

async fn resume_is_capped_at_max_duration(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let agent = app.agent().await;
    let id = id_of(
        &app.session_with(&agent, json!({"timeoutConfig": {"maxDurationMinutes": 60}}))
            .await,
    );
    let paused = pause(&app, &id).await;
    assert_eq!(ms(&paused["expiresAt"]), T0 + 60 * MINUTE);

    app.clock.set(T0 + 50 * MINUTE);
    let resumed = resume(&app, &id).await;
    assert_eq!(resumed["status"], "active");
    assert_eq!(
        ms(&resumed["expiresAt"]),
        T0 + 60 * MINUTE,
        "min(now + timeout, cap)"
    );
}

async fn pausing_twice_is_a_no_op_without_an_event(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let id = app.session().await;
    app.clock.advance_minutes(1);
    let first = pause(&app, &id).await;

    app.clock.advance_minutes(1);
    let second = pause(&app, &id).await;
    assert_eq!(second["status"], "paused");
    assert_eq!(lasting(&second), lasting(&first), "unchanged");
    assert_eq!(
        event_types(&app.event_log(&id).await),
        ["session.created", "session.paused"]
    );
}

async fn resuming_an_active_session_is_a_no_op_without_an_event(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let id = app.session().await;
    let before = read(&app, &id).await;

    app.clock.advance_minutes(1);
    let resumed = resume(&app, &id).await;
    assert_eq!(resumed["status"], "active");
    assert_eq!(lasting(&resumed), lasting(&before), "unchanged");
    assert_eq!(event_types(&app.event_log(&id).await), ["session.created"]);
}

async fn sending_while_paused_is_409_and_stores_nothing(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let id = app.session().await;
    app.message(&id, "before the pause").await;
    pause(&app, &id).await;
    let log_before = app.event_log(&id).await;

    app.clock.advance_minutes(1);
    let (status, body) = app
        .post(paths::messages(&id), json!({"content": "while paused"}))
        .await;
    assert_error(status, &body, StatusCode::CONFLICT, "SESSION_PAUSED");
    assert_eq!(app.stored_messages().await, 1, "nothing stored");
    let (_, page) = app.get(paths::messages(&id)).await;
    assert_eq!(contents(&page), ["before the pause"]);
    assert_eq!(
        app.event_log(&id).await.len(),
        log_before.len(),
        "no event recorded"
    );
}

async fn heartbeat_while_paused_answers_200_without_renewing(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let id = app.session().await;
    app.clock.advance_minutes(5);
    let paused = pause(&app, &id).await;

    app.clock.advance_minutes(5);
    let (status, beat) = app.post_empty(paths::heartbeat(&id)).await;
    assert_eq!(status, StatusCode::OK, "{beat}");
    assert_eq!(beat["status"], "paused");
    assert_eq!(beat["expiresAt"], paused["expiresAt"], "no renewal");
    assert_eq!(ms(&beat["expiresAt"]), T0 + CAP);
    assert_eq!(beat["renewalCount"], 0);
    assert!(
        events_of(&app.event_log(&id).await, "session.renewed").is_empty(),
        "no renewal recorded"
    );
}

async fn renew_while_paused_is_409(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let id = app.session().await;
    let paused = pause(&app, &id).await;

    app.clock.advance_minutes(5);
    let (status, body) = app.post_empty(paths::renew(&id)).await;
    assert_error(status, &body, StatusCode::CONFLICT, "SESSION_PAUSED");
    let session = read(&app, &id).await;
    assert_eq!(session["expiresAt"], paused["expiresAt"]);
    assert_eq!(session["renewalCount"], 0);
}

async fn reads_work_while_paused(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let id = app.session().await;
    app.message(&id, "hello").await;
    pause(&app, &id).await;
    app.clock.advance_minutes(45);

    assert_eq!(read(&app, &id).await["status"], "paused");
    let (status, page) = app.get(paths::messages(&id)).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(contents(&page), ["hello"]);
    let body = transcript(&app, &id, "").await;
    assert_eq!(body["session"]["status"], "paused");
    assert_eq!(contents(&body), ["hello"]);
    assert!(body["session"].get("endReason").is_none(), "{body}");
    assert_eq!(
        event_types(&app.event_log(&id).await),
        ["session.created", "message.created", "session.paused"]
    );
}

async fn list_counts_and_filters_paused_sessions(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let active = app.session().await;
    let paused = app.session().await;
    let closed = app.session().await;
    pause(&app, &paused).await;
    close(&app, &closed, json!({})).await;

    let ids = |page: &Value| -> Vec<String> {
        page["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["sessionId"].as_str().unwrap().to_owned())
            .collect()
    };
    let (status, page) = app.get(paths::sessions().query("status=paused")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(ids(&page), vec![paused.clone()]);
    assert_eq!(page["sessions"][0]["status"], "paused");
    assert_eq!(
        page["stats"],
        json!({"totalSessions": 3, "activeSessions": 1, "pausedSessions": 1, "expiredSessions": 1})
    );
    let (_, page) = app.get(paths::sessions()).await;
    assert_eq!(ids(&page), vec![active.clone()], "active by default");
    let (_, page) = app.get(paths::sessions().query("status=expired")).await;
    assert_eq!(ids(&page), vec![closed.clone()], "over: expired or ended");
    assert_eq!(page["sessions"][0]["status"], "ended");
    assert_eq!(app.session_count("all").await, 3);
}

async fn pause_and_resume_record_one_event_each(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let agent = app.agent().await;
    let id = id_of(&app.session_with(&agent, json!({})).await);

    app.clock.advance_minutes(1);
    pause(&app, &id).await;
    app.clock.advance_minutes(1);
    pause(&app, &id).await;
    app.clock.advance_minutes(1);
    resume(&app, &id).await;
    app.clock.advance_minutes(1);
    resume(&app, &id).await;

    let log = app.event_log(&id).await;
    assert_eq!(
        event_types(&log),
        ["session.created", "session.paused", "session.resumed"]
    );
    assert_eq!(log[1]["timestamp"], rfc3339(T0 + MINUTE));
    assert_eq!(log[1]["data"], json!({"expiresAt": rfc3339(T0 + CAP)}));
    assert_eq!(log[1]["sessionId"], id);
    assert_eq!(log[1]["agentId"], agent);
    assert_eq!(log[2]["timestamp"], rfc3339(T0 + 3 * MINUTE));
    assert_eq!(
        log[2]["data"],
        json!({"expiresAt": rfc3339(T0 + 33 * MINUTE)})
    );
}

async fn pause_resume_and_close_need_sessions_manage_or_the_creators_token(kind: Kind) {
    let app = TestApp::spawn_secured(kind).await;
    let agent = app.agent().await;
    let other_agent = app.agent().await;
    let created = app.session_with(&agent, json!({})).await;
    let id = id_of(&created);
    let other_token = session_token(&app.session_with(&agent, json!({})).await);
    let write_only = app
        .create_key(&["sessions:read", "sessions:write"], None)
        .await;
    let manage_elsewhere = app
        .create_key(&["sessions:manage"], Some(&other_agent))
        .await;
    let manage_here = app.create_key(&["sessions:manage"], Some(&agent)).await;

    for secret in [&write_only, &manage_elsewhere, &other_token] {
        for path in [paths::pause(&id), paths::resume(&id), paths::close(&id)] {
            app.call(Method::POST, &path)
                .bearer(secret)
                .send()
                .await
                .assert_error(StatusCode::FORBIDDEN, "FORBIDDEN");
        }
    }
    assert_eq!(read(&app, &id).await["status"], "active");

    for (path, status) in [
        (paths::pause(&id), "paused"),
        (paths::resume(&id), "active"),
    ] {
        let reply = app
            .call(Method::POST, &path)
            .bearer(&manage_here)
            .send()
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        assert_eq!(reply.body["status"], status);
    }
    let reply = app
        .call(Method::POST, paths::close(&id))
        .bearer(&session_token(&created))
        .send()
        .await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "the creator's token: {}",
        reply.body
    );
    assert_eq!(reply.body["status"], "ended");
}

async fn close_ends_the_session_with_the_given_reason(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let id = app.session().await;
    let before = read(&app, &id).await;
    assert!(before.get("endedAt").is_none(), "{before}");
    assert!(before.get("endReason").is_none(), "{before}");

    app.clock.advance_minutes(2);
    let closed = close(&app, &id, json!({"reason": "resolved"})).await;
    assert_eq!(closed["sessionId"], id);
    assert_eq!(closed["status"], "ended");
    assert_eq!(closed["endedAt"], rfc3339(T0 + 2 * MINUTE));
    assert_eq!(closed["endReason"], "resolved");
}

async fn close_without_a_reason_ends_with_closed(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let id = app.session().await;
    let other = app.session().await;

    let (status, closed) = app.post_empty(paths::close(&id)).await;
    assert_eq!(status, StatusCode::OK, "no body: {closed}");
    assert_eq!(closed["status"], "ended");
    assert_eq!(closed["endReason"], "closed");

    let closed = close(&app, &other, json!({})).await;
    assert_eq!(closed["endReason"], "closed", "an empty body");
}

async fn close_with_a_reason_over_500_chars_is_400(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let id = app.session().await;

    let (status, body) = app
        .post(paths::close(&id), json!({"reason": "r".repeat(501)}))
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
    assert_eq!(body["details"]["field"], "reason", "{body}");
    assert_eq!(read(&app, &id).await["status"], "active");

    let closed = close(&app, &id, json!({"reason": "r".repeat(500)})).await;
    assert_eq!(closed["endReason"], "r".repeat(500));
}

async fn after_close_every_session_route_answers_410_session_ended(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let id = app.session().await;
    app.message(&id, "before").await;
    app.clock.advance_minutes(3);
    close(&app, &id, json!({"reason": "user left"})).await;
    app.clock.advance_minutes(1);

    let user = uuid::Uuid::new_v4().to_string();
    let calls: Vec<(Method, crate::helpers::paths::ApiPath, Option<Value>)> = vec![
        (Method::GET, paths::session(&id), None),
        (Method::GET, paths::messages(&id), None),
        (
            Method::POST,
            paths::messages(&id),
            Some(json!({"content": "after"})),
        ),
        (Method::POST, paths::renew(&id), None),
        (Method::POST, paths::heartbeat(&id), None),
        (
            Method::PATCH,
            paths::timeout(&id),
            Some(json!({"timeoutMinutes": 60})),
        ),
        (Method::POST, paths::pause(&id), None),
        (Method::POST, paths::resume(&id), None),
        (
            Method::POST,
            paths::close(&id),
            Some(json!({"reason": "again"})),
        ),
        (
            Method::POST,
            paths::participants(&id),
            Some(json!({"participants": [user]})),
        ),
        (
            Method::DELETE,
            paths::participants(&id),
            Some(json!({"participants": [user]})),
        ),
        (
            Method::PATCH,
            paths::session(&id),
            Some(json!({"title": "late"})),
        ),
        (
            Method::PATCH,
            paths::state(&id),
            Some(json!({"stage": "closing"})),
        ),
    ];
    for (method, path, body) in calls {
        let mut call = app.call(method.clone(), &path);
        if let Some(body) = body {
            call = call.json(body);
        }
        let reply = call.send().await;
        assert_eq!(
            reply.status,
            StatusCode::GONE,
            "{method} {}: {}",
            path.as_ref(),
            reply.body
        );
        reply.assert_error(StatusCode::GONE, "SESSION_ENDED");
        assert_eq!(
            reply.body["details"],
            json!({
                "sessionId": id,
                "endedAt": rfc3339(T0 + 3 * MINUTE),
                "reason": "user left",
            }),
            "{method} {}",
            path.as_ref()
        );
    }
    assert_eq!(app.stored_messages().await, 1);
}

/// A session with three messages a minute apart ("one" at 00:01, "two", "three"), then closed
/// at 00:05 with reason "resolved". Returns its id.
async fn closed_session_with_three_messages(app: &TestApp) -> String {
    let id = app.session().await;
    for text in ["one", "two", "three"] {
        app.clock.advance_minutes(1);
        app.message(&id, text).await;
    }
    app.clock.set(T0 + 5 * MINUTE);
    close(app, &id, json!({"reason": "resolved"})).await;
    id
}

async fn the_transcript_of_a_closed_session_pages_like_messages(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let id = app.session().await;
    for text in ["one", "two", "three"] {
        app.clock.advance_minutes(1);
        app.message(&id, text).await;
    }
    // The messages route's pages while the session lives, for comparison.
    let (_, live_all) = app.get(paths::messages(&id)).await;
    let (_, live_first) = app.get(paths::messages(&id).query("limit=2")).await;
    let before = live_first["cursors"]["before"].as_i64().expect("cursor");
    let (_, live_rest) = app
        .get(paths::messages(&id).query(format!("limit=2&before={before}")))
        .await;
    let after = T0 + MINUTE;
    let (_, live_after) = app
        .get(paths::messages(&id).query(format!("after={after}")))
        .await;
    app.clock.advance_minutes(1);
    close(&app, &id, json!({"reason": "resolved"})).await;

    let all = transcript(&app, &id, "").await;
    assert_eq!(all["session"]["sessionId"], id);
    assert_eq!(all["session"]["status"], "ended");
    assert_eq!(all["session"]["endReason"], "resolved");
    assert_eq!(all["session"]["endedAt"], rfc3339(T0 + 4 * MINUTE));
    assert_eq!(contents(&all), ["three", "two", "one"], "newest first");
    assert_eq!(all["messages"], live_all["messages"]);
    assert_eq!(all["hasMore"], false);
    assert_eq!(all["cursors"], live_all["cursors"]);

    let first = transcript(&app, &id, "limit=2").await;
    assert_eq!(contents(&first), ["three", "two"]);
    assert_eq!(first["hasMore"], true);
    assert_eq!(first["cursors"], live_first["cursors"]);
    let rest = transcript(&app, &id, &format!("limit=2&before={before}")).await;
    assert_eq!(contents(&rest), ["one"]);
    assert_eq!(rest["hasMore"], false);
    assert_eq!(rest["messages"], live_rest["messages"]);
    let newer = transcript(&app, &id, &format!("after={after}")).await;
    assert_eq!(contents(&newer), ["three", "two"]);
    assert_eq!(newer["messages"], live_after["messages"]);

    let (status, body) = app.get(paths::transcript(&id).query("limit=0")).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
}

async fn the_transcript_of_a_closed_session_reads_until_the_purge(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let id = closed_session_with_three_messages(&app).await;
    let closed_at = T0 + 5 * MINUTE;

    // The retention window (24 h) counts from the close.
    app.clock.set(closed_at + 24 * HOUR - MINUTE);
    let report = app.reap().await;
    assert_eq!(report.purged, 0, "{report:?}");
    let body = transcript(&app, &id, "").await;
    assert_eq!(body["session"]["status"], "ended");
    assert_eq!(contents(&body), ["three", "two", "one"]);

    app.clock.set(closed_at + 24 * HOUR + MINUTE);
    let report = app.reap().await;
    assert_eq!(report.purged, 1, "{report:?}");
    let (status, body) = app.get(paths::transcript(&id)).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "SESSION_NOT_FOUND");
    let (status, body) = app.get(paths::session(&id)).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "SESSION_NOT_FOUND");
    assert_eq!(app.stored_messages().await, 0);
}

async fn the_transcript_of_an_expired_session_ends_with_idle(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let id = app.session().await;
    app.message(&id, "anyone there?").await;

    app.clock.advance_minutes(31);
    assert_eq!(app.reap().await.expired.len(), 1);
    let body = transcript(&app, &id, "").await;
    assert_eq!(body["session"]["sessionId"], id);
    assert_eq!(body["session"]["status"], "expired");
    assert_eq!(body["session"]["endReason"], "idle");
    assert!(body["session"]["endedAt"].is_string(), "{body}");
    assert_eq!(contents(&body), ["anyone there?"]);
    assert_eq!(body["hasMore"], false);
}

async fn the_transcript_of_a_session_expired_at_its_cap_ends_with_max_duration(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let id = app.session().await;
    pause(&app, &id).await;

    app.clock.set(T0 + CAP + MINUTE);
    assert_eq!(app.reap().await.expired.len(), 1);
    let body = transcript(&app, &id, "").await;
    assert_eq!(body["session"]["status"], "expired");
    assert_eq!(body["session"]["endReason"], "max_duration");
    let log = app.event_log(&id).await;
    let expired = events_of(&log, "session.expired");
    assert_eq!(expired.len(), 1, "{:?}", event_types(&log));
    assert_eq!(expired[0]["data"]["reason"], "max_duration");
}

async fn the_transcript_is_readable_with_any_participants_token(kind: Kind) {
    let app = TestApp::spawn_secured(kind).await;
    let agent = app.agent().await;
    let p1 = uuid::Uuid::new_v4().to_string();
    let created = app
        .session_with(&agent, json!({"participants": [p1]}))
        .await;
    let id = id_of(&created);
    app.message(&id, "hello").await;
    let p1_token = created["participantTokens"][0]["sessionToken"]
        .as_str()
        .unwrap_or_else(|| panic!("a participant token: {created}"))
        .to_owned();
    let reader = app.create_key(&["sessions:read"], None).await;
    let write_only = app.create_key(&["sessions:write"], None).await;
    let other_token = session_token(&app.session_with(&agent, json!({})).await);

    close(&app, &id, json!({"reason": "done"})).await;
    for secret in [&session_token(&created), &p1_token, &reader] {
        let reply = app
            .call(Method::GET, paths::transcript(&id))
            .bearer(secret)
            .send()
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        assert_eq!(contents(&reply.body), ["hello"]);
        assert_eq!(reply.body["session"]["status"], "ended");
    }
    for secret in [&write_only, &other_token] {
        app.call(Method::GET, paths::transcript(&id))
            .bearer(secret)
            .send()
            .await
            .assert_error(StatusCode::FORBIDDEN, "FORBIDDEN");
    }
}

async fn a_closed_session_can_be_deleted_then_is_404(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let id = closed_session_with_three_messages(&app).await;

    let (status, body) = app.delete(paths::session(&id)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for path in [
        paths::session(&id),
        paths::transcript(&id),
        paths::messages(&id),
    ] {
        let (status, body) = app.get(&path).await;
        assert_error(status, &body, StatusCode::NOT_FOUND, "SESSION_NOT_FOUND");
    }
    let (status, body) = app.delete(paths::session(&id)).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "SESSION_NOT_FOUND");
    assert_eq!(app.stored_messages().await, 0);
}

async fn close_records_one_session_closed_and_ends_the_event_stream(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let agent = app.agent().await;
    let id = id_of(&app.session_with(&agent, json!({})).await);
    let mut stream = EventStream::open(&app, paths::events(&id), None).await;
    stream.expect(1, "session.created").await;

    app.clock.advance_minutes(2);
    close(&app, &id, json!({"reason": "done"})).await;
    let closed = stream.expect(2, "session.closed").await;
    assert_eq!(
        closed.data["data"],
        json!({"reason": "done", "endedAt": rfc3339(T0 + 2 * MINUTE)})
    );
    assert!(
        stream.next().await.is_none(),
        "the stream ends after session.closed"
    );

    let log = app.event_log(&id).await;
    assert_eq!(event_types(&log), ["session.created", "session.closed"]);
    assert_eq!(log[1]["timestamp"], rfc3339(T0 + 2 * MINUTE));
    assert_eq!(log[1]["agentId"], agent);
}

async fn every_new_event_appears_once_in_the_session_log_and_the_agent_feed(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let agent = app.agent().await;
    let id = id_of(&app.session_with(&agent, json!({})).await);
    let user = uuid::Uuid::new_v4().to_string();

    let steps: Vec<(Method, crate::helpers::paths::ApiPath, Option<Value>)> = vec![
        (
            Method::POST,
            paths::participants(&id),
            Some(json!({"participants": [user]})),
        ),
        (
            Method::PATCH,
            paths::session(&id),
            Some(json!({"title": "Support"})),
        ),
        (
            Method::PATCH,
            paths::state(&id),
            Some(json!({"stage": "discovery"})),
        ),
        (Method::POST, paths::pause(&id), None),
        (Method::POST, paths::resume(&id), None),
        (
            Method::POST,
            paths::close(&id),
            Some(json!({"reason": "done"})),
        ),
    ];
    for (method, path, body) in steps {
        app.clock.advance_minutes(1);
        let mut call = app.call(method.clone(), &path);
        if let Some(body) = body {
            call = call.json(body);
        }
        let reply = call.send().await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "{method} {}: {}",
            path.as_ref(),
            reply.body
        );
    }

    let expected = [
        "session.created",
        "session.participants_changed",
        "session.updated",
        "session.state_changed",
        "session.paused",
        "session.resumed",
        "session.closed",
    ];
    assert_eq!(event_types(&app.event_log(&id).await), expected);
    let (status, feed) = app
        .get(format!(
            "/api/agents/{agent}/watch?cursor=0&limit=500&timeout=0"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{feed}");
    let feed = feed["events"].as_array().expect("events").clone();
    assert_eq!(event_types(&feed), expected);
    for event in &feed {
        assert_eq!(event["sessionId"], id, "{event}");
    }
}
