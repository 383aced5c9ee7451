//! HTTP: routes, DTOs and validation. Handlers are thin: validate, call one service function,
//! shape the response.

pub mod agents;
pub mod extract;
pub mod health;
pub mod messages;
pub mod sessions;

use actix_web::{web, HttpResponse, Resource};

use crate::error::ApiError;

async fn method_not_allowed() -> Result<HttpResponse, ApiError> {
    Err(ApiError::MethodNotAllowed)
}

pub async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound("No such route".to_owned()))
}

/// A resource whose unmatched methods answer a JSON 405.
fn resource(path: &str) -> Resource {
    web::resource(path).default_service(web::to(method_not_allowed))
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    const SESSION: &str = "/api/messaging/sessions/{sessionId}";
    cfg
        // Registered before `{sessionId}` so that "health" is not taken for an id.
        .service(
            resource("/api/messaging/sessions/health")
                .route(web::get().to(health::sessions_health)),
        )
        .service(
            resource("/api/messaging/sessions")
                .route(web::post().to(sessions::create))
                .route(web::get().to(sessions::list)),
        )
        .service(
            resource(SESSION)
                .route(web::get().to(sessions::get))
                .route(web::delete().to(sessions::delete)),
        )
        .service(
            resource(&format!("{SESSION}/messages"))
                .route(web::post().to(messages::send))
                .route(web::get().to(messages::list)),
        )
        .service(resource(&format!("{SESSION}/renew")).route(web::post().to(sessions::renew)))
        .service(
            resource(&format!("{SESSION}/heartbeat")).route(web::post().to(sessions::heartbeat)),
        )
        .service(
            resource(&format!("{SESSION}/timeout"))
                .route(web::patch().to(sessions::update_timeout)),
        )
        .service(resource("/api/agents").route(web::get().to(agents::list)))
        .service(
            resource("/api/agents/{agentId}")
                .route(web::put().to(agents::put))
                .route(web::get().to(agents::get))
                .route(web::delete().to(agents::delete)),
        );
}
