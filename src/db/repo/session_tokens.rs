use diesel::prelude::*;

use crate::db::models::{SessionTokenRow, TokenGrant};
use crate::db::schema::session_tokens::dsl as t;
use crate::db::DbConnection;
use crate::domain::{SessionId, UserId};

pub fn insert(conn: &mut DbConnection, row: &SessionTokenRow) -> QueryResult<()> {
    diesel::insert_into(t::session_tokens)
        .values(row)
        .execute(conn)
        .map(drop)
}

/// What the token with this digest grants, if it exists.
pub fn find(conn: &mut DbConnection, hash: &str) -> QueryResult<Option<TokenGrant>> {
    t::session_tokens
        .find(hash)
        .select(SessionTokenRow::as_select())
        .get_result(conn)
        .optional()?
        .map(TokenGrant::try_from)
        .transpose()
}

/// Revokes every token of one participant of a session.
pub fn revoke(conn: &mut DbConnection, session: SessionId, user: UserId) -> QueryResult<usize> {
    diesel::delete(
        t::session_tokens
            .filter(t::session_id.eq(session.to_string()))
            .filter(t::user_id.eq(user.to_string())),
    )
    .execute(conn)
}
