//! The conversation state: `PATCH /{id}/state` merges, validates and records
//! `session.state_changed`; lists filter by stage.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::backend_tests;
use crate::helpers::{
    assert_error, event_types, events_of, id_of, paths, rfc3339, session_token, Kind, TestApp,
    MINUTE, T0,
};

backend_tests!(
    a_new_session_starts_in_the_greeting_stage,
    patching_the_state_merges_the_given_fields,
    every_field_can_be_set_at_once,
    null_clears_an_optional_field,
    the_boundary_values_are_accepted,
    invalid_state_is_400_naming_the_field_and_changes_nothing,
    a_null_stage_is_400,
    state_patch_needs_the_sessions_agent_key_or_sessions_manage,
    list_filters_by_stage,
    list_with_an_unknown_stage_is_400,
    a_state_change_records_only_the_changed_fields,
    a_state_patch_that_changes_nothing_records_no_event,
    state_patch_of_an_expired_session_is_410,
);

async fn read_state(app: &TestApp, id: &str) -> Value {
    let (status, body) = app.get(paths::session(id)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["state"].clone()
}

/// PATCHes the state; expects 200 and returns the session's state from the answer.
async fn patch_state(app: &TestApp, id: &str, body: Value) -> Value {
    let (status, session) = app.patch(paths::state(id), body.clone()).await;
    assert_eq!(status, StatusCode::OK, "PATCH state {body}: {session}");
    assert_eq!(session["sessionId"], id, "answers the session: {session}");
    session["state"].clone()
}

async fn a_new_session_starts_in_the_greeting_stage(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let agent = app.agent().await;
    let created = app.session_with(&agent, json!({})).await;
    assert_eq!(created["state"], json!({"stage": "greeting"}));
    assert_eq!(
        read_state(&app, &id_of(&created)).await,
        json!({"stage": "greeting"})
    );
    let (_, page) = app.get(paths::sessions()).await;
    assert_eq!(page["sessions"][0]["state"], json!({"stage": "greeting"}));
}

async fn patching_the_state_merges_the_given_fields(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let id = app.session().await;

    let state = patch_state(&app, &id, json!({"sentiment": "positive"})).await;
    assert_eq!(state, json!({"stage": "greeting", "sentiment": "positive"}));
    let state = patch_state(&app, &id, json!({"stage": "discovery"})).await;
    assert_eq!(
        state,
        json!({"stage": "discovery", "sentiment": "positive"}),
        "sentiment kept"
    );
    let state = patch_state(&app, &id, json!({"intents": ["refund"]})).await;
    assert_eq!(
        state,
        json!({"stage": "discovery", "sentiment": "positive", "intents": ["refund"]})
    );
    assert_eq!(read_state(&app, &id).await, state);
}

async fn every_field_can_be_set_at_once(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let id = app.session().await;
    let full = json!({
        "stage": "engaged",
        "intents": ["buy", "compare prices"],
        "sentiment": "mixed",
        "engagement": "high",
        "confidence": 0.75,
    });
    assert_eq!(patch_state(&app, &id, full.clone()).await, full);
    assert_eq!(read_state(&app, &id).await, full);

    for (stage, sentiment, engagement) in [
        ("resolution", "neutral", "medium"),
        ("closing", "negative", "low"),
        ("greeting", "positive", "high"),
    ] {
        let state = patch_state(
            &app,
            &id,
            json!({"stage": stage, "sentiment": sentiment, "engagement": engagement}),
        )
        .await;
        assert_eq!(state["stage"], stage);
        assert_eq!(state["sentiment"], sentiment);
        assert_eq!(state["engagement"], engagement);
    }
}

async fn null_clears_an_optional_field(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let id = app.session().await;
    patch_state(
        &app,
        &id,
        json!({"sentiment": "negative", "confidence": 0.5, "intents": ["cancel"], "engagement": "low"}),
    )
    .await;

    let state = patch_state(&app, &id, json!({"sentiment": null})).await;
    assert_eq!(
        state,
        json!({"stage": "greeting", "confidence": 0.5, "intents": ["cancel"], "engagement": "low"}),
        "sentiment omitted, the rest kept"
    );
    let state = patch_state(
        &app,
        &id,
        json!({"confidence": null, "intents": null, "engagement": null}),
    )
    .await;
    assert_eq!(state, json!({"stage": "greeting"}));
    assert_eq!(read_state(&app, &id).await, json!({"stage": "greeting"}));
}

async fn the_boundary_values_are_accepted(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let id = app.session().await;

    let state = patch_state(&app, &id, json!({"confidence": 0})).await;
    assert_eq!(state["confidence"].as_f64(), Some(0.0));
    let state = patch_state(&app, &id, json!({"confidence": 1})).await;
    assert_eq!(state["confidence"].as_f64(), Some(1.0));

    let twenty: Vec<String> = (0..20).map(|i| format!("intent {i}")).collect();
    let state = patch_state(&app, &id, json!({"intents": twenty})).await;
    assert_eq!(state["intents"], json!(twenty));
    let long = "i".repeat(200);
    let state = patch_state(&app, &id, json!({"intents": [long]})).await;
    assert_eq!(state["intents"], json!([long]));
}

async fn invalid_state_is_400_naming_the_field_and_changes_nothing(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let id = app.session().await;
    let before = patch_state(
        &app,
        &id,
        json!({"stage": "discovery", "sentiment": "neutral", "confidence": 0.4, "intents": ["ask"]}),
    )
    .await;
    let log_before = app.event_log(&id).await.len();

    let intents_21: Vec<String> = (0..21).map(|i| format!("intent {i}")).collect();
    for (body, field) in [
        (json!({"stage": "bogus"}), "stage"),
        (json!({"stage": "Engaged"}), "stage"),
        (json!({"stage": 3}), "stage"),
        (json!({"sentiment": "angry"}), "sentiment"),
        (json!({"engagement": "extreme"}), "engagement"),
        (json!({"confidence": 1.5}), "confidence"),
        (json!({"confidence": -0.1}), "confidence"),
        (json!({"confidence": "high"}), "confidence"),
        (json!({"intents": intents_21}), "intents"),
        (json!({"intents": ["ok", "x".repeat(201)]}), "intents"),
        (json!({"intents": "refund"}), "intents"),
        // A valid field with an invalid one: nothing at all is applied.
        (json!({"stage": "engaged", "confidence": 2}), "confidence"),
        (
            json!({"sentiment": "positive", "engagement": "none"}),
            "engagement",
        ),
    ] {
        let (status, reply) = app.patch(paths::state(&id), body.clone()).await;
        assert_error(status, &reply, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
        let named = reply["details"]["field"].as_str().unwrap_or_default();
        if field == "intents" {
            assert!(
                named.starts_with("intents"),
                "{body}: details.field {named:?}: {reply}"
            );
        } else {
            assert_eq!(named, field, "{body}: {reply}");
        }
        assert_eq!(
            read_state(&app, &id).await,
            before,
            "{body} changed nothing"
        );
    }
    assert_eq!(
        app.event_log(&id).await.len(),
        log_before,
        "refused patches record nothing"
    );
}

async fn a_null_stage_is_400(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let id = app.session().await;
    let (status, body) = app.patch(paths::state(&id), json!({"stage": null})).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
    assert_eq!(body["details"]["field"], "stage", "{body}");
    assert_eq!(read_state(&app, &id).await, json!({"stage": "greeting"}));
}

async fn state_patch_needs_the_sessions_agent_key_or_sessions_manage(kind: Kind) {
    let app = TestApp::spawn_secured(kind).await;
    let agent = app.agent().await;
    let other_agent = app.agent().await;
    let created = app.session_with(&agent, json!({})).await;
    let id = id_of(&created);

    let bound_writer = app.create_key(&["sessions:write"], Some(&agent)).await;
    let other_writer = app
        .create_key(&["sessions:write"], Some(&other_agent))
        .await;
    let other_manager = app
        .create_key(&["sessions:manage"], Some(&other_agent))
        .await;
    let unbound_writer = app
        .create_key(&["sessions:read", "sessions:write"], None)
        .await;
    let manager = app.create_key(&["sessions:manage"], None).await;
    let token = session_token(&created);

    for (secret, expected, stage) in [
        (&other_writer, StatusCode::FORBIDDEN, "discovery"),
        (&other_manager, StatusCode::FORBIDDEN, "discovery"),
        (&unbound_writer, StatusCode::FORBIDDEN, "discovery"),
        (&token, StatusCode::FORBIDDEN, "discovery"),
        (&bound_writer, StatusCode::OK, "engaged"),
        (&manager, StatusCode::OK, "resolution"),
    ] {
        let reply = app
            .call(Method::PATCH, paths::state(&id))
            .bearer(secret)
            .json(json!({"stage": stage}))
            .send()
            .await;
        if expected == StatusCode::OK {
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
            assert_eq!(reply.body["state"]["stage"], stage);
        } else {
            reply.assert_error(StatusCode::FORBIDDEN, "FORBIDDEN");
        }
    }
    assert_eq!(read_state(&app, &id).await, json!({"stage": "resolution"}));
}

async fn list_filters_by_stage(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let agent = app.agent().await;
    let other_agent = app.agent().await;
    let engaged = id_of(&app.session_with(&agent, json!({})).await);
    app.clock.advance_ms(1);
    let greeting = id_of(&app.session_with(&agent, json!({})).await);
    app.clock.advance_ms(1);
    let also_engaged = id_of(&app.session_with(&other_agent, json!({})).await);
    for id in [&engaged, &also_engaged] {
        patch_state(
            &app,
            id,
            json!({"stage": "engaged", "sentiment": "positive"}),
        )
        .await;
    }

    let ids = |page: &Value| -> Vec<String> {
        page["sessions"]
            .as_array()
            .unwrap_or_else(|| panic!("sessions: {page}"))
            .iter()
            .map(|s| s["sessionId"].as_str().unwrap().to_owned())
            .collect()
    };
    let (status, page) = app.get(paths::sessions().query("stage=engaged")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["total"], 2, "{page}");
    assert_eq!(ids(&page), vec![also_engaged.clone(), engaged.clone()]);
    assert_eq!(page["sessions"][0]["state"]["stage"], "engaged");

    let (_, page) = app.get(paths::sessions().query("stage=greeting")).await;
    assert_eq!(ids(&page), vec![greeting]);
    let (_, page) = app
        .get(paths::sessions().query(format!("stage=engaged&agentId={agent}")))
        .await;
    assert_eq!(ids(&page), vec![engaged]);
    let (_, page) = app.get(paths::sessions().query("stage=closing")).await;
    assert_eq!(page["total"], 0);
}

async fn list_with_an_unknown_stage_is_400(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    app.session().await;
    for bad in ["stage=bogus", "stage=ENGAGED"] {
        let (status, body) = app.get(paths::sessions().query(bad)).await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
        assert_eq!(body["details"]["field"], "stage", "{bad}: {body}");
    }
}

async fn a_state_change_records_only_the_changed_fields(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let agent = app.agent().await;
    let id = id_of(&app.session_with(&agent, json!({})).await);

    app.clock.advance_minutes(1);
    // stage is given but unchanged: only sentiment changes.
    patch_state(
        &app,
        &id,
        json!({"stage": "greeting", "sentiment": "positive"}),
    )
    .await;
    app.clock.advance_minutes(1);
    patch_state(
        &app,
        &id,
        json!({"stage": "engaged", "sentiment": "positive", "intents": ["buy"]}),
    )
    .await;
    app.clock.advance_minutes(1);
    patch_state(&app, &id, json!({"sentiment": null, "confidence": 0.9})).await;

    let log = app.event_log(&id).await;
    assert_eq!(
        event_types(&log),
        [
            "session.created",
            "session.state_changed",
            "session.state_changed",
            "session.state_changed"
        ]
    );
    let changed = events_of(&log, "session.state_changed");
    assert_eq!(changed[0]["timestamp"], rfc3339(T0 + MINUTE));
    assert_eq!(changed[0]["sessionId"], id);
    assert_eq!(changed[0]["agentId"], agent);
    assert_eq!(
        changed[0]["data"],
        json!({
            "changes": {"sentiment": {"before": null, "after": "positive"}},
            "state": {"stage": "greeting", "sentiment": "positive"},
        })
    );
    assert_eq!(
        changed[1]["data"],
        json!({
            "changes": {
                "stage": {"before": "greeting", "after": "engaged"},
                "intents": {"before": null, "after": ["buy"]},
            },
            "state": {"stage": "engaged", "sentiment": "positive", "intents": ["buy"]},
        })
    );
    assert_eq!(changed[2]["timestamp"], rfc3339(T0 + 3 * MINUTE));
    assert_eq!(
        changed[2]["data"],
        json!({
            "changes": {
                "sentiment": {"before": "positive", "after": null},
                "confidence": {"before": null, "after": 0.9},
            },
            "state": {"stage": "engaged", "intents": ["buy"], "confidence": 0.9},
        })
    );
}

async fn a_state_patch_that_changes_nothing_records_no_event(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let id = app.session().await;
    patch_state(
        &app,
        &id,
        json!({"stage": "engaged", "sentiment": "neutral"}),
    )
    .await;
    let before = app.event_log(&id).await.len();

    app.clock.advance_minutes(1);
    for body in [
        json!({"stage": "engaged"}),
        json!({"sentiment": "neutral", "stage": "engaged"}),
        json!({"confidence": null}),
        json!({}),
    ] {
        let state = patch_state(&app, &id, body).await;
        assert_eq!(state, json!({"stage": "engaged", "sentiment": "neutral"}));
    }
    let log = app.event_log(&id).await;
    assert_eq!(log.len(), before, "{:?}", event_types(&log));
    assert_eq!(events_of(&log, "session.state_changed").len(), 1);
}

async fn state_patch_of_an_expired_session_is_410(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let id = app.session().await;
    app.clock.advance_minutes(30);
    let (status, body) = app
        .patch(paths::state(&id), json!({"stage": "closing"}))
        .await;
    assert_error(status, &body, StatusCode::GONE, "SESSION_EXPIRED");
}
