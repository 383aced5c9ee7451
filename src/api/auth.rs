//! Authorization at the HTTP edge. The [`authenticate`] middleware authenticates every API
//! request before its handler's extractors run, and [`Auth`] hands the result to the handler:
//! a 401 comes before anything else is looked at (actix answers the first extractor error to
//! be ready, so an authentication that waits on the database inside an extractor could lose
//! to a malformed id). Each handler then states what it needs in one
//! [`AuthCheck`], which checks the scope or the session token and counts the request against
//! the rate limits, before the handler calls the service. Checks that need the stored session
//! (an agent-bound key and another agent's session) are the service's, inside its
//! transaction, before it changes anything (a refused call's transaction is rolled back).

use std::future::{ready, Ready};

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header::AUTHORIZATION;
use actix_web::middleware::Next;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};

use crate::api::error::ApiError;
use crate::auth::AuthError;
use crate::domain::{AgentId, Caller, Scope, SessionId, UserId};
use crate::rate_limit::{AppliedLimit, RateKeys};
use crate::service::ServiceError;
use crate::state::AppState;

/// The authenticated caller of this request.
pub struct Auth {
    caller: Caller,
    req: HttpRequest,
}

/// The credential sent, if any: `Authorization: Bearer <secret>` or `X-API-KEY: <secret>`
/// (the ElizaOS client's header). Either may carry a key or a session token: a frontend built
/// on the ElizaOS client passes the token as its `apiKey`.
fn presented(req: &HttpRequest) -> Result<Option<String>, AuthError> {
    if let Some(value) = req.headers().get(AUTHORIZATION) {
        let text = value.to_str().map_err(|_| AuthError::Malformed)?.trim();
        let (scheme, token) = text.split_once(' ').ok_or(AuthError::Malformed)?;
        let token = token.trim();
        if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
            return Err(AuthError::Malformed);
        }
        return Ok(Some(token.to_owned()));
    }
    match req.headers().get("x-api-key") {
        None => Ok(stream_access_token(req)),
        Some(value) => {
            let key = value.to_str().map_err(|_| AuthError::Malformed)?.trim();
            if key.is_empty() {
                Err(AuthError::Malformed)
            } else {
                Ok(Some(key.to_owned()))
            }
        }
    }
}

/// `?access_token=` on the routes a browser's `EventSource` opens, which cannot send headers.
/// Only there: elsewhere a secret in a URL ends up in proxies' and browsers' histories.
fn stream_access_token(req: &HttpRequest) -> Option<String> {
    if !req.path().ends_with("/watch") && !req.path().ends_with("/events") {
        return None;
    }
    #[derive(serde::Deserialize)]
    struct Query {
        access_token: Option<String>,
    }
    web::Query::<Query>::from_query(req.query_string())
        .ok()
        .and_then(|q| q.into_inner().access_token)
        .map(|token| token.trim().to_owned())
        .filter(|token| !token.is_empty())
}

/// What [`authenticate`] found, kept on the request for [`Auth`].
#[derive(Debug, Clone)]
struct Authentication(Result<Caller, AuthError>);

/// Middleware: authenticates each API request (paths under `/api/`, and `/metrics`) up front. The result
/// waits on the request; only a handler that takes [`Auth`] turns a failure into a 401.
pub async fn authenticate(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let covered = req.path().starts_with("/api/") || req.path() == "/metrics";
    if let Some(state) = state.filter(|_| covered) {
        let result = match presented(req.request()) {
            Ok(credential) => state.auth.authenticate(credential.as_deref()).await,
            Err(e) => Err(e),
        };
        req.extensions_mut().insert(Authentication(result));
    }
    next.call(req).await
}

impl FromRequest for Auth {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let found = req.extensions().get::<Authentication>().cloned();
        ready(match found {
            Some(Authentication(Ok(caller))) => Ok(Auth {
                caller,
                req: req.clone(),
            }),
            Some(Authentication(Err(AuthError::Unavailable))) => Err(ServiceError::Unavailable(
                "the credential store cannot be read".to_owned(),
            )
            .into()),
            Some(Authentication(Err(e))) => Err(ApiError::Unauthorized(e)),
            // A handler taking `Auth` on a route the middleware does not cover: a bug.
            None => Err(ServiceError::Internal(format!(
                "route {:?} was not authenticated",
                req.match_pattern()
            ))
            .into()),
        })
    }
}

