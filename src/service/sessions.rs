use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::clock::Millis;
use crate::db::repo::agents as agent_repo;
use crate::db::repo::participants;
use crate::db::repo::sessions as repo;
use crate::db::DbConnection;
use crate::domain::{
    AgentId, Caller, ConversationState, EndReason, EventKind, Member, Over, Session, SessionFilter,
    SessionId, SessionStatus, StatusFilter, UserId,
};
use crate::secret::Secret;
use crate::service::idempotency::{self, IdempotencyKey, Outcome};
use crate::service::{events, tokens, ServiceError, ServiceResult};
use crate::state::AppState;
use crate::timeout::policy::{self, RenewalError};
use crate::timeout::{ConfigSource, PartialTimeoutConfig};

/// A session as read at `now` (time remaining and the warning depend on it), with its users.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub session: Session,
    /// Its users in the order they joined (ties by id). Outcomes stored before group sessions
    /// lack them; they read as the creator alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<Member>,
    pub now: Millis,
}

impl Snapshot {
    /// The session with its users, read in the caller's transaction.
    pub(crate) fn load(
        conn: &mut DbConnection,
        session: Session,
        now: Millis,
    ) -> ServiceResult<Self> {
        let members = participants::of_session(conn, session.id)?;
        Ok(Self {
            session,
            members,
            now,
        })
    }

    /// Its users; the creator alone for a snapshot stored before group sessions.
    pub fn members(&self) -> Vec<Member> {
        if self.members.is_empty() {
            vec![Member {
                user_id: self.session.user_id,
                joined_at: self.session.created_at,
            }]
        } else {
            self.members.clone()
        }
    }
}

/// Validated input for a new session.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub agent_id: AgentId,
    pub user_id: UserId,
    /// Users besides `user_id` (duplicates and the creator are ignored).
    pub participants: Vec<UserId>,
    pub title: Option<String>,
    pub metadata: Value,
    pub timeout_config: PartialTimeoutConfig,
}

/// A created (or replayed) session and the tokens that open it.
#[derive(Debug)]
pub struct Created {
    pub outcome: Outcome<Snapshot>,
    /// The creator's. `None` only for a replay whose session is gone (deleted or purged) since.
    pub token: Option<Secret>,
    /// One per other participant, in the order the session lists them.
    pub participant_tokens: Vec<(UserId, Secret)>,
}

/// Refuses a session of more than `max` participants, its agent included.
pub(crate) fn check_size(users: usize, max: usize) -> ServiceResult<()> {
    if users + 1 > max {
        return Err(ServiceError::TooManyParticipants { max });
    }
    Ok(())
}

/// `ids` without duplicates, without the agent's id and without those in `present`.
pub(crate) fn newcomers(ids: &[UserId], agent: AgentId, present: &[UserId]) -> Vec<UserId> {
    let mut out: Vec<UserId> = Vec::new();
    for id in ids {
        if id.as_uuid() != agent.as_uuid() && !present.contains(id) && !out.contains(id) {
            out.push(*id);
        }
    }
    out
}

