//! `examples/echo_agent.rs`, run as a real process against the real server: it hears user
//! messages through its agent's feed and answers them, and a restart misses nothing and
//! answers nothing twice.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::backend_tests;
use crate::helpers::{id_of, paths, Kind, TestApp};

backend_tests!(the_echo_agent_answers_and_resumes_after_a_restart);

/// The example's binary, built by `cargo test` next to this test binary.
fn example() -> PathBuf {
    let mut path = std::env::current_exe().expect("the test binary");
    path.pop(); // deps
    path.pop(); // debug
    path.join("examples").join("echo_agent")
}

/// A running echo agent, killed when dropped.
struct EchoAgent(Child);

impl EchoAgent {
    fn start(app: &TestApp, agent: &str, key: &str, cursor_file: &std::path::Path) -> EchoAgent {
        let child = Command::new(example())
            .env("AGENT_SESSIONS_URL", app.address())
            .env("AGENT_ID", agent)
            .env("AGENT_KEY", key)
            .env("ECHO_CURSOR_FILE", cursor_file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the echo_agent example is built by cargo test");
        EchoAgent(child)
    }
}

impl Drop for EchoAgent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The session's messages, oldest first.
async fn messages(app: &TestApp, session: &str) -> Vec<Value> {
    let (status, page) = app.get(paths::messages(session).query("limit=100")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let mut list = page["messages"].as_array().unwrap().clone();
    list.reverse();
    list
}

/// Waits (up to 10 s) until the session holds `count` agent replies; returns them.
async fn replies(app: &TestApp, session: &str, count: usize) -> Vec<String> {
    let started = Instant::now();
    loop {
        let replies: Vec<String> = messages(app, session)
            .await
            .iter()
            .filter(|m| m["isAgent"] == true)
            .map(|m| m["content"].as_str().unwrap().to_owned())
            .collect();
        if replies.len() >= count || started.elapsed() > Duration::from_secs(10) {
            return replies;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn the_echo_agent_answers_and_resumes_after_a_restart(kind: Kind) {
    let app = TestApp::spawn_secured(kind).await;
    let agent = app.agent().await;
    let key = app
        .create_key(&["sessions:read", "sessions:write"], Some(&agent))
        .await;
    let created = app.session_with(&agent, json!({})).await;
    let session = id_of(&created);
    let token = created["sessionToken"].as_str().unwrap().to_owned();
    let send = |content: &'static str| {
        app.call(Method::POST, paths::messages(&session))
            .bearer(&token)
            .json(json!({ "content": content }))
            .send()
    };
    let dir = tempfile::tempdir().unwrap();
    let cursor_file = dir.path().join("cursor");

    let echo = EchoAgent::start(&app, &agent, &key, &cursor_file);
    assert_eq!(send("hello").await.status, StatusCode::CREATED);
    assert_eq!(replies(&app, &session, 1).await, ["Echo: hello"]);

    // Down for a while: the message sent meanwhile is answered after the restart, the first
    // one is not answered again.
    drop(echo);
    assert_eq!(send("are you there?").await.status, StatusCode::CREATED);
    let _echo = EchoAgent::start(&app, &agent, &key, &cursor_file);
    assert_eq!(
        replies(&app, &session, 2).await,
        ["Echo: hello", "Echo: are you there?"]
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let all: Vec<String> = messages(&app, &session)
        .await
        .iter()
        .map(|m| m["content"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        all,
        [
            "hello",
            "Echo: hello",
            "are you there?",
            "Echo: are you there?"
        ],
        "every message answered once, in order"
    );
}
