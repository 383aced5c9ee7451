//! Wakes readers waiting on a session's event log. The log in the database is the truth; this
//! only says "session S has news", after the change committed, so a waiting long-poll holds no
//! database connection and re-reads when woken. A reader that falls behind the channel just
//! re-reads. Across instances on one PostgreSQL, every event also sends a NOTIFY with its
//! commit, and [`listen_postgres`] turns the notifications into local wake-ups.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};
use tokio::sync::{broadcast, watch};

use crate::db::repo::session_events::CHANNEL;
use crate::domain::{AgentId, SessionId};

/// How many notices may wait for a slow reader before it skips ahead (and re-reads).
const CAPACITY: usize = 1024;

/// "This session (of this agent) has a new event."
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Notice {
    pub session: SessionId,
    pub agent: AgentId,
    /// Every reader should read again (notifications may have been missed).
    pub everyone: bool,
}

impl Notice {
    fn everyone() -> Notice {
        Notice {
            session: SessionId::nil(),
            agent: AgentId::nil(),
            everyone: true,
        }
    }

    /// The NOTIFY payload form: `"<session id> <agent id>"`, or `"*"` for events of many
    /// sessions at once (a reaper batch).
    fn parse(payload: &str) -> Option<Notice> {
        if payload == crate::db::repo::session_events::EVERYONE {
            return Some(Notice::everyone());
        }
        let (session, agent) = payload.split_once(' ')?;
        Some(Notice {
            session: session.parse().ok()?,
            agent: agent.parse().ok()?,
            everyone: false,
        })
    }
}

pub struct EventBus {
    tx: broadcast::Sender<Notice>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self {
            tx: broadcast::channel(CAPACITY).0,
        }
    }
}

impl EventBus {
    /// Tells waiting readers that `session`'s log (and its agent's feed) grew, after the
    /// commit.
    pub fn publish(&self, session: SessionId, agent: AgentId) {
        // No receiver is not an error: nobody is waiting.
        let _ = self.tx.send(Notice {
            session,
            agent,
            everyone: false,
        });
    }

    /// Tells every waiting reader to read again: notifications from other instances may have
    /// been missed (while the LISTEN connection was down).
    pub fn wake_all(&self) {
        let _ = self.tx.send(Notice::everyone());
    }

    /// Subscribe before reading, so that nothing committed between the read and the wait is
    /// missed.
    pub fn subscribe(&self) -> broadcast::Receiver<Notice> {
        self.tx.subscribe()
    }
}

/// Counts open streams and waiting long-polls, per session and per credential, so that no
/// client can hold an unbounded number of them.
pub struct StreamSlots {
    per_session: usize,
    per_credential: usize,
    open: Mutex<HashMap<SlotKey, usize>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum SlotKey {
    /// A session's log or an agent's feed.
    Feed(String),
    Credential(String),
}

/// Which limit refused a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TooManyStreams {
    #[error("this session (or agent feed) already has {0} open streams or long-polls")]
    PerSession(usize),
    #[error("this credential already has {0} open streams or long-polls")]
    PerCredential(usize),
}

/// An open stream's place; given back when dropped (the stream ended, or its client left).
pub struct StreamSlot {
    slots: Arc<StreamSlots>,
    keys: [SlotKey; 2],
}

impl StreamSlots {
    pub fn new(per_session: usize, per_credential: usize) -> Self {
        Self {
            per_session,
            per_credential,
            open: Mutex::default(),
        }
    }

    /// A place for one more stream of `feed` (a feed's identity) by `credential` (a caller's).
    pub fn acquire(
        self: &Arc<Self>,
        feed: String,
        credential: String,
    ) -> Result<StreamSlot, TooManyStreams> {
        let keys = [SlotKey::Feed(feed), SlotKey::Credential(credential)];
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let count = |key: &SlotKey| open.get(key).copied().unwrap_or(0);
        if count(&keys[0]) >= self.per_session {
            return Err(TooManyStreams::PerSession(self.per_session));
        }
        if count(&keys[1]) >= self.per_credential {
            return Err(TooManyStreams::PerCredential(self.per_credential));
        }
        for key in &keys {
            *open.entry(key.clone()).or_default() += 1;
        }
        drop(open);
        Ok(StreamSlot {
            slots: self.clone(),
            keys,
        })
    }

    /// Open streams and waiting long-polls, all feeds together (a metric).
    pub fn open(&self) -> usize {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.iter()
            .filter(|(key, _)| matches!(key, SlotKey::Feed(_)))
            .map(|(_, n)| n)
            .sum()
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self.slots.open.lock().unwrap_or_else(|e| e.into_inner());
        for key in &self.keys {
            if let Some(n) = open.get_mut(key) {
                *n -= 1;
                if *n == 0 {
                    // Nothing is kept for keys without streams: memory follows open streams.
                    open.remove(key);
                }
            }
        }
    }
}

/// How often the listening connection is checked for notifications (a non-blocking read of
/// its socket, not a query).
const POLL: Duration = Duration::from_millis(10);
/// Every this many checks (30 s), the listening connection is asked a query.
const CHECK_EVERY: u32 = 3000;

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
            Ok(Ok(conn)) => {
                // Whatever was notified while no connection listened is read now.
                bus.wake_all();
                conn
            }
            failed => {
                tracing::warn!(error = ?failed.err(), "cannot listen for other instances' events");
                if sleep_or_stop(&mut stop, Duration::from_secs(1)).await {
                    return;
                }
                continue;
            }
        };
        let mut polls: u32 = 0;
        loop {
            if sleep_or_stop(&mut stop, POLL).await {
                return;
            }
            polls = polls.wrapping_add(1);
            // A connection that died quietly reports nothing: ask it something now and then.
            let check = polls % CHECK_EVERY == 0;
            let drained = tokio::task::spawn_blocking(move || {
                let mut sessions = Vec::new();
                let mut failed = if check {
                    conn.batch_execute("SELECT 1").err()
                } else {
                    None
                };
                if failed.is_none() {
                    for notification in conn.notifications_iter() {
                        match notification {
                            Ok(n) => sessions.extend(Notice::parse(&n.payload)),
                            Err(e) => {
                                failed = Some(e);
                                break;
                            }
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
            for notice in sessions {
                bus.publish(notice.session, notice.agent);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_counted_per_session_and_per_credential_and_given_back() {
        let slots = Arc::new(StreamSlots::new(2, 3));
        let (a, b) = ("session:a".to_owned(), "session:b".to_owned());
        let first = slots.acquire(a.clone(), "key:1".into()).unwrap();
        let _second = slots.acquire(a.clone(), "key:1".into()).unwrap();
        assert_eq!(
            slots.acquire(a.clone(), "key:2".into()).err(),
            Some(TooManyStreams::PerSession(2))
        );
        let _third = slots.acquire(b.clone(), "key:1".into()).unwrap();
        assert_eq!(
            slots.acquire(b.clone(), "key:1".into()).err(),
            Some(TooManyStreams::PerCredential(3))
        );
        drop(first);
        assert!(
            slots.acquire(b.clone(), "key:1".into()).is_ok(),
            "a closed stream gives its slot back"
        );
        drop(slots.acquire(b.clone(), "key:9".into()));
        let open = slots.open.lock().unwrap();
        assert!(!open.contains_key(&SlotKey::Credential("key:9".into())));
    }
}
