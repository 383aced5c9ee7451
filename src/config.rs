//! Configuration, layered: built-in defaults < config file (TOML) < environment < CLI flags.
//!
//! Every layer is reduced to `key -> (text, where it came from)` and parsed once, so an invalid
//! value stops start-up with a message naming the exact key that carried it
//! (e.g. `AGENT_SESSIONS_TIMEOUT_MINUTES` or `timeout_minutes in agent-sessions.toml`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::domain::AgentId;
use crate::rate_limit::RateLimitSettings;
use crate::secret::Secret;
use crate::timeout::{PartialTimeoutConfig, TimeoutConfig};

pub const DEFAULT_DATABASE_URL: &str = "data/agent-sessions.db";
pub const DEFAULT_CONFIG_FILE: &str = "agent-sessions.toml";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub bind: SocketAddr,
    pub database_url: String,
    pub pool_size: u32,
    pub workers: Option<usize>,
    pub timeouts: TimeoutConfig,
    pub reaper_interval_secs: u64,
    pub reaper_batch_size: i64,
    pub retention_hours: u64,
    pub max_body_bytes: usize,
    pub log_format: LogFormat,
    /// A key with every scope, held only in memory (`AGENT_SESSIONS_API_KEY`).
    pub api_key: Option<Secret>,
    /// Serve without credentials on a non-loopback bind while no key exists.
    pub insecure_no_auth: bool,
    /// Origins allowed to call from a browser (CORS); empty: none.
    pub cors_origins: Vec<String>,
    pub rate_limits: RateLimitSettings,
    /// Open event streams and waiting long-polls allowed per session, and per credential.
    pub max_streams_per_session: usize,
    pub max_streams_per_credential: usize,
    /// Participants a session may have, its agent included (`AGENT_SESSIONS_MAX_PARTICIPANTS`).
    pub max_participants: usize,
    /// What `/chat/config.json` serves to pages opened without `?agentId=`: the agent
    /// (`AGENT_SESSIONS_CHAT_AGENT_ID`) and a publishable key of it (`AGENT_SESSIONS_CHAT_KEY`).
    pub chat: ChatSettings,
}

/// The web chat page's served configuration. The key is public by design: it must hold
/// `sessions:create` only and be bound to the agent (checked when the server starts). It is
/// still kept out of logs and error messages, like every secret, in case it is not.
#[derive(Clone, Default)]
pub struct ChatSettings {
    pub agent_id: Option<AgentId>,
    pub key: Option<String>,
}

impl std::fmt::Debug for ChatSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatSettings")
            .field("agent_id", &self.agent_id)
            .field("key", &self.key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 3000)),
            database_url: DEFAULT_DATABASE_URL.to_owned(),
            pool_size: 10,
            workers: None,
            timeouts: TimeoutConfig::default(),
            reaper_interval_secs: 30,
            reaper_batch_size: 500,
            retention_hours: 24,
            max_body_bytes: 256 * 1024,
            log_format: LogFormat::Text,
            api_key: None,
            insecure_no_auth: false,
            cors_origins: Vec::new(),
            rate_limits: RateLimitSettings::default(),
            max_streams_per_session: 5,
            max_streams_per_credential: 100,
            max_participants: 100,
            chat: ChatSettings::default(),
        }
    }
}

/// A configuration key: its name in the TOML file and its environment variable.
struct Key {
    file: &'static str,
    env: &'static str,
}

