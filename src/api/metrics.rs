use actix_web::{get, web, HttpResponse};

use crate::api::auth::{Auth, AuthCheck};
use crate::api::error::{ApiError, AuthErrors};
use crate::domain::Scope;
use crate::service::health;
use crate::state::AppState;

/// Metrics in the Prometheus text format: requests by route and status, latency histograms,
/// active sessions, renewals and expiries, reaper passes, the connection pool, rate-limit
/// refusals, open streams, and on SQLite the group commit's queue and batch sizes.
///
/// **Auth:** Needs `metrics:read` (an API key not bound to an agent: the numbers are the whole
/// service's). Open like every route while no key is configured.
#[utoipa::path(
    operation_id = "getMetrics", tag = "health",
    responses(
        (status = 200, description = "Prometheus text exposition format", body = String, content_type = "text/plain; version=0.0.4"),
        AuthErrors,
    )
)]
#[get("/metrics")]
pub async fn scrape(state: web::Data<AppState>, auth: Auth) -> Result<HttpResponse, ApiError> {
    let caller = auth.check(AuthCheck::scope(Scope::MetricsRead))?;
    caller
        .unbound("read the service's metrics")
        .map_err(crate::service::ServiceError::from)?;
    let m = &state.metrics;
    // Left as it was when the database is down: the scrape still answers, with the pool
    // gauges telling why.
    let active = health::active_sessions(&state).await;
    if let Ok(active) = active {
        m.active_sessions.set(active);
    }
    let (connections, idle) = state.pool.state();
    m.pool_connections.set(connections.into());
    m.pool_idle.set(idle.into());
    m.pool_waiting.set(state.pool.health().waiting());
    m.open_streams.set(state.streams.open() as i64);
    m.write_queue.set(state.pool.write_queue_depth());
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(m.render()))
}
