use crate::db::models::AgentRow;
use crate::db::repo::{agents as repo, sessions as session_repo};
use crate::db::write_transaction;
use crate::domain::Agent;
use crate::error::ApiError;
use crate::service::transact;
use crate::state::AppState;
use crate::timeout::PartialTimeoutConfig;

/// The desired state of an agent (PUT replaces name and timeout config).
#[derive(Debug, Clone)]
pub struct AgentInput {
    pub id: String,
    pub name: Option<String>,
    pub timeout_config: PartialTimeoutConfig,
}

/// Creates or replaces an agent; the flag is true when it was created. Two concurrent first
/// PUTs of one id race on the insert; the loser is retried and becomes an update.
pub async fn put(state: &AppState, input: AgentInput) -> Result<(Agent, bool), ApiError> {
    let now = state.now();
    state
        .db(move |conn| {
            transact(conn, |conn| {
                let existing = repo::find(conn, &input.id)?;
                let created = existing.is_none();
                let agent = Agent {
                    created_at: existing.map_or(now, |row| row.created_at),
                    updated_at: now,
                    id: input.id.clone(),
                    name: input.name.clone(),
                    timeout_config: input.timeout_config,
                };
                let row = AgentRow::from(&agent);
                if created {
                    repo::insert(conn, &row)?;
                } else {
                    repo::update(conn, &row)?;
                }
                Ok((agent, created))
            })
        })
        .await
}

pub async fn get(state: &AppState, id: String) -> Result<Agent, ApiError> {
    state
        .db(move |conn| {
            repo::find(conn, &id)?
                .map(Agent::from)
                .ok_or(ApiError::AgentNotFound(id))
        })
        .await
}

pub struct AgentPage {
    pub agents: Vec<Agent>,
    pub total: i64,
}

pub async fn list(state: &AppState, limit: i64, offset: i64) -> Result<AgentPage, ApiError> {
    state
        .db(move |conn| {
            let agents = repo::list(conn, limit, offset)?;
            Ok(AgentPage {
                agents: agents.into_iter().map(Agent::from).collect(),
                total: repo::count(conn)?,
            })
        })
        .await
}

/// Deletes the agent and ends its active sessions (they answer 410 until purged); returns how
/// many sessions were ended.
pub async fn delete(state: &AppState, id: String) -> Result<usize, ApiError> {
    let now = state.now();
    state
        .db(move |conn| {
            write_transaction(conn, |conn| {
                if !repo::delete(conn, &id)? {
                    return Err(ApiError::AgentNotFound(id.clone()));
                }
                Ok(session_repo::end_for_agent(conn, &id, now)?)
            })
        })
        .await
}
