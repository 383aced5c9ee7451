//! agent-sessions: a durable sessions service for conversational agents, speaking the ElizaOS
//! Sessions API.

pub mod api;
pub mod auth;
pub mod chat;
pub mod clock;
pub mod config;
pub mod db;
pub mod domain;
pub mod events;
pub mod json;
pub mod metrics;
pub mod openapi;
pub mod rate_limit;
pub mod reaper;
pub mod secret;
pub mod service;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod timeout;
pub mod validation;

pub use startup::Application;
