//! Rate limits: per session (per minute), per user and per agent (per hour), GCRA on the app's
//! manual clock, with `RateLimit-*` headers on every limited answer and 429 past a limit.

use agent_sessions::config::Settings;
use agent_sessions::rate_limit::RateLimitSettings;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::backend_tests;
use crate::helpers::{id_of, paths, Kind, Reply, TestApp, MINUTE};

backend_tests!(
    the_session_limit_allows_a_burst_then_refuses,
    a_refused_request_writes_nothing,
    the_session_quota_refills_after_retry_after,
    another_session_keeps_its_own_quota,
    the_user_limit_counts_a_users_tokens_across_sessions,
    the_agent_limit_counts_creates_of_one_agent,
    an_agent_bound_key_counts_against_its_agent,
    the_headers_report_the_tightest_limit,
    zero_limits_mean_no_limit_and_no_headers,
    a_zero_session_limit_leaves_the_other_limits,
    unbound_keys_on_list_and_agent_routes_count_against_no_limit,
    a_404_of_a_limited_route_carries_the_headers,
    a_410_of_a_limited_route_carries_the_headers,
    a_key_bound_elsewhere_cannot_spend_another_agents_quota,
    an_agents_replies_do_not_use_up_the_users_session_quota,
);

fn limits(session_per_minute: u32, user_per_hour: u32, agent_per_hour: u32) -> RateLimitSettings {
    RateLimitSettings {
        session_per_minute,
        user_per_hour,
        agent_per_hour,
    }
}

/// An open app with these limits.
async fn app_with(kind: Kind, rate_limits: RateLimitSettings) -> TestApp {
    TestApp::spawn_with(kind, |s: &mut Settings| s.rate_limits = rate_limits).await
}

/// A header as text, if present.
fn header<'a>(reply: &'a Reply, name: &str) -> Option<&'a str> {
    reply
        .headers
        .get(name)
        .map(|v| v.to_str().expect("ASCII header"))
}

/// A header that must be present and an integer.
fn number(reply: &Reply, name: &str) -> u64 {
    header(reply, name)
        .unwrap_or_else(|| panic!("no {name} header: {:?}", reply.headers))
        .parse()
        .unwrap_or_else(|e| panic!("{name} is not an integer ({e}): {:?}", reply.headers))
}

/// `(RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset)`, all required.
fn rate_headers(reply: &Reply) -> (u64, u64, u64) {
    (
        number(reply, "ratelimit-limit"),
        number(reply, "ratelimit-remaining"),
        number(reply, "ratelimit-reset"),
    )
}

/// Asserts that the answer carries none of the `RateLimit-*` headers nor `Retry-After`.
fn assert_no_rate_headers(reply: &Reply) {
    for name in [
        "ratelimit-limit",
        "ratelimit-remaining",
        "ratelimit-reset",
        "retry-after",
    ] {
        assert!(
            reply.headers.get(name).is_none(),
            "unexpected {name}: {:?} ({} {})",
            reply.headers,
            reply.status,
            reply.body
        );
    }
}

