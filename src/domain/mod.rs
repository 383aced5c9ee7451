//! Domain types as the service sees them: no HTTP, no storage. Conversions from and to
//! storage rows live in `db/`, the wire shapes in `api/`.

pub mod agent;
pub mod conversation;
pub mod credential;
pub mod event;
pub mod ids;
pub mod message;
pub mod session;

pub use agent::Agent;
pub use conversation::{ConversationState, FieldChange, Stage, StatePatch};
pub use credential::{ApiKey, Caller, Forbidden, Scope, Scopes};
pub use event::{EndReason, Event, EventKind, ExpiryReason};
pub use ids::{AgentId, AuthorId, InvalidId, KeyId, MessageId, SessionId, UserId};
pub use message::{Attachment, Author, Message};
pub use session::{Member, Over, Session, SessionFilter, SessionStatus, StatusFilter};
