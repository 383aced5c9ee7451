use std::collections::HashSet;

use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::backend_tests;
use crate::helpers::paths::{self, ApiPath};
use crate::helpers::{assert_error, id_of, ms, Kind, TestApp, MINUTE, T0};

backend_tests!(
    send_returns_the_message_and_session_status,
    list_returns_messages_newest_first_with_cursors,
    reading_messages_is_not_activity,
    an_empty_session_lists_no_messages,
    list_defaults_to_the_newest_50,
    list_limit_sets_the_page_size,
    list_rejects_bad_limits,
    before_takes_unix_ms_or_rfc3339,
    after_takes_unix_ms_or_rfc3339,
    after_and_before_bound_a_window,
    malformed_cursors_are_400,
    paging_backwards_visits_every_message_once_newest_first,
    paging_forwards_visits_the_same_messages_in_reverse,
    the_newest_page_starts_the_walk,
    a_message_renews_the_session,
    message_renewal_stops_at_max_duration,
    a_message_near_the_cap_is_near_expiration,
    messages_of_a_session_past_its_cap_are_410,
    a_message_does_not_renew_without_auto_renew,
    messages_of_an_unknown_session_are_404,
    the_agent_as_author_makes_an_agent_message,
    the_user_as_author_makes_a_user_message,
    other_authors_are_rejected,
    the_list_shows_who_wrote_each_message,
    invalid_messages_are_rejected_and_not_stored,
    messages_at_the_limits_are_accepted,
    deleting_a_session_deletes_only_its_messages,
    purging_a_session_deletes_its_messages,
);

/// The message ids of a page, in order.
fn ids(page: &Value) -> Vec<String> {
    page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect()
}

/// A message with every optional field.
fn full_message() -> Value {
    json!({
        "content": "Hello, I need help",
        "attachments": [{"type": "image", "url": "https://example.com/a.png", "name": "a.png"}],
        "metadata": {"userTimezone": "America/New_York"}
    })
}

async fn send_returns_the_message_and_session_status(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let agent = app.agent().await;
    let session = app.session_with(&agent, json!({})).await;

    app.clock.advance_minutes(1);
    let (status, sent) = app
        .post(paths::messages(id_of(&session)), full_message())
        .await;
    assert_eq!(status, StatusCode::CREATED, "{sent}");
    assert!(uuid::Uuid::parse_str(sent["id"].as_str().unwrap()).is_ok());
    assert_eq!(sent["content"], "Hello, I need help");
    assert_eq!(sent["authorId"], session["userId"]);
    assert_eq!(sent["isAgent"], false);
    assert_eq!(sent["createdAt"], "2026-01-01T00:01:00.000Z");
    assert_eq!(
        sent["metadata"],
        json!({"userTimezone": "America/New_York"})
    );
    assert_eq!(
        sent["attachments"],
        json!([{"type": "image", "url": "https://example.com/a.png", "name": "a.png"}])
    );
    assert_eq!(
        sent["sessionStatus"],
        json!({"expiresAt": "2026-01-01T00:31:00.000Z", "renewalCount": 1, "wasRenewed": true, "isNearExpiration": false})
    );
    // The ElizaOS api-client reads the message from `userMessage`.
    assert_eq!(
        sent["userMessage"],
        json!({
            "id": sent["id"], "content": "Hello, I need help", "authorId": session["userId"],
            "createdAt": "2026-01-01T00:01:00.000Z", "metadata": {"userTimezone": "America/New_York"}
        })
    );
}

async fn list_returns_messages_newest_first_with_cursors(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let id = app.session().await;
    let path = paths::messages(&id);
    app.clock.advance_minutes(1);
    let (status, sent) = app.post(&path, full_message()).await;
    assert_eq!(status, StatusCode::CREATED, "{sent}");
    app.clock.advance_minutes(1);
    let second = app.message(&id, "second").await;

    let (status, page) = app.get(&path).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["hasMore"], false);
    assert_eq!(
        ids(&page),
        vec![second["id"].as_str().unwrap(), sent["id"].as_str().unwrap()]
    );
    let first = &page["messages"][1];
    for field in [
        "id",
        "content",
        "authorId",
        "isAgent",
        "createdAt",
        "metadata",
        "attachments",
    ] {
        assert_eq!(first[field], sent[field], "{field}");
    }
    assert!(first.get("sessionStatus").is_none());
    assert_eq!(
        page["cursors"],
        json!({"before": T0 + MINUTE, "after": T0 + 2 * MINUTE})
    );
}

