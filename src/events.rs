//! Wakes readers waiting on a session's event log. The log in the database is the truth; this
//! only says "session S has news", after the change committed, so a waiting long-poll holds no
//! database connection and re-reads when woken. A reader that falls behind the channel just
//! re-reads. Across instances on one PostgreSQL, every event also sends a NOTIFY with its
//! commit, and [`listen_postgres`] turns the notifications into local wake-ups.

use std::sync::Arc;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};
use tokio::sync::{broadcast, watch};

use crate::db::repo::session_events::CHANNEL;
use crate::domain::SessionId;

/// How many notices may wait for a slow reader before it skips ahead (and re-reads).
const CAPACITY: usize = 1024;

pub struct EventBus {
    tx: broadcast::Sender<SessionId>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self {
            tx: broadcast::channel(CAPACITY).0,
        }
    }
}

impl EventBus {
    /// Tells waiting readers that `session`'s log grew (after the commit).
    pub fn publish(&self, session: SessionId) {
        // No receiver is not an error: nobody is waiting.
        let _ = self.tx.send(session);
    }

    /// Subscribe before reading, so that nothing committed between the read and the wait is
    /// missed.
    pub fn subscribe(&self) -> broadcast::Receiver<SessionId> {
        self.tx.subscribe()
    }
}

/// How often the listening connection is checked for notifications (a non-blocking read of
/// its socket, not a query).
const POLL: Duration = Duration::from_millis(50);

/// Listens on PostgreSQL for other instances' events and publishes them here, until `stop`
/// turns true (or its sender is gone). One connection per instance, outside the pool; it
/// reconnects after a failure.
pub async fn listen_postgres(url: String, bus: Arc<EventBus>, mut stop: watch::Receiver<bool>) {
    loop {
        let connect = {
            let url = url.clone();
            tokio::task::spawn_blocking(move || {
                let mut conn = PgConnection::establish(&url)?;
                conn.batch_execute(&format!("LISTEN {CHANNEL}"))?;
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(conn)
            })
        };
        let mut conn = match connect.await {
            Ok(Ok(conn)) => conn,
            failed => {
                tracing::warn!(error = ?failed.err(), "cannot listen for other instances' events");
                if sleep_or_stop(&mut stop, Duration::from_secs(1)).await {
                    return;
                }
                continue;
            }
        };
        loop {
            if sleep_or_stop(&mut stop, POLL).await {
                return;
            }
            let drained = tokio::task::spawn_blocking(move || {
                let mut sessions = Vec::new();
                let mut failed = None;
                for notification in conn.notifications_iter() {
                    match notification {
                        Ok(n) => sessions.extend(n.payload.parse::<SessionId>().ok()),
                        Err(e) => {
                            failed = Some(e);
                            break;
                        }
                    }
                }
                (conn, sessions, failed)
            })
            .await;
            let Ok((back, sessions, failed)) = drained else {
                break;
            };
            conn = back;
            for session in sessions {
                bus.publish(session);
            }
            if let Some(e) = failed {
                tracing::warn!(error = %e, "lost the connection listening for events; reconnecting");
                break;
            }
        }
    }
}

/// Waits `pause`; true if the service is stopping (or whoever could stop it is gone).
async fn sleep_or_stop(stop: &mut watch::Receiver<bool>, pause: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(pause) => *stop.borrow(),
        changed = stop.changed() => changed.is_err() || *stop.borrow(),
    }
}
