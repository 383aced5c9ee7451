//! `/api/messaging/sessions/{sessionId}/messages`: send and page through a session's history.

use actix_web::{get, post, web, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use validator::Validate;

use crate::api::auth::{Auth, AuthCheck};
use crate::api::created;
use crate::api::error::{ApiError, AuthErrors, ErrorBody, JsonWriteErrors, ServerErrors};
use crate::api::extract::{self, ApiJson, IdempotencyHeader};
use crate::api::sessions::SessionResponse;
use crate::clock::{to_rfc3339, Millis};
use crate::domain::{Attachment, AuthorId, Message, MessageId, Scope, SessionId};
use crate::service::messages::{self as service, MessagePage, NewMessage, PageQuery, Sent};
use crate::state::AppState;
use crate::{json, validation};

const CONTENT_MAX_CHARS: u64 = 10_000;
const ATTACHMENTS_MAX: u64 = 10;

#[derive(Debug, Deserialize, ToSchema, Validate)]
#[serde(rename_all = "camelCase")]
pub struct SendMessageRequest {
    /// Not blank, at most 10,000 characters, no NUL (U+0000).
    #[schema(
        example = "Hello, I need help with my account",
        min_length = 1,
        max_length = 10000,
        pattern = "^[^\\u0000]*[^\\u0000\\t-\\r\\x1c-\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000][^\\u0000]*$"
    )]
    // Blank first: a long run of spaces is reported as empty, not as too long.
    #[validate(
        custom(function = "validation::not_blank"),
        length(max = CONTENT_MAX_CHARS, code = "chars")
    )]
    pub content: String,
    /// Leave out to write as the session's user; the session's `agentId` posts an agent reply.
    #[serde(default)]
    pub author_id: Option<AuthorId>,
    /// At most 10.
    #[serde(default, deserialize_with = "json::objects")]
    #[schema(max_items = 10)]
    #[validate(length(max = ATTACHMENTS_MAX, code = "items"), nested)]
    pub attachments: Option<Vec<Attachment>>,
    /// Any JSON object (≤ 16 KB serialized, nested ≤ 5 levels).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    #[validate(custom(function = "validation::metadata"))]
    pub metadata: Option<Value>,
}

