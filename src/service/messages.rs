use actix_web::http::StatusCode;
use serde_json::Value;

use crate::clock::Millis;
use crate::db::models::MessageRow;
use crate::db::repo::messages::{self as repo, Direction};
use crate::domain::Session;
use crate::error::ApiError;
use crate::service::idempotency::{self, IdempotencyKey, Reply};
use crate::service::sessions::{load_live, mutate, touch};
use crate::service::transact;
use crate::state::AppState;

#[derive(Debug, Clone)]
pub struct Message {
    pub id: String,
    pub session_id: String,
    pub seq: i64,
    pub author_id: String,
    pub is_agent: bool,
    pub content: String,
    pub metadata: Value,
    pub attachments: Value,
    pub created_at: Millis,
}

impl TryFrom<MessageRow> for Message {
    type Error = ApiError;

    fn try_from(row: MessageRow) -> Result<Self, ApiError> {
        let parse = |text: &str, what: &str| {
            serde_json::from_str(text)
                .map_err(|e| ApiError::Internal(format!("message {}: bad {what}: {e}", row.id)))
        };
        Ok(Self {
            metadata: parse(&row.metadata, "metadata")?,
            attachments: parse(&row.attachments, "attachments")?,
            id: row.id,
            session_id: row.session_id,
            seq: row.seq,
            author_id: row.author_id,
            is_agent: row.is_agent,
            content: row.content,
            created_at: row.created_at,
        })
    }
}

/// Validated input for a new message.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub content: String,
    /// `None`: the session's user. The session's agent id: an agent reply.
    pub author_id: Option<String>,
    pub metadata: Value,
    pub attachments: Value,
}

/// A stored message with the session as the message left it.
#[derive(Debug, Clone)]
pub struct Sent {
    pub message: Message,
    pub session: Session,
    pub was_renewed: bool,
    pub now: Millis,
}

/// Who wrote it: the session's user by default, its agent when the agent's id is given.
fn author(session: &Session, author_id: Option<&str>) -> Result<(String, bool), ApiError> {
    match author_id {
        None => Ok((session.user_id.clone(), false)),
        Some(id) if id == session.user_id => Ok((id.to_owned(), false)),
        Some(id) if id == session.agent_id => Ok((id.to_owned(), true)),
        Some(_) => Err(ApiError::invalid(
            "authorId",
            "must be the session's userId or agentId",
        )),
    }
}

/// Stores a message, records activity and (with auto-renew) renews the session, all in one
/// transaction. `createdAt` is strictly increasing within the session (bumped by 1 ms on a
/// tie) and `seq` counts up from 1, both assigned while the session row is written, so
/// concurrent senders are serialized and cursors stay exact.
pub async fn send(
    state: &AppState,
    session_id: String,
    input: NewMessage,
    idempotency_key: Option<IdempotencyKey>,
    render: impl Fn(&Sent) -> Value + Send + 'static,
) -> Result<Reply, ApiError> {
    let now = state.now();
    state
        .db(move |conn| {
            transact(conn, |conn| {
                idempotency::once(conn, idempotency_key.as_ref(), now, |conn| {
                    let mut was_renewed = false;
                    let (session, message) = mutate(
                        conn,
                        &session_id,
                        now,
                        |s| {
                            was_renewed = touch(s, now);
                            Ok(())
                        },
                        |conn, s| {
                            let (author_id, is_agent) = author(s, input.author_id.as_deref())?;
                            let (seq, created_at) = match repo::last_position(conn, &s.id)? {
                                Some((seq, last)) => (seq + 1, now.max(last + 1)),
                                None => (1, now),
                            };
                            let message = Message {
                                id: uuid::Uuid::new_v4().to_string(),
                                session_id: s.id.clone(),
                                seq,
                                author_id,
                                is_agent,
                                content: input.content.clone(),
                                metadata: input.metadata.clone(),
                                attachments: input.attachments.clone(),
                                created_at,
                            };
                            repo::insert(conn, &to_row(&message))?;
                            Ok(message)
                        },
                    )?;
                    let sent = Sent {
                        message,
                        session,
                        was_renewed,
                        now,
                    };
                    Ok(Reply::fresh(StatusCode::CREATED, render(&sent)))
                })
            })
        })
        .await
}

fn to_row(m: &Message) -> MessageRow {
    MessageRow {
        id: m.id.clone(),
        session_id: m.session_id.clone(),
        seq: m.seq,
        author_id: m.author_id.clone(),
        is_agent: m.is_agent,
        content: m.content.clone(),
        metadata: m.metadata.to_string(),
        attachments: m.attachments.to_string(),
        created_at: m.created_at,
    }
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
    session_id: String,
    query: PageQuery,
) -> Result<MessagePage, ApiError> {
    let now = state.now();
    state
        .db(move |conn| {
            load_live(conn, &session_id, now)?;
            let direction = match (query.before, query.after) {
                (None, Some(_)) => Direction::Forward,
                _ => Direction::Backward,
            };
            let mut rows = repo::page(
                conn,
                &session_id,
                query.before,
                query.after,
                direction,
                query.limit + 1,
            )?;
            let has_more = rows.len() as i64 > query.limit;
            rows.truncate(query.limit as usize);
            if direction == Direction::Forward {
                rows.reverse();
            }
            Ok(MessagePage {
                messages: rows
                    .into_iter()
                    .map(Message::try_from)
                    .collect::<Result<_, _>>()?,
                has_more,
            })
        })
        .await
}
