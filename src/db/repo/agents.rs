use diesel::dsl::count_star;
use diesel::prelude::*;

use crate::db::models::AgentRow;
use crate::db::schema::agents::dsl as a;
use crate::db::DbConnection;
use crate::domain::{Agent, AgentId};

pub fn find(conn: &mut DbConnection, id: AgentId) -> QueryResult<Option<Agent>> {
    a::agents
        .find(id.to_string())
        .select(AgentRow::as_select())
        .get_result(conn)
        .optional()?
        .map(Agent::try_from)
        .transpose()
}

pub fn insert(conn: &mut DbConnection, agent: &Agent) -> QueryResult<()> {
    diesel::insert_into(a::agents)
        .values(AgentRow::from(agent))
        .execute(conn)
        .map(drop)
}

pub fn update(conn: &mut DbConnection, agent: &Agent) -> QueryResult<()> {
    let row = AgentRow::from(agent);
    diesel::update(a::agents.find(&row.id))
        .set(&row)
        .execute(conn)
        .map(drop)
}

pub fn delete(conn: &mut DbConnection, id: AgentId) -> QueryResult<bool> {
    diesel::delete(a::agents.find(id.to_string()))
        .execute(conn)
        .map(|n| n > 0)
}

/// A page of agents, oldest first.
pub fn list(conn: &mut DbConnection, limit: i64, offset: i64) -> QueryResult<Vec<Agent>> {
    a::agents
        .order((a::created_at.asc(), a::id.asc()))
        .limit(limit)
        .offset(offset)
        .select(AgentRow::as_select())
        .load(conn)?
        .into_iter()
        .map(Agent::try_from)
        .collect()
}

pub fn count(conn: &mut DbConnection) -> QueryResult<i64> {
    a::agents.select(count_star()).get_result(conn)
}
