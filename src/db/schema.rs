//! The tables, the same on SQLite and PostgreSQL (see migrations/).

diesel::table! {
    users (id) {
        id -> Text,
        username -> Text,
        email -> Nullable<Text>,
        display_name -> Nullable<Text>,
        password_hash -> Nullable<Text>,
        is_admin -> Bool,
        is_external -> Bool,
        channel -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        status -> Text,
        last_login_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    external_identities (id) {
        id -> Text,
        user_id -> Text,
        provider_id -> Text,
        issuer -> Text,
        subject -> Text,
        valid_until -> Timestamp,
        refresh_token_enc -> Nullable<Text>,
        refresh_state -> Text,
        refresh_failures -> Integer,
        next_refresh_at -> Nullable<Timestamp>,
        lease_until -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    sessions (id) {
        id -> Text,
        user_id -> Text,
        token_hash -> Text,
        provider_id -> Nullable<Text>,
        provider_sid -> Nullable<Text>,
        id_token_enc -> Nullable<Text>,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        revoked_at -> Nullable<Timestamp>,
        method -> Text,
        ip -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        last_seen_at -> Timestamp,
    }
}

diesel::table! {
    api_tokens (id) {
        id -> Text,
        user_id -> Text,
        name -> Text,
        token_hash -> Text,
        scopes -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        last_used_at -> Nullable<Timestamp>,
        revoked_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    clients (id) {
        id -> Text,
        name -> Text,
        secret_hash -> Text,
        scopes -> Text,
        claims -> Text,
        created_at -> Timestamp,
        revoked_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    signing_keys (kid) {
        kid -> Text,
        alg -> Text,
        private_key_enc -> Text,
        public_jwk -> Text,
        created_at -> Timestamp,
        active_from -> Timestamp,
        retired_at -> Nullable<Timestamp>,
        publish_until -> Nullable<Timestamp>,
    }
}

diesel::table! {
    used_oidc_states (state_hash) {
        state_hash -> Text,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    device_codes (id) {
        id -> Text,
        device_code_hash -> Text,
        user_code_hash -> Text,
        client_id -> Text,
        scopes -> Nullable<Text>,
        status -> Text,
        interval_secs -> Integer,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        last_polled_at -> Nullable<Timestamp>,
        user_id -> Nullable<Text>,
        granted_scopes -> Nullable<Text>,
        decided_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    login_attempts (key) {
        key -> Text,
        window_start -> BigInt,
        attempts -> Integer,
    }
}

diesel::table! {
    audit_events (id) {
        id -> Text,
        at -> Timestamp,
        kind -> Text,
        outcome -> Text,
        username -> Nullable<Text>,
        actor -> Nullable<Text>,
        ip -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        detail -> Text,
    }
}

diesel::joinable!(external_identities -> users (user_id));
diesel::joinable!(sessions -> users (user_id));
diesel::joinable!(api_tokens -> users (user_id));
diesel::joinable!(device_codes -> users (user_id));

diesel::allow_tables_to_appear_in_same_query!(
    users,
    external_identities,
    sessions,
    api_tokens,
    clients,
    signing_keys,
    used_oidc_states,
    device_codes,
    login_attempts,
    audit_events,
);
