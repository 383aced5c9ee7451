//! Rate limits as the reference sets them: per session (60/min), per user (1000/h) and per
//! agent (5000/h), each configurable (0 turns it off). GCRA through `governor`, timed by the
//! service's own clock (so tests travel in time), kept per instance, in memory. Idle keys are
//! evicted: an entry that would behave like a fresh one is dropped by [`RateLimits::evict`],
//! so memory follows the keys active within one window, not every key ever seen.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::HttpMessage;
use governor::clock::Clock as _;
use governor::middleware::StateInformationMiddleware;
use governor::nanos::Nanos;
use governor::state::keyed::DashMapStateStore;
use governor::{Quota, RateLimiter};
use uuid::Uuid;

use crate::clock::Clock;
use crate::domain::{AgentId, SessionId, UserId};

/// The configured limits; 0 means no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitSettings {
    pub session_per_minute: u32,
    pub user_per_hour: u32,
    pub agent_per_hour: u32,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            session_per_minute: 60,
            user_per_hour: 1000,
            agent_per_hour: 5000,
        }
    }
}

/// The service's clock as `governor` wants one (nanoseconds since the Unix epoch).
#[derive(Clone)]
struct GovernorClock(Arc<dyn Clock>);

impl governor::clock::Clock for GovernorClock {
    type Instant = Nanos;

    fn now(&self) -> Nanos {
        Nanos::from(Duration::from_millis(self.0.now_ms().max(0) as u64))
    }
}

type Limiter =
    RateLimiter<Uuid, DashMapStateStore<Uuid>, GovernorClock, StateInformationMiddleware>;

/// Which limit a request ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    Session,
    User,
    Agent,
}

impl LimitKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LimitKind::Session => "session",
            LimitKind::User => "user",
            LimitKind::Agent => "agent",
        }
    }
}

/// What the `RateLimit-*` headers report: the tightest limit that applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateInfo {
    pub kind: LimitKind,
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the quota is whole again.
    pub reset_secs: u64,
}

/// A request over a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    pub info: RateInfo,
    /// Whole seconds until a request would be allowed (at least 1).
    pub retry_after_secs: u64,
}

/// The keys a request counts against.
#[derive(Debug, Clone, Copy, Default)]
pub struct RateKeys {
    pub session: Option<SessionId>,
    pub user: Option<UserId>,
    pub agent: Option<AgentId>,
}

struct Limit {
    kind: LimitKind,
    limiter: Limiter,
    quota: Quota,
}

pub struct RateLimits {
    clock: GovernorClock,
    session: Option<Limit>,
    user: Option<Limit>,
    agent: Option<Limit>,
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_millis().div_ceil(1000) as u64
}

impl Limit {
    fn new(kind: LimitKind, per: u32, window: Duration, clock: &GovernorClock) -> Option<Self> {
        let burst = NonZeroU32::new(per)?;
        let quota = Quota::with_period(window / per)?.allow_burst(burst);
        let limiter = RateLimiter::dashmap_with_clock(quota, clock.clone())
            .with_middleware::<StateInformationMiddleware>();
        Some(Self {
            kind,
            limiter,
            quota,
        })
    }

    fn check(&self, key: Uuid, clock: &GovernorClock) -> Result<RateInfo, Limited> {
        let limit = self.quota.burst_size().get();
        let interval = self.quota.replenish_interval();
        match self.limiter.check_key(&key) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                Ok(RateInfo {
                    kind: self.kind,
                    limit,
                    remaining,
                    reset_secs: ceil_secs(interval * (limit - remaining)),
                })
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(clock.now());
                Err(Limited {
                    info: RateInfo {
                        kind: self.kind,
                        limit,
                        remaining: 0,
                        reset_secs: ceil_secs(interval * limit),
                    },
                    retry_after_secs: ceil_secs(wait).max(1),
                })
            }
        }
    }
}

impl RateLimits {
    pub fn new(settings: RateLimitSettings, clock: Arc<dyn Clock>) -> Self {
        let clock = GovernorClock(clock);
        const MINUTE: Duration = Duration::from_secs(60);
        const HOUR: Duration = Duration::from_secs(3600);
        Self {
            session: Limit::new(
                LimitKind::Session,
                settings.session_per_minute,
                MINUTE,
                &clock,
            ),
            user: Limit::new(LimitKind::User, settings.user_per_hour, HOUR, &clock),
            agent: Limit::new(LimitKind::Agent, settings.agent_per_hour, HOUR, &clock),
            clock,
        }
    }

    /// Counts one request against every limit its keys name. `Ok(None)` when no limit
    /// applied; otherwise the tightest limit, or the first one exceeded.
    pub fn check(&self, keys: RateKeys) -> Result<Option<RateInfo>, Limited> {
        let applicable = [
            (&self.session, keys.session.map(|id| id.as_uuid())),
            (&self.user, keys.user.map(|id| id.as_uuid())),
            (&self.agent, keys.agent.map(|id| id.as_uuid())),
        ];
        let mut tightest: Option<RateInfo> = None;
        for (limit, key) in applicable {
            let (Some(limit), Some(key)) = (limit, key) else {
                continue;
            };
            let info = limit.check(key, &self.clock)?;
            if tightest.is_none_or(|t| info.remaining < t.remaining) {
                tightest = Some(info);
            }
        }
        Ok(tightest)
    }

