//! Rows as stored, and the conversions between rows and domain types. A row that cannot be
//! read back into its domain type (an unknown status, malformed JSON, a bad id) is a
//! `DeserializationError`, never a silent default.

use diesel::prelude::*;
use diesel::result::Error as DieselError;
use serde_json::Value;

use super::schema::{
    agents, api_keys, idempotency_outcomes, messages, session_events, session_participants,
    session_tokens, sessions,
};
use crate::domain::{
    Agent, AgentId, ApiKey, Attachment, Author, ConversationState, Event, EventKind, Member,
    Message, MessageId, Scopes, Session, SessionId, SessionStatus, UserId,
};
use crate::timeout::{ConfigSources, EffectiveConfig, PartialTimeoutConfig, TimeoutConfig};

/// A stored value that does not read back as its domain type.
#[derive(Debug, thiserror::Error)]
#[error("{table} row {id}: bad {column}: {reason}")]
pub struct CorruptRow {
    table: &'static str,
    id: String,
    column: &'static str,
    reason: String,
}

fn corrupt(
    table: &'static str,
    id: &str,
    column: &'static str,
    reason: impl ToString,
) -> DieselError {
    DieselError::DeserializationError(Box::new(CorruptRow {
        table,
        id: id.to_owned(),
        column,
        reason: reason.to_string(),
    }))
}

/// Reads one column of a row back into its domain type.
pub(crate) fn column<T, E: ToString>(
    table: &'static str,
    id: &str,
    name: &'static str,
    parsed: Result<T, E>,
) -> QueryResult<T> {
    parsed.map_err(|e| corrupt(table, id, name, e))
}

/// Writes a JSON value for a text column; a failure is an error, never an empty string.
pub fn json_text<T: serde::Serialize>(value: &T) -> QueryResult<String> {
    serde_json::to_string(value).map_err(|e| DieselError::SerializationError(Box::new(e)))
}

// ---------------------------------------------------------------------------------------
// The timeout fields, written once for every table that stores them.

/// A session's effective timeout config.
#[derive(Debug, Clone, Copy, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = sessions)]
pub struct TimeoutColumns {
    pub timeout_minutes: i64,
    pub auto_renew: bool,
    pub max_duration_minutes: i64,
    pub warning_threshold_minutes: i64,
}

impl From<TimeoutColumns> for TimeoutConfig {
    fn from(c: TimeoutColumns) -> Self {
        Self {
            timeout_minutes: c.timeout_minutes,
            auto_renew: c.auto_renew,
            max_duration_minutes: c.max_duration_minutes,
            warning_threshold_minutes: c.warning_threshold_minutes,
        }
    }
}

impl From<TimeoutConfig> for TimeoutColumns {
    fn from(c: TimeoutConfig) -> Self {
        Self {
            timeout_minutes: c.timeout_minutes,
            auto_renew: c.auto_renew,
            max_duration_minutes: c.max_duration_minutes,
            warning_threshold_minutes: c.warning_threshold_minutes,
        }
    }
}

/// An agent's overrides: a column is NULL where the agent inherits the global value.
#[derive(Debug, Clone, Copy, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = agents, treat_none_as_null = true)]
pub struct TimeoutOverrideColumns {
    pub timeout_minutes: Option<i64>,
    pub auto_renew: Option<bool>,
    pub max_duration_minutes: Option<i64>,
    pub warning_threshold_minutes: Option<i64>,
}

impl From<TimeoutOverrideColumns> for PartialTimeoutConfig {
    fn from(c: TimeoutOverrideColumns) -> Self {
        Self {
            timeout_minutes: c.timeout_minutes,
            auto_renew: c.auto_renew,
            max_duration_minutes: c.max_duration_minutes,
            warning_threshold_minutes: c.warning_threshold_minutes,
        }
    }
}

impl From<PartialTimeoutConfig> for TimeoutOverrideColumns {
    fn from(c: PartialTimeoutConfig) -> Self {
        Self {
            timeout_minutes: c.timeout_minutes,
            auto_renew: c.auto_renew,
            max_duration_minutes: c.max_duration_minutes,
            warning_threshold_minutes: c.warning_threshold_minutes,
        }
    }
}

// ---------------------------------------------------------------------------------------
// agents

