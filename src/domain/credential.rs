//! Who is calling and what they may do: scopes, API keys and the caller of a request, with the
//! access rules that need no stored data beyond the session. Pure: the secrets live in
//! `crate::secret`, their storage in `db/`, authentication in `crate::auth` and the HTTP side
//! in `crate::api::auth`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::clock::Millis;
use crate::domain::{AgentId, Author, AuthorId, KeyId, Session, SessionId, UserId};

/// A permission an API key carries: the reference's five, plus agent and key management.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
pub enum Scope {
    #[serde(rename = "sessions:create")]
    SessionsCreate,
    #[serde(rename = "sessions:read")]
    SessionsRead,
    #[serde(rename = "sessions:write")]
    SessionsWrite,
    #[serde(rename = "sessions:manage")]
    SessionsManage,
    #[serde(rename = "sessions:health")]
    SessionsHealth,
    #[serde(rename = "agents:manage")]
    AgentsManage,
    #[serde(rename = "keys:manage")]
    KeysManage,
    #[serde(rename = "metrics:read")]
    MetricsRead,
}

impl Scope {
    pub const ALL: [Scope; 8] = [
        Scope::SessionsCreate,
        Scope::SessionsRead,
        Scope::SessionsWrite,
        Scope::SessionsManage,
        Scope::SessionsHealth,
        Scope::AgentsManage,
        Scope::KeysManage,
        Scope::MetricsRead,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::SessionsCreate => "sessions:create",
            Scope::SessionsRead => "sessions:read",
            Scope::SessionsWrite => "sessions:write",
            Scope::SessionsManage => "sessions:manage",
            Scope::SessionsHealth => "sessions:health",
            Scope::AgentsManage => "agents:manage",
            Scope::KeysManage => "keys:manage",
            Scope::MetricsRead => "metrics:read",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A scope name that is not one of [`Scope::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown scope {0:?}; expected one of sessions:create, sessions:read, sessions:write, sessions:manage, sessions:health, agents:manage, keys:manage, metrics:read")]
pub struct UnknownScope(pub String);

impl FromStr for Scope {
    type Err = UnknownScope;

    fn from_str(text: &str) -> Result<Self, UnknownScope> {
        Scope::ALL
            .into_iter()
            .find(|s| s.as_str() == text.trim())
            .ok_or_else(|| UnknownScope(text.trim().to_owned()))
    }
}

/// A set of scopes, kept sorted and without duplicates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scopes(Vec<Scope>);

impl Scopes {
    pub fn all() -> Self {
        Self(Scope::ALL.to_vec())
    }

    pub fn new(scopes: impl IntoIterator<Item = Scope>) -> Self {
        let mut v: Vec<Scope> = scopes.into_iter().collect();
        v.sort();
        v.dedup();
        Self(v)
    }

    pub fn contains(&self, scope: Scope) -> bool {
        self.0.contains(&scope)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = Scope> + '_ {
        self.0.iter().copied()
    }

    /// Space-separated, as stored.
    pub fn to_text(&self) -> String {
        self.iter().map(Scope::as_str).collect::<Vec<_>>().join(" ")
    }

    /// Parses space- or comma-separated scope names.
    pub fn parse(text: &str) -> Result<Self, UnknownScope> {
        text.split([' ', ','])
            .filter(|s| !s.trim().is_empty())
            .map(str::parse)
            .collect::<Result<Vec<_>, _>>()
            .map(Self::new)
    }
}

/// An API key as stored (without its secret).
#[derive(Debug, Clone, PartialEq)]
pub struct ApiKey {
    pub id: KeyId,
    pub name: Option<String>,
    pub scopes: Scopes,
    /// A bound key sees only this agent's sessions and writes as the agent.
    pub agent_id: Option<AgentId>,
    pub created_at: Millis,
    pub revoked_at: Option<Millis>,
}

/// Who is making a request, once authenticated.
#[derive(Debug, Clone, PartialEq)]
pub enum Caller {
    /// No credential, in the open mode (no key configured, loopback bind): may do anything,
    /// as before credentials existed.
    Open,
    /// An API key: the bootstrap key (`id` None) or a stored one.
    Key {
        id: Option<KeyId>,
        scopes: Scopes,
        agent_id: Option<AgentId>,
    },
    /// A session token: one session, written as one participant.
    SessionToken {
        session_id: SessionId,
        user_id: UserId,
        agent_id: AgentId,
    },
}

/// Why a caller may not do something; the message says what was missing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Forbidden(pub String);

impl Caller {
    /// The agent an API key is bound to.
    pub fn bound_agent(&self) -> Option<AgentId> {
        match self {
            Caller::Key { agent_id, .. } => *agent_id,
            _ => None,
        }
    }

    /// May this caller act on behalf of `agent` (create its sessions, manage it)?
    pub fn may_act_for_agent(&self, agent: AgentId) -> Result<(), Forbidden> {
        match self.bound_agent() {
            Some(bound) if bound != agent => Err(Forbidden(format!(
                "This key is bound to agent {bound} and cannot act for agent {agent}"
            ))),
            _ => Ok(()),
        }
    }

    /// The agent filter of a session list: a bound key lists its own agent's sessions only.
    pub fn list_filter(&self, asked: Option<AgentId>) -> Result<Option<AgentId>, Forbidden> {
        match (asked, self.bound_agent()) {
            (Some(asked), Some(bound)) if asked != bound => Err(Forbidden(format!(
                "This key is bound to agent {bound} and cannot list agent {asked}'s sessions"
            ))),
            (asked, bound) => Ok(asked.or(bound)),
        }
    }

    /// Operations across agents (listing agents, managing keys, handing out a user's session
    /// token) need a key that is not bound to an agent: a bound key speaks for its agent only.
    pub fn unbound(&self, what: &str) -> Result<(), Forbidden> {
        match self.bound_agent() {
            Some(bound) => Err(Forbidden(format!(
                "This key is bound to agent {bound} and cannot {what}"
            ))),
            None => Ok(()),
        }
    }

    /// May this caller hand out a key with `scopes`? A key grants only what it holds.
    pub fn may_grant(&self, scopes: &[Scope]) -> Result<(), Forbidden> {
        let held = match self {
            Caller::Open => return Ok(()),
            Caller::Key { scopes, .. } => scopes,
            Caller::SessionToken { .. } => {
                return Err(Forbidden(
                    "A session token cannot grant anything".to_owned(),
                ))
            }
        };
        match scopes.iter().find(|s| !held.contains(**s)) {
            Some(extra) => Err(Forbidden(format!(
                "This key cannot grant the scope `{extra}`, which it does not hold"
            ))),
            None => Ok(()),
        }
    }

    /// May this caller touch `session` at all? A bound key only its agent's sessions, a
    /// session token only its own session.
    pub fn may_touch(&self, session: &Session) -> Result<(), Forbidden> {
        match self {
            Caller::Open => Ok(()),
            Caller::Key { agent_id, .. } => match agent_id {
                Some(bound) if *bound != session.agent_id => Err(Forbidden(format!(
                    "This key is bound to agent {bound}; session {} belongs to another agent",
                    session.id
                ))),
                _ => Ok(()),
            },
            Caller::SessionToken { session_id, .. } => {
                if *session_id == session.id {
                    Ok(())
                } else {
                    Err(Forbidden(format!(
                        "This session token opens another session, not {}",
                        session.id
                    )))
                }
            }
        }
    }

    /// May this caller run the session's lifecycle (pause, resume, close, delete)? As
    /// [`Caller::may_touch`], and a session token only when it is the creator's: a user added
    /// to a group chat may take part in it, not end it for everyone.
    pub fn may_manage(&self, session: &Session) -> Result<(), Forbidden> {
        self.may_touch(session)?;
        match self {
            Caller::SessionToken { user_id, .. } if *user_id != session.user_id => {
                Err(Forbidden(format!(
                    "Only the session's creator ({}) can do this with a session token",
                    session.user_id
                )))
            }
            _ => Ok(()),
        }
    }

    /// Who writes a message sent by this caller. A session token writes as its participant
    /// and an agent-bound key as the agent, whatever the body says (an `authorId` naming
    /// someone else is refused); a trusted caller chooses with `authorId` (default: the user).
    pub fn author(&self, requested: Option<AuthorId>) -> Result<Option<Author>, Forbidden> {
        let fixed = match self {
            Caller::SessionToken { user_id, .. } => Author::User(*user_id),
            Caller::Key {
                agent_id: Some(agent),
                ..
            } => Author::Agent(*agent),
            _ => return Ok(None),
        };
        match requested {
            Some(id) if id != fixed.id() => Err(Forbidden(format!(
                "This credential writes as {}; it cannot post as {id}",
                fixed.id()
            ))),
            _ => Ok(Some(fixed)),
        }
    }

    /// Who this credential is, as a stable text: it scopes idempotency keys (two callers
    /// sending the same key never see each other's outcomes) and counts open streams.
    pub fn identity(&self) -> String {
        match self {
            Caller::Open => "open".to_owned(),
            Caller::Key { id: None, .. } => "key:bootstrap".to_owned(),
            Caller::Key { id: Some(id), .. } => format!("key:{id}"),
            Caller::SessionToken {
                session_id,
                user_id,
                ..
            } => format!("session:{session_id}:{user_id}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse_and_print_in_a_stable_order() {
        let s = Scopes::parse("sessions:write, sessions:read sessions:write").unwrap();
        assert_eq!(s.to_text(), "sessions:read sessions:write");
        assert_eq!(
            Scopes::parse("sessions:read,admin").unwrap_err(),
            UnknownScope("admin".into())
        );
        assert_eq!(Scopes::all().iter().count(), 8);
    }
}
