//! `Idempotency-Key`: the first response to a keyed POST is stored in the same transaction as
//! the write it reports, and replayed for 24 hours to a retry with the same body.

use actix_web::http::StatusCode;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::clock::Millis;
use crate::db::models::IdempotencyRow;
use crate::db::repo::idempotency as repo;
use crate::db::DbConnection;
use crate::error::ApiError;

/// How long a key is remembered.
pub const TTL_MS: i64 = 24 * 60 * 60 * 1000;
const KEY_MAX_LEN: usize = 255;

/// A validated key, the caller's scope and a digest of the request it came with.
#[derive(Debug, Clone)]
pub struct IdempotencyKey {
    scope: String,
    key: String,
    request_hash: String,
}

impl IdempotencyKey {
    /// `scope` says who is asking for what (route and target); `request` is the parsed body,
    /// so formatting and key order do not matter when comparing a retry.
    pub fn new(scope: String, key: &str, request: &Value) -> Result<Self, ApiError> {
        let valid = !key.is_empty()
            && key.len() <= KEY_MAX_LEN
            && key.bytes().all(|b| b.is_ascii_graphic());
        if !valid {
            return Err(ApiError::invalid(
                "Idempotency-Key",
                format!("must be 1 to {KEY_MAX_LEN} visible ASCII characters"),
            ));
        }
        let digest = Sha256::digest(request.to_string().as_bytes());
        Ok(Self {
            scope,
            key: key.to_owned(),
            request_hash: digest.iter().map(|b| format!("{b:02x}")).collect(),
        })
    }
}

/// A response as sent, and as replayed.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
    /// True when this is the stored response of an earlier request.
    pub replayed: bool,
}

impl Reply {
    pub fn fresh(status: StatusCode, body: Value) -> Self {
        Self {
            status,
            body,
            replayed: false,
        }
    }
}

/// Inside the operation's transaction: replays the stored reply for `key` if there is one,
/// else runs `op` and stores its reply with the write it reports.
pub fn once(
    conn: &mut DbConnection,
    key: Option<&IdempotencyKey>,
    now: Millis,
    op: impl FnOnce(&mut DbConnection) -> Result<Reply, ApiError>,
) -> Result<Reply, ApiError> {
    if let Some(reply) = replay(conn, key, now)? {
        return Ok(reply);
    }
    let reply = op(conn)?;
    record(conn, key, &reply, now)?;
    Ok(reply)
}

/// Inside the operation's transaction: the stored reply for this key, if any. A key reused
/// with a different request is a 422; an expired record is forgotten.
fn replay(
    conn: &mut DbConnection,
    key: Option<&IdempotencyKey>,
    now: Millis,
) -> Result<Option<Reply>, ApiError> {
    let Some(key) = key else { return Ok(None) };
    let Some(row) = repo::find(conn, &key.scope, &key.key)? else {
        return Ok(None);
    };
    if row.created_at <= now - TTL_MS {
        repo::delete(conn, &key.scope, &key.key)?;
        return Ok(None);
    }
    if row.request_hash != key.request_hash {
        return Err(ApiError::IdempotencyKeyReused);
    }
    let status = u16::try_from(row.status_code)
        .ok()
        .and_then(|s| StatusCode::from_u16(s).ok())
        .ok_or_else(|| ApiError::Internal("stored idempotent status is invalid".into()))?;
    let body = serde_json::from_str(&row.response_body)
        .map_err(|e| ApiError::Internal(format!("stored idempotent body: {e}")))?;
    Ok(Some(Reply {
        status,
        body,
        replayed: true,
    }))
}

/// Inside the operation's transaction: remembers the reply. A concurrent request with the same
/// key that committed first makes this a unique violation, so the whole transaction is rolled
/// back and retried, and the retry replays the winner's reply.
fn record(
    conn: &mut DbConnection,
    key: Option<&IdempotencyKey>,
    reply: &Reply,
    now: Millis,
) -> Result<(), ApiError> {
    let Some(key) = key else { return Ok(()) };
    repo::insert(
        conn,
        &IdempotencyRow {
            scope: key.scope.clone(),
            idempotency_key: key.key.clone(),
            request_hash: key.request_hash.clone(),
            status_code: i32::from(reply.status.as_u16()),
            response_body: reply.body.to_string(),
            created_at: now,
        },
    )?;
    Ok(())
}
