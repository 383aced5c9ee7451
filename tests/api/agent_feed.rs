//! The agent feed: `GET /api/agents/{id}/watch` (long-poll) and `GET /api/agents/{id}/events`
//! (Server-Sent Events), every event of every session of one agent in one gap-free order.

use std::collections::{HashMap, HashSet};
use std::fmt::Display;
use std::time::{Duration, Instant};

use futures::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::backend_tests;
use crate::helpers::sse::{EventStream, Frame};
use crate::helpers::{assert_error, id_of, paths, Kind, TestApp, MINUTE, T0};

backend_tests!(
    the_feed_interleaves_an_agents_sessions_in_commit_order,
    feed_limit_pages_through_every_event_exactly_once,
    a_waiting_agent_watch_is_woken_by_any_of_its_sessions,
    a_waiting_agent_watch_ignores_other_agents,
    the_agent_stream_sends_the_backlog_then_live_events_and_outlives_a_session,
    the_agent_stream_resumes_after_last_event_id_or_cursor,
    who_may_read_an_agents_feed,
    the_feed_outlives_a_deleted_agent,
    an_agents_open_streams_are_limited,
    a_cursor_into_purged_events_is_410_and_cursor_0_resyncs,
    one_reaper_batch_expiring_many_sessions_keeps_every_feed_gap_free,
);

/// Well under any long-poll timeout these tests use, well over a prompt answer.
const PROMPT: Duration = Duration::from_secs(5);

/// `/api/agents/{id}/watch?{query}`.
fn watch(agent: impl Display, query: impl Display) -> String {
    format!("{}/watch?{query}", paths::agent(agent).as_ref())
}

/// `/api/agents/{id}/events`, with `?{query}` when not empty.
fn stream(agent: impl Display, query: &str) -> String {
    let path = format!("{}/events", paths::agent(agent).as_ref());
    if query.is_empty() {
        path
    } else {
        format!("{path}?{query}")
    }
}

/// A timestamp as the API writes it: RFC 3339, milliseconds, `Z`.
fn at(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .expect("a valid instant")
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// An agent watch with the app's default credential that must answer 200; returns the body.
async fn watch_ok(app: &TestApp, agent: &str, query: &str) -> Value {
    let (status, body) = app.get(watch(agent, query)).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "watch agent {agent}?{query}: {body}"
    );
    body
}

/// An agent watch that must answer 200; returns the body and how long it took.
async fn timed_watch(app: &TestApp, agent: &str, query: &str) -> (Value, Duration) {
    let started = Instant::now();
    let body = watch_ok(app, agent, query).await;
    (body, started.elapsed())
}

/// The whole feed of an agent, oldest first, read without waiting.
async fn feed(app: &TestApp, agent: &str) -> Vec<Value> {
    let body = watch_ok(app, agent, "cursor=0&limit=500&timeout=0").await;
    events(&body).clone()
}

/// The whole log of one session, oldest first, read without waiting.
async fn session_log(app: &TestApp, session: &str) -> Vec<Value> {
    let path = format!(
        "{}/watch?cursor=0&limit=500&timeout=0",
        paths::session(session).as_ref()
    );
    let (status, body) = app.get(path).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    events(&body).clone()
}

/// The events of a watch answer.
fn events(body: &Value) -> &Vec<Value> {
    body["events"].as_array().expect("events array")
}

fn cursors(events: &[Value]) -> Vec<i64> {
    events
        .iter()
        .map(|e| e["cursor"].as_i64().expect("cursor"))
        .collect()
}

/// Each event as `(type, sessionId)`.
fn kinds(events: &[Value]) -> Vec<(&str, &str)> {
    events
        .iter()
        .map(|e| {
            (
                e["type"].as_str().expect("type"),
                e["sessionId"].as_str().expect("sessionId"),
            )
        })
        .collect()
}

/// Asserts a whole feed's envelope: cursors 1..=n without gaps, every event of `agent`.
fn assert_feed(events: &[Value], agent: &str) {
    let expected: Vec<i64> = (1..=events.len() as i64).collect();
    assert_eq!(cursors(events), expected, "{events:#?}");
    for e in events {
        assert_eq!(e["agentId"], agent, "{e}");
    }
}

