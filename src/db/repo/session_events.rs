use diesel::connection::SimpleConnection;
use diesel::prelude::*;

use crate::db::models::EventRow;
use crate::db::schema::session_events::dsl as e;
use crate::db::schema::sessions::dsl as s;
use crate::db::DbConnection;
use crate::domain::{AgentId, Event, EventKind, SessionId};

/// Appends an event with the session's next sequence number. The caller holds the session's
/// row lock (or SQLite's write lock), so sequence numbers are gap-free in commit order.
pub fn append(
    conn: &mut DbConnection,
    session_id: SessionId,
    agent_id: AgentId,
    kind: EventKind,
    now: i64,
) -> QueryResult<()> {
    let event = Event {
        session_id,
        seq: last_seq(conn, session_id)? + 1,
        agent_id,
        kind,
        created_at: now,
    };
    diesel::insert_into(e::session_events)
        .values(event.to_row()?)
        .execute(conn)?;
    // Other instances on this PostgreSQL learn of it when (and only if) it commits.
    if let DbConnection::Postgresql(c) = conn {
        c.batch_execute(&format!("NOTIFY {CHANNEL}, '{session_id}'"))?;
    }
    Ok(())
}

/// The PostgreSQL channel that carries "session S has a new event" between instances (the
/// payload is the session id).
pub const CHANNEL: &str = "agent_sessions_events";

/// The session's last event sequence number (0 before its first event).
fn last_seq(conn: &mut DbConnection, session: SessionId) -> QueryResult<i64> {
    e::session_events
        .filter(e::session_id.eq(session.to_string()))
        .select(diesel::dsl::max(e::seq))
        .get_result::<Option<i64>>(conn)
        .map(|m| m.unwrap_or(0))
}

/// Up to `limit` events of the session after `cursor`, oldest first.
pub fn after(
    conn: &mut DbConnection,
    session: SessionId,
    cursor: i64,
    limit: i64,
) -> QueryResult<Vec<Event>> {
    e::session_events
        .filter(e::session_id.eq(session.to_string()))
        .filter(e::seq.gt(cursor))
        .order(e::seq.asc())
        .limit(limit)
        .select(EventRow::as_select())
        .load(conn)?
        .into_iter()
        .map(Event::try_from)
        .collect()
}

/// Deletes the logs of up to `batch` deleted sessions whose `session.ended` is at or before
/// `before` (the retention window counts from the delete). Logs of purged sessions go with
/// them ([`delete_for`]).
pub fn purge_deleted(conn: &mut DbConnection, before: i64, batch: i64) -> QueryResult<usize> {
    let gone: Vec<String> = e::session_events
        .filter(e::event_type.eq(ENDED))
        .filter(e::created_at.le(before))
        .filter(diesel::dsl::not(diesel::dsl::exists(
            s::sessions.filter(s::id.eq(e::session_id)),
        )))
        .select(e::session_id)
        .limit(batch)
        .load(conn)?;
    if gone.is_empty() {
        return Ok(0);
    }
    diesel::delete(e::session_events.filter(e::session_id.eq_any(&gone))).execute(conn)
}

/// Deletes the logs of these sessions (purged with them).
pub fn delete_for(conn: &mut DbConnection, sessions: &[String]) -> QueryResult<usize> {
    diesel::delete(e::session_events.filter(e::session_id.eq_any(sessions))).execute(conn)
}

/// The stored type of `session.ended`.
const ENDED: &str = "session.ended";

/// The agent of a session's log, if the log holds anything (the session itself may be gone).
pub fn agent_of(conn: &mut DbConnection, session: SessionId) -> QueryResult<Option<AgentId>> {
    let agent: Option<String> = e::session_events
        .filter(e::session_id.eq(session.to_string()))
        .order(e::seq.asc())
        .select(e::agent_id)
        .first(conn)
        .optional()?;
    agent
        .map(|a| {
            a.parse().map_err(|err| {
                diesel::result::Error::DeserializationError(format!("agent id {a}: {err}").into())
            })
        })
        .transpose()
}
