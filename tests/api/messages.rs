use std::collections::HashSet;

use futures::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::backend_tests;
use crate::helpers::{assert_error, id_of, ms, paths, Kind, TestApp, MINUTE, T0};

backend_tests!(
    send_and_list_shapes,
    default_and_maximum_limit,
    both_cursor_forms,
    paging_is_exact_with_ties_and_concurrent_senders,
    a_message_renews_within_the_cap,
    agents_reply_as_themselves,
    invalid_messages_are_rejected_and_not_stored,
    idempotent_create_session_replays,
    idempotent_send_replays,
    messages_end_with_their_session,
);

fn ids(page: &Value) -> Vec<String> {
    page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn send_and_list_shapes(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let agent = app.agent().await;
    let session = app.session_with(&agent, json!({})).await;
    let id = id_of(&session);
    let path = paths::messages(&id);

    app.clock.advance_minutes(1);
    let (status, sent) = app
        .post(
            &path,
            json!({
                "content": "Hello, I need help",
                "attachments": [{"type": "image", "url": "https://example.com/a.png", "name": "a.png"}],
                "metadata": {"userTimezone": "America/New_York"}
            }),
        )
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

    // Reading is not activity; the session was renewed by the second message only.
    let (_, s) = app.get(paths::session(&id)).await;
    assert_eq!(ms(&s["lastActivity"]), T0 + 2 * MINUTE);
    assert_eq!(s["renewalCount"], 2);

    let (status, empty) = app.get(paths::messages(app.session().await)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        empty,
        json!({"messages": [], "hasMore": false, "cursors": {"before": null, "after": null}})
    );
}

async fn default_and_maximum_limit(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let id = app.session().await;
    for i in 0..120 {
        app.message(&id, &format!("m{i}")).await;
    }
    let path = paths::messages(&id);
    let (_, page) = app.get(&path).await;
    assert_eq!(page["messages"].as_array().unwrap().len(), 50);
    assert_eq!(page["hasMore"], true);
    assert_eq!(page["messages"][0]["content"], "m119");
    let (_, page) = app.get(path.query("limit=100")).await;
    assert_eq!(page["messages"].as_array().unwrap().len(), 100);
    assert_eq!(page["hasMore"], true);
    let (_, page) = app.get(path.query("limit=1")).await;
    assert_eq!(page["messages"].as_array().unwrap().len(), 1);
    for bad in ["limit=0", "limit=101", "limit=ten", "limit=-5", "limit=1.5"] {
        let (status, body) = app.get(path.query(bad)).await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
        assert_eq!(body["details"]["field"], "limit");
    }
}

async fn both_cursor_forms(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let id = app.session().await;
    let path = paths::messages(&id);
    let mut sent = Vec::new();
    for i in 0..4 {
        app.clock.set(T0 + i * MINUTE);
        sent.push(
            app.message(&id, &format!("m{i}")).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    // Before 00:02: m1, m0 (newest first). After 00:01: m3, m2.
    for before in [
        format!("{}", T0 + 2 * MINUTE),
        "2026-01-01T00:02:00.000Z".into(),
        "2026-01-01T00:02:00Z".into(),
    ] {
        let (status, page) = app.get(path.query(format!("before={before}"))).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert_eq!(
            ids(&page),
            vec![sent[1].clone(), sent[0].clone()],
            "before={before}"
        );
        assert_eq!(page["hasMore"], false);
    }
    for after in [
        format!("{}", T0 + MINUTE),
        "2026-01-01T00:01:00.000Z".into(),
        "2026-01-01T01:01:00+01:00".into(),
    ] {
        let (status, page) = app
            .get(path.query(format!("after={}", urlencode(&after))))
            .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert_eq!(
            ids(&page),
            vec![sent[3].clone(), sent[2].clone()],
            "after={after}"
        );
    }
    let (_, page) = app
        .get(path.query(format!("after={}&before={}", T0, T0 + 3 * MINUTE)))
        .await;
    assert_eq!(ids(&page), vec![sent[2].clone(), sent[1].clone()]);
    for bad in ["before=yesterday", "after=2026-13-01T00:00:00Z"] {
        let (status, body) = app.get(path.query(bad)).await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
    }
}

fn urlencode(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}

async fn paging_is_exact_with_ties_and_concurrent_senders(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let id = app.session().await;
    let path = paths::messages(&id);
    let mut all = HashSet::new();
    // 100 messages in one millisecond (the clock stands still), one at a time...
    for i in 0..100 {
        all.insert(
            app.message(&id, &format!("tie {i}")).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    // ...then 120 more from 12 concurrent senders, still in that same millisecond.
    let sends = (0..12).map(|sender| {
        let app = &app;
        let id = id.clone();
        async move {
            let mut mine = Vec::new();
            for i in 0..10 {
                let body = app.message(&id, &format!("sender {sender} #{i}")).await;
                mine.push(body["id"].as_str().unwrap().to_owned());
            }
            mine
        }
    });
    for mine in join_all(sends).await {
        all.extend(mine);
    }
    assert_eq!(all.len(), 220);

    // Backwards from the newest page to the oldest.
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
    assert_eq!(walked.len(), 220, "no duplicate, no gap");
    assert_eq!(walked.iter().cloned().collect::<HashSet<_>>(), all);
    assert!(
        stamps.windows(2).all(|w| w[0] > w[1]),
        "strictly newest first"
    );

    // Forwards from before the oldest to the newest.
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
    let mut backward = walked.clone();
    backward.reverse();
    assert_eq!(forward, backward, "the same order both ways");

    // The order is stable: the default page is the newest 30 of the walk.
    let (_, page) = app.get(path.query("limit=30")).await;
    assert_eq!(ids(&page), walked[..30].to_vec());
}

async fn a_message_renews_within_the_cap(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let agent = app.agent().await;
    let capped = id_of(
        &app.session_with(&agent, json!({"timeoutConfig": {"maxDurationMinutes": 40}}))
            .await,
    );
    let manual = id_of(
        &app.session_with(&agent, json!({"timeoutConfig": {"autoRenew": false}}))
            .await,
    );

    app.clock.advance_minutes(5);
    let sent = app.message(&capped, "hi").await;
    assert_eq!(sent["sessionStatus"]["wasRenewed"], true);
    assert_eq!(ms(&sent["sessionStatus"]["expiresAt"]), T0 + 35 * MINUTE);

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

    let sent = app.message(&manual, "no renew").await;
    assert_eq!(sent["sessionStatus"]["wasRenewed"], false);
    assert_eq!(ms(&sent["sessionStatus"]["expiresAt"]), T0 + 30 * MINUTE);

    app.clock.set(T0 + 36 * MINUTE);
    let sent = app.message(&capped, "near the end").await;
    assert_eq!(sent["sessionStatus"]["isNearExpiration"], true);

    app.clock.set(T0 + 40 * MINUTE);
    for (status, body) in [
        app.post(paths::messages(&capped), json!({"content": "late"}))
            .await,
        app.get(paths::messages(&capped)).await,
    ] {
        assert_error(status, &body, StatusCode::GONE, "SESSION_EXPIRED");
    }
    let (status, body) = app
        .post(
            paths::messages(uuid::Uuid::new_v4()),
            json!({"content": "nobody"}),
        )
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "SESSION_NOT_FOUND");
}

async fn agents_reply_as_themselves(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let agent = app.agent().await;
    let session = app.session_with(&agent, json!({})).await;
    let id = id_of(&session);
    let path = paths::messages(&id);

    let (status, reply) = app
        .post(
            &path,
            json!({"content": "How can I help?", "authorId": agent.to_uppercase()}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{reply}");
    assert_eq!(reply["authorId"], agent);
    assert_eq!(reply["isAgent"], true);

    let (status, mine) = app
        .post(
            &path,
            json!({"content": "Me again", "authorId": session["userId"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(mine["isAgent"], false);

    for author in [json!(uuid::Uuid::new_v4()), json!("agent-123")] {
        let (status, body) = app
            .post(&path, json!({"content": "x", "authorId": author}))
            .await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
        assert_eq!(body["details"]["field"], "authorId");
    }
    let (_, page) = app.get(&path).await;
    assert_eq!(page["messages"][1]["isAgent"], true);
    assert_eq!(page["messages"].as_array().unwrap().len(), 2);
}

async fn invalid_messages_are_rejected_and_not_stored(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let id = app.session().await;
    let path = paths::messages(&id);
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
            json!({"content": "hi", "attachments": [attachment.clone(), {"type": "file", "url": "ftp://e.com/x"}]}),
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
        let (status, err) = app.post(&path, body.clone()).await;
        assert_error(status, &err, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
        assert_eq!(err["details"]["field"], field, "for {body}: {err}");
    }
    assert_eq!(app.stored_messages().await, 0);
    let (_, s) = app.get(paths::session(&id)).await;
    assert_eq!(s["renewalCount"], 0, "a rejected message is not activity");

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

async fn idempotent_create_session_replays(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let agent = app.agent().await;
    let user = uuid::Uuid::new_v4();
    let body = json!({"agentId": agent, "userId": user, "metadata": {"a": 1, "b": 2}});
    let path = &paths::sessions();

    let (status, first, replayed) = post_with_key(&app, path, "create-1", body.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert!(!replayed);
    app.clock.advance_minutes(3);
    // Same JSON, keys in another order: the same request.
    let same = json!({"metadata": {"b": 2, "a": 1}, "userId": user, "agentId": agent});
    let (status, again, replayed) = post_with_key(&app, path, "create-1", same).await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(replayed);
    assert_eq!(again, first, "the original body, not a new session");
    assert_eq!(app.session_count("all").await, 1);

    let other = json!({"agentId": agent, "userId": uuid::Uuid::new_v4()});
    let (status, err, _) = post_with_key(&app, path, "create-1", other.clone()).await;
    assert_error(
        status,
        &err,
        StatusCode::UNPROCESSABLE_ENTITY,
        "IDEMPOTENCY_KEY_REUSED",
    );
    assert_eq!(app.session_count("all").await, 1);

    // Concurrent retries with one key create one session.
    let racers = (0..6).map(|_| post_with_key(&app, path, "create-race", other.clone()));
    let results = join_all(racers).await;
    let bodies: HashSet<String> = results
        .iter()
        .map(|(status, body, _)| {
            assert_eq!(*status, StatusCode::CREATED, "{body}");
            id_of(body)
        })
        .collect();
    assert_eq!(bodies.len(), 1);
    assert_eq!(app.session_count("all").await, 2);

    // Keys are forgotten after 24 hours (the reaper purges them).
    app.clock.advance_minutes(24 * 60);
    let report = app.reap().await;
    assert!(report.idempotency_keys_purged >= 1);
    let (status, _, replayed) = post_with_key(&app, path, "create-1", other).await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(!replayed);

    let (status, err, _) = post_with_key(&app, path, "bad key with spaces", body).await;
    assert_error(status, &err, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
}

async fn idempotent_send_replays(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let id = app.session().await;
    let path = paths::messages(&id);
    let body = json!({"content": "only once"});
    let (status, first, _) = post_with_key(&app, &path, "msg-1", body.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    app.clock.advance_minutes(1);
    let (status, again, replayed) = post_with_key(&app, &path, "msg-1", body.clone()).await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(replayed);
    assert_eq!(again, first);
    let (status, err, _) = post_with_key(&app, &path, "msg-1", json!({"content": "changed"})).await;
    assert_error(
        status,
        &err,
        StatusCode::UNPROCESSABLE_ENTITY,
        "IDEMPOTENCY_KEY_REUSED",
    );

    // The same key on another session is another request.
    let other = app.session().await;
    let (status, _, replayed) =
        post_with_key(&app, paths::messages(&other), "msg-1", body.clone()).await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(!replayed);

    let racers = (0..6).map(|_| post_with_key(&app, &path, "msg-race", json!({"content": "race"})));
    for (status, body, _) in join_all(racers).await {
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let (_, page) = app.get(&path).await;
    assert_eq!(page["messages"].as_array().unwrap().len(), 2);
    assert_eq!(app.stored_messages().await, 3);
}

async fn messages_end_with_their_session(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let deleted = app.session().await;
    let purged = app.session().await;
    for id in [&deleted, &purged] {
        for i in 0..3 {
            app.message(id, &format!("m{i}")).await;
        }
    }
    assert_eq!(app.stored_messages().await, 6);
    let (status, _) = app.delete(paths::session(&deleted)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(app.stored_messages().await, 3);
    let (status, body) = app.get(paths::messages(&deleted)).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "SESSION_NOT_FOUND");

    app.clock.advance_minutes(30 + 24 * 60);
    let report = app.reap().await;
    assert_eq!(report.purged, 1);
    assert_eq!(app.stored_messages().await, 0);
}
