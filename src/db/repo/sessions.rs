use diesel::dsl::{count_star, sql};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool};

use crate::db::models::{column, SessionRow, ACTIVE, ENDED, EXPIRED, PAUSED};
use crate::db::repo::session_events;
use crate::db::schema::expiry_warnings::dsl as w;
use crate::db::schema::session_participants::dsl as p;
use crate::db::schema::sessions::dsl as s;
use crate::db::{DbConnection, MultiBackend};
use crate::domain::session::AGENT_DELETED;
use crate::domain::{AgentId, Session, SessionFilter, SessionId, StatusFilter};

type Boxed<'a> = crate::db::schema::sessions::BoxedQuery<'a, MultiBackend>;

fn filtered(filter: &SessionFilter, status: StatusFilter, now: i64) -> Boxed<'static> {
    let mut q = s::sessions.into_boxed();
    // With a user filter, the user's few sessions (through `session_participants_user`, then
    // by primary key) drive the query, and every other condition is written as an expression
    // (`agent_id || ''`, `status || ''`) that no index serves: SQLite's planner, which has no
    // statistics, would otherwise walk an agent's or a status's whole index range and test
    // each row for membership.
    let by_user = filter.user_id.is_some();
    if let Some(agent) = filter.agent_id {
        let agent = agent.to_string();
        q = if by_user {
            q.filter(s::agent_id.concat("").eq(agent))
        } else {
            q.filter(s::agent_id.eq(agent))
        };
    }
    if let Some(user) = filter.user_id {
        // Any participant: the creator is one too.
        q = q.filter(
            s::id.eq_any(
                p::session_participants
                    .filter(p::user_id.eq(user.to_string()))
                    .select(p::session_id),
            ),
        );
    }
    if let Some(stage) = filter.stage {
        q = q.filter(s::stage.eq(stage.as_str()));
    }
    // With an owner filter, the expiry is compared as an expression (`expires_at + 0`) that
    // no index serves: SQLite's planner would otherwise take the `sessions_due` range (every
    // active session of every agent) and sort it, instead of `sessions_agent_status`, which
    // holds the owner, the status and the order (measured: 3 lists/s instead of thousands
    // with 1M stored sessions).
    let owned = filter.agent_id.is_some() || by_user;
    let live = |q: Boxed<'static>, status: &'static str| match (owned, by_user) {
        (_, true) => q.filter(
            s::status
                .concat("")
                .eq(status)
                .and((s::expires_at + 0).gt(now)),
        ),
        (true, false) => q.filter(s::status.eq(status).and((s::expires_at + 0).gt(now))),
        (false, _) => q.filter(s::status.eq(status).and(s::expires_at.gt(now))),
    };
    match status {
        StatusFilter::Active => live(q, ACTIVE),
        StatusFilter::Paused => live(q, PAUSED),
        StatusFilter::Expired => q.filter(
            s::status
                .ne(ACTIVE)
                .and(s::status.ne(PAUSED))
                .or(s::expires_at.le(now)),
        ),
        StatusFilter::All => q,
    }
}

