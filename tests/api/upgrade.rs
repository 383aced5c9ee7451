//! Upgrading a database made by the previous release: its schema (the migrations up to
//! `2026-12-01-000006_list_indexes`, applied by diesel from the migration files) and a session
//! written in that schema's columns, then the current app started on it, which runs
//! `2026-12-01-000007_groups_lifecycle`.

use std::sync::Arc;

use diesel::backend::Backend;
use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection, RunQueryDsl, SqliteConnection};
use diesel_migrations::{FileBasedMigrations, MigrationHarness};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::backend_tests;
use crate::helpers::{event_types, paths, rfc3339, Kind, TestApp, TestDb, MINUTE, T0};

backend_tests!(
    a_session_of_the_previous_release_becomes_a_dm_and_keeps_working,
    the_upgrade_records_the_new_migration,
    the_event_log_written_before_the_upgrade_still_reads,
);

/// The migrations of the previous release, as diesel records their versions.
const PREVIOUS_RELEASE: [&str; 6] = [
    "20261125000001",
    "20261125000002",
    "20261126000003",
    "20261201000004",
    "20261201000005",
    "20261201000006",
];

/// What the previous release had stored: an agent, one session of one user with a token and a
/// message (which renewed the session), and the session's three events.
struct OldSession {
    agent: String,
    user: String,
    session: String,
    message: String,
    token: String,
    created_at: i64,
    message_at: i64,
}

impl OldSession {
    fn new() -> OldSession {
        let created_at = T0 - 10 * MINUTE;
        OldSession {
            agent: uuid::Uuid::new_v4().to_string(),
            user: uuid::Uuid::new_v4().to_string(),
            session: uuid::Uuid::new_v4().to_string(),
            message: uuid::Uuid::new_v4().to_string(),
            token: format!(
                "{}{}",
                agent_sessions::secret::SESSION_TOKEN_PREFIX,
                "0123456789abcdef".repeat(3)
            ),
            created_at,
            message_at: created_at + MINUTE,
        }
    }

    /// The rows, in the previous release's columns (one SQL text for both backends).
    fn insert_sql(&self) -> String {
        let OldSession {
            agent,
            user,
            session,
            message,
            created_at,
            message_at,
            ..
        } = self;
        let expires_at = message_at + 30 * MINUTE;
        let token_hash = agent_sessions::secret::digest(&self.token);
        let sources = r#"{"timeoutMinutes":"global","autoRenew":"global","maxDurationMinutes":"global","warningThresholdMinutes":"global"}"#;
        let created_payload = json!({
            "type": "session.created",
            "data": {"session": {
                "id": session,
                "agent_id": agent,
                "user_id": user,
                "status": "active",
                "metadata": {"channel": "legacy"},
                "config": {
                    "config": {
                        "timeoutMinutes": 30,
                        "autoRenew": true,
                        "maxDurationMinutes": 720,
                        "warningThresholdMinutes": 5
                    },
                    "sources": serde_json::from_str::<Value>(sources).unwrap(),
                },
                "created_at": created_at,
                "last_activity": created_at,
                "expires_at": created_at + 30 * MINUTE,
                "renewal_count": 0,
                "closed_at": null,
                "version": 1,
            }},
        });
        let message_payload = json!({
            "type": "message.created",
            "data": {"message": {
                "id": message,
                "session_id": session,
                "seq": 1,
                "author": {"user": user},
                "content": "written before the upgrade",
                "metadata": {},
                "attachments": [],
                "created_at": message_at,
            }},
        });
        let renewed_payload = json!({
            "type": "session.renewed",
            "data": {
                "expires_at": expires_at,
                "renewal_count": 1,
                "last_activity": message_at,
            },
        });
        format!(
            r#"
INSERT INTO agents (id, name, timeout_minutes, auto_renew, max_duration_minutes,
                    warning_threshold_minutes, created_at, updated_at)
VALUES ('{agent}', 'legacy agent', NULL, NULL, NULL, NULL, {created_at}, {created_at});
INSERT INTO sessions (id, agent_id, user_id, status, metadata, timeout_minutes, auto_renew,
                      max_duration_minutes, warning_threshold_minutes, config_sources,
                      created_at, last_activity, expires_at, renewal_count, closed_at, version)
VALUES ('{session}', '{agent}', '{user}', 'active', '{{"channel":"legacy"}}', 30, TRUE, 720, 5,
        '{sources}', {created_at}, {message_at}, {expires_at}, 1, NULL, 2);
INSERT INTO session_tokens (token_hash, session_id, user_id, agent_id, created_at)
VALUES ('{token_hash}', '{session}', '{user}', '{agent}', {created_at});
INSERT INTO messages (id, session_id, seq, author_id, is_agent, content, metadata, attachments,
                      created_at)
VALUES ('{message}', '{session}', 1, '{user}', FALSE, 'written before the upgrade', '{{}}', '[]',
        {message_at});
INSERT INTO session_events (session_id, seq, agent_id, agent_seq, event_type, payload, created_at)
VALUES ('{session}', 1, '{agent}', 1, 'session.created', '{created_payload}', {created_at}),
       ('{session}', 2, '{agent}', 2, 'message.created', '{message_payload}', {message_at}),
       ('{session}', 3, '{agent}', 3, 'session.renewed', '{renewed_payload}', {message_at});
INSERT INTO agent_feeds (agent_id, last_seq, purged_through) VALUES ('{agent}', 3, 0);
"#
        )
    }
}

