//! Builds the HTTP server, the shared state and the reaper from settings.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServerHandle, ServiceRequest, ServiceResponse};
use actix_web::middleware::{from_fn, Condition, Next};
use actix_web::{web, App, HttpServer};
use serde_json::json;
use tokio::sync::watch;
use tracing::Instrument;

use crate::api::routes::{self, MethodTable};
use crate::api::ApiError;
use crate::auth::Authenticator;
use crate::clock::Clock;
use crate::config::Settings;
use crate::db::{self, DbError, DbPool};
use crate::events::{EventBus, StreamSlots};
use crate::metrics::Metrics;
use crate::rate_limit::{self, RateLimits};
use crate::reaper::Reaper;
use crate::service::ServiceError;
use crate::state::AppState;
use crate::{api, openapi};
use utoipa_actix_web::AppExt;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Database(#[from] DbError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("cannot read the API keys: {0}")]
    Keys(#[from] ServiceError),
    #[error(
        "refusing to serve on {bind} without credentials: no API key is configured. Create one \
         (`agent-sessions keys create --scope ...`) or set AGENT_SESSIONS_API_KEY, bind to a \
         loopback address, or pass --insecure-no-auth to serve anyone who can reach the port"
    )]
    NoCredentials { bind: std::net::SocketAddr },
}

/// How often idle rate-limit entries are dropped.
const EVICT_EVERY: Duration = Duration::from_secs(30);

pub struct Application {
    port: u16,
    server: Server,
    pool: DbPool,
    reaper: Reaper,
    reaper_interval: Duration,
    auth: Arc<Authenticator>,
    limits: Arc<RateLimits>,
    /// Turns true when the service starts to stop: long-polls answer at once, background
    /// tasks finish.
    stopping: watch::Sender<bool>,
    events: Arc<EventBus>,
    /// Set on PostgreSQL: other instances' events arrive through LISTEN on it.
    listen_url: Option<String>,
}

impl Application {
    /// Connects (and migrates) the database and binds the listener; nothing runs until
    /// [`Application::run_until_stopped`]. Bind to port 0 to get a free port (tests).
    pub fn build(settings: Settings, clock: Arc<dyn Clock>) -> Result<Self, StartupError> {
        let pool = db::connect(&settings.database_url, settings.pool_size)?;
        let loopback = settings.bind.ip().is_loopback();
        let auth = Arc::new(Authenticator::new(
            pool.clone(),
            settings.api_key.as_ref(),
            loopback || settings.insecure_no_auth,
        )?);
        if !auth.keys_configured() {
            if !loopback && !settings.insecure_no_auth {
                return Err(StartupError::NoCredentials {
                    bind: settings.bind,
                });
            }
            tracing::warn!(
                bind = %settings.bind,
                "no API key configured: requests without credentials are accepted; create a key \
                 (agent-sessions keys create) before exposing the service"
            );
        }
        let limits = Arc::new(RateLimits::new(settings.rate_limits, clock.clone()));
        let listener = TcpListener::bind(settings.bind).map_err(|source| StartupError::Bind {
            addr: settings.bind.to_string(),
            source,
        })?;
        let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
        let events = Arc::new(EventBus::default());
        let streams = Arc::new(StreamSlots::new(
            settings.max_streams_per_session,
            settings.max_streams_per_credential,
        ));
        let listen_url = (db::Backend::of_url(&settings.database_url) == db::Backend::Postgres)
            .then(|| settings.database_url.clone());
        let (stopping, stop_rx) = watch::channel(false);
        let deadlines = Arc::new(crate::reaper::Deadlines::default());
        let metrics = Arc::new(Metrics::new());
        if pool.backend() == db::Backend::Sqlite {
            let batches = metrics.commit_batch.clone();
            let _ = pool
                .group_commit()?
                .stats()
                .on_batch
                .set(Box::new(move |n| batches.observe(n as f64)));
        }
        let reaper = Reaper::new(
            pool.clone(),
            clock.clone(),
            events.clone(),
            deadlines.clone(),
            settings.reaper_batch_size,
            settings.retention_hours,
            metrics.clone(),
        );
        let reaper_interval = Duration::from_secs(settings.reaper_interval_secs);
        let workers = settings.workers;
        let state = AppState {
            pool: pool.clone(),
            started_at: clock.now_ms(),
            clock,
            settings: Arc::new(settings),
            auth: auth.clone(),
            limits: limits.clone(),
            events: events.clone(),
            streams,
            deadlines,
            metrics,
            stopping: stop_rx,
        };
        let server = serve(listener, state, workers).map_err(|source| StartupError::Bind {
            addr: format!("port {port}"),
            source,
        })?;
        Ok(Self {
            port,
            server,
            pool,
            reaper,
            reaper_interval,
            auth,
            limits,
            stopping,
            events,
            listen_url,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Refuses to serve a chat key that is more than publishable (see [`crate::chat`]).
    pub async fn check_chat_key(&self, chat: &crate::config::ChatSettings) -> Result<(), String> {
        let Some(key) = &chat.key else {
            return Ok(());
        };
        let caller = self
            .auth
            .authenticate(Some(key.as_str()))
            .await
            .map_err(|e| format!("AGENT_SESSIONS_CHAT_KEY: {e}"))?;
        crate::chat::check_publishable(chat, &caller)
    }

    pub fn pool(&self) -> DbPool {
        self.pool.clone()
    }

    pub fn reaper(&self) -> Reaper {
        self.reaper.clone()
    }

    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until SIGINT/SIGTERM (or a handle's stop). On a signal, waiting long-polls
    /// answer at once and in-flight requests drain; then the background tasks stop.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let stop_rx = self.stopping.subscribe();
        let reaper = tokio::spawn(self.reaper.run(self.reaper_interval, stop_rx.clone()));
        let refresher = tokio::spawn(self.auth.run_refresher(stop_rx.clone()));
        let evictor = tokio::spawn(evict_idle_limits(self.limits, stop_rx));
        let signals = tokio::spawn(stop_on_signal(self.server.handle(), self.stopping.clone()));
        let listener = self.listen_url.map(|url| {
            tokio::spawn(crate::events::listen_postgres(
                url,
                self.events,
                self.stopping.subscribe(),
            ))
        });
        let result = self.server.await;
        let _ = self.stopping.send(true);
        signals.abort();
        let _ = tokio::join!(reaper, refresher, evictor);
        if let Some(listener) = listener {
            let _ = listener.await;
        }
        result
    }
}

/// SIGTERM or SIGINT: first tell long-polls to answer (they would hold the drain for the
/// whole shutdown timeout), then stop the server gracefully. Replaces actix's own handling,
/// which only starts the drain.
async fn stop_on_signal(server: ServerHandle, stopping: watch::Sender<bool>) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot listen for SIGTERM/SIGINT");
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::info!("stopping: answering long-polls, draining requests");
    let _ = stopping.send(true);
    server.stop(true).await;
}

/// Drops idle rate-limit entries now and then, so memory follows the active keys.
async fn evict_idle_limits(limits: Arc<RateLimits>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(EVICT_EVERY);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let tracked = limits.evict();
        tracing::debug!(tracked, "evicted idle rate-limit keys");
    }
}

/// CORS for chat pages on other origins: only the configured ones. A request from another
/// origin is not refused (same-origin pages keep working); it just gets no CORS headers, so
/// the browser keeps the answer from the page.
fn cors(origins: &[String]) -> actix_cors::Cors {
    use actix_web::http::header;
    let mut cors = actix_cors::Cors::default()
        .block_on_origin_mismatch(false)
        .allowed_methods(["GET", "POST", "PUT", "PATCH", "DELETE"])
        .allowed_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::ACCEPT,
            header::HeaderName::from_static("x-api-key"),
            header::HeaderName::from_static("idempotency-key"),
            header::HeaderName::from_static("x-debug"),
            header::HeaderName::from_static("last-event-id"),
        ])
        .expose_headers([
            header::RETRY_AFTER,
            header::WWW_AUTHENTICATE,
            header::HeaderName::from_static("ratelimit-limit"),
            header::HeaderName::from_static("ratelimit-remaining"),
            header::HeaderName::from_static("ratelimit-reset"),
            header::HeaderName::from_static("idempotent-replayed"),
        ])
        .max_age(3600);
    for origin in origins {
        cors = if origin == "*" {
            cors.allow_any_origin()
        } else {
            cors.allowed_origin(origin)
        };
    }
    cors
}

