//! The binary: configuration errors stop start-up naming the key; `openapi` prints the document.

use std::process::Command;

fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_agent-sessions"));
    cmd.env_remove("DATABASE_URL")
        .env_remove("AGENT_SESSIONS_CONFIG")
        .current_dir(env!("CARGO_TARGET_TMPDIR"));
    cmd
}

#[test]
fn invalid_environment_value_names_the_key() {
    let out = bin()
        .arg("serve")
        .env("AGENT_SESSIONS_TIMEOUT_MINUTES", "2")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("AGENT_SESSIONS_TIMEOUT_MINUTES"),
        "{stderr}"
    );
}

#[test]
fn invalid_config_file_key_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("agent-sessions.toml");
    std::fs::write(&file, "reaper_interval_secs = \"soon\"\n").unwrap();
    let out = bin()
        .args(["serve", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("reaper_interval_secs"), "{stderr}");
}

#[test]
fn invalid_flag_is_named() {
    let out = bin().args(["serve", "--bind", "nowhere"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--bind"), "{stderr}");
}

#[test]
fn migrate_creates_an_sqlite_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("nested/dir/sessions.db");
    let out = bin()
        .arg("migrate")
        .env("DATABASE_URL", &db)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(db.exists());
}

#[test]
fn openapi_prints_the_document() {
    let out = bin().arg("openapi").output().unwrap();
    assert!(out.status.success());
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["info"]["title"], "agent-sessions");
    for path in [
        "/api/messaging/sessions",
        "/api/messaging/sessions/{sessionId}",
        "/api/messaging/sessions/{sessionId}/renew",
        "/api/messaging/sessions/{sessionId}/heartbeat",
        "/api/messaging/sessions/{sessionId}/timeout",
        "/api/messaging/sessions/health",
        "/api/agents/{agentId}",
    ] {
        assert!(doc["paths"].get(path).is_some(), "missing {path}");
    }
}

