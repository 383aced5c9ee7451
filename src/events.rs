//! Wakes readers waiting on a session's event log. The log in the database is the truth; this
//! only says "session S has news", after the change committed, so a waiting long-poll holds no
//! database connection and re-reads when woken. A reader that falls behind the channel just
//! re-reads. In-process only: across instances, PostgreSQL LISTEN/NOTIFY is still to come, and
//! a waiting reader then learns of another instance's change at its timeout.

use tokio::sync::broadcast;

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
