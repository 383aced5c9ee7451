//! A session's event log, read live: `GET .../watch` (long-poll) and `GET .../events`
//! (Server-Sent Events). Both take the same cursors.

use std::time::Duration;

use actix_web::{get, web, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};

use crate::api::auth::{Auth, AuthCheck};
use crate::api::error::{ApiError, AuthErrors, ErrorBody, ServerErrors};
use crate::api::extract;
use crate::api::messages::MessageResponse;
use crate::api::sessions::SessionResponse;
use crate::clock::to_rfc3339;
use crate::domain::{AgentId, Caller, Event, EventKind, Scope, SessionId};
use crate::service::events::{self as service, Feed};
use crate::service::sessions::Snapshot;
use crate::state::AppState;

/// One event of a session's log.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventResponse {
    /// The event's position in the feed read: in a session's log, 1, 2, 3 … per session; in an
    /// agent's feed, 1, 2, 3 … per agent. Without gaps; pass the last one seen as `cursor`.
    pub cursor: i64,
    /// `session.created`, `session.renewed`, `session.timeout_updated`, `session.expiring`,
    /// `session.expired`, `session.ended`, `message.created`, `session.participants_changed`,
    /// `session.updated`, `session.paused`, `session.resumed`, `session.closed` or
    /// `session.state_changed`.
    #[serde(rename = "type")]
    #[schema(example = "message.created")]
    pub event_type: &'static str,
    #[schema(format = DateTime)]
    pub timestamp: String,
    pub session_id: SessionId,
    pub agent_id: AgentId,
    /// By type: the session (`session.created`), the message as the messages route shows it
    /// (`message.created`), `{expiresAt, renewalCount, lastActivity}` (`session.renewed`),
    /// `{timeoutConfig, expiresAt}` (`session.timeout_updated`), `{expiresAt, timeRemaining}`
    /// (`session.expiring`), `{reason: idle|max_duration,
    /// expiredAt}` (`session.expired`), `{reason: deleted|agent_deleted, endedAt}`
    /// (`session.ended`), `{added, removed}` (user ids; `session.participants_changed`),
    /// `{title, metadata}` (`session.updated`), `{expiresAt}` (`session.paused`,
    /// `session.resumed`), `{reason, endedAt}` (`session.closed`), `{changes: {field: {before,
    /// after}}, state}` (`session.state_changed`).
    #[schema(value_type = Object)]
    pub data: Value,
}

