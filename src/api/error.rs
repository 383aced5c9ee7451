//! One error enum, one mapping to HTTP.
//!
//! The body serves every client family at once: the nested `error` object is what the ElizaOS
//! api-client and MoChat-style clients read, the top-level `code`/`message`/`details` are what
//! plain `fetch` readers use.

use actix_web::http::header::WWW_AUTHENTICATE;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use crate::auth::AuthError;
use crate::clock::to_rfc3339;
use crate::events::TooManyStreams;
use crate::rate_limit::Limited;
use crate::service::ServiceError;

/// Everything a request can fail with: the service's errors and the HTTP layer's own.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    Validation { message: String, details: Value },
    #[error("Request body must be JSON (Content-Type: application/json)")]
    UnsupportedMediaType,
    #[error("Request body exceeds {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("{0}")]
    NotFound(String),
    /// Carries the resource's methods for the `Allow` header.
    #[error("Method not allowed; this resource allows {0}")]
    MethodNotAllowed(String),
    /// No usable credential (401, with `WWW-Authenticate`). The extractor never builds it
    /// from [`AuthError::Unavailable`], which is a 503.
    #[error("{0}")]
    Unauthorized(AuthError),
    /// Over a rate limit (429, with `Retry-After`).
    #[error("Rate limit exceeded ({} limit: {} requests); retry in {} s", .0.info.kind.as_str(), .0.info.limit, .0.retry_after_secs)]
    RateLimited(Limited),
    /// Too many open streams or long-polls (429).
    #[error("Too many open streams: {0}; close one first")]
    TooManyStreams(#[from] TooManyStreams),
    #[error(transparent)]
    Service(#[from] ServiceError),
}

impl ApiError {
    /// A 400 naming the offending field.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        let field = field.into();
        let message = message.into();
        Self::Validation {
            message: format!("{field}: {message}"),
            details: json!({ "field": field, "reason": message }),
        }
    }

    pub fn code(&self) -> &'static str {
        use ServiceError as S;
        match self {
            Self::Validation { .. } | Self::UnsupportedMediaType => "VALIDATION_ERROR",
            Self::PayloadTooLarge { .. } => "PAYLOAD_TOO_LARGE",
            Self::NotFound(_) => "NOT_FOUND",
            Self::MethodNotAllowed(_) => "METHOD_NOT_ALLOWED",
            Self::Unauthorized(_) => "UNAUTHORIZED",
            Self::RateLimited(_) => "RATE_LIMITED",
            Self::TooManyStreams(_) => "TOO_MANY_STREAMS",
            Self::Service(e) => match e {
                S::SessionNotFound(_) => "SESSION_NOT_FOUND",
                S::SessionExpired { .. } => "SESSION_EXPIRED",
                S::SessionEnded { .. } => "SESSION_ENDED",
                S::SessionPaused(_) => "SESSION_PAUSED",
                S::ParticipantNotFound { .. } => "PARTICIPANT_NOT_FOUND",
                S::Invalid { .. } => "VALIDATION_ERROR",
                S::TooManyParticipants { .. } => "TOO_MANY_PARTICIPANTS",
                S::RenewalFailed { .. } => "SESSION_RENEWAL_FAILED",
                S::MaxDurationExceeded { .. } => "MAX_DURATION_EXCEEDED",
                S::AgentNotFound(_) => "AGENT_NOT_FOUND",
                S::KeyNotFound(_) => "KEY_NOT_FOUND",
                S::CursorExpired { .. } => "CURSOR_EXPIRED",
                S::Forbidden(_) => "FORBIDDEN",
                S::ForeignAuthor => "VALIDATION_ERROR",
                S::IdempotencyKeyReused => "IDEMPOTENCY_KEY_REUSED",
                S::Conflict => "CONFLICT",
                S::Unavailable(_) | S::Busy(_) => "SERVICE_UNAVAILABLE",
                S::Internal(_) => "INTERNAL_ERROR",
            },
        }
    }

    /// The message users see; 5xx messages never carry internals (the log has them).
    fn message(&self) -> String {
        use ServiceError as S;
        let Self::Service(e) = self else {
            return self.to_string();
        };
        match e {
            S::SessionNotFound(id) => format!("Session {id} not found"),
            S::SessionExpired { session_id, .. } => format!("Session {session_id} has expired"),
            S::SessionEnded { session_id, .. } => format!("Session {session_id} has ended"),
            S::SessionPaused(id) => {
                format!("Session {id} is paused; resume it before sending messages or renewing")
            }
            S::ParticipantNotFound {
                session_id,
                user_id,
            } => format!("User {user_id} does not take part in session {session_id}"),
            S::Invalid { field, reason } => format!("{field}: {reason}"),
            S::TooManyParticipants { max } => format!(
                "A session has at most {max} participants, its agent included \
                 (AGENT_SESSIONS_MAX_PARTICIPANTS)"
            ),
            S::RenewalFailed { session_id, .. } => {
                format!("Session {session_id} cannot be renewed: the maximum duration is reached")
            }
            S::MaxDurationExceeded { session_id, .. } => format!(
                "Session {session_id} is already older than the requested maxDurationMinutes"
            ),
            S::AgentNotFound(id) => format!("Agent {id} not found"),
            S::KeyNotFound(id) => format!("API key {id} not found"),
            S::CursorExpired { cursor, .. } => {
                format!("Cursor {cursor} is older than the events kept; resync from cursor 0")
            }
            S::Forbidden(why) => why.clone(),
            S::ForeignAuthor => format!("authorId: {FOREIGN_AUTHOR}"),
            S::IdempotencyKeyReused => {
                "The Idempotency-Key was already used with a different request".to_owned()
            }
            S::Conflict => "Concurrent update; retry the request".to_owned(),
            S::Unavailable(_) => "The database is unavailable".to_owned(),
            S::Busy(_) => "The service is busy; try again shortly".to_owned(),
            S::Internal(_) => "Internal server error".to_owned(),
        }
    }

    fn details(&self) -> Option<Value> {
        use ServiceError as S;
        match self {
            Self::Validation { details, .. } => Some(details.clone()),
            Self::PayloadTooLarge { limit } => Some(json!({ "limitBytes": limit })),
            Self::Service(S::SessionNotFound(id)) => Some(json!({ "sessionId": id })),
            Self::Service(S::SessionExpired {
                session_id,
                expired_at,
            }) => Some(json!({ "sessionId": session_id, "expiredAt": to_rfc3339(*expired_at) })),
            Self::Service(S::SessionEnded {
                session_id,
                ended_at,
                reason,
            }) => Some(json!({
                "sessionId": session_id,
                "endedAt": to_rfc3339(*ended_at),
                "reason": reason,
            })),
            Self::Service(S::SessionPaused(id)) => {
                Some(json!({ "sessionId": id, "status": "paused" }))
            }
            Self::Service(S::ParticipantNotFound {
                session_id,
                user_id,
            }) => Some(json!({ "sessionId": session_id, "userId": user_id })),
            Self::Service(S::TooManyParticipants { max }) => {
                Some(json!({ "field": "participants", "max": max }))
            }
            Self::Service(S::Invalid { field, reason }) => {
                Some(json!({ "field": field, "reason": reason }))
            }
            Self::Service(S::RenewalFailed { session_id, cap }) => Some(json!({
                "sessionId": session_id,
                "reason": "max_duration_reached",
                "maxExpiresAt": to_rfc3339(*cap),
            })),
            Self::Service(S::MaxDurationExceeded { session_id, age_ms }) => Some(json!({
                "sessionId": session_id,
                "field": "maxDurationMinutes",
                "sessionAgeMs": age_ms,
            })),
            Self::Service(S::AgentNotFound(id)) => Some(json!({ "agentId": id })),
            Self::Service(S::KeyNotFound(id)) => Some(json!({ "keyId": id })),
            Self::Service(S::CursorExpired { cursor, oldest }) => {
                Some(json!({ "cursor": cursor, "oldestCursor": oldest }))
            }
            Self::RateLimited(l) => Some(json!({
                "limit": l.info.kind.as_str(),
                "retryAfterSeconds": l.retry_after_secs,
            })),
            Self::TooManyStreams(TooManyStreams::PerSession(max)) => {
                Some(json!({ "limit": "streams_per_session", "max": max }))
            }
            Self::TooManyStreams(TooManyStreams::PerCredential(max)) => {
                Some(json!({ "limit": "streams_per_credential", "max": max }))
            }
            Self::Service(S::ForeignAuthor) => {
                Some(json!({ "field": "authorId", "reason": FOREIGN_AUTHOR }))
            }
            _ => None,
        }
    }
}

