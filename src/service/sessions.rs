use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::clock::Millis;
use crate::db::repo::agents as agent_repo;
use crate::db::repo::sessions as repo;
use crate::db::DbConnection;
use crate::domain::{
    AgentId, Caller, EndReason, EventKind, Session, SessionFilter, SessionId, SessionStatus,
    StatusFilter, UserId,
};
use crate::secret::Secret;
use crate::service::idempotency::{self, IdempotencyKey, Outcome};
use crate::service::{events, tokens, ServiceError, ServiceResult};
use crate::state::AppState;
use crate::timeout::policy::{self, RenewalError};
use crate::timeout::{ConfigSource, PartialTimeoutConfig};

/// A session as read at `now` (time remaining and the warning depend on it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub session: Session,
    pub now: Millis,
}

/// Validated input for a new session.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub agent_id: AgentId,
    pub user_id: UserId,
    pub metadata: Value,
    pub timeout_config: PartialTimeoutConfig,
}

/// A created (or replayed) session and the token that opens it.
#[derive(Debug)]
pub struct Created {
    pub outcome: Outcome<Snapshot>,
    /// `None` only for a replay whose session is gone (deleted or purged) since.
    pub token: Option<Secret>,
}

/// Creates a session and its user's token in one short transaction; with an idempotency key,
/// a retry gets the first outcome back instead, with a fresh token (only the digest of the
/// first was kept) that revokes the earlier one.
pub async fn create(
    state: &AppState,
    caller: &Caller,
    input: NewSession,
    idempotency_key: Option<IdempotencyKey>,
) -> ServiceResult<Created> {
    caller.may_act_for_agent(input.agent_id)?;
    let now = state.now();
    let global = state.settings.timeouts;
    let created = state
        .write(move |conn| {
            let outcome = idempotency::once(conn, idempotency_key.as_ref(), now, |conn| {
                let agent = agent_repo::find(conn, input.agent_id)?
                    .ok_or(ServiceError::AgentNotFound(input.agent_id))?;
                let config = policy::merge(global, &agent.timeout_config, &input.timeout_config);
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
                };
                repo::insert(conn, &session)?;
                let created = EventKind::SessionCreated {
                    session: session.clone(),
                };
                events::record(conn, session.id, session.agent_id, created, now)?;
                Ok(Snapshot { session, now })
            })?;
            let token = if outcome.replayed {
                // Lock, then read: the session may be gone since (deleted, or purged).
                let id = outcome.value.session.id;
                repo::lock(conn, id)?;
                match repo::find(conn, id)? {
                    Some(session) => Some(tokens::reissue(conn, &session, now)?),
                    None => None,
                }
            } else {
                Some(tokens::issue_first(conn, &outcome.value.session, now)?)
            };
            Ok(Created { outcome, token })
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

/// The session if the caller may touch it: not found when unknown, forbidden when it is not
/// the caller's (checked before anything else is revealed or written).
fn load_for(conn: &mut DbConnection, caller: &Caller, id: SessionId) -> ServiceResult<Session> {
    let session = repo::find(conn, id)?.ok_or(ServiceError::SessionNotFound(id))?;
    caller.may_touch(&session)?;
    Ok(session)
}

/// The session if the caller may touch it and it is live at `now`: not found when unknown,
/// forbidden when not the caller's, expired when over.
pub(crate) fn load_live(
    conn: &mut DbConnection,
    caller: &Caller,
    id: SessionId,
    now: Millis,
) -> ServiceResult<Session> {
    let session = load_for(conn, caller, id)?;
    live(session, now)
}

fn live(session: Session, now: Millis) -> ServiceResult<Session> {
    let id = session.id;
    match session.expired_at(now) {
        None => Ok(session),
        Some(expired_at) => Err(ServiceError::SessionExpired {
            session_id: id,
            expired_at,
        }),
    }
}

/// One indexed read; not found when unknown, expired when over.
pub async fn get(state: &AppState, caller: &Caller, id: SessionId) -> ServiceResult<Snapshot> {
    let now = state.now();
    let caller = caller.clone();
    state
        .point_read(move |conn| {
            let session = load_live(conn, &caller, id, now)?;
            Ok(Snapshot { session, now })
        })
        .await
}

/// Inside a transaction: locks and loads a live session, lets `change` modify it and writes it
/// back, then lets `then` do the operation's other writes while the row stays locked, so
/// writers of one session are serialized. The version check is a safety net: should it fail,
/// [`ServiceError::Conflict`] makes [`AppState::write`] retry.
pub(crate) fn mutate<T>(
    conn: &mut DbConnection,
    caller: &Caller,
    id: SessionId,
    now: Millis,
    change: impl FnOnce(&mut Session) -> ServiceResult<()>,
    then: impl FnOnce(&mut DbConnection, &Session) -> ServiceResult<T>,
) -> ServiceResult<(Session, T)> {
    repo::lock(conn, id)?;
    let mut session = load_live(conn, caller, id, now)?;
    let version = session.version;
    change(&mut session)?;
    if !repo::update_if_version(conn, &session, version)? {
        return Err(ServiceError::Conflict);
    }
    session.version += 1;
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

/// What a change reports in the session's event log, built from the session it left.
type EventOf = fn(&Session) -> EventKind;

/// A change to one session and the event it records (if any), in one transaction.
async fn mutate_snapshot(
    state: &AppState,
    caller: &Caller,
    id: SessionId,
    change: impl Fn(&mut Session, Millis) -> ServiceResult<Option<EventOf>> + Send + 'static,
) -> ServiceResult<Snapshot> {
    let now = state.now();
    let caller = caller.clone();
    let (session, renewed) = state
        .write(move |conn| {
            let mut event = None;
            let (session, ()) = mutate(
                conn,
                &caller,
                id,
                now,
                |s| {
                    event = change(s, now)?;
                    Ok(())
                },
                |_, _| Ok(()),
            )?;
            let mut renewed = false;
            if let Some(event_of) = event {
                let kind = event_of(&session);
                renewed = matches!(kind, EventKind::SessionRenewed { .. });
                events::record(conn, id, session.agent_id, kind, now)?;
            }
            Ok((session, renewed))
        })
        .await?;
    if renewed {
        state.metrics.renewals.inc();
    }
    let snapshot = Snapshot { session, now };
    state.events.publish(id, snapshot.session.agent_id);
    Ok(snapshot)
}

/// An explicit renew: always tries; fails when the max-duration cap leaves nothing to extend.
pub async fn renew(state: &AppState, caller: &Caller, id: SessionId) -> ServiceResult<Snapshot> {
    mutate_snapshot(state, caller, id, |s, now| {
        let c = &s.config.config;
        match policy::renew(c, s.created_at, s.expires_at, now) {
            Ok(expires_at) => {
                s.expires_at = expires_at;
                s.last_activity = now;
                s.renewal_count += 1;
                Ok(Some(EventKind::renewed as EventOf))
            }
            Err(RenewalError::MaxDurationReached { cap }) => Err(ServiceError::RenewalFailed {
                session_id: s.id,
                cap,
            }),
        }
    })
    .await
}

/// Records activity at `now`, renewing when auto-renew is on; true when `expiresAt` moved.
pub(crate) fn touch(session: &mut Session, now: Millis) -> bool {
    session.last_activity = now;
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
    mutate_snapshot(state, caller, id, |s, now| {
        Ok(touch(s, now).then_some(EventKind::renewed as EventOf))
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
    let updated = mutate_snapshot(state, caller, id, move |s, now| {
        let config = s.config.overridden(&patch, ConfigSource::Session);
        let expires_at = policy::expiry(&config.config, s.created_at, now);
        if policy::is_expired(expires_at, now) {
            return Err(ServiceError::MaxDurationExceeded {
                session_id: s.id,
                age_ms: now - s.created_at,
            });
        }
        s.config = config;
        s.expires_at = expires_at;
        s.last_activity = now;
        Ok(Some(|s: &Session| EventKind::TimeoutUpdated {
            config: s.config,
            expires_at: s.expires_at,
        }))
    })
    .await?;
    // Committed: a shorter timeout can bring the session's deadline before the planned one.
    state.deadlines.consider(next_deadline(&updated.session));
    Ok(updated)
}

/// Deletes the session and everything it owns (its messages and tokens); an API key may
/// delete an expired session too, while a session token dies with its session (410).
pub async fn delete(state: &AppState, caller: &Caller, id: SessionId) -> ServiceResult<()> {
    let now = state.now();
    let caller = caller.clone();
    state
        .write(move |conn| {
            repo::lock(conn, id)?;
            let session = load_for(conn, &caller, id)?;
            let agent_id = session.agent_id;
            let already_over = session.status != SessionStatus::Active;
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

/// A new token for the session's user; the earlier ones stop working at once.
pub async fn reissue_token(
    state: &AppState,
    caller: &Caller,
    id: SessionId,
) -> ServiceResult<(Snapshot, Secret)> {
    let now = state.now();
    let caller = caller.clone();
    state
        .write(move |conn| {
            repo::lock(conn, id)?;
            let session = load_live(conn, &caller, id, now)?;
            let token = tokens::reissue(conn, &session, now)?;
            Ok((Snapshot { session, now }, token))
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
    pub sessions: Vec<Session>,
    /// Sessions matching every filter, status included.
    pub total: i64,
    /// Sessions matching the agent/user filters, whatever their status.
    pub total_sessions: i64,
    pub active_sessions: i64,
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
            let total_sessions = repo::count(conn, &query.filter, StatusFilter::All, now)?;
            let active_sessions = repo::count(conn, &query.filter, StatusFilter::Active, now)?;
            let total = match query.status {
                StatusFilter::All => total_sessions,
                StatusFilter::Active => active_sessions,
                StatusFilter::Expired => total_sessions - active_sessions,
            };
            Ok(SessionPage {
                sessions,
                total,
                total_sessions,
                active_sessions,
                now,
            })
        })
        .await
}
