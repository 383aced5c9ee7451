//! Config merge with provenance and the expiry maths.
//!
//! Rules (DESIGN.md): effective config = global, overridden field by field by the agent, then
//! by the session. `expiresAt = min(lastRenewal + timeout, createdAt + maxDuration)`; a renewal
//! never moves `expiresAt` earlier; an explicit renew fails once the max-duration cap is reached.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use validator::Validate;

use crate::clock::Millis;

const MINUTE_MS: i64 = 60_000;

/// A complete timeout configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TimeoutConfig {
    /// Inactivity timeout in minutes (5–1440).
    #[schema(minimum = 5, maximum = 1440, example = 30)]
    pub timeout_minutes: i64,
    /// Whether messages and heartbeats extend the session.
    #[schema(example = true)]
    pub auto_renew: bool,
    /// Hard cap on the session's total lifetime in minutes (1–4320).
    #[schema(minimum = 1, maximum = 4320, example = 720)]
    pub max_duration_minutes: i64,
    /// `isNearExpiration` turns true this many minutes before expiry (1–60).
    #[schema(minimum = 1, maximum = 60, example = 5)]
    pub warning_threshold_minutes: i64,
}

impl Default for TimeoutConfig {
    fn default() -> Self {
        Self {
            timeout_minutes: 30,
            auto_renew: true,
            max_duration_minutes: 720,
            warning_threshold_minutes: 5,
        }
    }
}

/// A partial timeout configuration: every field is optional and overrides the level below.
// Ranges are checked with `validator` (`PartialTimeoutConfig::validate`).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema, Validate,
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PartialTimeoutConfig {
    #[serde(
        default,
        deserialize_with = "crate::json::optional_integer",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(minimum = 5, maximum = 1440, example = 60)]
    #[validate(range(min = TimeoutLimits::TIMEOUT_MINUTES.0, max = TimeoutLimits::TIMEOUT_MINUTES.1))]
    pub timeout_minutes: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_renew: Option<bool>,
    #[serde(
        default,
        deserialize_with = "crate::json::optional_integer",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(minimum = 1, maximum = 4320, example = 240)]
    #[validate(range(
        min = TimeoutLimits::MAX_DURATION_MINUTES.0,
        max = TimeoutLimits::MAX_DURATION_MINUTES.1
    ))]
    pub max_duration_minutes: Option<i64>,
    #[serde(
        default,
        deserialize_with = "crate::json::optional_integer",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(minimum = 1, maximum = 60, example = 5)]
    #[validate(range(
        min = TimeoutLimits::WARNING_THRESHOLD_MINUTES.0,
        max = TimeoutLimits::WARNING_THRESHOLD_MINUTES.1
    ))]
    pub warning_threshold_minutes: Option<i64>,
}

/// Inclusive ranges for the numeric fields.
pub struct TimeoutLimits;

impl TimeoutLimits {
    pub const TIMEOUT_MINUTES: (i64, i64) = (5, 1440);
    pub const MAX_DURATION_MINUTES: (i64, i64) = (1, 4320);
    pub const WARNING_THRESHOLD_MINUTES: (i64, i64) = (1, 60);
}

impl PartialTimeoutConfig {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

impl From<TimeoutConfig> for PartialTimeoutConfig {
    fn from(c: TimeoutConfig) -> Self {
        Self {
            timeout_minutes: Some(c.timeout_minutes),
            auto_renew: Some(c.auto_renew),
            max_duration_minutes: Some(c.max_duration_minutes),
            warning_threshold_minutes: Some(c.warning_threshold_minutes),
        }
    }
}

/// Where a field's effective value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ConfigSource {
    Global,
    Agent,
    Session,
}

/// The provenance of each field of an effective config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigSources {
    pub timeout_minutes: ConfigSource,
    pub auto_renew: ConfigSource,
    pub max_duration_minutes: ConfigSource,
    pub warning_threshold_minutes: ConfigSource,
}

impl ConfigSources {
    pub const ALL_GLOBAL: Self = Self {
        timeout_minutes: ConfigSource::Global,
        auto_renew: ConfigSource::Global,
        max_duration_minutes: ConfigSource::Global,
        warning_threshold_minutes: ConfigSource::Global,
    };
}

/// An effective config together with where each field came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EffectiveConfig {
    pub config: TimeoutConfig,
    pub sources: ConfigSources,
}

