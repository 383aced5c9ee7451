use crate::clock::Millis;
use crate::domain::AgentId;
use crate::timeout::PartialTimeoutConfig;

/// An agent owns the agent level of the timeout hierarchy.
#[derive(Debug, Clone, PartialEq)]
pub struct Agent {
    pub id: AgentId,
    pub name: Option<String>,
    pub timeout_config: PartialTimeoutConfig,
    pub created_at: Millis,
    pub updated_at: Millis,
}
