//! Group sessions: participants at creation and later, what each participant's token may do,
//! the author of a message, and `PATCH /{id}` (title and metadata).

use std::collections::HashSet;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::backend_tests;
use crate::helpers::sse::EventStream;
use crate::helpers::{
    assert_error, event_types, events_of, id_of, paths, rfc3339, session_token, Kind, TestApp,
    MINUTE, T0,
};

backend_tests!(
    create_with_participants_makes_a_group_with_roles_and_one_token_each,
    create_without_participants_is_a_dm_with_no_participant_tokens,
    create_ignores_duplicate_creator_and_agent_participants,
    create_with_a_title_over_200_chars_is_400_and_creates_nothing,
    create_over_the_participant_limit_is_422_and_creates_nothing,
    participants_are_listed_agent_then_creator_then_by_join_time,
    list_by_user_id_finds_a_session_through_any_user_participant,
    adding_participants_returns_tokens_for_the_newly_added_only,
    adding_over_the_participant_limit_is_422_and_adds_nobody,
    removing_participants_with_a_body_or_by_path,
    removing_the_only_added_user_makes_the_session_a_dm_again,
    removing_the_creator_or_the_agent_is_400_and_removes_nobody,
    removing_a_non_participant_is_404_and_removes_nobody,
    participant_routes_need_sessions_manage_on_the_sessions_agent,
    an_added_participant_may_be_named_as_author_but_a_stranger_may_not,
    a_participants_token_posts_and_reads_as_that_participant,
    a_participants_token_cannot_write_as_another_user,
    a_removed_participants_token_is_401_everywhere,
    a_removed_participants_open_stream_ends,
    a_participants_lost_token_is_replaced_through_the_token_route,
    re_adding_participants_at_the_limit_is_a_no_op,
    a_title_or_close_reason_with_nul_is_400_and_writes_nothing,
    a_participants_token_cannot_pause_or_close_but_the_creators_can,
    patch_session_sets_the_title_and_replaces_the_metadata,
    patch_session_with_null_title_clears_it_and_keeps_the_metadata,
    a_blank_title_is_no_title,
    patch_session_with_a_title_over_200_chars_is_400_and_writes_nothing,
    participant_changes_record_one_event_each_with_the_ids,
    patch_session_records_one_session_updated_event,
    patch_session_needs_sessions_manage_on_the_sessions_agent,
    participant_and_patch_routes_of_an_expired_session_are_410,
);

fn new_user() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Creates a session of `agent` for a new creator with these extra participants; returns the
/// 201 body.
async fn group(app: &TestApp, agent: &str, participants: &[&str]) -> Value {
    app.session_with(agent, json!({ "participants": participants }))
        .await
}

/// The ids of a session body's participants, in order.
fn participant_ids(session: &Value) -> Vec<String> {
    session["participants"]
        .as_array()
        .unwrap_or_else(|| panic!("participants array: {session}"))
        .iter()
        .map(|p| p["id"].as_str().expect("participant id").to_owned())
        .collect()
}

/// The participant `id` of a session body.
fn participant<'a>(session: &'a Value, id: &str) -> &'a Value {
    session["participants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == id)
        .unwrap_or_else(|| panic!("{id} is a participant: {session}"))
}

/// `participantTokens` of an answer as userId → token.
fn participant_tokens(body: &Value) -> Vec<(String, String)> {
    body["participantTokens"]
        .as_array()
        .unwrap_or_else(|| panic!("participantTokens array: {body}"))
        .iter()
        .map(|t| {
            (
                t["userId"].as_str().expect("userId").to_owned(),
                t["sessionToken"].as_str().expect("sessionToken").to_owned(),
            )
        })
        .collect()
}

/// Over the participant limit: 422 `TOO_MANY_PARTICIPANTS` naming the field and the limit.
fn assert_too_many_participants(status: StatusCode, body: &Value, max: u64) {
    assert_error(
        status,
        body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "TOO_MANY_PARTICIPANTS",
    );
    assert_eq!(body["details"]["field"], "participants", "{body}");
    assert_eq!(body["details"]["max"], max, "{body}");
}

/// The token `participantTokens` hands out for `user`.
fn token_for(body: &Value, user: &str) -> String {
    participant_tokens(body)
        .into_iter()
        .find(|(u, _)| u == user)
        .unwrap_or_else(|| panic!("a token for {user}: {body}"))
        .1
}

/// A POST without a body, with a token: its status and body.
async fn post_with(app: &TestApp, path: paths::ApiPath, token: &str) -> (StatusCode, Value) {
    let reply = app.call(Method::POST, &path).bearer(token).send().await;
    (reply.status, reply.body)
}

