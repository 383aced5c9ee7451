use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use validator::Validate;

use crate::clock::Millis;
use crate::domain::{AgentId, AuthorId, MessageId, SessionId, UserId};

/// A message of a session. `created_at` is strictly increasing within the session and `seq`
/// counts up from 1, so cursors are exact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub id: MessageId,
    pub session_id: SessionId,
    pub seq: i64,
    pub author: Author,
    pub content: String,
    pub metadata: Value,
    pub attachments: Vec<Attachment>,
    pub created_at: Millis,
}

/// Who wrote a message: the session's user, or its agent replying.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Author {
    User(UserId),
    Agent(AgentId),
}

impl Author {
    pub fn id(&self) -> AuthorId {
        match *self {
            Self::User(id) => id.into(),
            Self::Agent(id) => id.into(),
        }
    }

    pub fn is_agent(&self) -> bool {
        matches!(self, Self::Agent(_))
    }
}

// A link attached to a message, stored and shown as given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, Validate)]
pub struct Attachment {
    /// What it is, e.g. `image` or `file` (not blank).
    #[serde(rename = "type")]
    #[schema(
        example = "image",
        min_length = 1,
        pattern = "[^\\t-\\r\\x1c-\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]"
    )]
    #[validate(custom(function = "crate::validation::not_blank_json"))]
    pub r#type: String,
    /// An `http` or `https` URL.
    #[schema(
        example = "https://example.com/cat.png",
        pattern = "^[Hh][Tt][Tt][Pp][Ss]?://[^\\t-\\r\\x1c-\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]+$"
    )]
    #[validate(custom(function = "crate::validation::http_url"))]
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}
