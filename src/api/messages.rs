//! `/api/messaging/sessions/{sessionId}/messages`: send and page through a session's history.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::api::extract::{self, ApiJson, IdempotencyHeader};
use crate::api::sessions::session_id;
use crate::clock::{to_rfc3339, Millis};
use crate::error::{ApiError, ErrorBody, JsonWriteErrors, ServerErrors};
use crate::json::Obj;
use crate::service::messages::{self as service, Message, NewMessage, PageQuery, Sent};
use crate::state::AppState;

const CONTENT_MAX_CHARS: usize = 10_000;
const ATTACHMENTS_MAX: usize = 10;

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
pub struct Attachment {
    /// What it is, e.g. `image` or `file` (not blank).
    #[serde(rename = "type")]
    #[schema(
        example = "image",
        min_length = 1,
        pattern = "[^\\t-\\r\\x1c-\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]"
    )]
    pub kind: String,
    /// An `http` or `https` URL.
    #[schema(
        example = "https://example.com/cat.png",
        pattern = "^[Hh][Tt][Tt][Pp][Ss]?://[^\\t-\\r\\x1c-\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]+$"
    )]
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SendMessageRequest {
    /// Not blank, at most 10,000 characters.
    #[schema(
        example = "Hello, I need help with my account",
        min_length = 1,
        max_length = 10000,
        pattern = "[^\\t-\\r\\x1c-\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]"
    )]
    pub content: String,
    /// Leave out to write as the session's user; the session's `agentId` posts an agent reply.
    #[serde(default)]
    #[schema(format = Uuid, pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")]
    pub author_id: Option<String>,
    /// At most 10.
    #[serde(default)]
    #[schema(max_items = 10, value_type = Option<Vec<Attachment>>)]
    pub attachments: Option<Vec<Obj<Attachment>>>,
    /// Any JSON object (≤ 16 KB serialized, nested ≤ 5 levels).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessageResponse {
    #[schema(format = Uuid)]
    pub id: String,
    pub content: String,
    #[schema(format = Uuid)]
    pub author_id: String,
    /// True for the agent's replies.
    pub is_agent: bool,
    /// Strictly increasing within a session.
    #[schema(format = DateTime, example = "2026-01-02T03:04:05.678Z")]
    pub created_at: String,
    #[schema(value_type = Object)]
    pub metadata: Value,
    #[schema(value_type = Vec<Attachment>)]
    pub attachments: Value,
}

impl From<&Message> for MessageResponse {
    fn from(m: &Message) -> Self {
        Self {
            id: m.id.clone(),
            content: m.content.clone(),
            author_id: m.author_id.clone(),
            is_agent: m.is_agent,
            created_at: to_rfc3339(m.created_at),
            metadata: m.metadata.clone(),
            attachments: m.attachments.clone(),
        }
    }
}

/// The session as the message left it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionStatus {
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
    #[schema(format = Uuid)]
    pub id: String,
    pub content: String,
    #[schema(format = Uuid)]
    pub author_id: String,
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
    pub session_status: SessionStatus,
}

impl From<&Sent> for SentMessageResponse {
    fn from(sent: &Sent) -> Self {
        let message = MessageResponse::from(&sent.message);
        Self {
            user_message: UserMessage {
                id: message.id.clone(),
                content: message.content.clone(),
                author_id: message.author_id.clone(),
                created_at: message.created_at.clone(),
                metadata: message.metadata.clone(),
            },
            message,
            session_status: SessionStatus {
                expires_at: to_rfc3339(sent.session.expires_at),
                renewal_count: sent.session.renewal_count,
                was_renewed: sent.was_renewed,
                is_near_expiration: sent.session.is_near_expiration(sent.now),
            },
        }
    }
}