/// The `sessionToken` of a create answer.
fn token_of(created: &Value) -> String {
    created["sessionToken"]
        .as_str()
        .unwrap_or_else(|| panic!("a created session has a token: {created}"))
        .to_owned()
}

/// Opens the agent's stream with the app's default credential (and `header` if given).
async fn open_events(
    app: &TestApp,
    agent: &str,
    query: &str,
    header: Option<(&str, &str)>,
) -> EventStream {
    EventStream::open(app, stream(agent, query), header).await
}

/// The next event must be `event` of `session` at feed position `id`.
async fn expect_of(events: &mut EventStream, id: i64, event: &str, session: &str) -> Frame {
    let frame = events.expect(id, event).await;
    assert_eq!(frame.data["sessionId"], session, "{frame:?}");
    frame
}

async fn the_feed_interleaves_an_agents_sessions_in_commit_order(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let agent = app.agent().await;
    let other_agent = app.agent().await;
    let a = id_of(&app.session_with(&agent, json!({})).await);
    let b = id_of(&app.session_with(&agent, json!({})).await);
    let other = id_of(&app.session_with(&other_agent, json!({})).await);
    app.message(&a, "a1").await;
    app.message(&other, "not this agent's").await;
    app.message(&b, "b1").await;
    // A minute on, the message also renews its session: both events enter the feed.
    app.clock.advance_minutes(1);
    app.message(&a, "a2").await;
    app.message(&b, "b2").await;

    let mine = feed(&app, &agent).await;
    assert_feed(&mine, &agent);
    assert_eq!(
        kinds(&mine),
        [
            ("session.created", a.as_str()),
            ("session.created", b.as_str()),
            ("message.created", a.as_str()),
            ("message.created", b.as_str()),
            ("message.created", a.as_str()),
            ("session.renewed", a.as_str()),
            ("message.created", b.as_str()),
            ("session.renewed", b.as_str()),
        ],
        "{mine:#?}"
    );
    let contents: Vec<&str> = mine
        .iter()
        .filter(|e| e["type"] == "message.created")
        .map(|e| e["data"]["content"].as_str().unwrap())
        .collect();
    assert_eq!(contents, ["a1", "b1", "a2", "b2"]);
    assert_eq!(mine[0]["data"]["sessionId"], a.as_str());
    assert_eq!(mine[7]["timestamp"], at(T0 + MINUTE));

    // The feed's cursor is the agent position, not the session's own sequence number: the
    // same event is 2nd in the feed and 1st in its session's log.
    let log_b = session_log(&app, &b).await;
    assert_eq!(log_b[0]["cursor"], 1);
    assert_eq!(log_b[0]["data"], mine[1]["data"]);
    assert_eq!(mine[1]["cursor"], 2);

    // The other agent's feed has its own events only, counted from 1.
    let other_feed = feed(&app, &other_agent).await;
    assert_feed(&other_feed, &other_agent);
    assert_eq!(
        kinds(&other_feed),
        [
            ("session.created", other.as_str()),
            ("message.created", other.as_str())
        ]
    );
}