impl From<SendMessageRequest> for NewMessage {
    fn from(body: SendMessageRequest) -> Self {
        Self {
            content: body.content,
            author_id: body.author_id,
            metadata: validation::metadata_or_empty(body.metadata),
            attachments: body.attachments.unwrap_or_default(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessageResponse {
    pub id: MessageId,
    pub content: String,
    pub author_id: AuthorId,
    /// True for the agent's replies.
    pub is_agent: bool,
    /// Strictly increasing within a session.
    #[schema(format = DateTime, example = "2026-01-02T03:04:05.678Z")]
    pub created_at: String,
    #[schema(value_type = Object)]
    pub metadata: Value,
    pub attachments: Vec<Attachment>,
}

impl From<&Message> for MessageResponse {
    fn from(m: &Message) -> Self {
        Self {
            id: m.id,
            content: m.content.clone(),
            author_id: m.author.id(),
            is_agent: m.author.is_agent(),
            created_at: to_rfc3339(m.created_at),
            metadata: m.metadata.clone(),
            attachments: m.attachments.clone(),
        }
    }
}

/// The session as the message left it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = SessionStatus)]
pub struct SessionAfterMessage {
    #[schema(format = DateTime)]
    pub expires_at: String,
    pub renewal_count: i64,
    /// Whether this message moved `expiresAt` (auto-renew on, cap not reached).
    pub was_renewed: bool,
    pub is_near_expiration: bool,
}

/// The stored message in the shape the ElizaOS api-client reads (`userMessage`).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserMessage {
    pub id: MessageId,
    pub content: String,
    pub author_id: AuthorId,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(value_type = Object)]
    pub metadata: Value,
}

/// The message (flat, as the seed documents show it, and again as `userMessage`, as the
/// ElizaOS api-client reads it) and the session as the message left it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SentMessageResponse {
    #[serde(flatten)]
    pub message: MessageResponse,
    pub user_message: UserMessage,
    pub session_status: SessionAfterMessage,
}

impl From<&Sent> for SentMessageResponse {
    fn from(sent: &Sent) -> Self {
        let message = MessageResponse::from(&sent.message);
        Self {
            user_message: UserMessage {
                id: message.id,
                content: message.content.clone(),
                author_id: message.author_id,
                created_at: message.created_at.clone(),
                metadata: message.metadata.clone(),
            },
            message,
            session_status: SessionAfterMessage {
                expires_at: to_rfc3339(sent.session.expires_at),
                renewal_count: sent.session.renewal_count,
                was_renewed: sent.was_renewed,
                is_near_expiration: sent.session.is_near_expiration(sent.now),
            },
        }
    }
}

/// Send a message. It counts as activity: with `autoRenew` on it renews the session (capped by
/// the maximum duration). By default the session's user is the author; an agent runtime
/// replies as the agent by sending `"authorId": <the session's agentId>`.
///
/// **Auth:** Needs `sessions:write`, or this session's token. The credential decides the
/// author: a session token writes as the session's user, a key bound to the agent as the agent;
/// an unbound key may choose with `authorId`.
#[utoipa::path(
    operation_id = "sendSessionMessage", tag = "messages",
    request_body = SendMessageRequest,
    params(
        ("sessionId" = SessionId, Path, description = "Session id"),
        ("Idempotency-Key" = Option<String>, Header, nullable = false, pattern = "^[!-~]{1,255}$", description = "1–255 visible ASCII characters. Retries with the same key and body within 24 h replay the first response"),
    ),
    responses(
        (status = 201, description = "Message stored (or replayed: header `Idempotent-Replayed: true`)", body = SentMessageResponse),
        (status = 400, description = "Invalid input (VALIDATION_ERROR)", body = ErrorBody),
        (status = 404, description = "Unknown session (SESSION_NOT_FOUND)", body = ErrorBody),
        (status = 409, description = "Session paused (SESSION_PAUSED), or kept losing races with concurrent writers (CONFLICT)", body = ErrorBody),
        (status = 410, description = "Session expired (SESSION_EXPIRED) or ended (SESSION_ENDED)", body = ErrorBody),
        (status = 422, description = "Idempotency-Key reused with another body (IDEMPOTENCY_KEY_REUSED)", body = ErrorBody),
        JsonWriteErrors,
        AuthErrors,
        ServerErrors,
    )
)]
#[post("/api/messaging/sessions/{sessionId}/messages")]
pub async fn send(
    state: web::Data<AppState>,
    auth: Auth,
    id: SessionId,
    idempotency: IdempotencyHeader,
    ApiJson(body, raw): ApiJson<SendMessageRequest>,
) -> Result<HttpResponse, ApiError> {
    let caller = auth.check(AuthCheck::own_session(Scope::SessionsWrite, id))?;
    let scope = format!(
        "{} POST /api/messaging/sessions/{id}/messages",
        caller.identity()
    );
    let key = idempotency.key(scope, &raw)?;
    let outcome = service::send(&state, &caller, id, body.into(), key).await?;
    Ok(created(
        outcome.replayed,
        SentMessageResponse::from(&outcome.value),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListMessagesParams {
    /// 1–100, default 50.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
    /// Only messages created strictly before this instant: unix milliseconds (as in
    /// `cursors.before`) or an ISO-8601 timestamp.
    #[param(value_type = Option<CursorParam>)]
    pub before: Option<String>,
    /// Only messages created strictly after this instant: unix milliseconds (as in
    /// `cursors.after`) or an ISO-8601 timestamp.
    #[param(value_type = Option<CursorParam>)]
    pub after: Option<String>,
}

/// The range of a JavaScript `Date`, which bounds millisecond cursors.
const JS_DATE_RANGE_MS: i64 = 8_640_000_000_000_000;

/// The schema of a message cursor: unix milliseconds (within JavaScript's date range) or an
/// RFC 3339 timestamp. The handler parses the raw text; this type only documents it.
pub struct CursorParam;

impl utoipa::PartialSchema for CursorParam {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{
            KnownFormat, ObjectBuilder, OneOfBuilder, SchemaFormat, Type,
        };
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
                    .minimum(Some(-JS_DATE_RANGE_MS as f64))
                    .maximum(Some(JS_DATE_RANGE_MS as f64)),
            )
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime))),
            )
            .into()
    }
}

impl ToSchema for CursorParam {}

