//! The session event log: every change is recorded in the transaction that makes it, so a
//! reader never sees what did not commit and never misses what did. Readers long-poll it with
//! [`watch`]; a waiting reader holds no database connection.

use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;

use crate::clock::Millis;
use crate::db::repo::{agents, session_events as repo, sessions};
use crate::db::DbConnection;
use crate::domain::{AgentId, Caller, Event, EventKind, Forbidden, SessionId};
use crate::events::Notice;
use crate::service::sessions::still_taking_part;
use crate::service::{ServiceError, ServiceResult};
use crate::state::AppState;

/// Inside the transaction that makes the change, holding the session's row lock (every
/// session write takes it first): appends the event with the session's next sequence number.
pub fn record(
    conn: &mut DbConnection,
    session_id: SessionId,
    agent_id: AgentId,
    kind: EventKind,
    now: Millis,
) -> ServiceResult<()> {
    Ok(repo::append(conn, session_id, agent_id, kind, now)?)
}

/// Like [`record`] for several events at once (of one session or many), in order.
pub fn record_all(
    conn: &mut DbConnection,
    events: Vec<(SessionId, AgentId, EventKind)>,
    now: Millis,
) -> ServiceResult<()> {
    Ok(repo::append_batch(conn, events, now)?)
}

/// A page of a session's log.
#[derive(Debug, Clone)]
pub struct WatchPage {
    /// Oldest first.
    pub events: Vec<Event>,
    /// The cursor to pass next: the last event's, or the one given when there was none.
    pub cursor: i64,
    /// The session is over (its last event is in the log) or gone: nothing more will come.
    pub over: bool,
}

/// What is read: one session's log (cursor: the event's `seq`) or one agent's feed, every
/// event of every session of the agent (cursor: its `agent_seq`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feed {
    Session(SessionId),
    Agent(AgentId),
}

impl Feed {
    /// The event's position in this feed: the cursor that follows it.
    pub fn position(&self, event: &Event) -> i64 {
        match self {
            Feed::Session(_) => event.seq,
            Feed::Agent(_) => event.agent_seq,
        }
    }

    /// Whether a notice is about this feed.
    pub fn concerns(&self, notice: &Notice) -> bool {
        if notice.everyone {
            return true;
        }
        match self {
            Feed::Session(id) => notice.session == *id,
            Feed::Agent(id) => notice.agent == *id,
        }
    }

    /// Who this feed is, to count its open streams.
    pub fn identity(&self) -> String {
        match self {
            Feed::Session(id) => format!("session:{id}"),
            Feed::Agent(id) => format!("agent:{id}"),
        }
    }
}

/// A long-poll of the feed after `cursor`: at once when there are events (or the session is
/// over, so none will come), else as soon as one is recorded, else none after `wait` or when
/// the service starts stopping.
pub async fn watch(
    state: &AppState,
    caller: &Caller,
    feed: Feed,
    cursor: i64,
    limit: i64,
    wait: Duration,
) -> ServiceResult<WatchPage> {
    // Subscribed before the first read: a change committed between a read and the wait
    // still wakes us.
    let mut notices = state.events.subscribe();
    let mut stopping = state.stopping.clone();
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let page = read_once(state, caller, feed, cursor, limit).await?;
        if !page.events.is_empty() || page.over {
            return Ok(page);
        }
        loop {
            tokio::select! {
                notice = notices.recv() => match notice {
                    Ok(notice) if feed.concerns(&notice) => break,
                    Ok(_) => continue,
                    // Missed notices: read again rather than guess.
                    Err(RecvError::Lagged(_)) => break,
                    Err(RecvError::Closed) => return Ok(page),
                },
                _ = tokio::time::sleep_until(deadline) => return Ok(page),
                // Shutting down: answer now rather than hold the drain.
                _ = stopping.wait_for(|stop| *stop) => return Ok(page),
            }
        }
    }
}

/// One read of the feed after `cursor`, without waiting.
pub async fn read_once(
    state: &AppState,
    caller: &Caller,
    feed: Feed,
    cursor: i64,
    limit: i64,
) -> ServiceResult<WatchPage> {
    let caller = caller.clone();
    let (events, over) = state
        .db(move |conn| match feed {
            Feed::Session(id) => read(conn, &caller, id, cursor, limit),
            Feed::Agent(id) => read_agent(conn, &caller, id, cursor, limit),
        })
        .await?;
    let cursor = events.last().map_or(cursor, |e| feed.position(e));
    Ok(WatchPage {
        events,
        cursor,
        over,
    })
}

/// The agent's feed after `cursor` (never over: new sessions may come). It outlives the agent
/// for its sessions' last events.
fn read_agent(
    conn: &mut DbConnection,
    caller: &Caller,
    id: AgentId,
    cursor: i64,
    limit: i64,
) -> ServiceResult<(Vec<Event>, bool)> {
    caller.may_act_for_agent(id)?;
    let feed = repo::agent_feed(conn, id)?;
    if feed.is_none() && agents::find(conn, id)?.is_none() {
        return Err(ServiceError::AgentNotFound(id));
    }
    // Events after the cursor were purged with their sessions: the reader missed something
    // it can no longer get, and must resync (cursor 0 reads what is kept).
    if let Some((_, purged_through)) = feed {
        if cursor > 0 && cursor < purged_through {
            return Err(ServiceError::CursorExpired {
                cursor,
                oldest: purged_through + 1,
            });
        }
    }
    Ok((repo::agent_after(conn, id, cursor, limit)?, false))
}

/// The events after `cursor`, and whether the session is over (its expiry or end recorded, or
/// the session gone). The
/// log of a deleted or purged session stays readable (for its `session.ended`) until the
/// reaper drops it, to the callers that could read the session.
fn read(
    conn: &mut DbConnection,
    caller: &Caller,
    id: SessionId,
    cursor: i64,
    limit: i64,
) -> ServiceResult<(Vec<Event>, bool)> {
    let over = match sessions::find(conn, id)? {
        Some(session) => {
            caller.may_touch(&session)?;
            // A removed user's open stream stops here.
            still_taking_part(conn, caller, &session)?;
            // Over once its last event is in the log: a session past its expiry whose
            // `session.expired` the scheduler is about to record is worth waiting for.
            !session.status.is_open()
        }
        None => {
            let agent = repo::agent_of(conn, id)?.ok_or(ServiceError::SessionNotFound(id))?;
            match caller {
                Caller::SessionToken { session_id, .. } if *session_id != id => {
                    return Err(Forbidden(format!(
                        "This session token opens another session, not {id}"
                    ))
                    .into())
                }
                _ => caller.may_act_for_agent(agent)?,
            }
            true
        }
    };
    let events = repo::after(conn, id, cursor, limit)?;
    // The oldest events of a long-lived session are purged after the retention window, and
    // what is kept is a gap-free suffix: a first event beyond `cursor + 1` means the reader
    // missed purged ones and must resync.
    match events.first() {
        Some(first) if cursor > 0 && first.seq > cursor + 1 => Err(ServiceError::CursorExpired {
            cursor,
            oldest: first.seq,
        }),
        _ => Ok((events, over)),
    }
}
