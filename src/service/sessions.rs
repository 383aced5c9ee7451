use actix_web::http::StatusCode;
use serde_json::Value;

use crate::clock::Millis;
use crate::db::repo::agents as agent_repo;
use crate::db::repo::sessions::{self as repo, Filter, StatusFilter};
use crate::db::{write_transaction, DbConnection};
use crate::domain::{Agent, Session, SessionStatus};
use crate::error::ApiError;
use crate::service::idempotency::{self, IdempotencyKey, Reply};
use crate::service::transact;
use crate::state::AppState;
use crate::timeout::policy::{self, RenewalError};
use crate::timeout::{ConfigSource, PartialTimeoutConfig};

/// A session as read at `now` (time remaining and the warning depend on it).
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub session: Session,
    pub now: Millis,
}

/// Validated input for a new session.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub agent_id: String,
    pub user_id: String,
    pub metadata: Value,
    pub timeout_config: PartialTimeoutConfig,
}

/// Creates a session in one short transaction; with an idempotency key, a retry replays the
/// first reply instead (`render` shapes the reply that is stored).
pub async fn create(
    state: &AppState,
    input: NewSession,
    idempotency_key: Option<IdempotencyKey>,
    render: impl Fn(&Snapshot) -> Value + Send + 'static,
) -> Result<Reply, ApiError> {
    let now = state.now();
    let global = state.settings.timeouts;
    state
        .db(move |conn| {
            transact(conn, |conn| {
                idempotency::once(conn, idempotency_key.as_ref(), now, |conn| {
                    let agent: Agent = agent_repo::find(conn, &input.agent_id)?
                        .ok_or_else(|| ApiError::AgentNotFound(input.agent_id.clone()))?
                        .into();
                    let config =
                        policy::merge(global, &agent.timeout_config, &input.timeout_config);
                    let session = Session {
                        id: uuid::Uuid::new_v4().to_string(),
                        agent_id: input.agent_id.clone(),
                        user_id: input.user_id.clone(),
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
                    repo::insert(conn, &session.to_row())?;
                    let body = render(&Snapshot { session, now });
                    Ok(Reply::fresh(StatusCode::CREATED, body))
                })
            })
        })
        .await
}

fn load(conn: &mut DbConnection, id: &str) -> Result<Session, ApiError> {
    repo::find(conn, id)?
        .ok_or_else(|| ApiError::SessionNotFound(id.to_owned()))?
        .try_into()
}

/// The session if it is live at `now`: 404 when unknown, 410 when over.
pub(crate) fn load_live(
    conn: &mut DbConnection,
    id: &str,
    now: Millis,
) -> Result<Session, ApiError> {
    let session = load(conn, id)?;
    session.ensure_alive(now)?;
    Ok(session)
}

/// One indexed read; 404 when unknown, 410 when over.
pub async fn get(state: &AppState, id: String) -> Result<Snapshot, ApiError> {
    let now = state.now();
    state
        .db(move |conn| {
            let session = load_live(conn, &id, now)?;
            Ok(Snapshot { session, now })
        })
        .await
}

/// Inside a transaction: locks and loads a live session, lets `change` modify it and writes it
/// back, then lets `then` do the operation's other writes while the row stays locked, so
/// writers of one session are serialized. The version check is a safety net: should it fail,
/// [`ApiError::Conflict`] makes [`super::transact`] retry.
pub(crate) fn mutate<T>(
    conn: &mut DbConnection,
    id: &str,
    now: Millis,
    change: impl FnOnce(&mut Session) -> Result<(), ApiError>,
    then: impl FnOnce(&mut DbConnection, &Session) -> Result<T, ApiError>,
) -> Result<(Session, T), ApiError> {
    repo::lock(conn, id)?;
    let mut session = load_live(conn, id, now)?;
    let version = session.version;
    change(&mut session)?;
    if !repo::update_if_version(conn, id, version, &session.changes())? {
        return Err(ApiError::Conflict);
    }
    session.version += 1;
    let extra = then(conn, &session)?;
    Ok((session, extra))
}

async fn mutate_snapshot(
    state: &AppState,
    id: String,
    change: impl Fn(&mut Session, Millis) -> Result<(), ApiError> + Send + 'static,
) -> Result<Snapshot, ApiError> {
    let now = state.now();
    state
        .db(move |conn| {
            let (session, ()) = transact(conn, |conn| {
                mutate(conn, &id, now, |s| change(s, now), |_, _| Ok(()))
            })?;
            Ok(Snapshot { session, now })
        })
        .await
}

/// An explicit renew: always tries; 422 when the max-duration cap leaves nothing to extend.
pub async fn renew(state: &AppState, id: String) -> Result<Snapshot, ApiError> {
    mutate_snapshot(state, id, |s, now| {
        let c = &s.config.config;
        match policy::renew(c, s.created_at, s.expires_at, now) {
            Ok(expires_at) => {
                s.expires_at = expires_at;
                s.last_activity = now;
                s.renewal_count += 1;
                Ok(())
            }
            Err(RenewalError::MaxDurationReached { cap }) => Err(ApiError::RenewalFailed {
                session_id: s.id.clone(),
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
pub async fn heartbeat(state: &AppState, id: String) -> Result<Snapshot, ApiError> {
    mutate_snapshot(state, id, |s, now| {
        touch(s, now);
        Ok(())
    })
    .await
}

/// Merges a validated partial config into the session's and recomputes `expiresAt` from now,
/// capped by the (possibly new) maximum duration.
pub async fn update_timeout(
    state: &AppState,
    id: String,
    patch: PartialTimeoutConfig,
) -> Result<Snapshot, ApiError> {
    mutate_snapshot(state, id, move |s, now| {
        let config = s.config.overridden(&patch, ConfigSource::Session);
        let expires_at = policy::expiry(&config.config, s.created_at, now);
        if policy::is_expired(expires_at, now) {
            return Err(ApiError::MaxDurationExceeded {
                session_id: s.id.clone(),
                age_ms: now - s.created_at,
            });
        }
        s.config = config;
        s.expires_at = expires_at;
        s.last_activity = now;
        Ok(())
    })
    .await
}

/// Deletes the session and everything it owns; works for expired sessions too.
pub async fn delete(state: &AppState, id: String) -> Result<(), ApiError> {
    state
        .db(move |conn| {
            if write_transaction(conn, |conn| repo::delete(conn, &id))? {
                Ok(())
            } else {
                Err(ApiError::SessionNotFound(id))
            }
        })
        .await
}

#[derive(Debug, Clone)]
pub struct ListQuery {
    pub filter: Filter,
    pub status: StatusFilter,
    pub limit: i64,
    pub offset: i64,
}

#[derive(Debug, Clone)]
pub struct SessionPage {
    pub sessions: Vec<Session>,
    pub total: i64,
    pub total_sessions: i64,
    pub active_sessions: i64,
    pub now: Millis,
}

pub async fn list(state: &AppState, query: ListQuery) -> Result<SessionPage, ApiError> {
    let now = state.now();
    state
        .db(move |conn| {
            let rows = repo::list(
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
                sessions: rows
                    .into_iter()
                    .map(Session::try_from)
                    .collect::<Result<_, _>>()?,
                total,
                total_sessions,
                active_sessions,
                now,
            })
        })
        .await
}
