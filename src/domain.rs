//! Domain types as the service sees them, converted from and to storage rows.

use serde_json::Value;

use crate::clock::Millis;
use crate::db::models::{AgentRow, SessionChanges, SessionRow};
use crate::db::repo::sessions::{ACTIVE, ENDED};
use crate::error::ApiError;
use crate::timeout::policy;
use crate::timeout::{ConfigSources, EffectiveConfig, PartialTimeoutConfig, TimeoutConfig};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionStatus {
    Active,
    Expired,
    /// Closed because its agent was deleted.
    Ended,
}

#[derive(Debug, Clone)]
pub struct Session {
    pub id: String,
    pub agent_id: String,
    pub user_id: String,
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

    /// 410 for a session that is over at `now`, whether or not the reaper has run.
    pub fn ensure_alive(&self, now: Millis) -> Result<(), ApiError> {
        match self.expired_at(now) {
            None => Ok(()),
            Some(expired_at) => Err(ApiError::SessionExpired {
                session_id: self.id.clone(),
                expired_at,
            }),
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

    pub fn changes(&self) -> SessionChanges {
        let c = &self.config.config;
        SessionChanges {
            timeout_minutes: c.timeout_minutes,
            auto_renew: c.auto_renew,
            max_duration_minutes: c.max_duration_minutes,
            warning_threshold_minutes: c.warning_threshold_minutes,
            config_sources: sources_to_text(&self.config.sources),
            last_activity: self.last_activity,
            expires_at: self.expires_at,
            renewal_count: self.renewal_count,
            version: self.version + 1,
        }
    }

    pub fn to_row(&self) -> SessionRow {
        let c = &self.config.config;
        SessionRow {
            id: self.id.clone(),
            agent_id: self.agent_id.clone(),
            user_id: self.user_id.clone(),
            status: ACTIVE.to_owned(),
            metadata: self.metadata.to_string(),
            timeout_minutes: c.timeout_minutes,
            auto_renew: c.auto_renew,
            max_duration_minutes: c.max_duration_minutes,
            warning_threshold_minutes: c.warning_threshold_minutes,
            config_sources: sources_to_text(&self.config.sources),
            created_at: self.created_at,
            last_activity: self.last_activity,
            expires_at: self.expires_at,
            renewal_count: self.renewal_count,
            closed_at: self.closed_at,
            version: self.version,
        }
    }
}

fn sources_to_text(sources: &ConfigSources) -> String {
    serde_json::to_string(sources).unwrap_or_default()
}

impl TryFrom<SessionRow> for Session {
    type Error = ApiError;

    fn try_from(row: SessionRow) -> Result<Self, ApiError> {
        let corrupt = |what: &str| ApiError::Internal(format!("session {}: bad {what}", row.id));
        let sources: ConfigSources =
            serde_json::from_str(&row.config_sources).map_err(|_| corrupt("config_sources"))?;
        let metadata: Value =
            serde_json::from_str(&row.metadata).map_err(|_| corrupt("metadata"))?;
        let status = match row.status.as_str() {
            ACTIVE => SessionStatus::Active,
            ENDED => SessionStatus::Ended,
            _ => SessionStatus::Expired,
        };
        Ok(Self {
            config: EffectiveConfig {
                config: TimeoutConfig {
                    timeout_minutes: row.timeout_minutes,
                    auto_renew: row.auto_renew,
                    max_duration_minutes: row.max_duration_minutes,
                    warning_threshold_minutes: row.warning_threshold_minutes,
                },
                sources,
            },
            status,
            metadata,
            id: row.id,
            agent_id: row.agent_id,
            user_id: row.user_id,
            created_at: row.created_at,
            last_activity: row.last_activity,
            expires_at: row.expires_at,
            renewal_count: row.renewal_count,
            closed_at: row.closed_at,
            version: row.version,
        })
    }
}

#[derive(Debug, Clone)]
pub struct Agent {
    pub id: String,
    pub name: Option<String>,
    pub timeout_config: PartialTimeoutConfig,
    pub created_at: Millis,
    pub updated_at: Millis,
}

impl From<AgentRow> for Agent {
    fn from(row: AgentRow) -> Self {
        Self {
            timeout_config: PartialTimeoutConfig {
                timeout_minutes: row.timeout_minutes,
                auto_renew: row.auto_renew,
                max_duration_minutes: row.max_duration_minutes,
                warning_threshold_minutes: row.warning_threshold_minutes,
            },
            id: row.id,
            name: row.name,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

impl From<&Agent> for AgentRow {
    fn from(a: &Agent) -> Self {
        Self {
            id: a.id.clone(),
            name: a.name.clone(),
            timeout_minutes: a.timeout_config.timeout_minutes,
            auto_renew: a.timeout_config.auto_renew,
            max_duration_minutes: a.timeout_config.max_duration_minutes,
            warning_threshold_minutes: a.timeout_config.warning_threshold_minutes,
            created_at: a.created_at,
            updated_at: a.updated_at,
        }
    }
}
