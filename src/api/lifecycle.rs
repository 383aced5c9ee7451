//! A session's lifecycle and the changes made to it: `PATCH .../{id}` (title, metadata),
//! `POST .../pause`, `.../resume`, `.../close`, and `PATCH .../state` (conversation state).

use actix_web::{patch, post, web, HttpResponse};
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;
use validator::Validate;

use crate::api::auth::{Auth, AuthCheck};
use crate::api::error::{ApiError, AuthErrors, ErrorBody, JsonWriteErrors, ServerErrors};
use crate::api::extract::{ApiJson, DebugFlag};
use crate::api::sessions::{normalized_title, ok, SessionResponse, TITLE_MAX_CHARS};
use crate::domain::conversation::{Engagement, Sentiment, INTENTS_MAX, INTENT_MAX_CHARS};
use crate::domain::{Scope, SessionId, Stage, StatePatch};
use crate::service::lifecycle::{self as service, SessionPatch};
use crate::state::AppState;
use crate::{json, validation};

/// A change to a session's title and metadata; fields left out stay as they are.
#[derive(Debug, Deserialize, ToSchema, Validate)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateSessionRequest {
    /// At most 200 characters, trimmed; `null` or a blank title clears it.
    #[serde(default, deserialize_with = "json::nullable")]
    #[schema(value_type = Option<String>, max_length = 200, pattern = "^[^\\u0000]*$", example = "Project Discussion")]
    pub title: Option<Option<String>>,
    /// Replaces the metadata whole: any JSON object (≤ 16 KB serialized, nested ≤ 5 levels).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    #[validate(custom(function = "validation::metadata"))]
    pub metadata: Option<Value>,
}

impl UpdateSessionRequest {
    fn parse(self) -> Result<SessionPatch, ApiError> {
        if let Some(Some(title)) = &self.title {
            validation::text(title).map_err(|e| {
                ApiError::invalid("title", e.message.unwrap_or_default().into_owned())
            })?;
            if title.chars().count() as u64 > TITLE_MAX_CHARS {
                return Err(ApiError::invalid(
                    "title",
                    format!("must be at most {TITLE_MAX_CHARS} characters"),
                ));
            }
        }
        Ok(SessionPatch {
            title: self.title.map(normalized_title),
            metadata: self
                .metadata
                .map(|m| validation::metadata_or_empty(Some(m))),
        })
    }
}

/// Change a session's title and metadata (the metadata is replaced whole).
///
/// Records `session.updated` when either changed.
///
/// **Auth:** Needs `sessions:manage`.
#[utoipa::path(
    operation_id = "updateSession", tag = "sessions",
    request_body = Option<UpdateSessionRequest>,
    params(
        ("sessionId" = SessionId, Path, description = "Session id"),
        ("X-Debug" = Option<bool>, Header, nullable = false, description = "`true` adds a `debug` object (provenance of each timeout field)"),
    ),
    responses(
        (status = 200, description = "The updated session", body = SessionResponse),
        (status = 400, description = "Invalid input (VALIDATION_ERROR)", body = ErrorBody),
        (status = 404, description = "Unknown (SESSION_NOT_FOUND)", body = ErrorBody),
        (status = 410, description = "Expired (SESSION_EXPIRED) or ended (SESSION_ENDED)", body = ErrorBody),
        JsonWriteErrors,
        AuthErrors,
        ServerErrors,
    )
)]
#[patch("/api/messaging/sessions/{sessionId}")]
pub async fn update(
    state: web::Data<AppState>,
    auth: Auth,
    id: SessionId,
    debug: DebugFlag,
    ApiJson(body, _): ApiJson<UpdateSessionRequest>,
) -> Result<HttpResponse, ApiError> {
    let caller = auth.check(AuthCheck::scope(Scope::SessionsManage).session(id))?;
    let patch = body.parse()?;
    Ok(ok(
        &service::update(&state, &caller, id, patch).await?,
        debug,
    ))
}

/// Why a session is closed.
#[derive(Debug, Default, Deserialize, ToSchema, Validate)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CloseSessionRequest {
    /// Shown as `endReason` and in 410 `SESSION_ENDED` answers; at most 500 characters.
    /// Left out (or blank): `closed`.
    #[serde(default)]
    #[schema(max_length = 500, pattern = "^[^\\u0000]*$", example = "resolved")]
    #[validate(
        custom(function = "validation::text"),
        length(max = 500, code = "chars")
    )]
    pub reason: Option<String>,
}