fn pick<T: Copy>(
    current: T,
    current_source: ConfigSource,
    over: Option<T>,
    source: ConfigSource,
) -> (T, ConfigSource) {
    over.map_or((current, current_source), |v| (v, source))
}

impl EffectiveConfig {
    pub fn global(config: TimeoutConfig) -> Self {
        Self {
            config,
            sources: ConfigSources::ALL_GLOBAL,
        }
    }

    /// Overrides every field present in `over`, recording `source` as its origin.
    pub fn overridden(self, over: &PartialTimeoutConfig, source: ConfigSource) -> Self {
        let (c, s) = (self.config, self.sources);
        let (timeout_minutes, ts) = pick(
            c.timeout_minutes,
            s.timeout_minutes,
            over.timeout_minutes,
            source,
        );
        let (auto_renew, ars) = pick(c.auto_renew, s.auto_renew, over.auto_renew, source);
        let (max_duration_minutes, ms) = pick(
            c.max_duration_minutes,
            s.max_duration_minutes,
            over.max_duration_minutes,
            source,
        );
        let (warning_threshold_minutes, ws) = pick(
            c.warning_threshold_minutes,
            s.warning_threshold_minutes,
            over.warning_threshold_minutes,
            source,
        );
        Self {
            config: TimeoutConfig {
                timeout_minutes,
                auto_renew,
                max_duration_minutes,
                warning_threshold_minutes,
            },
            sources: ConfigSources {
                timeout_minutes: ts,
                auto_renew: ars,
                max_duration_minutes: ms,
                warning_threshold_minutes: ws,
            },
        }
    }
}

/// global -> agent -> session.
pub fn merge(
    global: TimeoutConfig,
    agent: &PartialTimeoutConfig,
    session: &PartialTimeoutConfig,
) -> EffectiveConfig {
    EffectiveConfig::global(global)
        .overridden(agent, ConfigSource::Agent)
        .overridden(session, ConfigSource::Session)
}

/// The latest instant the session may live to: `createdAt + maxDuration`.
pub fn hard_cap(config: &TimeoutConfig, created_at: Millis) -> Millis {
    created_at.saturating_add(config.max_duration_minutes * MINUTE_MS)
}

/// `min(renewedAt + timeout, createdAt + maxDuration)`.
pub fn expiry(config: &TimeoutConfig, created_at: Millis, renewed_at: Millis) -> Millis {
    renewed_at
        .saturating_add(config.timeout_minutes * MINUTE_MS)
        .min(hard_cap(config, created_at))
}

/// Why an explicit renew was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenewalError {
    /// `expiresAt` already sits at `createdAt + maxDuration`.
    MaxDurationReached { cap: Millis },
}

/// An explicit renew at `now`: the new `expiresAt`, never earlier than `current`.
pub fn renew(
    config: &TimeoutConfig,
    created_at: Millis,
    current: Millis,
    now: Millis,
) -> Result<Millis, RenewalError> {
    let cap = hard_cap(config, created_at);
    if current >= cap {
        return Err(RenewalError::MaxDurationReached { cap });
    }
    Ok(expiry(config, created_at, now).max(current))
}

/// Activity (a message or heartbeat) at `now`: `Some(new expiresAt)` when auto-renew is on and
/// it moves `expiresAt` later, else `None`.
pub fn auto_renew(
    config: &TimeoutConfig,
    created_at: Millis,
    current: Millis,
    now: Millis,
) -> Option<Millis> {
    if !config.auto_renew {
        return None;
    }
    let next = expiry(config, created_at, now);
    (next > current).then_some(next)
}

/// Milliseconds left, never negative.
pub fn time_remaining(expires_at: Millis, now: Millis) -> i64 {
    (expires_at - now).max(0)
}

pub fn is_expired(expires_at: Millis, now: Millis) -> bool {
    now >= expires_at
}

/// True while the session is alive and within the warning threshold of its expiry.
pub fn is_near_expiration(config: &TimeoutConfig, expires_at: Millis, now: Millis) -> bool {
    let remaining = time_remaining(expires_at, now);
    remaining > 0 && remaining <= config.warning_threshold_minutes * MINUTE_MS
}

/// When a live session next needs the scheduler: the start of its warning window, unless it
/// was already warned for this `expires_at`; then its expiry.
pub fn next_deadline(
    expires_at: Millis,
    warning_threshold_minutes: i64,
    warned_for: Option<Millis>,
) -> Millis {
    if warned_for == Some(expires_at) {
        expires_at
    } else {
        expires_at.saturating_sub(warning_threshold_minutes.saturating_mul(MINUTE_MS))
    }
}

