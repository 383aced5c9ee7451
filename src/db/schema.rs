// Written by hand: one schema for both backends (see migrations/sqlite and migrations/postgres).

diesel::table! {
    agents (id) {
        id -> Text,
        name -> Nullable<Text>,
        timeout_minutes -> Nullable<BigInt>,
        auto_renew -> Nullable<Bool>,
        max_duration_minutes -> Nullable<BigInt>,
        warning_threshold_minutes -> Nullable<BigInt>,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    sessions (id) {
        id -> Text,
        agent_id -> Text,
        user_id -> Text,
        status -> Text,
        metadata -> Text,
        timeout_minutes -> BigInt,
        auto_renew -> Bool,
        max_duration_minutes -> BigInt,
        warning_threshold_minutes -> BigInt,
        config_sources -> Text,
        created_at -> BigInt,
        last_activity -> BigInt,
        expires_at -> BigInt,
        renewal_count -> BigInt,
        closed_at -> Nullable<BigInt>,
        version -> BigInt,
        title -> Nullable<Text>,
        state -> Text,
        stage -> Text,
        end_reason -> Nullable<Text>,
    }
}

diesel::table! {
    messages (id) {
        id -> Text,
        session_id -> Text,
        seq -> BigInt,
        author_id -> Text,
        is_agent -> Bool,
        content -> Text,
        metadata -> Text,
        attachments -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    idempotency_outcomes (scope, idempotency_key) {
        scope -> Text,
        idempotency_key -> Text,
        request_hash -> Text,
        outcome -> Text,
        created_at -> BigInt,
    }
}

diesel::joinable!(messages -> sessions (session_id));

diesel::table! {
    api_keys (id) {
        id -> Text,
        name -> Nullable<Text>,
        secret_hash -> Text,
        scopes -> Text,
        agent_id -> Nullable<Text>,
        created_at -> BigInt,
        revoked_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    session_tokens (token_hash) {
        token_hash -> Text,
        session_id -> Text,
        user_id -> Text,
        agent_id -> Text,
        created_at -> BigInt,
    }
}

diesel::joinable!(session_tokens -> sessions (session_id));

diesel::allow_tables_to_appear_in_same_query!(
    agents,
    sessions,
    messages,
    idempotency_outcomes,
    api_keys,
    session_tokens,
    session_events,
    agent_feeds,
    expiry_warnings,
    session_participants
);

diesel::table! {
    session_events (session_id, seq) {
        session_id -> Text,
        seq -> BigInt,
        agent_id -> Text,
        agent_seq -> BigInt,
        event_type -> Text,
        payload -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    agent_feeds (agent_id) {
        agent_id -> Text,
        last_seq -> BigInt,
        purged_through -> BigInt,
    }
}

diesel::table! {
    expiry_warnings (session_id) {
        session_id -> Text,
        expires_at -> BigInt,
    }
}

diesel::table! {
    session_participants (session_id, user_id) {
        session_id -> Text,
        user_id -> Text,
        joined_at -> BigInt,
    }
}

diesel::joinable!(session_participants -> sessions (session_id));
