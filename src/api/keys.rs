//! `/api/keys`: API key management over HTTP (the CLI's `keys` commands, for operators who
//! cannot reach the database). Only digests are stored; a new key's secret is in the create
//! answer and nowhere else.

use actix_web::{delete, get, post, web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use validator::Validate;

use crate::api::auth::{Auth, AuthCheck};
use crate::api::error::{ApiError, AuthErrors, ErrorBody, JsonWriteErrors, ServerErrors};
use crate::api::extract::ApiJson;
use crate::clock::to_rfc3339;
use crate::db::DbConnection;
use crate::domain::{AgentId, ApiKey, Caller, KeyId, Scope, Scopes};
use crate::service::keys::{self as service, NewKey};
use crate::service::{ServiceError, ServiceResult};
use crate::state::AppState;
use crate::validation;

const NAME_MAX_CHARS: u64 = service::NAME_MAX_CHARS as u64;

#[derive(Debug, Deserialize, ToSchema, Validate)]
#[serde(rename_all = "camelCase")]
pub struct CreateKeyRequest {
    /// At least one; each must be a scope of the key making the request.
    #[schema(min_items = 1, example = json!(["sessions:create"]))]
    #[validate(length(min = 1, code = "at_least_one"))]
    pub scopes: Vec<Scope>,
    /// Bind the key to one agent: it sees only that agent's sessions and writes as the agent.
    #[serde(default)]
    pub agent_id: Option<AgentId>,
    /// A name to recognise the key by (≤ 200 characters, no NUL).
    #[serde(default)]
    #[schema(example = "web chat", max_length = 200, pattern = "^[^\\u0000]*$")]
    #[validate(
        length(max = NAME_MAX_CHARS, code = "chars"),
        custom(function = "validation::text")
    )]
    pub name: Option<String>,
}

/// A key as listed: never its secret.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyResponse {
    pub key_id: KeyId,
    pub name: Option<String>,
    pub scopes: Vec<Scope>,
    pub agent_id: Option<AgentId>,
    #[schema(format = DateTime)]
    pub created_at: String,
    /// Set once the key is revoked.
    #[schema(format = DateTime)]
    pub revoked_at: Option<String>,
}

impl From<&ApiKey> for KeyResponse {
    fn from(k: &ApiKey) -> Self {
        Self {
            key_id: k.id,
            name: k.name.clone(),
            scopes: k.scopes.iter().collect(),
            agent_id: k.agent_id,
            created_at: to_rfc3339(k.created_at),
            revoked_at: k.revoked_at.map(to_rfc3339),
        }
    }
}

/// A new key with its secret.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedKeyResponse {
    #[serde(flatten)]
    pub key: KeyResponse,
    /// The secret: shown this once, only its digest is stored.
    #[schema(example = "ask_0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a6978")]
    pub secret: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KeyListResponse {
    /// Oldest first, revoked ones included.
    pub keys: Vec<KeyResponse>,
}

/// `keys:manage` from a key not bound to an agent (a bound key manages sessions, not keys).
fn key_manager(auth: Auth) -> Result<Caller, ApiError> {
    let caller = auth.check(AuthCheck::scope(Scope::KeysManage))?;
    caller.unbound("manage keys").map_err(ServiceError::from)?;
    Ok(caller)
}

/// Runs a change to the keys, then reloads this instance's key snapshot on the same
/// connection: the change holds here at once (other instances reload within a second).
async fn changing_keys<T: Send + 'static>(
    state: &AppState,
    change: impl FnOnce(&mut DbConnection) -> ServiceResult<T> + Send + 'static,
) -> ServiceResult<T> {
    let auth = state.auth.clone();
    state
        .db(move |conn| {
            let changed = change(conn)?;
            auth.refresh_on(conn)?;
            Ok(changed)
        })
        .await
}

/// Create an API key. Its secret is in this answer only.
///
/// A key cannot grant more than it holds: every scope asked for must be one of the calling
/// key's scopes.
///
/// **Auth:** Needs `keys:manage` and a key not bound to an agent.
#[utoipa::path(
    operation_id = "createApiKey", tag = "keys",
    request_body = CreateKeyRequest,
    responses(
        (status = 201, description = "Created; `secret` is shown this once", body = CreatedKeyResponse),
        (status = 400, description = "Invalid input (VALIDATION_ERROR)", body = ErrorBody),
        JsonWriteErrors,
        AuthErrors,
        ServerErrors,
    )
)]
#[post("/api/keys")]
pub async fn create(
    state: web::Data<AppState>,
    auth: Auth,
    ApiJson(body, _): ApiJson<CreateKeyRequest>,
) -> Result<HttpResponse, ApiError> {
    let caller = key_manager(auth)?;
    caller.may_grant(&body.scopes).map_err(ServiceError::from)?;
    let input = NewKey {
        // Validated above: only trimmed here.
        name: service::key_name(body.name).map_err(|e| ApiError::invalid("name", e.to_string()))?,
        scopes: Scopes::new(body.scopes),
        agent_id: body.agent_id,
    };
    let now = state.now();
    let issued = changing_keys(&state, move |conn| service::create(conn, input, now)).await?;
    Ok(HttpResponse::Created().json(CreatedKeyResponse {
        key: KeyResponse::from(&issued.key),
        secret: issued.secret.expose().to_owned(),
    }))
}

/// List API keys (never their secrets).
///
/// **Auth:** Needs `keys:manage` and a key not bound to an agent.
#[utoipa::path(
    operation_id = "listApiKeys", tag = "keys",
    responses(
        (status = 200, description = "Every key, oldest first", body = KeyListResponse),
        AuthErrors,
        ServerErrors,
    )
)]
#[get("/api/keys")]
pub async fn list(state: web::Data<AppState>, auth: Auth) -> Result<HttpResponse, ApiError> {
    key_manager(auth)?;
    let keys = state.db(service::list).await?;
    Ok(HttpResponse::Ok().json(KeyListResponse {
        keys: keys.iter().map(KeyResponse::from).collect(),
    }))
}

/// Revoke an API key: this instance refuses it at once, every other within a second.
/// Revoking a revoked key answers it unchanged.
///
/// **Auth:** Needs `keys:manage` and a key not bound to an agent.
#[utoipa::path(
    operation_id = "revokeApiKey", tag = "keys",
    params(("keyId" = KeyId, Path, description = "Key id")),
    responses(
        (status = 200, description = "The key, revoked", body = KeyResponse),
        (status = 400, description = "Malformed id (VALIDATION_ERROR)", body = ErrorBody),
        (status = 404, description = "Unknown (KEY_NOT_FOUND)", body = ErrorBody),
        AuthErrors,
        ServerErrors,
    )
)]
#[delete("/api/keys/{keyId}")]
pub async fn revoke(
    state: web::Data<AppState>,
    auth: Auth,
    id: KeyId,
) -> Result<HttpResponse, ApiError> {
    key_manager(auth)?;
    let now = state.now();
    let key = changing_keys(&state, move |conn| service::revoke(conn, id, now)).await?;
    Ok(HttpResponse::Ok().json(KeyResponse::from(&key)))
}