/// Why a session whose `expires_at` passed expired: the hard cap when `expires_at` sits at
/// `created_at + maxDuration`, otherwise inactivity.
pub fn expiry_reason(
    created_at: Millis,
    max_duration_minutes: i64,
    expires_at: Millis,
) -> crate::domain::ExpiryReason {
    if expires_at >= created_at.saturating_add(max_duration_minutes.saturating_mul(MINUTE_MS)) {
        crate::domain::ExpiryReason::MaxDuration
    } else {
        crate::domain::ExpiryReason::Idle
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Millis = 1_700_000_000_000;

    fn cfg(timeout: i64, max: i64) -> TimeoutConfig {
        TimeoutConfig {
            timeout_minutes: timeout,
            auto_renew: true,
            max_duration_minutes: max,
            warning_threshold_minutes: 5,
        }
    }

    #[test]
    fn expiry_is_capped_by_max_duration() {
        assert_eq!(expiry(&cfg(30, 720), T0, T0), T0 + 30 * MINUTE_MS);
        assert_eq!(expiry(&cfg(30, 10), T0, T0), T0 + 10 * MINUTE_MS);
        assert_eq!(
            expiry(&cfg(30, 60), T0, T0 + 50 * MINUTE_MS),
            T0 + 60 * MINUTE_MS
        );
    }

    #[test]
    fn renew_fails_only_at_the_cap() {
        let c = cfg(30, 60);
        let renewed = renew(&c, T0, T0 + 30 * MINUTE_MS, T0 + 20 * MINUTE_MS);
        assert_eq!(renewed, Ok(T0 + 50 * MINUTE_MS));
        let capped = renew(&c, T0, T0 + 50 * MINUTE_MS, T0 + 40 * MINUTE_MS);
        assert_eq!(capped, Ok(T0 + 60 * MINUTE_MS));
        assert_eq!(
            renew(&c, T0, T0 + 60 * MINUTE_MS, T0 + 45 * MINUTE_MS),
            Err(RenewalError::MaxDurationReached {
                cap: T0 + 60 * MINUTE_MS
            })
        );
    }

    #[test]
    fn auto_renew_respects_the_flag_and_reports_movement() {
        let mut c = cfg(30, 720);
        assert_eq!(
            auto_renew(&c, T0, T0 + 30 * MINUTE_MS, T0 + MINUTE_MS),
            Some(T0 + 31 * MINUTE_MS)
        );
        assert_eq!(auto_renew(&c, T0, T0 + 30 * MINUTE_MS, T0), None);
        c.auto_renew = false;
        assert_eq!(
            auto_renew(&c, T0, T0 + 30 * MINUTE_MS, T0 + MINUTE_MS),
            None
        );
    }

    #[test]
    fn near_expiration_uses_the_threshold() {
        let c = cfg(30, 720);
        let exp = T0 + 30 * MINUTE_MS;
        assert!(!is_near_expiration(&c, exp, T0));
        assert!(!is_near_expiration(&c, exp, exp - 5 * MINUTE_MS - 1));
        assert!(is_near_expiration(&c, exp, exp - 5 * MINUTE_MS));
        assert!(!is_near_expiration(&c, exp, exp));
        assert_eq!(next_deadline(exp, 5, None), exp - 5 * MINUTE_MS);
        assert_eq!(
            next_deadline(exp, 5, Some(exp - 1)),
            exp - 5 * MINUTE_MS,
            "warned for an earlier expiry"
        );
        assert_eq!(next_deadline(exp, 5, Some(exp)), exp);
        assert!(is_expired(exp, exp));
    }

    #[test]
    fn merge_records_provenance() {
        let agent = PartialTimeoutConfig {
            timeout_minutes: Some(60),
            auto_renew: Some(false),
            ..Default::default()
        };
        let session = PartialTimeoutConfig {
            auto_renew: Some(true),
            warning_threshold_minutes: Some(10),
            ..Default::default()
        };
        let eff = merge(TimeoutConfig::default(), &agent, &session);
        assert_eq!(
            eff.config,
            TimeoutConfig {
                timeout_minutes: 60,
                auto_renew: true,
                max_duration_minutes: 720,
                warning_threshold_minutes: 10
            }
        );
        assert_eq!(eff.sources.timeout_minutes, ConfigSource::Agent);
        assert_eq!(eff.sources.auto_renew, ConfigSource::Session);
        assert_eq!(eff.sources.max_duration_minutes, ConfigSource::Global);
        assert_eq!(eff.sources.warning_threshold_minutes, ConfigSource::Session);
    }

    #[test]
    fn validation_names_the_fields_out_of_range() {
        let p = PartialTimeoutConfig {
            timeout_minutes: Some(4),
            max_duration_minutes: Some(4321),
            warning_threshold_minutes: Some(60),
            ..Default::default()
        };
        let errors = p.validate().unwrap_err();
        let mut fields: Vec<_> = errors.field_errors().into_keys().collect();
        fields.sort();
        assert_eq!(fields, vec!["max_duration_minutes", "timeout_minutes"]);
        assert!(PartialTimeoutConfig::default().validate().is_ok());
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn config() -> impl Strategy<Value = TimeoutConfig> {
            (5i64..=1440, any::<bool>(), 1i64..=4320, 1i64..=60).prop_map(|(t, a, m, w)| {
                TimeoutConfig {
                    timeout_minutes: t,
                    auto_renew: a,
                    max_duration_minutes: m,
                    warning_threshold_minutes: w,
                }
            })
        }

        fn partial() -> impl Strategy<Value = PartialTimeoutConfig> {
            (
                proptest::option::of(5i64..=1440),
                proptest::option::of(any::<bool>()),
                proptest::option::of(1i64..=4320),
                proptest::option::of(1i64..=60),
            )
                .prop_map(|(t, a, m, w)| PartialTimeoutConfig {
                    timeout_minutes: t,
                    auto_renew: a,
                    max_duration_minutes: m,
                    warning_threshold_minutes: w,
                })
        }

        proptest! {
            #[test]
            fn expiry_never_exceeds_the_cap(
                c in config(),
                created in 0i64..4_000_000_000_000,
                offsets in proptest::collection::vec(0i64..10_000_000, 1..20),
            ) {
                let cap = hard_cap(&c, created);
                let mut expires = expiry(&c, created, created);
                prop_assert!(expires <= cap);
                let mut now = created;
                for step in offsets {
                    now += step;
                    if let Ok(next) = renew(&c, created, expires, now) {
                        prop_assert!(next <= cap);
                        prop_assert!(next >= expires, "renewal moved expiresAt earlier");
                        expires = next;
                    }
                    if let Some(next) = auto_renew(&c, created, expires, now) {
                        prop_assert!(next <= cap);
                        prop_assert!(next > expires);
                        expires = next;
                    }
                }
            }

            #[test]
            fn renew_fails_exactly_at_the_cap(
                c in config(),
                created in 0i64..4_000_000_000_000,
                elapsed in 0i64..300_000_000,
            ) {
                let cap = hard_cap(&c, created);
                let now = created + elapsed;
                prop_assert_eq!(renew(&c, created, cap, now), Err(RenewalError::MaxDurationReached { cap }));
                let current = expiry(&c, created, created);
                if current < cap {
                    prop_assert!(renew(&c, created, current, now).is_ok());
                }
            }

            #[test]
            fn merge_precedence_holds_for_every_field(
                global in config(),
                agent in partial(),
                session in partial(),
            ) {
                let eff = merge(global, &agent, &session);
                fn expect<T: Copy>(g: T, a: Option<T>, s: Option<T>) -> (T, ConfigSource) {
                    match (s, a) {
                        (Some(v), _) => (v, ConfigSource::Session),
                        (None, Some(v)) => (v, ConfigSource::Agent),
                        (None, None) => (g, ConfigSource::Global),
                    }
                }
                prop_assert_eq!(
                    (eff.config.timeout_minutes, eff.sources.timeout_minutes),
                    expect(global.timeout_minutes, agent.timeout_minutes, session.timeout_minutes)
                );
                prop_assert_eq!(
                    (eff.config.auto_renew, eff.sources.auto_renew),
                    expect(global.auto_renew, agent.auto_renew, session.auto_renew)
                );
                prop_assert_eq!(
                    (eff.config.max_duration_minutes, eff.sources.max_duration_minutes),
                    expect(global.max_duration_minutes, agent.max_duration_minutes, session.max_duration_minutes)
                );
                prop_assert_eq!(
                    (eff.config.warning_threshold_minutes, eff.sources.warning_threshold_minutes),
                    expect(global.warning_threshold_minutes, agent.warning_threshold_minutes, session.warning_threshold_minutes)
                );
            }
        }
    }
}
