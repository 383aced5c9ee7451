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
    use std::net::TcpStream;
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
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
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