/// Asserts a 429 of this limit, its `Retry-After` (header and details) and its headers.
fn assert_limited(reply: &Reply, limit: &str, retry_after: u64, rate_limit: u64) {
    reply.assert_error(StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED");
    assert_eq!(reply.body["details"]["limit"], limit, "{}", reply.body);
    assert_eq!(
        reply.body["details"]["retryAfterSeconds"], retry_after,
        "{}",
        reply.body
    );
    assert_eq!(reply.body["error"]["details"], reply.body["details"]);
    assert_eq!(number(reply, "retry-after"), retry_after);
    assert_eq!(number(reply, "ratelimit-limit"), rate_limit);
    assert_eq!(number(reply, "ratelimit-remaining"), 0);
}

/// Creates a session of `agent` for `user`; the 201 reply.
async fn create(app: &TestApp, agent: &str, user: &str) -> Reply {
    app.call(Method::POST, paths::sessions())
        .json(json!({ "agentId": agent, "userId": user }))
        .send()
        .await
}

/// A created session's id and token.
fn id_and_token(created: &Reply) -> (String, String) {
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let token = created.body["sessionToken"]
        .as_str()
        .expect("sessionToken")
        .to_owned();
    (id_of(&created.body), token)
}

async fn get_session(app: &TestApp, id: &str) -> Reply {
    app.call(Method::GET, paths::session(id)).send().await
}

async fn the_session_limit_allows_a_burst_then_refuses(kind: Kind) {
    let app = app_with(kind, limits(3, 0, 0)).await;
    let id = app.session().await;

    let mut remaining = Vec::new();
    for _ in 0..3 {
        let reply = get_session(&app, &id).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        assert_eq!(number(&reply, "ratelimit-limit"), 3);
        assert!(header(&reply, "retry-after").is_none());
        remaining.push(number(&reply, "ratelimit-remaining"));
    }
    assert_eq!(remaining, [2, 1, 0]);

    let refused = get_session(&app, &id).await;
    assert_limited(&refused, "session", 20, 3);
    assert_eq!(
        number(&refused, "ratelimit-reset"),
        60,
        "the quota is whole again after one minute"
    );
}

async fn a_refused_request_writes_nothing(kind: Kind) {
    let app = app_with(kind, limits(3, 0, 0)).await;
    let id = app.session().await;
    for i in 0..3 {
        app.message(&id, &format!("message {i}")).await;
    }
    assert_eq!(app.stored_messages().await, 3);

    let refused = app
        .call(Method::POST, paths::messages(&id))
        .json(json!({ "content": "one too many" }))
        .send()
        .await;
    assert_limited(&refused, "session", 20, 3);
    assert_eq!(
        app.stored_messages().await,
        3,
        "a refused send stores nothing"
    );
}

async fn the_session_quota_refills_after_retry_after(kind: Kind) {
    let app = app_with(kind, limits(3, 0, 0)).await;
    let id = app.session().await;
    for _ in 0..3 {
        assert_eq!(get_session(&app, &id).await.status, StatusCode::OK);
    }
    let refused = get_session(&app, &id).await;
    assert_limited(&refused, "session", 20, 3);

    app.clock.advance_ms(19_000);
    let still = get_session(&app, &id).await;
    assert_limited(&still, "session", 1, 3);

    app.clock.advance_ms(1_000);
    let allowed = get_session(&app, &id).await;
    assert_eq!(allowed.status, StatusCode::OK, "{}", allowed.body);
    assert_eq!(number(&allowed, "ratelimit-remaining"), 0);
    let again = get_session(&app, &id).await;
    assert_limited(&again, "session", 20, 3);
}

async fn another_session_keeps_its_own_quota(kind: Kind) {
    let app = app_with(kind, limits(3, 0, 0)).await;
    let spent = app.session().await;
    let other = app.session().await;
    for _ in 0..3 {
        assert_eq!(get_session(&app, &spent).await.status, StatusCode::OK);
    }
    assert_limited(&get_session(&app, &spent).await, "session", 20, 3);

    let reply = get_session(&app, &other).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(rate_headers(&reply), (3, 2, 20));
}

async fn the_user_limit_counts_a_users_tokens_across_sessions(kind: Kind) {
    let app = app_with(kind, limits(0, 3, 0)).await;
    let agent = app.agent().await;
    let user = uuid::Uuid::new_v4().to_string();

    // Each create counts against the body's user: 3 per hour, one every 20 minutes.
    let first = create(&app, &agent, &user).await;
    let (a, token_a) = id_and_token(&first);
    assert_eq!(rate_headers(&first), (3, 2, 1200));
    let second = create(&app, &agent, &user).await;
    let (b, token_b) = id_and_token(&second);
    assert_eq!(number(&second, "ratelimit-remaining"), 1);

    let read = app
        .call(Method::GET, paths::session(&a))
        .bearer(&token_a)
        .send()
        .await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.body);
    assert_eq!(rate_headers(&read), (3, 0, 3600));

    // The other session's own token: a fresh session, the same user.
    let refused = app
        .call(Method::GET, paths::session(&b))
        .bearer(&token_b)
        .send()
        .await;
    assert_limited(&refused, "user", 1200, 3);

    // Another user is not affected.
    let other = create(&app, &agent, &uuid::Uuid::new_v4().to_string()).await;
    assert_eq!(other.status, StatusCode::CREATED, "{}", other.body);
}

