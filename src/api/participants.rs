//! `/api/messaging/sessions/{sessionId}/participants`: who takes part in a session (MoChat's
//! participant routes).

use actix_web::{delete, post, web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use validator::Validate;

use crate::api::auth::{Auth, AuthCheck};
use crate::api::error::{ApiError, AuthErrors, ErrorBody, JsonWriteErrors, ServerErrors};
use crate::api::extract::{ApiJson, DebugFlag};
use crate::api::sessions::{ok, ParticipantToken, SessionResponse};
use crate::domain::{Scope, SessionId, UserId};
use crate::service::participants as service;
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema, Validate)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ParticipantsRequest {
    /// User ids (1–100).
    #[schema(min_items = 1, max_items = 100)]
    #[validate(length(min = 1, max = 100, code = "items"))]
    pub participants: Vec<UserId>,
}

/// The session with its new participants, and a token for each.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ParticipantsAddedResponse {
    #[serde(flatten)]
    pub session: SessionResponse,
    /// One per user added (those already taking part get none). Shown once.
    pub participant_tokens: Vec<ParticipantToken>,
}

/// Add users to a session (making it a `group` session). Each new participant gets a token of
/// its own, which opens the session as that user; ids already taking part are left alone. At
/// most `AGENT_SESSIONS_MAX_PARTICIPANTS` participants (default 100), the agent included.
///
/// Records `session.participants_changed`.
///
/// **Auth:** Needs `sessions:manage` (a key bound to the session's agent will do).
#[utoipa::path(
    operation_id = "addSessionParticipants", tag = "sessions",
    request_body = ParticipantsRequest,
    params(
        ("sessionId" = SessionId, Path, description = "Session id"),
        ("X-Debug" = Option<bool>, Header, nullable = false, description = "`true` adds a `debug` object (provenance of each timeout field)"),
    ),
    responses(
        (status = 200, description = "The session and the new participants' tokens", body = ParticipantsAddedResponse),
        (status = 400, description = "Invalid input (VALIDATION_ERROR)", body = ErrorBody),
        (status = 404, description = "Unknown session (SESSION_NOT_FOUND)", body = ErrorBody),
        (status = 410, description = "Expired (SESSION_EXPIRED) or ended (SESSION_ENDED)", body = ErrorBody),
        (status = 422, description = "Over the participant limit (TOO_MANY_PARTICIPANTS); nothing added", body = ErrorBody),
        JsonWriteErrors,
        AuthErrors,
        ServerErrors,
    )
)]
#[post("/api/messaging/sessions/{sessionId}/participants")]
pub async fn add(
    state: web::Data<AppState>,
    auth: Auth,
    id: SessionId,
    debug: DebugFlag,
    ApiJson(body, _): ApiJson<ParticipantsRequest>,
) -> Result<HttpResponse, ApiError> {
    let caller = auth.check(AuthCheck::scope(Scope::SessionsManage).session(id))?;
    let (snapshot, tokens) = service::add(&state, &caller, id, body.participants).await?;
    Ok(HttpResponse::Ok().json(ParticipantsAddedResponse {
        session: SessionResponse::new(&snapshot, debug.0),
        participant_tokens: ParticipantToken::all(&tokens),
    }))
}

/// Remove users from a session; their tokens stop working at once. All or nothing: the
/// creator and the agent cannot be removed (400), and every id must take part (404).
///
/// Records `session.participants_changed`.
///
/// **Auth:** Needs `sessions:manage` (a key bound to the session's agent will do).
#[utoipa::path(
    operation_id = "removeSessionParticipants", tag = "sessions",
    request_body = ParticipantsRequest,
    params(
        ("sessionId" = SessionId, Path, description = "Session id"),
        ("X-Debug" = Option<bool>, Header, nullable = false, description = "`true` adds a `debug` object (provenance of each timeout field)"),
    ),
    responses(
        (status = 200, description = "The session without them", body = SessionResponse),
        (status = 400, description = "Invalid input, or the creator or agent named (VALIDATION_ERROR)", body = ErrorBody),
        (status = 404, description = "Unknown session (SESSION_NOT_FOUND), or a user not taking part (PARTICIPANT_NOT_FOUND)", body = ErrorBody),
        (status = 410, description = "Expired (SESSION_EXPIRED) or ended (SESSION_ENDED)", body = ErrorBody),
        JsonWriteErrors,
        AuthErrors,
        ServerErrors,
    )
)]
#[delete("/api/messaging/sessions/{sessionId}/participants")]
pub async fn remove(
    state: web::Data<AppState>,
    auth: Auth,
    id: SessionId,
    debug: DebugFlag,
    ApiJson(body, _): ApiJson<ParticipantsRequest>,
) -> Result<HttpResponse, ApiError> {
    let caller = auth.check(AuthCheck::scope(Scope::SessionsManage).session(id))?;
    let snapshot = service::remove(&state, &caller, id, body.participants).await?;
    Ok(ok(&snapshot, debug))
}

/// Remove one user from a session (for clients that cannot send a body with DELETE); as
/// `removeSessionParticipants`.
///
/// **Auth:** Needs `sessions:manage` (a key bound to the session's agent will do).
#[utoipa::path(
    operation_id = "removeSessionParticipant", tag = "sessions",
    params(
        ("sessionId" = SessionId, Path, description = "Session id"),
        ("userId" = UserId, Path, description = "The user to remove"),
        ("X-Debug" = Option<bool>, Header, nullable = false, description = "`true` adds a `debug` object (provenance of each timeout field)"),
    ),
    responses(
        (status = 200, description = "The session without them", body = SessionResponse),
        (status = 400, description = "Malformed id, or the creator or agent named (VALIDATION_ERROR)", body = ErrorBody),
        (status = 404, description = "Unknown session (SESSION_NOT_FOUND), or a user not taking part (PARTICIPANT_NOT_FOUND)", body = ErrorBody),
        (status = 409, description = "Kept losing races with concurrent writers (CONFLICT); retry", body = ErrorBody),
        (status = 410, description = "Expired (SESSION_EXPIRED) or ended (SESSION_ENDED)", body = ErrorBody),
        AuthErrors,
        ServerErrors,
    )
)]
#[delete("/api/messaging/sessions/{sessionId}/participants/{userId}")]
pub async fn remove_one(
    state: web::Data<AppState>,
    auth: Auth,
    id: SessionId,
    user: UserId,
    debug: DebugFlag,
) -> Result<HttpResponse, ApiError> {
    let caller = auth.check(AuthCheck::scope(Scope::SessionsManage).session(id))?;
    let snapshot = service::remove(&state, &caller, id, vec![user]).await?;
    Ok(ok(&snapshot, debug))
}
