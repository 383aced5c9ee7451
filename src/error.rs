//! One error enum, one mapping to HTTP.
//!
//! The body serves every client family at once: the nested `error` object is what the ElizaOS
//! api-client and MoChat-style clients read, the top-level `code`/`message`/`details` are what
//! plain `fetch` readers use.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use crate::clock::{to_rfc3339, Millis};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    Validation { message: String, details: Value },
    #[error("Request body must be JSON (Content-Type: application/json)")]
    UnsupportedMediaType,
    #[error("Request body exceeds {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("Session {0} not found")]
    SessionNotFound(String),
    #[error("Session {session_id} has expired")]
    SessionExpired {
        session_id: String,
        expired_at: Millis,
    },
    #[error("Session {session_id} cannot be renewed: the maximum duration is reached")]
    RenewalFailed { session_id: String, cap: Millis },
    /// A PATCH asked for a maximum duration the session has already outlived.
    #[error("Session {session_id} is already older than the requested maxDurationMinutes")]
    MaxDurationExceeded { session_id: String, age_ms: i64 },
    #[error("Agent {0} not found")]
    AgentNotFound(String),
    #[error("{0}")]
    NotFound(String),
    /// Carries the resource's methods for the `Allow` header.
    #[error("Method not allowed; this resource allows {0}")]
    MethodNotAllowed(&'static str),
    #[error("The Idempotency-Key was already used with a different request")]
    IdempotencyKeyReused,
    /// A write lost a race with a concurrent one; the transaction is retried.
    #[error("Concurrent update; retry the request")]
    Conflict,
    #[error("The database is unavailable")]
    Unavailable(String),
    #[error("Internal server error")]
    Internal(String),
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
        match self {
            Self::Validation { .. } | Self::UnsupportedMediaType => "VALIDATION_ERROR",
            Self::PayloadTooLarge { .. } => "PAYLOAD_TOO_LARGE",
            Self::SessionNotFound(_) => "SESSION_NOT_FOUND",
            Self::SessionExpired { .. } => "SESSION_EXPIRED",
            Self::RenewalFailed { .. } => "SESSION_RENEWAL_FAILED",
            Self::MaxDurationExceeded { .. } => "MAX_DURATION_EXCEEDED",
            Self::AgentNotFound(_) => "AGENT_NOT_FOUND",
            Self::NotFound(_) => "NOT_FOUND",
            Self::MethodNotAllowed(_) => "METHOD_NOT_ALLOWED",
            Self::IdempotencyKeyReused => "IDEMPOTENCY_KEY_REUSED",
            Self::Conflict => "CONFLICT",
            Self::Unavailable(_) => "SERVICE_UNAVAILABLE",
            Self::Internal(_) => "INTERNAL_ERROR",
        }
    }

    fn details(&self) -> Option<Value> {
        match self {
            Self::Validation { details, .. } => Some(details.clone()),
            Self::PayloadTooLarge { limit } => Some(json!({ "limitBytes": limit })),
            Self::SessionNotFound(id) => Some(json!({ "sessionId": id })),
            Self::SessionExpired {
                session_id,
                expired_at,
            } => Some(json!({ "sessionId": session_id, "expiredAt": to_rfc3339(*expired_at) })),
            Self::RenewalFailed { session_id, cap } => Some(json!({
                "sessionId": session_id,
                "reason": "max_duration_reached",
                "maxExpiresAt": to_rfc3339(*cap),
            })),
            Self::MaxDurationExceeded { session_id, age_ms } => Some(json!({
                "sessionId": session_id,
                "field": "maxDurationMinutes",
                "sessionAgeMs": age_ms,
            })),
            Self::AgentNotFound(id) => Some(json!({ "agentId": id })),
            _ => None,
        }
    }
}

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
        match self {
            Self::Validation { .. } => StatusCode::BAD_REQUEST,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::SessionNotFound(_) | Self::AgentNotFound(_) | Self::NotFound(_) => {
                StatusCode::NOT_FOUND
            }
            Self::SessionExpired { .. } => StatusCode::GONE,
            Self::RenewalFailed { .. }
            | Self::MaxDurationExceeded { .. }
            | Self::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Conflict => StatusCode::CONFLICT,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            Self::Internal(cause) => tracing::error!(%cause, "internal error"),
            Self::Unavailable(cause) => tracing::warn!(%cause, "database unavailable"),
            _ => {}
        }
        let code = self.code().to_owned();
        let message = self.to_string();
        let details = self.details();
        let mut response = HttpResponse::build(self.status_code());
        if let Self::MethodNotAllowed(allow) = self {
            response.insert_header((actix_web::http::header::ALLOW, *allow));
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

impl From<diesel::result::Error> for ApiError {
    fn from(e: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind, Error};
        match e {
            // A concurrent insert of the same key, or PostgreSQL's serialization failure:
            // the caller's transaction is retried.
            Error::DatabaseError(
                DatabaseErrorKind::UniqueViolation | DatabaseErrorKind::SerializationFailure,
                _,
            ) => Self::Conflict,
            e => Self::Internal(format!("database: {e}")),
        }
    }
}

impl From<r2d2::Error> for ApiError {
    fn from(e: r2d2::Error) -> Self {
        Self::Unavailable(format!("pool: {e}"))
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
