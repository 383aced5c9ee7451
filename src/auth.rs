//! Authentication: turns a presented credential into a [`Caller`]. No HTTP here (the
//! middleware in `api/auth.rs` reads the headers); the rules:
//!
//! - No credential: allowed only in the open mode (no key configured, and a loopback bind or
//!   `--insecure-no-auth`); otherwise 401.
//! - A credential is the bootstrap key (`AGENT_SESSIONS_API_KEY`), a stored API key or a
//!   session token, compared by SHA-256 digest; anything else is 401, in every mode.
//!
//! Stored keys are read from a snapshot refreshed every [`REFRESH`], so a key revoked from
//! the CLI (in another process) is refused within a second without a restart, and a
//! request does not pay a database read for its key. A digest missing from the snapshot is
//! looked up in the database (so a key created a moment ago works at once), and so is every
//! key while the snapshot is older than [`STALE`] (reloads failing): a revocation is never
//! missed because the database was briefly out of reach.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::db::repo::api_keys;
use crate::db::{DbConnection, DbPool};
use crate::domain::{ApiKey, Caller, Scopes};
use crate::secret::{self, Secret, SESSION_TOKEN_PREFIX};
use crate::service::{tokens, ServiceError};

/// How often the key snapshot is reloaded.
pub const REFRESH: Duration = Duration::from_millis(500);
/// A snapshot older than this is not trusted on its own.
pub const STALE: Duration = Duration::from_secs(1);

/// Why a request is not authenticated (a 401).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("Authentication required: send `Authorization: Bearer <key or session token>` or `X-API-KEY: <key>`")]
    Missing,
    #[error("Malformed credentials: the Authorization header must be `Bearer <token>`")]
    Malformed,
    #[error("Unknown, revoked or expired credentials")]
    Unknown,
    /// The database could not be asked (answered as a 503, never as a 401).
    #[error("The credential store is unavailable")]
    Unavailable,
}

struct Snapshot {
    /// Live keys by secret digest.
    keys: HashMap<String, ApiKey>,
    /// Whether any key was ever stored (revoked ones count): then credentials are required.
    any_stored: bool,
    /// When its reading began: what it shows was true at least from then.
    loaded_at: Instant,
}

impl Snapshot {
    fn is_fresh(&self) -> bool {
        self.loaded_at.elapsed() < STALE
    }
}

pub struct Authenticator {
    pool: DbPool,
    bootstrap: Option<String>,
    /// No credential is needed while no key is configured (loopback or `--insecure-no-auth`).
    open_allowed: bool,
    snapshot: RwLock<Arc<Snapshot>>,
}

impl Authenticator {
    /// Loads the first snapshot.
    pub fn new(
        pool: DbPool,
        bootstrap: Option<&Secret>,
        open_allowed: bool,
    ) -> Result<Self, ServiceError> {
        let mut conn = pool.get()?;
        let first = Self::load(&mut conn)?;
        drop(conn);
        Ok(Self {
            pool,
            bootstrap: bootstrap.map(Secret::digest),
            open_allowed,
            snapshot: RwLock::new(Arc::new(first)),
        })
    }

    /// Whether any key is configured (the bootstrap key, or a stored one, even revoked).
    pub fn keys_configured(&self) -> bool {
        self.bootstrap.is_some() || self.current().any_stored
    }

    /// Whether a request without credentials is allowed right now.
    pub fn is_open(&self) -> bool {
        self.open_allowed && !self.keys_configured()
    }

    fn current(&self) -> Arc<Snapshot> {
        self.snapshot
            .read()
            .map(|s| s.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }

    /// Reloads the stored keys (blocking).
    pub fn refresh(&self) -> Result<(), ServiceError> {
        let mut conn = self.pool.get()?;
        self.refresh_on(&mut conn)
    }

    /// Reloads the stored keys on this connection (blocking): after a revocation through this
    /// instance, so that it takes effect here at once.
    pub fn refresh_on(&self, conn: &mut DbConnection) -> Result<(), ServiceError> {
        let fresh = Arc::new(Self::load(conn)?);
        let mut current = self.snapshot.write().unwrap_or_else(|e| e.into_inner());
        // A reload that began before the current snapshot's (the background refresher racing
        // a revocation's) must not bring back what that one no longer holds.
        if fresh.loaded_at > current.loaded_at {
            *current = fresh;
        }
        Ok(())
    }

    fn load(conn: &mut DbConnection) -> Result<Snapshot, ServiceError> {
        let loaded_at = Instant::now();
        Ok(Snapshot {
            keys: api_keys::live_with_hashes(conn)?.into_iter().collect(),
            any_stored: api_keys::any(conn)?,
            loaded_at,
        })
    }

    /// Keeps the snapshot fresh until `stop` turns true.
    pub async fn run_refresher(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(REFRESH);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => return,
            }
            let this = self.clone();
            match tokio::task::spawn_blocking(move || this.refresh()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "cannot refresh the API keys"),
                Err(e) => tracing::warn!(error = %e, "API key refresh task failed"),
            }
        }
    }

    /// The caller presenting `credential` (the raw secret), or without one.
    pub async fn authenticate(&self, credential: Option<&str>) -> Result<Caller, AuthError> {
        let Some(presented) = credential else {
            return if self.is_open() {
                Ok(Caller::Open)
            } else {
                Err(AuthError::Missing)
            };
        };
        let digest = secret::digest(presented);
        if self.bootstrap.as_deref() == Some(digest.as_str()) {
            return Ok(Caller::Key {
                id: None,
                scopes: Scopes::all(),
                agent_id: None,
            });
        }
        if presented.starts_with(SESSION_TOKEN_PREFIX) {
            return self.session_token(presented.to_owned()).await;
        }
        let snapshot = self.current();
        if snapshot.is_fresh() {
            if let Some(key) = snapshot.keys.get(&digest) {
                return Ok(key_caller(key));
            }
        }
        self.stored_key(digest).await
    }

    async fn session_token(&self, presented: String) -> Result<Caller, AuthError> {
        let grant = self
            .lookup(move |conn| tokens::lookup(conn, &presented))
            .await?;
        let grant = grant.ok_or(AuthError::Unknown)?;
        Ok(Caller::SessionToken {
            session_id: grant.session_id,
            user_id: grant.user_id,
            agent_id: grant.agent_id,
        })
    }

    /// A key not in the snapshot: created since it was loaded, or unknown.
    async fn stored_key(&self, digest: String) -> Result<Caller, AuthError> {
        let key = self
            .lookup(move |conn| Ok(api_keys::find_live_by_hash(conn, &digest)?))
            .await?;
        key.as_ref().map(key_caller).ok_or(AuthError::Unknown)
    }

    /// One indexed lookup ([`DbPool::point_read`]). A database failure refuses the request as unavailable
    /// (it cannot be authenticated) and is logged.
    async fn lookup<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut DbConnection) -> Result<T, ServiceError> + Send + 'static,
    ) -> Result<T, AuthError> {
        self.pool.point_read(f).await.map_err(|e| {
            tracing::warn!(error = %e, "credential lookup failed");
            AuthError::Unavailable
        })
    }
}

fn key_caller(key: &ApiKey) -> Caller {
    Caller::Key {
        id: Some(key.id),
        scopes: key.scopes.clone(),
        agent_id: key.agent_id,
    }
}
