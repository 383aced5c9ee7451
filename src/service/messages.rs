use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::clock::Millis;
use crate::db::repo::messages::{self as repo, Direction};
use crate::db::repo::participants;
use crate::db::DbConnection;
use crate::domain::{
    Attachment, Author, AuthorId, Caller, EventKind, Message, MessageId, Session, SessionId,
    SessionStatus,
};
use crate::service::idempotency::{self, IdempotencyKey, Outcome};
use crate::service::sessions::{load_for, load_live, mutate, touch, Access, Snapshot};
use crate::service::{events, ServiceError, ServiceResult};
use crate::state::AppState;

/// Validated input for a new message.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub content: String,
    /// `None`: the session's user. The session's agent id: an agent reply.
    pub author_id: Option<AuthorId>,
    pub metadata: Value,
    pub attachments: Vec<Attachment>,
}

/// A stored message with the session as the message left it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sent {
    pub message: Message,
    pub session: Session,
    pub was_renewed: bool,
    pub now: Millis,
}

/// Who wrote it: fixed by a session token (its participant) or an agent-bound key (the
/// agent); otherwise the session's creator by default, or whichever participant `authorId`
/// names (the agent's id: an agent reply).
fn author(
    conn: &mut DbConnection,
    caller: &Caller,
    session: &Session,
    author_id: Option<AuthorId>,
) -> ServiceResult<Author> {
    if let Some(fixed) = caller.author(author_id)? {
        return Ok(fixed);
    }
    let user = Author::User(session.user_id);
    let agent = Author::Agent(session.agent_id);
    match author_id {
        None => Ok(user),
        Some(id) if id == user.id() => Ok(user),
        Some(id) if id == agent.id() => Ok(agent),
        Some(id) if participants::is_member(conn, session.id, id.into())? => {
            Ok(Author::User(id.into()))
        }
        Some(_) => Err(ServiceError::ForeignAuthor),
    }
}

/// Stores a message, records activity and (with auto-renew) renews the session, all in one
/// transaction. `createdAt` is strictly increasing within the session (bumped by 1 ms on a
/// tie) and `seq` counts up from 1, both assigned while the session row is written, so
/// concurrent senders are serialized and cursors stay exact.
pub async fn send(
    state: &AppState,
    caller: &Caller,
    session_id: SessionId,
    input: NewMessage,
    idempotency_key: Option<IdempotencyKey>,
) -> ServiceResult<Outcome<Sent>> {
    let now = state.now();
    let caller = caller.clone();
    let outcome = state
        .write(move |conn| {
            idempotency::once(conn, idempotency_key.as_ref(), now, |conn| {
                let mut was_renewed = false;
                let (session, message) = mutate(
                    conn,
                    &caller,
                    (session_id, Access::Touch),
                    now,
                    |s| {
                        if s.status == SessionStatus::Paused {
                            return Err(ServiceError::SessionPaused(s.id));
                        }
                        was_renewed = touch(s, now);
                        Ok(())
                    },
                    |conn, s| {
                        let author = author(conn, &caller, s, input.author_id)?;
                        let (seq, created_at) = match repo::last_position(conn, s.id)? {
                            Some((seq, last)) => (seq + 1, now.max(last + 1)),
                            None => (1, now),
                        };
                        let message = Message {
                            id: MessageId::new_random(),
                            session_id: s.id,
                            seq,
                            author,
                            content: input.content.clone(),
                            metadata: input.metadata.clone(),
                            attachments: input.attachments.clone(),
                            created_at,
                        };
                        repo::insert(conn, &message)?;
                        Ok(message)
                    },
                )?;
                let (id, agent) = (session.id, session.agent_id);
                let created = EventKind::MessageCreated {
                    message: message.clone(),
                };
                let mut recorded = vec![(id, agent, created)];
                if was_renewed {
                    recorded.push((id, agent, EventKind::renewed(&session)));
                }
                events::record_all(conn, recorded, now)?;
                Ok(Sent {
                    message,
                    session,
                    was_renewed,
                    now,
                })
            })
        })
        .await?;
    if !outcome.replayed {
        state
            .events
            .publish(session_id, outcome.value.session.agent_id);
        if outcome.value.was_renewed {
            state.metrics.renewals.inc();
        }
    }
    Ok(outcome)
}

/// Exclusive millisecond bounds and a page size.
#[derive(Debug, Clone, Copy)]
pub struct PageQuery {
    pub before: Option<Millis>,
    pub after: Option<Millis>,
    pub limit: i64,
}

#[derive(Debug, Clone)]
pub struct MessagePage {
    /// Newest first, whatever the query.
    pub messages: Vec<Message>,
    /// More messages lie beyond this page in the direction read.
    pub has_more: bool,
}

/// One page of history. With only `after`, the page is the oldest `limit` messages after it
/// (reading forwards); otherwise the newest `limit` before `before` (or overall).
pub async fn list(
    state: &AppState,
    caller: &Caller,
    session_id: SessionId,
    query: PageQuery,
) -> ServiceResult<MessagePage> {
    let now = state.now();
    let caller = caller.clone();
    state
        .db(move |conn| {
            load_live(conn, &caller, session_id, now)?;
            page(conn, session_id, query)
        })
        .await
}

/// A session's archive: the session as it is (or as it ended) and a page of its history,
/// for live, paused, expired and ended sessions alike, until the purge.
pub async fn transcript(
    state: &AppState,
    caller: &Caller,
    session_id: SessionId,
    query: PageQuery,
) -> ServiceResult<(Snapshot, MessagePage)> {
    let now = state.now();
    let caller = caller.clone();
    state
        .db(move |conn| {
            let session = load_for(conn, &caller, session_id, Access::Touch)?;
            let snapshot = Snapshot::load(conn, session, now)?;
            Ok((snapshot, page(conn, session_id, query)?))
        })
        .await
}

fn page(
    conn: &mut DbConnection,
    session_id: SessionId,
    query: PageQuery,
) -> ServiceResult<MessagePage> {
    let direction = match (query.before, query.after) {
        (None, Some(_)) => Direction::Forward,
        _ => Direction::Backward,
    };
    let mut messages = repo::page(
        conn,
        session_id,
        query.before,
        query.after,
        direction,
        query.limit + 1,
    )?;
    let has_more = messages.len() as i64 > query.limit;
    messages.truncate(query.limit as usize);
    if direction == Direction::Forward {
        messages.reverse();
    }
    Ok(MessagePage { messages, has_more })
}
