//! HTTP: routes, DTOs and validation. Handlers are thin: validate, call one service function,
//! shape the response.

pub mod agents;
pub mod extract;
pub mod health;
pub mod messages;
pub mod sessions;

use actix_web::{web, HttpResponse, Resource};

use crate::error::ApiError;

pub async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound("No such route".to_owned()))
}

/// A resource whose other methods answer a JSON 405 with an `Allow` header.
fn resource(path: &str, allow: &'static str) -> Resource {
    web::resource(path).default_service(web::to(move || async move {
        Err::<HttpResponse, _>(ApiError::MethodNotAllowed(allow))
    }))
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    const SESSION: &str = "/api/messaging/sessions/{sessionId}";
    cfg
        // Registered before `{sessionId}` so that "health" is not taken for an id.
        .service(
            resource("/api/messaging/sessions/health", "GET")
                .route(web::get().to(health::sessions_health)),
        )
        .service(
            resource("/api/messaging/sessions", "GET, POST")
                .route(web::post().to(sessions::create))
                .route(web::get().to(sessions::list)),
        )
        .service(
            resource(SESSION, "GET, DELETE")
                .route(web::get().to(sessions::get))
                .route(web::delete().to(sessions::delete)),
        )
        .service(
            resource(&format!("{SESSION}/messages"), "GET, POST")
                .route(web::post().to(messages::send))
                .route(web::get().to(messages::list)),
        )
        .service(
            resource(&format!("{SESSION}/renew"), "POST").route(web::post().to(sessions::renew)),
        )
        .service(
            resource(&format!("{SESSION}/heartbeat"), "POST")
                .route(web::post().to(sessions::heartbeat)),
        )
        .service(
            resource(&format!("{SESSION}/timeout"), "PATCH")
                .route(web::patch().to(sessions::update_timeout)),
        )
        .service(resource("/api/agents", "GET").route(web::get().to(agents::list)))
        .service(
            resource("/api/agents/{agentId}", "GET, PUT, DELETE")
                .route(web::put().to(agents::put))
                .route(web::get().to(agents::get))
                .route(web::delete().to(agents::delete)),
        );
}