async fn the_agent_limit_counts_creates_of_one_agent(kind: Kind) {
    let app = app_with(kind, limits(0, 0, 2)).await;
    let agent = app.agent().await;

    for remaining in [1, 0] {
        let created = create(&app, &agent, &uuid::Uuid::new_v4().to_string()).await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
        assert_eq!(number(&created, "ratelimit-remaining"), remaining);
        assert_eq!(number(&created, "ratelimit-limit"), 2);
    }
    let refused = create(&app, &agent, &uuid::Uuid::new_v4().to_string()).await;
    assert_limited(&refused, "agent", 1800, 2);
    assert_eq!(app.session_count("all").await, 2, "no third session stored");

    // Another agent is not affected.
    let other = app.agent().await;
    let created = create(&app, &other, &uuid::Uuid::new_v4().to_string()).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
}

async fn an_agent_bound_key_counts_against_its_agent(kind: Kind) {
    let app = TestApp::spawn_secured_with(kind, |s| s.rate_limits = limits(0, 0, 2)).await;
    let agent = app.agent().await;
    let key = app.create_key(&["agents:manage"], Some(&agent)).await;

    let mut remaining = Vec::new();
    for _ in 0..2 {
        let reply = app
            .call(Method::GET, paths::agent(&agent))
            .bearer(&key)
            .send()
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        remaining.push(number(&reply, "ratelimit-remaining"));
    }
    assert_eq!(remaining, [1, 0]);
    let refused = app
        .call(Method::GET, paths::agent(&agent))
        .bearer(&key)
        .send()
        .await;
    assert_limited(&refused, "agent", 1800, 2);
}

async fn the_headers_report_the_tightest_limit(kind: Kind) {
    let app = app_with(kind, limits(3, 2, 0)).await;
    let agent = app.agent().await;
    let created = create(&app, &agent, &uuid::Uuid::new_v4().to_string()).await;
    let (id, token) = id_and_token(&created);

    // Session: 2 of 3 left; user: 0 of 2 left (the create counted too).
    let read = app
        .call(Method::GET, paths::session(&id))
        .bearer(&token)
        .send()
        .await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.body);
    assert_eq!(rate_headers(&read), (2, 0, 3600));

    let refused = app
        .call(Method::GET, paths::session(&id))
        .bearer(&token)
        .send()
        .await;
    assert_limited(&refused, "user", 1800, 2);
}

async fn zero_limits_mean_no_limit_and_no_headers(kind: Kind) {
    let app = app_with(kind, limits(0, 0, 0)).await;
    let agent = app.agent().await;
    let user = uuid::Uuid::new_v4().to_string();
    let created = create(&app, &agent, &user).await;
    let (id, token) = id_and_token(&created);
    assert_no_rate_headers(&created);

    for _ in 0..100 {
        let reply = get_session(&app, &id).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        assert_no_rate_headers(&reply);
        let reply = app
            .call(Method::GET, paths::session(&id))
            .bearer(&token)
            .send()
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        assert_no_rate_headers(&reply);
    }
    for _ in 0..20 {
        let created = create(&app, &agent, &user).await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
        assert_no_rate_headers(&created);
    }
}

async fn a_zero_session_limit_leaves_the_other_limits(kind: Kind) {
    let app = app_with(kind, limits(0, 100, 0)).await;
    let agent = app.agent().await;
    let created = create(&app, &agent, &uuid::Uuid::new_v4().to_string()).await;
    let (id, token) = id_and_token(&created);

    // Far more than any session limit would allow in one minute: only the user's counts.
    for n in 1..=60u64 {
        let reply = app
            .call(Method::GET, paths::session(&id))
            .bearer(&token)
            .send()
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        assert_eq!(number(&reply, "ratelimit-limit"), 100);
        assert_eq!(number(&reply, "ratelimit-remaining"), 100 - 1 - n);
    }
    // An API key on the session's routes names no user or agent: no limit applies.
    let reply = get_session(&app, &id).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_no_rate_headers(&reply);
}

