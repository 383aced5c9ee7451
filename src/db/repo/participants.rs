//! The users of each session (the creator included; the agent is implied by the session).

use diesel::prelude::*;

use crate::db::models::ParticipantRow;
use crate::db::schema::session_participants::dsl as p;
use crate::db::DbConnection;
use crate::domain::{Member, SessionId, UserId};

pub fn insert(conn: &mut DbConnection, session: SessionId, members: &[Member]) -> QueryResult<()> {
    // One row at a time: a multi-row INSERT does not go through the MultiConnection, and a
    // session gains few users at once.
    for member in members {
        diesel::insert_into(p::session_participants)
            .values(ParticipantRow::new(session, member))
            .execute(conn)?;
    }
    Ok(())
}

/// The session's users, in the order they joined (ties by id).
pub fn of_session(conn: &mut DbConnection, session: SessionId) -> QueryResult<Vec<Member>> {
    p::session_participants
        .filter(p::session_id.eq(session.to_string()))
        .order((p::joined_at.asc(), p::user_id.asc()))
        .select(ParticipantRow::as_select())
        .load(conn)?
        .into_iter()
        .map(Member::try_from)
        .collect()
}

/// The users of several sessions at once (a page of a list), each with its session.
pub fn of_sessions(
    conn: &mut DbConnection,
    sessions: &[SessionId],
) -> QueryResult<Vec<(SessionId, Member)>> {
    if sessions.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<String> = sessions.iter().map(ToString::to_string).collect();
    p::session_participants
        .filter(p::session_id.eq_any(&ids))
        .order((p::joined_at.asc(), p::user_id.asc()))
        .select(ParticipantRow::as_select())
        .load(conn)?
        .into_iter()
        .map(|row| {
            let session = crate::db::models::column(
                "session_participants",
                &row.session_id,
                "session_id",
                row.session_id.parse::<SessionId>(),
            )?;
            Ok((session, Member::try_from(row)?))
        })
        .collect()
}

/// Whether `user` takes part in the session.
pub fn is_member(conn: &mut DbConnection, session: SessionId, user: UserId) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        p::session_participants.find((session.to_string(), user.to_string())),
    ))
    .get_result(conn)
}

pub fn delete(conn: &mut DbConnection, session: SessionId, users: &[UserId]) -> QueryResult<usize> {
    let ids: Vec<String> = users.iter().map(ToString::to_string).collect();
    diesel::delete(
        p::session_participants
            .filter(p::session_id.eq(session.to_string()))
            .filter(p::user_id.eq_any(&ids)),
    )
    .execute(conn)
}
