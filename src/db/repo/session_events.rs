use std::collections::{BTreeMap, HashMap};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;

use crate::db::models::{column, EventRow};
use crate::db::schema::agent_feeds::dsl as f;
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
    append_batch(conn, vec![(session_id, agent_id, kind)], now)
}

/// Appends these events in order, handing out the positions [`append`] would one by one, in a
/// handful of statements instead of three per event: the reaper expires sessions by the
/// thousand, and a message records two events of its session. The caller holds the sessions'
/// row locks; feed counters are taken in agent order, so two reapers on one PostgreSQL cannot
/// deadlock on them.
pub fn append_batch(
    conn: &mut DbConnection,
    events: Vec<(SessionId, AgentId, EventKind)>,
    now: i64,
) -> QueryResult<()> {
    if events.is_empty() {
        return Ok(());
    }
    let ids: Vec<String> = events.iter().map(|(s, ..)| s.to_string()).collect();
    let mut last: HashMap<String, i64> = HashMap::new();
    for chunk in ids.chunks(IN_LIST) {
        let found: Vec<(String, Option<i64>)> = e::session_events
            .filter(e::session_id.eq_any(chunk))
            .group_by(e::session_id)
            .select((e::session_id, diesel::dsl::max(e::seq)))
            .load(conn)?;
        last.extend(found.into_iter().map(|(s, m)| (s, m.unwrap_or(0))));
    }
    let mut per_agent: BTreeMap<AgentId, i64> = BTreeMap::new();
    for (_, agent, _) in &events {
        *per_agent.entry(*agent).or_default() += 1;
    }
    let mut next_agent_seq = HashMap::with_capacity(per_agent.len());
    for (agent, n) in per_agent {
        next_agent_seq.insert(agent, bump_agent_seq(conn, agent, n)? - n + 1);
    }
    let mut notices: Vec<(SessionId, AgentId)> = events.iter().map(|(s, a, _)| (*s, *a)).collect();
    notices.sort_unstable();
    notices.dedup();
    let rows = events
        .into_iter()
        .zip(ids)
        .map(|((session_id, agent_id, kind), id)| {
            let seq = {
                let last = last.entry(id).or_insert(0);
                *last += 1;
                *last
            };
            let agent_seq = next_agent_seq.get_mut(&agent_id).map_or(0, |next| {
                *next += 1;
                *next - 1
            });
            Event {
                session_id,
                seq,
                agent_id,
                agent_seq,
                kind,
                created_at: now,
            }
            .to_row()
        })
        .collect::<QueryResult<Vec<_>>>()?;
    for chunk in rows.chunks(INSERT_ROWS) {
        // Multi-row INSERTs exist per backend only (diesel's MultiConnection has none).
        let insert = diesel::insert_into(e::session_events).values(chunk);
        match conn {
            DbConnection::Sqlite(c) => insert.execute(c)?,
            DbConnection::Postgresql(c) => insert.execute(c)?,
        };
    }
    // Other instances: one notification per session for a small batch, one for everyone
    // for a large one (each reader woken by "everyone" reads again).
    if let DbConnection::Postgresql(c) = conn {
        if notices.len() > NOTIFY_EACH_UP_TO {
            c.batch_execute(&format!("NOTIFY {CHANNEL}, '{EVERYONE}'"))?;
        } else {
            for (session, agent) in notices {
                c.batch_execute(&format!("NOTIFY {CHANNEL}, '{session} {agent}'"))?;
            }
        }
    }
    Ok(())
}

/// Above this many events in one batch, other instances get one notification for everyone.
const NOTIFY_EACH_UP_TO: usize = 100;

/// Ids per `IN (...)` list, and rows per multi-row INSERT (7 parameters each): well under
/// SQLite's and PostgreSQL's parameter limits.
const IN_LIST: usize = 1000;
const INSERT_ROWS: usize = 1000;

/// The NOTIFY payload that wakes every reader (a batch of events of many sessions).
pub const EVERYONE: &str = "*";

/// The PostgreSQL channel that carries "session S of agent A has a new event" between
/// instances (the payload is `"<session id> <agent id>"`).
pub const CHANNEL: &str = "agent_sessions_events";

