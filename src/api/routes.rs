//! The route table: every operation is registered once, here. Each handler's path and method
//! come from its own `#[actix_web::get(..)]`-style attribute, and `utoipa-actix-web` collects
//! the same handlers into the OpenAPI document, so the router and the document cannot
//! disagree. Methods a path does not serve answer a JSON 405 whose `Allow` header is read from
//! that document too.

use actix_web::dev::ResourceDef;
use actix_web::{web, HttpRequest, HttpResponse};
use utoipa::openapi::path::PathItem;
use utoipa::openapi::OpenApi;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::api::error::ApiError;
use crate::api::{
    agents, events, health, keys, lifecycle, messages, metrics, participants, sessions,
};

const HEALTH: &str = "/api/messaging/sessions/health";

pub fn routes(cfg: &mut ServiceConfig) {
    cfg
        // Before `{sessionId}`, so that "health" is not taken for an id: GET is the health
        // check, and every other method must get the 405 rather than reach the session
        // handlers (`DELETE .../health` is not a malformed session id).
        .service(health::livez)
        .service(health::readyz)
        .service(metrics::scrape)
        .service(health::sessions_health)
        .route(HEALTH, web::route().to(fallback))
        .service(sessions::create)
        .service(sessions::list)
        .service(sessions::get)
        .service(sessions::delete)
        .service(sessions::renew)
        .service(sessions::heartbeat)
        .service(sessions::update_timeout)
        .service(sessions::issue_token)
        .service(lifecycle::update)
        .service(lifecycle::pause)
        .service(lifecycle::resume)
        .service(lifecycle::close)
        .service(lifecycle::update_state)
        .service(participants::add)
        .service(participants::remove)
        .service(participants::remove_one)
        .service(messages::send)
        .service(messages::list)
        .service(messages::transcript)
        .service(events::watch)
        .service(events::stream)
        .service(agents::put)
        .service(agents::get)
        .service(agents::list)
        .service(agents::delete)
        .service(events::watch_agent)
        .service(events::stream_agent)
        .service(keys::create)
        .service(keys::list)
        .service(keys::revoke);
}

/// The documented paths with the methods each allows, most specific first (a literal segment
/// wins over a `{parameter}`, as in the router).
#[derive(Debug)]
pub struct MethodTable {
    paths: Vec<(ResourceDef, String)>,
}

fn allow(item: &PathItem) -> String {
    [
        ("GET", item.get.is_some()),
        ("PUT", item.put.is_some()),
        ("POST", item.post.is_some()),
        ("DELETE", item.delete.is_some()),
        ("PATCH", item.patch.is_some()),
    ]
    .into_iter()
    .filter_map(|(method, served)| served.then_some(method))
    .collect::<Vec<_>>()
    .join(", ")
}

impl MethodTable {
    pub fn new(doc: &OpenApi) -> Self {
        let mut paths: Vec<(ResourceDef, String)> = doc
            .paths
            .paths
            .iter()
            .map(|(path, item)| (ResourceDef::new(path.as_str()), allow(item)))
            .collect();
        paths.sort_by_key(|(def, _)| def.pattern().map_or(0, |p| p.matches('{').count()));
        Self { paths }
    }

    /// The methods the resource at `path` allows, if it is one of ours.
    pub fn allowed(&self, path: &str) -> Option<&str> {
        self.paths
            .iter()
            .find(|(def, _)| def.is_match(path))
            .map(|(_, allow)| allow.as_str())
    }
}

/// The app's default service: a known path with another method is a 405, anything else a 404.
pub async fn fallback(
    req: HttpRequest,
    table: web::Data<MethodTable>,
) -> Result<HttpResponse, ApiError> {
    Err(match table.allowed(req.path()) {
        Some(allow) => ApiError::MethodNotAllowed(allow.to_owned()),
        None => ApiError::NotFound("No such route".to_owned()),
    })
}