async fn read(app: &TestApp, id: &str) -> Value {
    let (status, body) = app.get(paths::session(id)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn create_with_participants_makes_a_group_with_roles_and_one_token_each(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let agent = app.agent().await;
    let creator = new_user();
    let (p1, p2) = (new_user(), new_user());
    let (status, created) = app
        .post(
            paths::sessions(),
            json!({
                "agentId": agent,
                "userId": creator,
                "participants": [p1, p2],
                "title": "Team chat",
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["type"], "group");
    assert_eq!(created["title"], "Team chat");
    assert_eq!(created["userId"], creator);

    let ids = participant_ids(&created);
    assert_eq!(ids.len(), 4, "{created}");
    assert_eq!(ids[0], agent, "the agent first");
    assert_eq!(ids[1], creator, "then the creator");
    assert_eq!(
        ids[2..].iter().cloned().collect::<HashSet<_>>(),
        HashSet::from([p1.clone(), p2.clone()])
    );
    let joined = rfc3339(T0);
    assert_eq!(
        *participant(&created, &agent),
        json!({"id": agent, "role": "agent", "joinedAt": joined})
    );
    for user in [&creator, &p1, &p2] {
        assert_eq!(
            *participant(&created, user),
            json!({"id": user, "role": "user", "joinedAt": joined})
        );
    }

    let tokens = participant_tokens(&created);
    assert_eq!(
        tokens.len(),
        2,
        "one token per added participant: {created}"
    );
    assert_eq!(
        tokens
            .iter()
            .map(|(u, _)| u.clone())
            .collect::<HashSet<_>>(),
        HashSet::from([p1.clone(), p2.clone()])
    );
    let creator_token = session_token(&created);
    assert!(creator_token.starts_with("ast_"), "{creator_token}");
    for (_, token) in &tokens {
        assert!(token.starts_with("ast_"), "{token}");
        assert_ne!(*token, creator_token, "sessionToken stays the creator's");
    }
    assert_ne!(tokens[0].1, tokens[1].1);

    let read = read(&app, &id_of(&created)).await;
    assert_eq!(read["type"], "group");
    assert_eq!(read["title"], "Team chat");
    assert_eq!(participant_ids(&read)[..2], ids[..2]);
    // p1 and p2 joined in the same millisecond: a read lists them as the create did.
    assert_eq!(participant_ids(&read), participant_ids(&created));
    assert_eq!(
        participant_ids(&read).into_iter().collect::<HashSet<_>>(),
        ids.iter().cloned().collect::<HashSet<_>>()
    );
    for user in [&creator, &p1, &p2] {
        assert_eq!(participant(&read, user), participant(&created, user));
    }
}

async fn create_without_participants_is_a_dm_with_no_participant_tokens(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let agent = app.agent().await;
    let created = app.session_with(&agent, json!({})).await;
    assert_eq!(created["type"], "dm");
    assert!(created["title"].is_null(), "{created}");
    assert_eq!(created["participantTokens"], json!([]));
    let creator = created["userId"].as_str().unwrap();
    assert_eq!(
        created["participants"],
        json!([
            {"id": agent, "role": "agent", "joinedAt": rfc3339(T0)},
            {"id": creator, "role": "user", "joinedAt": rfc3339(T0)},
        ])
    );
}

async fn create_ignores_duplicate_creator_and_agent_participants(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let agent = app.agent().await;
    let creator = new_user();
    let p1 = new_user();
    let created = app
        .session_with(
            &agent,
            json!({"userId": creator, "participants": [p1, p1, creator, agent]}),
        )
        .await;
    assert_eq!(created["type"], "group");
    assert_eq!(participant_ids(&created), vec![agent, creator, p1.clone()]);
    let tokens = participant_tokens(&created);
    assert_eq!(tokens.len(), 1, "{created}");
    assert_eq!(tokens[0].0, p1);
}

async fn create_with_a_title_over_200_chars_is_400_and_creates_nothing(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let agent = app.agent().await;
    let (status, body) = app
        .post(
            paths::sessions(),
            json!({"agentId": agent, "userId": new_user(), "title": "t".repeat(201)}),
        )
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
    assert_eq!(body["details"]["field"], "title", "{body}");
    assert_eq!(app.session_count("all").await, 0);

    let created = app
        .session_with(&agent, json!({"title": "t".repeat(200)}))
        .await;
    assert_eq!(created["title"], "t".repeat(200), "200 chars are fine");
}

async fn create_over_the_participant_limit_is_422_and_creates_nothing(kind: Kind) {
    let app = TestApp::spawn_with(kind, |s| s.max_participants = 3).await;
    let agent = app.agent().await;
    let (status, body) = app
        .post(
            paths::sessions(),
            json!({"agentId": agent, "userId": new_user(), "participants": [new_user(), new_user()]}),
        )
        .await;
    assert_too_many_participants(status, &body, 3);
    assert_eq!(app.session_count("all").await, 0);

    // The agent, the creator and one more: exactly the limit.
    let created = group(&app, &agent, &[&new_user()]).await;
    assert_eq!(participant_ids(&created).len(), 3);
}

async fn participants_are_listed_agent_then_creator_then_by_join_time(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let agent = app.agent().await;
    let id = id_of(&app.session_with(&agent, json!({})).await);
    let creator = read(&app, &id).await["userId"].as_str().unwrap().to_owned();
    // Joined first but sorts last by id, and the other way round.
    let early = "ffffffff-0000-4000-8000-000000000001";
    let late = "00000000-0000-4000-8000-000000000001";

    app.clock.advance_minutes(1);
    let (status, body) = app
        .post(paths::participants(&id), json!({"participants": [early]}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app.clock.advance_minutes(1);
    let (status, body) = app
        .post(paths::participants(&id), json!({"participants": [late]}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let session = read(&app, &id).await;
    assert_eq!(
        session["participants"],
        json!([
            {"id": agent, "role": "agent", "joinedAt": rfc3339(T0)},
            {"id": creator, "role": "user", "joinedAt": rfc3339(T0)},
            {"id": early, "role": "user", "joinedAt": rfc3339(T0 + MINUTE)},
            {"id": late, "role": "user", "joinedAt": rfc3339(T0 + 2 * MINUTE)},
        ])
    );
    assert_eq!(body["participants"], session["participants"]);
}

async fn list_by_user_id_finds_a_session_through_any_user_participant(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let agent = app.agent().await;
    let p1 = new_user();
    let created = group(&app, &agent, &[&p1]).await;
    let id = id_of(&created);
    let creator = created["userId"].as_str().unwrap().to_owned();
    // Another session, of somebody else.
    app.session_with(&agent, json!({})).await;

    let listed = |user: String| {
        let app = &app;
        async move {
            let (status, page) = app
                .get(paths::sessions().query(format!("userId={user}&status=all")))
                .await;
            assert_eq!(status, StatusCode::OK, "{page}");
            page["sessions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["sessionId"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(listed(p1.clone()).await, vec![id.clone()], "an added user");
    assert_eq!(listed(creator).await, vec![id.clone()], "the creator");
    assert!(listed(new_user()).await.is_empty());

    let (status, body) = app.delete(paths::participant(&id, &p1)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        listed(p1).await.is_empty(),
        "a removed user is no longer a participant"
    );
}

async fn adding_participants_returns_tokens_for_the_newly_added_only(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let agent = app.agent().await;
    let created = app.session_with(&agent, json!({})).await;
    let id = id_of(&created);
    let creator = created["userId"].as_str().unwrap().to_owned();
    let (p1, p2) = (new_user(), new_user());

    let (status, body) = app
        .post(
            paths::participants(&id),
            json!({"participants": [p1, creator, agent]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["sessionId"], id);
    assert_eq!(body["type"], "group");
    assert_eq!(
        participant_ids(&body),
        vec![agent.clone(), creator.clone(), p1.clone()]
    );
    let tokens = participant_tokens(&body);
    assert_eq!(tokens.len(), 1, "{body}");
    assert_eq!(tokens[0].0, p1);
    assert!(tokens[0].1.starts_with("ast_"));

    let (status, body) = app
        .post(paths::participants(&id), json!({"participants": [p1, p2]}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let tokens = participant_tokens(&body);
    assert_eq!(tokens.len(), 1, "p1 is already in: {body}");
    assert_eq!(tokens[0].0, p2);
    assert_eq!(participant_ids(&body).len(), 4);
    assert_eq!(participant_ids(&read(&app, &id).await).len(), 4);
}

async fn adding_over_the_participant_limit_is_422_and_adds_nobody(kind: Kind) {
    let app = TestApp::spawn_with(kind, |s| s.max_participants = 3).await;
    let id = app.session().await;
    let (p1, p2) = (new_user(), new_user());

    let (status, body) = app
        .post(paths::participants(&id), json!({"participants": [p1, p2]}))
        .await;
    assert_too_many_participants(status, &body, 3);
    let session = read(&app, &id).await;
    assert_eq!(
        participant_ids(&session).len(),
        2,
        "nobody added: {session}"
    );
    assert_eq!(session["type"], "dm");

    let (status, body) = app
        .post(paths::participants(&id), json!({"participants": [p1]}))
        .await;
    assert_eq!(status, StatusCode::OK, "up to the limit: {body}");
    let (status, body) = app
        .post(paths::participants(&id), json!({"participants": [p2]}))
        .await;
    assert_too_many_participants(status, &body, 3);
    assert_eq!(participant_ids(&read(&app, &id).await).len(), 3);
}

async fn removing_participants_with_a_body_or_by_path(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let agent = app.agent().await;
    let (p1, p2, p3) = (new_user(), new_user(), new_user());
    let created = group(&app, &agent, &[&p1, &p2, &p3]).await;
    let id = id_of(&created);

    let (status, body) = app
        .delete_with(paths::participants(&id), json!({"participants": [p1]}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["sessionId"], id);
    let ids = participant_ids(&body);
    assert!(!ids.contains(&p1), "{body}");
    assert_eq!(ids.len(), 4);

    let (status, body) = app.delete(paths::participant(&id, &p2)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let ids = participant_ids(&body);
    assert!(!ids.contains(&p2), "{body}");
    assert!(ids.contains(&p3), "{body}");
    assert_eq!(ids.len(), 3);
    assert_eq!(body["type"], "group", "p3 is still there");
    assert_eq!(participant_ids(&read(&app, &id).await), ids);
}

async fn removing_the_only_added_user_makes_the_session_a_dm_again(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let agent = app.agent().await;
    let p1 = new_user();
    let created = group(&app, &agent, &[&p1]).await;
    assert_eq!(created["type"], "group");
    let id = id_of(&created);

    let (status, body) = app.delete(paths::participant(&id, &p1)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["type"], "dm");
    assert_eq!(participant_ids(&body).len(), 2);
    assert_eq!(read(&app, &id).await["type"], "dm");
}

async fn removing_the_creator_or_the_agent_is_400_and_removes_nobody(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let agent = app.agent().await;
    let p1 = new_user();
    let created = group(&app, &agent, &[&p1]).await;
    let id = id_of(&created);
    let creator = created["userId"].as_str().unwrap().to_owned();
    let before = participant_ids(&created);

    for (status, body) in [
        app.delete_with(paths::participants(&id), json!({"participants": [creator]}))
            .await,
        app.delete_with(
            paths::participants(&id),
            json!({"participants": [p1, creator]}),
        )
        .await,
        app.delete_with(paths::participants(&id), json!({"participants": [agent]}))
            .await,
        app.delete(paths::participant(&id, &creator)).await,
        app.delete(paths::participant(&id, &agent)).await,
    ] {
        assert_error(status, &body, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
        assert_eq!(body["details"]["field"], "participants", "{body}");
    }
    let session = read(&app, &id).await;
    assert_eq!(participant_ids(&session), before, "nobody removed");
    assert_eq!(session["type"], "group");
}

async fn removing_a_non_participant_is_404_and_removes_nobody(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let agent = app.agent().await;
    let p1 = new_user();
    let created = group(&app, &agent, &[&p1]).await;
    let id = id_of(&created);
    let stranger = new_user();

    for (status, body) in [
        app.delete_with(
            paths::participants(&id),
            json!({"participants": [p1, stranger]}),
        )
        .await,
        app.delete(paths::participant(&id, &stranger)).await,
    ] {
        assert_error(
            status,
            &body,
            StatusCode::NOT_FOUND,
            "PARTICIPANT_NOT_FOUND",
        );
    }
    assert_eq!(
        participant_ids(&read(&app, &id).await),
        participant_ids(&created),
        "nobody removed"
    );
}

async fn participant_routes_need_sessions_manage_on_the_sessions_agent(kind: Kind) {
    let app = TestApp::spawn_secured(kind).await;
    let agent = app.agent().await;
    let other_agent = app.agent().await;
    let created = app.session_with(&agent, json!({})).await;
    let id = id_of(&created);
    let token = session_token(&created);

    let manage = app.create_key(&["sessions:manage"], None).await;
    let manage_here = app.create_key(&["sessions:manage"], Some(&agent)).await;
    let manage_elsewhere = app
        .create_key(&["sessions:manage"], Some(&other_agent))
        .await;
    let write_only = app
        .create_key(&["sessions:read", "sessions:write"], None)
        .await;

    for secret in [&manage_elsewhere, &write_only, &token] {
        let user = new_user();
        app.call(Method::POST, paths::participants(&id))
            .bearer(secret)
            .json(json!({"participants": [user]}))
            .send()
            .await
            .assert_error(StatusCode::FORBIDDEN, "FORBIDDEN");
    }
    assert_eq!(participant_ids(&read(&app, &id).await).len(), 2);

    let mut added = Vec::new();
    for secret in [&manage, &manage_here] {
        let user = new_user();
        let reply = app
            .call(Method::POST, paths::participants(&id))
            .bearer(secret)
            .json(json!({"participants": [user]}))
            .send()
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        added.push(user);
    }
    for secret in [&manage_elsewhere, &write_only, &token] {
        app.call(Method::DELETE, paths::participant(&id, &added[0]))
            .bearer(secret)
            .send()
            .await
            .assert_error(StatusCode::FORBIDDEN, "FORBIDDEN");
        app.call(Method::DELETE, paths::participants(&id))
            .bearer(secret)
            .json(json!({"participants": [added[0]]}))
            .send()
            .await
            .assert_error(StatusCode::FORBIDDEN, "FORBIDDEN");
    }
    assert_eq!(participant_ids(&read(&app, &id).await).len(), 4);
    let reply = app
        .call(Method::DELETE, paths::participant(&id, &added[0]))
        .bearer(&manage_here)
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let reply = app
        .call(Method::DELETE, paths::participants(&id))
        .bearer(&manage)
        .json(json!({"participants": [added[1]]}))
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(participant_ids(&read(&app, &id).await).len(), 2);
}

async fn an_added_participant_may_be_named_as_author_but_a_stranger_may_not(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let agent = app.agent().await;
    let p1 = new_user();
    let created = group(&app, &agent, &[&p1]).await;
    let id = id_of(&created);

    let (status, body) = app
        .post(
            paths::messages(&id),
            json!({"content": "from p1", "authorId": p1}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["authorId"], p1);
    assert_eq!(body["isAgent"], false);

    app.clock.advance_minutes(1);
    let (status, body) = app
        .post(
            paths::messages(&id),
            json!({"content": "from a stranger", "authorId": new_user()}),
        )
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
    assert_eq!(body["details"]["field"], "authorId", "{body}");
    assert_eq!(app.stored_messages().await, 1, "nothing stored");
    let (_, page) = app.get(paths::messages(&id)).await;
    assert_eq!(page["messages"].as_array().unwrap().len(), 1, "{page}");
    assert_eq!(
        read(&app, &id).await["lastActivity"],
        rfc3339(T0),
        "a refused message is no activity"
    );
}

async fn a_participants_token_posts_and_reads_as_that_participant(kind: Kind) {
    let app = TestApp::spawn_secured(kind).await;
    let agent = app.agent().await;
    let p1 = new_user();
    let created = group(&app, &agent, &[&p1]).await;
    let id = id_of(&created);
    let token = token_for(&created, &p1);

    let reply = app
        .call(Method::POST, paths::messages(&id))
        .bearer(&token)
        .json(json!({"content": "hi from p1"}))
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(reply.body["authorId"], p1);
    assert_eq!(reply.body["isAgent"], false);

    let reply = app
        .call(Method::GET, paths::session(&id))
        .bearer(&token)
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["sessionId"], id);

    let reply = app
        .call(Method::GET, paths::messages(&id))
        .bearer(&token)
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let messages = reply.body["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1, "{}", reply.body);
    assert_eq!(messages[0]["authorId"], p1);
    assert_eq!(messages[0]["isAgent"], false);

    let reply = app
        .call(Method::GET, paths::watch(&id).query("cursor=0&timeout=0"))
        .bearer(&token)
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
}

async fn a_participants_token_cannot_write_as_another_user(kind: Kind) {
    let app = TestApp::spawn_secured(kind).await;
    let agent = app.agent().await;
    let (p1, p2) = (new_user(), new_user());
    let created = group(&app, &agent, &[&p1, &p2]).await;
    let id = id_of(&created);
    let creator = created["userId"].as_str().unwrap().to_owned();
    let token = token_for(&created, &p1);

    for other in [&creator, &p2, &agent] {
        app.call(Method::POST, paths::messages(&id))
            .bearer(&token)
            .json(json!({"content": "impersonating", "authorId": other}))
            .send()
            .await
            .assert_error(StatusCode::FORBIDDEN, "FORBIDDEN");
    }
    assert_eq!(app.stored_messages().await, 0);

    let reply = app
        .call(Method::POST, paths::messages(&id))
        .bearer(&token)
        .json(json!({"content": "me", "authorId": p1}))
        .send()
        .await;
    assert_eq!(
        reply.status,
        StatusCode::CREATED,
        "naming itself: {}",
        reply.body
    );
    assert_eq!(reply.body["authorId"], p1);
}

async fn a_removed_participants_token_is_401_everywhere(kind: Kind) {
    let app = TestApp::spawn_secured(kind).await;
    let agent = app.agent().await;
    let p1 = new_user();
    let created = group(&app, &agent, &[&p1]).await;
    let id = id_of(&created);
    let token = token_for(&created, &p1);
    let creator_token = session_token(&created);
    let reply = app
        .call(Method::GET, paths::session(&id))
        .bearer(&token)
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::OK, "before: {}", reply.body);

    let (status, body) = app.delete(paths::participant(&id, &p1)).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    for (method, path, body) in [
        (Method::GET, paths::session(&id), None),
        (Method::GET, paths::messages(&id), None),
        (
            Method::POST,
            paths::messages(&id),
            Some(json!({"content": "still here?"})),
        ),
        (Method::GET, paths::transcript(&id), None),
        (
            Method::GET,
            paths::watch(&id).query("cursor=0&timeout=0"),
            None,
        ),
    ] {
        let mut call = app.call(method.clone(), &path).bearer(&token);
        if let Some(body) = body {
            call = call.json(body);
        }
        let reply = call.send().await;
        assert_eq!(
            reply.status,
            StatusCode::UNAUTHORIZED,
            "{method} {}: {}",
            path.as_ref(),
            reply.body
        );
        reply.assert_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    }
    assert_eq!(app.stored_messages().await, 0);

    let reply = app
        .call(Method::GET, paths::session(&id))
        .bearer(&creator_token)
        .send()
        .await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "the creator's token lives: {}",
        reply.body
    );
}

async fn a_removed_participants_open_stream_ends(kind: Kind) {
    let app = TestApp::spawn_secured(kind).await;
    let agent = app.agent().await;
    let p1 = new_user();
    let created = group(&app, &agent, &[&p1]).await;
    let id = id_of(&created);
    let token = token_for(&created, &p1);
    let bearer = format!("Bearer {token}");
    let mut stream =
        EventStream::open(&app, paths::events(&id), Some(("Authorization", &bearer))).await;
    stream.expect(1, "session.created").await;
    app.message(&id, "before the removal").await;
    stream.expect(2, "message.created").await;

    let (status, body) = app.delete(paths::participant(&id, &p1)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app.message(&id, "after the removal").await;
    assert!(
        stream.next().await.is_none(),
        "a removed user's stream ends instead of carrying the group's messages"
    );
}

async fn a_participants_lost_token_is_replaced_through_the_token_route(kind: Kind) {
    let app = TestApp::spawn_secured(kind).await;
    let agent = app.agent().await;
    let p1 = new_user();
    let created = group(&app, &agent, &[&p1]).await;
    let id = id_of(&created);
    let lost = token_for(&created, &p1);
    let creator_token = session_token(&created);

    let (status, issued) = app
        .post_empty(paths::token(&id).query(format!("userId={p1}")))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{issued}");
    assert_eq!(issued["userId"], p1);
    let fresh = issued["sessionToken"].as_str().unwrap().to_owned();
    assert_ne!(fresh, lost);

    let with = |token: &str| {
        app.call(Method::POST, paths::messages(&id))
            .bearer(token)
            .json(json!({"content": "hello"}))
    };
    with(&lost)
        .send()
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    let reply = with(&fresh).send().await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(reply.body["authorId"], p1);
    let reply = with(&creator_token).send().await;
    assert_eq!(
        reply.status,
        StatusCode::CREATED,
        "the creator's token is untouched"
    );

    let stranger = new_user();
    let (status, body) = app
        .post_empty(paths::token(&id).query(format!("userId={stranger}")))
        .await;
    assert_error(
        status,
        &body,
        StatusCode::NOT_FOUND,
        "PARTICIPANT_NOT_FOUND",
    );
}

async fn re_adding_participants_at_the_limit_is_a_no_op(kind: Kind) {
    let app = TestApp::spawn_with(kind, |s| s.max_participants = 3).await;
    let agent = app.agent().await;
    let p1 = new_user();
    let id = id_of(&group(&app, &agent, &[&p1]).await);

    let (status, body) = app
        .post(paths::participants(&id), json!({"participants": [p1]}))
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "already full, but nobody new: {body}"
    );
    assert_eq!(body["participantTokens"], json!([]));
    let log = app.event_log(&id).await;
    assert_eq!(event_types(&log), ["session.created"]);
}

async fn a_title_or_close_reason_with_nul_is_400_and_writes_nothing(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let agent = app.agent().await;
    let user = new_user();
    let (status, body) = app
        .post(
            paths::sessions(),
            json!({"agentId": agent, "userId": user, "title": "a\u{0}b"}),
        )
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
    assert_eq!(body["details"]["field"], "title");
    assert_eq!(app.session_count("all").await, 0);

    let id = app.session().await;
    let (status, body) = app
        .patch(paths::session(&id), json!({"title": "a\u{0}b"}))
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
    assert_eq!(body["details"]["field"], "title");
    let (status, body) = app
        .post(paths::close(&id), json!({"reason": "a\u{0}b"}))
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
    assert_eq!(body["details"]["field"], "reason");
    let session = read(&app, &id).await;
    assert_eq!(session["status"], "active");
    assert!(session["title"].is_null(), "{session}");
}

async fn a_participants_token_cannot_pause_or_close_but_the_creators_can(kind: Kind) {
    let app = TestApp::spawn_secured(kind).await;
    let agent = app.agent().await;
    let p1 = new_user();
    let created = group(&app, &agent, &[&p1]).await;
    let id = id_of(&created);
    let token = token_for(&created, &p1);
    let creator_token = session_token(&created);

    for path in [paths::pause(&id), paths::close(&id)] {
        let (status, body) = post_with(&app, path, &token).await;
        assert_error(status, &body, StatusCode::FORBIDDEN, "FORBIDDEN");
    }
    assert_eq!(read(&app, &id).await["status"], "active");

    let (status, body) = post_with(&app, paths::pause(&id), &creator_token).await;
    assert_eq!(
        (status, &body["status"]),
        (StatusCode::OK, &json!("paused")),
        "{body}"
    );
    let (status, body) = post_with(&app, paths::resume(&id), &token).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "FORBIDDEN");
    assert_eq!(read(&app, &id).await["status"], "paused");
    let (status, body) = post_with(&app, paths::resume(&id), &creator_token).await;
    assert_eq!(
        (status, &body["status"]),
        (StatusCode::OK, &json!("active")),
        "{body}"
    );
    let (status, body) = post_with(&app, paths::close(&id), &creator_token).await;
    assert_eq!(
        (status, &body["status"]),
        (StatusCode::OK, &json!("ended")),
        "{body}"
    );
    assert_eq!(body["endReason"], "closed");
}

async fn patch_session_sets_the_title_and_replaces_the_metadata(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let agent = app.agent().await;
    let created = app
        .session_with(
            &agent,
            json!({"title": "Old", "metadata": {"a": 1, "b": {"c": 2}}}),
        )
        .await;
    let id = id_of(&created);

    let (status, body) = app
        .patch(
            paths::session(&id),
            json!({"title": "New", "metadata": {"d": [1, 2]}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["sessionId"], id);
    assert_eq!(body["title"], "New");
    assert_eq!(body["metadata"], json!({"d": [1, 2]}), "replaced whole");

    let session = read(&app, &id).await;
    assert_eq!(session["title"], "New");
    assert_eq!(session["metadata"], json!({"d": [1, 2]}));

    let (status, body) = app
        .patch(paths::session(&id), json!({"title": "Newer"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["title"], "Newer");
    assert_eq!(body["metadata"], json!({"d": [1, 2]}), "metadata kept");
}

async fn patch_session_with_null_title_clears_it_and_keeps_the_metadata(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let agent = app.agent().await;
    let id = id_of(
        &app.session_with(&agent, json!({"title": "Old", "metadata": {"a": 1}}))
            .await,
    );

    let (status, body) = app.patch(paths::session(&id), json!({"title": null})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["title"].is_null(), "{body}");
    assert_eq!(body["metadata"], json!({"a": 1}));
    let session = read(&app, &id).await;
    assert!(session["title"].is_null(), "{session}");
    assert_eq!(session["metadata"], json!({"a": 1}));
}

async fn a_blank_title_is_no_title(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let agent = app.agent().await;
    let created = app
        .session_with(&agent, json!({"title": "  Team chat \n"}))
        .await;
    assert_eq!(created["title"], "Team chat", "trimmed");
    let id = id_of(&created);
    let (status, body) = app
        .patch(paths::session(&id), json!({"title": "   "}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["title"].is_null(), "{body}");
    let blank = app.session_with(&agent, json!({"title": ""})).await;
    assert!(blank["title"].is_null(), "{blank}");
}

async fn patch_session_with_a_title_over_200_chars_is_400_and_writes_nothing(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let agent = app.agent().await;
    let id = id_of(
        &app.session_with(&agent, json!({"title": "Old", "metadata": {"a": 1}}))
            .await,
    );

    let (status, body) = app
        .patch(
            paths::session(&id),
            json!({"title": "t".repeat(201), "metadata": {"changed": true}}),
        )
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
    assert_eq!(body["details"]["field"], "title", "{body}");
    let session = read(&app, &id).await;
    assert_eq!(session["title"], "Old");
    assert_eq!(session["metadata"], json!({"a": 1}), "nothing written");
    assert_eq!(
        event_types(&app.event_log(&id).await),
        ["session.created"],
        "nothing recorded"
    );
}

async fn participant_changes_record_one_event_each_with_the_ids(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let agent = app.agent().await;
    let id = id_of(&app.session_with(&agent, json!({})).await);
    let (p1, p2) = (new_user(), new_user());

    app.clock.advance_minutes(1);
    let (status, body) = app
        .post(paths::participants(&id), json!({"participants": [p1, p2]}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app.clock.advance_minutes(1);
    let (status, body) = app
        .delete_with(paths::participants(&id), json!({"participants": [p1]}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app.clock.advance_minutes(1);
    let (status, body) = app.delete(paths::participant(&id, &p2)).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let log = app.event_log(&id).await;
    let changes = events_of(&log, "session.participants_changed");
    assert_eq!(changes.len(), 3, "one per change: {:?}", event_types(&log));

    let added = &changes[0]["data"]["added"];
    let added: HashSet<&str> = added
        .as_array()
        .unwrap_or_else(|| panic!("added: {}", changes[0]))
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(added, HashSet::from([p1.as_str(), p2.as_str()]));
    assert_eq!(changes[0]["data"]["removed"], json!([]), "{}", changes[0]);
    assert_eq!(changes[0]["timestamp"], rfc3339(T0 + MINUTE));

    assert_eq!(
        changes[1]["data"],
        json!({"added": [], "removed": [p1]}),
        "{}",
        changes[1]
    );
    assert_eq!(changes[1]["timestamp"], rfc3339(T0 + 2 * MINUTE));
    assert_eq!(
        changes[2]["data"],
        json!({"added": [], "removed": [p2]}),
        "{}",
        changes[2]
    );
    assert_eq!(changes[2]["sessionId"], id);
    assert_eq!(changes[2]["agentId"], agent);
}

async fn patch_session_records_one_session_updated_event(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let agent = app.agent().await;
    let id = id_of(
        &app.session_with(&agent, json!({"metadata": {"a": 1}}))
            .await,
    );

    app.clock.advance_minutes(1);
    let (status, body) = app
        .patch(
            paths::session(&id),
            json!({"title": "Renamed", "metadata": {"b": 2}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let log = app.event_log(&id).await;
    assert_eq!(event_types(&log), ["session.created", "session.updated"]);
    assert_eq!(log[1]["timestamp"], rfc3339(T0 + MINUTE));
    assert_eq!(
        log[1]["data"],
        json!({"title": "Renamed", "metadata": {"b": 2}})
    );
}

async fn patch_session_needs_sessions_manage_on_the_sessions_agent(kind: Kind) {
    let app = TestApp::spawn_secured(kind).await;
    let agent = app.agent().await;
    let other_agent = app.agent().await;
    let created = app
        .session_with(&agent, json!({"title": "Old", "metadata": {"a": 1}}))
        .await;
    let id = id_of(&created);
    let manage_here = app.create_key(&["sessions:manage"], Some(&agent)).await;
    let manage_elsewhere = app
        .create_key(&["sessions:manage"], Some(&other_agent))
        .await;
    let write_only = app
        .create_key(&["sessions:read", "sessions:write"], None)
        .await;

    for secret in [&manage_elsewhere, &write_only, &session_token(&created)] {
        app.call(Method::PATCH, paths::session(&id))
            .bearer(secret)
            .json(json!({"title": "Refused"}))
            .send()
            .await
            .assert_error(StatusCode::FORBIDDEN, "FORBIDDEN");
    }
    assert_eq!(read(&app, &id).await["title"], "Old");

    let reply = app
        .call(Method::PATCH, paths::session(&id))
        .bearer(&manage_here)
        .json(json!({"title": "Allowed"}))
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["title"], "Allowed");
}

async fn participant_and_patch_routes_of_an_expired_session_are_410(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let agent = app.agent().await;
    let p1 = new_user();
    let id = id_of(&group(&app, &agent, &[&p1]).await);

    app.clock.advance_minutes(30);
    for (status, body) in [
        app.post(
            paths::participants(&id),
            json!({"participants": [new_user()]}),
        )
        .await,
        app.delete_with(paths::participants(&id), json!({"participants": [p1]}))
            .await,
        app.delete(paths::participant(&id, &p1)).await,
        app.patch(paths::session(&id), json!({"title": "late"}))
            .await,
    ] {
        assert_error(status, &body, StatusCode::GONE, "SESSION_EXPIRED");
        assert_eq!(
            body["details"]["expiredAt"],
            rfc3339(T0 + 30 * MINUTE),
            "{body}"
        );
    }
}