/// Takes the agent's next `n` feed positions; returns the last one. The UPDATE takes the
/// agent_feeds row's lock until the transaction ends, so positions are handed out in commit
/// order (and given back by a rollback). Two first events of an agent racing on the INSERT:
/// the loser's unique violation retries its whole transaction.
fn bump_agent_seq(conn: &mut DbConnection, agent_id: AgentId, n: i64) -> QueryResult<i64> {
    let agent = agent_id.to_string();
    let bumped: Option<i64> = diesel::update(f::agent_feeds.find(&agent))
        .set(f::last_seq.eq(f::last_seq + n))
        .returning(f::last_seq)
        .get_result(conn)
        .optional()?;
    if let Some(seq) = bumped {
        return Ok(seq);
    }
    diesel::insert_into(f::agent_feeds)
        .values((f::agent_id.eq(&agent), f::last_seq.eq(n)))
        .execute(conn)?;
    Ok(n)
}

/// The agent's feed, if it ever had an event: `(last_seq, purged_through)`.
pub fn agent_feed(conn: &mut DbConnection, agent: AgentId) -> QueryResult<Option<(i64, i64)>> {
    f::agent_feeds
        .find(agent.to_string())
        .select((f::last_seq, f::purged_through))
        .get_result(conn)
        .optional()
}

/// Before these sessions' logs are deleted: remembers, per agent, the highest feed position
/// that goes with them.
fn note_purged(conn: &mut DbConnection, sessions: &[String]) -> QueryResult<()> {
    let highest: Vec<(String, Option<i64>)> = e::session_events
        .filter(e::session_id.eq_any(sessions))
        .group_by(e::agent_id)
        .select((e::agent_id, diesel::dsl::max(e::agent_seq)))
        .load(conn)?;
    raise_purged_through(conn, highest)
}

fn raise_purged_through(
    conn: &mut DbConnection,
    highest: Vec<(String, Option<i64>)>,
) -> QueryResult<()> {
    for (agent, seq) in highest {
        let Some(seq) = seq else { continue };
        diesel::update(
            f::agent_feeds
                .find(&agent)
                .filter(f::purged_through.lt(seq)),
        )
        .set(f::purged_through.eq(seq))
        .execute(conn)?;
    }
    Ok(())
}

/// Up to `limit` events of the agent's sessions after `cursor` in its feed, oldest first.
pub fn agent_after(
    conn: &mut DbConnection,
    agent: AgentId,
    cursor: i64,
    limit: i64,
) -> QueryResult<Vec<Event>> {
    let page = e::session_events
        .filter(e::agent_id.eq(agent.to_string()))
        .filter(e::agent_seq.gt(cursor))
        .order(e::agent_seq.asc())
        .limit(limit)
        .select(EventRow::as_select());
    rows_to_events(page.load(conn)?)
}

fn rows_to_events(rows: Vec<EventRow>) -> QueryResult<Vec<Event>> {
    rows.into_iter().map(Event::try_from).collect()
}

/// Up to `limit` events of the session after `cursor`, oldest first.
pub fn after(
    conn: &mut DbConnection,
    session: SessionId,
    cursor: i64,
    limit: i64,
) -> QueryResult<Vec<Event>> {
    let page = e::session_events
        .filter(e::session_id.eq(session.to_string()))
        .filter(e::seq.gt(cursor))
        .order(e::seq.asc())
        .limit(limit)
        .select(EventRow::as_select());
    rows_to_events(page.load(conn)?)
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
    note_purged(conn, &gone)?;
    diesel::delete(e::session_events.filter(e::session_id.eq_any(&gone))).execute(conn)
}

/// Deletes the events recorded at or before `before` from up to `batch` sessions that still
/// exist (long-lived ones): a session's log loses its oldest events first, so what is kept
/// is always a suffix, and readers of an older cursor are told (410).
pub fn purge_old(conn: &mut DbConnection, before: i64, batch: i64) -> QueryResult<usize> {
    let old: Vec<String> = e::session_events
        .filter(e::created_at.le(before))
        .select(e::session_id)
        .distinct()
        .limit(batch)
        .load(conn)?;
    if old.is_empty() {
        return Ok(0);
    }
    let doomed = || {
        e::session_events
            .filter(e::session_id.eq_any(&old))
            .filter(e::created_at.le(before))
    };
    let highest: Vec<(String, Option<i64>)> = doomed()
        .group_by(e::agent_id)
        .select((e::agent_id, diesel::dsl::max(e::agent_seq)))
        .load(conn)?;
    raise_purged_through(conn, highest)?;
    diesel::delete(doomed()).execute(conn)
}

/// Deletes the logs of these sessions (purged with them).
pub fn delete_for(conn: &mut DbConnection, sessions: &[String]) -> QueryResult<usize> {
    note_purged(conn, sessions)?;
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
            column(
                "session_events",
                &session.to_string(),
                "agent_id",
                a.parse(),
            )
        })
        .transpose()
}