async fn reading_messages_is_not_activity(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let id = app.session().await;
    app.clock.advance_minutes(1);
    app.message(&id, "first").await;
    app.clock.advance_minutes(1);
    app.message(&id, "second").await;

    app.clock.advance_minutes(1);
    let (status, _) = app.get(paths::messages(&id)).await;
    assert_eq!(status, StatusCode::OK);
    // The session was renewed by the two messages only.
    let (_, s) = app.get(paths::session(&id)).await;
    assert_eq!(ms(&s["lastActivity"]), T0 + 2 * MINUTE);
    assert_eq!(s["renewalCount"], 2);
}

async fn an_empty_session_lists_no_messages(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let (status, empty) = app.get(paths::messages(app.session().await)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        empty,
        json!({"messages": [], "hasMore": false, "cursors": {"before": null, "after": null}})
    );
}

/// A new session with the messages "m0" .. "m{count - 1}", all in one millisecond.
async fn session_with_messages(app: &TestApp, count: usize) -> String {
    let id = app.session().await;
    for i in 0..count {
        app.message(&id, &format!("m{i}")).await;
    }
    id
}

async fn list_defaults_to_the_newest_50(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let id = session_with_messages(&app, 120).await;
    let (_, page) = app.get(paths::messages(&id)).await;
    assert_eq!(page["messages"].as_array().unwrap().len(), 50);
    assert_eq!(page["hasMore"], true);
    assert_eq!(page["messages"][0]["content"], "m119");
}

async fn list_limit_sets_the_page_size(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let id = session_with_messages(&app, 120).await;
    let path = paths::messages(&id);
    let (_, page) = app.get(path.query("limit=100")).await;
    assert_eq!(page["messages"].as_array().unwrap().len(), 100);
    assert_eq!(page["hasMore"], true);
    let (_, page) = app.get(path.query("limit=1")).await;
    assert_eq!(page["messages"].as_array().unwrap().len(), 1);
}

async fn list_rejects_bad_limits(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let id = session_with_messages(&app, 1).await;
    for bad in ["limit=0", "limit=101", "limit=ten", "limit=-5", "limit=1.5"] {
        let (status, body) = app.get(paths::messages(&id).query(bad)).await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
        assert_eq!(body["details"]["field"], "limit");
    }
}