/// Rows of active sessions, then of paused ones, at most `limit` in all: `query` reads one
/// status's range of the `(status, expires_at)` index (a single `IN` over both statuses would
/// read and sort every row of both).
fn open_first<T>(
    limit: i64,
    mut query: impl FnMut(&'static str, i64) -> QueryResult<Vec<T>>,
) -> QueryResult<Vec<T>> {
    let mut rows = Vec::new();
    for status in [ACTIVE, PAUSED] {
        let room = limit - rows.len() as i64;
        if room <= 0 {
            break;
        }
        rows.extend(query(status, room)?);
    }
    Ok(rows)
}

pub fn insert(conn: &mut DbConnection, session: &Session) -> QueryResult<()> {
    diesel::insert_into(s::sessions)
        .values(session.to_row()?)
        .execute(conn)
        .map(drop)
}

pub fn find(conn: &mut DbConnection, id: SessionId) -> QueryResult<Option<Session>> {
    s::sessions
        .find(id.to_string())
        .select(SessionRow::as_select())
        .get_result(conn)
        .optional()?
        .map(Session::try_from)
        .transpose()
}

/// Takes the row's write lock for the rest of the transaction (a no-op UPDATE; PostgreSQL
/// then queues concurrent writers of this session instead of letting them race). On SQLite it
/// does nothing: `BEGIN IMMEDIATE` already holds the database write lock.
pub fn lock(conn: &mut DbConnection, id: SessionId) -> QueryResult<()> {
    if let DbConnection::Sqlite(_) = conn {
        return Ok(());
    }
    diesel::update(s::sessions.find(id.to_string()))
        .set(s::version.eq(s::version))
        .execute(conn)
        .map(drop)
}

/// Writes what changed from `before` to `after` (bumping the version) only if the row still
/// has `before`'s version; false when another writer got there first.
pub fn update_if_version(
    conn: &mut DbConnection,
    before: &Session,
    after: &Session,
) -> QueryResult<bool> {
    let row = s::sessions
        .find(after.id.to_string())
        .filter(s::version.eq(before.version));
    diesel::update(row)
        .set(after.changes(before)?)
        .execute(conn)
        .map(|n| n == 1)
}

pub fn delete(conn: &mut DbConnection, id: SessionId) -> QueryResult<bool> {
    diesel::delete(s::sessions.find(id.to_string()))
        .execute(conn)
        .map(|n| n > 0)
}

pub fn list(
    conn: &mut DbConnection,
    filter: &SessionFilter,
    status: StatusFilter,
    now: i64,
    limit: i64,
    offset: i64,
) -> QueryResult<Vec<Session>> {
    filtered(filter, status, now)
        .order((s::created_at.desc(), s::id.desc()))
        .limit(limit)
        .offset(offset)
        .select(SessionRow::as_select())
        .load(conn)?
        .into_iter()
        .map(Session::try_from)
        .collect()
}

pub fn count(
    conn: &mut DbConnection,
    filter: &SessionFilter,
    status: StatusFilter,
    now: i64,
) -> QueryResult<i64> {
    filtered(filter, status, now)
        .select(count_star())
        .get_result(conn)
}

/// Active or paused sessions within their own warning threshold of expiry.
pub fn count_expiring_soon(conn: &mut DbConnection, now: i64) -> QueryResult<i64> {
    s::sessions
        .filter(
            s::status
                .eq_any([ACTIVE, PAUSED])
                .and(s::expires_at.gt(now)),
        )
        .filter(
            sql::<Bool>("expires_at - warning_threshold_minutes * 60000 <= ")
                .bind::<BigInt, _>(now),
        )
        .select(count_star())
        .get_result(conn)
}

/// A session the reaper just marked expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expired {
    pub id: SessionId,
    pub agent_id: AgentId,
    pub created_at: i64,
    pub max_duration_minutes: i64,
    pub expires_at: i64,
}

/// Marks up to `batch` active or paused sessions whose `expires_at` has passed as expired and returns
/// them. The status condition is re-checked by the UPDATE itself, so concurrent reapers on one
/// PostgreSQL never expire the same session twice, and the UPDATE holds the rows' locks for the
/// rest of the transaction (their events are appended under them).
pub fn expire_due(conn: &mut DbConnection, now: i64, batch: i64) -> QueryResult<Vec<Expired>> {
    // Active sessions past their deadline, then paused ones past their cap.
    let ids: Vec<String> = open_first(batch, |status, room| {
        s::sessions
            .filter(s::status.eq(status).and(s::expires_at.le(now)))
            .order(s::expires_at.asc())
            .limit(room)
            .select(s::id)
            .load::<String>(conn)
    })?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    // The re-check is written as expressions (`status || ''`, `expires_at + 0`) so that no
    // index serves it: SQLite's planner (without statistics) otherwise walks `sessions_due`
    // over every due session for each batch instead of looking the ids up by primary key
    // (measured: 1M due sessions took longer than 10 minutes instead of seconds).
    Ok(diesel::update(
        s::sessions.filter(s::id.eq_any(&ids)).filter(
            s::status
                .concat("")
                .eq_any([ACTIVE, PAUSED])
                .and((s::expires_at + 0).le(now)),
        ),
    )
    .set((
        s::status.eq(EXPIRED),
        s::closed_at.eq(s::expires_at.nullable()),
        s::version.eq(s::version + 1),
    ))
    .returning((
        s::id,
        s::agent_id,
        s::created_at,
        s::max_duration_minutes,
        s::expires_at,
    ))
    .get_results::<(String, String, i64, i64, i64)>(conn)?
    .into_iter()
    // The rows are expired whatever their ids say; one that does not parse is only left out
    // of the report, so it cannot stall the reaper.
    .filter_map(
        |(id, agent, created_at, max_duration_minutes, expires_at)| match (
            id.parse(),
            agent.parse(),
        ) {
            (Ok(id), Ok(agent_id)) => Some(Expired {
                id,
                agent_id,
                created_at,
                max_duration_minutes,
                expires_at,
            }),
            _ => {
                tracing::error!(id, "expired a session whose stored ids are not UUIDs");
                None
            }
        },
    )
    .collect())
}

