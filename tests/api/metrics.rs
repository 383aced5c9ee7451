use reqwest::{Method, StatusCode};

use crate::backend_tests;
use crate::helpers::{paths, Kind, TestApp, MINUTE};

backend_tests!(
    metrics_count_requests_sessions_renewals_and_expiries,
    metrics_need_the_metrics_read_scope_on_an_unbound_key,
);

/// The value of the sample `name{labels}` (labels exactly as rendered, sorted by name), or of
/// the unlabelled `name`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

async fn scrape(app: &TestApp) -> String {
    let reply = app
        .call(Method::GET, "/metrics")
        .allow_non_json()
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let ct = reply.headers["content-type"].to_str().unwrap();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    reply.text
}

async fn metrics_count_requests_sessions_renewals_and_expiries(kind: Kind) {
    let app = TestApp::spawn(kind).await;
    let fresh = scrape(&app).await;
    assert_eq!(sample(&fresh, "agent_sessions_active_sessions"), Some(0.0));
    assert!(
        sample(&fresh, "agent_sessions_db_pool_connections").unwrap() >= 1.0,
        "{fresh}"
    );

    let first = app.session().await;
    app.session().await;
    // A minute later, the message extends its session's expiry: a renewal.
    app.clock.advance_ms(MINUTE);
    app.message(&first, "hello").await;
    let (status, _) = app.get(paths::session("not-a-uuid")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // Any token is a method to HTTP; unknown ones must not each become a series.
    let odd = Method::from_bytes(b"FOO1").unwrap();
    app.call(odd, "/livez").allow_non_json().send().await;

    let text = scrape(&app).await;
    let created = r#"agent_sessions_http_requests_total{method="POST",route="/api/messaging/sessions",status="201"}"#;
    assert_eq!(sample(&text, created), Some(2.0), "{text}");
    // One series per route pattern, not per id.
    let bad = r#"agent_sessions_http_requests_total{method="GET",route="/api/messaging/sessions/{sessionId}",status="400"}"#;
    assert_eq!(sample(&text, bad), Some(1.0), "{text}");
    assert!(!text.contains(&first), "ids never become labels");
    assert!(
        !text.contains("FOO1") && text.contains(r#"method="OTHER""#),
        "{text}"
    );
    let latency = r#"agent_sessions_http_request_duration_seconds_count{method="POST",route="/api/messaging/sessions/{sessionId}/messages"}"#;
    assert_eq!(sample(&text, latency), Some(1.0), "{text}");
    assert_eq!(sample(&text, "agent_sessions_active_sessions"), Some(2.0));
    // The message renewed its session (auto-renew is on by default).
    assert_eq!(
        sample(&text, "agent_sessions_session_renewals_total"),
        Some(1.0)
    );
    assert_eq!(sample(&text, "agent_sessions_open_streams"), Some(0.0));
    assert!(
        text.contains("agent_sessions_rate_limited_total 0"),
        "{text}"
    );
    if kind == Kind::Sqlite {
        // Agent, two sessions and a message went through the group commit.
        let batches = sample(&text, "agent_sessions_write_commit_batch_size_sum").unwrap();
        assert!(batches >= 4.0, "{text}");
    }

    // Past the 30-minute default timeout the reaper expires both.
    app.clock.advance_ms(31 * MINUTE);
    let report = app.reap().await;
    assert_eq!(report.expired.len(), 2);
    let text = scrape(&app).await;
    assert_eq!(
        sample(&text, "agent_sessions_session_expiries_total"),
        Some(2.0)
    );
    assert_eq!(sample(&text, "agent_sessions_active_sessions"), Some(0.0));
    assert!(
        sample(&text, "agent_sessions_reaper_pass_duration_seconds_count").unwrap() >= 1.0,
        "{text}"
    );
}

async fn metrics_need_the_metrics_read_scope_on_an_unbound_key(kind: Kind) {
    let app = TestApp::spawn_secured(kind).await;
    let agent = app.agent().await;
    let without = app.create_key(&["sessions:read"], None).await;
    let bound = app.create_key(&["metrics:read"], Some(&agent)).await;
    let reader = app.create_key(&["metrics:read"], None).await;
    let status = |reply: crate::helpers::Reply| reply.status;
    let anonymous = app
        .call(Method::GET, "/metrics")
        .without_credential()
        .allow_non_json()
        .send()
        .await;
    assert_eq!(status(anonymous), StatusCode::UNAUTHORIZED);
    for (key, expected) in [
        (&without, StatusCode::FORBIDDEN),
        (&bound, StatusCode::FORBIDDEN),
        (&reader, StatusCode::OK),
    ] {
        let reply = app
            .call(Method::GET, "/metrics")
            .bearer(key)
            .allow_non_json()
            .send()
            .await;
        assert_eq!(reply.status, expected, "{}", reply.text);
    }
}
