//! API keys: issued (the secret shown once), listed (never the secret) and revoked. These run
//! on a connection directly, so the CLI and the HTTP API share them.

use crate::clock::Millis;
use crate::db::models::ApiKeyRow;
use crate::db::repo::api_keys as repo;
use crate::db::{write_transaction, DbConnection};
use crate::domain::{AgentId, ApiKey, KeyId, Scopes};
use crate::secret::{Secret, API_KEY_PREFIX};
use crate::service::{ServiceError, ServiceResult};

/// The longest key name.
pub const NAME_MAX_CHARS: usize = 200;

/// A key name that is too long or holds a NUL.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("at most {NAME_MAX_CHARS} characters, no NUL")]
pub struct InvalidKeyName;

/// A key's name as stored: trimmed, blank meaning none.
pub fn key_name(name: Option<String>) -> Result<Option<String>, InvalidKeyName> {
    let name = name.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty());
    match name {
        Some(n) if n.chars().count() > NAME_MAX_CHARS || n.contains('\0') => Err(InvalidKeyName),
        name => Ok(name),
    }
}

/// Validated input for a new key.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub name: Option<String>,
    pub scopes: Scopes,
    pub agent_id: Option<AgentId>,
}

/// A key just issued, with its secret: the only time the secret exists outside its holder.
#[derive(Debug)]
pub struct IssuedKey {
    pub key: ApiKey,
    pub secret: Secret,
}

pub fn create(conn: &mut DbConnection, input: NewKey, now: Millis) -> ServiceResult<IssuedKey> {
    let secret =
        Secret::generate(API_KEY_PREFIX).map_err(|e| ServiceError::Internal(e.to_string()))?;
    let key = ApiKey {
        id: KeyId::new_random(),
        name: input.name,
        scopes: input.scopes,
        agent_id: input.agent_id,
        created_at: now,
        revoked_at: None,
    };
    let row: ApiKeyRow = key.to_row(secret.digest());
    write_transaction(conn, |conn| repo::insert(conn, &row))?;
    Ok(IssuedKey { key, secret })
}

pub fn list(conn: &mut DbConnection) -> ServiceResult<Vec<ApiKey>> {
    Ok(repo::list(conn)?)
}

/// Revokes a key; a running server refuses it within a second. Revoking a revoked key
/// changes nothing and answers the key as it is.
pub fn revoke(conn: &mut DbConnection, id: KeyId, now: Millis) -> ServiceResult<ApiKey> {
    write_transaction(conn, |conn| {
        repo::revoke(conn, id, now)?;
        repo::find(conn, id)?.ok_or(ServiceError::KeyNotFound(id))
    })
}
