use actix_web::{get, web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use crate::api::auth::{Auth, AuthCheck};
use crate::api::error::{ApiError, AuthErrors};
use crate::clock::to_rfc3339;
use crate::domain::Scope;
use crate::service::health;
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    Healthy,
    Unhealthy,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthResponse {
    pub status: HealthStatus,
    pub active_sessions: i64,
    #[schema(format = DateTime)]
    pub timestamp: String,
    /// Active sessions within their warning threshold of expiry.
    pub expiring_soon: i64,
    /// Sessions that are over (expired or ended) and not yet purged.
    pub invalid_sessions: i64,
    /// Seconds since the service started.
    pub uptime: i64,
}

/// Health of the sessions service and its database.
///
/// **Auth:** Needs `sessions:health`.
#[utoipa::path(
    operation_id = "getSessionsHealth", tag = "health",
    responses(
        (status = 200, description = "Healthy", body = HealthResponse),
        (status = 503, description = "The database cannot be reached", body = HealthResponse),
        AuthErrors,
    )
)]
#[get("/api/messaging/sessions/health")]
pub async fn sessions_health(
    state: web::Data<AppState>,
    auth: Auth,
) -> Result<HttpResponse, ApiError> {
    auth.check(AuthCheck::scope(Scope::SessionsHealth))?;
    Ok(match health::report(&state).await {
        Ok(r) => HttpResponse::Ok().json(HealthResponse {
            status: HealthStatus::Healthy,
            active_sessions: r.active_sessions,
            timestamp: to_rfc3339(r.now),
            expiring_soon: r.expiring_soon,
            invalid_sessions: r.invalid_sessions,
            uptime: r.uptime_secs,
        }),
        Err(e) => {
            tracing::warn!(error = ?e, "health check failed");
            let now = state.now();
            HttpResponse::ServiceUnavailable().json(HealthResponse {
                status: HealthStatus::Unhealthy,
                active_sessions: 0,
                timestamp: to_rfc3339(now),
                expiring_soon: 0,
                invalid_sessions: 0,
                uptime: (now - state.started_at).max(0) / 1000,
            })
        }
    })
}