#[test]
fn serve_stops_cleanly_on_sigterm() {
    use std::io::Read;
    use std::time::{Duration, Instant};

    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = bin()
        .arg("serve")
        .env("DATABASE_URL", dir.path().join("s.db"))
        .env("AGENT_SESSIONS_BIND", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    // Serving, not only listening: the signal handlers are installed once the server runs.
    while !answers_http(port) {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "server did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "exit status {exit:?}");
    let mut log = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert!(log.contains("reaper stopped"), "{log}");
}

/// Whether something on `port` answers an HTTP request.
fn answers_http(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let request = "GET /openapi.json HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    let mut answer = [0u8; 12];
    stream.write_all(request.as_bytes()).is_ok()
        && stream.read_exact(&mut answer).is_ok()
        && answer.starts_with(b"HTTP/1.1")
}

/// Sends requests to a running server (from any thread).
struct Probe {
    port: u16,
}

impl Probe {
    /// One HTTP/1.1 request; the status and the body.
    fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> (u16, String) {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n",
            body.len()
        );
        if !body.is_empty() {
            req.push_str("Content-Type: application/json\r\n");
        }
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        req.push_str(body);
        stream.write_all(req.as_bytes()).unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        let status = answer[9..12].parse().unwrap();
        let body = answer
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        (status, body)
    }
}

/// A server process on a free port, stopped (SIGTERM) when dropped.
struct Server {
    child: std::process::Child,
    port: u16,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Server {
    /// A handle on an already running server, to send requests from another thread; it is
    /// not stopped when dropped.
    fn probe(port: u16) -> Probe {
        Probe { port }
    }

    /// Starts `serve` with the environment `env` and waits until it accepts connections.
    fn start(db: &std::path::Path, env: &[(&str, &str)]) -> Server {
        let port = free_port();
        let mut cmd = bin();
        cmd.arg("serve")
            .env("DATABASE_URL", db)
            .env("AGENT_SESSIONS_BIND", format!("127.0.0.1:{port}"))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().unwrap();
        let started = std::time::Instant::now();
        while !answers_http(port) {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(20),
                "server did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Server { child, port }
    }

    /// One HTTP/1.1 request; the status and the body.
    fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> (u16, String) {
        Self::probe(self.port).request(method, path, headers, body)
    }

    /// Stops the server (SIGTERM) and returns everything it printed.
    fn stop(mut self) -> String {
        use std::io::Read;
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        self.child.wait().unwrap();
        let mut out = String::new();
        self.child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        self.child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        out
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

/// `agent-sessions keys ...` on the database `db`; stdout and stderr.
fn keys_cmd(db: &std::path::Path, args: &[&str]) -> (String, String) {
    let out = bin()
        .arg("keys")
        .args(args)
        .env("DATABASE_URL", db)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "keys {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Polls `check` for up to 3 s (a running server reloads keys every 0.5 s).
fn eventually(mut check: impl FnMut() -> bool) -> bool {
    let started = std::time::Instant::now();
    while started.elapsed() < std::time::Duration::from_secs(3) {
        if check() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    false
}

#[test]
fn keys_created_listed_and_revoked_through_the_cli_act_on_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("k.db");
    let server = Server::start(&db, &[]);
    let agents = "/api/agents";
    assert_eq!(
        server.request("GET", agents, &[], "").0,
        200,
        "open before any key"
    );

    let (stdout, stderr) = keys_cmd(
        &db,
        &[
            "create",
            "--scope",
            "agents:manage",
            "--scope",
            "sessions:read,sessions:health",
            "--name",
            "ops",
        ],
    );
    let key = stdout.trim().to_owned();
    assert!(key.starts_with("ask_") && key.len() >= 36, "{stdout}");
    assert!(stderr.contains("not shown again"), "{stderr}");
    let bearer = format!("Bearer {key}");
    assert_eq!(
        server
            .request("GET", agents, &[("Authorization", &bearer)], "")
            .0,
        200
    );
    assert!(
        eventually(|| server.request("GET", agents, &[], "").0 == 401),
        "once a key exists, a request without credentials is refused"
    );

    let (list, _) = keys_cmd(&db, &["list"]);
    assert!(!list.contains(&key), "the secret is never listed: {list}");
    let line = list
        .lines()
        .find(|l| l.contains("ops"))
        .expect("the key is listed");
    assert!(line.contains("active"), "{line}");
    assert!(
        line.contains("sessions:read,sessions:health,agents:manage"),
        "{line}"
    );
    let id = line.split_whitespace().next().unwrap().to_owned();

    keys_cmd(&db, &["revoke", &id]);
    assert!(
        eventually(|| server
            .request("GET", agents, &[("Authorization", &bearer)], "")
            .0
            == 401),
        "a revoked key is refused within a second"
    );
    let (list, _) = keys_cmd(&db, &["list"]);
    assert!(
        list.lines()
            .any(|l| l.starts_with(&id) && l.contains("revoked")),
        "{list}"
    );
    server.stop();
}

#[test]
fn keys_create_refuses_an_unknown_scope() {
    let dir = tempfile::tempdir().unwrap();
    let out = bin()
        .args(["keys", "create", "--scope", "sessions:admin"])
        .env("DATABASE_URL", dir.path().join("k.db"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("sessions:admin"), "{stderr}");
}

#[test]
fn serve_refuses_a_public_bind_without_keys() {
    let dir = tempfile::tempdir().unwrap();
    let out = bin()
        .args(["serve", "--bind", &format!("0.0.0.0:{}", free_port())])
        .env("DATABASE_URL", dir.path().join("p.db"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--insecure-no-auth"), "{stderr}");
}

/// Starts `serve` on 0.0.0.0 with extra arguments and environment; true if it came up.
fn serves_publicly(args: &[&str], env: &[(&str, &str)]) -> bool {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut cmd = bin();
    cmd.arg("serve")
        .args(args)
        .args(["--bind", &format!("0.0.0.0:{port}")])
        .env("DATABASE_URL", dir.path().join("p.db"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let up = eventually(|| answers_http(port));
    let _ = child.kill();
    let _ = child.wait();
    up
}

#[test]
fn serve_on_a_public_bind_with_insecure_no_auth_or_a_key() {
    assert!(serves_publicly(&["--insecure-no-auth"], &[]));
    assert!(serves_publicly(
        &[],
        &[("AGENT_SESSIONS_API_KEY", "0123456789abcdef0123456789abcdef")]
    ));
}

#[test]
fn the_open_loopback_mode_warns_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("o.db"), &[("RUST_LOG", "warn")]);
    assert_eq!(server.request("GET", "/api/agents", &[], "").0, 200);
    let log = server.stop();
    assert!(log.contains("no API key configured"), "{log}");
    // Not a terminal: plain text, no colour escape codes.
    assert!(!log.contains('\u{1b}'), "{log:?}");
}

#[test]
fn keys_and_tokens_never_reach_the_logs() {
    for format in ["text", "json"] {
        let dir = tempfile::tempdir().unwrap();
        let key = "log-capture-key-0123456789abcdef0123";
        let server = Server::start(
            &dir.path().join("l.db"),
            &[
                ("AGENT_SESSIONS_API_KEY", key),
                ("AGENT_SESSIONS_LOG_FORMAT", format),
                ("RUST_LOG", "trace"),
            ],
        );
        let bearer = format!("Bearer {key}");
        let auth = [("Authorization", bearer.as_str())];
        let agent = "3c90c3cc-0d44-4b50-8888-8dd25736052a";
        let (status, _) = server.request("PUT", &format!("/api/agents/{agent}"), &auth, "{}");
        assert_eq!(status, 201);
        let body =
            format!(r#"{{"agentId":"{agent}","userId":"8b1a3c1e-5f5e-4a57-9b0a-2f7e1c2d3e4f"}}"#);
        let (status, created) = server.request(
            "POST",
            "/api/messaging/sessions",
            &[("X-API-KEY", key)],
            &body,
        );
        assert_eq!(status, 201, "{created}");
        let created: serde_json::Value = serde_json::from_str(&created).unwrap();
        let token = created["sessionToken"].as_str().unwrap().to_owned();
        let session = created["sessionId"].as_str().unwrap().to_owned();
        let token_auth = format!("Bearer {token}");
        let path = format!("/api/messaging/sessions/{session}/messages");
        let (status, _) = server.request(
            "POST",
            &path,
            &[("Authorization", &token_auth)],
            r#"{"content":"hi"}"#,
        );
        assert_eq!(status, 201);
        // The token in a URL, as a browser's EventSource sends it.
        let watch =
            format!("/api/messaging/sessions/{session}/watch?timeout=0&access_token={token}");
        assert_eq!(server.request("GET", &watch, &[], "").0, 200);
        // Refused credentials: a wrong key, the token outside its session, a near miss.
        let wrong = format!("Bearer {key}x");
        assert_eq!(
            server
                .request("GET", "/api/agents", &[("Authorization", &wrong)], "")
                .0,
            401
        );
        assert_eq!(
            server
                .request("GET", "/api/agents", &[("Authorization", &token_auth)], "")
                .0,
            403
        );
        let (status, refused) = server.request(
            "GET",
            "/api/agents",
            &[("X-API-KEY", &format!("{token}x"))],
            "",
        );
        assert_eq!(status, 401);
        assert!(!refused.contains(&token), "{refused}");
        let log = server.stop();
        assert!(log.contains("handled"), "the log was captured: {log}");
        let secret_part = &token[4..];
        assert!(!log.contains(key), "the key leaked into the {format} log");
        assert!(
            !log.contains(secret_part),
            "a token leaked into the {format} log"
        );
    }
}

#[test]
fn sigterm_answers_waiting_long_polls_and_ends_streams_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("w.db"), &[]);
    let agent = "3c90c3cc-0d44-4b50-8888-8dd25736052a";
    assert_eq!(
        server
            .request("PUT", &format!("/api/agents/{agent}"), &[], "{}")
            .0,
        201
    );
    let body =
        format!(r#"{{"agentId":"{agent}","userId":"8b1a3c1e-5f5e-4a57-9b0a-2f7e1c2d3e4f"}}"#);
    let (_, created) = server.request("POST", "/api/messaging/sessions", &[], &body);
    let created: serde_json::Value = serde_json::from_str(&created).unwrap();
    let session = format!(
        "/api/messaging/sessions/{}",
        created["sessionId"].as_str().unwrap()
    );
    let port = server.port;
    let waiting: Vec<_> = [
        format!("{session}/watch?cursor=1&timeout=60000"),
        format!("{session}/events?cursor=1"),
    ]
    .into_iter()
    .map(|path| std::thread::spawn(move || Server::probe(port).request("GET", &path, &[], "")))
    .collect();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let started = std::time::Instant::now();
    let log = server.stop();
    let answers: Vec<(u16, String)> = waiting.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "a long-poll or a stream held the shutdown: {:?}",
        started.elapsed()
    );
    assert_eq!(answers[0].0, 200, "{}", answers[0].1);
    assert!(answers[0].1.contains(r#""events":[]"#), "{}", answers[0].1);
    assert_eq!(
        answers[1].0, 200,
        "the stream ended cleanly: {}",
        answers[1].1
    );
    assert!(log.contains("reaper stopped"), "{log}");
}

#[test]
fn serve_refuses_a_chat_key_that_is_more_than_publishable() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("chat.db");
    let agent = "3c90c3cc-0d44-4b50-8888-8dd25736052a";
    let (wide, _) = keys_cmd(
        &db,
        &[
            "create",
            "--scope",
            "sessions:create,sessions:read",
            "--agent",
            agent,
        ],
    );
    let out = bin()
        .args(["serve", "--bind", &format!("127.0.0.1:{}", free_port())])
        .env("DATABASE_URL", &db)
        .env("AGENT_SESSIONS_CHAT_AGENT_ID", agent)
        .env("AGENT_SESSIONS_CHAT_KEY", wide.trim())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("publishable"), "{stderr}");
    assert!(
        !stderr.contains(wide.trim()),
        "the key is not echoed: {stderr}"
    );
}
