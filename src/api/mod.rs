//! HTTP: routes, request/response DTOs, extractors and the mapping of errors to status codes.
//! Handlers are thin: extract (parsing and validating), call one service function, shape the
//! response.

pub mod agents;
pub mod auth;
pub mod error;
pub mod events;
pub mod extract;
pub mod health;
pub mod keys;
pub mod lifecycle;
pub mod messages;
pub mod metrics;
pub mod participants;
pub mod routes;
pub mod sessions;

use actix_web::HttpResponse;
use serde::Serialize;
use utoipa::ToSchema;

pub use error::ApiError;
pub use routes::routes;

/// A 201 for a keyed POST; a replay of an earlier request says so in `Idempotent-Replayed`.
fn created(replayed: bool, body: impl Serialize) -> HttpResponse {
    let mut response = HttpResponse::Created();
    if replayed {
        response.insert_header(("Idempotent-Replayed", "true"));
    }
    response.json(body)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeletedResponse {
    #[schema(example = true)]
    pub success: bool,
    #[schema(example = "Session 3c90c3cc-0d44-4b50-8888-8dd25736052a deleted successfully")]
    pub message: String,
    /// `{success, message}` again: the ElizaOS api-client returns the `data` of any body that
    /// has a `success` key.
    pub data: Deleted,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Deleted {
    pub success: bool,
    pub message: String,
}

impl DeletedResponse {
    pub fn new(message: String) -> Self {
        Self {
            success: true,
            data: Deleted {
                success: true,
                message: message.clone(),
            },
            message,
        }
    }
}
