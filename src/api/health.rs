use actix_web::{get, web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use crate::api::auth::{Auth, AuthCheck};
use crate::api::error::{ApiError, AuthErrors};
use crate::clock::to_rfc3339;
use crate::db;
use crate::domain::Scope;
use crate::service::health;
use crate::service::ServiceError;
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

/// What a probe answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProbeResponse {
    /// `ok`, or why not.
    #[schema(example = "ok")]
    pub status: String,
}

fn probe(ok: bool, status: &str) -> HttpResponse {
    let body = ProbeResponse {
        status: status.to_owned(),
    };
    if ok {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// Liveness: the process is up and serving HTTP. Touches nothing else.
///
/// **Auth:** None: orchestrators probe without credentials.
#[utoipa::path(
    operation_id = "livez", tag = "health",
    security(()),
    responses((status = 200, description = "Alive", body = ProbeResponse))
)]
#[get("/livez")]
pub async fn livez() -> HttpResponse {
    probe(true, "ok")
}

/// Readiness: the database answers and every migration of this version is applied; 503
/// otherwise, so that an orchestrator sends no traffic to an instance that cannot serve it.
///
/// **Auth:** None: orchestrators probe without credentials.
#[utoipa::path(
    operation_id = "readyz", tag = "health",
    security(()),
    responses(
        (status = 200, description = "Ready", body = ProbeResponse),
        (status = 503, description = "The database cannot be reached, or is not migrated", body = ProbeResponse),
    )
)]
#[get("/readyz")]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let checked = state
        .db_probe(|conn| {
            db::has_pending_migrations(conn).map_err(|e| ServiceError::Unavailable(e.to_string()))
        })
        .await;
    match checked {
        Ok(false) => probe(true, "ok"),
        Ok(true) => probe(false, "database not migrated"),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            probe(false, "database unavailable")
        }
    }
}