/// Applies the previous release's migrations with diesel, one at a time from the migration
/// files, stopping after `2026-12-01-000006_list_indexes`.
fn migrate_to_the_previous_release<C, DB>(conn: &mut C, dir: &str)
where
    C: MigrationHarness<DB>,
    DB: Backend,
{
    let mut applied = Vec::new();
    while applied.len() < PREVIOUS_RELEASE.len() {
        let source = FileBasedMigrations::from_path(dir).expect("the migrations directory");
        let version = conn
            .run_next_migration(source)
            .expect("a migration of the previous release runs")
            .to_string();
        applied.push(version);
    }
    assert_eq!(applied, PREVIOUS_RELEASE, "applied in order");
}

/// A fresh database in the previous release's schema holding [`OldSession`]'s rows.
fn previous_release_database(kind: Kind, old: &OldSession) -> Arc<TestDb> {
    let db = kind.fresh_db();
    let sql = old.insert_sql();
    match kind {
        Kind::Sqlite => {
            let mut conn = SqliteConnection::establish(&db.url).expect("sqlite");
            migrate_to_the_previous_release(
                &mut conn,
                concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/sqlite"),
            );
            conn.batch_execute(&sql).expect("old rows inserted");
        }
        Kind::Postgres => {
            let mut conn = PgConnection::establish(&db.url).expect("postgres");
            migrate_to_the_previous_release(
                &mut conn,
                concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres"),
            );
            conn.batch_execute(&sql).expect("old rows inserted");
        }
    }
    db
}

#[derive(diesel::QueryableByName)]
struct Version {
    #[diesel(sql_type = diesel::sql_types::Text)]
    version: String,
}

/// The migration versions diesel has recorded in the database.
fn recorded_versions(kind: Kind, url: &str) -> Vec<String> {
    let query =
        diesel::sql_query("SELECT version FROM __diesel_schema_migrations ORDER BY version");
    let rows: Vec<Version> = match kind {
        Kind::Sqlite => query.load(&mut SqliteConnection::establish(url).expect("sqlite")),
        Kind::Postgres => query.load(&mut PgConnection::establish(url).expect("postgres")),
    }
    .expect("versions read");
    rows.into_iter().map(|v| v.version).collect()
}

