//! Who may do what: every route against every kind of credential (API keys with and without
//! the route's scope, bound to an agent or not, session tokens), and how session tokens are
//! issued, replaced and die with their session.

use agent_sessions::db::DbConnection;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::backend_tests;
use crate::helpers::paths::{self, ApiPath};
use crate::helpers::{assert_error, id_of, Call, Kind, Reply, TestApp, ADMIN_KEY, MINUTE};

backend_tests!(
    session_routes_answer_each_credential_as_specified,
    collection_routes_answer_each_credential_as_specified,
    agent_routes_answer_each_credential_as_specified,
    a_token_writes_as_the_sessions_user,
    a_token_cannot_write_as_the_agent,
    an_agent_bound_key_writes_as_the_agent,
    an_unbound_key_chooses_the_author,
    a_bound_key_lists_only_its_agents_sessions,
    a_token_of_an_expired_session_is_410,
    a_token_of_a_deleted_session_is_401,
    a_token_of_a_purged_session_is_401,
    a_reissued_token_revokes_the_previous_one,
    a_replayed_create_hands_out_a_fresh_token_and_revokes_the_first,
    idempotency_keys_are_scoped_to_the_credential,
    x_api_key_works_like_bearer,
    malformed_or_unknown_credentials_are_401,
    unauthorized_comes_before_validation,
    the_database_holds_no_usable_secret,
    open_mode_needs_no_credential_but_checks_the_ones_sent,
    concurrent_reissues_leave_exactly_one_working_token,
);

const EVERY_SCOPE: [&str; 7] = [
    "sessions:create",
    "sessions:read",
    "sessions:write",
    "sessions:manage",
    "sessions:health",
    "agents:manage",
    "keys:manage",
];

/// A secret nobody was ever given.
fn unknown_key() -> String {
    format!("ask_{}", uuid::Uuid::new_v4().simple())
}

/// Asserts a 401 a client can act on: code `UNAUTHORIZED` and a Bearer challenge.
fn assert_unauthorized(reply: &Reply, context: &str) {
    assert_eq!(
        reply.status,
        StatusCode::UNAUTHORIZED,
        "{context}: {}",
        reply.body
    );
    reply.assert_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    assert!(
        challenge(reply).is_some_and(|c| c.starts_with("Bearer")),
        "{context}: a 401 carries `WWW-Authenticate: Bearer ...`, got {:?}",
        challenge(reply)
    );
}

fn challenge(reply: &Reply) -> Option<&str> {
    reply
        .headers
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
}

// ---------------------------------------------------------------------------------------------
// The matrix
// ---------------------------------------------------------------------------------------------

/// What one matrix case group works on: agent A with two sessions (two users), and keys made
/// for the route under test. Agent B exists only to bind a key to another agent.
struct Fixture {
    agent: String,
    session: String,
    user: String,
    token: String,
    other_session: String,
    other_token: String,
    /// Unbound, the route's scope only.
    key_with_scope: String,
    /// Unbound, every scope but the route's.
    key_without_scope: String,
    /// The route's scope, bound to agent A.
    key_bound_here: String,
    /// The route's scope, bound to agent B.
    key_bound_elsewhere: String,
}

impl Fixture {
    async fn create(app: &TestApp, agent_b: &str, scope: &str) -> Fixture {
        let agent = app.agent().await;
        let first = app.session_with(&agent, json!({})).await;
        let other = app.session_with(&agent, json!({})).await;
        let others: Vec<&str> = EVERY_SCOPE.into_iter().filter(|s| *s != scope).collect();
        Fixture {
            session: id_of(&first),
            user: first["userId"].as_str().unwrap().to_owned(),
            token: token_of(&first),
            other_session: id_of(&other),
            other_token: token_of(&other),
            key_with_scope: app.create_key(&[scope], None).await,
            key_without_scope: app.create_key(&others, None).await,
            key_bound_here: app.create_key(&[scope], Some(&agent)).await,
            key_bound_elsewhere: app.create_key(&[scope], Some(agent_b)).await,
            agent,
        }
    }
}

