//! `/chat`: the web chat page's files and its served configuration. The page itself is tested
//! in a browser by `e2e/run.sh`.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::backend_tests;
use crate::helpers::{Kind, TestApp};

backend_tests!(
    the_page_and_its_files_are_served_without_a_credential,
    the_served_config_is_empty_unless_configured,
    the_served_config_names_the_agent_and_its_publishable_key,
);

async fn the_page_and_its_files_are_served_without_a_credential(kind: Kind) {
    let app = TestApp::spawn_secured(kind).await;
    for (path, content_type, needle) in [
        (
            "/chat",
            "text/html",
            r#"<script src="/chat/chat.js" defer></script>"#,
        ),
        ("/chat/", "text/html", r#"aria-live="polite""#),
        ("/chat/chat.js", "text/javascript", "new EventSource("),
        ("/chat/chat.css", "text/css", ".messages"),
    ] {
        let response = app
            .call(Method::GET, path)
            .without_credential()
            .allow_non_json()
            .open()
            .await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let headers = response.headers().clone();
        assert!(
            headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with(content_type),
            "{path}: {headers:?}"
        );
        assert_eq!(headers["x-content-type-options"], "nosniff");
        if content_type == "text/html" {
            let csp = headers["content-security-policy"].to_str().unwrap();
            assert!(csp.contains("script-src 'self'"), "{csp}");
            assert!(csp.contains("connect-src 'self'"), "{csp}");
            assert_eq!(headers["referrer-policy"], "no-referrer");
        }
        let body = response.text().await.unwrap();
        assert!(body.contains(needle), "{path} holds {needle}");
    }
}

async fn the_served_config_is_empty_unless_configured(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let (status, body) = app.get("/chat/config.json").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"agentId": null, "key": null}));
}

async fn the_served_config_names_the_agent_and_its_publishable_key(kind: Kind) {
    let agent = uuid::Uuid::new_v4();
    let app = TestApp::spawn_with(kind, |s| {
        s.chat.agent_id = Some(agent.to_string().parse().unwrap());
        s.chat.key = Some("ask_publishable_example".to_owned());
    })
    .await;
    let reply = app
        .call(Method::GET, "/chat/config.json")
        .without_credential()
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.body,
        json!({"agentId": agent.to_string(), "key": "ask_publishable_example"})
    );
}
