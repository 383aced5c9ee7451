//! `/api/messaging/sessions`: the ElizaOS Sessions API.

use actix_web::{delete, get, patch, post, web, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use validator::Validate;

use crate::api::auth::{Auth, AuthCheck};
use crate::api::error::{ApiError, AuthErrors, ErrorBody, JsonWriteErrors, ServerErrors};
use crate::api::extract::{self, ApiJson, DebugFlag, IdempotencyHeader};
use crate::api::{created, DeletedResponse};
use crate::clock::to_rfc3339;
use crate::domain::{
    ids, AgentId, AuthorId, Caller, ConversationState, Scope, SessionFilter, SessionId,
    SessionStatus, Stage, StatusFilter, UserId,
};
use crate::secret::Secret;
use crate::service::sessions::{self as service, ListQuery, NewSession, Snapshot};
use crate::service::ServiceError;
use crate::state::AppState;
use crate::timeout::{ConfigSources, PartialTimeoutConfig, TimeoutConfig};
use crate::{json, validation};

#[derive(Debug, Deserialize, ToSchema, Validate)]
#[serde(rename_all = "camelCase")]
pub struct CreateSessionRequest {
    #[schema(schema_with = example_agent_id)]
    pub agent_id: AgentId,
    #[schema(schema_with = example_user_id)]
    pub user_id: UserId,
    /// Any JSON object (≤ 16 KB serialized, nested ≤ 5 levels); echoed back.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    #[validate(custom(function = "validation::metadata"))]
    pub metadata: Option<Value>,
    /// Session-level overrides of the agent's and the global timeout config.
    #[serde(default, deserialize_with = "json::object")]
    #[validate(nested)]
    pub timeout_config: Option<PartialTimeoutConfig>,
    /// Other users taking part (a group session): each gets its own token in
    /// `participantTokens`. Duplicates and `userId` are ignored; at most 1,000 ids, and at most
    /// `AGENT_SESSIONS_MAX_PARTICIPANTS` participants (default 100), the agent included (else
    /// 422 `TOO_MANY_PARTICIPANTS`).
    #[serde(default)]
    #[schema(max_items = 1000)]
    #[validate(length(max = 1000, code = "items"))]
    pub participants: Option<Vec<UserId>>,
    /// At most 200 characters, trimmed; a blank title is none.
    #[serde(default)]
    #[schema(
        max_length = 200,
        pattern = "^[^\\u0000]*$",
        example = "Project Discussion"
    )]
    #[validate(
        custom(function = "validation::text"),
        length(max = TITLE_MAX_CHARS, code = "chars")
    )]
    pub title: Option<String>,
}

/// A title's length limit, in characters.
pub const TITLE_MAX_CHARS: u64 = 200;

/// A title as stored: trimmed, and a blank one is no title.
pub fn normalized_title(title: Option<String>) -> Option<String> {
    title.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty())
}

// The two ids of a create request are documented inline, with examples: schemathesis seeds
// its requests with property examples (it does not follow `$ref`s for them), and the contract
// suite registers the example agent, so generated requests reach real sessions.
#[allow(deprecated)] // `example`, which OpenAPI tools read, rather than JSON Schema's `examples`
fn example_agent_id() -> utoipa::openapi::schema::Object {
    ids::uuid_schema()
        .description(Some("UUID of a registered agent."))
        .example(Some("3c90c3cc-0d44-4b50-8888-8dd25736052a".into()))
        .build()
}

#[allow(deprecated)]
fn example_user_id() -> utoipa::openapi::schema::Object {
    ids::uuid_schema()
        .description(Some("UUID of the user starting the session."))
        .example(Some("8b1a3c1e-5f5e-4a57-9b0a-2f7e1c2d3e4f".into()))
        .build()
}

/// Shown with `X-Debug: true`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionDebug {
    /// Where each effective timeout field came from: `global`, `agent` or `session`.
    pub timeout_config_sources: ConfigSources,
    pub server_time: String,
}

/// One user in a session (`dm`) or several (`group`).
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SessionType {
    Dm,
    Group,
}

