use diesel::prelude::*;

use crate::db::models::{ApiKeyInfoRow, ApiKeyRow};
use crate::db::schema::api_keys::dsl as k;
use crate::db::DbConnection;
use crate::domain::{ApiKey, KeyId};

pub fn insert(conn: &mut DbConnection, row: &ApiKeyRow) -> QueryResult<()> {
    diesel::insert_into(k::api_keys)
        .values(row)
        .execute(conn)
        .map(drop)
}

/// The live (not revoked) key with this secret digest.
pub fn find_live_by_hash(conn: &mut DbConnection, hash: &str) -> QueryResult<Option<ApiKey>> {
    k::api_keys
        .filter(k::secret_hash.eq(hash))
        .filter(k::revoked_at.is_null())
        .select(ApiKeyInfoRow::as_select())
        .get_result(conn)
        .optional()?
        .map(ApiKey::try_from)
        .transpose()
}

/// Every live key with its digest (the authenticator's snapshot).
pub fn live_with_hashes(conn: &mut DbConnection) -> QueryResult<Vec<(String, ApiKey)>> {
    k::api_keys
        .filter(k::revoked_at.is_null())
        .select((k::secret_hash, ApiKeyInfoRow::as_select()))
        .load::<(String, ApiKeyInfoRow)>(conn)?
        .into_iter()
        .map(|(hash, row)| Ok((hash, ApiKey::try_from(row)?)))
        .collect()
}

/// Whether any key was ever created (revoked ones included): once one was, credentials are
/// required.
pub fn any(conn: &mut DbConnection) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(k::api_keys.select(k::id))).get_result(conn)
}

/// Every key, oldest first.
pub fn list(conn: &mut DbConnection) -> QueryResult<Vec<ApiKey>> {
    k::api_keys
        .order((k::created_at.asc(), k::id.asc()))
        .select(ApiKeyInfoRow::as_select())
        .load(conn)?
        .into_iter()
        .map(ApiKey::try_from)
        .collect()
}

pub fn find(conn: &mut DbConnection, id: KeyId) -> QueryResult<Option<ApiKey>> {
    k::api_keys
        .find(id.to_string())
        .select(ApiKeyInfoRow::as_select())
        .get_result(conn)
        .optional()?
        .map(ApiKey::try_from)
        .transpose()
}

/// Marks a live key revoked at `now`; false when it was unknown or already revoked.
pub fn revoke(conn: &mut DbConnection, id: KeyId, now: i64) -> QueryResult<bool> {
    diesel::update(
        k::api_keys
            .find(id.to_string())
            .filter(k::revoked_at.is_null()),
    )
    .set(k::revoked_at.eq(now))
    .execute(conn)
    .map(|n| n == 1)
}