const KEYS: &[Key] = &[
    Key {
        file: "bind",
        env: "AGENT_SESSIONS_BIND",
    },
    Key {
        file: "database_url",
        env: "DATABASE_URL",
    },
    Key {
        file: "pool_size",
        env: "AGENT_SESSIONS_POOL_SIZE",
    },
    Key {
        file: "workers",
        env: "AGENT_SESSIONS_WORKERS",
    },
    Key {
        file: "timeout_minutes",
        env: "AGENT_SESSIONS_TIMEOUT_MINUTES",
    },
    Key {
        file: "auto_renew",
        env: "AGENT_SESSIONS_AUTO_RENEW",
    },
    Key {
        file: "max_duration_minutes",
        env: "AGENT_SESSIONS_MAX_DURATION_MINUTES",
    },
    Key {
        file: "warning_threshold_minutes",
        env: "AGENT_SESSIONS_WARNING_THRESHOLD_MINUTES",
    },
    Key {
        file: "reaper_interval_secs",
        env: "AGENT_SESSIONS_REAPER_INTERVAL_SECS",
    },
    Key {
        file: "reaper_batch_size",
        env: "AGENT_SESSIONS_REAPER_BATCH_SIZE",
    },
    Key {
        file: "retention_hours",
        env: "AGENT_SESSIONS_RETENTION_HOURS",
    },
    Key {
        file: "max_body_bytes",
        env: "AGENT_SESSIONS_MAX_BODY_BYTES",
    },
    Key {
        file: "log_format",
        env: "AGENT_SESSIONS_LOG_FORMAT",
    },
    Key {
        file: "api_key",
        env: "AGENT_SESSIONS_API_KEY",
    },
    Key {
        file: "insecure_no_auth",
        env: "AGENT_SESSIONS_INSECURE_NO_AUTH",
    },
    Key {
        file: "cors_origins",
        env: "AGENT_SESSIONS_CORS_ORIGINS",
    },
    Key {
        file: "rate_limit_session_per_minute",
        env: "AGENT_SESSIONS_RATE_LIMIT_SESSION_PER_MINUTE",
    },
    Key {
        file: "rate_limit_user_per_hour",
        env: "AGENT_SESSIONS_RATE_LIMIT_USER_PER_HOUR",
    },
    Key {
        file: "rate_limit_agent_per_hour",
        env: "AGENT_SESSIONS_RATE_LIMIT_AGENT_PER_HOUR",
    },
    Key {
        file: "max_streams_per_session",
        env: "AGENT_SESSIONS_MAX_STREAMS_PER_SESSION",
    },
    Key {
        file: "max_streams_per_credential",
        env: "AGENT_SESSIONS_MAX_STREAMS_PER_CREDENTIAL",
    },
    Key {
        file: "max_participants",
        env: "AGENT_SESSIONS_MAX_PARTICIPANTS",
    },
    Key {
        file: "chat_agent_id",
        env: "AGENT_SESSIONS_CHAT_AGENT_ID",
    },
    Key {
        file: "chat_key",
        env: "AGENT_SESSIONS_CHAT_KEY",
    },
];

/// The shortest bootstrap key accepted (about 128 bits of hex or base64).
const API_KEY_MIN_CHARS: usize = 24;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid TOML: {message}")]
    Toml { path: String, message: String },
    #[error("unknown key `{key}` in config file {path}")]
    UnknownKey { key: String, path: String },
    #[error("invalid value {value:?} for {origin}: {expected}")]
    Invalid {
        origin: String,
        value: String,
        expected: String,
    },
}

/// Raw values by file key, each remembering which layer set it.
#[derive(Debug, Default)]
pub struct Layers {
    values: BTreeMap<&'static str, (String, String)>,
}