#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = agents, treat_none_as_null = true)]
pub struct AgentRow {
    pub id: String,
    pub name: Option<String>,
    #[diesel(embed)]
    pub timeout: TimeoutOverrideColumns,
    pub created_at: i64,
    pub updated_at: i64,
}

impl TryFrom<AgentRow> for Agent {
    type Error = DieselError;

    fn try_from(row: AgentRow) -> QueryResult<Self> {
        Ok(Self {
            id: column("agents", &row.id, "id", row.id.parse::<AgentId>())?,
            name: row.name,
            timeout_config: row.timeout.into(),
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

impl From<&Agent> for AgentRow {
    fn from(a: &Agent) -> Self {
        Self {
            id: a.id.to_string(),
            name: a.name.clone(),
            timeout: a.timeout_config.into(),
            created_at: a.created_at,
            updated_at: a.updated_at,
        }
    }
}

// ---------------------------------------------------------------------------------------
// sessions

pub const ACTIVE: &str = "active";
pub const EXPIRED: &str = "expired";
pub const ENDED: &str = "ended";
pub const PAUSED: &str = "paused";

pub fn status_text(status: SessionStatus) -> &'static str {
    match status {
        SessionStatus::Active => ACTIVE,
        SessionStatus::Paused => PAUSED,
        SessionStatus::Expired => EXPIRED,
        SessionStatus::Ended => ENDED,
    }
}

fn parse_status(text: &str) -> Result<SessionStatus, String> {
    match text {
        ACTIVE => Ok(SessionStatus::Active),
        PAUSED => Ok(SessionStatus::Paused),
        EXPIRED => Ok(SessionStatus::Expired),
        ENDED => Ok(SessionStatus::Ended),
        other => Err(format!("unknown status {other:?}")),
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = sessions)]
pub struct SessionRow {
    pub id: String,
    pub agent_id: String,
    pub user_id: String,
    pub status: String,
    pub metadata: String,
    #[diesel(embed)]
    pub timeout: TimeoutColumns,
    pub config_sources: String,
    pub created_at: i64,
    pub last_activity: i64,
    pub expires_at: i64,
    pub renewal_count: i64,
    pub closed_at: Option<i64>,
    pub version: i64,
    pub title: Option<String>,
    pub state: String,
    pub stage: String,
    pub end_reason: Option<String>,
}

/// The mutable part of a session, written with an optimistic version check. The columns a
/// message never changes are written only when they did change (`None` leaves them alone):
/// the hot path does not rewrite the metadata and state on every message.
#[derive(Debug, Clone, AsChangeset)]
#[diesel(table_name = sessions)]
pub struct SessionChanges {
    #[diesel(embed)]
    pub timeout: TimeoutColumns,
    pub config_sources: String,
    pub last_activity: i64,
    pub expires_at: i64,
    pub renewal_count: i64,
    pub version: i64,
    pub status: String,
    pub closed_at: Option<i64>,
    pub metadata: Option<String>,
    pub title: Option<Option<String>>,
    pub state: Option<String>,
    pub stage: Option<String>,
    pub end_reason: Option<Option<String>>,
}

impl TryFrom<SessionRow> for Session {
    type Error = DieselError;

    fn try_from(row: SessionRow) -> QueryResult<Self> {
        let id = &row.id;
        let sources: ConfigSources = column(
            "sessions",
            id,
            "config_sources",
            serde_json::from_str(&row.config_sources),
        )?;
        Ok(Self {
            id: column("sessions", id, "id", id.parse::<SessionId>())?,
            agent_id: column("sessions", id, "agent_id", row.agent_id.parse::<AgentId>())?,
            user_id: column("sessions", id, "user_id", row.user_id.parse::<UserId>())?,
            status: column("sessions", id, "status", parse_status(&row.status))?,
            metadata: column(
                "sessions",
                id,
                "metadata",
                serde_json::from_str::<Value>(&row.metadata),
            )?,
            config: EffectiveConfig {
                config: row.timeout.into(),
                sources,
            },
            created_at: row.created_at,
            last_activity: row.last_activity,
            expires_at: row.expires_at,
            renewal_count: row.renewal_count,
            closed_at: row.closed_at,
            version: row.version,
            title: row.title,
            state: column(
                "sessions",
                id,
                "state",
                serde_json::from_str::<ConversationState>(&row.state),
            )?,
            end_reason: row.end_reason,
        })
    }
}

impl Session {
    pub fn to_row(&self) -> QueryResult<SessionRow> {
        Ok(SessionRow {
            id: self.id.to_string(),
            agent_id: self.agent_id.to_string(),
            user_id: self.user_id.to_string(),
            status: status_text(self.status).to_owned(),
            metadata: json_text(&self.metadata)?,
            timeout: self.config.config.into(),
            config_sources: json_text(&self.config.sources)?,
            created_at: self.created_at,
            last_activity: self.last_activity,
            expires_at: self.expires_at,
            renewal_count: self.renewal_count,
            closed_at: self.closed_at,
            version: self.version,
            title: self.title.clone(),
            state: json_text(&self.state)?,
            stage: self.state.stage.as_str().to_owned(),
            end_reason: self.end_reason.clone(),
        })
    }

    /// What an update from `before` to `self` writes; the version is bumped.
    pub fn changes(&self, before: &Session) -> QueryResult<SessionChanges> {
        Ok(SessionChanges {
            timeout: self.config.config.into(),
            config_sources: json_text(&self.config.sources)?,
            last_activity: self.last_activity,
            expires_at: self.expires_at,
            renewal_count: self.renewal_count,
            version: self.version + 1,
            status: status_text(self.status).to_owned(),
            closed_at: self
                .closed_at
                .filter(|_| self.closed_at != before.closed_at),
            metadata: (self.metadata != before.metadata)
                .then(|| json_text(&self.metadata))
                .transpose()?,
            title: (self.title != before.title).then(|| self.title.clone()),
            state: (self.state != before.state)
                .then(|| json_text(&self.state))
                .transpose()?,
            stage: (self.state.stage != before.state.stage)
                .then(|| self.state.stage.as_str().to_owned()),
            end_reason: (self.end_reason != before.end_reason).then(|| self.end_reason.clone()),
        })
    }
}

// ---------------------------------------------------------------------------------------
// session_participants

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = session_participants)]
pub struct ParticipantRow {
    pub session_id: String,
    pub user_id: String,
    pub joined_at: i64,
}

impl ParticipantRow {
    pub fn new(session: SessionId, member: &Member) -> Self {
        Self {
            session_id: session.to_string(),
            user_id: member.user_id.to_string(),
            joined_at: member.joined_at,
        }
    }
}

impl TryFrom<ParticipantRow> for Member {
    type Error = DieselError;

