//! `/api/agents`: agents own the agent level of the timeout hierarchy.

use actix_web::{delete, get, put, web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use validator::Validate;

use crate::api::auth::{Auth, AuthCheck};
use crate::api::error::{ApiError, AuthErrors, ErrorBody, JsonWriteErrors, ServerErrors};
use crate::api::extract::{self, ApiJson};
use crate::api::DeletedResponse;
use crate::clock::to_rfc3339;
use crate::domain::{Agent, AgentId, Caller, Scope};
use crate::service::agents::{self as service, AgentInput};
use crate::service::ServiceError;
use crate::state::AppState;
use crate::timeout::{ConfigSource, EffectiveConfig, PartialTimeoutConfig, TimeoutConfig};
use crate::{json, validation};

const NAME_MAX_CHARS: u64 = 200;

#[derive(Debug, Default, Deserialize, ToSchema, Validate)]
#[serde(rename_all = "camelCase")]
pub struct PutAgentRequest {
    /// Display name (≤ 200 characters, no NUL; blank means none).
    #[serde(default)]
    #[schema(example = "Support bot", max_length = 200, pattern = "^[^\\u0000]*$")]
    #[validate(
        length(max = NAME_MAX_CHARS, code = "chars"),
        custom(function = "validation::text")
    )]
    pub name: Option<String>,
    /// The agent's overrides of the global timeout config; fields left out inherit it.
    #[serde(default, deserialize_with = "json::object")]
    #[validate(nested)]
    pub timeout_config: Option<PartialTimeoutConfig>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentResponse {
    pub agent_id: AgentId,
    pub name: Option<String>,
    /// The agent's own overrides (only the fields it sets).
    pub timeout_config: PartialTimeoutConfig,
    /// What a new session of this agent gets without session overrides.
    pub effective_timeout_config: TimeoutConfig,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
}

impl AgentResponse {
    fn new(agent: &Agent, global: TimeoutConfig) -> Self {
        Self {
            agent_id: agent.id,
            name: agent.name.clone(),
            timeout_config: agent.timeout_config,
            effective_timeout_config: EffectiveConfig::global(global)
                .overridden(&agent.timeout_config, ConfigSource::Agent)
                .config,
            created_at: to_rfc3339(agent.created_at),
            updated_at: to_rfc3339(agent.updated_at),
        }
    }
}

/// `agents:manage`, and a key bound to an agent manages that agent only.
fn for_agent(auth: Auth, id: AgentId) -> Result<Caller, ApiError> {
    let caller = auth.check(AuthCheck::scope(Scope::AgentsManage))?;
    caller.may_act_for_agent(id).map_err(ServiceError::from)?;
    Ok(caller)
}

/// Register (201) or replace (200) an agent. PUT replaces: fields left out are cleared.
///
/// **Auth:** Needs `agents:manage`; a key bound to an agent manages that agent only.
#[utoipa::path(
    operation_id = "putAgent", tag = "agents",
    request_body = Option<PutAgentRequest>,
    params(("agentId" = AgentId, Path, description = "Agent id")),
    responses(
        (status = 200, description = "Agent updated", body = AgentResponse),
        (status = 201, description = "Agent created", body = AgentResponse,
            links(
                ("GetAgent" = (operation_id = "getAgent", parameters(("agentId" = "$response.body#/agentId")))),
                ("DeleteAgent" = (operation_id = "deleteAgent", parameters(("agentId" = "$response.body#/agentId"))))
            )
        ),
        (status = 400, description = "Invalid input (VALIDATION_ERROR)", body = ErrorBody),
        JsonWriteErrors,
        AuthErrors,
        ServerErrors,
    )
)]
#[put("/api/agents/{agentId}")]
pub async fn put(
    state: web::Data<AppState>,
    auth: Auth,
    id: AgentId,
    ApiJson(body, _): ApiJson<PutAgentRequest>,
) -> Result<HttpResponse, ApiError> {
    for_agent(auth, id)?;
    let input = AgentInput {
        id,
        name: body
            .name
            .map(|n| n.trim().to_owned())
            .filter(|n| !n.is_empty()),
        timeout_config: body.timeout_config.unwrap_or_default(),
    };
    let (agent, created) = service::put(&state, input).await?;
    let mut response = if created {
        HttpResponse::Created()
    } else {
        HttpResponse::Ok()
    };
    Ok(response.json(AgentResponse::new(&agent, state.settings.timeouts)))
}