#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ParticipantRole {
    Agent,
    User,
}

/// Someone taking part in a session.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ParticipantResponse {
    /// The agent's id, or a user's.
    pub id: AuthorId,
    pub role: ParticipantRole,
    #[schema(format = DateTime)]
    pub joined_at: String,
}

/// A session as lists show it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionSummary {
    pub session_id: SessionId,
    pub agent_id: AgentId,
    /// The user who created the session.
    pub user_id: UserId,
    pub status: SessionStatus,
    #[serde(rename = "type")]
    pub session_type: SessionType,
    pub title: Option<String>,
    /// The agent first, then the creator, then the others in the order they joined.
    pub participants: Vec<ParticipantResponse>,
    /// The conversation state the agent keeps (`PATCH .../state`).
    pub state: ConversationState,
    #[schema(format = DateTime, example = "2026-01-02T03:04:05.678Z")]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub last_activity: String,
    #[schema(format = DateTime)]
    pub expires_at: String,
    /// Milliseconds until `expiresAt`.
    pub time_remaining: i64,
    /// True within `warningThresholdMinutes` of expiry.
    pub is_near_expiration: bool,
    pub renewal_count: i64,
    /// The session's metadata (the ElizaOS api-client's `SessionInfoResponse` carries it).
    #[schema(value_type = Object)]
    pub metadata: Value,
    /// When it expired or ended (only once it is over).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub ended_at: Option<String>,
    /// Why it is over: `idle`, `max_duration`, `agent_deleted`, or the close reason
    /// (`closed` when none was given). Only once it is over.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_reason: Option<String>,
}

impl SessionSummary {
    pub fn new(snapshot: &Snapshot) -> Self {
        let Snapshot {
            session: s, now, ..
        } = snapshot;
        let now = *now;
        let members = snapshot.members();
        let agent = ParticipantResponse {
            id: s.agent_id.into(),
            role: ParticipantRole::Agent,
            joined_at: to_rfc3339(s.created_at),
        };
        // The creator first, whatever the joining order says.
        let creator = members.iter().filter(|m| m.user_id == s.user_id);
        let others = members.iter().filter(|m| m.user_id != s.user_id);
        let users = creator.chain(others).map(|m| ParticipantResponse {
            id: m.user_id.into(),
            role: ParticipantRole::User,
            joined_at: to_rfc3339(m.joined_at),
        });
        Self {
            session_id: s.id,
            agent_id: s.agent_id,
            user_id: s.user_id,
            status: s.status_at(now),
            session_type: if members.len() > 1 {
                SessionType::Group
            } else {
                SessionType::Dm
            },
            title: s.title.clone(),
            participants: std::iter::once(agent).chain(users).collect(),
            state: s.state.clone(),
            created_at: to_rfc3339(s.created_at),
            last_activity: to_rfc3339(s.last_activity),
            expires_at: to_rfc3339(s.expires_at),
            time_remaining: s.time_remaining(now),
            is_near_expiration: s.is_near_expiration(now),
            renewal_count: s.renewal_count,
            metadata: s.metadata.clone(),
            ended_at: s.expired_at(now).map(to_rfc3339),
            end_reason: s.end_reason_at(now),
        }
    }
}

/// A session as the ElizaOS Sessions API returns it: the summary plus its full effective
/// timeout config.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionResponse {
    #[serde(flatten)]
    pub session: SessionSummary,
    /// The full effective timeout config.
    pub timeout_config: TimeoutConfig,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub debug: Option<SessionDebug>,
}

impl SessionResponse {
    pub fn new(snapshot: &Snapshot, debug: bool) -> Self {
        let Snapshot {
            session: s, now, ..
        } = snapshot;
        Self {
            session: SessionSummary::new(snapshot),
            timeout_config: s.config.config,
            debug: debug.then(|| SessionDebug {
                timeout_config_sources: s.config.sources,
                server_time: to_rfc3339(*now),
            }),
        }
    }
}