const FOREIGN_AUTHOR: &str =
    "must be a participant of the session (its agentId or one of its users)";

/// The error body. `error` repeats `code`, `message` and `details` for nested readers.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
    /// SCREAMING_SNAKE error code, e.g. `SESSION_EXPIRED`.
    #[schema(example = "SESSION_NOT_FOUND")]
    pub code: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    #[schema(example = "SESSION_NOT_FOUND")]
    pub code: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        use ServiceError as S;
        match self {
            Self::Validation { .. } | Self::Service(S::ForeignAuthor | S::Invalid { .. }) => {
                StatusCode::BAD_REQUEST
            }
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::NotFound(_)
            | Self::Service(S::SessionNotFound(_))
            | Self::Service(S::ParticipantNotFound { .. })
            | Self::Service(S::AgentNotFound(_))
            | Self::Service(S::KeyNotFound(_)) => StatusCode::NOT_FOUND,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Service(S::Forbidden(_)) => StatusCode::FORBIDDEN,
            Self::RateLimited(_) | Self::TooManyStreams(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::Service(
                S::SessionExpired { .. } | S::SessionEnded { .. } | S::CursorExpired { .. },
            ) => StatusCode::GONE,
            Self::Service(
                S::RenewalFailed { .. }
                | S::MaxDurationExceeded { .. }
                | S::IdempotencyKeyReused
                | S::TooManyParticipants { .. },
            ) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Service(S::Conflict | S::SessionPaused(_)) => StatusCode::CONFLICT,
            Self::Service(S::Unavailable(_) | S::Busy(_)) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Service(S::Internal(_)) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            Self::Service(ServiceError::Internal(cause)) => {
                tracing::error!(%cause, "internal error")
            }
            Self::Service(ServiceError::Unavailable(cause)) => {
                tracing::warn!(%cause, "database unavailable")
            }
            Self::Service(ServiceError::Busy(cause)) => tracing::warn!(%cause, "overloaded"),
            _ => {}
        }
        let code = self.code().to_owned();
        let message = self.message();
        let details = self.details();
        let mut response = HttpResponse::build(self.status_code());
        match self {
            Self::MethodNotAllowed(allow) => {
                response.insert_header((actix_web::http::header::ALLOW, allow.as_str()));
            }
            Self::Unauthorized(AuthError::Missing) => {
                response.insert_header((WWW_AUTHENTICATE, r#"Bearer realm="agent-sessions""#));
            }
            Self::Unauthorized(_) => {
                response.insert_header((
                    WWW_AUTHENTICATE,
                    r#"Bearer realm="agent-sessions", error="invalid_token""#,
                ));
            }
            Self::RateLimited(l) => {
                response.insert_header((actix_web::http::header::RETRY_AFTER, l.retry_after_secs));
            }
            Self::Service(ServiceError::Busy(_)) => {
                response.insert_header((actix_web::http::header::RETRY_AFTER, 1));
            }
            _ => {}
        }
        response.json(ErrorBody {
            error: ErrorDetail {
                code: code.clone(),
                message: message.clone(),
                details: details.clone(),
            },
            code,
            message,
            details,
        })
    }
}

/// Responses every operation that touches the database can give.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // documents responses; never constructed
pub enum ServerErrors {
    /// An unexpected failure (INTERNAL_ERROR); details are in the server log only.
    #[response(status = 500)]
    Internal(ErrorBody),
    /// The database cannot be reached (SERVICE_UNAVAILABLE).
    #[response(status = 503)]
    Unavailable(ErrorBody),
}

/// Responses of every operation that needs a credential.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // documents responses; never constructed
pub enum AuthErrors {
    /// No credential (when keys are configured), or a malformed, unknown or revoked one
    /// (UNAUTHORIZED; header `WWW-Authenticate: Bearer`).
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// The credential may not do this: a key without the scope, bound to another agent, or a
    /// session token used outside its session (FORBIDDEN).
    #[response(status = 403)]
    Forbidden(ErrorBody),
    /// Over a rate limit (RATE_LIMITED; headers `Retry-After` and `RateLimit-*`).
    #[response(status = 429)]
    TooManyRequests(ErrorBody),
}

/// Responses every operation that takes a JSON body and writes can give.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // documents responses; never constructed
pub enum JsonWriteErrors {
    /// Kept losing races with concurrent writers (CONFLICT); retry.
    #[response(status = 409)]
    Conflict(ErrorBody),
    /// Body too large (PAYLOAD_TOO_LARGE).
    #[response(status = 413)]
    TooLarge(ErrorBody),
    /// Body is not JSON (VALIDATION_ERROR).
    #[response(status = 415)]
    NotJson(ErrorBody),
}
