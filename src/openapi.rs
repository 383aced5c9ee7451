//! The OpenAPI document, built from the handlers' doc comments and annotations.

use actix_web::App;
use serde_json::Value;
use utoipa::OpenApi;
use utoipa_actix_web::AppExt;

use crate::api::{self, messages};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "agent-sessions",
        description = "Durable sessions for conversational agents, speaking the ElizaOS Sessions API.\n\nErrors carry `{error: {code, message, details?}, code, message, details?}`.",
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

/// The document: the info, tags and extra schemas above, plus every operation of the route
/// table ([`api::routes`]) with the schemas it uses.
pub fn api_doc() -> utoipa::openapi::OpenApi {
    App::new()
        .into_utoipa_app()
        .openapi(ApiDoc::openapi())
        .configure(api::routes)
        .split_for_parts()
        .1
}

/// The OpenAPI document as served at `/openapi.json` and printed by `agent-sessions openapi`.
pub fn document() -> Value {
    to_json(&api_doc())
}

/// The document as JSON. Built at start-up; a document that does not serialize is a bug, so
/// it stops the program.
pub fn to_json(api: &utoipa::openapi::OpenApi) -> Value {
    let mut doc = serde_json::to_value(api).expect("the OpenAPI document serializes");
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