#[derive(Debug, Serialize, ToSchema)]
pub struct Cursors {
    /// `createdAt` (unix ms) of the oldest message in the page; pass as `before` for older.
    pub before: Option<i64>,
    /// `createdAt` (unix ms) of the newest message in the page; pass as `after` for newer.
    pub after: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessageListResponse {
    /// Always newest first.
    pub messages: Vec<MessageResponse>,
    /// More messages exist beyond this page in the direction read (older for `before` or no
    /// cursor, newer for `after`).
    pub has_more: bool,
    pub cursors: Cursors,
}

/// Parses a cursor: unix milliseconds, or an ISO-8601 timestamp rounded outwards to the
/// millisecond so that the exclusive bound never drops a message.
fn cursor(field: &str, value: Option<&str>, round_up: bool) -> Result<Option<Millis>, ApiError> {
    let Some(text) = value.map(str::trim) else {
        return Ok(None);
    };
    if let Ok(ms) = text.parse::<i64>() {
        return if ms.abs() <= JS_DATE_RANGE_MS {
            Ok(Some(ms))
        } else {
            Err(ApiError::invalid(
                field,
                format!("must be within ±{JS_DATE_RANGE_MS} milliseconds of the epoch"),
            ))
        };
    }
    let t = chrono::DateTime::parse_from_rfc3339(text).map_err(|_| {
        ApiError::invalid(field, "must be unix milliseconds or an ISO-8601 timestamp")
    })?;
    let ms = t.timestamp_millis();
    let partial = t.timestamp_subsec_nanos() % 1_000_000 != 0;
    Ok(Some(if round_up && partial { ms + 1 } else { ms }))
}

/// Page through a session's messages, newest first.
///
/// Without a cursor: the newest `limit` messages. With `before`: the newest `limit` older
/// than it. With only `after`: the oldest `limit` newer than it (still listed newest first).
/// `createdAt` is strictly increasing within a session, so walking `cursors.before` from the
/// newest page to the oldest (or `cursors.after` from the oldest to the newest) returns every
/// message exactly once.
///
/// **Auth:** Needs `sessions:read`, or this session's token.
#[utoipa::path(
    operation_id = "getSessionMessages", tag = "messages",
    params(
        ("sessionId" = SessionId, Path, description = "Session id"),
        ListMessagesParams,
    ),
    responses(
        (status = 200, description = "A page of messages", body = MessageListResponse),
        (status = 400, description = "Invalid paging (VALIDATION_ERROR)", body = ErrorBody),
        (status = 404, description = "Unknown session (SESSION_NOT_FOUND)", body = ErrorBody),
        (status = 410, description = "Session expired (SESSION_EXPIRED)", body = ErrorBody),
        AuthErrors,
        ServerErrors,
    )
)]
#[get("/api/messaging/sessions/{sessionId}/messages")]
pub async fn list(
    state: web::Data<AppState>,
    auth: Auth,
    id: SessionId,
    params: web::Query<ListMessagesParams>,
) -> Result<HttpResponse, ApiError> {
    let caller = auth.check(AuthCheck::own_session(Scope::SessionsRead, id))?;
    let page = service::list(&state, &caller, id, params.parse()?).await?;
    Ok(HttpResponse::Ok().json(MessageListResponse::from(&page)))
}

impl ListMessagesParams {
    fn parse(&self) -> Result<PageQuery, ApiError> {
        Ok(PageQuery {
            limit: extract::int_param("limit", self.limit.as_deref(), 50, (1, 100))?,
            before: cursor("before", self.before.as_deref(), true)?,
            after: cursor("after", self.after.as_deref(), false)?,
        })
    }
}

impl From<&MessagePage> for MessageListResponse {
    fn from(page: &MessagePage) -> Self {
        Self {
            cursors: Cursors {
                before: page.messages.last().map(|m| m.created_at),
                after: page.messages.first().map(|m| m.created_at),
            },
            messages: page.messages.iter().map(MessageResponse::from).collect(),
            has_more: page.has_more,
        }
    }
}

/// A session's archive and a page of its history.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TranscriptResponse {
    /// The session as it is now, or as it ended (`status`, `endedAt`, `endReason`).
    pub session: SessionResponse,
    #[serde(flatten)]
    pub page: MessageListResponse,
}

/// Read a session's transcript: the session (with its final status and why it ended) and its
/// messages, paged exactly like `getSessionMessages`. Unlike the seed routes, it answers for
/// live, paused, expired and ended sessions alike, until the retention window purges them
/// (then 404), so a user can read the conversation that just timed out.
///
/// **Auth:** Needs `sessions:read`, or this session's token.
#[utoipa::path(
    operation_id = "getSessionTranscript", tag = "messages",
    params(
        ("sessionId" = SessionId, Path, description = "Session id"),
        ListMessagesParams,
    ),
    responses(
        (status = 200, description = "The session and a page of its messages", body = TranscriptResponse),
        (status = 400, description = "Invalid paging (VALIDATION_ERROR)", body = ErrorBody),
        (status = 404, description = "Unknown, deleted or purged (SESSION_NOT_FOUND)", body = ErrorBody),
        AuthErrors,
        ServerErrors,
    )
)]
#[get("/api/messaging/sessions/{sessionId}/transcript")]
pub async fn transcript(
    state: web::Data<AppState>,
    auth: Auth,
    id: SessionId,
    params: web::Query<ListMessagesParams>,
) -> Result<HttpResponse, ApiError> {
    let caller = auth.check(AuthCheck::own_session(Scope::SessionsRead, id))?;
    let (snapshot, page) = service::transcript(&state, &caller, id, params.parse()?).await?;
    Ok(HttpResponse::Ok().json(TranscriptResponse {
        session: SessionResponse::new(&snapshot, false),
        page: MessageListResponse::from(&page),
    }))
}