fn serve(
    listener: TcpListener,
    state: AppState,
    workers: Option<usize>,
) -> std::io::Result<Server> {
    let body_limit = state.settings.max_body_bytes;
    let state = web::Data::new(state);
    let api = openapi::api_doc();
    let doc = web::Data::new(openapi::to_json(&api));
    let methods = web::Data::new(MethodTable::new(&api));
    let origins = state.settings.cors_origins.clone();
    let mut server = HttpServer::new(move || {
        App::new()
            .into_utoipa_app()
            .configure(api::routes)
            .into_app()
            .app_data(state.clone())
            .app_data(methods.clone())
            .app_data(web::PayloadConfig::new(body_limit))
            .app_data(web::QueryConfig::default().error_handler(|err, _| {
                ApiError::Validation {
                    message: format!("Invalid query string: {err}"),
                    details: json!({ "reason": err.to_string() }),
                }
                .into()
            }))
            .wrap(from_fn(api::auth::authenticate))
            .wrap(from_fn(rate_limit::headers))
            .wrap(from_fn(log_request))
            .wrap(Condition::new(!origins.is_empty(), cors(&origins)))
            // The docs page and the document it reads; the page's assets are compiled in.
            .app_data(doc.clone())
            .route("/openapi.json", web::get().to(serve_openapi))
            .service(web::redirect("/docs", "/docs/"))
            .service(
                utoipa_swagger_ui::SwaggerUi::new("/docs/{_:.*}")
                    .config(utoipa_swagger_ui::Config::from("/openapi.json")),
            )
            // The reference web chat page, compiled in too.
            .configure(crate::chat::routes)
            .default_service(web::to(routes::fallback))
    })
    .shutdown_timeout(10)
    .disable_signals();
    if let Some(n) = workers {
        server = server.workers(n);
    }
    Ok(server.listen(listener)?.run())
}

async fn serve_openapi(doc: web::Data<serde_json::Value>) -> actix_web::HttpResponse {
    actix_web::HttpResponse::Ok().json(doc.get_ref())
}

/// One span per request with method, route, status, latency and session id, and the request
/// metrics (by route pattern, so ids do not multiply the series).
async fn log_request(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let route = req.match_pattern();
    let route = route.as_deref().unwrap_or("unmatched");
    let span = tracing::info_span!("request", method = %req.method(), route);
    let metrics = req
        .app_data::<web::Data<AppState>>()
        .map(|s| s.metrics.clone());
    let method = req.method().clone();
    let route = route.to_owned();
    let res = next.call(req).instrument(span.clone()).await?;
    let elapsed = started.elapsed().as_secs_f64();
    let status = res.status().as_u16();
    if let Some(metrics) = metrics {
        metrics.observe_request(&route, method.as_str(), status, elapsed);
    }
    let session_id = res.request().match_info().get("sessionId").unwrap_or("");
    tracing::info!(
        parent: &span,
        status,
        latency_ms = elapsed * 1000.0,
        session_id,
        "handled"
    );
    Ok(res)
}