/// Active, then paused, sessions in their warning window, soonest expiry first (some may be
/// warned already).
pub fn in_warning_window(
    conn: &mut DbConnection,
    now: i64,
    batch: i64,
) -> QueryResult<Vec<SessionId>> {
    // Active sessions, then paused ones (warned before their cap).
    let ids = open_first(batch, |status, room| {
        s::sessions
            .filter(s::status.eq(status))
            .filter(s::expires_at.gt(now))
            // The window is at most 60 minutes: this bound lets the (status, expires_at) index
            // find the candidates.
            .filter(s::expires_at.le(now.saturating_add(60 * 60_000)))
            .filter(
                sql::<Bool>("expires_at - warning_threshold_minutes * 60000 <= ")
                    .bind::<BigInt, _>(now),
            )
            .filter(diesel::dsl::not(diesel::dsl::exists(
                w::expiry_warnings
                    .filter(w::session_id.eq(s::id))
                    .filter(w::expires_at.eq(s::expires_at)),
            )))
            .order(s::expires_at.asc())
            .limit(room)
            .select(s::id)
            .load::<String>(conn)
    })?;
    ids.into_iter()
        .map(|id| column("sessions", &id, "id", id.parse()))
        .collect()
}

/// The `expires_at` the session was last warned for.
pub fn warned_for(conn: &mut DbConnection, id: SessionId) -> QueryResult<Option<i64>> {
    w::expiry_warnings
        .find(id.to_string())
        .select(w::expires_at)
        .get_result(conn)
        .optional()
}

/// Records that the session was warned for `expires_at` (under its row lock).
pub fn set_warned_for(conn: &mut DbConnection, id: SessionId, expires_at: i64) -> QueryResult<()> {
    let id = id.to_string();
    diesel::delete(w::expiry_warnings.find(&id)).execute(conn)?;
    diesel::insert_into(w::expiry_warnings)
        .values((w::session_id.eq(&id), w::expires_at.eq(expires_at)))
        .execute(conn)
        .map(drop)
}

/// The `lookahead` active or paused sessions that expire first, with what the scheduler
/// needs: `(expires_at, warning_threshold_minutes, warned_for)`.
pub fn soonest(
    conn: &mut DbConnection,
    lookahead: i64,
) -> QueryResult<Vec<(i64, i64, Option<i64>)>> {
    // One range of `sessions_due` per status (a single `IN` would sort every row of both).
    let mut soonest = Vec::new();
    for status in [ACTIVE, PAUSED] {
        soonest.extend(
            s::sessions
                .left_join(w::expiry_warnings.on(w::session_id.eq(s::id)))
                .filter(s::status.eq(status))
                .order(s::expires_at.asc())
                .limit(lookahead)
                .select((
                    s::expires_at,
                    s::warning_threshold_minutes,
                    w::expires_at.nullable(),
                ))
                .load::<(i64, i64, Option<i64>)>(conn)?,
        );
    }
    soonest.sort_unstable_by_key(|(at, _, _)| *at);
    soonest.truncate(lookahead.max(0) as usize);
    Ok(soonest)
}

/// Deletes up to `batch` closed sessions whose retention window ended before `closed_before`.
pub fn purge_closed(conn: &mut DbConnection, closed_before: i64, batch: i64) -> QueryResult<usize> {
    let ids: Vec<String> = s::sessions
        .filter(s::closed_at.le(closed_before))
        .order(s::closed_at.asc())
        .limit(batch)
        .select(s::id)
        .load(conn)?;
    if ids.is_empty() {
        return Ok(0);
    }
    // Their event logs go with them (no foreign key: a deleted session's log outlives it).
    session_events::delete_for(conn, &ids)?;
    diesel::delete(s::sessions.filter(s::id.eq_any(&ids))).execute(conn)
}

/// Ends every live session of an agent (the agent was deleted) and returns their ids. Sessions
/// already past their expiry are left for the reaper, which records them as expired at
/// `expires_at`.
pub fn end_for_agent(
    conn: &mut DbConnection,
    agent_id: AgentId,
    now: i64,
) -> QueryResult<Vec<SessionId>> {
    let live = s::agent_id
        .eq(agent_id.to_string())
        .and(s::status.eq_any([ACTIVE, PAUSED]))
        .and(s::expires_at.gt(now));
    diesel::update(s::sessions.filter(live))
        .set((
            s::status.eq(ENDED),
            s::closed_at.eq(now),
            s::end_reason.eq(AGENT_DELETED),
            s::version.eq(s::version + 1),
        ))
        .returning(s::id)
        .get_results::<String>(conn)?
        .into_iter()
        .map(|id| column("sessions", &id, "id", id.parse()))
        .collect()
}
