use diesel::prelude::*;

use crate::db::models::IdempotencyRow;
use crate::db::schema::idempotency_outcomes::dsl as k;
use crate::db::DbConnection;

pub fn find(
    conn: &mut DbConnection,
    scope: &str,
    key: &str,
) -> QueryResult<Option<IdempotencyRow>> {
    k::idempotency_outcomes
        .find((scope, key))
        .select(IdempotencyRow::as_select())
        .get_result(conn)
        .optional()
}

pub fn insert(conn: &mut DbConnection, row: &IdempotencyRow) -> QueryResult<()> {
    diesel::insert_into(k::idempotency_outcomes)
        .values(row)
        .execute(conn)
        .map(drop)
}

pub fn delete(conn: &mut DbConnection, scope: &str, key: &str) -> QueryResult<()> {
    diesel::delete(k::idempotency_outcomes.find((scope, key)))
        .execute(conn)
        .map(drop)
}

/// Deletes up to `batch` records created at or before `created_before`.
pub fn purge(conn: &mut DbConnection, created_before: i64, batch: i64) -> QueryResult<usize> {
    let old: Vec<(String, String)> = k::idempotency_outcomes
        .filter(k::created_at.le(created_before))
        .order(k::created_at.asc())
        .limit(batch)
        .select((k::scope, k::idempotency_key))
        .load(conn)?;
    let mut purged = 0;
    for (scope, key) in old {
        purged += diesel::delete(
            k::idempotency_outcomes
                .find((&scope, &key))
                .filter(k::created_at.le(created_before)),
        )
        .execute(conn)?;
    }
    Ok(purged)
}
