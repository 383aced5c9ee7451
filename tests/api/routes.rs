//! The route table and the OpenAPI document describe the same API: every documented operation
//! is served, and every other method on a documented path is a 405 naming the documented ones.

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::backend_tests;
use crate::helpers::{Kind, TestApp};

backend_tests!(
    every_documented_operation_is_routed,
    other_methods_on_documented_paths_are_405_with_allow,
);

const METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];

/// Each documented path with a fresh UUID for every `{parameter}`, and its methods.
async fn documented(app: &TestApp) -> Vec<(String, BTreeSet<String>)> {
    let (status, doc) = app.get("/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    let paths = doc["paths"].as_object().expect("paths").clone();
    assert!(paths.len() >= 9, "{paths:?}");
    paths
        .into_iter()
        .map(|(template, item)| {
            let path = template
                .split('/')
                .map(|seg| match seg.starts_with('{') {
                    true => uuid::Uuid::new_v4().to_string(),
                    false => seg.to_owned(),
                })
                .collect::<Vec<_>>()
                .join("/");
            let methods = METHODS
                .iter()
                .filter(|m| item.get(**m).is_some())
                .map(|m| m.to_uppercase())
                .collect();
            (path, methods)
        })
        .collect()
}

async fn call(app: &TestApp, method: &str, path: &str) -> (StatusCode, Value, Option<String>) {
    let method = Method::from_bytes(method.as_bytes()).unwrap();
    // `/metrics` answers Prometheus text; everything else JSON (or an event stream).
    let reply = app
        .call(method, path)
        .json(json!({}))
        .allow_non_json()
        .send()
        .await;
    let allow = reply
        .headers
        .get("allow")
        .map(|v| v.to_str().unwrap().to_owned());
    (reply.status, reply.body, allow)
}

async fn every_documented_operation_is_routed(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let mut operations = 0;
    for (path, methods) in documented(&app).await {
        for method in &methods {
            let (status, body, _) = call(&app, method, &path).await;
            operations += 1;
            assert_ne!(
                status,
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path}: {body}"
            );
            assert_ne!(
                body["code"], "NOT_FOUND",
                "{method} {path} is not routed: {body}"
            );
        }
    }
    assert_eq!(operations, 34, "every operation of the API is documented");
}

async fn other_methods_on_documented_paths_are_405_with_allow(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    for (path, methods) in documented(&app).await {
        for method in METHODS.map(str::to_uppercase) {
            if methods.contains(&method) {
                continue;
            }
            let (status, body, allow) = call(&app, &method, &path).await;
            assert_eq!(
                status,
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path}: {body}"
            );
            assert_eq!(body["code"], "METHOD_NOT_ALLOWED");
            let allowed: BTreeSet<String> = allow
                .expect("an Allow header")
                .split(", ")
                .map(str::to_owned)
                .collect();
            assert_eq!(allowed, methods, "Allow of {path}");
        }
    }
}
