use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::clock::Millis;
use crate::domain::{AgentId, SessionId, UserId};
use crate::timeout::policy;
use crate::timeout::EffectiveConfig;

/// Where a session is in its life: `active`, `expired` (timed out) or `ended` (its agent was
/// deleted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = SessionState)]
pub enum SessionStatus {
    Active,
    Expired,
    /// Closed because its agent was deleted.
    Ended,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    pub id: SessionId,
    pub agent_id: AgentId,
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
}

impl Session {
    /// When the session stopped being usable, if it has at `now`.
    pub fn expired_at(&self, now: Millis) -> Option<Millis> {
        match self.status {
            SessionStatus::Active if !policy::is_expired(self.expires_at, now) => None,
            SessionStatus::Active => Some(self.expires_at),
            _ => Some(
                self.closed_at
                    .map_or(self.expires_at, |c| c.min(self.expires_at)),
            ),
        }
    }

    /// Status as shown to users at `now`.
    pub fn status_at(&self, now: Millis) -> SessionStatus {
        match self.status {
            SessionStatus::Active if self.expired_at(now).is_some() => SessionStatus::Expired,
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
/// `expires_at` at `now`, whether or not the reaper has caught up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFilter {
    Active,
    Expired,
    All,
}

/// Whose sessions a list or count covers.
#[derive(Debug, Clone, Default)]
pub struct SessionFilter {
    pub agent_id: Option<AgentId>,
    pub user_id: Option<UserId>,
}
