//! A session's lifecycle beyond timing out: pause and resume, close (archive), and the changes
//! an agent or operator makes to it (title and metadata, the conversation state).

use std::collections::BTreeMap;

use serde_json::Value;

use crate::domain::session::CLOSED;
use crate::domain::{Caller, EventKind, SessionId, SessionStatus, StatePatch};
use crate::service::sessions::{mutate_snapshot, Access, Snapshot};
use crate::service::ServiceResult;
use crate::state::AppState;
use crate::timeout::policy;

/// Pauses the session: its inactivity timer stops and `expiresAt` moves to the max-duration
/// cap, which a paused session cannot outlive. A no-op when it is paused already.
pub async fn pause(state: &AppState, caller: &Caller, id: SessionId) -> ServiceResult<Snapshot> {
    mutate_snapshot(state, caller, id, Access::Manage, |s, _| {
        if s.status == SessionStatus::Paused {
            return Ok(Vec::new());
        }
        s.status = SessionStatus::Paused;
        s.expires_at = s.cap();
        Ok(vec![EventKind::SessionPaused {
            expires_at: s.expires_at,
        }])
    })
    .await
}

/// Resumes a paused session with a full inactivity timeout from now (capped), as a renewal
/// would. A no-op when it is active.
pub async fn resume(state: &AppState, caller: &Caller, id: SessionId) -> ServiceResult<Snapshot> {
    mutate_snapshot(state, caller, id, Access::Manage, |s, now| {
        if s.status == SessionStatus::Active {
            return Ok(Vec::new());
        }
        s.status = SessionStatus::Active;
        s.expires_at = policy::expiry(&s.config.config, s.created_at, now);
        s.last_activity = now;
        Ok(vec![EventKind::SessionResumed {
            expires_at: s.expires_at,
        }])
    })
    .await
}

/// Closes the session: it ends now (`reason`, else `closed`) and stays readable through its
/// transcript until the retention window purges it.
pub async fn close(
    state: &AppState,
    caller: &Caller,
    id: SessionId,
    reason: Option<String>,
) -> ServiceResult<Snapshot> {
    mutate_snapshot(state, caller, id, Access::Manage, move |s, now| {
        let reason = reason.clone().unwrap_or_else(|| CLOSED.to_owned());
        s.status = SessionStatus::Ended;
        s.closed_at = Some(now);
        s.end_reason = Some(reason.clone());
        Ok(vec![EventKind::SessionClosed {
            reason,
            ended_at: now,
        }])
    })
    .await
}

/// A validated change to a session's title and metadata: `None` leaves a field alone;
/// `title: Some(None)` clears the title; metadata is replaced whole.
#[derive(Debug, Clone, Default)]
pub struct SessionPatch {
    pub title: Option<Option<String>>,
    pub metadata: Option<Value>,
}

/// Updates the title and metadata; `session.updated` when either changed.
pub async fn update(
    state: &AppState,
    caller: &Caller,
    id: SessionId,
    patch: SessionPatch,
) -> ServiceResult<Snapshot> {
    mutate_snapshot(state, caller, id, Access::Touch, move |s, _| {
        let (title_before, metadata_before) = (s.title.clone(), s.metadata.clone());
        if let Some(title) = &patch.title {
            s.title = title.clone();
        }
        if let Some(metadata) = &patch.metadata {
            s.metadata = metadata.clone();
        }
        if s.title == title_before && s.metadata == metadata_before {
            return Ok(Vec::new());
        }
        Ok(vec![EventKind::SessionUpdated {
            title: s.title.clone(),
            metadata: s.metadata.clone(),
        }])
    })
    .await
}

/// Merges a validated change into the conversation state; `session.state_changed` with the
/// fields that changed, when any did.
pub async fn update_state(
    state: &AppState,
    caller: &Caller,
    id: SessionId,
    patch: StatePatch,
) -> ServiceResult<Snapshot> {
    mutate_snapshot(state, caller, id, Access::Touch, move |s, _| {
        let changes = s.state.merge(patch.clone());
        if changes.is_empty() {
            return Ok(Vec::new());
        }
        Ok(vec![EventKind::StateChanged {
            changes: changes.into_iter().collect::<BTreeMap<_, _>>(),
            state: s.state.clone(),
        }])
    })
    .await
}