async fn feed_limit_pages_through_every_event_exactly_once(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let agent = app.agent().await;
    let sessions = [
        id_of(&app.session_with(&agent, json!({})).await),
        id_of(&app.session_with(&agent, json!({})).await),
    ];
    let contents: Vec<String> = (1..=8).map(|i| format!("message {i}")).collect();
    for (i, content) in contents.iter().enumerate() {
        app.message(&sessions[i % 2], content).await;
    }

    let (mut cursor, mut seen, mut pages) = (0, Vec::new(), Vec::new());
    loop {
        let body = watch_ok(&app, &agent, &format!("cursor={cursor}&limit=3&timeout=0")).await;
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
    assert_feed(&seen, &agent);
    let sent: Vec<&str> = seen[2..]
        .iter()
        .map(|e| e["data"]["content"].as_str().unwrap())
        .collect();
    assert_eq!(sent, contents, "every message once, oldest first");
    for (i, e) in seen[2..].iter().enumerate() {
        assert_eq!(e["sessionId"], sessions[i % 2].as_str(), "{e}");
    }
}

async fn a_waiting_agent_watch_is_woken_by_any_of_its_sessions(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let agent = app.agent().await;
    let a = id_of(&app.session_with(&agent, json!({})).await);
    let b = id_of(&app.session_with(&agent, json!({})).await);

    // A message in either session wakes the agent's watch, long before its timeout.
    for (cursor, session) in [(2, &b), (3, &a)] {
        let query = format!("cursor={cursor}&timeout=10000");
        let started = Instant::now();
        let (body, sent) = tokio::join!(watch_ok(&app, &agent, &query), async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            app.message(session, "wake up").await
        });
        let took = started.elapsed();
        assert!(took < PROMPT, "woken by {session}, took {took:?}");
        assert_eq!(cursors(events(&body)), [cursor + 1], "{body}");
        assert_eq!(body["events"][0]["type"], "message.created");
        assert_eq!(body["events"][0]["sessionId"], session.as_str());
        assert_eq!(body["events"][0]["data"]["id"], sent["id"]);
        assert_eq!(body["cursor"], cursor + 1);
    }

    // So does a session the agent did not have when the watch began.
    let started = Instant::now();
    let (body, created) = tokio::join!(watch_ok(&app, &agent, "cursor=4&timeout=10000"), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        app.session_with(&agent, json!({})).await
    });
    let took = started.elapsed();
    assert!(took < PROMPT, "woken by a new session, took {took:?}");
    assert_eq!(
        kinds(events(&body)),
        [("session.created", id_of(&created).as_str())],
        "{body}"
    );
    assert_eq!(body["cursor"], 5);
}

async fn a_waiting_agent_watch_ignores_other_agents(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let agent = app.agent().await;
    app.session_with(&agent, json!({})).await;
    let other_agent = app.agent().await;
    let other = id_of(&app.session_with(&other_agent, json!({})).await);

    let started = Instant::now();
    let (body, _) = tokio::join!(watch_ok(&app, &agent, "cursor=1&timeout=300"), async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        app.message(&other, "not for you").await;
        app.session_with(&other_agent, json!({})).await
    });
    let took = started.elapsed();
    assert_eq!(body, json!({"events": [], "cursor": 1}));
    assert!(
        took >= Duration::from_millis(300),
        "kept waiting until the timeout, took {took:?}"
    );
    assert!(took < PROMPT, "gave up at the timeout, took {took:?}");
}