/// Sends "m0" .. "m3" at 00:00, 00:01, 00:02 and 00:03; returns their ids.
async fn four_messages_a_minute_apart(app: &TestApp, id: &str) -> Vec<String> {
    let mut sent = Vec::new();
    for i in 0..4 {
        app.clock.set(T0 + i * MINUTE);
        sent.push(
            app.message(id, &format!("m{i}")).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    sent
}

/// Percent-encodes the `+` and `:` of a timestamp for a query string.
fn urlencode(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}

async fn before_takes_unix_ms_or_rfc3339(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let id = app.session().await;
    let sent = four_messages_a_minute_apart(&app, &id).await;
    // Before 00:02: m1, m0 (newest first).
    for before in [
        format!("{}", T0 + 2 * MINUTE),
        "2026-01-01T00:02:00.000Z".into(),
        "2026-01-01T00:02:00Z".into(),
    ] {
        let (status, page) = app
            .get(paths::messages(&id).query(format!("before={before}")))
            .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert_eq!(
            ids(&page),
            vec![sent[1].clone(), sent[0].clone()],
            "before={before}"
        );
        assert_eq!(page["hasMore"], false);
    }
}

async fn after_takes_unix_ms_or_rfc3339(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let id = app.session().await;
    let sent = four_messages_a_minute_apart(&app, &id).await;
    // After 00:01: m3, m2 (newest first).
    for after in [
        format!("{}", T0 + MINUTE),
        "2026-01-01T00:01:00.000Z".into(),
        "2026-01-01T01:01:00+01:00".into(),
    ] {
        let (status, page) = app
            .get(paths::messages(&id).query(format!("after={}", urlencode(&after))))
            .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert_eq!(
            ids(&page),
            vec![sent[3].clone(), sent[2].clone()],
            "after={after}"
        );
    }
}

async fn after_and_before_bound_a_window(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let id = app.session().await;
    let sent = four_messages_a_minute_apart(&app, &id).await;
    let window = format!("after={}&before={}", T0, T0 + 3 * MINUTE);
    let (_, page) = app.get(paths::messages(&id).query(window)).await;
    assert_eq!(ids(&page), vec![sent[2].clone(), sent[1].clone()]);
}

async fn malformed_cursors_are_400(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let id = app.session().await;
    four_messages_a_minute_apart(&app, &id).await;
    for bad in ["before=yesterday", "after=2026-13-01T00:00:00Z"] {
        let (status, body) = app.get(paths::messages(&id).query(bad)).await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
    }
}

/// Sends 220 messages in one millisecond (the clock stands still): 100 one at a time, then 120
/// from 12 concurrent senders. Returns their ids.
async fn send_220_tied_messages(app: &TestApp, id: &str) -> HashSet<String> {
    let mut all = HashSet::new();
    for i in 0..100 {
        all.insert(
            app.message(id, &format!("tie {i}")).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let sends = (0..12).map(|sender| async move {
        let mut mine = Vec::new();
        for i in 0..10 {
            let body = app.message(id, &format!("sender {sender} #{i}")).await;
            mine.push(body["id"].as_str().unwrap().to_owned());
        }
        mine
    });
    for mine in join_all(sends).await {
        all.extend(mine);
    }
    assert_eq!(all.len(), 220);
    all
}

/// Pages of 30 from the newest back to the oldest, following `cursors.before`. Returns the ids
/// and the `createdAt` (unix ms) of every message in the order seen.
async fn walk_backwards(app: &TestApp, path: &ApiPath) -> (Vec<String>, Vec<i64>) {
    let mut walked = Vec::new();
    let mut stamps = Vec::new();
    let mut url = path.query("limit=30");
    loop {
        let (status, page) = app.get(&url).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        for m in page["messages"].as_array().unwrap() {
            walked.push(m["id"].as_str().unwrap().to_owned());
            stamps.push(ms(&m["createdAt"]));
        }
        if page["hasMore"] == false {
            break;
        }
        url = path.query(format!("limit=30&before={}", page["cursors"]["before"]));
    }
    (walked, stamps)
}

/// Pages of 30 from before the oldest message forwards, following `cursors.after`. Returns the
/// ids oldest first.
async fn walk_forwards(app: &TestApp, path: &ApiPath) -> Vec<String> {
    let mut forward = Vec::new();
    let mut url = path.query(format!("limit=30&after={}", T0 - 1));
    loop {
        let (_, page) = app.get(&url).await;
        let mut chunk = ids(&page);
        chunk.reverse();
        forward.extend(chunk);
        if page["hasMore"] == false {
            break;
        }
        url = path.query(format!("limit=30&after={}", page["cursors"]["after"]));
    }
    forward
}

async fn paging_backwards_visits_every_message_once_newest_first(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let id = app.session().await;
    let all = send_220_tied_messages(&app, &id).await;

    let (walked, stamps) = walk_backwards(&app, &paths::messages(&id)).await;
    assert_eq!(walked.len(), 220, "no duplicate, no gap");
    assert_eq!(walked.iter().cloned().collect::<HashSet<_>>(), all);
    assert!(
        stamps.windows(2).all(|w| w[0] > w[1]),
        "strictly newest first"
    );
}

async fn paging_forwards_visits_the_same_messages_in_reverse(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let id = app.session().await;
    send_220_tied_messages(&app, &id).await;
    let path = paths::messages(&id);

    let (mut backward, _) = walk_backwards(&app, &path).await;
    backward.reverse();
    let forward = walk_forwards(&app, &path).await;
    assert_eq!(forward, backward, "the same order both ways");
}

async fn the_newest_page_starts_the_walk(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let id = app.session().await;
    send_220_tied_messages(&app, &id).await;
    let path = paths::messages(&id);

    let (walked, _) = walk_backwards(&app, &path).await;
    // The order is stable: the default page is the newest 30 of the walk.
    let (_, page) = app.get(path.query("limit=30")).await;
    assert_eq!(ids(&page), walked[..30].to_vec());
}

/// A session of a new agent that may not outlive 00:40 (a 40-minute maximum duration).
async fn session_capped_at_40_minutes(app: &TestApp) -> String {
    let agent = app.agent().await;
    id_of(
        &app.session_with(&agent, json!({"timeoutConfig": {"maxDurationMinutes": 40}}))
            .await,
    )
}

async fn a_message_renews_the_session(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let capped = session_capped_at_40_minutes(&app).await;

    app.clock.advance_minutes(5);
    let sent = app.message(&capped, "hi").await;
    assert_eq!(sent["sessionStatus"]["wasRenewed"], true);
    assert_eq!(ms(&sent["sessionStatus"]["expiresAt"]), T0 + 35 * MINUTE);
}

async fn message_renewal_stops_at_max_duration(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let capped = session_capped_at_40_minutes(&app).await;
    app.clock.advance_minutes(5);
    app.message(&capped, "hi").await;

    app.clock.advance_minutes(10);
    let sent = app.message(&capped, "hi again").await;
    assert_eq!(sent["sessionStatus"]["wasRenewed"], true);
    assert_eq!(
        ms(&sent["sessionStatus"]["expiresAt"]),
        T0 + 40 * MINUTE,
        "capped"
    );

    app.clock.advance_minutes(1);
    let sent = app.message(&capped, "at the cap").await;
    assert_eq!(sent["sessionStatus"]["wasRenewed"], false);
    assert_eq!(ms(&sent["sessionStatus"]["expiresAt"]), T0 + 40 * MINUTE);
    assert_eq!(sent["sessionStatus"]["renewalCount"], 2);
}

async fn a_message_near_the_cap_is_near_expiration(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let capped = session_capped_at_40_minutes(&app).await;
    app.clock.advance_minutes(15);
    app.message(&capped, "renews up to the cap").await;

    app.clock.set(T0 + 36 * MINUTE);
    let sent = app.message(&capped, "near the end").await;
    assert_eq!(sent["sessionStatus"]["isNearExpiration"], true);
}

async fn messages_of_a_session_past_its_cap_are_410(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let capped = session_capped_at_40_minutes(&app).await;
    app.clock.advance_minutes(15);
    app.message(&capped, "renews up to the cap").await;

    app.clock.set(T0 + 40 * MINUTE);
    for (status, body) in [
        app.post(paths::messages(&capped), json!({"content": "late"}))
            .await,
        app.get(paths::messages(&capped)).await,
    ] {
        assert_error(status, &body, StatusCode::GONE, "SESSION_EXPIRED");
    }
}

async fn a_message_does_not_renew_without_auto_renew(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let agent = app.agent().await;
    let manual = id_of(
        &app.session_with(&agent, json!({"timeoutConfig": {"autoRenew": false}}))
            .await,
    );

    app.clock.advance_minutes(16);
    let sent = app.message(&manual, "no renew").await;
    assert_eq!(sent["sessionStatus"]["wasRenewed"], false);
    assert_eq!(ms(&sent["sessionStatus"]["expiresAt"]), T0 + 30 * MINUTE);
}

async fn messages_of_an_unknown_session_are_404(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let (status, body) = app
        .post(
            paths::messages(uuid::Uuid::new_v4()),
            json!({"content": "nobody"}),
        )
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "SESSION_NOT_FOUND");
}

async fn the_agent_as_author_makes_an_agent_message(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let agent = app.agent().await;
    let id = id_of(&app.session_with(&agent, json!({})).await);

    let (status, reply) = app
        .post(
            paths::messages(&id),
            json!({"content": "How can I help?", "authorId": agent.to_uppercase()}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{reply}");
    assert_eq!(reply["authorId"], agent);
    assert_eq!(reply["isAgent"], true);
}

async fn the_user_as_author_makes_a_user_message(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let agent = app.agent().await;
    let session = app.session_with(&agent, json!({})).await;

    let (status, mine) = app
        .post(
            paths::messages(id_of(&session)),
            json!({"content": "Me again", "authorId": session["userId"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(mine["isAgent"], false);
}

async fn other_authors_are_rejected(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let id = app.session().await;
    for author in [json!(uuid::Uuid::new_v4()), json!("agent-123")] {
        let (status, body) = app
            .post(
                paths::messages(&id),
                json!({"content": "x", "authorId": author}),
            )
            .await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
        assert_eq!(body["details"]["field"], "authorId");
    }
    assert_eq!(app.stored_messages().await, 0);
}

async fn the_list_shows_who_wrote_each_message(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let agent = app.agent().await;
    let session = app.session_with(&agent, json!({})).await;
    let path = paths::messages(id_of(&session));
    for author in [json!(agent), session["userId"].clone()] {
        let (status, body) = app
            .post(&path, json!({"content": "hi", "authorId": author}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }

    let (_, page) = app.get(&path).await;
    assert_eq!(page["messages"][1]["isAgent"], true);
    assert_eq!(page["messages"].as_array().unwrap().len(), 2);
}

async fn invalid_messages_are_rejected_and_not_stored(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let id = app.session().await;
    let attachment = json!({"type": "file", "url": "https://example.com/f"});
    let cases = [
        (json!({}), "content"),
        (json!({"content": ""}), "content"),
        (json!({"content": "  \n\t "}), "content"),
        (json!({"content": 42}), "content"),
        (json!({"content": "x".repeat(10_001)}), "content"),
        (json!({"content": "hi", "metadata": [1]}), "metadata"),
        (
            json!({"content": "hi", "metadata": {"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}}}),
            "metadata",
        ),
        (
            json!({"content": "hi", "attachments": vec![attachment.clone(); 11]}),
            "attachments",
        ),
        (
            json!({"content": "hi", "attachments": [{"type": " ", "url": "https://e.com/x"}]}),
            "attachments[0].type",
        ),
        (
            json!({"content": "hi", "attachments": [attachment, {"type": "file", "url": "ftp://e.com/x"}]}),
            "attachments[1].url",
        ),
        (
            json!({"content": "hi", "attachments": [{"type": "file", "url": "javascript:alert(1)"}]}),
            "attachments[0].url",
        ),
        (
            json!({"content": "hi", "attachments": [{"type": "file"}]}),
            "attachments[0].url",
        ),
        (
            json!({"content": "hi", "attachments": "none"}),
            "attachments",
        ),
    ];
    for (body, field) in cases {
        let (status, err) = app.post(paths::messages(&id), body.clone()).await;
        assert_error(status, &err, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
        assert_eq!(err["details"]["field"], field, "for {body}: {err}");
    }
    assert_eq!(app.stored_messages().await, 0);
    let (_, s) = app.get(paths::session(&id)).await;
    assert_eq!(s["renewalCount"], 0, "a rejected message is not activity");
}

async fn messages_at_the_limits_are_accepted(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let path = paths::messages(app.session().await);
    let attachment = json!({"type": "file", "url": "https://example.com/f"});

    // Limits are in characters, not bytes: 10,000 two-byte characters are fine.
    let (status, body) = app
        .post(&path, json!({"content": "é".repeat(10_000)}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = app
        .post(
            &path,
            json!({"content": "ok", "attachments": vec![attachment; 10]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(app.stored_messages().await, 2);
}

async fn deleting_a_session_deletes_only_its_messages(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let deleted = session_with_messages(&app, 3).await;
    session_with_messages(&app, 3).await;
    assert_eq!(app.stored_messages().await, 6);

    let (status, _) = app.delete(paths::session(&deleted)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(app.stored_messages().await, 3);
    let (status, body) = app.get(paths::messages(&deleted)).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "SESSION_NOT_FOUND");
}

async fn purging_a_session_deletes_its_messages(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    session_with_messages(&app, 3).await;
    assert_eq!(app.stored_messages().await, 3);

    app.clock.advance_minutes(30 + 24 * 60);
    let report = app.reap().await;
    assert_eq!(report.purged, 1);
    assert_eq!(app.stored_messages().await, 0);
}
