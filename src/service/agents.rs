use crate::db::repo::{agents as repo, sessions as session_repo};
use crate::db::write_transaction;
use crate::domain::{Agent, AgentId, EndReason, EventKind};
use crate::service::{events, ServiceError, ServiceResult};
use crate::state::AppState;
use crate::timeout::PartialTimeoutConfig;

/// The desired state of an agent (PUT replaces name and timeout config).
#[derive(Debug, Clone)]
pub struct AgentInput {
    pub id: AgentId,
    pub name: Option<String>,
    pub timeout_config: PartialTimeoutConfig,
}

/// Creates or replaces an agent; the flag is true when it was created. Two concurrent first
/// PUTs of one id race on the insert; the loser is retried and becomes an update.
pub async fn put(state: &AppState, input: AgentInput) -> ServiceResult<(Agent, bool)> {
    let now = state.now();
    state
        .write(move |conn| {
            let existing = repo::find(conn, input.id)?;
            let created = existing.is_none();
            let agent = Agent {
                created_at: existing.map_or(now, |a| a.created_at),
                updated_at: now,
                id: input.id,
                name: input.name.clone(),
                timeout_config: input.timeout_config,
            };
            if created {
                repo::insert(conn, &agent)?;
            } else {
                repo::update(conn, &agent)?;
            }
            Ok((agent, created))
        })
        .await
}

pub async fn get(state: &AppState, id: AgentId) -> ServiceResult<Agent> {
    state
        .point_read(move |conn| repo::find(conn, id)?.ok_or(ServiceError::AgentNotFound(id)))
        .await
}

pub struct AgentPage {
    pub agents: Vec<Agent>,
    pub total: i64,
}

pub async fn list(state: &AppState, limit: i64, offset: i64) -> ServiceResult<AgentPage> {
    state
        .db(move |conn| {
            Ok(AgentPage {
                agents: repo::list(conn, limit, offset)?,
                total: repo::count(conn)?,
            })
        })
        .await
}

/// Deletes the agent and ends its active sessions (they answer 410 until purged); returns how
/// many sessions were ended.
pub async fn delete(state: &AppState, id: AgentId) -> ServiceResult<usize> {
    let now = state.now();
    let ended = state
        .db(move |conn| {
            write_transaction(conn, |conn| {
                if !repo::delete(conn, id)? {
                    return Err(ServiceError::AgentNotFound(id));
                }
                let ended = session_repo::end_for_agent(conn, id, now)?;
                for &session in &ended {
                    let kind = EventKind::SessionEnded {
                        reason: EndReason::AgentDeleted,
                        ended_at: now,
                    };
                    events::record(conn, session, id, kind, now)?;
                }
                Ok(ended)
            })
        })
        .await?;
    for &session in &ended {
        state.events.publish(session, id);
    }
    Ok(ended.len())
}