    fn try_from(row: ParticipantRow) -> QueryResult<Self> {
        Ok(Self {
            user_id: column(
                "session_participants",
                &row.session_id,
                "user_id",
                row.user_id.parse::<UserId>(),
            )?,
            joined_at: row.joined_at,
        })
    }
}

// ---------------------------------------------------------------------------------------
// messages

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = messages)]
pub struct MessageRow {
    pub id: String,
    pub session_id: String,
    pub seq: i64,
    pub author_id: String,
    pub is_agent: bool,
    pub content: String,
    pub metadata: String,
    pub attachments: String,
    pub created_at: i64,
}

impl TryFrom<MessageRow> for Message {
    type Error = DieselError;

    fn try_from(row: MessageRow) -> QueryResult<Self> {
        let id = &row.id;
        let author = if row.is_agent {
            Author::Agent(column("messages", id, "author_id", row.author_id.parse())?)
        } else {
            Author::User(column("messages", id, "author_id", row.author_id.parse())?)
        };
        Ok(Self {
            id: column("messages", id, "id", id.parse::<MessageId>())?,
            session_id: column("messages", id, "session_id", row.session_id.parse())?,
            seq: row.seq,
            author,
            metadata: column(
                "messages",
                id,
                "metadata",
                serde_json::from_str::<Value>(&row.metadata),
            )?,
            attachments: column(
                "messages",
                id,
                "attachments",
                serde_json::from_str::<Vec<Attachment>>(&row.attachments),
            )?,
            content: row.content,
            created_at: row.created_at,
        })
    }
}

impl Message {
    pub fn to_row(&self) -> QueryResult<MessageRow> {
        Ok(MessageRow {
            id: self.id.to_string(),
            session_id: self.session_id.to_string(),
            seq: self.seq,
            author_id: self.author.id().to_string(),
            is_agent: self.author.is_agent(),
            content: self.content.clone(),
            metadata: json_text(&self.metadata)?,
            attachments: json_text(&self.attachments)?,
            created_at: self.created_at,
        })
    }
}