impl EventResponse {
    /// The event as `feed` shows it: its `cursor` is its position there.
    pub fn new(e: &Event, feed: Feed) -> Self {
        let data = match &e.kind {
            EventKind::SessionCreated { session, members } => json!(SessionResponse::new(
                &Snapshot {
                    session: session.clone(),
                    members: members.clone(),
                    now: e.created_at,
                },
                false
            )),
            EventKind::SessionRenewed {
                expires_at,
                renewal_count,
                last_activity,
            } => json!({
                "expiresAt": to_rfc3339(*expires_at),
                "renewalCount": renewal_count,
                "lastActivity": to_rfc3339(*last_activity),
            }),
            EventKind::TimeoutUpdated { config, expires_at } => json!({
                "timeoutConfig": config.config,
                "expiresAt": to_rfc3339(*expires_at),
            }),
            EventKind::SessionExpiring { expires_at } => json!({
                "expiresAt": to_rfc3339(*expires_at),
                "timeRemaining": (expires_at - e.created_at).max(0),
            }),
            EventKind::SessionExpired { reason, expired_at } => json!({
                "reason": reason,
                "expiredAt": to_rfc3339(*expired_at),
            }),
            EventKind::SessionEnded { reason, ended_at } => json!({
                "reason": reason,
                "endedAt": to_rfc3339(*ended_at),
            }),
            EventKind::MessageCreated { message } => json!(MessageResponse::from(message)),
            EventKind::ParticipantsChanged { added, removed } => {
                json!({ "added": added, "removed": removed })
            }
            EventKind::SessionUpdated { title, metadata } => {
                json!({ "title": title, "metadata": metadata })
            }
            EventKind::SessionPaused { expires_at } | EventKind::SessionResumed { expires_at } => {
                json!({ "expiresAt": to_rfc3339(*expires_at) })
            }
            EventKind::SessionClosed { reason, ended_at } => json!({
                "reason": reason,
                "endedAt": to_rfc3339(*ended_at),
            }),
            EventKind::StateChanged { changes, state } => json!({
                "changes": changes,
                "state": state,
            }),
        };
        Self {
            cursor: feed.position(e),
            event_type: e.kind.type_name(),
            timestamp: to_rfc3339(e.created_at),
            session_id: e.session_id,
            agent_id: e.agent_id,
            data,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WatchResponse {
    /// Oldest first.
    pub events: Vec<EventResponse>,
    /// Pass as `cursor` next: the last event's, or the one given when none came.
    pub cursor: i64,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WatchParams {
    /// The last cursor seen; events after it are answered. Default 0 (from the start).
    #[param(value_type = Option<i64>, minimum = 0)]
    pub cursor: Option<String>,
    /// How long to wait for an event, in milliseconds: 0–60000, default 25000.
    #[param(value_type = Option<i64>, minimum = 0, maximum = 60000)]
    pub timeout: Option<String>,
    /// At most this many events: 1–500, default 100.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 500)]
    pub limit: Option<String>,
    /// A session token or API key, for clients that cannot send headers (browsers'
    /// `EventSource`). Never logged.
    #[allow(dead_code)] // read by the authentication middleware
    pub access_token: Option<String>,
}

/// Long-poll the session's event log: answers at once when events after `cursor` exist (or
/// the session is over, so none will come), else waits until one is recorded or `timeout`
/// passes (then `events` is empty and `cursor` unchanged).
///
/// A session's log outlives it until the retention window passes, so a reader learns why it
/// ended (`session.ended`). Waiting holds no database connection.
///
/// At most `AGENT_SESSIONS_MAX_STREAMS_PER_SESSION` streams and long-polls per session (5) and
/// `AGENT_SESSIONS_MAX_STREAMS_PER_CREDENTIAL` per credential (100) are open at once; past
/// that, 429 `TOO_MANY_STREAMS`.
///
/// **Auth:** Needs `sessions:read`, or this session's token (also as `?access_token=`).
#[utoipa::path(
    operation_id = "watchSession", tag = "events",
    params(("sessionId" = SessionId, Path, description = "Session id"), WatchParams),
    responses(
        (status = 200, description = "Events after the cursor (possibly none, at the timeout)", body = WatchResponse),
        (status = 400, description = "Malformed id or parameter (VALIDATION_ERROR)", body = ErrorBody),
        (status = 404, description = "Unknown, or gone with its log (SESSION_NOT_FOUND)", body = ErrorBody),
        (status = 410, description = "Events after the cursor were purged (older than the retention window; CURSOR_EXPIRED): resync from cursor 0", body = ErrorBody),
        AuthErrors,
        ServerErrors,
    )
)]
#[get("/api/messaging/sessions/{sessionId}/watch")]
pub async fn watch(
    state: web::Data<AppState>,
    auth: Auth,
    id: SessionId,
    params: web::Query<WatchParams>,
) -> Result<HttpResponse, ApiError> {
    let caller = auth.check(AuthCheck::own_session(Scope::SessionsRead, id))?;
    watch_feed(&state, caller, Feed::Session(id), &params).await
}

/// Long-poll the agent's feed: every event of every session of the agent, in one order
/// (`cursor` counts up per agent), as `watch` does for one session. This is how an agent
/// runtime hears its users' messages, across its own restarts (it keeps the cursor).
///
/// **Auth:** Needs `sessions:read` from a key not bound to another agent (an agent runtime's
/// key bound to this agent).
#[utoipa::path(
    operation_id = "watchAgent", tag = "events",
    params(("agentId" = AgentId, Path, description = "Agent id"), WatchParams),
    responses(
        (status = 200, description = "Events after the cursor (possibly none, at the timeout)", body = WatchResponse),
        (status = 400, description = "Malformed id or parameter (VALIDATION_ERROR)", body = ErrorBody),
        (status = 404, description = "Unknown agent without a feed (AGENT_NOT_FOUND)", body = ErrorBody),
        (status = 410, description = "Events after the cursor were purged with their sessions (CURSOR_EXPIRED): resync from cursor 0", body = ErrorBody),
        AuthErrors,
        ServerErrors,
    )
)]
#[get("/api/agents/{agentId}/watch")]
pub async fn watch_agent(
    state: web::Data<AppState>,
    auth: Auth,
    id: AgentId,
    params: web::Query<WatchParams>,
) -> Result<HttpResponse, ApiError> {
    let caller = auth.check(AuthCheck::scope(Scope::SessionsRead).agent(id))?;
    watch_feed(&state, caller, Feed::Agent(id), &params).await
}

async fn watch_feed(
    state: &AppState,
    caller: Caller,
    feed: Feed,
    params: &WatchParams,
) -> Result<HttpResponse, ApiError> {
    let _slot = state.streams.acquire(feed.identity(), caller.identity())?;
    let cursor = extract::int_param("cursor", params.cursor.as_deref(), 0, (0, i64::MAX))?;
    let wait = extract::int_param("timeout", params.timeout.as_deref(), 25_000, (0, 60_000))?;
    let limit = extract::int_param("limit", params.limit.as_deref(), 100, (1, 500))?;
    let wait = Duration::from_millis(wait.unsigned_abs());
    let page = service::watch(state, &caller, feed, cursor, limit, wait).await?;
    Ok(HttpResponse::Ok().json(WatchResponse {
        events: page
            .events
            .iter()
            .map(|e| EventResponse::new(e, feed))
            .collect(),
        cursor: page.cursor,
    }))
}

