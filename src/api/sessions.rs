//! `/api/messaging/sessions`: the ElizaOS Sessions API.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::api::extract::{self, ApiJson, DebugFlag, IdempotencyHeader};
use crate::clock::to_rfc3339;
use crate::db::repo::sessions::{Filter, StatusFilter};
use crate::domain::{Session, SessionStatus};
use crate::error::{ApiError, ErrorBody, JsonWriteErrors, ServerErrors};
use crate::json::Obj;
use crate::service::sessions::{self as service, ListQuery, NewSession, Snapshot};
use crate::state::AppState;
use crate::timeout::{ConfigSources, PartialTimeoutConfig, TimeoutConfig};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateSessionRequest {
    /// UUID of a registered agent.
    #[schema(format = Uuid, pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$", example = "3c90c3cc-0d44-4b50-8888-8dd25736052a")]
    pub agent_id: String,
    /// UUID of the user starting the session.
    #[schema(format = Uuid, pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$", example = "8b1a3c1e-5f5e-4a57-9b0a-2f7e1c2d3e4f")]
    pub user_id: String,
    /// Any JSON object (≤ 16 KB serialized, nested ≤ 5 levels); echoed back.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
    /// Session-level overrides of the agent's and the global timeout config.
    #[serde(default)]
    #[schema(value_type = Option<PartialTimeoutConfig>)]
    pub timeout_config: Option<Obj<PartialTimeoutConfig>>,
}

/// Where a session is in its life: `active`, `expired` (timed out) or `ended` (its agent was
/// deleted).
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SessionState {
    Active,
    Expired,
    Ended,
}

impl From<SessionStatus> for SessionState {
    fn from(s: SessionStatus) -> Self {
        match s {
            SessionStatus::Active => Self::Active,
            SessionStatus::Expired => Self::Expired,
            SessionStatus::Ended => Self::Ended,
        }
    }
}

/// Shown with `X-Debug: true`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionDebug {
    /// Where each effective timeout field came from: `global`, `agent` or `session`.
    pub timeout_config_sources: ConfigSources,
    pub server_time: String,
}

/// A session as the ElizaOS Sessions API returns it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionResponse {
    #[schema(format = Uuid)]
    pub session_id: String,
    #[schema(format = Uuid)]
    pub agent_id: String,
    #[schema(format = Uuid)]
    pub user_id: String,
    pub status: SessionState,
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
    /// The full effective timeout config.
    pub timeout_config: TimeoutConfig,
    pub renewal_count: i64,
    #[schema(value_type = Object)]
    pub metadata: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub debug: Option<SessionDebug>,
}

impl SessionResponse {
    pub fn new(snapshot: &Snapshot, debug: bool) -> Self {
        let Snapshot { session: s, now } = snapshot;
        let now = *now;
        Self {
            session_id: s.id.clone(),
            agent_id: s.agent_id.clone(),
            user_id: s.user_id.clone(),
            status: s.status_at(now).into(),
            created_at: to_rfc3339(s.created_at),
            last_activity: to_rfc3339(s.last_activity),
            expires_at: to_rfc3339(s.expires_at),
            time_remaining: s.time_remaining(now),
            is_near_expiration: s.is_near_expiration(now),
            timeout_config: s.config.config,
            renewal_count: s.renewal_count,
            metadata: s.metadata.clone(),
            debug: debug.then(|| SessionDebug {
                timeout_config_sources: s.config.sources,
                server_time: to_rfc3339(now),
            }),
        }
    }
}

fn reply(status: actix_web::http::StatusCode, snapshot: &Snapshot, debug: bool) -> HttpResponse {
    HttpResponse::build(status).json(SessionResponse::new(snapshot, debug))
}

