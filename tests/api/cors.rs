//! CORS: off unless origins are configured; then only those origins get CORS headers, on
//! every answer (errors included), and preflights need no credential.

use agent_sessions::rate_limit::RateLimitSettings;
use reqwest::{Method, StatusCode};

use crate::backend_tests;
use crate::helpers::{paths, Kind, Reply, TestApp};

backend_tests!(
    without_configured_origins_there_are_no_cors_headers,
    a_preflight_from_an_allowed_origin_needs_no_credential,
    a_request_from_an_allowed_origin_gets_cors_headers,
    a_401_from_an_allowed_origin_is_readable_by_the_page,
    a_429_from_an_allowed_origin_exposes_retry_after,
    another_origin_gets_its_normal_answer_without_cors_headers,
);

const ORIGIN: &str = "https://chat.example.com";
const OTHER_ORIGIN: &str = "https://evil.example.net";

/// A secured app that allows [`ORIGIN`].
async fn app_allowing_origin(kind: Kind) -> TestApp {
    TestApp::spawn_secured_with(kind, |s| s.cors_origins = vec![ORIGIN.to_owned()]).await
}

/// A header as text, if present.
fn header<'a>(reply: &'a Reply, name: &str) -> Option<&'a str> {
    reply
        .headers
        .get(name)
        .map(|v| v.to_str().expect("ASCII header"))
}

/// The comma-separated values of a header, lower-cased.
fn listed(reply: &Reply, name: &str) -> Vec<String> {
    header(reply, name)
        .unwrap_or_else(|| panic!("no {name} header: {:?}", reply.headers))
        .split(',')
        .map(|v| v.trim().to_ascii_lowercase())
        .filter(|v| !v.is_empty())
        .collect()
}

fn assert_no_cors_headers(reply: &Reply) {
    let cors: Vec<_> = reply
        .headers
        .keys()
        .filter(|name| name.as_str().starts_with("access-control-"))
        .collect();
    assert!(
        cors.is_empty(),
        "unexpected CORS headers {cors:?} ({} {})",
        reply.status,
        reply.text
    );
}

/// A browser's preflight for a JSON POST with a bearer token, sent without a credential.
async fn preflight(app: &TestApp, origin: &str) -> Reply {
    app.call(Method::OPTIONS, paths::sessions())
        .without_credential()
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
        .allow_non_json()
        .send()
        .await
}

async fn list_from(app: &TestApp, origin: &str) -> Reply {
    app.call(Method::GET, paths::sessions())
        .header("origin", origin)
        .send()
        .await
}

async fn without_configured_origins_there_are_no_cors_headers(kind: Kind) {
    let app = TestApp::spawn_secured(kind).await;

    let list = list_from(&app, ORIGIN).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    assert_no_cors_headers(&list);

    let preflight = preflight(&app, ORIGIN).await;
    assert_no_cors_headers(&preflight);
}

async fn a_preflight_from_an_allowed_origin_needs_no_credential(kind: Kind) {
    let app = app_allowing_origin(kind).await;
    let reply = preflight(&app, ORIGIN).await;

    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(header(&reply, "access-control-allow-origin"), Some(ORIGIN));
    let methods = listed(&reply, "access-control-allow-methods");
    assert!(methods.contains(&"post".to_owned()), "{methods:?}");
    let headers = listed(&reply, "access-control-allow-headers");
    for wanted in ["authorization", "content-type"] {
        assert!(headers.contains(&wanted.to_owned()), "{headers:?}");
    }
}

async fn a_request_from_an_allowed_origin_gets_cors_headers(kind: Kind) {
    let app = app_allowing_origin(kind).await;
    let reply = list_from(&app, ORIGIN).await;

    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(header(&reply, "access-control-allow-origin"), Some(ORIGIN));
    let exposed = listed(&reply, "access-control-expose-headers");
    for wanted in [
        "ratelimit-limit",
        "ratelimit-remaining",
        "ratelimit-reset",
        "retry-after",
    ] {
        assert!(exposed.contains(&wanted.to_owned()), "{exposed:?}");
    }
}

async fn a_401_from_an_allowed_origin_is_readable_by_the_page(kind: Kind) {
    let app = app_allowing_origin(kind).await;
    let reply = app
        .call(Method::GET, paths::sessions())
        .without_credential()
        .header("origin", ORIGIN)
        .send()
        .await;

    reply.assert_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    assert_eq!(header(&reply, "access-control-allow-origin"), Some(ORIGIN));
    let exposed = listed(&reply, "access-control-expose-headers");
    assert!(
        exposed.contains(&"www-authenticate".to_owned()),
        "{exposed:?}"
    );
}

async fn a_429_from_an_allowed_origin_exposes_retry_after(kind: Kind) {
    let app = TestApp::spawn_secured_with(kind, |s| {
        s.cors_origins = vec![ORIGIN.to_owned()];
        s.rate_limits = RateLimitSettings {
            session_per_minute: 1,
            user_per_hour: 0,
            agent_per_hour: 0,
        };
    })
    .await;
    let id = app.session().await;
    let read = |origin| {
        app.call(Method::GET, paths::session(&id))
            .header("origin", origin)
            .send()
    };
    assert_eq!(read(ORIGIN).await.status, StatusCode::OK);

    let refused = read(ORIGIN).await;
    refused.assert_error(StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED");
    assert!(header(&refused, "retry-after").is_some());
    assert_eq!(
        header(&refused, "access-control-allow-origin"),
        Some(ORIGIN)
    );
    let exposed = listed(&refused, "access-control-expose-headers");
    assert!(exposed.contains(&"retry-after".to_owned()), "{exposed:?}");
}

async fn another_origin_gets_its_normal_answer_without_cors_headers(kind: Kind) {
    let app = app_allowing_origin(kind).await;

    let list = list_from(&app, OTHER_ORIGIN).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    assert!(list.body["sessions"].is_array(), "{}", list.body);
    assert!(
        header(&list, "access-control-allow-origin").is_none(),
        "{:?}",
        list.headers
    );

    let denied = app
        .call(Method::GET, paths::sessions())
        .without_credential()
        .header("origin", OTHER_ORIGIN)
        .send()
        .await;
    denied.assert_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    assert!(header(&denied, "access-control-allow-origin").is_none());
}