async fn the_agent_stream_sends_the_backlog_then_live_events_and_outlives_a_session(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let agent = app.agent().await;
    let a = id_of(&app.session_with(&agent, json!({})).await);
    let b = id_of(&app.session_with(&agent, json!({})).await);
    app.message(&a, "backlog").await;

    let mut events = open_events(&app, &agent, "", None).await;
    expect_of(&mut events, 1, "session.created", &a).await;
    expect_of(&mut events, 2, "session.created", &b).await;
    let backlog = expect_of(&mut events, 3, "message.created", &a).await;
    assert_eq!(backlog.data["data"]["content"], "backlog");
    assert_eq!(backlog.data["agentId"], agent.as_str());

    app.message(&b, "live in b").await;
    let live = expect_of(&mut events, 4, "message.created", &b).await;
    assert_eq!(live.data["data"]["content"], "live in b");
    app.message(&a, "live in a").await;
    let live = expect_of(&mut events, 5, "message.created", &a).await;
    assert_eq!(live.data["data"]["content"], "live in a");

    // One session ends: the agent's stream goes on with the others.
    let (status, body) = app.delete(paths::session(&a)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let ended = expect_of(&mut events, 6, "session.ended", &a).await;
    assert_eq!(ended.data["data"]["reason"], "deleted");
    app.message(&b, "after a ended").await;
    let after = expect_of(&mut events, 7, "message.created", &b).await;
    assert_eq!(after.data["data"]["content"], "after a ended");
    let c = id_of(&app.session_with(&agent, json!({})).await);
    expect_of(&mut events, 8, "session.created", &c).await;
}

async fn the_agent_stream_resumes_after_last_event_id_or_cursor(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let agent = app.agent().await;
    let a = id_of(&app.session_with(&agent, json!({})).await);
    let b = id_of(&app.session_with(&agent, json!({})).await);
    for (session, text) in [(&a, "one"), (&b, "two"), (&a, "three")] {
        app.message(session, text).await;
    }

    // A reconnecting EventSource sends the last id it saw: nothing before it comes again.
    let mut resumed = open_events(&app, &agent, "", Some(("Last-Event-ID", "3"))).await;
    let two = expect_of(&mut resumed, 4, "message.created", &b).await;
    assert_eq!(two.data["data"]["content"], "two");
    let three = expect_of(&mut resumed, 5, "message.created", &a).await;
    assert_eq!(three.data["data"]["content"], "three");
    app.message(&b, "four").await;
    let four = expect_of(&mut resumed, 6, "message.created", &b).await;
    assert_eq!(four.data["data"]["content"], "four");

    // `?cursor=` starts after it; `Last-Event-ID` wins over it.
    let mut from_cursor = open_events(&app, &agent, "cursor=5", None).await;
    let four = expect_of(&mut from_cursor, 6, "message.created", &b).await;
    assert_eq!(four.data["data"]["content"], "four");
    let mut both = open_events(&app, &agent, "cursor=1", Some(("Last-Event-ID", "4"))).await;
    expect_of(&mut both, 5, "message.created", &a).await;
}

async fn who_may_read_an_agents_feed(kind: Kind) {
    let app = TestApp::spawn_secured(kind).await;
    let agent = app.agent().await;
    let created = app.session_with(&agent, json!({})).await;
    let token = token_of(&created);
    let stranger = app.agent().await;
    let own_key = app.create_key(&["sessions:read"], Some(&agent)).await;
    let reader = app.create_key(&["sessions:read"], None).await;
    let strangers_key = app.create_key(&["sessions:read"], Some(&stranger)).await;
    let no_scope = app.create_key(&["sessions:write"], None).await;
    let unknown = uuid::Uuid::new_v4().to_string();

    // Allowed: the runtime's key bound to this agent, an unbound reader, either as
    // `?access_token=`; the watch shows the feed, the stream opens on it.
    for (what, key) in [("own agent's key", &own_key), ("unbound reader", &reader)] {
        let reply = app
            .call(Method::GET, watch(&agent, "timeout=0"))
            .bearer(key)
            .send()
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{what}: {}", reply.body);
        assert_eq!(
            kinds(events(&reply.body)),
            [("session.created", id_of(&created).as_str())],
            "{what}"
        );
        let opened = app
            .call(Method::GET, stream(&agent, ""))
            .bearer(key)
            .open()
            .await;
        let mut frames = EventStream::of(opened);
        expect_of(&mut frames, 1, "session.created", &id_of(&created)).await;
    }
    let reply = app
        .call(
            Method::GET,
            watch(&agent, format!("timeout=0&access_token={own_key}")),
        )
        .without_credential()
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::OK, "access_token: {}", reply.body);
    assert_eq!(events(&reply.body).len(), 1, "{}", reply.body);
    let opened = app
        .call(
            Method::GET,
            stream(&agent, &format!("access_token={own_key}")),
        )
        .without_credential()
        .open()
        .await;
    let mut frames = EventStream::of(opened);
    expect_of(&mut frames, 1, "session.created", &id_of(&created)).await;

    // Refused, on both routes, with a status rather than inside a stream.
    for path in [watch(&agent, "timeout=0"), stream(&agent, "")] {
        for (what, key) in [
            ("a key bound to another agent", &strangers_key),
            ("a session token", &token),
            ("a key without sessions:read", &no_scope),
        ] {
            let reply = app.call(Method::GET, &path).bearer(key).send().await;
            assert_eq!(reply.status, StatusCode::FORBIDDEN, "{what} on {path}");
            reply.assert_error(StatusCode::FORBIDDEN, "FORBIDDEN");
        }
        for query in [
            format!("access_token={strangers_key}"),
            format!("access_token={token}"),
        ] {
            let sep = if path.contains('?') { '&' } else { '?' };
            app.call(Method::GET, format!("{path}{sep}{query}"))
                .without_credential()
                .send()
                .await
                .assert_error(StatusCode::FORBIDDEN, "FORBIDDEN");
        }
        app.call(Method::GET, &path)
            .without_credential()
            .send()
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    }

    // An agent that never existed has no feed; a registered one without sessions has an
    // empty one.
    for path in [watch(&unknown, "timeout=10000"), stream(&unknown, "")] {
        let started = Instant::now();
        let reply = app.call(Method::GET, &path).send().await;
        reply.assert_error(StatusCode::NOT_FOUND, "AGENT_NOT_FOUND");
        assert!(started.elapsed() < PROMPT, "{path}: answered at once");
    }
    let (body, took) = timed_watch(&app, &stranger, "timeout=0").await;
    assert!(took < PROMPT);
    assert_eq!(body, json!({"events": [], "cursor": 0}));
}

