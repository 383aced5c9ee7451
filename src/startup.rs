//! Builds the HTTP server, the shared state and the reaper from settings.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServerHandle, ServiceRequest, ServiceResponse};
use actix_web::middleware::{from_fn, Next};
use actix_web::{web, App, HttpServer};
use serde_json::json;
use tokio::sync::watch;
use tracing::Instrument;

use crate::api::routes::{self, MethodTable};
use crate::api::ApiError;
use crate::clock::Clock;
use crate::config::Settings;
use crate::db::{self, DbError, DbPool};
use crate::reaper::Reaper;
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
}

pub struct Application {
    port: u16,
    server: Server,
    pool: DbPool,
    reaper: Reaper,
    reaper_interval: Duration,
}

impl Application {
    /// Connects (and migrates) the database and binds the listener; nothing runs until
    /// [`Application::run_until_stopped`]. Bind to port 0 to get a free port (tests).
    pub fn build(settings: Settings, clock: Arc<dyn Clock>) -> Result<Self, StartupError> {
        let pool = db::connect(&settings.database_url, settings.pool_size)?;
        let listener = TcpListener::bind(settings.bind).map_err(|source| StartupError::Bind {
            addr: settings.bind.to_string(),
            source,
        })?;
        let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
        let reaper = Reaper::new(
            pool.clone(),
            clock.clone(),
            settings.reaper_batch_size,
            settings.retention_hours,
        );
        let reaper_interval = Duration::from_secs(settings.reaper_interval_secs);
        let workers = settings.workers;
        let state = AppState {
            pool: pool.clone(),
            started_at: clock.now_ms(),
            clock,
            settings: Arc::new(settings),
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
        })
    }

    pub fn port(&self) -> u16 {
        self.port
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

    /// Serves until SIGINT/SIGTERM (or a handle's stop): in-flight requests drain, then the
    /// reaper stops.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let reaper = tokio::spawn(self.reaper.run(self.reaper_interval, stop_rx));
        let result = self.server.await;
        let _ = stop_tx.send(true);
        let _ = reaper.await;
        result
    }
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
            .wrap(from_fn(log_request))
            // The docs page and the document it reads; the page's assets are compiled in.
            .app_data(doc.clone())
            .route("/openapi.json", web::get().to(serve_openapi))
            .service(web::redirect("/docs", "/docs/"))
            .service(
                utoipa_swagger_ui::SwaggerUi::new("/docs/{_:.*}")
                    .config(utoipa_swagger_ui::Config::from("/openapi.json")),
            )
            .default_service(web::to(routes::fallback))
    })
    .shutdown_timeout(10);
    if let Some(n) = workers {
        server = server.workers(n);
    }
    Ok(server.listen(listener)?.run())
}

async fn serve_openapi(doc: web::Data<serde_json::Value>) -> actix_web::HttpResponse {
    actix_web::HttpResponse::Ok().json(doc.get_ref())
}

/// One span per request with method, route, status, latency and session id.
async fn log_request(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let span = tracing::info_span!(
        "request",
        method = %req.method(),
        route = req.match_pattern().as_deref().unwrap_or("unmatched"),
    );
    let res = next.call(req).instrument(span.clone()).await?;
    let session_id = res.request().match_info().get("sessionId").unwrap_or("");
    tracing::info!(
        parent: &span,
        status = res.status().as_u16(),
        latency_ms = started.elapsed().as_secs_f64() * 1000.0,
        session_id,
        "handled"
    );
    Ok(res)
}