/// Get an agent.
///
/// **Auth:** Needs `agents:manage`; a key bound to an agent reads that agent only.
#[utoipa::path(
    operation_id = "getAgent", tag = "agents",
    params(("agentId" = AgentId, Path, description = "Agent id")),
    responses(
        (status = 200, description = "The agent", body = AgentResponse),
        (status = 400, description = "Malformed id (VALIDATION_ERROR)", body = ErrorBody),
        (status = 404, description = "Unknown (AGENT_NOT_FOUND)", body = ErrorBody),
        AuthErrors,
        ServerErrors,
    )
)]
#[get("/api/agents/{agentId}")]
pub async fn get(
    state: web::Data<AppState>,
    auth: Auth,
    id: AgentId,
) -> Result<HttpResponse, ApiError> {
    for_agent(auth, id)?;
    let agent = service::get(&state, id).await?;
    Ok(HttpResponse::Ok().json(AgentResponse::new(&agent, state.settings.timeouts)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListAgentsParams {
    /// 1–100, default 50.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
    /// Default 0.
    #[param(value_type = Option<i64>, minimum = 0)]
    pub offset: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AgentListResponse {
    /// Oldest first.
    pub agents: Vec<AgentResponse>,
    pub total: i64,
    pub limit: i64,
    pub offset: i64,
}

/// List agents, oldest first.
///
/// **Auth:** Needs `agents:manage` and a key not bound to an agent.
#[utoipa::path(
    operation_id = "listAgents", tag = "agents",
    params(ListAgentsParams),
    responses(
        (status = 200, description = "A page of agents", body = AgentListResponse),
        (status = 400, description = "Invalid paging (VALIDATION_ERROR)", body = ErrorBody),
        AuthErrors,
        ServerErrors,
    )
)]
#[get("/api/agents")]
pub async fn list(
    state: web::Data<AppState>,
    auth: Auth,
    params: web::Query<ListAgentsParams>,
) -> Result<HttpResponse, ApiError> {
    auth.check(AuthCheck::scope(Scope::AgentsManage))?
        .unbound("list other agents")
        .map_err(ServiceError::from)?;
    let limit = extract::int_param("limit", params.limit.as_deref(), 50, (1, 100))?;
    let offset = extract::int_param("offset", params.offset.as_deref(), 0, (0, i64::MAX))?;
    let page = service::list(&state, limit, offset).await?;
    let global = state.settings.timeouts;
    Ok(HttpResponse::Ok().json(AgentListResponse {
        agents: page
            .agents
            .iter()
            .map(|a| AgentResponse::new(a, global))
            .collect(),
        total: page.total,
        limit,
        offset,
    }))
}

/// Delete an agent. Its active sessions end at once (they answer 410 until purged).
///
/// **Auth:** Needs `agents:manage`; a key bound to an agent manages that agent only.
#[utoipa::path(
    operation_id = "deleteAgent", tag = "agents",
    params(("agentId" = AgentId, Path, description = "Agent id")),
    responses(
        (status = 200, description = "Deleted", body = DeletedResponse),
        (status = 400, description = "Malformed id (VALIDATION_ERROR)", body = ErrorBody),
        (status = 404, description = "Unknown (AGENT_NOT_FOUND)", body = ErrorBody),
        AuthErrors,
        ServerErrors,
    )
)]
#[delete("/api/agents/{agentId}")]
pub async fn delete(
    state: web::Data<AppState>,
    auth: Auth,
    id: AgentId,
) -> Result<HttpResponse, ApiError> {
    for_agent(auth, id)?;
    let ended = service::delete(&state, id).await?;
    Ok(HttpResponse::Ok().json(DeletedResponse::new(format!(
        "Agent {id} deleted successfully; {ended} active session(s) ended"
    ))))
}
