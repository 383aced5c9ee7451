//! Typed ids: each is a UUID, parsed once at the edge (path, query or body) and written in
//! lower-case hyphenated form everywhere (wire and storage).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

/// The OpenAPI pattern of every id: a hyphenated UUID, either case. The only place it is
/// written; every id schema refers to it.
pub const UUID_PATTERN: &str =
    "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$";

/// Why a text is not an id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("must be a hyphenated UUID")]
pub struct InvalidId;

/// Parses a hyphenated UUID (as [`UUID_PATTERN`] says); braces, URNs and the simple form that
/// `Uuid::parse_str` also takes are refused.
fn parse_hyphenated(text: &str) -> Result<Uuid, InvalidId> {
    let hyphenated = text.len() == 36
        && text
            .char_indices()
            .all(|(i, c)| matches!(i, 8 | 13 | 18 | 23) == (c == '-'));
    if !hyphenated {
        return Err(InvalidId);
    }
    Uuid::try_parse(text).map_err(|_| InvalidId)
}

macro_rules! uuid_ids {
    ($($(#[$doc:meta])* $name:ident = $field:literal;)*) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Uuid);

        impl $name {
            /// The camelCase name of the field or path parameter that carries it.
            pub const FIELD: &'static str = $field;

            pub fn new_random() -> Self {
                Self(Uuid::new_v4())
            }

            /// The all-zero id, which no real one is.
            pub fn nil() -> Self {
                Self(Uuid::nil())
            }

            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl FromStr for $name {
            type Err = InvalidId;

            fn from_str(text: &str) -> Result<Self, InvalidId> {
                parse_hyphenated(text).map(Self)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct Visitor;
                impl serde::de::Visitor<'_> for Visitor {
                    type Value = $name;
                    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                        f.write_str("a hyphenated UUID string")
                    }
                    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<$name, E> {
                        v.parse().map_err(E::custom)
                    }
                }
                d.deserialize_str(Visitor)
            }
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                uuid_schema().into()
            }
        }

        impl utoipa::ToSchema for $name {}
    )*};
}

uuid_ids! {
    /// A session's id.
    SessionId = "sessionId";
    /// An agent's id (chosen by whoever registers the agent).
    AgentId = "agentId";
    /// The id of the user a session belongs to (chosen by the caller).
    UserId = "userId";
    /// A message's id.
    MessageId = "messageId";
    /// Who wrote a message: the session's `userId` or its `agentId`.
    AuthorId = "authorId";
    /// An API key's public id (shown by `keys list`, used by `keys revoke`); never its secret.
    KeyId = "keyId";
}

/// The schema of every id type.
pub fn uuid_schema() -> utoipa::openapi::schema::ObjectBuilder {
    use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)))
        .pattern(Some(UUID_PATTERN))
}

impl From<UserId> for AuthorId {
    fn from(id: UserId) -> Self {
        Self(id.0)
    }
}

/// A user author's id, as the user it is (a message's author who is not the agent).
impl From<AuthorId> for UserId {
    fn from(id: AuthorId) -> Self {
        Self(id.0)
    }
}

impl From<AgentId> for AuthorId {
    fn from(id: AgentId) -> Self {
        Self(id.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_hyphenated_and_lower_case() {
        let id: SessionId = "3C90C3CC-0D44-4B50-8888-8DD25736052A".parse().unwrap();
        assert_eq!(id.to_string(), "3c90c3cc-0d44-4b50-8888-8dd25736052a");
        assert_eq!(
            serde_json::to_value(id).unwrap(),
            "3c90c3cc-0d44-4b50-8888-8dd25736052a"
        );
        for bad in [
            "3c90c3cc0d444b5088888dd25736052a",
            "{3c90c3cc-0d44-4b50-8888-8dd25736052a}",
            "urn:uuid:3c90c3cc-0d44-4b50-8888-8dd25736052a",
            "3c90c3cc-0d44-4b50-8888-8dd25736052g",
            "not-a-uuid",
        ] {
            assert_eq!(bad.parse::<SessionId>(), Err(InvalidId), "{bad}");
        }
    }

    #[test]
    fn deserializing_names_the_problem() {
        let err = serde_json::from_value::<AgentId>(serde_json::json!("x")).unwrap_err();
        assert_eq!(err.to_string(), "must be a hyphenated UUID");
        assert!(serde_json::from_value::<AgentId>(serde_json::json!(42)).is_err());
    }
}
