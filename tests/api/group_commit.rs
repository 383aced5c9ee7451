//! Many writes at once, some of them failing inside their transaction: on SQLite they share
//! one group commit (each in its own savepoint), on PostgreSQL each is a transaction of its
//! own. Either way a failing write leaves nothing behind, every acknowledged one is stored
//! exactly once, and what was acknowledged is what the next read shows.

use std::collections::{BTreeMap, HashSet};

use futures::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::backend_tests;
use crate::helpers::{assert_error, id_of, ms, paths, Kind, Reply, TestApp, MINUTE, T0};

backend_tests!(
    failing_writes_among_concurrent_sends_leave_nothing_behind,
    concurrent_creates_with_one_key_make_one_session,
    an_acknowledged_write_is_read_back_at_once,
);

/// The sessions that receive good sends (and some failing ones).
const GOOD_SESSIONS: usize = 8;
/// The burst of sends starts this long after the sessions were created: the first message of
/// each session renews it, and a short-lived session is over by then.
const BURST_AT: i64 = T0 + 6 * MINUTE;

/// The whole event log of a session, oldest first, read without waiting.
async fn log(app: &TestApp, id: &str) -> Vec<Value> {
    let path = format!(
        "{}/watch?cursor=0&limit=500&timeout=0",
        paths::session(id).as_ref()
    );
    let (status, body) = app.get(path).await;
    assert_eq!(status, StatusCode::OK, "the log of {id}: {body}");
    body["events"].as_array().expect("events").clone()
}

fn types(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["type"].as_str().expect("type"))
        .collect()
}

fn count_of(events: &[Value], kind: &str) -> usize {
    types(events).iter().filter(|t| **t == kind).count()
}

/// Every message of a session, newest first.
async fn all_messages(app: &TestApp, id: &str) -> Vec<Value> {
    let (status, page) = app.get(paths::messages(id).query("limit=100")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["hasMore"], false, "{page}");
    page["messages"].as_array().unwrap().clone()
}

/// POSTs `body`, with an `Idempotency-Key` when given.
async fn post_keyed(app: &TestApp, path: impl AsRef<str>, key: Option<&str>, body: Value) -> Reply {
    let mut call = app.call(Method::POST, path).json(body);
    if let Some(key) = key {
        call = call.header("Idempotency-Key", key);
    }
    call.send().await
}

fn replayed(reply: &Reply) -> bool {
    reply.headers.contains_key("idempotent-replayed")
}