async fn the_feed_outlives_a_deleted_agent(kind: Kind) {
    let app = TestApp::spawn_secured(kind).await;
    let agent = app.agent().await;
    let sessions: HashSet<String> = [
        id_of(&app.session_with(&agent, json!({})).await),
        id_of(&app.session_with(&agent, json!({})).await),
    ]
    .into();
    let own_key = app.create_key(&["sessions:read"], Some(&agent)).await;
    let never_used = app.agent().await;

    app.clock.advance_minutes(3);
    for gone in [&agent, &never_used] {
        let (status, body) = app.delete(paths::agent(gone)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (status, body) = app.get(paths::agent(&agent)).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "AGENT_NOT_FOUND");

    // The unbound reader and the agent's own key still read the feed: its sessions' ends.
    for key in [None, Some(&own_key)] {
        let mut call = app.call(Method::GET, watch(&agent, "cursor=0&timeout=0"));
        if let Some(key) = key {
            call = call.bearer(key);
        }
        let reply = call.send().await;
        assert_eq!(reply.status, StatusCode::OK, "{key:?}: {}", reply.body);
        let feed = events(&reply.body);
        assert_feed(feed, &agent);
        let types: Vec<&str> = kinds(feed).iter().map(|(t, _)| *t).collect();
        assert_eq!(
            types,
            [
                "session.created",
                "session.created",
                "session.ended",
                "session.ended"
            ],
            "{feed:#?}"
        );
        let ended: HashSet<String> = feed[2..]
            .iter()
            .map(|e| e["sessionId"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(ended, sessions, "each session ended once");
        for e in &feed[2..] {
            assert_eq!(
                e["data"],
                json!({"reason": "agent_deleted", "endedAt": at(T0 + 3 * MINUTE)}),
                "{e}"
            );
        }
        assert_eq!(reply.body["cursor"], 4);
    }

    // The stream too: the backlog comes, and it does not end with the agent.
    let mut events = open_events(&app, &agent, "cursor=2", None).await;
    for id in [3, 4] {
        let frame = events.next().await.expect("the backlog");
        assert_eq!((frame.id, frame.event.as_str()), (id, "session.ended"));
        assert_eq!(frame.data["data"]["reason"], "agent_deleted");
    }

    // An agent deleted without ever having an event leaves no feed.
    let (status, body) = app.get(watch(&never_used, "timeout=0")).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "AGENT_NOT_FOUND");
}

async fn an_agents_open_streams_are_limited(kind: Kind) {
    let app = TestApp::spawn_with(kind, |s| s.max_streams_per_session = 2).await;
    let agent = app.agent().await;
    let session = id_of(&app.session_with(&agent, json!({})).await);
    let mut first = open_events(&app, &agent, "", None).await;
    let mut second = open_events(&app, &agent, "", None).await;
    for events in [&mut first, &mut second] {
        expect_of(events, 1, "session.created", &session).await;
    }

    let refused = app.call(Method::GET, stream(&agent, "")).send().await;
    refused.assert_error(StatusCode::TOO_MANY_REQUESTS, "TOO_MANY_STREAMS");
    assert_eq!(refused.body["details"]["limit"], "streams_per_session");
    app.call(Method::GET, watch(&agent, "timeout=0"))
        .send()
        .await
        .assert_error(StatusCode::TOO_MANY_REQUESTS, "TOO_MANY_STREAMS");

    // The agent's sessions and other agents count on their own.
    let own = app
        .call(
            Method::GET,
            format!("{}/events", paths::session(&session).as_ref()),
        )
        .open()
        .await;
    assert_eq!(own.status(), StatusCode::OK, "a session's stream");
    let other = app.agent().await;
    app.session_with(&other, json!({})).await;
    open_events(&app, &other, "", None).await;

    // The open streams still carry events.
    app.message(&session, "still open").await;
    for events in [&mut first, &mut second] {
        let frame = expect_of(events, 2, "message.created", &session).await;
        assert_eq!(frame.data["data"]["content"], "still open");
    }
}

/// PostgreSQL: concurrent senders in several sessions of one agent leave a gap-free feed, and
/// a reader paging the feed with watch meanwhile sees every message exactly once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_concurrent_senders_leave_a_gap_free_agent_feed() {
    let Some(kind) = Kind::postgres() else {
        return;
    };
    const SESSIONS: usize = 4;
    const SENDERS: usize = 8;
    const EACH: usize = 10;
    const TOTAL: usize = SENDERS * EACH;

    let app = TestApp::spawn(kind).await;
    let agent = app.agent().await;
    // Created together: the agent's first events race for its feed's first position.
    let sessions: Vec<String> =
        join_all((0..SESSIONS).map(|_| app.session_with(&agent, json!({}))))
            .await
            .iter()
            .map(id_of)
            .collect();
    // A minute on: each session's first message also renews it (two events, one commit).
    app.clock.advance_minutes(1);

    let reader = async {
        let deadline = Instant::now() + Duration::from_secs(60);
        let (mut cursor, mut seen) = (0_i64, Vec::new());
        while seen
            .iter()
            .filter(|e: &&Value| e["type"] == "message.created")
            .count()
            < TOTAL
        {
            assert!(Instant::now() < deadline, "the reader saw {seen:#?}");
            let body = watch_ok(&app, &agent, &format!("cursor={cursor}&timeout=200")).await;
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
        let session = &sessions[s % SESSIONS];
        async move {
            let mut ids = Vec::new();
            for m in 0..EACH {
                let sent = app
                    .message(session, &format!("sender {s} message {m}"))
                    .await;
                ids.push(sent["id"].as_str().unwrap().to_owned());
            }
            ids
        }
    }));
    let (seen, sent) = tokio::join!(reader, senders);
    let sent: HashSet<String> = sent.into_iter().flatten().collect();
    assert_eq!(sent.len(), TOTAL);

    // The feed: every creation, message and renewal, cursors 1..=n exactly.
    let feed = feed(&app, &agent).await;
    assert_feed(&feed, &agent);
    assert_eq!(
        feed.len(),
        SESSIONS + TOTAL + SESSIONS,
        "{:?}",
        kinds(&feed)
    );
    let count = |t: &str| feed.iter().filter(|e| e["type"] == t).count();
    assert_eq!(count("session.created"), SESSIONS);
    assert_eq!(count("message.created"), TOTAL);
    assert_eq!(count("session.renewed"), SESSIONS);
    let message_ids = |events: &[Value]| -> Vec<String> {
        events
            .iter()
            .filter(|e| e["type"] == "message.created")
            .map(|e| e["data"]["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let fed = message_ids(&feed);
    assert_eq!(fed.len(), TOTAL, "each message once in the feed");
    assert_eq!(
        fed.iter().cloned().collect::<HashSet<_>>(),
        sent,
        "every sent message is in the feed"
    );

    // Both orders agree: within one session, the feed keeps its log's order.
    for session in &sessions {
        let log = session_log(&app, session).await;
        let position: HashMap<String, i64> = log
            .iter()
            .map(|e| {
                let key = format!("{} {}", e["type"], e["data"]);
                (key, e["cursor"].as_i64().unwrap())
            })
            .collect();
        let in_feed: Vec<i64> = feed
            .iter()
            .filter(|e| e["sessionId"] == session.as_str())
            .map(|e| position[&format!("{} {}", e["type"], e["data"])])
            .collect();
        let expected: Vec<i64> = (1..=log.len() as i64).collect();
        assert_eq!(in_feed, expected, "session {session} in feed order");
    }

    // The reader: every event exactly once, in cursor order, no gap.
    let read = cursors(&seen);
    let expected: Vec<i64> = (1..=read.len() as i64).collect();
    assert_eq!(read, expected, "no gap, no repeat, in order");
    let read_messages = message_ids(&seen);
    assert_eq!(read_messages.len(), TOTAL, "each message seen once");
    assert_eq!(
        read_messages, fed,
        "the reader saw the messages in the feed's order"
    );
}

async fn a_cursor_into_purged_events_is_410_and_cursor_0_resyncs(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let agent = app.agent().await;
    let gone = id_of(&app.session_with(&agent, json!({})).await);
    app.message(&gone, "soon purged").await;
    // A day and more later the session expired long ago and is purged with its log.
    app.clock.advance_minutes(25 * 60);
    app.reap().await;
    let kept = id_of(&app.session_with(&agent, json!({})).await);

    let (status, body) = app.get(watch(&agent, "cursor=1&timeout=0")).await;
    assert_error(status, &body, StatusCode::GONE, "CURSOR_EXPIRED");
    assert_eq!(body["details"]["cursor"], 1);
    let stale = app
        .call(Method::GET, stream(&agent, "cursor=1"))
        .send()
        .await;
    stale.assert_error(StatusCode::GONE, "CURSOR_EXPIRED");

    // From 0: what is kept.
    let resync = watch_ok(&app, &agent, "cursor=0&timeout=0").await;
    let kept_events = events(&resync);
    assert!(
        kept_events.iter().all(|e| e["sessionId"] == kept.as_str()),
        "{resync}"
    );
    assert_eq!(kept_events[0]["type"], "session.created");
}

/// The reaper expires a batch of sessions of two agents at once (one multi-row insert of
/// their `session.expired` events): each session's log continues at its own next position and
/// each agent's feed stays gap-free, the expiries after everything recorded before.
async fn one_reaper_batch_expiring_many_sessions_keeps_every_feed_gap_free(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let (a, b) = (app.agent().await, app.agent().await);
    let mut sessions = Vec::new();
    for i in 0..12 {
        let agent = if i % 3 == 0 { &b } else { &a };
        let id = id_of(&app.session_with(agent, json!({})).await);
        if i % 2 == 0 {
            app.message(&id, "before the end").await;
        }
        sessions.push((id, agent.clone()));
    }
    app.clock.advance_ms(31 * MINUTE);
    let report = app.reap().await;
    assert_eq!(report.expired.len(), 12);
    for (id, _) in &sessions {
        let log = session_log(&app, id).await;
        let expected: Vec<i64> = (1..=log.len() as i64).collect();
        assert_eq!(cursors(&log), expected, "{log:#?}");
        assert_eq!(log.last().unwrap()["type"], "session.expired", "{log:#?}");
    }
    for agent in [&a, &b] {
        let events = feed(&app, agent).await;
        assert_feed(&events, agent);
        let mine: Vec<&String> = sessions
            .iter()
            .filter(|(_, owner)| owner == agent)
            .map(|(id, _)| id)
            .collect();
        let expiries: Vec<&str> = kinds(&events)
            .into_iter()
            .filter(|(kind, _)| *kind == "session.expired")
            .map(|(_, session)| session)
            .collect();
        assert_eq!(expiries.len(), mine.len(), "{events:#?}");
        // The expiries come last, after every event recorded before them.
        let first_expiry = events
            .iter()
            .position(|e| e["type"] == "session.expired")
            .unwrap();
        assert!(
            events[first_expiry..]
                .iter()
                .all(|e| e["type"] == "session.expired"),
            "{events:#?}"
        );
    }
}
