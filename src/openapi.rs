//! The OpenAPI document, built from the handlers' doc comments and annotations.

use utoipa::OpenApi;

use crate::api::{agents, health, messages, sessions};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "agent-sessions",
        description = "Durable sessions for conversational agents, speaking the ElizaOS Sessions API.\n\nErrors carry `{error: {code, message, details?}, code, message, details?}`.",
    ),
    paths(
        sessions::create, sessions::list, sessions::get, sessions::delete,
        sessions::renew, sessions::heartbeat, sessions::update_timeout,
        messages::send, messages::list,
        health::sessions_health,
        agents::put, agents::get, agents::list, agents::delete,
    ),
    tags(
        (name = "sessions", description = "Session lifecycle and the timeout engine"),
        (name = "messages", description = "Messages within a session, with exact cursors"),
        (name = "agents", description = "Agents and their timeout defaults"),
        (name = "health", description = "Health and statistics"),
    )
)]
pub struct ApiDoc;

pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}