/// A token for one participant of a session.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ParticipantToken {
    pub user_id: UserId,
    /// Opens this session as this user (send, read, events). Shown once.
    #[schema(example = "ast_6f1c2a9e0b7d4c3f8a5e1d2c0b9a8f7e6d5c4b3a2f1e0d9c")]
    pub session_token: String,
}

impl ParticipantToken {
    pub fn all(tokens: &[(UserId, Secret)]) -> Vec<Self> {
        tokens
            .iter()
            .map(|(user_id, token)| Self {
                user_id: *user_id,
                session_token: token.expose().to_owned(),
            })
            .collect()
    }
}

/// A new session and the token that opens it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedSessionResponse {
    #[serde(flatten)]
    pub session: SessionResponse,
    /// Opens this session only (send as its user, read, renew, heartbeat, end): give it to
    /// the user's browser instead of an API key. Shown once; a replayed create hands out a
    /// new one and revokes this one. Absent only on a replay whose session is gone.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "ast_6f1c2a9e0b7d4c3f8a5e1d2c0b9a8f7e6d5c4b3a2f1e0d9c")]
    pub session_token: Option<String>,
    /// The tokens of the other participants given in `participants`, one each (empty for a
    /// one-user session).
    pub participant_tokens: Vec<ParticipantToken>,
}

/// A session's new token.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionTokenResponse {
    pub session_id: SessionId,
    /// The participant the token writes as.
    pub user_id: UserId,
    /// Shown once; the session's earlier token no longer works.
    #[schema(example = "ast_6f1c2a9e0b7d4c3f8a5e1d2c0b9a8f7e6d5c4b3a2f1e0d9c")]
    pub session_token: String,
}

pub(crate) fn ok(snapshot: &Snapshot, debug: DebugFlag) -> HttpResponse {
    HttpResponse::Ok().json(SessionResponse::new(snapshot, debug.0))
}