/// What one send of the burst must get.
#[derive(Debug, Clone)]
enum Expect {
    /// 201: a new message, stored once.
    Created,
    /// 201 replayed: the earlier answer (this message id), nothing new stored.
    Replayed(String),
    /// Racers sending one new key with different bodies: exactly one of the group gets 201,
    /// the others 422 `IDEMPOTENCY_KEY_REUSED`.
    Race(usize),
    /// An error, and nothing written.
    Error(StatusCode, &'static str),
}

#[derive(Debug, Clone)]
struct Attempt {
    session: String,
    key: Option<String>,
    body: Value,
    expect: Expect,
}

/// 64 concurrent sends to 11 sessions, interleaved: 36 good ones (some keyed, some written as
/// the agent), two pairs racing for one new key with different bodies (one of each pair
/// wins, the other gets 422), 8 retries of earlier keyed sends, and 16 that fail inside their
/// transaction — a foreign author (after the session row was already renewed in that
/// transaction), an earlier key with another body, a deleted session, an expired one. Each
/// failing send gets its error and leaves nothing: no message, no event, no renewal, no
/// activity; each good one is stored exactly once, where it was sent, with gap-free positions.
async fn failing_writes_among_concurrent_sends_leave_nothing_behind(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let agent = app.agent().await;
    let created = join_all((0..=GOOD_SESSIONS).map(|_| app.session_with(&agent, json!({})))).await;
    let sessions: Vec<String> = created.iter().map(id_of).collect();
    let users: Vec<Value> = created.iter().map(|s| s["userId"].clone()).collect();
    // The last one receives only failing sends in the burst.
    let failing_only = GOOD_SESSIONS;

    // One keyed message per session at T0, which the burst retries (same body) or reuses (another
    // body).
    let mut seeds = Vec::new();
    for (i, id) in sessions.iter().enumerate() {
        let reply = post_keyed(
            &app,
            paths::messages(id),
            Some(&format!("seed-{i}")),
            json!({"content": format!("seed {i}")}),
        )
        .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
        seeds.push(reply.body);
    }
    let deleted = app.session_with(&agent, json!({})).await;
    let deleted = id_of(&deleted);
    let (status, body) = app.delete(paths::session(&deleted)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let short = app
        .session_with(&agent, json!({"timeoutConfig": {"timeoutMinutes": 5}}))
        .await;
    let expired = id_of(&short);

    app.clock.set(BURST_AT);
    let mut plan = Vec::new();
    for n in 0..36 {
        let i = n % GOOD_SESSIONS;
        let mut body = json!({"content": format!("good {n}"), "metadata": {"n": n}});
        match n % 3 {
            0 => body["authorId"] = json!(agent),
            1 => body["authorId"] = users[i].clone(),
            _ => {}
        }
        plan.push(Attempt {
            session: sessions[i].clone(),
            key: (n % 2 == 0).then(|| format!("good-{n}")),
            body,
            expect: Expect::Created,
        });
    }
    for (group, i) in [3, 7].into_iter().enumerate() {
        for side in ["left", "right"] {
            plan.push(Attempt {
                session: sessions[i].clone(),
                key: Some(format!("race-{i}")),
                body: json!({"content": format!("race {i} {side}")}),
                expect: Expect::Race(group),
            });
        }
    }
    for (i, seed) in seeds.iter().enumerate().take(GOOD_SESSIONS) {
        plan.push(Attempt {
            session: sessions[i].clone(),
            key: Some(format!("seed-{i}")),
            body: json!({"content": format!("seed {i}")}),
            expect: Expect::Replayed(seed["id"].as_str().unwrap().to_owned()),
        });
    }
    let foreign = Expect::Error(StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
    for i in [0, 1, 2, 3, 4, 5, failing_only, failing_only] {
        plan.push(Attempt {
            session: sessions[i].clone(),
            key: None,
            body: json!({"content": "not mine", "authorId": uuid::Uuid::new_v4()}),
            expect: foreign.clone(),
        });
    }
    let reused = Expect::Error(StatusCode::UNPROCESSABLE_ENTITY, "IDEMPOTENCY_KEY_REUSED");
    for i in [6, 7, failing_only, failing_only] {
        plan.push(Attempt {
            session: sessions[i].clone(),
            key: Some(format!("seed-{i}")),
            body: json!({"content": "another body"}),
            expect: reused.clone(),
        });
    }
    for _ in 0..2 {
        plan.push(Attempt {
            session: deleted.clone(),
            key: None,
            body: json!({"content": "too late"}),
            expect: Expect::Error(StatusCode::NOT_FOUND, "SESSION_NOT_FOUND"),
        });
        plan.push(Attempt {
            session: expired.clone(),
            key: Some(format!("expired-{}", plan.len())),
            body: json!({"content": "too late"}),
            expect: Expect::Error(StatusCode::GONE, "SESSION_EXPIRED"),
        });
    }
    assert_eq!(plan.len(), 64);
    // Interleaved: 37 is prime to 64, so this visits every send once, kinds mixed.
    let plan: Vec<Attempt> = (0..plan.len())
        .map(|k| plan[(k * 37) % plan.len()].clone())
        .collect();

    let replies = join_all(plan.iter().map(|s| {
        post_keyed(
            &app,
            paths::messages(&s.session),
            s.key.as_deref(),
            s.body.clone(),
        )
    }))
    .await;

    // Every answer is the documented one; collect the acknowledged new messages by session.
    let mut stored: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let mut races: BTreeMap<usize, Vec<StatusCode>> = BTreeMap::new();
    for (send, reply) in plan.iter().zip(&replies) {
        let context = format!("{send:?}: {} {}", reply.status, reply.text);
        let acknowledged = match &send.expect {
            Expect::Created => {
                assert_eq!(reply.status, StatusCode::CREATED, "{context}");
                assert!(!replayed(reply), "{context}");
                true
            }
            Expect::Replayed(id) => {
                assert_eq!(reply.status, StatusCode::CREATED, "{context}");
                assert!(replayed(reply), "{context}");
                assert_eq!(reply.body["id"], *id, "{context}");
                false
            }
            Expect::Race(group) => {
                races.entry(*group).or_default().push(reply.status);
                if reply.status == StatusCode::CREATED {
                    assert!(!replayed(reply), "{context}");
                    true
                } else {
                    reply.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "IDEMPOTENCY_KEY_REUSED");
                    false
                }
            }
            Expect::Error(status, code) => {
                reply.assert_error(*status, code);
                if *code == "VALIDATION_ERROR" {
                    assert_eq!(reply.body["details"]["field"], "authorId", "{context}");
                }
                false
            }
        };
        if acknowledged {
            assert_eq!(reply.body["content"], send.body["content"], "{context}");
            let author = if send.body["authorId"] == json!(agent) {
                json!(agent)
            } else {
                users[sessions.iter().position(|s| *s == send.session).unwrap()].clone()
            };
            assert_eq!(reply.body["authorId"], author, "{context}");
            assert_eq!(
                reply.body["isAgent"],
                json!(author == json!(agent)),
                "{context}"
            );
            stored
                .entry(send.session.clone())
                .or_default()
                .push(reply.body.clone());
        }
    }
    for (group, statuses) in &races {
        let winners = statuses
            .iter()
            .filter(|s| **s == StatusCode::CREATED)
            .count();
        assert_eq!(winners, 1, "race {group}: {statuses:?}");
    }

    // Stored: the seeds and exactly the acknowledged new messages, nothing of a failure.
    let acknowledged: usize = stored.values().map(Vec::len).sum();
    assert_eq!(acknowledged, 36 + 2);
    assert_eq!(
        app.stored_messages().await,
        (sessions.len() + acknowledged) as i64
    );
    for (i, id) in sessions.iter().enumerate() {
        let listed = all_messages(&app, id).await;
        let sent = stored.get(id).cloned().unwrap_or_default();
        assert_eq!(listed.len(), 1 + sent.len(), "session {i}: {listed:#?}");
        // Oldest first: the seed at T0, then the burst 1 ms apart from BURST_AT.
        let oldest_first: Vec<&Value> = listed.iter().rev().collect();
        assert_eq!(oldest_first[0]["id"], seeds[i]["id"], "session {i}");
        let created_at: Vec<i64> = oldest_first.iter().map(|m| ms(&m["createdAt"])).collect();
        let expected: Vec<i64> = std::iter::once(T0)
            .chain((0..sent.len() as i64).map(|k| BURST_AT + k))
            .collect();
        assert_eq!(
            created_at, expected,
            "session {i}: gap-free, strictly increasing"
        );
        for message in &sent {
            let found: Vec<&Value> = listed.iter().filter(|m| m["id"] == message["id"]).collect();
            assert_eq!(found.len(), 1, "session {i}: {message} listed once");
            for field in [
                "content",
                "authorId",
                "isAgent",
                "createdAt",
                "metadata",
                "attachments",
            ] {
                assert_eq!(found[0][field], message[field], "session {i}: {field}");
            }
        }

        // The log: one `message.created` per stored message, the same messages, gap-free.
        let events = log(&app, id).await;
        let cursors: Vec<i64> = events
            .iter()
            .map(|e| e["cursor"].as_i64().unwrap())
            .collect();
        assert_eq!(
            cursors,
            (1..=events.len() as i64).collect::<Vec<_>>(),
            "session {i}"
        );
        let logged: Vec<&Value> = events
            .iter()
            .filter(|e| e["type"] == "message.created")
            .map(|e| &e["data"]["id"])
            .collect();
        let listed_ids: HashSet<&Value> = listed.iter().map(|m| &m["id"]).collect();
        assert_eq!(logged.len(), listed.len(), "session {i}: {events:#?}");
        assert_eq!(
            logged.into_iter().collect::<HashSet<_>>(),
            listed_ids,
            "session {i}"
        );
        assert_eq!(count_of(&events, "session.created"), 1, "session {i}");

        // Renewed once by its first good message at BURST_AT; a foreign-author send that
        // renewed the row inside its own transaction and then failed left no trace.
        let (status, session) = app.get(paths::session(id)).await;
        assert_eq!(status, StatusCode::OK, "{session}");
        if i == failing_only {
            assert!(sent.is_empty());
            assert_eq!(
                types(&events),
                ["session.created", "message.created"],
                "{events:#?}"
            );
            assert_eq!(session["renewalCount"], 0, "{session}");
            assert_eq!(ms(&session["lastActivity"]), T0, "{session}");
            assert_eq!(ms(&session["expiresAt"]), T0 + 30 * MINUTE, "{session}");
        } else {
            assert_eq!(
                count_of(&events, "session.renewed"),
                1,
                "session {i}: {events:#?}"
            );
            assert_eq!(session["renewalCount"], 1, "{session}");
            assert_eq!(ms(&session["lastActivity"]), BURST_AT, "{session}");
            assert_eq!(
                ms(&session["expiresAt"]),
                BURST_AT + 30 * MINUTE,
                "{session}"
            );
        }
    }

    // The deleted and the expired session gained nothing either.
    let (status, body) = app.get(paths::messages(&deleted)).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "SESSION_NOT_FOUND");
    assert_eq!(
        types(&log(&app, &deleted).await),
        ["session.created", "session.ended"]
    );
    let (status, body) = app.get(paths::messages(&expired)).await;
    assert_error(status, &body, StatusCode::GONE, "SESSION_EXPIRED");
    assert_eq!(count_of(&log(&app, &expired).await, "message.created"), 0);
}

/// Creates racing with one `Idempotency-Key` (on SQLite, replays inside the batch that
/// creates the session): 24 with one body, 4 with another, among 4 creates with keys of
/// their own. One group wins: all its answers are the one session, exactly one of them not a
/// replay, and exactly one of the tokens they carry still works (each replay revokes the
/// earlier); the other group gets 422. Nothing else is created.
async fn concurrent_creates_with_one_key_make_one_session(kind: Kind) {
    let app = TestApp::spawn_secured(kind).await;
    let agent = app.agent().await;
    let first =
        json!({"agentId": agent, "userId": uuid::Uuid::new_v4(), "metadata": {"group": "a"}});
    let second =
        json!({"agentId": agent, "userId": uuid::Uuid::new_v4(), "metadata": {"group": "b"}});
    let mut plan: Vec<(String, Value, char)> = Vec::new();
    for n in 0..32 {
        plan.push(match n % 8 {
            0 => (
                format!("own-{n}"),
                json!({"agentId": agent, "userId": uuid::Uuid::new_v4()}),
                'o',
            ),
            1 => ("shared".to_owned(), second.clone(), 'b'),
            _ => ("shared".to_owned(), first.clone(), 'a'),
        });
    }
    let size = |g: char| plan.iter().filter(|(_, _, x)| *x == g).count();
    assert_eq!((size('a'), size('b'), size('o')), (24, 4, 4));

    let replies = join_all(
        plan.iter()
            .map(|(key, body, _)| post_keyed(&app, paths::sessions(), Some(key), body.clone())),
    )
    .await;

    let mut own = HashSet::new();
    let mut groups: BTreeMap<char, Vec<&Reply>> = BTreeMap::new();
    for ((_, _, group), reply) in plan.iter().zip(&replies) {
        if *group == 'o' {
            assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
            assert!(!replayed(reply));
            own.insert(id_of(&reply.body));
        } else {
            groups.entry(*group).or_default().push(reply);
        }
    }
    assert_eq!(own.len(), 4);
    let won: Vec<char> = groups
        .iter()
        .filter(|(_, r)| r.iter().any(|r| r.status == StatusCode::CREATED))
        .map(|(g, _)| *g)
        .collect();
    assert_eq!(won.len(), 1, "one body wins the key: {groups:#?}");
    let (winner, loser) = if won[0] == 'a' {
        ('a', 'b')
    } else {
        ('b', 'a')
    };
    for reply in &groups[&loser] {
        reply.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "IDEMPOTENCY_KEY_REUSED");
    }
    let answers = &groups[&winner];
    let session = without_token(&answers[0].body);
    for reply in answers {
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
        assert_eq!(
            without_token(&reply.body),
            session,
            "every answer is the one session"
        );
    }
    let fresh = answers.iter().filter(|r| !replayed(r)).count();
    assert_eq!(fresh, 1, "one create, the others replays");
    let id = id_of(&session);
    assert!(!own.contains(&id));