/// Pause a session: its inactivity timer stops and `expiresAt` moves to the max-duration
/// cap (createdAt + maxDurationMinutes), which it cannot outlive. While paused, sending a
/// message or renewing answers 409 `SESSION_PAUSED`; reads, heartbeats (without renewal) and
/// events work. Pausing a paused session changes nothing.
///
/// Records `session.paused`.
///
/// **Auth:** Needs `sessions:manage`, or the token of the session's creator.
#[utoipa::path(
    operation_id = "pauseSession", tag = "sessions",
    params(
        ("sessionId" = SessionId, Path, description = "Session id"),
        ("X-Debug" = Option<bool>, Header, nullable = false, description = "`true` adds a `debug` object (provenance of each timeout field)"),
    ),
    responses(
        (status = 200, description = "The paused session", body = SessionResponse),
        (status = 400, description = "Malformed id (VALIDATION_ERROR)", body = ErrorBody),
        (status = 404, description = "Unknown (SESSION_NOT_FOUND)", body = ErrorBody),
        (status = 409, description = "Kept losing races with concurrent writers (CONFLICT); retry", body = ErrorBody),
        (status = 410, description = "Expired (SESSION_EXPIRED) or ended (SESSION_ENDED)", body = ErrorBody),
        AuthErrors,
        ServerErrors,
    )
)]
#[post("/api/messaging/sessions/{sessionId}/pause")]
pub async fn pause(
    state: web::Data<AppState>,
    auth: Auth,
    id: SessionId,
    debug: DebugFlag,
) -> Result<HttpResponse, ApiError> {
    let caller = auth.check(AuthCheck::own_session(Scope::SessionsManage, id))?;
    Ok(ok(&service::pause(&state, &caller, id).await?, debug))
}

/// Resume a paused session: a full inactivity timeout starts now (capped by the maximum
/// duration), as after a renewal. Resuming an active session changes nothing.
///
/// Records `session.resumed`.
///
/// **Auth:** Needs `sessions:manage`, or the token of the session's creator.
#[utoipa::path(
    operation_id = "resumeSession", tag = "sessions",
    params(
        ("sessionId" = SessionId, Path, description = "Session id"),
        ("X-Debug" = Option<bool>, Header, nullable = false, description = "`true` adds a `debug` object (provenance of each timeout field)"),
    ),
    responses(
        (status = 200, description = "The active session", body = SessionResponse),
        (status = 400, description = "Malformed id (VALIDATION_ERROR)", body = ErrorBody),
        (status = 404, description = "Unknown (SESSION_NOT_FOUND)", body = ErrorBody),
        (status = 409, description = "Kept losing races with concurrent writers (CONFLICT); retry", body = ErrorBody),
        (status = 410, description = "Expired (SESSION_EXPIRED) or ended (SESSION_ENDED)", body = ErrorBody),
        AuthErrors,
        ServerErrors,
    )
)]
#[post("/api/messaging/sessions/{sessionId}/resume")]
pub async fn resume(
    state: web::Data<AppState>,
    auth: Auth,
    id: SessionId,
    debug: DebugFlag,
) -> Result<HttpResponse, ApiError> {
    let caller = auth.check(AuthCheck::own_session(Scope::SessionsManage, id))?;
    Ok(ok(&service::resume(&state, &caller, id).await?, debug))
}

/// Close (archive) a session: it ends now. Its seed routes then answer 410 `SESSION_ENDED`
/// (with `details.endedAt` and `details.reason`) until the retention window purges it; its
/// transcript stays readable until then.
///
/// Records `session.closed`, the last event of its log.
///
/// **Auth:** Needs `sessions:manage`, or the token of the session's creator.
#[utoipa::path(
    operation_id = "closeSession", tag = "sessions",
    request_body = Option<CloseSessionRequest>,
    params(
        ("sessionId" = SessionId, Path, description = "Session id"),
        ("X-Debug" = Option<bool>, Header, nullable = false, description = "`true` adds a `debug` object (provenance of each timeout field)"),
    ),
    responses(
        (status = 200, description = "The ended session", body = SessionResponse),
        (status = 400, description = "Invalid input (VALIDATION_ERROR)", body = ErrorBody),
        (status = 404, description = "Unknown (SESSION_NOT_FOUND)", body = ErrorBody),
        (status = 410, description = "Expired (SESSION_EXPIRED) or ended already (SESSION_ENDED)", body = ErrorBody),
        JsonWriteErrors,
        AuthErrors,
        ServerErrors,
    )
)]
#[post("/api/messaging/sessions/{sessionId}/close")]
pub async fn close(
    state: web::Data<AppState>,
    auth: Auth,
    id: SessionId,
    debug: DebugFlag,
    ApiJson(body, _): ApiJson<CloseSessionRequest>,
) -> Result<HttpResponse, ApiError> {
    let caller = auth.check(AuthCheck::own_session(Scope::SessionsManage, id))?;
    let reason = body
        .reason
        .map(|r| r.trim().to_owned())
        .filter(|r| !r.is_empty());
    Ok(ok(
        &service::close(&state, &caller, id, reason).await?,
        debug,
    ))
}

