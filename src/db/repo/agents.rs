use diesel::dsl::count_star;
use diesel::prelude::*;

use crate::db::models::AgentRow;
use crate::db::schema::agents::dsl as a;
use crate::db::DbConnection;

pub fn find(conn: &mut DbConnection, id: &str) -> QueryResult<Option<AgentRow>> {
    a::agents
        .find(id)
        .select(AgentRow::as_select())
        .first(conn)
        .optional()
}

pub fn insert(conn: &mut DbConnection, row: &AgentRow) -> QueryResult<()> {
    diesel::insert_into(a::agents)
        .values(row)
        .execute(conn)
        .map(drop)
}

pub fn update(conn: &mut DbConnection, row: &AgentRow) -> QueryResult<()> {
    diesel::update(a::agents.find(&row.id))
        .set(row)
        .execute(conn)
        .map(drop)
}

pub fn delete(conn: &mut DbConnection, id: &str) -> QueryResult<bool> {
    diesel::delete(a::agents.find(id))
        .execute(conn)
        .map(|n| n > 0)
}

pub fn list(conn: &mut DbConnection, limit: i64, offset: i64) -> QueryResult<Vec<AgentRow>> {
    a::agents
        .order((a::created_at.asc(), a::id.asc()))
        .limit(limit)
        .offset(offset)
        .select(AgentRow::as_select())
        .load(conn)
}

pub fn count(conn: &mut DbConnection) -> QueryResult<i64> {
    a::agents.select(count_star()).first(conn)
}
