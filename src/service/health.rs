use crate::clock::Millis;
use crate::db::repo::sessions as repo;
use crate::domain::{SessionFilter, StatusFilter};
use crate::service::ServiceResult;
use crate::state::AppState;

#[derive(Debug, Clone)]
pub struct HealthReport {
    pub active_sessions: i64,
    pub expiring_soon: i64,
    /// Sessions that are over (expired or ended) but not yet purged.
    pub invalid_sessions: i64,
    pub now: Millis,
    pub uptime_secs: i64,
}

pub async fn report(state: &AppState) -> ServiceResult<HealthReport> {
    let now = state.now();
    let uptime_secs = (now - state.started_at).max(0) / 1000;
    state
        .db_probe(move |conn| {
            let all = SessionFilter::default();
            let active_sessions = repo::count(conn, &all, StatusFilter::Active, now)?;
            Ok(HealthReport {
                active_sessions,
                expiring_soon: repo::count_expiring_soon(conn, now)?,
                invalid_sessions: repo::count(conn, &all, StatusFilter::Expired, now)?,
                now,
                uptime_secs,
            })
        })
        .await
}

/// Sessions active now: one index range count (a metric read at every scrape).
pub async fn active_sessions(state: &AppState) -> ServiceResult<i64> {
    let now = state.now();
    state
        .db_probe(move |conn| {
            Ok(repo::count(
                conn,
                &SessionFilter::default(),
                StatusFilter::Active,
                now,
            )?)
        })
        .await
}
