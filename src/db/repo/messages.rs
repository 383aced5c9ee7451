use diesel::prelude::*;

use crate::db::models::MessageRow;
use crate::db::schema::messages::dsl as m;
use crate::db::DbConnection;
use crate::domain::{Message, SessionId};

/// `(seq, created_at)` of the session's newest message.
pub fn last_position(
    conn: &mut DbConnection,
    session_id: SessionId,
) -> QueryResult<Option<(i64, i64)>> {
    m::messages
        .filter(m::session_id.eq(session_id.to_string()))
        .order(m::seq.desc())
        .select((m::seq, m::created_at))
        .first(conn)
        .optional()
}

pub fn insert(conn: &mut DbConnection, message: &Message) -> QueryResult<()> {
    diesel::insert_into(m::messages)
        .values(message.to_row()?)
        .execute(conn)
        .map(drop)
}

/// Which way a page is read from its cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Newest first, from `before` (or the newest message) backwards.
    Backward,
    /// Oldest first, from `after` forwards.
    Forward,
}

/// Up to `limit` messages with `after < created_at < before`, read in `direction`.
pub fn page(
    conn: &mut DbConnection,
    session_id: SessionId,
    before: Option<i64>,
    after: Option<i64>,
    direction: Direction,
    limit: i64,
) -> QueryResult<Vec<Message>> {
    let mut q = m::messages
        .filter(m::session_id.eq(session_id.to_string()))
        .select(MessageRow::as_select())
        .into_boxed();
    if let Some(before) = before {
        q = q.filter(m::created_at.lt(before));
    }
    if let Some(after) = after {
        q = q.filter(m::created_at.gt(after));
    }
    q = match direction {
        Direction::Backward => q.order(m::created_at.desc()),
        Direction::Forward => q.order(m::created_at.asc()),
    };
    q.limit(limit)
        .load(conn)?
        .into_iter()
        .map(Message::try_from)
        .collect()
}
