//! Use-cases: one function per operation. Each owns its transaction and asks the pure timeout
//! policy for every decision.

pub mod agents;
pub mod health;
pub mod sessions;