/// Create a session between a user and a registered agent.
///
/// The response carries the full effective `timeoutConfig` (global, then agent, then the
/// request's own overrides).
#[utoipa::path(
    post, path = "/api/messaging/sessions", operation_id = "createSession", tag = "sessions",
    request_body = CreateSessionRequest,
    params(
        ("X-Debug" = Option<bool>, Header, nullable = false, description = "`true` adds a `debug` object (provenance of each timeout field)"),
        ("Idempotency-Key" = Option<String>, Header, nullable = false, pattern = "^[!-~]{1,255}$", description = "1–255 visible ASCII characters. Retries with the same key and body within 24 h replay the first response"),
    ),
    responses(
        (status = 201, description = "Session created (or replayed: header `Idempotent-Replayed: true`)", body = SessionResponse,
            links(
                ("GetSession" = (operation_id = "getSession", parameters(("sessionId" = "$response.body#/sessionId")))),
                ("DeleteSession" = (operation_id = "deleteSession", parameters(("sessionId" = "$response.body#/sessionId")))),
                ("RenewSession" = (operation_id = "renewSession", parameters(("sessionId" = "$response.body#/sessionId")))),
                ("SessionHeartbeat" = (operation_id = "sessionHeartbeat", parameters(("sessionId" = "$response.body#/sessionId")))),
                ("UpdateSessionTimeout" = (operation_id = "updateSessionTimeout", parameters(("sessionId" = "$response.body#/sessionId")))),
                ("SendSessionMessage" = (operation_id = "sendSessionMessage", parameters(("sessionId" = "$response.body#/sessionId")))),
                ("GetSessionMessages" = (operation_id = "getSessionMessages", parameters(("sessionId" = "$response.body#/sessionId"))))
            )
        ),
        (status = 400, description = "Invalid input (VALIDATION_ERROR)", body = ErrorBody),
        (status = 404, description = "Agent not registered (AGENT_NOT_FOUND)", body = ErrorBody),
        (status = 422, description = "Idempotency-Key reused with another body (IDEMPOTENCY_KEY_REUSED)", body = ErrorBody),
        JsonWriteErrors,
        ServerErrors,
    )
)]
pub async fn create(
    state: web::Data<AppState>,
    debug: DebugFlag,
    idempotency: IdempotencyHeader,
    ApiJson(body, raw): ApiJson<CreateSessionRequest>,
) -> Result<HttpResponse, ApiError> {
    let input = NewSession {
        agent_id: extract::uuid_field("agentId", &body.agent_id)?,
        user_id: extract::uuid_field("userId", &body.user_id)?,
        metadata: extract::metadata("metadata", body.metadata)?,
        timeout_config: timeout_config(
            "timeoutConfig",
            body.timeout_config.map(|c| c.0).unwrap_or_default(),
        )?,
    };
    let key = idempotency.key("POST /api/messaging/sessions".to_owned(), &raw)?;
    let debug = debug.0;
    let reply = service::create(&state, input, key, move |snapshot| {
        serde_json::to_value(SessionResponse::new(snapshot, debug)).unwrap_or_default()
    })
    .await?;
    Ok(extract::respond(reply))
}

/// Validates the ranges of a partial config, naming the first bad field under `prefix`.
pub fn timeout_config(
    prefix: &str,
    config: PartialTimeoutConfig,
) -> Result<PartialTimeoutConfig, ApiError> {
    match config.violations().into_iter().next() {
        None => Ok(config),
        Some((field, reason)) => Err(ApiError::invalid(
            if prefix.is_empty() {
                field.to_owned()
            } else {
                format!("{prefix}.{field}")
            },
            reason,
        )),
    }
}

pub fn session_id(raw: &str) -> Result<String, ApiError> {
    extract::uuid_field("sessionId", raw)
}

/// Get a session with its remaining time and warning flag.
#[utoipa::path(
    get, path = "/api/messaging/sessions/{sessionId}", operation_id = "getSession", tag = "sessions",
    params(
        ("sessionId" = String, Path, format = Uuid, pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$", description = "Session id"),
        ("X-Debug" = Option<bool>, Header, nullable = false, description = "`true` adds a `debug` object (provenance of each timeout field)"),
    ),
    responses(
        (status = 200, description = "The session", body = SessionResponse),
        (status = 400, description = "Malformed id (VALIDATION_ERROR)", body = ErrorBody),
        (status = 404, description = "Unknown or purged (SESSION_NOT_FOUND)", body = ErrorBody),
        (status = 410, description = "Expired (SESSION_EXPIRED; details.expiredAt)", body = ErrorBody),
        ServerErrors,
    )
)]
pub async fn get(
    state: web::Data<AppState>,
    path: web::Path<String>,
    debug: DebugFlag,
) -> Result<HttpResponse, ApiError> {
    let snapshot = service::get(&state, session_id(&path)?).await?;
    Ok(reply(actix_web::http::StatusCode::OK, &snapshot, debug.0))
}