    /// Drops the entries of keys idle for a whole window and returns how many remain.
    pub fn evict(&self) -> usize {
        [&self.session, &self.user, &self.agent]
            .into_iter()
            .flatten()
            .map(|l| {
                l.limiter.retain_recent();
                l.limiter.shrink_to_fit();
                l.limiter.len()
            })
            .sum()
    }

    /// How many keys are tracked.
    pub fn tracked(&self) -> usize {
        [&self.session, &self.user, &self.agent]
            .into_iter()
            .flatten()
            .map(|l| l.limiter.len())
            .sum()
    }
}

/// Remembered on the request by the authorization check, turned into headers on the way out.
#[derive(Debug, Clone, Copy)]
pub struct AppliedLimit(pub RateInfo);

/// Middleware: a request that counted against a limit answers the `RateLimit-*` headers,
/// whatever its status.
pub async fn headers(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let mut res = next.call(req).await?;
    let applied = res.request().extensions().get::<AppliedLimit>().copied();
    if let Some(AppliedLimit(info)) = applied {
        let headers = res.headers_mut();
        for (name, value) in [
            ("ratelimit-limit", info.limit as u64),
            ("ratelimit-remaining", info.remaining as u64),
            ("ratelimit-reset", info.reset_secs),
        ] {
            headers.insert(HeaderName::from_static(name), HeaderValue::from(value));
        }
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    const T0: i64 = 1_767_225_600_000;

    fn limits(clock: &ManualClock, session_per_minute: u32) -> RateLimits {
        RateLimits::new(
            RateLimitSettings {
                session_per_minute,
                user_per_hour: 0,
                agent_per_hour: 0,
            },
            Arc::new(clock.clone()),
        )
    }

    fn session(id: SessionId) -> RateKeys {
        RateKeys {
            session: Some(id),
            ..RateKeys::default()
        }
    }

    #[test]
    fn a_burst_is_allowed_then_refused_until_the_quota_refills() {
        let clock = ManualClock::new(T0);
        let limits = limits(&clock, 3);
        let id = SessionId::new_random();
        let remaining: Vec<u32> = (0..3)
            .map(|_| limits.check(session(id)).unwrap().unwrap().remaining)
            .collect();
        assert_eq!(remaining, [2, 1, 0]);
        let refused = limits.check(session(id)).unwrap_err();
        assert_eq!(refused.retry_after_secs, 20, "one request per 20 s refills");
        assert_eq!(refused.info.kind, LimitKind::Session);
        clock.advance_ms(20_000);
        assert!(limits.check(session(id)).is_ok());
        // Another session has its own quota.
        assert!(limits.check(session(SessionId::new_random())).is_ok());
    }

    #[test]
    fn no_keys_or_a_zero_limit_means_no_limit() {
        let clock = ManualClock::new(T0);
        let off = limits(&clock, 0);
        let id = SessionId::new_random();
        for _ in 0..100 {
            assert_eq!(off.check(session(id)).unwrap(), None);
        }
        let on = limits(&clock, 1);
        assert_eq!(on.check(RateKeys::default()).unwrap(), None);
    }

    #[test]
    fn idle_keys_are_evicted_so_memory_stays_bounded() {
        let clock = ManualClock::new(T0);
        let limits = limits(&clock, 60);
        for _ in 0..100_000 {
            limits.check(session(SessionId::new_random())).unwrap();
        }
        assert_eq!(limits.tracked(), 100_000);
        assert_eq!(limits.evict(), 100_000, "all still within their window");
        clock.advance_ms(61_000);
        assert_eq!(limits.evict(), 0);
    }
}

/// What a million keys cost: run with `cargo test --lib rate_limit::memory -- --ignored
/// --nocapture` (measured: about 51 MB for a million sessions within one window, back to
/// nothing once they are idle and evicted).
#[cfg(test)]
mod memory {
    use super::*;
    use crate::clock::ManualClock;

    fn rss_kib() -> u64 {
        let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
        statm
            .split_whitespace()
            .nth(1)
            .unwrap()
            .parse::<u64>()
            .unwrap()
            * 4
    }

    #[test]
    #[ignore = "measurement"]
    fn a_million_sessions() {
        let clock = ManualClock::new(1_767_225_600_000);
        let limits = RateLimits::new(RateLimitSettings::default(), Arc::new(clock.clone()));
        let before = rss_kib();
        for _ in 0..1_000_000 {
            limits
                .check(RateKeys {
                    session: Some(SessionId::new_random()),
                    ..RateKeys::default()
                })
                .unwrap();
        }
        let after = rss_kib();
        clock.advance_ms(61_000);
        assert_eq!(limits.evict(), 0);
        let evicted = rss_kib();
        println!("rss before {before} KiB, after 1M {after} KiB, after eviction {evicted} KiB");
        assert!(
            after - before < 100 * 1024,
            "a million keys stay under 100 MB"
        );
    }
}
