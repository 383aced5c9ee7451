//! A complete agent runtime, small enough to read at once: it follows its agent's feed with a
//! key bound to the agent and answers every user message through the messages API.
//!
//! ```sh
//! KEY=$(agent-sessions keys create --scope sessions:read,sessions:write --agent $AGENT_ID --name echo)
//! AGENT_SESSIONS_URL=http://127.0.0.1:3000 AGENT_ID=$AGENT_ID AGENT_KEY=$KEY \
//!     cargo run --example echo_agent
//! ```
//!
//! - It long-polls `GET /api/agents/{id}/watch` (no polling loop of its own: the server
//!   answers when something happens) and keeps its cursor in a file (`ECHO_CURSOR_FILE`,
//!   default `echo_agent.cursor`), so a restart resumes where it stopped and misses nothing.
//! - Each reply is posted with `Idempotency-Key: echo-<message id>`: a message answered just
//!   before a crash is not answered twice after the restart.
//! - The key is bound to the agent, so the server writes every reply as the agent
//!   (`isAgent: true`); no `authorId` is needed. In the open loopback mode (no key), set
//!   `AGENT_KEY` empty and the reply names the agent itself.

use std::time::Duration;

use serde_json::{json, Value};

struct Agent {
    http: reqwest::Client,
    base: String,
    id: String,
    key: Option<String>,
}

impl Agent {
    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.base));
        match &self.key {
            Some(key) => request.bearer_auth(key),
            None => request,
        }
    }

    /// The events after `cursor` (waiting up to 25 s for one), and the cursor to pass next.
    async fn next_events(&self, cursor: i64) -> Result<(Vec<Value>, i64), reqwest::Error> {
        let path = format!(
            "/api/agents/{}/watch?cursor={cursor}&timeout=25000",
            self.id
        );
        let page: Value = self
            .request(reqwest::Method::GET, &path)
            .timeout(Duration::from_secs(40))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let events = page["events"].as_array().cloned().unwrap_or_default();
        Ok((events, page["cursor"].as_i64().unwrap_or(cursor)))
    }

    /// Answers a user's message; a session that is over (410) or gone (404) is skipped.
    async fn answer(&self, event: &Value) -> Result<(), reqwest::Error> {
        let message = &event["data"];
        if event["type"] != "message.created" || message["isAgent"] == true {
            return Ok(());
        }
        let session = event["sessionId"].as_str().unwrap_or_default();
        let content = message["content"].as_str().unwrap_or_default();
        let mut reply = json!({ "content": format!("Echo: {content}") });
        if self.key.is_none() {
            reply["authorId"] = json!(self.id);
        }
        let status = self
            .request(
                reqwest::Method::POST,
                &format!("/api/messaging/sessions/{session}/messages"),
            )
            .header(
                "Idempotency-Key",
                format!("echo-{}", message["id"].as_str().unwrap_or("")),
            )
            .json(&reply)
            .send()
            .await?
            .status();
        if !status.is_success() {
            eprintln!("echo_agent: session {session} answered {status}; skipped");
        }
        Ok(())
    }
}

/// Writes the cursor to a temporary file and renames it over the old one: a crash leaves the
/// old cursor or the new one, never half of one.
fn save_cursor(path: &str, cursor: i64) -> std::io::Result<()> {
    let temporary = format!("{path}.tmp");
    std::fs::write(&temporary, cursor.to_string())?;
    std::fs::rename(temporary, path)
}

#[tokio::main]
async fn main() {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let agent = Agent {
        http: reqwest::Client::new(),
        base: env("AGENT_SESSIONS_URL").unwrap_or_else(|| "http://127.0.0.1:3000".to_owned()),
        id: env("AGENT_ID").expect("AGENT_ID: the agent to answer for"),
        key: env("AGENT_KEY"),
    };
    let cursor_file = env("ECHO_CURSOR_FILE").unwrap_or_else(|| "echo_agent.cursor".to_owned());
    let mut cursor: i64 = std::fs::read_to_string(&cursor_file)
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(0);
    eprintln!(
        "echo_agent: following agent {} from cursor {cursor}",
        agent.id
    );
    loop {
        match agent.next_events(cursor).await {
            Ok((events, next)) => {
                for event in &events {
                    if let Err(e) = agent.answer(event).await {
                        eprintln!("echo_agent: cannot answer: {e}; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        break;
                    }
                    // Answered: remember it, so a restart goes on from here.
                    cursor = event["cursor"].as_i64().unwrap_or(next);
                    if let Err(e) = save_cursor(&cursor_file, cursor) {
                        eprintln!("echo_agent: cannot save the cursor: {e}");
                    }
                }
                if events.is_empty() {
                    cursor = next;
                }
            }
            Err(e) => {
                eprintln!("echo_agent: {e}; retrying in 1 s");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}