/// A change to the conversation state: fields left out stay as they are, `null` clears one
/// (except `stage`).
#[derive(Debug, Deserialize, ToSchema, Validate)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateStateRequest {
    /// Cannot be cleared.
    #[serde(default, deserialize_with = "json::nullable")]
    #[schema(value_type = Stage)]
    pub stage: Option<Option<Stage>>,
    /// At most 20, each at most 200 characters.
    #[serde(default, deserialize_with = "json::nullable")]
    #[schema(schema_with = intents_schema)]
    pub intents: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "json::nullable")]
    #[schema(value_type = Option<Sentiment>)]
    pub sentiment: Option<Option<Sentiment>>,
    #[serde(default, deserialize_with = "json::nullable")]
    #[schema(value_type = Option<Engagement>)]
    pub engagement: Option<Option<Engagement>>,
    /// From 0 to 1.
    #[serde(default, deserialize_with = "json::nullable")]
    #[schema(value_type = Option<f64>, minimum = 0, maximum = 1)]
    pub confidence: Option<Option<f64>>,
}

/// A nullable list of at most 20 strings of at most 200 characters.
fn intents_schema() -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
    ArrayBuilder::new()
        .schema_type(utoipa::openapi::schema::SchemaType::from_iter([
            Type::Array,
            Type::Null,
        ]))
        .items(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .max_length(Some(INTENT_MAX_CHARS)),
        )
        .max_items(Some(INTENTS_MAX))
        .description(Some("At most 20, each at most 200 characters."))
        .build()
}

impl UpdateStateRequest {
    fn parse(self) -> Result<StatePatch, ApiError> {
        let stage = match self.stage {
            Some(None) => return Err(ApiError::invalid("stage", "cannot be null")),
            Some(Some(stage)) => Some(stage),
            None => None,
        };
        if let Some(Some(intents)) = &self.intents {
            if intents.len() > INTENTS_MAX {
                return Err(ApiError::invalid(
                    "intents",
                    format!("must hold at most {INTENTS_MAX} intents"),
                ));
            }
            for (i, intent) in intents.iter().enumerate() {
                if intent.chars().count() > INTENT_MAX_CHARS {
                    return Err(ApiError::invalid(
                        format!("intents[{i}]"),
                        format!("must be at most {INTENT_MAX_CHARS} characters"),
                    ));
                }
            }
        }
        if let Some(Some(c)) = self.confidence {
            if !(0.0..=1.0).contains(&c) {
                return Err(ApiError::invalid("confidence", "must be from 0 to 1"));
            }
        }
        Ok(StatePatch {
            stage,
            intents: self.intents,
            sentiment: self.sentiment,
            engagement: self.engagement,
            confidence: self.confidence,
        })
    }
}

/// Update the conversation state: the fields given are merged into it.
///
/// Records `session.state_changed` with each changed field before and after (nothing when
/// nothing changed).
///
/// **Auth:** Needs a key bound to the session's agent with `sessions:write` (the agent
/// runtime), or `sessions:manage`.
#[utoipa::path(
    operation_id = "updateSessionState", tag = "sessions",
    request_body = Option<UpdateStateRequest>,
    params(
        ("sessionId" = SessionId, Path, description = "Session id"),
        ("X-Debug" = Option<bool>, Header, nullable = false, description = "`true` adds a `debug` object (provenance of each timeout field)"),
    ),
    responses(
        (status = 200, description = "The session with its new state", body = SessionResponse),
        (status = 400, description = "Invalid state (VALIDATION_ERROR, details.field names it)", body = ErrorBody),
        (status = 404, description = "Unknown (SESSION_NOT_FOUND)", body = ErrorBody),
        (status = 410, description = "Expired (SESSION_EXPIRED) or ended (SESSION_ENDED)", body = ErrorBody),
        JsonWriteErrors,
        AuthErrors,
        ServerErrors,
    )
)]
#[patch("/api/messaging/sessions/{sessionId}/state")]
pub async fn update_state(
    state: web::Data<AppState>,
    auth: Auth,
    id: SessionId,
    debug: DebugFlag,
    ApiJson(body, _): ApiJson<UpdateStateRequest>,
) -> Result<HttpResponse, ApiError> {
    let check = AuthCheck::scope(Scope::SessionsManage)
        .session(id)
        .or_agent_with(Scope::SessionsWrite);
    let caller = auth.check(check)?;
    let patch = body.parse()?;
    Ok(ok(
        &service::update_state(&state, &caller, id, patch).await?,
        debug,
    ))
}
