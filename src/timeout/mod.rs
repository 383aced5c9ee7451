//! The timeout engine: pure policy, no I/O. `now` is always passed in.

pub mod policy;

pub use policy::{
    ConfigSource, ConfigSources, EffectiveConfig, PartialTimeoutConfig, RenewalError,
    TimeoutConfig, TimeoutLimits,
};