/// Create a session between a user and a registered agent.
///
/// The response carries the full effective `timeoutConfig` (global, then agent, then the
/// request's own overrides).
///
/// **Auth:** Needs an API key with `sessions:create`; a key bound to an agent creates that
/// agent's sessions only.
#[utoipa::path(
    operation_id = "createSession", tag = "sessions",
    request_body = CreateSessionRequest,
    params(
        ("X-Debug" = Option<bool>, Header, nullable = false, description = "`true` adds a `debug` object (provenance of each timeout field)"),
        ("Idempotency-Key" = Option<String>, Header, nullable = false, pattern = "^[!-~]{1,255}$", description = "1–255 visible ASCII characters. Retries with the same key and body within 24 h replay the first response"),
    ),
    responses(
        (status = 201, description = "Session created (or replayed: header `Idempotent-Replayed: true`)", body = CreatedSessionResponse,
            links(
                ("GetSession" = (operation_id = "getSession", parameters(("sessionId" = "$response.body#/sessionId")))),
                ("DeleteSession" = (operation_id = "deleteSession", parameters(("sessionId" = "$response.body#/sessionId")))),
                ("RenewSession" = (operation_id = "renewSession", parameters(("sessionId" = "$response.body#/sessionId")))),
                ("SessionHeartbeat" = (operation_id = "sessionHeartbeat", parameters(("sessionId" = "$response.body#/sessionId")))),
                ("UpdateSessionTimeout" = (operation_id = "updateSessionTimeout", parameters(("sessionId" = "$response.body#/sessionId")))),
                ("SendSessionMessage" = (operation_id = "sendSessionMessage", parameters(("sessionId" = "$response.body#/sessionId")))),
                ("GetSessionMessages" = (operation_id = "getSessionMessages", parameters(("sessionId" = "$response.body#/sessionId")))),
                ("IssueSessionToken" = (operation_id = "issueSessionToken", parameters(("sessionId" = "$response.body#/sessionId")))),
                ("UpdateSession" = (operation_id = "updateSession", parameters(("sessionId" = "$response.body#/sessionId")))),
                ("PauseSession" = (operation_id = "pauseSession", parameters(("sessionId" = "$response.body#/sessionId")))),
                ("ResumeSession" = (operation_id = "resumeSession", parameters(("sessionId" = "$response.body#/sessionId")))),
                ("CloseSession" = (operation_id = "closeSession", parameters(("sessionId" = "$response.body#/sessionId")))),
                ("AddSessionParticipants" = (operation_id = "addSessionParticipants", parameters(("sessionId" = "$response.body#/sessionId")))),
                ("GetSessionTranscript" = (operation_id = "getSessionTranscript", parameters(("sessionId" = "$response.body#/sessionId")))),
                ("UpdateSessionState" = (operation_id = "updateSessionState", parameters(("sessionId" = "$response.body#/sessionId"))))
            )
        ),
        (status = 400, description = "Invalid input (VALIDATION_ERROR)", body = ErrorBody),
        (status = 404, description = "Agent not registered (AGENT_NOT_FOUND)", body = ErrorBody),
        (status = 422, description = "Idempotency-Key reused with another body (IDEMPOTENCY_KEY_REUSED), or too many participants (TOO_MANY_PARTICIPANTS)", body = ErrorBody),
        JsonWriteErrors,
        AuthErrors,
        ServerErrors,
    )
)]
#[post("/api/messaging/sessions")]
pub async fn create(
    state: web::Data<AppState>,
    auth: Auth,
    debug: DebugFlag,
    idempotency: IdempotencyHeader,
    ApiJson(body, raw): ApiJson<CreateSessionRequest>,
) -> Result<HttpResponse, ApiError> {
    let caller = auth
        .check(AuthCheck::scope(Scope::SessionsCreate).on_behalf_of(body.user_id, body.agent_id))?;
    let scope = format!("{} POST /api/messaging/sessions", caller.identity());
    let key = idempotency.key(scope, &raw)?;
    let input = NewSession {
        agent_id: body.agent_id,
        user_id: body.user_id,
        participants: body.participants.unwrap_or_default(),
        title: normalized_title(body.title),
        metadata: validation::metadata_or_empty(body.metadata),
        timeout_config: body.timeout_config.unwrap_or_default(),
    };
    let created_session = service::create(&state, &caller, input, key).await?;
    let outcome = created_session.outcome;
    Ok(created(
        outcome.replayed,
        CreatedSessionResponse {
            session: SessionResponse::new(&outcome.value, debug.0),
            session_token: created_session
                .token
                .as_ref()
                .map(|t| t.expose().to_owned()),
            participant_tokens: ParticipantToken::all(&created_session.participant_tokens),
        },
    ))
}

/// Get a session with its remaining time and warning flag.
///
/// **Auth:** Needs `sessions:read`, or this session's token.
#[utoipa::path(
    operation_id = "getSession", tag = "sessions",
    params(
        ("sessionId" = SessionId, Path, description = "Session id"),
        ("X-Debug" = Option<bool>, Header, nullable = false, description = "`true` adds a `debug` object (provenance of each timeout field)"),
    ),
    responses(
        (status = 200, description = "The session", body = SessionResponse),
        (status = 400, description = "Malformed id (VALIDATION_ERROR)", body = ErrorBody),
        (status = 404, description = "Unknown or purged (SESSION_NOT_FOUND)", body = ErrorBody),
        (status = 410, description = "Expired (SESSION_EXPIRED; details.expiredAt)", body = ErrorBody),
        AuthErrors,
        ServerErrors,
    )
)]
#[get("/api/messaging/sessions/{sessionId}")]
pub async fn get(
    state: web::Data<AppState>,
    auth: Auth,
    id: SessionId,
    debug: DebugFlag,
) -> Result<HttpResponse, ApiError> {
    let caller = auth.check(AuthCheck::own_session(Scope::SessionsRead, id))?;
    Ok(ok(&service::get(&state, &caller, id).await?, debug))
}