/// What one operation needs: a scope, and what the request counts against.
#[derive(Debug, Clone, Copy)]
#[must_use = "an AuthCheck does nothing until Auth::check runs it"]
pub struct AuthCheck {
    scope: Scope,
    /// The session this operation touches; its own token may do it when `token_allowed`.
    session: Option<SessionId>,
    token_allowed: bool,
    user: Option<UserId>,
    agent: Option<AgentId>,
    /// A key bound to an agent may do this with this scope instead (the service checks that
    /// the session is its agent's).
    agent_scope: Option<Scope>,
}

impl AuthCheck {
    /// An operation an API key with `scope` may do (and the open mode).
    pub fn scope(scope: Scope) -> Self {
        Self {
            scope,
            session: None,
            token_allowed: false,
            user: None,
            agent: None,
            agent_scope: None,
        }
    }

    /// The operation touches this session: it counts against the session's rate limit.
    pub fn session(mut self, id: SessionId) -> Self {
        self.session = Some(id);
        self
    }

    /// An operation on one session that a key with `scope` may do, and so may the session's
    /// own token (what a chat page does: read, send, renew, heartbeat, end).
    pub fn own_session(scope: Scope, id: SessionId) -> Self {
        Self {
            token_allowed: true,
            ..Self::scope(scope).session(id)
        }
    }

    /// The operation acts for this agent (its feed): a key bound to another agent is refused,
    /// and the request counts against the agent's limit.
    pub fn agent(mut self, agent: AgentId) -> Self {
        self.agent = Some(agent);
        self
    }

    /// A key bound to an agent may do this with `scope` (an agent runtime on its own
    /// sessions), as an unbound key may with the check's scope.
    pub fn or_agent_with(mut self, scope: Scope) -> Self {
        self.agent_scope = Some(scope);
        self
    }

    /// The request names this user and agent (a create): they count against their limits.
    pub fn on_behalf_of(mut self, user: UserId, agent: AgentId) -> Self {
        self.user = Some(user);
        self.agent = Some(agent);
        self
    }
}

impl Auth {
    /// Runs the check: the scope (or the session token), then the rate limits. Returns the
    /// caller for the service, which applies the checks that need stored data.
    pub fn check(self, check: AuthCheck) -> Result<Caller, ApiError> {
        permitted(&self.caller, &check).map_err(ServiceError::Forbidden)?;
        let keys = match &self.caller {
            Caller::SessionToken {
                user_id, agent_id, ..
            } => RateKeys {
                session: check.session,
                user: Some(*user_id),
                agent: Some(*agent_id),
            },
            // An agent runtime's key counts against its agent, not against the sessions it
            // answers in: its replies must not use up the user's per-session quota, and a key
            // bound to another agent cannot spend a session's quota on calls it will be
            // refused.
            Caller::Key {
                agent_id: Some(bound),
                ..
            } => RateKeys {
                session: None,
                user: check.user,
                agent: Some(*bound),
            },
            _ => RateKeys {
                session: check.session,
                user: check.user,
                agent: check.agent,
            },
        };
        let state = self
            .req
            .app_data::<web::Data<AppState>>()
            .ok_or_else(|| ServiceError::Internal("no app state".to_owned()))?;
        match state.limits.check(keys) {
            Ok(applied) => {
                if let Some(info) = applied {
                    self.req.extensions_mut().insert(AppliedLimit(info));
                }
                Ok(self.caller)
            }
            Err(limited) => {
                state.metrics.rate_limited.inc();
                self.req.extensions_mut().insert(AppliedLimit(limited.info));
                Err(ApiError::RateLimited(limited))
            }
        }
    }
}

/// The scope and token rules of one check, and the agent a request names (checked before it
/// counts against that agent's limit); the message says what was missing.
fn permitted(caller: &Caller, check: &AuthCheck) -> Result<(), String> {
    if let Some(agent) = check.agent {
        caller.may_act_for_agent(agent).map_err(|e| e.0)?;
    }
    match caller {
        Caller::Open => Ok(()),
        Caller::Key { scopes, .. } if scopes.contains(check.scope) => Ok(()),
        Caller::Key {
            scopes,
            agent_id: Some(_),
            ..
        } if check.agent_scope.is_some_and(|s| scopes.contains(s)) => Ok(()),
        Caller::Key { .. } => Err(format!("This key lacks the scope `{}`", check.scope)),
        Caller::SessionToken { session_id, .. } => match check.session {
            Some(target) if check.token_allowed && target == *session_id => Ok(()),
            Some(target) if check.token_allowed => Err(format!(
                "This session token opens its own session only, not {target}"
            )),
            _ => Err(format!(
                "A session token cannot do this; it needs an API key with the scope `{}`",
                check.scope
            )),
        },
    }
}
