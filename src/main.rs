use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};

use agent_sessions::clock::SystemClock;
use agent_sessions::config::{self, Layers, Settings};
use agent_sessions::{db, openapi, telemetry, Application};

/// A durable sessions service for conversational agents (ElizaOS Sessions API).
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    flags: Flags,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP API and the background reaper.
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Print the OpenAPI document as JSON.
    Openapi,
}

/// Flags override the environment, which overrides the config file.
#[derive(Args)]
struct Flags {
    /// TOML config file (default: $AGENT_SESSIONS_CONFIG, else ./agent-sessions.toml if present).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Listen address [env: AGENT_SESSIONS_BIND] (default 127.0.0.1:3000).
    #[arg(long, global = true)]
    bind: Option<String>,
    /// SQLite path or postgres:// URL [env: DATABASE_URL] (default data/agent-sessions.db).
    #[arg(long, global = true)]
    database_url: Option<String>,
    /// Default inactivity timeout in minutes [env: AGENT_SESSIONS_TIMEOUT_MINUTES].
    #[arg(long, global = true)]
    timeout_minutes: Option<String>,
    /// Default auto-renew [env: AGENT_SESSIONS_AUTO_RENEW].
    #[arg(long, global = true)]
    auto_renew: Option<String>,
    /// Default maximum duration in minutes [env: AGENT_SESSIONS_MAX_DURATION_MINUTES].
    #[arg(long, global = true)]
    max_duration_minutes: Option<String>,
    /// Default warning threshold in minutes [env: AGENT_SESSIONS_WARNING_THRESHOLD_MINUTES].
    #[arg(long, global = true)]
    warning_threshold_minutes: Option<String>,
    /// Seconds between reaper passes [env: AGENT_SESSIONS_REAPER_INTERVAL_SECS].
    #[arg(long, global = true)]
    reaper_interval_secs: Option<String>,
    /// Hours an expired or ended session answers 410 before it is purged
    /// [env: AGENT_SESSIONS_RETENTION_HOURS].
    #[arg(long, global = true)]
    retention_hours: Option<String>,
    /// text or json [env: AGENT_SESSIONS_LOG_FORMAT].
    #[arg(long, global = true)]
    log_format: Option<String>,
}

fn settings(flags: Flags) -> Result<Settings, config::ConfigError> {
    let mut layers = Layers::default();
    if let Some(file) = config::config_file(flags.config) {
        layers.file(&file)?;
    }
    layers.env(|k| std::env::var(k).ok());
    layers.flag("bind", flags.bind);
    layers.flag("database_url", flags.database_url);
    layers.flag("timeout_minutes", flags.timeout_minutes);
    layers.flag("auto_renew", flags.auto_renew);
    layers.flag("max_duration_minutes", flags.max_duration_minutes);
    layers.flag("warning_threshold_minutes", flags.warning_threshold_minutes);
    layers.flag("reaper_interval_secs", flags.reaper_interval_secs);
    layers.flag("retention_hours", flags.retention_hours);
    layers.flag("log_format", flags.log_format);
    layers.settings()
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Openapi = cli.command {
        match serde_json::to_string_pretty(&openapi::document()) {
            Ok(json) => println!("{json}"),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        }
        return ExitCode::SUCCESS;
    }
    let settings = match settings(cli.flags) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(settings.log_format);
    let result = match cli.command {
        Command::Migrate => db::connect(&settings.database_url, 1)
            .map(|_| tracing::info!("migrations applied"))
            .map_err(|e| e.to_string()),
        _ => serve(settings).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(settings: Settings) -> Result<(), String> {
    let bind = settings.bind;
    let backend = db::Backend::of_url(&settings.database_url);
    let app = Application::build(settings, Arc::new(SystemClock)).map_err(|e| e.to_string())?;
    tracing::info!(%bind, port = app.port(), ?backend, "agent-sessions listening");
    app.run_until_stopped().await.map_err(|e| e.to_string())
}
