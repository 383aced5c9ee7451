//! `Idempotency-Key`: the outcome of a keyed operation is stored in the same transaction as
//! the write it reports, and handed back for 24 hours to a retry with the same request.

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::clock::Millis;
use crate::db::models::{json_text, IdempotencyRow};
use crate::db::repo::idempotency as repo;
use crate::db::DbConnection;
use crate::service::{ServiceError, ServiceResult};

/// How long a key is remembered.
pub const TTL_MS: i64 = 24 * 60 * 60 * 1000;
pub const KEY_MAX_LEN: usize = 255;

/// A key that is not 1–255 visible ASCII characters.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("must be 1 to {KEY_MAX_LEN} visible ASCII characters")]
pub struct InvalidIdempotencyKey;

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
    pub fn new(scope: String, key: &str, request: &Value) -> Result<Self, InvalidIdempotencyKey> {
        let valid = !key.is_empty()
            && key.len() <= KEY_MAX_LEN
            && key.bytes().all(|b| b.is_ascii_graphic());
        if !valid {
            return Err(InvalidIdempotencyKey);
        }
        Ok(Self {
            scope,
            key: key.to_owned(),
            request_hash: crate::secret::digest(&request.to_string()),
        })
    }
}

/// What a keyed operation produced: now, or (replayed) for an earlier request with the key.
#[derive(Debug, Clone)]
pub struct Outcome<T> {
    pub value: T,
    /// True when this is the stored outcome of an earlier request.
    pub replayed: bool,
}

/// Inside the operation's transaction: hands back the stored outcome for `key` if there is
/// one, else runs `op` and stores its outcome with the write it reports.
pub fn once<T: Serialize + DeserializeOwned>(
    conn: &mut DbConnection,
    key: Option<&IdempotencyKey>,
    now: Millis,
    op: impl FnOnce(&mut DbConnection) -> ServiceResult<T>,
) -> ServiceResult<Outcome<T>> {
    if let Some(value) = replay(conn, key, now)? {
        return Ok(Outcome {
            value,
            replayed: true,
        });
    }
    let value = op(conn)?;
    record(conn, key, &value, now)?;
    Ok(Outcome {
        value,
        replayed: false,
    })
}

/// Inside the operation's transaction: the stored outcome for this key, if any. A key reused
/// with a different request is an error; an expired record is forgotten.
fn replay<T: DeserializeOwned>(
    conn: &mut DbConnection,
    key: Option<&IdempotencyKey>,
    now: Millis,
) -> ServiceResult<Option<T>> {
    let Some(key) = key else { return Ok(None) };
    let Some(row) = repo::find(conn, &key.scope, &key.key)? else {
        return Ok(None);
    };
    if row.created_at <= now - TTL_MS {
        repo::delete(conn, &key.scope, &key.key)?;
        return Ok(None);
    }
    if row.request_hash != key.request_hash {
        return Err(ServiceError::IdempotencyKeyReused);
    }
    serde_json::from_str(&row.outcome)
        .map(Some)
        .map_err(|e| ServiceError::Internal(format!("stored idempotent outcome: {e}")))
}

/// Inside the operation's transaction: remembers the outcome. A concurrent request with the
/// same key that committed first makes this a unique violation, so the whole transaction is
/// rolled back and retried, and the retry replays the winner's outcome.
fn record<T: Serialize>(
    conn: &mut DbConnection,
    key: Option<&IdempotencyKey>,
    value: &T,
    now: Millis,
) -> ServiceResult<()> {
    let Some(key) = key else { return Ok(()) };
    repo::insert(
        conn,
        &IdempotencyRow {
            scope: key.scope.clone(),
            idempotency_key: key.key.clone(),
            request_hash: key.request_hash.clone(),
            outcome: json_text(value)?,
            created_at: now,
        },
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    //! Stored outcomes must keep decoding for their 24 hours, across deploys: these samples pin
    //! the format. A change to `Session`, `Message` or their parts that breaks one of them needs
    //! `#[serde(default)]` (or a format migration), not a new sample.

    use serde_json::json;

    use crate::service::messages::Sent;
    use crate::service::sessions::Snapshot;

    fn session() -> serde_json::Value {
        json!({
            "id": "3c90c3cc-0d44-4b50-8888-8dd25736052a",
            "agent_id": "8b1a3c1e-5f5e-4a57-9b0a-2f7e1c2d3e4f",
            "user_id": "0e6f3a52-1b7c-4c1e-9d55-3f0b8a2c7d10",
            "status": "active",
            "metadata": {"platform": "web"},
            "config": {
                "config": {"timeoutMinutes": 30, "autoRenew": true, "maxDurationMinutes": 720, "warningThresholdMinutes": 5},
                "sources": {"timeoutMinutes": "global", "autoRenew": "agent", "maxDurationMinutes": "session", "warningThresholdMinutes": "global"}
            },
            "created_at": 1767225600000_i64,
            "last_activity": 1767225600000_i64,
            "expires_at": 1767227400000_i64,
            "renewal_count": 0,
            "closed_at": null,
            "version": 0
        })
    }

    #[test]
    fn a_stored_snapshot_decodes_and_encodes_the_same() {
        let stored = json!({"session": session(), "now": 1767225600000_i64});
        let snapshot: Snapshot = serde_json::from_value(stored.clone()).expect("decodes");
        assert_eq!(snapshot.session.metadata, json!({"platform": "web"}));
        assert_eq!(serde_json::to_value(&snapshot).unwrap(), stored);
    }

    #[test]
    fn a_stored_message_outcome_decodes_and_encodes_the_same() {
        let stored = json!({
            "message": {
                "id": "5d1f0c3e-8a7b-4f2e-9c6d-1e2f3a4b5c6d",
                "session_id": "3c90c3cc-0d44-4b50-8888-8dd25736052a",
                "seq": 1,
                "author": {"agent": "8b1a3c1e-5f5e-4a57-9b0a-2f7e1c2d3e4f"},
                "content": "Hello",
                "metadata": {},
                "attachments": [{"type": "image", "url": "https://example.com/a.png", "name": "a"}],
                "created_at": 1767225600000_i64
            },
            "session": session(),
            "was_renewed": true,
            "now": 1767225600000_i64
        });
        let sent: Sent = serde_json::from_value(stored.clone()).expect("decodes");
        assert!(sent.message.author.is_agent());
        assert_eq!(serde_json::to_value(&sent).unwrap(), stored);
    }
}
