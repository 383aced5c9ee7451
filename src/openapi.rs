//! The OpenAPI document, built from the handlers' doc comments and annotations.

use actix_web::App;
use serde_json::Value;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::SecurityRequirement;
use utoipa::{Modify, OpenApi};
use utoipa_actix_web::AppExt;

use crate::api::{self, messages};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "agent-sessions",
        description = "Durable sessions for conversational agents, speaking the ElizaOS Sessions API.\n\nErrors carry `{error: {code, message, details?}, code, message, details?}`.\n\n**Authentication.** Send an API key or a session token as `Authorization: Bearer <secret>` or as `X-API-KEY: <secret>` (the ElizaOS client's `apiKey`). API keys carry scopes (`sessions:create`, `sessions:read`, `sessions:write`, `sessions:manage`, `sessions:health`, `agents:manage`, `keys:manage`, `metrics:read`) and may be bound to one agent; each operation says what it needs. A session token (`sessionToken`, from create) opens its own session only. While no key is configured, a server on a loopback address accepts requests without credentials. Rate limits answer 429 with `Retry-After` and `RateLimit-*` headers.",
    ),
    modifiers(&Security),
    components(schemas(messages::CursorParam)),
    tags(
        (name = "sessions", description = "Session lifecycle and the timeout engine"),
        (name = "messages", description = "Messages within a session, with exact cursors"),
        (name = "agents", description = "Agents and their timeout defaults"),
        (name = "health", description = "Health and statistics"),
        (name = "keys", description = "API keys (scopes, agent binding, revocation)"),
        (name = "events", description = "A session's durable event log, long-polled"),
    )
)]
pub struct ApiDoc;

/// The two ways to present a credential; every operation accepts either.
struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearerAuth",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API key (`ask_...`) or a session token (`ast_...`)",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "apiKeyHeader",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-API-KEY",
                "An API key or a session token (the ElizaOS client's header)",
            ))),
        );
        openapi.security = Some(vec![
            SecurityRequirement::new("bearerAuth", Vec::<String>::new()),
            SecurityRequirement::new("apiKeyHeader", Vec::<String>::new()),
        ]);
    }
}

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