    // Exactly one session for the key, one `session.created` in its log.
    assert_eq!(app.session_count("all").await, 1 + 4);
    let events = log(&app, &id).await;
    assert_eq!(types(&events), ["session.created"]);
    // Each replay revoked the token before it: one survives.
    let mut working = 0;
    for reply in answers {
        let token = reply.body["sessionToken"].as_str().expect("a token");
        let read = app
            .call(Method::GET, paths::session(&id))
            .bearer(token)
            .send()
            .await;
        match read.status {
            StatusCode::OK => working += 1,
            _ => read.assert_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED"),
        }
    }
    assert_eq!(working, 1, "exactly one of the tokens handed out survives");
}

/// A create answer without its token.
fn without_token(created: &Value) -> Value {
    let mut session = created.clone();
    let fields = session.as_object_mut().unwrap();
    fields.remove("sessionToken");
    fields.remove("participantTokens");
    session
}

/// 16 clients at once, each writing and reading back right after every acknowledgement: an
/// agent put and replaced, a session created, a message, a timeout change, a new token, a
/// delete. Every read already shows the write it follows.
async fn an_acknowledged_write_is_read_back_at_once(kind: Kind) {
    let app = TestApp::spawn_secured(kind).await;
    let clients = (0..16).map(|i| read_your_writes(&app, i));
    join_all(clients).await;
    assert_eq!(app.session_count("all").await, 0);
    assert_eq!(
        app.stored_messages().await,
        0,
        "deleted with their sessions"
    );
}