/// Creates a session, its participants and their tokens in one short transaction; with an
/// idempotency key, a retry gets the first outcome back instead, with fresh tokens (only the
/// digests of the first were kept) that revoke the earlier ones.
pub async fn create(
    state: &AppState,
    caller: &Caller,
    input: NewSession,
    idempotency_key: Option<IdempotencyKey>,
) -> ServiceResult<Created> {
    caller.may_act_for_agent(input.agent_id)?;
    let now = state.now();
    let global = state.settings.timeouts;
    let max_participants = state.settings.max_participants;
    let created = state
        .write(move |conn| {
            let outcome = idempotency::once(conn, idempotency_key.as_ref(), now, |conn| {
                let agent = agent_repo::find(conn, input.agent_id)?
                    .ok_or(ServiceError::AgentNotFound(input.agent_id))?;
                let config = policy::merge(global, &agent.timeout_config, &input.timeout_config);
                let others = newcomers(&input.participants, input.agent_id, &[input.user_id]);
                check_size(others.len() + 1, max_participants)?;
                let session = Session {
                    id: SessionId::new_random(),
                    agent_id: input.agent_id,
                    user_id: input.user_id,
                    status: SessionStatus::Active,
                    metadata: input.metadata.clone(),
                    expires_at: policy::expiry(&config.config, now, now),
                    config,
                    created_at: now,
                    last_activity: now,
                    renewal_count: 0,
                    closed_at: None,
                    version: 0,
                    title: input.title.clone(),
                    state: ConversationState::default(),
                    end_reason: None,
                };
                let mut members: Vec<Member> = std::iter::once(input.user_id)
                    .chain(others)
                    .map(|user_id| Member {
                        user_id,
                        joined_at: now,
                    })
                    .collect();
                // In the order the database reads them back (`participants::of_session`), so
                // that the create's answer and later reads list them alike.
                members.sort_by_key(|m| (m.joined_at, m.user_id));
                repo::insert(conn, &session)?;
                participants::insert(conn, session.id, &members)?;
                let created = EventKind::SessionCreated {
                    session: session.clone(),
                    members: members.clone(),
                };
                events::record(conn, session.id, session.agent_id, created, now)?;
                Ok(Snapshot {
                    session,
                    members,
                    now,
                })
            })?;
            let snapshot = &outcome.value;
            let creator = snapshot.session.user_id;
            let others: Vec<UserId> = snapshot
                .members()
                .iter()
                .map(|m| m.user_id)
                .filter(|u| *u != creator)
                .collect();
            let (token, participant_tokens) = if outcome.replayed {
                // Lock, then read: the session, or some of its users, may be gone since.
                let id = snapshot.session.id;
                repo::lock(conn, id)?;
                match repo::find(conn, id)? {
                    Some(session) => {
                        let present = participants::of_session(conn, id)?;
                        let mut tokens = Vec::new();
                        for user in others {
                            if present.iter().any(|m| m.user_id == user) {
                                tokens.push((user, tokens::reissue(conn, &session, user, now)?));
                            }
                        }
                        (Some(tokens::reissue(conn, &session, creator, now)?), tokens)
                    }
                    None => (None, Vec::new()),
                }
            } else {
                let session = &snapshot.session;
                let mut tokens = Vec::new();
                for user in others {
                    tokens.push((user, tokens::issue(conn, session, user, now)?));
                }
                (Some(tokens::issue(conn, session, creator, now)?), tokens)
            };
            Ok(Created {
                outcome,
                token,
                participant_tokens,
            })
        })
        .await?;
    if !created.outcome.replayed {
        let session = &created.outcome.value.session;
        state.events.publish(session.id, session.agent_id);
        // Its warning may come before anything the scheduler planned for.
        state.deadlines.consider(next_deadline(session));
    }
    Ok(created)
}

/// What a caller needs to do something to a session: touch it (read, write, take part), or
/// manage it (pause, resume, close, delete: a session token only when it is the creator's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    Touch,
    Manage,
}

/// The session if the caller may touch (or manage) it: not found when unknown, forbidden when
/// it is not the caller's (checked before anything else is revealed or written).
pub(crate) fn load_for(
    conn: &mut DbConnection,
    caller: &Caller,
    id: SessionId,
    access: Access,
) -> ServiceResult<Session> {
    let session = repo::find(conn, id)?.ok_or(ServiceError::SessionNotFound(id))?;
    match access {
        Access::Touch => caller.may_touch(&session)?,
        Access::Manage => caller.may_manage(&session)?,
    }
    still_taking_part(conn, caller, &session)?;
    Ok(session)
}