async fn unbound_keys_on_list_and_agent_routes_count_against_no_limit(kind: Kind) {
    let app = TestApp::spawn_secured_with(kind, |s| s.rate_limits = limits(1, 1, 1)).await;
    let agent = app.agent().await;
    for _ in 0..5 {
        let list = app.call(Method::GET, paths::sessions()).send().await;
        assert_eq!(list.status, StatusCode::OK, "{}", list.body);
        assert_no_rate_headers(&list);
        let read = app.call(Method::GET, paths::agent(&agent)).send().await;
        assert_eq!(read.status, StatusCode::OK, "{}", read.body);
        assert_no_rate_headers(&read);
        let agents = app.call(Method::GET, paths::agents()).send().await;
        assert_eq!(agents.status, StatusCode::OK, "{}", agents.body);
        assert_no_rate_headers(&agents);
    }
}

async fn a_404_of_a_limited_route_carries_the_headers(kind: Kind) {
    let app = app_with(kind, limits(3, 0, 0)).await;
    let unknown = uuid::Uuid::new_v4().to_string();
    let reply = get_session(&app, &unknown).await;
    reply.assert_error(StatusCode::NOT_FOUND, "SESSION_NOT_FOUND");
    assert_eq!(rate_headers(&reply), (3, 2, 20));
    assert!(header(&reply, "retry-after").is_none());
}

async fn a_410_of_a_limited_route_carries_the_headers(kind: Kind) {
    let app = app_with(kind, limits(3, 0, 0)).await;
    let id = app.session().await;
    app.clock.advance_ms(31 * MINUTE);
    let reply = app
        .call(Method::POST, paths::messages(&id))
        .json(json!({ "content": "too late" }))
        .send()
        .await;
    reply.assert_error(StatusCode::GONE, "SESSION_EXPIRED");
    assert_eq!(rate_headers(&reply), (3, 2, 20));
    let body: &Value = &reply.body;
    assert_eq!(body["details"]["sessionId"], id, "{body}");
}

async fn a_key_bound_elsewhere_cannot_spend_another_agents_quota(kind: Kind) {
    let app = TestApp::spawn_secured_with(kind, |s| s.rate_limits = limits(0, 0, 1)).await;
    let victim = app.agent().await;
    let other = app.agent().await;
    let key = app.create_key(&["sessions:create"], Some(&other)).await;
    for _ in 0..3 {
        let refused = app
            .call(Method::POST, paths::sessions())
            .bearer(&key)
            .json(json!({ "agentId": victim, "userId": uuid::Uuid::new_v4() }))
            .send()
            .await;
        refused.assert_error(StatusCode::FORBIDDEN, "FORBIDDEN");
        assert_no_rate_headers(&refused);
    }
    // The victim's one create per hour is still there.
    let created = create(&app, &victim, &uuid::Uuid::new_v4().to_string()).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
}

async fn an_agents_replies_do_not_use_up_the_users_session_quota(kind: Kind) {
    let app = TestApp::spawn_secured_with(kind, |s| s.rate_limits = limits(2, 0, 100)).await;
    let agent = app.agent().await;
    let created = create(&app, &agent, &uuid::Uuid::new_v4().to_string()).await;
    let (id, token) = id_and_token(&created);
    let runtime = app.create_key(&["sessions:write"], Some(&agent)).await;
    for _ in 0..3 {
        let reply = app
            .call(Method::POST, paths::messages(&id))
            .bearer(&runtime)
            .json(json!({"content": "the agent answers"}))
            .send()
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
        assert_eq!(number(&reply, "ratelimit-limit"), 100, "the agent's limit");
    }
    // The user still has the whole per-session quota of 2.
    for remaining in [1, 0] {
        let read = app
            .call(Method::GET, paths::session(&id))
            .bearer(&token)
            .send()
            .await;
        assert_eq!(read.status, StatusCode::OK, "{}", read.text);
        assert_eq!(number(&read, "ratelimit-remaining"), remaining);
    }
}
