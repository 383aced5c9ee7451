//! Rows as stored. Conversion to domain types lives with the domain (src/service).

use diesel::prelude::*;

use super::schema::{agents, idempotency_keys, messages, sessions};

#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = agents, treat_none_as_null = true)]
pub struct AgentRow {
    pub id: String,
    pub name: Option<String>,
    pub timeout_minutes: Option<i64>,
    pub auto_renew: Option<bool>,
    pub max_duration_minutes: Option<i64>,
    pub warning_threshold_minutes: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = sessions)]
pub struct SessionRow {
    pub id: String,
    pub agent_id: String,
    pub user_id: String,
    pub status: String,
    pub metadata: String,
    pub timeout_minutes: i64,
    pub auto_renew: bool,
    pub max_duration_minutes: i64,
    pub warning_threshold_minutes: i64,
    pub config_sources: String,
    pub created_at: i64,
    pub last_activity: i64,
    pub expires_at: i64,
    pub renewal_count: i64,
    pub closed_at: Option<i64>,
    pub version: i64,
}

/// The mutable part of a session, written with an optimistic version check.
#[derive(Debug, Clone, AsChangeset)]
#[diesel(table_name = sessions)]
pub struct SessionChanges {
    pub timeout_minutes: i64,
    pub auto_renew: bool,
    pub max_duration_minutes: i64,
    pub warning_threshold_minutes: i64,
    pub config_sources: String,
    pub last_activity: i64,
    pub expires_at: i64,
    pub renewal_count: i64,
    pub version: i64,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = messages)]
pub struct MessageRow {
    pub id: String,
    pub session_id: String,
    pub seq: i64,
    pub author_id: String,
    pub is_agent: bool,
    pub content: String,
    pub metadata: String,
    pub attachments: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = idempotency_keys)]
pub struct IdempotencyRow {
    pub scope: String,
    pub idempotency_key: String,
    pub request_hash: String,
    pub status_code: i32,
    pub response_body: String,
    pub created_at: i64,
}