/// A session token still speaks for a user who takes part. Its token is revoked when the user
/// is removed, but a request authenticated just before that commits (or a stream opened
/// earlier) reaches here after it: checked under the session's row lock in a write, so no
/// message of a removed user is ever stored. The creator cannot be removed: no query then.
pub(crate) fn still_taking_part(
    conn: &mut DbConnection,
    caller: &Caller,
    session: &Session,
) -> ServiceResult<()> {
    match caller {
        Caller::SessionToken { user_id, .. }
            if *user_id != session.user_id
                && !participants::is_member(conn, session.id, *user_id)? =>
        {
            Err(ServiceError::Forbidden(format!(
                "User {user_id} no longer takes part in session {}",
                session.id
            )))
        }
        _ => Ok(()),
    }
}

/// The session if the caller may touch it and it is live at `now`: not found when unknown,
/// forbidden when not the caller's, expired or ended when over.
pub(crate) fn load_live(
    conn: &mut DbConnection,
    caller: &Caller,
    id: SessionId,
    now: Millis,
) -> ServiceResult<Session> {
    let session = load_for(conn, caller, id, Access::Touch)?;
    live(session, now)
}

fn live(session: Session, now: Millis) -> ServiceResult<Session> {
    let session_id = session.id;
    match session.over_at(now) {
        None => Ok(session),
        Some(Over::Expired { at }) => Err(ServiceError::SessionExpired {
            session_id,
            expired_at: at,
        }),
        Some(Over::Ended { at, reason }) => Err(ServiceError::SessionEnded {
            session_id,
            ended_at: at,
            reason,
        }),
    }
}

/// Two indexed reads; not found when unknown, expired or ended when over.
pub async fn get(state: &AppState, caller: &Caller, id: SessionId) -> ServiceResult<Snapshot> {
    let now = state.now();
    let caller = caller.clone();
    state
        .point_read(move |conn| {
            let session = load_live(conn, &caller, id, now)?;
            Snapshot::load(conn, session, now)
        })
        .await
}

/// Inside a transaction: locks and loads a live session, lets `change` modify it and writes
/// what changed back (nothing when nothing did), then lets `then` do the operation's other
/// writes while the row stays locked, so writers of one session are serialized. The version
/// check is a safety net: should it fail, [`ServiceError::Conflict`] makes
/// [`AppState::write`] retry.
pub(crate) fn mutate<T>(
    conn: &mut DbConnection,
    caller: &Caller,
    (id, access): (SessionId, Access),
    now: Millis,
    change: impl FnOnce(&mut Session) -> ServiceResult<()>,
    then: impl FnOnce(&mut DbConnection, &Session) -> ServiceResult<T>,
) -> ServiceResult<(Session, T)> {
    repo::lock(conn, id)?;
    // Who may do it before whether it can be done: a participant who may not close a session
    // learns that, not that it has ended.
    let before = live(load_for(conn, caller, id, access)?, now)?;
    let mut session = before.clone();
    change(&mut session)?;
    if session != before {
        if !repo::update_if_version(conn, &before, &session)? {
            return Err(ServiceError::Conflict);
        }
        session.version += 1;
    }
    let extra = then(conn, &session)?;
    Ok((session, extra))
}

/// When the scheduler next has to act for this (unwarned) session: its warning window.
fn next_deadline(session: &Session) -> Millis {
    policy::next_deadline(
        session.expires_at,
        session.config.config.warning_threshold_minutes,
        None,
    )
}