/// Filters and paging for the session list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ListSessionsParams {
    /// Only this agent's sessions.
    #[param(format = Uuid, pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")]
    pub agent_id: Option<String>,
    /// Only this user's sessions.
    #[param(format = Uuid, pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")]
    pub user_id: Option<String>,
    /// `active` (default), `expired` or `all`.
    #[param(value_type = Option<String>, pattern = "^(active|expired|all)$")]
    pub status: Option<String>,
    /// 1–100, default 50.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
    /// Default 0.
    #[param(value_type = Option<i64>, minimum = 0)]
    pub offset: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionSummary {
    #[schema(format = Uuid)]
    pub session_id: String,
    #[schema(format = Uuid)]
    pub agent_id: String,
    #[schema(format = Uuid)]
    pub user_id: String,
    pub status: SessionState,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub last_activity: String,
    #[schema(format = DateTime)]
    pub expires_at: String,
    pub time_remaining: i64,
    pub is_near_expiration: bool,
    pub renewal_count: i64,
    /// The session's metadata (the ElizaOS api-client's `SessionInfoResponse` carries it).
    #[schema(value_type = Object)]
    pub metadata: Value,
}

impl SessionSummary {
    fn new(s: &Session, now: i64) -> Self {
        Self {
            session_id: s.id.clone(),
            agent_id: s.agent_id.clone(),
            user_id: s.user_id.clone(),
            status: s.status_at(now).into(),
            created_at: to_rfc3339(s.created_at),
            last_activity: to_rfc3339(s.last_activity),
            expires_at: to_rfc3339(s.expires_at),
            time_remaining: s.time_remaining(now),
            is_near_expiration: s.is_near_expiration(now),
            renewal_count: s.renewal_count,
            metadata: s.metadata.clone(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionStats {
    /// Sessions matching the agent/user filters, whatever their status.
    pub total_sessions: i64,
    pub active_sessions: i64,
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
#[utoipa::path(
    get, path = "/api/messaging/sessions", operation_id = "listSessions", tag = "sessions",
    params(ListSessionsParams),
    responses(
        (status = 200, description = "A page of sessions", body = SessionListResponse),
        (status = 400, description = "Invalid filter or paging (VALIDATION_ERROR)", body = ErrorBody),
        ServerErrors,
    )
)]
pub async fn list(
    state: web::Data<AppState>,
    params: web::Query<ListSessionsParams>,
) -> Result<HttpResponse, ApiError> {
    let p = params.into_inner();
    let status = match p.status.as_deref().map(str::trim) {
        None | Some("active") => StatusFilter::Active,
        Some("expired") => StatusFilter::Expired,
        Some("all") => StatusFilter::All,
        Some(_) => {
            return Err(ApiError::invalid(
                "status",
                "must be active, expired or all",
            ))
        }
    };
    let query = ListQuery {
        filter: Filter {
            agent_id: p
                .agent_id
                .map(|v| extract::uuid_field("agentId", &v))
                .transpose()?,
            user_id: p
                .user_id
                .map(|v| extract::uuid_field("userId", &v))
                .transpose()?,
        },
        status,
        limit: extract::int_param("limit", p.limit.as_deref(), 50, (1, 100))?,
        offset: extract::int_param("offset", p.offset.as_deref(), 0, (0, i64::MAX))?,
    };
    let (limit, offset) = (query.limit, query.offset);
    let page = service::list(&state, query).await?;
    Ok(HttpResponse::Ok().json(SessionListResponse {
        sessions: page
            .sessions
            .iter()
            .map(|s| SessionSummary::new(s, page.now))
            .collect(),
        total: page.total,
        limit,
        offset,
        stats: SessionStats {
            total_sessions: page.total_sessions,
            active_sessions: page.active_sessions,
            expired_sessions: page.total_sessions - page.active_sessions,
        },
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeletedResponse {
    #[schema(example = true)]
    pub success: bool,
    #[schema(example = "Session 3c90c3cc-0d44-4b50-8888-8dd25736052a deleted successfully")]
    pub message: String,
    /// `{success, message}` again: the ElizaOS api-client returns the `data` of any body that
    /// has a `success` key.
    pub data: Deleted,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Deleted {
    pub success: bool,
    pub message: String,
}

impl DeletedResponse {
    pub fn new(message: String) -> Self {
        Self {
            success: true,
            data: Deleted {
                success: true,
                message: message.clone(),
            },
            message,
        }
    }
}

/// End a session and delete everything it owns (also works for an expired session);
/// afterwards the id answers 404.
#[utoipa::path(
    delete, path = "/api/messaging/sessions/{sessionId}", operation_id = "deleteSession", tag = "sessions",
    params(("sessionId" = String, Path, format = Uuid, pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$", description = "Session id")),
    responses(
        (status = 200, description = "Deleted", body = DeletedResponse),
        (status = 400, description = "Malformed id (VALIDATION_ERROR)", body = ErrorBody),
        (status = 404, description = "Unknown (SESSION_NOT_FOUND)", body = ErrorBody),
        ServerErrors,
    )
)]
pub async fn delete(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = session_id(&path)?;
    service::delete(&state, id.clone()).await?;
    Ok(HttpResponse::Ok().json(DeletedResponse::new(format!(
        "Session {id} deleted successfully"
    ))))
}

/// Renew a session: `expiresAt` moves to now + timeout, capped at createdAt + maxDuration.
#[utoipa::path(
    post, path = "/api/messaging/sessions/{sessionId}/renew", operation_id = "renewSession", tag = "sessions",
    params(
        ("sessionId" = String, Path, format = Uuid, pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$", description = "Session id"),
        ("X-Debug" = Option<bool>, Header, nullable = false, description = "`true` adds a `debug` object (provenance of each timeout field)"),
    ),
    responses(
        (status = 200, description = "Renewed", body = SessionResponse),
        (status = 400, description = "Malformed id (VALIDATION_ERROR)", body = ErrorBody),
        (status = 404, description = "Unknown (SESSION_NOT_FOUND)", body = ErrorBody),
        (status = 410, description = "Expired (SESSION_EXPIRED)", body = ErrorBody),
        (status = 422, description = "Max duration reached (SESSION_RENEWAL_FAILED)", body = ErrorBody),
        (status = 409, description = "Kept losing races with concurrent writers (CONFLICT); retry", body = ErrorBody),
        ServerErrors,
    )
)]
pub async fn renew(
    state: web::Data<AppState>,
    path: web::Path<String>,
    debug: DebugFlag,
) -> Result<HttpResponse, ApiError> {
    let snapshot = service::renew(&state, session_id(&path)?).await?;
    Ok(reply(actix_web::http::StatusCode::OK, &snapshot, debug.0))
}

/// Keep a session alive: records activity and renews it when `autoRenew` is on.
#[utoipa::path(
    post, path = "/api/messaging/sessions/{sessionId}/heartbeat", operation_id = "sessionHeartbeat", tag = "sessions",
    params(
        ("sessionId" = String, Path, format = Uuid, pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$", description = "Session id"),
        ("X-Debug" = Option<bool>, Header, nullable = false, description = "`true` adds a `debug` object (provenance of each timeout field)"),
    ),
    responses(
        (status = 200, description = "Session status", body = SessionResponse),
        (status = 400, description = "Malformed id (VALIDATION_ERROR)", body = ErrorBody),
        (status = 404, description = "Unknown (SESSION_NOT_FOUND)", body = ErrorBody),
        (status = 410, description = "Expired (SESSION_EXPIRED)", body = ErrorBody),
        (status = 409, description = "Kept losing races with concurrent writers (CONFLICT); retry", body = ErrorBody),
        ServerErrors,
    )
)]
pub async fn heartbeat(
    state: web::Data<AppState>,
    path: web::Path<String>,
    debug: DebugFlag,
) -> Result<HttpResponse, ApiError> {
    let snapshot = service::heartbeat(&state, session_id(&path)?).await?;
    Ok(reply(actix_web::http::StatusCode::OK, &snapshot, debug.0))
}

/// Change a session's timeout config. Fields given override the current ones; `expiresAt` is
/// recomputed from now, capped at createdAt + maxDuration.
#[utoipa::path(
    patch, path = "/api/messaging/sessions/{sessionId}/timeout", operation_id = "updateSessionTimeout", tag = "sessions",
    request_body = Option<PartialTimeoutConfig>,
    params(
        ("sessionId" = String, Path, format = Uuid, pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$", description = "Session id"),
        ("X-Debug" = Option<bool>, Header, nullable = false, description = "`true` adds a `debug` object (provenance of each timeout field)"),
    ),
    responses(
        (status = 200, description = "Updated session", body = SessionResponse),
        (status = 400, description = "Invalid config (VALIDATION_ERROR)", body = ErrorBody),
        (status = 404, description = "Unknown (SESSION_NOT_FOUND)", body = ErrorBody),
        (status = 410, description = "Expired (SESSION_EXPIRED)", body = ErrorBody),
        (status = 422, description = "The session is already older than the new maxDurationMinutes (MAX_DURATION_EXCEEDED)", body = ErrorBody),
        JsonWriteErrors,
        ServerErrors,
    )
)]
pub async fn update_timeout(
    state: web::Data<AppState>,
    path: web::Path<String>,
    debug: DebugFlag,
    ApiJson(body, _): ApiJson<PartialTimeoutConfig>,
) -> Result<HttpResponse, ApiError> {
    let id = session_id(&path)?;
    let patch = timeout_config("", body)?;
    let snapshot = service::update_timeout(&state, id, patch).await?;
    Ok(reply(actix_web::http::StatusCode::OK, &snapshot, debug.0))
}
