use reqwest::{Method, StatusCode};

use crate::backend_tests;
use crate::helpers::{Kind, TestApp};

backend_tests!(
    openapi_json_is_the_document,
    docs_page_is_served,
    swagger_ui_assets_are_served,
);

async fn openapi_json_is_the_document(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let (status, doc) = app.get("/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        doc,
        serde_json::to_value(agent_sessions::openapi::document()).unwrap()
    );
}

async fn docs_page_is_served(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let page = app.call(Method::GET, "/docs").allow_non_json().send().await;
    assert_eq!(page.status, StatusCode::OK, "/docs redirects to the page");
    assert!(page.text.contains("swagger-ui"), "{}", page.text);
}

async fn swagger_ui_assets_are_served(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    for asset in [
        "swagger-ui-bundle.js",
        "swagger-ui.css",
        "swagger-initializer.js",
    ] {
        let resp = app
            .call(Method::GET, format!("/docs/{asset}"))
            .allow_non_json()
            .send()
            .await;
        assert_eq!(
            resp.status,
            StatusCode::OK,
            "{asset} is served by the binary"
        );
    }
}