/// A change to one live session and the events it records (none for a no-op), in one
/// transaction; the session with its users as the change left it.
pub(crate) async fn mutate_snapshot(
    state: &AppState,
    caller: &Caller,
    id: SessionId,
    access: Access,
    change: impl Fn(&mut Session, Millis) -> ServiceResult<Vec<EventKind>> + Send + 'static,
) -> ServiceResult<Snapshot> {
    let now = state.now();
    let caller = caller.clone();
    let (snapshot, (changed, renewed)) = state
        .write(move |conn| {
            let mut recorded = Vec::new();
            let (session, ()) = mutate(
                conn,
                &caller,
                (id, access),
                now,
                |s| {
                    recorded = change(s, now)?;
                    Ok(())
                },
                |_, _| Ok(()),
            )?;
            let renewed = recorded
                .iter()
                .any(|k| matches!(k, EventKind::SessionRenewed { .. }));
            let changed = !recorded.is_empty();
            let agent = session.agent_id;
            events::record_all(
                conn,
                recorded.into_iter().map(|k| (id, agent, k)).collect(),
                now,
            )?;
            Ok((Snapshot::load(conn, session, now)?, (changed, renewed)))
        })
        .await?;
    if renewed {
        state.metrics.renewals.inc();
    }
    if changed {
        state.events.publish(id, snapshot.session.agent_id);
        // A shorter timeout, or a resume, can bring the deadline before the planned one.
        state.deadlines.consider(next_deadline(&snapshot.session));
    }
    Ok(snapshot)
}

/// An explicit renew: always tries; fails when the max-duration cap leaves nothing to extend,
/// and while the session is paused.
pub async fn renew(state: &AppState, caller: &Caller, id: SessionId) -> ServiceResult<Snapshot> {
    mutate_snapshot(state, caller, id, Access::Touch, |s, now| {
        if s.status == SessionStatus::Paused {
            return Err(ServiceError::SessionPaused(s.id));
        }
        let c = &s.config.config;
        match policy::renew(c, s.created_at, s.expires_at, now) {
            Ok(expires_at) => {
                s.expires_at = expires_at;
                s.last_activity = now;
                s.renewal_count += 1;
                Ok(vec![EventKind::renewed(s)])
            }
            Err(RenewalError::MaxDurationReached { cap }) => Err(ServiceError::RenewalFailed {
                session_id: s.id,
                cap,
            }),
        }
    })
    .await
}

/// Records activity at `now`, renewing when auto-renew is on (never while paused: a paused
/// session sits at its cap); true when `expiresAt` moved.
pub(crate) fn touch(session: &mut Session, now: Millis) -> bool {
    session.last_activity = now;
    if session.status == SessionStatus::Paused {
        return false;
    }
    let c = &session.config.config;
    match policy::auto_renew(c, session.created_at, session.expires_at, now) {
        Some(expires_at) => {
            session.expires_at = expires_at;
            session.renewal_count += 1;
            true
        }
        None => false,
    }
}

/// Keeps the session alive: updates lastActivity and renews when auto-renew is on.
pub async fn heartbeat(
    state: &AppState,
    caller: &Caller,
    id: SessionId,
) -> ServiceResult<Snapshot> {
    mutate_snapshot(state, caller, id, Access::Touch, |s, now| {
        Ok(if touch(s, now) {
            vec![EventKind::renewed(s)]
        } else {
            Vec::new()
        })
    })
    .await
}

/// Merges a validated partial config into the session's and recomputes `expiresAt` from now,
/// capped by the (possibly new) maximum duration.
pub async fn update_timeout(
    state: &AppState,
    caller: &Caller,
    id: SessionId,
    patch: PartialTimeoutConfig,
) -> ServiceResult<Snapshot> {
    mutate_snapshot(state, caller, id, Access::Touch, move |s, now| {
        let config = s.config.overridden(&patch, ConfigSource::Session);
        // A paused session stays at its (possibly new) cap.
        let expires_at = match s.status {
            SessionStatus::Paused => policy::hard_cap(&config.config, s.created_at),
            _ => policy::expiry(&config.config, s.created_at, now),
        };
        if policy::is_expired(expires_at, now) {
            return Err(ServiceError::MaxDurationExceeded {
                session_id: s.id,
                age_ms: now - s.created_at,
            });
        }
        s.config = config;
        s.expires_at = expires_at;
        s.last_activity = now;
        Ok(vec![EventKind::TimeoutUpdated {
            config: s.config,
            expires_at: s.expires_at,
        }])
    })
    .await
}