// ---------------------------------------------------------------------------------------
// idempotency_outcomes

/// The outcome of a keyed POST, stored as JSON in the same transaction as the write.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = idempotency_outcomes)]
pub struct IdempotencyRow {
    pub scope: String,
    pub idempotency_key: String,
    pub request_hash: String,
    pub outcome: String,
    pub created_at: i64,
}

// ---------------------------------------------------------------------------------------
// api_keys and session_tokens: digests only, never a usable secret.

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = api_keys)]
pub struct ApiKeyRow {
    pub id: String,
    pub name: Option<String>,
    pub secret_hash: String,
    pub scopes: String,
    pub agent_id: Option<String>,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

/// A stored key without its digest.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = api_keys)]
pub struct ApiKeyInfoRow {
    pub id: String,
    pub name: Option<String>,
    pub scopes: String,
    pub agent_id: Option<String>,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

impl TryFrom<ApiKeyInfoRow> for ApiKey {
    type Error = DieselError;

    fn try_from(row: ApiKeyInfoRow) -> QueryResult<Self> {
        let id = &row.id;
        Ok(Self {
            id: column("api_keys", id, "id", id.parse())?,
            name: row.name,
            scopes: column("api_keys", id, "scopes", Scopes::parse(&row.scopes))?,
            agent_id: row
                .agent_id
                .map(|a| column("api_keys", id, "agent_id", a.parse::<AgentId>()))
                .transpose()?,
            created_at: row.created_at,
            revoked_at: row.revoked_at,
        })
    }
}

impl ApiKey {
    pub fn to_row(&self, secret_hash: String) -> ApiKeyRow {
        ApiKeyRow {
            id: self.id.to_string(),
            name: self.name.clone(),
            secret_hash,
            scopes: self.scopes.to_text(),
            agent_id: self.agent_id.map(|a| a.to_string()),
            created_at: self.created_at,
            revoked_at: self.revoked_at,
        }
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = session_tokens)]
pub struct SessionTokenRow {
    pub token_hash: String,
    pub session_id: String,
    pub user_id: String,
    pub agent_id: String,
    pub created_at: i64,
}

/// What a session token grants: one session, written as one participant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenGrant {
    pub session_id: SessionId,
    pub user_id: UserId,
    pub agent_id: AgentId,
}

impl TryFrom<SessionTokenRow> for TokenGrant {
    type Error = DieselError;

    fn try_from(row: SessionTokenRow) -> QueryResult<Self> {
        let id = &row.session_id;
        Ok(Self {
            session_id: column("session_tokens", id, "session_id", id.parse())?,
            user_id: column("session_tokens", id, "user_id", row.user_id.parse())?,
            agent_id: column("session_tokens", id, "agent_id", row.agent_id.parse())?,
        })
    }
}

// ---------------------------------------------------------------------------------------
// session_events

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = session_events)]
pub struct EventRow {
    pub session_id: String,
    pub seq: i64,
    pub agent_id: String,
    pub agent_seq: i64,
    pub event_type: String,
    pub payload: String,
    pub created_at: i64,
}

impl TryFrom<EventRow> for Event {
    type Error = DieselError;

    fn try_from(row: EventRow) -> QueryResult<Self> {
        let id = &row.session_id;
        Ok(Self {
            session_id: column("session_events", id, "session_id", id.parse())?,
            seq: row.seq,
            agent_id: column("session_events", id, "agent_id", row.agent_id.parse())?,
            agent_seq: row.agent_seq,
            kind: column(
                "session_events",
                id,
                "payload",
                serde_json::from_str::<EventKind>(&row.payload),
            )?,
            created_at: row.created_at,
        })
    }
}

impl Event {
    pub fn to_row(&self) -> QueryResult<EventRow> {
        Ok(EventRow {
            session_id: self.session_id.to_string(),
            seq: self.seq,
            agent_id: self.agent_id.to_string(),
            agent_seq: self.agent_seq,
            event_type: self.kind.type_name().to_owned(),
            payload: json_text(&self.kind)?,
            created_at: self.created_at,
        })
    }
}