/// Filters and paging for the session list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ListSessionsParams {
    /// Only this agent's sessions.
    #[param(value_type = Option<AgentId>)]
    pub agent_id: Option<String>,
    /// Only sessions this user takes part in (created, or was added to).
    #[param(value_type = Option<UserId>)]
    pub user_id: Option<String>,
    /// `active` (default), `paused`, `expired` (over: timed out or ended) or `all`.
    #[param(value_type = Option<String>, pattern = "^(active|paused|expired|all)$")]
    pub status: Option<String>,
    /// Only sessions at this conversation stage: `greeting`, `discovery`, `engaged`,
    /// `resolution` or `closing`.
    #[param(value_type = Option<String>, pattern = "^(greeting|discovery|engaged|resolution|closing)$")]
    pub stage: Option<String>,
    /// 1–100, default 50.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
    /// Default 0.
    #[param(value_type = Option<i64>, minimum = 0)]
    pub offset: Option<String>,
}

impl ListSessionsParams {
    fn parse(self, bound_to: &Caller) -> Result<ListQuery, ApiError> {
        let status = match self.status.as_deref().map(str::trim) {
            None | Some("active") => StatusFilter::Active,
            Some("paused") => StatusFilter::Paused,
            Some("expired") => StatusFilter::Expired,
            Some("all") => StatusFilter::All,
            Some(_) => {
                return Err(ApiError::invalid(
                    "status",
                    "must be active, paused, expired or all",
                ))
            }
        };
        let stage = match self.stage.as_deref().map(str::trim) {
            None => None,
            Some(text) => Some(Stage::parse(text).ok_or_else(|| {
                ApiError::invalid(
                    "stage",
                    "must be greeting, discovery, engaged, resolution or closing",
                )
            })?),
        };
        // A key bound to an agent lists that agent's sessions only.
        let agent_id = bound_to
            .list_filter(extract::query_id(AgentId::FIELD, self.agent_id.as_deref())?)
            .map_err(ServiceError::from)?;
        Ok(ListQuery {
            filter: SessionFilter {
                agent_id,
                user_id: extract::query_id(UserId::FIELD, self.user_id.as_deref())?,
                stage,
            },
            status,
            limit: extract::int_param("limit", self.limit.as_deref(), 50, (1, 100))?,
            offset: extract::int_param("offset", self.offset.as_deref(), 0, (0, i64::MAX))?,
        })
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionStats {
    /// Sessions matching the agent/user filters, whatever their status.
    pub total_sessions: i64,
    pub active_sessions: i64,
    pub paused_sessions: i64,
    /// Timed out or ended.
    pub expired_sessions: i64,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionListResponse {
    /// Newest first.
    pub sessions: Vec<SessionSummary>,
    /// Sessions matching every filter, including `status`.
    pub total: i64,
    pub limit: i64,
    pub offset: i64,
    pub stats: SessionStats,
}

/// List sessions, newest first.
///
/// **Auth:** Needs `sessions:read` (a session token cannot list); a key bound to an agent lists
/// that agent's sessions only.
#[utoipa::path(
    operation_id = "listSessions", tag = "sessions",
    params(ListSessionsParams),
    responses(
        (status = 200, description = "A page of sessions", body = SessionListResponse),
        (status = 400, description = "Invalid filter or paging (VALIDATION_ERROR)", body = ErrorBody),
        AuthErrors,
        ServerErrors,
    )
)]
#[get("/api/messaging/sessions")]
pub async fn list(
    state: web::Data<AppState>,
    auth: Auth,
    params: web::Query<ListSessionsParams>,
) -> Result<HttpResponse, ApiError> {
    let caller = auth.check(AuthCheck::scope(Scope::SessionsRead))?;
    let query = params.into_inner().parse(&caller)?;
    let (limit, offset) = (query.limit, query.offset);
    let page = service::list(&state, query).await?;
    Ok(HttpResponse::Ok().json(SessionListResponse {
        sessions: page.sessions.iter().map(SessionSummary::new).collect(),
        total: page.total,
        limit,
        offset,
        stats: SessionStats {
            total_sessions: page.total_sessions,
            active_sessions: page.active_sessions,
            paused_sessions: page.paused_sessions,
            expired_sessions: page.total_sessions - page.active_sessions - page.paused_sessions,
        },
    }))
}

/// End a session and delete everything it owns (also works for an expired session);
/// afterwards the id answers 404.
///
/// **Auth:** Needs `sessions:manage`, or the token of the session's creator (the user ends the
/// chat).
#[utoipa::path(
    operation_id = "deleteSession", tag = "sessions",
    params(("sessionId" = SessionId, Path, description = "Session id")),
    responses(
        (status = 200, description = "Deleted", body = DeletedResponse),
        (status = 400, description = "Malformed id (VALIDATION_ERROR)", body = ErrorBody),
        (status = 404, description = "Unknown (SESSION_NOT_FOUND)", body = ErrorBody),
        AuthErrors,
        ServerErrors,
    )
)]
#[delete("/api/messaging/sessions/{sessionId}")]
pub async fn delete(
    state: web::Data<AppState>,
    auth: Auth,
    id: SessionId,
) -> Result<HttpResponse, ApiError> {
    let caller = auth.check(AuthCheck::own_session(Scope::SessionsManage, id))?;
    service::delete(&state, &caller, id).await?;
    Ok(HttpResponse::Ok().json(DeletedResponse::new(format!(
        "Session {id} deleted successfully"
    ))))
}