async fn a_session_of_the_previous_release_becomes_a_dm_and_keeps_working(kind: Kind) {
    let old = OldSession::new();
    let db = previous_release_database(kind, &old);
    let app = TestApp::spawn_secured_on(db, |_| {}).await;
    let created_at = rfc3339(old.created_at);

    // The old token reads its session, now a dm of its two participants.
    let reply = app
        .call(Method::GET, paths::session(&old.session))
        .bearer(&old.token)
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let session = reply.body;
    assert_eq!(session["sessionId"], old.session);
    assert_eq!(session["agentId"], old.agent);
    assert_eq!(session["userId"], old.user);
    assert_eq!(session["createdAt"], created_at);
    assert_eq!(session["status"], "active");
    assert_eq!(session["type"], "dm");
    assert!(session["title"].is_null(), "{session}");
    assert_eq!(session["metadata"], json!({"channel": "legacy"}));
    assert_eq!(session["renewalCount"], 1);
    assert_eq!(ms_of(&session["expiresAt"]), old.message_at + 30 * MINUTE);
    assert_eq!(
        session["participants"],
        json!([
            {"id": old.agent, "role": "agent", "joinedAt": created_at},
            {"id": old.user, "role": "user", "joinedAt": created_at},
        ])
    );
    assert_eq!(session["state"], json!({"stage": "greeting"}));
    assert!(session.get("endReason").is_none(), "{session}");

    // Its message is there.
    let reply = app
        .call(Method::GET, paths::messages(&old.session))
        .bearer(&old.token)
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let messages = reply.body["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1, "{}", reply.body);
    assert_eq!(messages[0]["id"], old.message);
    assert_eq!(messages[0]["content"], "written before the upgrade");
    assert_eq!(messages[0]["authorId"], old.user);
    assert_eq!(messages[0]["isAgent"], false);
    assert_eq!(messages[0]["createdAt"], rfc3339(old.message_at));

    // The old token posts, as the session's user.
    let reply = app
        .call(Method::POST, paths::messages(&old.session))
        .bearer(&old.token)
        .json(json!({"content": "written after the upgrade"}))
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(reply.body["authorId"], old.user);
    assert_eq!(reply.body["isAgent"], false);
    assert_eq!(app.stored_messages().await, 2);

    // A new participant can be added; the session becomes a group.
    let newcomer = uuid::Uuid::new_v4().to_string();
    let (status, body) = app
        .post(
            paths::participants(&old.session),
            json!({"participants": [newcomer]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["type"], "group");
    assert_eq!(body["participants"][2]["id"], newcomer);
    assert_eq!(body["participants"][2]["joinedAt"], rfc3339(T0));
    let newcomer_token = body["participantTokens"][0]["sessionToken"]
        .as_str()
        .unwrap_or_else(|| panic!("the newcomer's token: {body}"))
        .to_owned();
    let reply = app
        .call(Method::POST, paths::messages(&old.session))
        .bearer(&newcomer_token)
        .json(json!({"content": "hello, I am new"}))
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(reply.body["authorId"], newcomer);

    // The session can be listed by its user and by its stage.
    let (status, page) = app
        .get(paths::sessions().query(format!("userId={}", old.user)))
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["total"], 1, "{page}");
    let (_, page) = app.get(paths::sessions().query("stage=greeting")).await;
    assert_eq!(page["total"], 1, "{page}");
}

async fn the_upgrade_records_the_new_migration(kind: Kind) {
    let old = OldSession::new();
    let db = previous_release_database(kind, &old);
    assert_eq!(recorded_versions(kind, &db.url), PREVIOUS_RELEASE);

    let app = TestApp::spawn_on(db, |_| {}).await;
    let mut expected: Vec<String> = PREVIOUS_RELEASE.iter().map(|v| v.to_string()).collect();
    expected.push("20261201000007".to_owned());
    assert_eq!(recorded_versions(kind, &app.db.url), expected);
    let (status, body) = app.get(paths::session(&old.session)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn the_event_log_written_before_the_upgrade_still_reads(kind: Kind) {
    let old = OldSession::new();
    let db = previous_release_database(kind, &old);
    let app = TestApp::spawn_on(db, |_| {}).await;

    let log = app.event_log(&old.session).await;
    assert_eq!(
        event_types(&log),
        ["session.created", "message.created", "session.renewed"]
    );
    assert_eq!(log[0]["data"]["sessionId"], old.session);
    assert_eq!(log[1]["data"]["id"], old.message);
    assert_eq!(log[1]["data"]["content"], "written before the upgrade");
    assert_eq!(
        log[2]["data"],
        json!({
            "expiresAt": rfc3339(old.message_at + 30 * MINUTE),
            "renewalCount": 1,
            "lastActivity": rfc3339(old.message_at),
        })
    );

    // New events continue the log (and the agent's feed) where the old ones stopped.
    app.clock.advance_minutes(1);
    let (status, body) = app.post_empty(paths::pause(&old.session)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let log = app.event_log(&old.session).await;
    assert_eq!(log.len(), 4, "{:?}", event_types(&log));
    assert_eq!(log[3]["type"], "session.paused");
    assert_eq!(log[3]["cursor"], 4);
    let (status, feed) = app
        .get(format!(
            "/api/agents/{}/watch?cursor=3&timeout=0",
            old.agent
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{feed}");
    assert_eq!(
        event_types(feed["events"].as_array().unwrap()),
        ["session.paused"]
    );
}

fn ms_of(value: &Value) -> i64 {
    crate::helpers::ms(value)
}
