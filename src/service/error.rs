//! What a use-case can fail with, in domain terms. `api/` maps each variant to a status code
//! and body.

use crate::clock::Millis;
use crate::domain::{AgentId, Forbidden, KeyId, SessionId, UserId};

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("session {0} not found")]
    SessionNotFound(SessionId),
    /// The session is over (timed out, or ended) at the time of the request.
    #[error("session {session_id} has expired")]
    SessionExpired {
        session_id: SessionId,
        expired_at: Millis,
    },
    /// The session was closed (or its agent deleted) at `ended_at`.
    #[error("session {session_id} has ended")]
    SessionEnded {
        session_id: SessionId,
        ended_at: Millis,
        reason: String,
    },
    /// The session is paused: it takes no messages (and no renewals) until resumed.
    #[error("session {0} is paused")]
    SessionPaused(SessionId),
    #[error("user {user_id} does not take part in session {session_id}")]
    ParticipantNotFound {
        session_id: SessionId,
        user_id: UserId,
    },
    /// The session would have more participants than allowed (its agent included).
    #[error("a session has at most {max} participants")]
    TooManyParticipants { max: usize },
    /// Input that is well-formed but not acceptable for this session (a 400 naming the field).
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    /// An explicit renew when `expiresAt` already sits at the max-duration cap.
    #[error("session {session_id} cannot be renewed: the maximum duration is reached")]
    RenewalFailed { session_id: SessionId, cap: Millis },
    /// A new max duration the session has already outlived.
    #[error("session {session_id} is already older than the requested max duration")]
    MaxDurationExceeded { session_id: SessionId, age_ms: i64 },
    #[error("agent {0} not found")]
    AgentNotFound(AgentId),
    /// A feed cursor older than what is kept: events after it are gone.
    #[error("cursor {cursor} is older than the oldest event kept ({oldest})")]
    CursorExpired { cursor: i64, oldest: i64 },
    #[error("API key {0} not found")]
    KeyNotFound(KeyId),
    /// The caller is authenticated but may not do this (a bound key and another agent's
    /// session, a session token and another session, an author it cannot write as).
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// A message's author does not take part in the session.
    #[error("the author must be a participant of the session")]
    ForeignAuthor,
    #[error("the idempotency key was already used with a different request")]
    IdempotencyKeyReused,
    /// A write kept losing races with concurrent writers.
    #[error("concurrent update")]
    Conflict,
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// The database works, but no connection (or place in the write queue) came free in time.
    #[error("overloaded: {0}")]
    Busy(String),
    #[error("{0}")]
    Internal(String),
}

impl From<diesel::result::Error> for ServiceError {
    fn from(e: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind, Error};
        match e {
            // A concurrent insert of the same key, or PostgreSQL's serialization failure:
            // the caller's transaction is retried.
            Error::DatabaseError(
                DatabaseErrorKind::UniqueViolation | DatabaseErrorKind::SerializationFailure,
                _,
            ) => Self::Conflict,
            // PostgreSQL broke a lock cycle by aborting this transaction: retrying is safe.
            Error::DatabaseError(_, info) if info.message().contains("deadlock detected") => {
                Self::Conflict
            }
            // The connection is gone (the server restarted, the network failed): the request
            // may succeed later, on another connection.
            Error::DatabaseError(
                DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
                info,
            ) => Self::Unavailable(info.message().to_owned()),
            e => Self::Internal(format!("database: {e}")),
        }
    }
}

impl From<Forbidden> for ServiceError {
    fn from(e: Forbidden) -> Self {
        Self::Forbidden(e.0)
    }
}

impl From<crate::db::DbError> for ServiceError {
    fn from(e: crate::db::DbError) -> Self {
        use crate::db::DbError;
        match e {
            DbError::Query(e) => e.into(),
            e @ DbError::Pool(_) => Self::Busy(e.to_string()),
            e @ (DbError::Down | DbError::Connect(_)) => Self::Unavailable(e.to_string()),
            e => Self::Internal(e.to_string()),
        }
    }
}

impl From<serde_json::Error> for ServiceError {
    fn from(e: serde_json::Error) -> Self {
        Self::Internal(format!("json: {e}"))
    }
}

pub type ServiceResult<T> = Result<T, ServiceError>;