/// Events per read of a stream.
const STREAM_BATCH: i64 = 100;
/// A comment line at least this often keeps proxies from closing an idle stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StreamParams {
    /// Start after this cursor (default 0: from the start); `Last-Event-ID` wins when sent.
    #[param(value_type = Option<i64>, minimum = 0)]
    pub cursor: Option<String>,
    /// A session token or API key, for browsers' `EventSource` (which cannot send headers).
    /// Never logged.
    #[allow(dead_code)] // read by the authentication middleware
    pub access_token: Option<String>,
}

/// A stream's position: what it has read and not yet sent, and what wakes it.
struct Stream {
    state: web::Data<AppState>,
    caller: Caller,
    feed: Feed,
    cursor: i64,
    pending: std::collections::VecDeque<Event>,
    /// Subscribed before the first read, so nothing committed since is missed.
    notices: tokio::sync::broadcast::Receiver<crate::events::Notice>,
    /// A notice said the feed grew: read it.
    stale: bool,
    /// The session's last event was sent: the stream ends.
    done: bool,
    /// Held while the stream is open (until it ends or its client leaves).
    _slot: crate::events::StreamSlot,
}

fn frame(event: &Event, feed: Feed) -> web::Bytes {
    let data = serde_json::to_string(&EventResponse::new(event, feed)).unwrap_or_else(|e| {
        tracing::error!(error = %e, "an event does not serialize");
        "{}".to_owned()
    });
    web::Bytes::from(format!(
        "id: {}\nevent: {}\ndata: {data}\n\n",
        feed.position(event),
        event.kind.type_name()
    ))
}

fn is_last(event: &Event) -> bool {
    event.kind.is_last()
}

impl Stream {
    /// The next chunk: a pending event; else, once a notice says the feed grew, what it got;
    /// else a keep-alive comment. An idle stream does not touch the database: it reads only
    /// when woken. `None` ends the stream: after the session's last event, when the service
    /// stops, or when the feed cannot be read any more (purged, or the database failing).
    async fn next(mut self) -> Option<(Result<web::Bytes, std::convert::Infallible>, Self)> {
        use tokio::sync::broadcast::error::RecvError;
        let mut stopping = self.state.stopping.clone();
        loop {
            if self.done {
                return None;
            }
            if let Some(event) = self.pending.pop_front() {
                self.cursor = self.feed.position(&event);
                // A session's stream ends with the session; an agent's feed goes on.
                self.done = matches!(self.feed, Feed::Session(_)) && is_last(&event);
                return Some((Ok(frame(&event, self.feed)), self));
            }
            if self.stale {
                self.stale = false;
                let page = service::read_once(
                    &self.state,
                    &self.caller,
                    self.feed,
                    self.cursor,
                    STREAM_BATCH,
                )
                .await;
                match page {
                    Ok(page) if page.events.is_empty() && page.over => return None,
                    Ok(page) => {
                        // A full batch may not be all: read again once it is sent.
                        self.stale = page.events.len() as i64 == STREAM_BATCH;
                        self.pending.extend(page.events);
                    }
                    Err(e) => {
                        tracing::info!(error = %e, "an event stream ends");
                        return None;
                    }
                }
                continue;
            }
            if *stopping.borrow() {
                return None;
            }
            tokio::select! {
                notice = self.notices.recv() => match notice {
                    Ok(notice) => self.stale = self.feed.concerns(&notice),
                    Err(RecvError::Lagged(_)) => self.stale = true,
                    Err(RecvError::Closed) => return None,
                },
                _ = tokio::time::sleep(KEEP_ALIVE) => {
                    return Some((Ok(web::Bytes::from_static(b": keep-alive\n\n")), self));
                }
                _ = stopping.wait_for(|stop| *stop) => return None,
            }
        }
    }
}

/// The cursor to start after: `Last-Event-ID` (a reconnecting `EventSource` sends it), else
/// `?cursor=`, else 0.
fn start_cursor(req: &actix_web::HttpRequest, query: Option<&str>) -> Result<i64, ApiError> {
    match req.headers().get("last-event-id") {
        Some(value) => {
            let text = value.to_str().unwrap_or("");
            extract::int_param("Last-Event-ID", Some(text), 0, (0, i64::MAX))
        }
        None => extract::int_param("cursor", query, 0, (0, i64::MAX)),
    }
}