/// Renew a session: `expiresAt` moves to now + timeout, capped at createdAt + maxDuration.
///
/// **Auth:** Needs `sessions:write`, or this session's token.
#[utoipa::path(
    operation_id = "renewSession", tag = "sessions",
    params(
        ("sessionId" = SessionId, Path, description = "Session id"),
        ("X-Debug" = Option<bool>, Header, nullable = false, description = "`true` adds a `debug` object (provenance of each timeout field)"),
    ),
    responses(
        (status = 200, description = "Renewed", body = SessionResponse),
        (status = 400, description = "Malformed id (VALIDATION_ERROR)", body = ErrorBody),
        (status = 404, description = "Unknown (SESSION_NOT_FOUND)", body = ErrorBody),
        (status = 410, description = "Expired (SESSION_EXPIRED)", body = ErrorBody),
        (status = 422, description = "Max duration reached (SESSION_RENEWAL_FAILED)", body = ErrorBody),
        (status = 409, description = "Kept losing races with concurrent writers (CONFLICT); retry", body = ErrorBody),
        AuthErrors,
        ServerErrors,
    )
)]
#[post("/api/messaging/sessions/{sessionId}/renew")]
pub async fn renew(
    state: web::Data<AppState>,
    auth: Auth,
    id: SessionId,
    debug: DebugFlag,
) -> Result<HttpResponse, ApiError> {
    let caller = auth.check(AuthCheck::own_session(Scope::SessionsWrite, id))?;
    Ok(ok(&service::renew(&state, &caller, id).await?, debug))
}

/// Keep a session alive: records activity and renews it when `autoRenew` is on.
///
/// **Auth:** Needs `sessions:write`, or this session's token.
#[utoipa::path(
    operation_id = "sessionHeartbeat", tag = "sessions",
    params(
        ("sessionId" = SessionId, Path, description = "Session id"),
        ("X-Debug" = Option<bool>, Header, nullable = false, description = "`true` adds a `debug` object (provenance of each timeout field)"),
    ),
    responses(
        (status = 200, description = "Session status", body = SessionResponse),
        (status = 400, description = "Malformed id (VALIDATION_ERROR)", body = ErrorBody),
        (status = 404, description = "Unknown (SESSION_NOT_FOUND)", body = ErrorBody),
        (status = 410, description = "Expired (SESSION_EXPIRED)", body = ErrorBody),
        (status = 409, description = "Kept losing races with concurrent writers (CONFLICT); retry", body = ErrorBody),
        AuthErrors,
        ServerErrors,
    )
)]
#[post("/api/messaging/sessions/{sessionId}/heartbeat")]
pub async fn heartbeat(
    state: web::Data<AppState>,
    auth: Auth,
    id: SessionId,
    debug: DebugFlag,
) -> Result<HttpResponse, ApiError> {
    let caller = auth.check(AuthCheck::own_session(Scope::SessionsWrite, id))?;
    Ok(ok(&service::heartbeat(&state, &caller, id).await?, debug))
}