impl Layers {
    fn key(name: &str) -> Option<&'static Key> {
        KEYS.iter().find(|k| k.file == name)
    }

    /// Reads a TOML file; every key must be known.
    pub fn file(&mut self, path: &Path) -> Result<(), ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: shown.clone(),
            source,
        })?;
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| ConfigError::Toml {
                path: shown.clone(),
                message: e.message().to_owned(),
            })?;
        for (name, value) in table {
            let key = Self::key(&name).ok_or_else(|| ConfigError::UnknownKey {
                key: name.clone(),
                path: shown.clone(),
            })?;
            let text = match value {
                toml::Value::String(s) => s,
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                toml::Value::Float(f) => f.to_string(),
                other => format!("{other:?}"),
            };
            self.values
                .insert(key.file, (text, format!("`{}` in {shown}", key.file)));
        }
        Ok(())
    }

    /// Reads every known environment variable through `lookup`.
    pub fn env(&mut self, lookup: impl Fn(&str) -> Option<String>) {
        for key in KEYS {
            if let Some(v) = lookup(key.env) {
                self.values.insert(key.file, (v, key.env.to_owned()));
            }
        }
    }

    /// A value given as a command-line flag (`--bind`, `--timeout-minutes`, ...).
    pub fn flag(&mut self, file_key: &'static str, value: Option<String>) {
        if let Some(v) = value {
            let flag = format!("--{}", file_key.replace('_', "-"));
            self.values.insert(file_key, (v, flag));
        }
    }

    fn parse<T: std::str::FromStr>(
        &self,
        key: &str,
        expected: &str,
        accept: impl Fn(&T) -> bool,
    ) -> Result<Option<T>, ConfigError> {
        let Some((text, origin)) = self.values.get(key) else {
            return Ok(None);
        };
        match text.trim().parse::<T>() {
            Ok(v) if accept(&v) => Ok(Some(v)),
            _ => Err(ConfigError::Invalid {
                origin: origin.clone(),
                value: text.clone(),
                expected: expected.to_owned(),
            }),
        }
    }

    /// The bootstrap key. Its value never appears in an error.
    fn secret(&self, key: &str) -> Result<Option<Secret>, ConfigError> {
        let Some((text, origin)) = self.values.get(key) else {
            return Ok(None);
        };
        let text = text.trim();
        if text.chars().count() < API_KEY_MIN_CHARS || !text.chars().all(|c| c.is_ascii_graphic()) {
            return Err(ConfigError::Invalid {
                origin: origin.clone(),
                value: "<redacted>".to_owned(),
                expected: format!(
                    "expected at least {API_KEY_MIN_CHARS} visible ASCII characters (generate one with `openssl rand -hex 24`)"
                ),
            });
        }
        Ok(Some(Secret::from_text(text.to_owned())))
    }

    /// Comma-separated origins, each `http(s)://host[:port]` (no path), or `*`.
    /// The chat page's key: visible ASCII, never repeated in an error.
    fn chat_key(&self) -> Result<Option<String>, ConfigError> {
        let Some((text, origin)) = self.values.get("chat_key") else {
            return Ok(None);
        };
        let text = text.trim();
        if text.is_empty() || !text.chars().all(|c| c.is_ascii_graphic()) {
            return Err(ConfigError::Invalid {
                origin: origin.clone(),
                value: "<redacted>".to_owned(),
                expected: "expected a key as `keys create` prints it (visible ASCII characters)"
                    .to_owned(),
            });
        }
        Ok(Some(text.to_owned()))
    }

    fn origins(&self, key: &str) -> Result<Vec<String>, ConfigError> {
        let Some((text, origin)) = self.values.get(key) else {
            return Ok(Vec::new());
        };
        let valid = |o: &str| {
            o == "*"
                || ["http://", "https://"].iter().any(|scheme| {
                    o.strip_prefix(scheme)
                        .is_some_and(|host| !host.is_empty() && !host.contains('/'))
                })
        };
        let origins: Vec<String> = text
            .split(',')
            .map(str::trim)
            .filter(|o| !o.is_empty())
            .map(|o| o.trim_end_matches('/').to_owned())
            .collect();
        let expected = "expected comma-separated origins like https://chat.example.com, or * alone";
        let bad = origins.iter().find(|o| !valid(o)).or(origins
            .iter()
            .find(|o| *o == "*")
            .filter(|_| origins.len() > 1));
        match bad {
            Some(bad) => Err(ConfigError::Invalid {
                origin: origin.clone(),
                value: bad.clone(),
                expected: expected.to_owned(),
            }),
            None => Ok(origins),
        }
    }

    fn limit(&self, key: &str, default: u32) -> Result<u32, ConfigError> {
        Ok(self
            .parse(
                key,
                "expected a non-negative integer (0 turns the limit off)",
                |_: &u32| true,
            )?
            .unwrap_or(default))
    }

    fn range(&self, key: &str, (min, max): (i64, i64)) -> Result<Option<i64>, ConfigError> {
        self.parse(
            key,
            &format!("expected an integer from {min} to {max}"),
            |v| (min..=max).contains(v),
        )
    }

    pub fn settings(&self) -> Result<Settings, ConfigError> {
        use crate::timeout::TimeoutLimits as L;
        let d = Settings::default();
        let positive = |v: &u64| *v > 0;
        let log_format = match self.parse::<String>("log_format", "expected text or json", |v| {
            v == "text" || v == "json"
        })? {
            Some(v) if v == "json" => LogFormat::Json,
            Some(_) => LogFormat::Text,
            None => d.log_format,
        };
        let timeouts = PartialTimeoutConfig {
            timeout_minutes: self.range("timeout_minutes", L::TIMEOUT_MINUTES)?,
            auto_renew: self.parse("auto_renew", "expected true or false", |_: &bool| true)?,
            max_duration_minutes: self.range("max_duration_minutes", L::MAX_DURATION_MINUTES)?,
            warning_threshold_minutes: self
                .range("warning_threshold_minutes", L::WARNING_THRESHOLD_MINUTES)?,
        };
        let base = crate::timeout::EffectiveConfig::global(d.timeouts);
        Ok(Settings {
            bind: self
                .parse(
                    "bind",
                    "expected host:port, e.g. 127.0.0.1:3000",
                    |_: &SocketAddr| true,
                )?
                .unwrap_or(d.bind),
            database_url: self
                .parse::<String>("database_url", "expected a non-empty URL or path", |v| {
                    !v.trim().is_empty()
                })?
                .unwrap_or(d.database_url),
            pool_size: self
                .parse(
                    "pool_size",
                    "expected an integer from 1 to 1000",
                    |v: &u32| (1..=1000).contains(v),
                )?
                .unwrap_or(d.pool_size),
            workers: self
                .parse("workers", "expected a positive integer", |v: &usize| *v > 0)?
                .or(d.workers),
            timeouts: base
                .overridden(&timeouts, crate::timeout::ConfigSource::Global)
                .config,
            reaper_interval_secs: self
                .parse(
                    "reaper_interval_secs",
                    "expected a positive integer",
                    positive,
                )?
                .unwrap_or(d.reaper_interval_secs),
            reaper_batch_size: self
                .parse(
                    "reaper_batch_size",
                    "expected an integer from 1 to 100000",
                    |v| (1..=100_000).contains(v),
                )?
                .unwrap_or(d.reaper_batch_size),
            retention_hours: self
                .parse(
                    "retention_hours",
                    "expected a non-negative integer",
                    |_: &u64| true,
                )?
                .unwrap_or(d.retention_hours),
            max_body_bytes: self
                .parse(
                    "max_body_bytes",
                    "expected an integer from 1024 to 104857600",
                    |v| (1024..=104_857_600).contains(v),
                )?
                .unwrap_or(d.max_body_bytes),
            log_format,
            api_key: self.secret("api_key")?,
            insecure_no_auth: self
                .parse("insecure_no_auth", "expected true or false", |_: &bool| {
                    true
                })?
                .unwrap_or(d.insecure_no_auth),
            cors_origins: self.origins("cors_origins")?,
            rate_limits: RateLimitSettings {
                session_per_minute: self.limit(
                    "rate_limit_session_per_minute",
                    d.rate_limits.session_per_minute,
                )?,
                user_per_hour: self
                    .limit("rate_limit_user_per_hour", d.rate_limits.user_per_hour)?,
                agent_per_hour: self
                    .limit("rate_limit_agent_per_hour", d.rate_limits.agent_per_hour)?,
            },
            max_streams_per_session: self
                .parse(
                    "max_streams_per_session",
                    "expected an integer from 1 to 10000",
                    |v: &usize| (1..=10_000).contains(v),
                )?
                .unwrap_or(d.max_streams_per_session),
            max_streams_per_credential: self
                .parse(
                    "max_streams_per_credential",
                    "expected an integer from 1 to 1000000",
                    |v: &usize| (1..=1_000_000).contains(v),
                )?
                .unwrap_or(d.max_streams_per_credential),
            max_participants: self
                .parse(
                    "max_participants",
                    "expected an integer from 2 to 1000 (the agent and the creator count)",
                    |v: &usize| (2..=1_000).contains(v),
                )?
                .unwrap_or(d.max_participants),
            chat: ChatSettings {
                agent_id: self.parse("chat_agent_id", "expected an agent id (a UUID)", |_| true)?,
                key: self.chat_key()?,
            },
        })
    }
}

