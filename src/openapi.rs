//! The OpenAPI document, built from the handlers' doc comments and annotations.

use serde_json::Value;
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
    components(schemas(messages::CursorParam)),
    tags(
        (name = "sessions", description = "Session lifecycle and the timeout engine"),
        (name = "messages", description = "Messages within a session, with exact cursors"),
        (name = "agents", description = "Agents and their timeout defaults"),
        (name = "health", description = "Health and statistics"),
    )
)]
pub struct ApiDoc;

/// The OpenAPI document as served at `/openapi.json` and printed by `agent-sessions openapi`.
pub fn document() -> Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    fix_link_field_names(&mut doc);
    doc
}

/// utoipa 5 serializes response links with snake_case field names (`operation_id`); OpenAPI
/// (and every tool that follows links) wants `operationId`, `operationRef`, `requestBody`.
fn fix_link_field_names(doc: &mut Value) {
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    let links = paths
        .values_mut()
        .filter_map(Value::as_object_mut)
        .flat_map(|item| item.values_mut())
        .filter_map(|op| op.get_mut("responses").and_then(Value::as_object_mut))
        .flat_map(|responses| responses.values_mut())
        .filter_map(|response| response.get_mut("links").and_then(Value::as_object_mut))
        .flat_map(|links| links.values_mut())
        .filter_map(Value::as_object_mut);
    for link in links {
        for (from, to) in [
            ("operation_id", "operationId"),
            ("operation_ref", "operationRef"),
            ("request_body", "requestBody"),
        ] {
            if let Some(v) = link.remove(from) {
                link.insert(to.to_owned(), v);
            }
        }
    }
}
