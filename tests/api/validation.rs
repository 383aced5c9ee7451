use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::backend_tests;
use crate::helpers::{assert_error, paths, Kind, Reply, TestApp};

backend_tests!(
    create_rejects_bad_fields_and_writes_nothing,
    create_accepts_values_at_the_limits,
    malformed_json_is_400,
    a_non_json_content_type_is_415,
    a_body_that_is_not_an_object_is_400,
    an_oversized_body_is_413,
    patch_rejects_bad_config_and_changes_nothing,
    nul_in_a_message_is_400_and_nothing_is_stored,
    nul_in_an_agent_name_is_400_and_nothing_is_written,
    nul_inside_metadata_and_attachments_round_trips,
    a_malformed_path_id_is_reported_before_body_and_header_errors,
);

/// `1` wrapped in `depth` levels of objects.
fn nested(depth: usize) -> Value {
    (0..depth).fold(json!(1), |inner, _| json!({ "k": inner }))
}

async fn create_rejects_bad_fields_and_writes_nothing(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let agent = app.agent().await;
    let user = uuid::Uuid::new_v4().to_string();
    let base = json!({"agentId": agent, "userId": user});
    let with = |extra: Value| {
        let mut b = base.clone();
        b.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        b
    };
    let cases = [
        (json!({"userId": user}), "agentId"),
        (json!({"agentId": agent}), "userId"),
        (with(json!({"agentId": "agent-123"})), "agentId"),
        (with(json!({"userId": "user-456"})), "userId"),
        (with(json!({"userId": 42})), "userId"),
        (with(json!({"metadata": "text"})), "metadata"),
        (with(json!({"metadata": [1, 2]})), "metadata"),
        (
            with(json!({"metadata": {"blob": "x".repeat(16 * 1024)}})),
            "metadata",
        ),
        (with(json!({"metadata": nested(6)})), "metadata"),
        (
            with(json!({"timeoutConfig": {"timeoutMinutes": 4}})),
            "timeoutConfig.timeoutMinutes",
        ),
        (
            with(json!({"timeoutConfig": {"timeoutMinutes": 1441}})),
            "timeoutConfig.timeoutMinutes",
        ),
        (
            with(json!({"timeoutConfig": {"timeoutMinutes": "30"}})),
            "timeoutConfig.timeoutMinutes",
        ),
        (
            with(json!({"timeoutConfig": {"maxDurationMinutes": 0}})),
            "timeoutConfig.maxDurationMinutes",
        ),
        (
            with(json!({"timeoutConfig": {"maxDurationMinutes": 4321}})),
            "timeoutConfig.maxDurationMinutes",
        ),
        (
            with(json!({"timeoutConfig": {"warningThresholdMinutes": 61}})),
            "timeoutConfig.warningThresholdMinutes",
        ),
        (
            with(json!({"timeoutConfig": {"autoRenew": "yes"}})),
            "timeoutConfig.autoRenew",
        ),
        (
            with(json!({"timeoutConfig": {"timeoutMinute": 30}})),
            "timeoutConfig.timeoutMinute",
        ),
    ];
    for (body, field) in cases {
        let (status, err) = app.post(paths::sessions(), body.clone()).await;
        assert_error(status, &err, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
        assert_eq!(err["details"]["field"], field, "for {body}: {err}");
    }
    assert_eq!(
        app.session_count("all").await,
        0,
        "a rejected request writes nothing"
    );
}

async fn create_accepts_values_at_the_limits(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let agent = app.agent().await;
    let ok = json!({
        "agentId": agent,
        "userId": uuid::Uuid::new_v4(),
        "metadata": nested(5),
        "timeoutConfig": {"timeoutMinutes": 1440, "maxDurationMinutes": 4320, "warningThresholdMinutes": 60}
    });
    let (status, body) = app.post(paths::sessions(), ok).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(app.session_count("all").await, 1);
}

/// POSTs a raw create-session body with the given content type.
async fn create_raw(app: &TestApp, content_type: &str, body: impl Into<String>) -> Reply {
    app.call(Method::POST, paths::sessions())
        .body(content_type, body)
        .send()
        .await
}

async fn malformed_json_is_400(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let reply = create_raw(&app, "application/json", "{\"agentId\": ").await;
    reply.assert_error(StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
    assert_eq!(app.session_count("all").await, 0);
}

async fn a_non_json_content_type_is_415(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let reply = create_raw(&app, "text/plain", "{}").await;
    reply.assert_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "VALIDATION_ERROR");
    assert_eq!(app.session_count("all").await, 0);
}

async fn a_body_that_is_not_an_object_is_400(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let reply = create_raw(&app, "application/json", "[1, 2]").await;
    reply.assert_error(StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
    assert_eq!(app.session_count("all").await, 0);
}

async fn an_oversized_body_is_413(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let huge = format!("{{\"metadata\": \"{}\"}}", "x".repeat(300 * 1024));
    let reply = create_raw(&app, "application/json", huge).await;
    reply.assert_error(StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE");
    assert_eq!(app.session_count("all").await, 0);
}

async fn patch_rejects_bad_config_and_changes_nothing(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let id = app.session().await;
    let (_, before) = app.get(paths::session(&id)).await;
    for (body, field) in [
        (json!({"timeoutMinutes": 2}), "timeoutMinutes"),
        (json!({"maxDurationMinutes": 5000}), "maxDurationMinutes"),
        (
            json!({"warningThresholdMinutes": 0}),
            "warningThresholdMinutes",
        ),
        (json!({"autoRenew": 1}), "autoRenew"),
        (json!({"timeoutMinutez": 10}), "timeoutMinutez"),
    ] {
        let (status, err) = app.patch(paths::timeout(&id), body.clone()).await;
        assert_error(status, &err, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
        assert_eq!(err["details"]["field"], field, "for {body}: {err}");
    }
    let (_, after) = app.get(paths::session(&id)).await;
    assert_eq!(before, after);
}

/// PostgreSQL's text columns cannot hold U+0000 (SQLite's can); both backends must refuse it
/// alike, naming the field, for text stored in a column of its own.
async fn nul_in_a_message_is_400_and_nothing_is_stored(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let id = app.session().await;
    for content in ["hello\u{0}world", "\u{0}", " \u{0} "] {
        let (status, err) = app
            .post(paths::messages(&id), json!({"content": content}))
            .await;
        assert_error(status, &err, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
        assert_eq!(err["details"]["field"], "content", "for {content:?}: {err}");
    }
    assert_eq!(app.stored_messages().await, 0);
}

async fn nul_in_an_agent_name_is_400_and_nothing_is_written(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let path = paths::agent(uuid::Uuid::new_v4());
    let (status, err) = app.put(&path, json!({"name": "Support\u{0}bot"})).await;
    assert_error(status, &err, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
    assert_eq!(err["details"]["field"], "name", "{err}");
    let (status, _) = app.get(&path).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "the agent was not registered"
    );
}

/// Metadata and attachments are stored as JSON text, where NUL is the escape `\u0000`: both
/// backends keep it and give it back unchanged.
async fn nul_inside_metadata_and_attachments_round_trips(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let metadata = json!({"note": "a\u{0}b", "k\u{0}": ["\u{0}"]});
    let body =
        json!({"agentId": app.agent().await, "userId": uuid::Uuid::new_v4(), "metadata": metadata});
    let (status, created) = app.post(paths::sessions(), body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["sessionId"].as_str().unwrap().to_owned();
    let (_, read) = app.get(paths::session(&id)).await;
    assert_eq!(read["metadata"], metadata);

    let attachment = json!({"type": "fi\u{0}le", "url": "https://e.com/\u{0}", "name": "\u{0}"});
    let message = json!({"content": "hi", "metadata": metadata, "attachments": [attachment]});
    let (status, sent) = app.post(paths::messages(&id), message).await;
    assert_eq!(status, StatusCode::CREATED, "{sent}");
    let (_, page) = app.get(paths::messages(&id)).await;
    assert_eq!(page["messages"][0]["metadata"], metadata);
    assert_eq!(page["messages"][0]["attachments"], json!([attachment]));
}

/// The path id is checked first: a request to a malformed URL hears about the URL, whatever
/// else is wrong with it.
async fn a_malformed_path_id_is_reported_before_body_and_header_errors(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let reply = app
        .call(Method::PATCH, paths::timeout("not-a-uuid"))
        .body("text/plain", "{}")
        .send()
        .await;
    reply.assert_error(StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
    assert_eq!(
        reply.body["details"]["field"], "sessionId",
        "{}",
        reply.text
    );
    let reply = app
        .call(Method::GET, paths::session("not-a-uuid"))
        .header("X-Debug", "maybe")
        .send()
        .await;
    assert_eq!(
        reply.body["details"]["field"], "sessionId",
        "{}",
        reply.text
    );
    let (status, err) = app
        .put(paths::agent("not-a-uuid"), json!({"name": 7}))
        .await;
    assert_error(status, &err, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
    assert_eq!(err["details"]["field"], "agentId", "{err}");
}