/// Deletes the session and everything it owns (its messages and tokens); an API key may
/// delete an expired session too, while a session token dies with its session (410).
pub async fn delete(state: &AppState, caller: &Caller, id: SessionId) -> ServiceResult<()> {
    let now = state.now();
    let caller = caller.clone();
    state
        .write(move |conn| {
            repo::lock(conn, id)?;
            let session = load_for(conn, &caller, id, Access::Manage)?;
            let agent_id = session.agent_id;
            let already_over = !session.status.is_open();
            if let Caller::SessionToken { .. } = caller {
                live(session, now)?;
            }
            // The log outlives the session: a reader learns why it is gone (unless its
            // end or expiry is recorded already).
            if !already_over {
                let ended = EventKind::SessionEnded {
                    reason: EndReason::Deleted,
                    ended_at: now,
                };
                events::record(conn, id, agent_id, ended, now)?;
            }
            if repo::delete(conn, id)? {
                Ok(agent_id)
            } else {
                Err(ServiceError::SessionNotFound(id))
            }
        })
        .await
        .map(|agent| state.events.publish(id, agent))
}

/// A new token for one of the session's users (default: its creator); that user's earlier
/// tokens stop working at once.
pub async fn reissue_token(
    state: &AppState,
    caller: &Caller,
    id: SessionId,
    user: Option<UserId>,
) -> ServiceResult<(Snapshot, UserId, Secret)> {
    let now = state.now();
    let caller = caller.clone();
    state
        .write(move |conn| {
            repo::lock(conn, id)?;
            let session = load_live(conn, &caller, id, now)?;
            let user = user.unwrap_or(session.user_id);
            if user != session.user_id && !participants::is_member(conn, id, user)? {
                return Err(ServiceError::ParticipantNotFound {
                    session_id: id,
                    user_id: user,
                });
            }
            let token = tokens::reissue(conn, &session, user, now)?;
            Ok((Snapshot::load(conn, session, now)?, user, token))
        })
        .await
}

#[derive(Debug, Clone)]
pub struct ListQuery {
    pub filter: SessionFilter,
    pub status: StatusFilter,
    pub limit: i64,
    pub offset: i64,
}

#[derive(Debug, Clone)]
pub struct SessionPage {
    pub sessions: Vec<Snapshot>,
    /// Sessions matching every filter, status included.
    pub total: i64,
    /// Sessions matching the agent/user filters, whatever their status.
    pub total_sessions: i64,
    pub active_sessions: i64,
    pub paused_sessions: i64,
    pub now: Millis,
}

pub async fn list(state: &AppState, query: ListQuery) -> ServiceResult<SessionPage> {
    let now = state.now();
    state
        .db(move |conn| {
            let sessions = repo::list(
                conn,
                &query.filter,
                query.status,
                now,
                query.limit,
                query.offset,
            )?;
            let ids: Vec<SessionId> = sessions.iter().map(|s| s.id).collect();
            let mut members: HashMap<SessionId, Vec<Member>> = HashMap::new();
            for (session, member) in participants::of_sessions(conn, &ids)? {
                members.entry(session).or_default().push(member);
            }
            let sessions = sessions
                .into_iter()
                .map(|session| Snapshot {
                    members: members.remove(&session.id).unwrap_or_default(),
                    session,
                    now,
                })
                .collect();
            let count =
                |conn: &mut DbConnection, status| repo::count(conn, &query.filter, status, now);
            let total_sessions = count(conn, StatusFilter::All)?;
            let active_sessions = count(conn, StatusFilter::Active)?;
            let paused_sessions = count(conn, StatusFilter::Paused)?;
            let total = match query.status {
                StatusFilter::All => total_sessions,
                StatusFilter::Active => active_sessions,
                StatusFilter::Paused => paused_sessions,
                StatusFilter::Expired => total_sessions - active_sessions - paused_sessions,
            };
            Ok(SessionPage {
                sessions,
                total,
                total_sessions,
                active_sessions,
                paused_sessions,
                now,
            })
        })
        .await
}