fn validate(body: SendMessageRequest) -> Result<NewMessage, ApiError> {
    if extract::is_blank(&body.content) {
        return Err(ApiError::invalid("content", "must not be empty"));
    }
    if body.content.chars().count() > CONTENT_MAX_CHARS {
        return Err(ApiError::invalid(
            "content",
            format!("must be at most {CONTENT_MAX_CHARS} characters"),
        ));
    }
    let attachments: Vec<Attachment> = body
        .attachments
        .unwrap_or_default()
        .into_iter()
        .map(|a| a.0)
        .collect();
    if attachments.len() > ATTACHMENTS_MAX {
        return Err(ApiError::invalid(
            "attachments",
            format!("must hold at most {ATTACHMENTS_MAX} items"),
        ));
    }
    for (i, a) in attachments.iter().enumerate() {
        if extract::is_blank(&a.kind) {
            return Err(ApiError::invalid(
                format!("attachments[{i}].type"),
                "must not be empty",
            ));
        }
        let url_ok = ["http://", "https://"]
            .iter()
            .any(|p| a.url.len() > p.len() && a.url.to_ascii_lowercase().starts_with(p));
        if !url_ok || a.url.chars().any(extract::is_blank_char) {
            return Err(ApiError::invalid(
                format!("attachments[{i}].url"),
                "must be an http(s) URL",
            ));
        }
    }
    Ok(NewMessage {
        content: body.content,
        author_id: body
            .author_id
            .map(|a| extract::uuid_field("authorId", &a))
            .transpose()?,
        metadata: extract::metadata("metadata", body.metadata)?,
        attachments: serde_json::to_value(attachments)
            .map_err(|e| ApiError::Internal(format!("attachments: {e}")))?,
    })
}

/// Send a message. It counts as activity: with `autoRenew` on it renews the session (capped by
/// the maximum duration). By default the session's user is the author; an agent runtime
/// replies as the agent by sending `"authorId": <the session's agentId>`.
#[utoipa::path(
    post, path = "/api/messaging/sessions/{sessionId}/messages", operation_id = "sendSessionMessage", tag = "messages",
    request_body = SendMessageRequest,
    params(
        ("sessionId" = String, Path, format = Uuid, pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$", description = "Session id"),
        ("Idempotency-Key" = Option<String>, Header, nullable = false, pattern = "^[!-~]{1,255}$", description = "1–255 visible ASCII characters. Retries with the same key and body within 24 h replay the first response"),
    ),
    responses(
        (status = 201, description = "Message stored (or replayed: header `Idempotent-Replayed: true`)", body = SentMessageResponse),
        (status = 400, description = "Invalid input (VALIDATION_ERROR)", body = ErrorBody),
        (status = 404, description = "Unknown session (SESSION_NOT_FOUND)", body = ErrorBody),
        (status = 410, description = "Session expired (SESSION_EXPIRED)", body = ErrorBody),
        (status = 422, description = "Idempotency-Key reused with another body (IDEMPOTENCY_KEY_REUSED)", body = ErrorBody),
        JsonWriteErrors,
        ServerErrors,
    )
)]
pub async fn send(
    state: web::Data<AppState>,
    path: web::Path<String>,
    idempotency: IdempotencyHeader,
    ApiJson(body, raw): ApiJson<SendMessageRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = session_id(&path)?;
    let input = validate(body)?;
    let key = idempotency.key(format!("POST /api/messaging/sessions/{id}/messages"), &raw)?;
    let reply = service::send(&state, id, input, key, |sent| {
        serde_json::to_value(SentMessageResponse::from(sent)).unwrap_or_default()
    })
    .await?;
    Ok(extract::respond(reply))
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
#[utoipa::path(
    get, path = "/api/messaging/sessions/{sessionId}/messages", operation_id = "getSessionMessages", tag = "messages",
    params(
        ("sessionId" = String, Path, format = Uuid, pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$", description = "Session id"),
        ListMessagesParams,
    ),
    responses(
        (status = 200, description = "A page of messages", body = MessageListResponse),
        (status = 400, description = "Invalid paging (VALIDATION_ERROR)", body = ErrorBody),
        (status = 404, description = "Unknown session (SESSION_NOT_FOUND)", body = ErrorBody),
        (status = 410, description = "Session expired (SESSION_EXPIRED)", body = ErrorBody),
        ServerErrors,
    )
)]
pub async fn list(
    state: web::Data<AppState>,
    path: web::Path<String>,
    params: web::Query<ListMessagesParams>,
) -> Result<HttpResponse, ApiError> {
    let id = session_id(&path)?;
    let query = PageQuery {
        limit: extract::int_param("limit", params.limit.as_deref(), 50, (1, 100))?,
        before: cursor("before", params.before.as_deref(), true)?,
        after: cursor("after", params.after.as_deref(), false)?,
    };
    let page = service::list(&state, id, query).await?;
    Ok(HttpResponse::Ok().json(MessageListResponse {
        cursors: Cursors {
            before: page.messages.last().map(|m| m.created_at),
            after: page.messages.first().map(|m| m.created_at),
        },
        messages: page.messages.iter().map(MessageResponse::from).collect(),
        has_more: page.has_more,
    }))
}