/// Change a session's timeout config. Fields given override the current ones; `expiresAt` is
/// recomputed from now, capped at createdAt + maxDuration.
///
/// **Auth:** Needs `sessions:manage`.
#[utoipa::path(
    operation_id = "updateSessionTimeout", tag = "sessions",
    request_body = Option<PartialTimeoutConfig>,
    params(
        ("sessionId" = SessionId, Path, description = "Session id"),
        ("X-Debug" = Option<bool>, Header, nullable = false, description = "`true` adds a `debug` object (provenance of each timeout field)"),
    ),
    responses(
        (status = 200, description = "Updated session", body = SessionResponse),
        (status = 400, description = "Invalid config (VALIDATION_ERROR)", body = ErrorBody),
        (status = 404, description = "Unknown (SESSION_NOT_FOUND)", body = ErrorBody),
        (status = 410, description = "Expired (SESSION_EXPIRED)", body = ErrorBody),
        (status = 422, description = "The session is already older than the new maxDurationMinutes (MAX_DURATION_EXCEEDED)", body = ErrorBody),
        JsonWriteErrors,
        AuthErrors,
        ServerErrors,
    )
)]
#[patch("/api/messaging/sessions/{sessionId}/timeout")]
pub async fn update_timeout(
    state: web::Data<AppState>,
    auth: Auth,
    id: SessionId,
    debug: DebugFlag,
    ApiJson(patch, _): ApiJson<PartialTimeoutConfig>,
) -> Result<HttpResponse, ApiError> {
    let caller = auth.check(AuthCheck::scope(Scope::SessionsManage).session(id))?;
    Ok(ok(
        &service::update_timeout(&state, &caller, id, patch).await?,
        debug,
    ))
}

/// Whose token to issue (a query parameter: the route keeps taking no body, so clients
/// generated before group sessions call it unchanged).
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct IssueTokenParams {
    /// A user taking part in the session; left out: its creator.
    #[param(value_type = Option<UserId>)]
    pub user_id: Option<String>,
}

/// Issue a new session token for one of the session's users (its creator unless `?userId=`
/// names another participant); that user's earlier token stops working at once (a lost or
/// leaked token is replaced without ending the chat).
///
/// **Auth:** Needs `sessions:manage` and a key not bound to an agent (a bound key writes as
/// its agent, never as the user; a session token cannot do this).
#[utoipa::path(
    operation_id = "issueSessionToken", tag = "sessions",
    params(("sessionId" = SessionId, Path, description = "Session id"), IssueTokenParams),
    responses(
        (status = 201, description = "A new token; the earlier one is revoked", body = SessionTokenResponse),
        (status = 400, description = "Malformed id (VALIDATION_ERROR)", body = ErrorBody),
        (status = 404, description = "Unknown (SESSION_NOT_FOUND), or the user does not take part (PARTICIPANT_NOT_FOUND)", body = ErrorBody),
        (status = 410, description = "Expired (SESSION_EXPIRED) or ended (SESSION_ENDED)", body = ErrorBody),
        (status = 409, description = "Kept losing races with concurrent writers (CONFLICT); retry", body = ErrorBody),
        AuthErrors,
        ServerErrors,
    )
)]
#[post("/api/messaging/sessions/{sessionId}/token")]
pub async fn issue_token(
    state: web::Data<AppState>,
    auth: Auth,
    id: SessionId,
    params: web::Query<IssueTokenParams>,
) -> Result<HttpResponse, ApiError> {
    let caller = auth.check(AuthCheck::scope(Scope::SessionsManage).session(id))?;
    caller
        .unbound("issue a user's session token")
        .map_err(ServiceError::from)?;
    let user = extract::query_id(UserId::FIELD, params.user_id.as_deref())?;
    let (snapshot, user, token) = service::reissue_token(&state, &caller, id, user).await?;
    Ok(HttpResponse::Created().json(SessionTokenResponse {
        session_id: snapshot.session.id,
        user_id: user,
        session_token: token.expose().to_owned(),
    }))
}