async fn read_your_writes(app: &TestApp, i: i64) {
    let agent = uuid::Uuid::new_v4().to_string();
    let (status, body) = app
        .put(paths::agent(&agent), json!({"name": format!("agent {i}")}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, read) = app.get(paths::agent(&agent)).await;
    assert_eq!(status, StatusCode::OK, "{read}");
    assert_eq!(read["name"], format!("agent {i}"));
    let (status, body) = app
        .put(
            paths::agent(&agent),
            json!({"name": format!("renamed {i}")}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, read) = app.get(paths::agent(&agent)).await;
    assert_eq!(read["name"], format!("renamed {i}"));

    let created = app.session_with(&agent, json!({})).await;
    let id = id_of(&created);
    let (status, read) = app.get(paths::session(&id)).await;
    assert_eq!(status, StatusCode::OK, "{read}");
    assert_eq!(read["sessionId"], id);

    let (status, sent) = app
        .post(
            paths::messages(&id),
            json!({"content": format!("hello {i}")}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{sent}");
    let (status, page) = app.get(paths::messages(&id)).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["messages"][0]["id"], sent["id"], "{page}");
    assert_eq!(page["messages"][0]["content"], format!("hello {i}"));

    let (status, body) = app
        .patch(paths::timeout(&id), json!({"timeoutMinutes": 10 + i}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, read) = app.get(paths::session(&id)).await;
    assert_eq!(read["timeoutConfig"]["timeoutMinutes"], 10 + i, "{read}");
    assert_eq!(ms(&read["expiresAt"]), T0 + (10 + i) * MINUTE, "{read}");

    let (status, issued) = app.post_empty(paths::token(&id)).await;
    assert_eq!(status, StatusCode::CREATED, "{issued}");
    let as_token = |token: &Value| {
        app.call(Method::GET, paths::session(&id))
            .bearer(token.as_str().expect("a token"))
            .send()
    };
    let read = as_token(&issued["sessionToken"]).await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.text);
    as_token(&created["sessionToken"])
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");

    let (status, body) = app.delete(paths::session(&id)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = app.get(paths::session(&id)).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "SESSION_NOT_FOUND");
}