/// The config file to read: the explicit one (flag or `AGENT_SESSIONS_CONFIG`), else
/// `agent-sessions.toml` in the working directory when it exists.
pub fn config_file(explicit: Option<PathBuf>) -> Option<PathBuf> {
    explicit
        .or_else(|| std::env::var_os("AGENT_SESSIONS_CONFIG").map(PathBuf::from))
        .or_else(|| {
            let default = PathBuf::from(DEFAULT_CONFIG_FILE);
            default.exists().then_some(default)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn defaults_match_the_documentation() {
        let s = Layers::default().settings().unwrap();
        assert_eq!(s.bind.to_string(), "127.0.0.1:3000");
        assert_eq!(s.database_url, DEFAULT_DATABASE_URL);
        assert_eq!(s.timeouts, TimeoutConfig::default());
        assert_eq!(s.reaper_interval_secs, 30);
        assert_eq!(s.retention_hours, 24);
        assert_eq!(s.rate_limits, RateLimitSettings::default());
        assert!(s.api_key.is_none() && !s.insecure_no_auth && s.cors_origins.is_empty());
    }

    #[test]
    fn a_bad_bootstrap_key_is_refused_without_echoing_it() {
        let mut layers = Layers::default();
        layers.env(env_of(&[("AGENT_SESSIONS_API_KEY", "short-secret")]));
        let err = layers.settings().unwrap_err().to_string();
        assert!(err.contains("AGENT_SESSIONS_API_KEY"), "{err}");
        assert!(!err.contains("short-secret"), "{err}");
    }

    #[test]
    fn security_settings_are_read_from_the_environment() {
        let mut layers = Layers::default();
        layers.env(env_of(&[
            ("AGENT_SESSIONS_API_KEY", "0123456789abcdef0123456789abcdef"),
            (
                "AGENT_SESSIONS_CORS_ORIGINS",
                "https://chat.example.com, http://localhost:5173/",
            ),
            ("AGENT_SESSIONS_RATE_LIMIT_SESSION_PER_MINUTE", "0"),
            ("AGENT_SESSIONS_RATE_LIMIT_USER_PER_HOUR", "10"),
        ]));
        let s = layers.settings().unwrap();
        assert_eq!(
            s.api_key.unwrap().expose(),
            "0123456789abcdef0123456789abcdef"
        );
        assert_eq!(
            s.cors_origins,
            ["https://chat.example.com", "http://localhost:5173"]
        );
        assert_eq!(s.rate_limits.session_per_minute, 0);
        assert_eq!(s.rate_limits.user_per_hour, 10);
        assert_eq!(s.rate_limits.agent_per_hour, 5000);

        let mut layers = Layers::default();
        layers.env(env_of(&[(
            "AGENT_SESSIONS_CORS_ORIGINS",
            "chat.example.com",
        )]));
        let err = layers.settings().unwrap_err().to_string();
        assert!(err.contains("AGENT_SESSIONS_CORS_ORIGINS"), "{err}");
    }

    #[test]
    fn later_layers_win() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            "timeout_minutes = 40\nauto_renew = false\nbind = \"0.0.0.0:1\"\n",
        )
        .unwrap();
        let mut layers = Layers::default();
        layers.file(&file).unwrap();
        layers.env(env_of(&[("AGENT_SESSIONS_TIMEOUT_MINUTES", "50")]));
        layers.flag("bind", Some("127.0.0.1:9".into()));
        let s = layers.settings().unwrap();
        assert_eq!(s.timeouts.timeout_minutes, 50);
        assert!(!s.timeouts.auto_renew);
        assert_eq!(s.bind.to_string(), "127.0.0.1:9");
    }

    #[test]
    fn errors_name_the_bad_key() {
        let mut layers = Layers::default();
        layers.env(env_of(&[("AGENT_SESSIONS_TIMEOUT_MINUTES", "2")]));
        let err = layers.settings().unwrap_err().to_string();
        assert!(err.contains("AGENT_SESSIONS_TIMEOUT_MINUTES"), "{err}");

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "retention_hourz = 3\n").unwrap();
        let err = Layers::default().file(&file).unwrap_err().to_string();
        assert!(err.contains("retention_hourz"), "{err}");

        let mut layers = Layers::default();
        layers.flag("reaper_interval_secs", Some("0".into()));
        let err = layers.settings().unwrap_err().to_string();
        assert!(err.contains("--reaper-interval-secs"), "{err}");
    }
}
