//! Who takes part in a session: users join (each with a token of their own) and leave (their
//! tokens revoked with them). The session's agent and its creator always take part.

use crate::db::repo::participants as repo;
use crate::db::repo::sessions as session_repo;
use crate::domain::{Caller, EventKind, Member, SessionId, UserId};
use crate::secret::Secret;
use crate::service::sessions::{check_size, load_live, newcomers, Snapshot};
use crate::service::{events, tokens, ServiceError, ServiceResult};
use crate::state::AppState;

/// Adds users to a live session; those already in it are left alone. Each newcomer gets a
/// token, returned in the order given.
pub async fn add(
    state: &AppState,
    caller: &Caller,
    id: SessionId,
    users: Vec<UserId>,
) -> ServiceResult<(Snapshot, Vec<(UserId, Secret)>)> {
    let now = state.now();
    let caller = caller.clone();
    let max = state.settings.max_participants;
    let (snapshot, tokens, changed) = state
        .write(move |conn| {
            session_repo::lock(conn, id)?;
            let session = load_live(conn, &caller, id, now)?;
            let present: Vec<UserId> = repo::of_session(conn, id)?
                .iter()
                .map(|m| m.user_id)
                .collect();
            let added = newcomers(&users, session.agent_id, &present);
            if !added.is_empty() {
                check_size(present.len() + added.len(), max)?;
            }
            let members: Vec<Member> = added
                .iter()
                .map(|&user_id| Member {
                    user_id,
                    joined_at: now,
                })
                .collect();
            repo::insert(conn, id, &members)?;
            let mut issued = Vec::new();
            for user in &added {
                issued.push((*user, tokens::issue(conn, &session, *user, now)?));
            }
            let changed = !added.is_empty();
            if changed {
                let kind = EventKind::ParticipantsChanged {
                    added,
                    removed: Vec::new(),
                };
                events::record(conn, id, session.agent_id, kind, now)?;
            }
            Ok((Snapshot::load(conn, session, now)?, issued, changed))
        })
        .await?;
    if changed {
        state.events.publish(id, snapshot.session.agent_id);
    }
    Ok((snapshot, tokens))
}

/// Removes users from a live session and revokes their tokens. All or nothing: the creator
/// and the agent cannot be removed (400), and every id must take part (404).
pub async fn remove(
    state: &AppState,
    caller: &Caller,
    id: SessionId,
    users: Vec<UserId>,
) -> ServiceResult<Snapshot> {
    let now = state.now();
    let caller = caller.clone();
    let snapshot = state
        .write(move |conn| {
            session_repo::lock(conn, id)?;
            let session = load_live(conn, &caller, id, now)?;
            let mut removed: Vec<UserId> = Vec::new();
            for user in users.iter().copied() {
                if user.as_uuid() == session.agent_id.as_uuid() {
                    return Err(ServiceError::Invalid {
                        field: "participants",
                        reason: format!("{user} is the session's agent, which cannot be removed"),
                    });
                }
                if user == session.user_id {
                    return Err(ServiceError::Invalid {
                        field: "participants",
                        reason: format!(
                            "{user} created the session and cannot be removed (close it instead)"
                        ),
                    });
                }
                if !removed.contains(&user) {
                    removed.push(user);
                }
            }
            // One read of who takes part, as `add` does, rather than a query per id.
            let present = repo::of_session(conn, id)?;
            if let Some(&user) = removed
                .iter()
                .find(|u| !present.iter().any(|m| m.user_id == **u))
            {
                return Err(ServiceError::ParticipantNotFound {
                    session_id: id,
                    user_id: user,
                });
            }
            repo::delete(conn, id, &removed)?;
            tokens::revoke(conn, &session, &removed)?;
            let kind = EventKind::ParticipantsChanged {
                added: Vec::new(),
                removed,
            };
            events::record(conn, id, session.agent_id, kind, now)?;
            Snapshot::load(conn, session, now)
        })
        .await?;
    state.events.publish(id, snapshot.session.agent_id);
    Ok(snapshot)
}
