use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::clock::Millis;
use crate::domain::conversation::{ConversationState, Stage};
use crate::domain::{AgentId, ExpiryReason, SessionId, UserId};
use crate::timeout::policy;
use crate::timeout::EffectiveConfig;

/// Where a session is in its life: `active`, `paused` (its inactivity timer stopped),
/// `expired` (timed out) or `ended` (closed, or its agent was deleted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = SessionState)]
pub enum SessionStatus {
    Active,
    /// Paused: no inactivity timeout, messages refused, `expiresAt` at the max-duration cap.
    Paused,
    Expired,
    /// Closed, or its agent was deleted.
    Ended,
}

impl SessionStatus {
    /// Active or paused: the stored status of a session that has not been closed off.
    pub fn is_open(self) -> bool {
        matches!(self, SessionStatus::Active | SessionStatus::Paused)
    }
}

/// Why an ended session ended, as stored and shown: `agent_deleted`.
pub const AGENT_DELETED: &str = "agent_deleted";
/// The end reason of a session closed without one.
pub const CLOSED: &str = "closed";

/// A user taking part in a session (the session's agent takes part too, implied).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub user_id: UserId,
    pub joined_at: Millis,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    pub id: SessionId,
    pub agent_id: AgentId,
    /// Who created it (a participant who cannot be removed).
    pub user_id: UserId,
    /// The stored status; see [`Session::status_at`] for what users see.
    pub status: SessionStatus,
    pub metadata: Value,
    pub config: EffectiveConfig,
    pub created_at: Millis,
    pub last_activity: Millis,
    pub expires_at: Millis,
    pub renewal_count: i64,
    pub closed_at: Option<Millis>,
    pub version: i64,
    // Added with group sessions: older stored copies (idempotency outcomes, events) lack them,
    // and copies whose fields hold the defaults are written as before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "ConversationState::is_initial")]
    pub state: ConversationState,
    /// Why an ended session ended (see [`AGENT_DELETED`], [`CLOSED`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_reason: Option<String>,
}

/// How a session that is over came to be over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Over {
    /// Timed out at `at`.
    Expired { at: Millis },
    /// Ended (closed, or its agent deleted) at `at`.
    Ended { at: Millis, reason: String },
}

impl Session {
    /// The max-duration cap: no session lives past it.
    pub fn cap(&self) -> Millis {
        policy::hard_cap(&self.config.config, self.created_at)
    }

    /// When the session stopped being usable, if it has at `now`.
    pub fn expired_at(&self, now: Millis) -> Option<Millis> {
        self.over_at(now).map(|over| match over {
            Over::Expired { at } | Over::Ended { at, .. } => at,
        })
    }

    /// Whether (and how) the session is over at `now`.
    pub fn over_at(&self, now: Millis) -> Option<Over> {
        match self.status {
            s if s.is_open() && !policy::is_expired(self.expires_at, now) => None,
            s if s.is_open() => Some(Over::Expired {
                at: self.expires_at,
            }),
            SessionStatus::Ended => Some(Over::Ended {
                at: self.closed_at.unwrap_or(self.expires_at),
                reason: self.end_reason.clone().unwrap_or_else(|| CLOSED.to_owned()),
            }),
            _ => Some(Over::Expired {
                at: self
                    .closed_at
                    .map_or(self.expires_at, |c| c.min(self.expires_at)),
            }),
        }
    }

    /// Why it is over at `now`, as shown: `idle`, `max_duration`, or the end reason.
    pub fn end_reason_at(&self, now: Millis) -> Option<String> {
        match self.over_at(now)? {
            Over::Ended { reason, .. } => Some(reason),
            Over::Expired { at } => {
                let c = &self.config.config;
                let why = match policy::expiry_reason(self.created_at, c.max_duration_minutes, at) {
                    ExpiryReason::Idle => "idle",
                    ExpiryReason::MaxDuration => "max_duration",
                };
                Some(why.to_owned())
            }
        }
    }

    /// Status as shown to users at `now`.
    pub fn status_at(&self, now: Millis) -> SessionStatus {
        match self.status {
            s if s.is_open() && self.expired_at(now).is_some() => SessionStatus::Expired,
            s => s,
        }
    }

    pub fn time_remaining(&self, now: Millis) -> i64 {
        match self.expired_at(now) {
            Some(_) => 0,
            None => policy::time_remaining(self.expires_at, now),
        }
    }

    pub fn is_near_expiration(&self, now: Millis) -> bool {
        self.expired_at(now).is_none()
            && policy::is_near_expiration(&self.config.config, self.expires_at, now)
    }
}

/// Which sessions a list or count covers. "Active" means status active and not yet past
/// `expires_at` at `now`, whether or not the reaper has caught up; "paused" likewise;
/// "expired" every session that is over (timed out or ended).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFilter {
    Active,
    Paused,
    Expired,
    All,
}

/// Whose sessions a list or count covers.
#[derive(Debug, Clone, Default)]
pub struct SessionFilter {
    pub agent_id: Option<AgentId>,
    /// Sessions this user takes part in (created, or was added to).
    pub user_id: Option<UserId>,
    pub stage: Option<Stage>,
}
