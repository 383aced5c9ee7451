//! Session tokens: a token opens one session as one participant. Only its digest is stored,
//! so a token can be handed out only when it is made; asking again makes a new one and
//! revokes the earlier.

use crate::clock::Millis;
use crate::db::models::{SessionTokenRow, TokenGrant};
use crate::db::repo::session_tokens as repo;
use crate::db::DbConnection;
use crate::domain::{Session, UserId};
use crate::secret::{Secret, SESSION_TOKEN_PREFIX};
use crate::service::{ServiceError, ServiceResult};

/// Inside a write transaction that holds the session's row lock (taken before the session was
/// read, so it is still there): a new token for one of the session's users, revoking the
/// earlier ones. The lock serializes concurrent issues, so exactly one token survives.
pub fn reissue(
    conn: &mut DbConnection,
    session: &Session,
    user: UserId,
    now: Millis,
) -> ServiceResult<Secret> {
    repo::revoke(conn, session.id, user)?;
    issue(conn, session, user, now)
}

/// Inside the transaction that adds `user` to the session (or creates it): the user's token.
pub fn issue(
    conn: &mut DbConnection,
    session: &Session,
    user: UserId,
    now: Millis,
) -> ServiceResult<Secret> {
    let secret = Secret::generate(SESSION_TOKEN_PREFIX)
        .map_err(|e| ServiceError::Internal(e.to_string()))?;
    repo::insert(
        conn,
        &SessionTokenRow {
            token_hash: secret.digest(),
            session_id: session.id.to_string(),
            user_id: user.to_string(),
            agent_id: session.agent_id.to_string(),
            created_at: now,
        },
    )?;
    Ok(secret)
}

/// Revokes the tokens of users leaving the session.
pub fn revoke(conn: &mut DbConnection, session: &Session, users: &[UserId]) -> ServiceResult<()> {
    for user in users {
        repo::revoke(conn, session.id, *user)?;
    }
    Ok(())
}

/// What a presented token grants; `None` for an unknown (or revoked, or purged) token.
pub fn lookup(conn: &mut DbConnection, presented: &str) -> ServiceResult<Option<TokenGrant>> {
    Ok(repo::find(conn, &crate::secret::digest(presented))?)
}