/// Stream the session's events as Server-Sent Events: `id:` is the cursor, `event:` the type,
/// `data:` the event as `watch` shows it. What was missed after `Last-Event-ID` (or `?cursor=`)
/// comes first, then events as they are recorded; a `: keep-alive` comment comes at least
/// every 15 s; the stream ends after `session.expired`, `session.ended` or `session.closed`, and when the
/// service stops. Open streams count against the same limits as `watch` (429
/// `TOO_MANY_STREAMS`).
///
/// **Auth:** Needs `sessions:read`, or this session's token (also as `?access_token=`).
#[utoipa::path(
    operation_id = "streamSessionEvents", tag = "events",
    params(
        ("sessionId" = SessionId, Path, description = "Session id"),
        ("Last-Event-ID" = Option<i64>, Header, nullable = false, description = "Resume after this cursor (sent by a reconnecting EventSource)"),
        StreamParams,
    ),
    responses(
        (status = 200, description = "An event stream: each `data:` is an EventResponse", content_type = "text/event-stream", body = EventResponse),
        (status = 204, description = "The session's last event is before the cursor: nothing more will come (an EventSource stops reconnecting)"),
        (status = 400, description = "Malformed id or cursor (VALIDATION_ERROR)", body = ErrorBody),
        (status = 404, description = "Unknown, or gone with its log (SESSION_NOT_FOUND)", body = ErrorBody),
        (status = 410, description = "Events after the cursor were purged (older than the retention window; CURSOR_EXPIRED): resync from cursor 0", body = ErrorBody),
        AuthErrors,
        ServerErrors,
    )
)]
#[get("/api/messaging/sessions/{sessionId}/events")]
pub async fn stream(
    state: web::Data<AppState>,
    auth: Auth,
    id: SessionId,
    req: actix_web::HttpRequest,
    params: web::Query<StreamParams>,
) -> Result<HttpResponse, ApiError> {
    let caller = auth.check(AuthCheck::own_session(Scope::SessionsRead, id))?;
    stream_feed(state, caller, Feed::Session(id), &req, &params).await
}

/// Stream the agent's feed as Server-Sent Events: every event of every session of the agent,
/// resumable with `Last-Event-ID` (or `?cursor=`) as the session stream is; it does not end
/// with a session.
///
/// **Auth:** Needs `sessions:read` from a key not bound to another agent (also as
/// `?access_token=`).
#[utoipa::path(
    operation_id = "streamAgentEvents", tag = "events",
    params(
        ("agentId" = AgentId, Path, description = "Agent id"),
        ("Last-Event-ID" = Option<i64>, Header, nullable = false, description = "Resume after this cursor (sent by a reconnecting EventSource)"),
        StreamParams,
    ),
    responses(
        (status = 200, description = "An event stream: each `data:` is an EventResponse", content_type = "text/event-stream", body = EventResponse),
        (status = 400, description = "Malformed id or cursor (VALIDATION_ERROR)", body = ErrorBody),
        (status = 404, description = "Unknown agent without a feed (AGENT_NOT_FOUND)", body = ErrorBody),
        (status = 410, description = "Events after the cursor were purged with their sessions (CURSOR_EXPIRED): resync from cursor 0", body = ErrorBody),
        AuthErrors,
        ServerErrors,
    )
)]
#[get("/api/agents/{agentId}/events")]
pub async fn stream_agent(
    state: web::Data<AppState>,
    auth: Auth,
    id: AgentId,
    req: actix_web::HttpRequest,
    params: web::Query<StreamParams>,
) -> Result<HttpResponse, ApiError> {
    let caller = auth.check(AuthCheck::scope(Scope::SessionsRead).agent(id))?;
    stream_feed(state, caller, Feed::Agent(id), &req, &params).await
}

async fn stream_feed(
    state: web::Data<AppState>,
    caller: Caller,
    feed: Feed,
    req: &actix_web::HttpRequest,
    params: &StreamParams,
) -> Result<HttpResponse, ApiError> {
    let slot = state.streams.acquire(feed.identity(), caller.identity())?;
    let cursor = start_cursor(req, params.cursor.as_deref())?;
    let notices = state.events.subscribe();
    // The first read answers access and existence as a status, before the stream starts.
    let first = service::read_once(&state, &caller, feed, cursor, STREAM_BATCH).await?;
    if first.events.is_empty() && first.over {
        // A reconnecting EventSource after the session's last event: 204 tells it to stop.
        return Ok(HttpResponse::NoContent().finish());
    }
    // Not `stream`: the route's handler of that name is a unit struct in this module.
    let position = Stream {
        state,
        caller,
        feed,
        cursor,
        stale: first.events.len() as i64 == STREAM_BATCH,
        pending: first.events.into(),
        notices,
        done: false,
        _slot: slot,
    };
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("cache-control", "no-cache"))
        // Tell buffering proxies (nginx) to pass events on at once.
        .insert_header(("x-accel-buffering", "no"))
        .streaming(futures_util::stream::unfold(position, Stream::next)))
}
