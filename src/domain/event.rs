//! What happened to a session, as its durable event log keeps it. Stored in the domain's own
//! serde shape (like idempotency outcomes) and rendered into the API's camelCase shapes when
//! read, so the wire shapes stay in `api/`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::clock::Millis;
use crate::domain::{
    AgentId, ConversationState, FieldChange, Member, Message, Session, SessionId, UserId,
};
use crate::timeout::EffectiveConfig;

/// Why a session expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExpiryReason {
    /// No activity within the inactivity timeout.
    Idle,
    /// The hard maximum duration was reached.
    MaxDuration,
}

/// Why a session ended before expiring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// `DELETE /api/messaging/sessions/{id}`.
    Deleted,
    /// Its agent was deleted.
    AgentDeleted,
}

/// One change to a session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum EventKind {
    #[serde(rename = "session.created")]
    SessionCreated {
        session: Session,
        /// Its users (older logs lack them: the creator only, then).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        members: Vec<Member>,
    },
    /// `expiresAt` moved later (a renew, or activity with auto-renew).
    #[serde(rename = "session.renewed")]
    SessionRenewed {
        expires_at: Millis,
        renewal_count: i64,
        last_activity: Millis,
    },
    #[serde(rename = "session.timeout_updated")]
    TimeoutUpdated {
        config: EffectiveConfig,
        expires_at: Millis,
    },
    /// The session entered its warning window (`isNearExpiration` turned true).
    #[serde(rename = "session.expiring")]
    SessionExpiring { expires_at: Millis },
    #[serde(rename = "session.expired")]
    SessionExpired {
        reason: ExpiryReason,
        expired_at: Millis,
    },
    #[serde(rename = "session.ended")]
    SessionEnded { reason: EndReason, ended_at: Millis },
    #[serde(rename = "message.created")]
    MessageCreated { message: Message },
    #[serde(rename = "session.participants_changed")]
    ParticipantsChanged {
        added: Vec<UserId>,
        removed: Vec<UserId>,
    },
    /// The title or metadata changed (`PATCH .../{id}`); both as they are now.
    #[serde(rename = "session.updated")]
    SessionUpdated {
        title: Option<String>,
        metadata: serde_json::Value,
    },
    #[serde(rename = "session.paused")]
    SessionPaused { expires_at: Millis },
    #[serde(rename = "session.resumed")]
    SessionResumed { expires_at: Millis },
    #[serde(rename = "session.closed")]
    SessionClosed { reason: String, ended_at: Millis },
    /// The conversation state changed: each changed field before and after, and the whole.
    #[serde(rename = "session.state_changed")]
    StateChanged {
        changes: BTreeMap<String, FieldChange>,
        state: ConversationState,
    },
}

impl EventKind {
    /// The event's type as the wire names it (`session.created`, `message.created`, ...).
    pub fn type_name(&self) -> &'static str {
        match self {
            EventKind::SessionCreated { .. } => "session.created",
            EventKind::SessionRenewed { .. } => "session.renewed",
            EventKind::TimeoutUpdated { .. } => "session.timeout_updated",
            EventKind::SessionExpiring { .. } => "session.expiring",
            EventKind::SessionExpired { .. } => "session.expired",
            EventKind::SessionEnded { .. } => "session.ended",
            EventKind::MessageCreated { .. } => "message.created",
            EventKind::ParticipantsChanged { .. } => "session.participants_changed",
            EventKind::SessionUpdated { .. } => "session.updated",
            EventKind::SessionPaused { .. } => "session.paused",
            EventKind::SessionResumed { .. } => "session.resumed",
            EventKind::SessionClosed { .. } => "session.closed",
            EventKind::StateChanged { .. } => "session.state_changed",
        }
    }

    /// The session's last event: nothing follows it in its log.
    pub fn is_last(&self) -> bool {
        matches!(
            self,
            EventKind::SessionExpired { .. }
                | EventKind::SessionEnded { .. }
                | EventKind::SessionClosed { .. }
        )
    }

    /// The renewal of a session that was just renewed.
    pub fn renewed(session: &Session) -> Self {
        EventKind::SessionRenewed {
            expires_at: session.expires_at,
            renewal_count: session.renewal_count,
            last_activity: session.last_activity,
        }
    }
}

/// An event of a session's log: `seq` is its cursor in the session's log and `agent_seq` in
/// its agent's feed, each counting up from 1 without gaps.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub session_id: SessionId,
    pub seq: i64,
    pub agent_id: AgentId,
    pub agent_seq: i64,
    pub kind: EventKind,
    pub created_at: Millis,
}
