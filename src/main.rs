use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};

use agent_sessions::clock::{to_rfc3339, Clock, SystemClock};
use agent_sessions::config::{self, Layers, Settings};
use agent_sessions::domain::{AgentId, ApiKey, KeyId, Scopes};
use agent_sessions::service::keys::{self, NewKey};
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
    Serve {
        /// Serve without credentials on a non-loopback address while no API key exists
        /// [env: AGENT_SESSIONS_INSECURE_NO_AUTH].
        #[arg(long)]
        insecure_no_auth: bool,
    },
    /// Apply pending database migrations and exit.
    Migrate,
    /// Print the OpenAPI document as JSON.
    Openapi,
    /// Manage API keys in the database (a running server honours changes within a second).
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create a key and print its secret (shown this once; only a digest is stored).
    Create {
        /// A scope (repeat, or separate with commas): sessions:create, sessions:read,
        /// sessions:write, sessions:manage, sessions:health, agents:manage, keys:manage.
        #[arg(long = "scope", required = true, value_delimiter = ',')]
        scopes: Vec<String>,
        /// Bind the key to one agent: it sees only that agent's sessions and writes as it.
        #[arg(long = "agent")]
        agent: Option<String>,
        /// A name to recognise the key by in `keys list`.
        #[arg(long)]
        name: Option<String>,
    },
    /// List keys (never their secrets).
    List,
    /// Revoke a key by its id (from `keys list`).
    Revoke { id: String },
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

/// The settings from every layer; `insecure_no_auth` is `serve --insecure-no-auth`.
fn settings(flags: Flags, insecure_no_auth: bool) -> Result<Settings, config::ConfigError> {
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
    layers.flag(
        "insecure_no_auth",
        insecure_no_auth.then(|| "true".to_owned()),
    );
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
    let insecure_no_auth = matches!(
        cli.command,
        Command::Serve {
            insecure_no_auth: true
        }
    );
    let settings = match settings(cli.flags, insecure_no_auth) {
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
        Command::Keys { command } => keys(&settings, command),
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

/// `agent-sessions keys ...`: straight on the database named by the configuration.
fn keys(settings: &Settings, command: KeysCommand) -> Result<(), String> {
    let pool = db::connect(&settings.database_url, 1).map_err(|e| e.to_string())?;
    let mut conn = pool.get().map_err(|e| e.to_string())?;
    let now = SystemClock.now_ms();
    match command {
        KeysCommand::Create {
            scopes,
            agent,
            name,
        } => {
            let scopes = Scopes::parse(&scopes.join(" ")).map_err(|e| e.to_string())?;
            if scopes.is_empty() {
                return Err("give at least one --scope".to_owned());
            }
            let agent_id = agent
                .map(|a| a.parse::<AgentId>())
                .transpose()
                .map_err(|e| format!("--agent: {e}"))?;
            let name = name.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty());
            if name
                .as_ref()
                .is_some_and(|n| n.chars().count() > 200 || n.contains('\0'))
            {
                return Err("--name: at most 200 characters, no NUL".to_owned());
            }
            let issued = keys::create(
                &mut conn,
                NewKey {
                    name,
                    scopes,
                    agent_id,
                },
                now,
            )
            .map_err(|e| e.to_string())?;
            // The secret alone on stdout (so `KEY=$(agent-sessions keys create ...)` works);
            // what it is on stderr.
            println!("{}", issued.secret.expose());
            eprintln!(
                "created API key {} ({}) — store the secret above now: it is not shown again",
                issued.key.id,
                describe(&issued.key)
            );
        }
        KeysCommand::List => {
            println!(
                "{:<36}  {:<8}  {:<24}  {:<24}  {:<36}  SCOPES",
                "ID", "STATUS", "CREATED", "NAME", "AGENT"
            );
            for key in keys::list(&mut conn).map_err(|e| e.to_string())? {
                println!(
                    "{:<36}  {:<8}  {:<24}  {:<24}  {:<36}  {}",
                    key.id,
                    if key.revoked_at.is_some() {
                        "revoked"
                    } else {
                        "active"
                    },
                    to_rfc3339(key.created_at),
                    key.name.as_deref().unwrap_or("-"),
                    key.agent_id.map_or("-".to_owned(), |a| a.to_string()),
                    key.scopes.to_text().replace(' ', ",")
                );
            }
        }
        KeysCommand::Revoke { id } => {
            let id: KeyId = id.parse().map_err(|e| format!("key id: {e}"))?;
            let key = keys::revoke(&mut conn, id, now).map_err(|e| e.to_string())?;
            let when = key.revoked_at.map(to_rfc3339).unwrap_or_default();
            eprintln!(
                "API key {id} is revoked (since {when}); running servers refuse it within a second"
            );
        }
    }
    Ok(())
}

fn describe(key: &ApiKey) -> String {
    let mut text = format!("scopes {}", key.scopes.to_text().replace(' ', ","));
    if let Some(agent) = key.agent_id {
        text.push_str(&format!(", bound to agent {agent}"));
    }
    if let Some(name) = &key.name {
        text.push_str(&format!(", name {name:?}"));
    }
    text
}

async fn serve(settings: Settings) -> Result<(), String> {
    let bind = settings.bind;
    let backend = db::Backend::of_url(&settings.database_url);
    let chat = settings.chat.clone();
    let app = Application::build(settings, Arc::new(SystemClock)).map_err(|e| e.to_string())?;
    app.check_chat_key(&chat).await?;
    tracing::info!(%bind, port = app.port(), ?backend, "agent-sessions listening");
    app.run_until_stopped().await.map_err(|e| e.to_string())
}