/// The `sessionToken` of a create answer.
fn token_of(created: &Value) -> String {
    let token = created["sessionToken"]
        .as_str()
        .unwrap_or_else(|| panic!("a created session has a sessionToken: {created}"));
    assert!(token.starts_with("ast_"), "{token}");
    token.to_owned()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Credential {
    None,
    UnknownKey,
    KeyWithoutScope,
    KeyWithScope,
    KeyBoundToThisAgent,
    KeyBoundToAnotherAgent,
    ThisSessionsToken,
    AnotherSessionsToken,
}

const CREDENTIALS: [Credential; 8] = [
    Credential::None,
    Credential::UnknownKey,
    Credential::KeyWithoutScope,
    Credential::KeyWithScope,
    Credential::KeyBoundToThisAgent,
    Credential::KeyBoundToAnotherAgent,
    Credential::ThisSessionsToken,
    Credential::AnotherSessionsToken,
];

impl Credential {
    fn secret(self, f: &Fixture) -> Option<String> {
        match self {
            Credential::None => None,
            Credential::UnknownKey => Some(unknown_key()),
            Credential::KeyWithoutScope => Some(f.key_without_scope.clone()),
            Credential::KeyWithScope => Some(f.key_with_scope.clone()),
            Credential::KeyBoundToThisAgent => Some(f.key_bound_here.clone()),
            Credential::KeyBoundToAnotherAgent => Some(f.key_bound_elsewhere.clone()),
            Credential::ThisSessionsToken => Some(f.token.clone()),
            Credential::AnotherSessionsToken => Some(f.other_token.clone()),
        }
    }
}

/// One route of the matrix.
struct Route {
    name: &'static str,
    method: Method,
    path: fn(&Fixture) -> ApiPath,
    body: fn(&Fixture) -> Option<Value>,
    scope: &'static str,
    /// The session's own token may call it.
    token_allowed: bool,
    /// It touches agent A or its sessions: a key bound to another agent is refused.
    agent_scoped: bool,
    /// Refused to every agent-bound key (the agent list, issuing a user's token).
    unbound_keys_only: bool,
    /// A successful call uses the fixture up (deletes it, or revokes its token).
    consumes: bool,
    /// The success status, and what a successful answer must show.
    ok: StatusCode,
    answers: fn(&Fixture, &Value) -> bool,
}

impl Route {
    fn expected(&self, credential: Credential) -> StatusCode {
        use Credential as C;
        match credential {
            C::None | C::UnknownKey => StatusCode::UNAUTHORIZED,
            C::KeyWithoutScope | C::AnotherSessionsToken => StatusCode::FORBIDDEN,
            C::KeyWithScope => self.ok,
            C::KeyBoundToThisAgent if self.unbound_keys_only => StatusCode::FORBIDDEN,
            C::KeyBoundToThisAgent => self.ok,
            C::KeyBoundToAnotherAgent if self.unbound_keys_only || self.agent_scoped => {
                StatusCode::FORBIDDEN
            }
            C::KeyBoundToAnotherAgent => self.ok,
            C::ThisSessionsToken if self.token_allowed => self.ok,
            C::ThisSessionsToken => StatusCode::FORBIDDEN,
        }
    }
}

fn no_body(_: &Fixture) -> Option<Value> {
    None
}

fn is_this_session(f: &Fixture, body: &Value) -> bool {
    body["sessionId"] == f.session.as_str()
}

fn is_this_agent(f: &Fixture, body: &Value) -> bool {
    body["agentId"] == f.agent.as_str()
}

fn is_deleted(_: &Fixture, body: &Value) -> bool {
    body["success"] == true
}

/// The routes that act on one session.
fn session_routes() -> Vec<Route> {
    vec![
        Route {
            name: "GET /sessions/{id}",
            method: Method::GET,
            path: |f| paths::session(&f.session),
            body: no_body,
            scope: "sessions:read",
            token_allowed: true,
            agent_scoped: true,
            unbound_keys_only: false,
            consumes: false,
            ok: StatusCode::OK,
            answers: is_this_session,
        },
        Route {
            name: "DELETE /sessions/{id}",
            method: Method::DELETE,
            path: |f| paths::session(&f.session),
            body: no_body,
            scope: "sessions:manage",
            token_allowed: true,
            agent_scoped: true,
            unbound_keys_only: false,
            consumes: true,
            ok: StatusCode::OK,
            answers: is_deleted,
        },
        Route {
            name: "POST /sessions/{id}/messages",
            method: Method::POST,
            path: |f| paths::messages(&f.session),
            body: |_| Some(json!({"content": "hello"})),
            scope: "sessions:write",
            token_allowed: true,
            agent_scoped: true,
            unbound_keys_only: false,
            consumes: false,
            ok: StatusCode::CREATED,
            answers: |_, b| b["content"] == "hello",
        },
        Route {
            name: "GET /sessions/{id}/messages",
            method: Method::GET,
            path: |f| paths::messages(&f.session),
            body: no_body,
            scope: "sessions:read",
            token_allowed: true,
            agent_scoped: true,
            unbound_keys_only: false,
            consumes: false,
            ok: StatusCode::OK,
            answers: |_, b| b["messages"].is_array(),
        },
        Route {
            name: "POST /sessions/{id}/renew",
            method: Method::POST,
            path: |f| paths::renew(&f.session),
            body: no_body,
            scope: "sessions:write",
            token_allowed: true,
            agent_scoped: true,
            unbound_keys_only: false,
            consumes: false,
            ok: StatusCode::OK,
            answers: is_this_session,
        },
        Route {
            name: "POST /sessions/{id}/heartbeat",
            method: Method::POST,
            path: |f| paths::heartbeat(&f.session),
            body: no_body,
            scope: "sessions:write",
            token_allowed: true,
            agent_scoped: true,
            unbound_keys_only: false,
            consumes: false,
            ok: StatusCode::OK,
            answers: is_this_session,
        },
        Route {
            name: "PATCH /sessions/{id}/timeout",
            method: Method::PATCH,
            path: |f| paths::timeout(&f.session),
            body: |_| Some(json!({"timeoutMinutes": 45})),
            scope: "sessions:manage",
            token_allowed: false,
            agent_scoped: true,
            unbound_keys_only: false,
            consumes: false,
            ok: StatusCode::OK,
            answers: |f, b| is_this_session(f, b) && b["timeoutConfig"]["timeoutMinutes"] == 45,
        },
        Route {
            name: "POST /sessions/{id}/token",
            method: Method::POST,
            path: |f| paths::token(&f.session),
            body: no_body,
            scope: "sessions:manage",
            token_allowed: false,
            agent_scoped: true,
            // A bound key writes as its agent: it may not obtain the user's token.
            unbound_keys_only: true,
            consumes: true,
            ok: StatusCode::CREATED,
            answers: |f, b| {
                is_this_session(f, b)
                    && b["userId"] == f.user.as_str()
                    && b["sessionToken"]
                        .as_str()
                        .is_some_and(|t| t.starts_with("ast_") && t != f.token)
            },
        },
    ]
}

/// Create, list and health: not one session's routes.
fn collection_routes() -> Vec<Route> {
    vec![
        Route {
            name: "POST /sessions",
            method: Method::POST,
            path: |_| paths::sessions(),
            body: |f| Some(json!({"agentId": f.agent, "userId": uuid::Uuid::new_v4()})),
            scope: "sessions:create",
            token_allowed: false,
            agent_scoped: true,
            unbound_keys_only: false,
            consumes: false,
            ok: StatusCode::CREATED,
            answers: |f, b| {
                is_this_agent(f, b)
                    && b["sessionId"] != f.session.as_str()
                    && b["sessionToken"]
                        .as_str()
                        .is_some_and(|t| t.starts_with("ast_"))
            },
        },
        Route {
            name: "GET /sessions?agentId=A",
            method: Method::GET,
            path: |f| paths::sessions().query(format!("agentId={}&status=all", f.agent)),
            body: no_body,
            scope: "sessions:read",
            token_allowed: false,
            agent_scoped: true,
            unbound_keys_only: false,
            consumes: false,
            ok: StatusCode::OK,
            answers: |f, b| {
                b["sessions"].as_array().is_some_and(|all| {
                    all.iter().all(|s| s["agentId"] == f.agent.as_str())
                        && all.iter().any(|s| s["sessionId"] == f.session.as_str())
                })
            },
        },
        Route {
            name: "GET /sessions/health",
            method: Method::GET,
            path: |_| paths::health(),
            body: no_body,
            scope: "sessions:health",
            token_allowed: false,
            agent_scoped: false,
            unbound_keys_only: false,
            consumes: false,
            ok: StatusCode::OK,
            answers: |_, b| b["status"] == "healthy",
        },
    ]
}

fn agent_routes() -> Vec<Route> {
    vec![
        Route {
            name: "PUT /agents/{id}",
            method: Method::PUT,
            path: |f| paths::agent(&f.agent),
            body: |_| Some(json!({"name": "renamed"})),
            scope: "agents:manage",
            token_allowed: false,
            agent_scoped: true,
            unbound_keys_only: false,
            consumes: false,
            ok: StatusCode::OK,
            answers: |f, b| is_this_agent(f, b) && b["name"] == "renamed",
        },
        Route {
            name: "GET /agents/{id}",
            method: Method::GET,
            path: |f| paths::agent(&f.agent),
            body: no_body,
            scope: "agents:manage",
            token_allowed: false,
            agent_scoped: true,
            unbound_keys_only: false,
            consumes: false,
            ok: StatusCode::OK,
            answers: is_this_agent,
        },
        Route {
            name: "DELETE /agents/{id}",
            method: Method::DELETE,
            path: |f| paths::agent(&f.agent),
            body: no_body,
            scope: "agents:manage",
            token_allowed: false,
            agent_scoped: true,
            unbound_keys_only: false,
            consumes: true,
            ok: StatusCode::OK,
            answers: is_deleted,
        },
        Route {
            name: "GET /agents",
            method: Method::GET,
            path: |_| paths::agents(),
            body: no_body,
            scope: "agents:manage",
            token_allowed: false,
            agent_scoped: true,
            unbound_keys_only: true,
            consumes: false,
            ok: StatusCode::OK,
            answers: |f, b| {
                b["agents"]
                    .as_array()
                    .is_some_and(|all| all.iter().any(|a| a["agentId"] == f.agent.as_str()))
            },
        },
    ]
}

/// Everything a refused call must leave as it was, read with the admin key.
#[derive(Debug, PartialEq)]
struct Observed {
    session: (StatusCode, Value),
    other_session: (StatusCode, Value),
    /// Whether the session's token still opens it.
    token: StatusCode,
    stored_messages: i64,
    sessions: i64,
    agent: (StatusCode, Value),
    agents: Value,
}

async fn observe(app: &TestApp, f: &Fixture) -> Observed {
    let token = app
        .call(Method::GET, paths::session(&f.session))
        .bearer(&f.token)
        .send();
    let (session, other_session, token, stored_messages, sessions, agent, (_, agents)) = futures::join!(
        app.get(paths::session(&f.session)),
        app.get(paths::session(&f.other_session)),
        token,
        app.stored_messages(),
        app.session_count("all"),
        app.get(paths::agent(&f.agent)),
        app.get(paths::agents()),
    );
    Observed {
        session,
        other_session,
        token: token.status,
        stored_messages,
        sessions,
        agent,
        agents: agents["total"].clone(),
    }
}

async fn send(app: &TestApp, route: &Route, f: &Fixture, credential: Credential) -> Reply {
    let mut call = app.call(route.method.clone(), (route.path)(f));
    call = match credential.secret(f) {
        Some(secret) => call.bearer(&secret),
        None => call.without_credential(),
    };
    if let Some(body) = (route.body)(f) {
        call = call.json(body);
    }
    call.send().await
}

/// Runs every route against every credential; collects each wrong answer, naming the route
/// and the credential, and fails with all of them.
async fn run_matrix(kind: Kind, routes: Vec<Route>) {
    let app = TestApp::spawn_secured(kind).await;
    let agent_b = app.agent().await;
    let mut failures = Vec::new();
    let mut calls = 0;
    for route in &routes {
        let shared = Fixture::create(&app, &agent_b, route.scope).await;
        for credential in CREDENTIALS {
            calls += 1;
            let expected = route.expected(credential);
            let refused = !expected.is_success();
            let fresh = if route.consumes && !refused {
                Some(Fixture::create(&app, &agent_b, route.scope).await)
            } else {
                None
            };
            let f = fresh.as_ref().unwrap_or(&shared);
            let context = format!("{} with {credential:?}", route.name);

            // Time moves, so that a renewal or activity would show in the session.
            app.clock.advance_ms(MINUTE);
            let before = if refused {
                Some(observe(&app, f).await)
            } else {
                None
            };
            let reply = send(&app, route, f, credential).await;
            if reply.status != expected {
                failures.push(format!(
                    "{context}: expected {expected}, got {}: {}",
                    reply.status, reply.text
                ));
                continue;
            }
            match expected {
                StatusCode::UNAUTHORIZED => assert_unauthorized(&reply, &context),
                StatusCode::FORBIDDEN => reply.assert_error(StatusCode::FORBIDDEN, "FORBIDDEN"),
                _ => {
                    if !(route.answers)(f, &reply.body) {
                        failures.push(format!("{context}: unexpected answer {}", reply.body));
                    }
                }
            }
            if let Some(before) = before {
                let after = observe(&app, f).await;
                if after != before {
                    failures.push(format!(
                        "{context}: the refused call changed something:\n  before {before:?}\n  after  {after:?}"
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {calls} calls answered wrongly:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

async fn session_routes_answer_each_credential_as_specified(kind: Kind) {
    run_matrix(kind, session_routes()).await;
}

async fn collection_routes_answer_each_credential_as_specified(kind: Kind) {
    run_matrix(kind, collection_routes()).await;
}

async fn agent_routes_answer_each_credential_as_specified(kind: Kind) {
    run_matrix(kind, agent_routes()).await;
}

// ---------------------------------------------------------------------------------------------
// The author follows the credential
// ---------------------------------------------------------------------------------------------

/// A secured app with an agent and one of its sessions; returns the create answer.
async fn secured_session(kind: Kind) -> (TestApp, String, Value) {
    let app = TestApp::spawn_secured(kind).await;
    let agent = app.agent().await;
    let session = app.session_with(&agent, json!({})).await;
    (app, agent, session)
}

/// Sends a message with `secret`; returns the reply.
async fn message_as(app: &TestApp, secret: &str, session: &str, body: Value) -> Reply {
    app.call(Method::POST, paths::messages(session))
        .bearer(secret)
        .json(body)
        .send()
        .await
}

/// The one message a session holds, as its list shows it.
async fn only_message(app: &TestApp, session: &str) -> Value {
    let (status, page) = app.get(paths::messages(session)).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let messages = page["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1, "{page}");
    messages[0].clone()
}

async fn a_token_writes_as_the_sessions_user(kind: Kind) {
    let (app, _, session) = secured_session(kind).await;
    let id = id_of(&session);

    let reply = message_as(&app, &token_of(&session), &id, json!({"content": "hi"})).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(reply.body["authorId"], session["userId"]);
    assert_eq!(reply.body["isAgent"], false);
    let stored = only_message(&app, &id).await;
    assert_eq!(stored["authorId"], session["userId"]);
    assert_eq!(stored["isAgent"], false);
}

async fn a_token_cannot_write_as_the_agent(kind: Kind) {
    let (app, agent, session) = secured_session(kind).await;
    let id = id_of(&session);

    app.clock.advance_minutes(1);
    let reply = message_as(
        &app,
        &token_of(&session),
        &id,
        json!({"content": "I am the agent", "authorId": agent}),
    )
    .await;
    reply.assert_error(StatusCode::FORBIDDEN, "FORBIDDEN");
    assert_eq!(app.stored_messages().await, 0, "nothing stored");
    let (_, read) = app.get(paths::session(&id)).await;
    assert_eq!(
        read["lastActivity"], session["lastActivity"],
        "a refused message is no activity"
    );

    // Naming its own user is fine.
    let reply = message_as(
        &app,
        &token_of(&session),
        &id,
        json!({"content": "me", "authorId": session["userId"]}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(reply.body["isAgent"], false);
}

async fn an_agent_bound_key_writes_as_the_agent(kind: Kind) {
    let (app, agent, session) = secured_session(kind).await;
    let id = id_of(&session);
    let key = app.create_key(&["sessions:write"], Some(&agent)).await;

    let reply = message_as(&app, &key, &id, json!({"content": "How can I help?"})).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(
        reply.body["authorId"], agent,
        "no authorId: still the agent"
    );
    assert_eq!(reply.body["isAgent"], true);
    let stored = only_message(&app, &id).await;
    assert_eq!(stored["authorId"], agent);
    assert_eq!(stored["isAgent"], true);

    let reply = message_as(
        &app,
        &key,
        &id,
        json!({"content": "as the user", "authorId": session["userId"]}),
    )
    .await;
    reply.assert_error(StatusCode::FORBIDDEN, "FORBIDDEN");
    assert_eq!(app.stored_messages().await, 1);
}

async fn an_unbound_key_chooses_the_author(kind: Kind) {
    let (app, agent, session) = secured_session(kind).await;
    let id = id_of(&session);
    let key = app.create_key(&["sessions:write"], None).await;

    let reply = message_as(&app, &key, &id, json!({"content": "default"})).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(
        reply.body["authorId"], session["userId"],
        "the user by default"
    );
    assert_eq!(reply.body["isAgent"], false);

    let reply = message_as(
        &app,
        &key,
        &id,
        json!({"content": "reply", "authorId": agent}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(reply.body["authorId"], agent);
    assert_eq!(reply.body["isAgent"], true);
}

async fn a_bound_key_lists_only_its_agents_sessions(kind: Kind) {
    let app = TestApp::spawn_secured(kind).await;
    let (a, b) = (app.agent().await, app.agent().await);
    let mine = id_of(&app.session_with(&a, json!({})).await);
    app.session_with(&b, json!({})).await;
    let key = app.create_key(&["sessions:read"], Some(&a)).await;

    let reply = app
        .call(Method::GET, paths::sessions())
        .bearer(&key)
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["total"], 1, "{}", reply.body);
    assert_eq!(reply.body["sessions"][0]["sessionId"], mine);
    assert_eq!(reply.body["stats"]["totalSessions"], 1);

    let reply = app
        .call(Method::GET, paths::sessions().query(format!("agentId={b}")))
        .bearer(&key)
        .send()
        .await;
    reply.assert_error(StatusCode::FORBIDDEN, "FORBIDDEN");

    assert_eq!(app.session_count("all").await, 2, "the admin key sees both");
}

// ---------------------------------------------------------------------------------------------
// A token lives and dies with its session
// ---------------------------------------------------------------------------------------------

async fn get_with(app: &TestApp, secret: &str, session: &str) -> Reply {
    app.call(Method::GET, paths::session(session))
        .bearer(secret)
        .send()
        .await
}

async fn a_token_of_an_expired_session_is_410(kind: Kind) {
    let (app, _, session) = secured_session(kind).await;
    let (id, token) = (id_of(&session), token_of(&session));
    assert_eq!(get_with(&app, &token, &id).await.status, StatusCode::OK);

    app.clock.advance_minutes(31);
    get_with(&app, &token, &id)
        .await
        .assert_error(StatusCode::GONE, "SESSION_EXPIRED");
    message_as(&app, &token, &id, json!({"content": "late"}))
        .await
        .assert_error(StatusCode::GONE, "SESSION_EXPIRED");
    let renew = app
        .call(Method::POST, paths::renew(&id))
        .bearer(&token)
        .send()
        .await;
    renew.assert_error(StatusCode::GONE, "SESSION_EXPIRED");
    assert_eq!(app.stored_messages().await, 0);
}

async fn a_token_of_a_deleted_session_is_401(kind: Kind) {
    let (app, _, session) = secured_session(kind).await;
    let (id, token) = (id_of(&session), token_of(&session));
    let (status, body) = app.delete(paths::session(&id)).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    assert_unauthorized(&get_with(&app, &token, &id).await, "GET after delete");
    let reply = message_as(&app, &token, &id, json!({"content": "anyone?"})).await;
    assert_unauthorized(&reply, "message after delete");

    // A session ended through its own token: that token dies with it.
    let agent = app.agent().await;
    let ended = app.session_with(&agent, json!({})).await;
    let (id, token) = (id_of(&ended), token_of(&ended));
    let reply = app
        .call(Method::DELETE, paths::session(&id))
        .bearer(&token)
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_unauthorized(
        &get_with(&app, &token, &id).await,
        "GET after its own delete",
    );
    let (status, body) = app.get(paths::session(&id)).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "SESSION_NOT_FOUND");
}

async fn a_token_of_a_purged_session_is_401(kind: Kind) {
    let (app, _, session) = secured_session(kind).await;
    let (id, token) = (id_of(&session), token_of(&session));

    app.clock.advance_minutes(31);
    app.reap().await;
    get_with(&app, &token, &id)
        .await
        .assert_error(StatusCode::GONE, "SESSION_EXPIRED");

    app.clock.advance_minutes(25 * 60);
    let report = app.reap().await;
    assert_eq!(report.purged, 1, "{report:?}");
    let (status, body) = app.get(paths::session(&id)).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "SESSION_NOT_FOUND");
    assert_unauthorized(&get_with(&app, &token, &id).await, "GET after purge");
}

async fn a_reissued_token_revokes_the_previous_one(kind: Kind) {
    let (app, _, session) = secured_session(kind).await;
    let (id, old) = (id_of(&session), token_of(&session));

    let (status, issued) = app.post_empty(paths::token(&id)).await;
    assert_eq!(status, StatusCode::CREATED, "{issued}");
    assert_eq!(issued["sessionId"], id);
    assert_eq!(issued["userId"], session["userId"]);
    let new = token_of(&issued);
    assert_ne!(new, old);

    assert_unauthorized(&get_with(&app, &old, &id).await, "the previous token");
    let reply = get_with(&app, &new, &id).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["sessionId"], id);
    let reply = message_as(&app, &new, &id, json!({"content": "still here"})).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
}

/// A create with an `Idempotency-Key`, sent with `secret`.
async fn keyed_create(app: &TestApp, secret: &str, key: &str, body: &Value) -> Reply {
    app.call(Method::POST, paths::sessions())
        .bearer(secret)
        .header("Idempotency-Key", key)
        .json(body.clone())
        .send()
        .await
}

fn replayed(reply: &Reply) -> bool {
    reply.headers.contains_key("idempotent-replayed")
}

async fn a_replayed_create_hands_out_a_fresh_token_and_revokes_the_first(kind: Kind) {
    let app = TestApp::spawn_secured(kind).await;
    let body = json!({"agentId": app.agent().await, "userId": uuid::Uuid::new_v4()});

    let first = keyed_create(&app, ADMIN_KEY, "create-1", &body).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    assert!(!replayed(&first));
    let again = keyed_create(&app, ADMIN_KEY, "create-1", &body).await;
    assert_eq!(again.status, StatusCode::CREATED, "{}", again.body);
    assert!(replayed(&again), "the second answer is a replay");
    let id = id_of(&first.body);
    assert_eq!(id_of(&again.body), id, "the same session");

    let (old, fresh) = (token_of(&first.body), token_of(&again.body));
    assert_ne!(fresh, old, "a new token");
    assert_unauthorized(&get_with(&app, &old, &id).await, "the first token");
    let reply = get_with(&app, &fresh, &id).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(app.session_count("all").await, 1);
}

async fn idempotency_keys_are_scoped_to_the_credential(kind: Kind) {
    let app = TestApp::spawn_secured(kind).await;
    let body = json!({"agentId": app.agent().await, "userId": uuid::Uuid::new_v4()});
    let one = app.create_key(&["sessions:create"], None).await;
    let two = app.create_key(&["sessions:create"], None).await;

    let first = keyed_create(&app, &one, "same-key", &body).await;
    let second = keyed_create(&app, &two, "same-key", &body).await;
    for reply in [&first, &second] {
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        assert!(!replayed(reply), "another credential's key is not replayed");
    }
    assert_ne!(id_of(&first.body), id_of(&second.body), "two sessions");
    assert_eq!(app.session_count("all").await, 2);

    // Each credential still gets its own outcome back.
    let again = keyed_create(&app, &one, "same-key", &body).await;
    assert_eq!(again.status, StatusCode::CREATED, "{}", again.body);
    assert!(replayed(&again));
    assert_eq!(id_of(&again.body), id_of(&first.body));
    assert_eq!(app.session_count("all").await, 2);
}

// ---------------------------------------------------------------------------------------------
// How credentials are presented
// ---------------------------------------------------------------------------------------------

async fn x_api_key_works_like_bearer(kind: Kind) {
    let (app, _, session) = secured_session(kind).await;
    let id = id_of(&session);
    let reader = app.create_key(&["sessions:read"], None).await;
    let x_api_key = |path: ApiPath, method: Method, key: &str| {
        app.call(method, path)
            .without_credential()
            .header("X-API-KEY", key)
    };

    let reply = x_api_key(paths::session(&id), Method::GET, &reader)
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["sessionId"], id);

    app.clock.advance_minutes(1);
    let reply = x_api_key(paths::renew(&id), Method::POST, &reader)
        .send()
        .await;
    reply.assert_error(StatusCode::FORBIDDEN, "FORBIDDEN");
    let reply = x_api_key(paths::renew(&id), Method::POST, ADMIN_KEY)
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["renewalCount"], 1);

    let reply = x_api_key(paths::session(&id), Method::GET, &unknown_key())
        .send()
        .await;
    assert_unauthorized(&reply, "unknown X-API-KEY");
    let reply = x_api_key(paths::session(&id), Method::GET, "").send().await;
    assert_unauthorized(&reply, "empty X-API-KEY");
}

async fn malformed_or_unknown_credentials_are_401(kind: Kind) {
    let (app, _, session) = secured_session(kind).await;
    let id = id_of(&session);

    let reply = app
        .call(Method::GET, paths::session(&id))
        .without_credential()
        .send()
        .await;
    assert_unauthorized(&reply, "no credential");
    for header in ["Basic xyz", "Bearer", "Bearer ", "Token abc", ADMIN_KEY] {
        let reply = app
            .call(Method::GET, paths::session(&id))
            .without_credential()
            .header("Authorization", header)
            .send()
            .await;
        assert_unauthorized(&reply, &format!("Authorization: {header:?}"));
    }
    let unknown_token = format!("ast_{}", uuid::Uuid::new_v4().simple());
    for secret in [unknown_key(), unknown_token, format!("{ADMIN_KEY}x")] {
        let reply = get_with(&app, &secret, &id).await;
        assert_unauthorized(&reply, &format!("Bearer {secret}"));
    }
    // The scheme is case-insensitive.
    let reply = app
        .call(Method::GET, paths::session(&id))
        .without_credential()
        .header("Authorization", &format!("bearer {ADMIN_KEY}"))
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
}

/// A named request builder.
type Request = (&'static str, fn(&TestApp) -> Call);

/// Requests the service refuses with 400 when the admin key sends them.
fn malformed_requests() -> Vec<Request> {
    vec![
        ("POST /sessions with a body that is not JSON", |app| {
            app.call(Method::POST, paths::sessions())
                .body("application/json", "{not json")
        }),
        ("POST /sessions with invalid ids", |app| {
            app.call(Method::POST, paths::sessions())
                .json(json!({"agentId": "nope", "userId": 1}))
        }),
        ("GET /sessions/not-a-uuid", |app| {
            app.call(Method::GET, paths::session("not-a-uuid"))
        }),
        ("PATCH /sessions/not-a-uuid/timeout, body not JSON", |app| {
            app.call(Method::PATCH, paths::timeout("not-a-uuid"))
                .body("application/json", "garbage")
        }),
        ("POST /sessions/not-a-uuid/messages", |app| {
            app.call(Method::POST, paths::messages("not-a-uuid"))
                .json(json!({"content": ""}))
        }),
        ("GET /sessions?limit=0", |app| {
            app.call(Method::GET, paths::sessions().query("limit=0"))
        }),
        ("PUT /agents/nope, body not JSON", |app| {
            app.call(Method::PUT, paths::agent("nope"))
                .body("application/json", "[1")
        }),
    ]
}

async fn unauthorized_comes_before_validation(kind: Kind) {
    let app = TestApp::spawn_secured(kind).await;
    let unknown_token = format!("ast_{}", uuid::Uuid::new_v4().simple());
    let mut failures = Vec::new();
    for (name, malformed) in malformed_requests() {
        malformed(&app)
            .send()
            .await
            .assert_error(StatusCode::BAD_REQUEST, "VALIDATION_ERROR");

        let attempts = [
            ("no credential", malformed(&app).without_credential()),
            ("an unknown key", malformed(&app).bearer(&unknown_key())),
            ("an unknown token", malformed(&app).bearer(&unknown_token)),
            (
                "a malformed Authorization",
                malformed(&app)
                    .without_credential()
                    .header("Authorization", "Basic xyz"),
            ),
        ];
        for (credential, call) in attempts {
            let reply = call.send().await;
            if reply.status != StatusCode::UNAUTHORIZED {
                failures.push(format!(
                    "{name} with {credential}: expected 401, got {}: {}",
                    reply.status, reply.text
                ));
            } else {
                assert_unauthorized(&reply, &format!("{name} with {credential}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// Storage and the open mode
// ---------------------------------------------------------------------------------------------

/// Every row of the tables that hold credentials, each printed as one string.
async fn credential_rows(app: &TestApp) -> Vec<String> {
    use agent_sessions::db::schema::{api_keys, idempotency_outcomes, session_tokens};
    use diesel::RunQueryDsl;
    let pool = app.pool.clone();
    tokio::task::spawn_blocking(move || {
        let mut conn = pool.get().unwrap();
        let conn: &mut DbConnection = &mut conn;
        let tokens: Vec<(String, String, String, String, i64)> =
            session_tokens::table.load(conn).unwrap();
        type KeyRow = (
            String,
            Option<String>,
            String,
            String,
            Option<String>,
            i64,
            Option<i64>,
        );
        let keys: Vec<KeyRow> = api_keys::table.load(conn).unwrap();
        let outcomes: Vec<(String, String, String, String, i64)> =
            idempotency_outcomes::table.load(conn).unwrap();
        assert!(!tokens.is_empty(), "session_tokens holds rows");
        assert_eq!(keys.len(), 2, "api_keys holds the two keys");
        assert!(outcomes.len() >= 2, "idempotency_outcomes holds rows");
        tokens
            .iter()
            .map(|r| format!("session_tokens {r:?}"))
            .chain(keys.iter().map(|r| format!("api_keys {r:?}")))
            .chain(
                outcomes
                    .iter()
                    .map(|r| format!("idempotency_outcomes {r:?}")),
            )
            .collect()
    })
    .await
    .unwrap()
}

async fn the_database_holds_no_usable_secret(kind: Kind) {
    let app = TestApp::spawn_secured(kind).await;
    let agent = app.agent().await;
    let body = json!({"agentId": agent, "userId": uuid::Uuid::new_v4()});
    let first = keyed_create(&app, ADMIN_KEY, "create-1", &body).await;
    let replay = keyed_create(&app, ADMIN_KEY, "create-1", &body).await;
    let id = id_of(&first.body);
    let (status, issued) = app.post_empty(paths::token(&id)).await;
    assert_eq!(status, StatusCode::CREATED, "{issued}");
    let live_token = token_of(&issued);
    let reply = app
        .call(Method::POST, paths::messages(&id))
        .bearer(&live_token)
        .header("Idempotency-Key", "send-1")
        .json(json!({"content": "hello"}))
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let key = app.create_key(&["sessions:read"], None).await;
    let bound = app.create_key(&["sessions:write"], Some(&agent)).await;
    assert_eq!(get_with(&app, &key, &id).await.status, StatusCode::OK);

    let secrets = [
        token_of(&first.body),
        token_of(&replay.body),
        live_token,
        key,
        bound,
        ADMIN_KEY.to_owned(),
    ];
    let rows = credential_rows(&app).await;
    for row in &rows {
        for secret in &secrets {
            assert!(
                !row.contains(secret.as_str()),
                "a stored row holds a usable secret ({secret}): {row}"
            );
            // Nor the random part without its prefix.
            let random = &secret[4..];
            assert!(!row.contains(random), "a stored row holds {secret}: {row}");
        }
    }
}

async fn open_mode_needs_no_credential_but_checks_the_ones_sent(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let agent = app.agent().await;
    let one = app.session_with(&agent, json!({})).await;
    let two = app.session_with(&agent, json!({})).await;
    let (id, token) = (id_of(&one), token_of(&one));

    let (status, body) = app.get(paths::session(&id)).await;
    assert_eq!(status, StatusCode::OK, "no credential is fine: {body}");

    assert_unauthorized(
        &get_with(&app, &unknown_key(), &id).await,
        "an unknown key in the open mode",
    );

    let reply = get_with(&app, &token, &id).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    get_with(&app, &token, &id_of(&two))
        .await
        .assert_error(StatusCode::FORBIDDEN, "FORBIDDEN");
    let reply = message_as(&app, &token, &id_of(&two), json!({"content": "hi"})).await;
    reply.assert_error(StatusCode::FORBIDDEN, "FORBIDDEN");
    let reply = app
        .call(Method::GET, paths::sessions())
        .bearer(&token)
        .send()
        .await;
    reply.assert_error(StatusCode::FORBIDDEN, "FORBIDDEN");
    assert_eq!(app.stored_messages().await, 0);

    let reply = message_as(&app, &token, &id, json!({"content": "mine"})).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(reply.body["isAgent"], false);
}

async fn concurrent_reissues_leave_exactly_one_working_token(kind: Kind) {
    let app = TestApp::spawn_secured(kind).await;
    let agent = app.agent().await;
    let id = id_of(&app.session_with(&agent, json!({})).await);
    let issues = (0..6).map(|_| app.post_empty(paths::token(&id)));
    let tokens: Vec<String> = futures::future::join_all(issues)
        .await
        .into_iter()
        .map(|(status, body)| {
            assert_eq!(status, StatusCode::CREATED, "{body}");
            body["sessionToken"].as_str().unwrap().to_owned()
        })
        .collect();
    let mut working = 0;
    for token in &tokens {
        let reply = get_with(&app, token, &id).await;
        match reply.status {
            StatusCode::OK => working += 1,
            _ => assert_unauthorized(&reply, "a replaced token"),
        }
    }
    assert_eq!(
        working, 1,
        "exactly one of the concurrently issued tokens survives"
    );
}
