//! Bearer tokens: /api-token-tap, scopes, listing and revocation, expiry,
//! external users' `valid_until`, and the Python SDK example.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::python::{python, run_python, tap, tap_with};
use crate::helpers::{assert_error, spawn, spawn_app, Backend, TestApp};

fn bearer(method: reqwest::Method, app: &TestApp, path: &str, token: &str) -> reqwest::RequestBuilder {
    reqwest::Client::new().request(method, app.url(path)).bearer_auth(token)
}

fn token_of(body: &Value) -> String {
    body["token"].as_str().unwrap().to_string()
}

async fn api_token_rows(app: &TestApp) -> Vec<(String, String, String)> {
    app.state
        .db
        .run(|conn| {
            use diesel::prelude::*;
            use doorman::db::schema::api_tokens::dsl::*;
            api_tokens.select((id, name, token_hash)).load::<(String, String, String)>(conn)
        })
        .await
        .unwrap()
}

async fn tap_mints_a_token_shown_once_and_stored_as_hash(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_user("alice", "correct horse", false);
    app.login("alice", "correct horse").await;
    let body = tap(&app).await;
    let token = token_of(&body);
    // A recognisable prefix and 256 random bits (43 base64url characters).
    assert!(token.starts_with("dmn_") && token.len() == 4 + 43, "{token}");
    assert_eq!(body["scopes"], json!(["account", "tokens"]));
    assert_eq!(body["name"], "api-token-tap");
    let expires: DateTime<Utc> = body["expires_at"].as_str().unwrap().parse().unwrap();
    let thirty_days = Utc::now() + chrono::Duration::days(30);
    assert!((expires - thirty_days).num_seconds().abs() < 60, "{expires}");

    let me = app.get_bearer("/me", &token).await;
    assert_eq!(me.status(), 200);
    assert_eq!(me.json::<Value>().await.unwrap()["username"], "alice");

    // Stored only as its SHA-256; the secret is in no column.
    let rows = api_token_rows(&app).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].0, body["id"]);
    assert_eq!(rows[0].2, doorman::crypto::sha256_hex(&token));
    let secret = &token[4..];
    assert!(!rows[0].0.contains(secret) && !rows[0].1.contains(secret) && !rows[0].2.contains(secret));

    // Each call mints a new token.
    assert_ne!(token_of(&tap(&app).await), token);

    // The listing shows metadata, never the secret or its hash.
    let listing = app.get("/api-tokens").await;
    assert_eq!(listing.status(), 200);
    let text = listing.text().await.unwrap();
    assert!(!text.contains(secret) && !text.contains(&rows[0].2), "{text}");
    let list: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2);
    let mine = list.as_array().unwrap().iter().find(|t| t["id"] == body["id"]).unwrap();
    assert_eq!(mine["name"], "api-token-tap");
    assert_eq!(mine["username"], "alice");
    assert_eq!(mine["scopes"], json!(["account", "tokens"]));
    // The bearer call above filled the cache: its use is recorded.
    assert!(mine["last_used_at"].is_string(), "{mine}");
    assert!(mine["created_at"].is_string() && mine["expires_at"].is_string());
    assert!(mine.get("token").is_none() && mine.get("token_hash").is_none());
}
both_backends!(tap_mints_a_token_shown_once_and_stored_as_hash);

async fn post_tap_narrows_name_scopes_and_ttl(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_user("alice", "correct horse", false);
    app.login("alice", "correct horse").await;

    let response = tap_with(&app, json!({"name": "ci runner", "scopes": ["account"], "ttl": "1h"})).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["name"], "ci runner");
    assert_eq!(body["scopes"], json!(["account"]));
    let expires: DateTime<Utc> = body["expires_at"].as_str().unwrap().parse().unwrap();
    assert!(((expires - Utc::now()).num_seconds() - 3600).abs() < 60, "{expires}");

    // The narrowed token reads /me but not the token list (scope `tokens`).
    let token = token_of(&body);
    assert_eq!(app.get_bearer("/me", &token).await.status(), 200);
    let refused = app.get_bearer("/api-tokens", &token).await;
    let challenge = refused.headers()["www-authenticate"].to_str().unwrap().to_string();
    assert!(challenge.contains("error=\"insufficient_scope\"") && challenge.contains("scope=\"tokens\""), "{challenge}");
    assert_error(refused, 403, "insufficient_scope").await;

    // ttl in seconds, and scopes as a space-separated string.
    let body: Value = tap_with(&app, json!({"scopes": "tokens account", "ttl": 120})).await.json().await.unwrap();
    assert_eq!(body["scopes"], json!(["account", "tokens"]));
    let expires: DateTime<Utc> = body["expires_at"].as_str().unwrap().parse().unwrap();
    assert!(((expires - Utc::now()).num_seconds() - 120).abs() < 30);

    // An empty POST is the default token.
    let response = app.post_empty("/api-token-tap").await;
    assert_eq!(response.status(), 200);

    // Never more than the user holds, nor longer than api_token_ttl.
    let body = assert_error(tap_with(&app, json!({"scopes": ["account", "users:read"]})).await, 403, "forbidden").await;
    assert!(body["message"].as_str().unwrap().contains("users:read"));
    assert_error(tap_with(&app, json!({"ttl": "31d"})).await, 400, "invalid_input").await;
    assert_error(tap_with(&app, json!({"ttl": 99_999_999_999u64})).await, 400, "invalid_input").await;
    assert_error(tap_with(&app, json!({"ttl": "1 hour"})).await, 400, "invalid_input").await;
    assert_error(tap_with(&app, json!({"ttl": 0})).await, 400, "invalid_input").await;
    assert_error(tap_with(&app, json!({"scopes": ["root"]})).await, 400, "invalid_input").await;
    assert_error(tap_with(&app, json!({"scopes": []})).await, 400, "invalid_input").await;
    assert_error(tap_with(&app, json!({"name": "x".repeat(101)})).await, 400, "invalid_input").await;
    assert_error(tap_with(&app, json!({"name": "a\u{7}b"})).await, 400, "invalid_input").await;
    assert_error(tap_with(&app, json!({"admin": true})).await, 400, "invalid_json").await;
    assert_error(tap_with(&app, json!({"scopes": 5})).await, 400, "invalid_json").await;
    let text = app.client.post(app.url("/api-token-tap")).header("X-CSRFToken", app.cookie("csrftoken").unwrap()).body("name=x");
    assert_error(text.header("content-type", "text/plain").send().await.unwrap(), 415, "unsupported_media_type").await;
    let big = json!({"name": "x".repeat(100_000)});
    assert_error(tap_with(&app, big).await, 413, "payload_too_large").await;

    // A cookie POST needs the CSRF header.
    let no_csrf = app.client.post(app.url("/api-token-tap")).json(&json!({})).send().await.unwrap();
    assert_error(no_csrf, 403, "csrf_failed").await;
    assert_eq!(api_token_rows(&app).await.len(), 3);
}
both_backends!(post_tap_narrows_name_scopes_and_ttl);

async fn admins_may_give_tokens_admin_scopes(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_user("root", "admin password", true);
    app.login("root", "admin password").await;
    let body: Value = tap(&app).await;
    assert_eq!(body["scopes"], json!(["account", "tokens", "users:read", "users:admin"]));
    let token = token_of(&body);
    assert_eq!(app.get_bearer("/users", &token).await.status(), 200);
    let read_only = token_of(&tap_with(&app, json!({"scopes": ["users:read"]})).await.json::<Value>().await.unwrap());
    assert_eq!(app.get_bearer("/users", &read_only).await.status(), 200);
    assert_error(app.get_bearer("/me", &read_only).await, 403, "insufficient_scope").await;
}
both_backends!(admins_may_give_tokens_admin_scopes);

async fn a_bearer_token_cannot_mint_bearer_tokens(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_user("alice", "correct horse", false);
    app.login("alice", "correct horse").await;
    let token = token_of(&tap(&app).await);
    let get = bearer(reqwest::Method::GET, &app, "/api-token-tap", &token).send().await.unwrap();
    assert_error(get, 403, "browser_session_required").await;
    let post = bearer(reqwest::Method::POST, &app, "/api-token-tap", &token).json(&json!({"ttl": "1h"})).send().await.unwrap();
    assert_error(post, 403, "browser_session_required").await;
    assert_eq!(api_token_rows(&app).await.len(), 1);
    // Nor can anyone without a session.
    assert_error(reqwest::Client::new().get(app.url("/api-token-tap")).send().await.unwrap(), 401, "not_authenticated").await;
}
both_backends!(a_bearer_token_cannot_mint_bearer_tokens);

async fn a_revoked_token_is_refused_at_once(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_user("alice", "correct horse", false);
    app.login("alice", "correct horse").await;
    let body = tap(&app).await;
    let (token, id) = (token_of(&body), body["id"].as_str().unwrap().to_string());
    let keep = token_of(&tap(&app).await);
    // Used once, so this instance has it cached.
    assert_eq!(app.get_bearer("/me", &token).await.status(), 200);

    // Cookie DELETE needs the CSRF header.
    let no_csrf = app.client.delete(app.url(&format!("/api-tokens/{id}"))).send().await.unwrap();
    assert_error(no_csrf, 403, "csrf_failed").await;
    assert_eq!(app.get_bearer("/me", &token).await.status(), 200);

    let revoked = app.delete(&format!("/api-tokens/{id}")).await;
    assert_eq!(revoked.status(), 204);
    let refused = app.get_bearer("/me", &token).await;
    assert!(refused.headers()["www-authenticate"].to_str().unwrap().contains("invalid_token"));
    assert_error(refused, 401, "invalid_token").await;
    assert_error(app.delete(&format!("/api-tokens/{id}")).await, 404, "not_found").await;
    let list: Value = app.get("/api-tokens").await.json().await.unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);

    // A token may revoke itself (scope `tokens`); the other one goes on working until then.
    assert_eq!(app.get_bearer("/me", &keep).await.status(), 200);
    let keep_id = list[0]["id"].as_str().unwrap();
    let own = bearer(reqwest::Method::DELETE, &app, &format!("/api-tokens/{keep_id}"), &keep).send().await.unwrap();
    assert_eq!(own.status(), 204);
    assert_error(app.get_bearer("/me", &keep).await, 401, "invalid_token").await;
}
both_backends!(a_revoked_token_is_refused_at_once);

async fn other_peoples_tokens_are_not_found_unless_admin(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_user("root", "admin password", true);
    app.create_user("alice", "correct horse", false);
    app.create_user("bob", "bob password", false);
    app.login("alice", "correct horse").await;
    let alice = tap(&app).await;
    app.login("bob", "bob password").await;
    let bob = tap(&app).await;

    // Bob sees only his own, cannot see everyone's, cannot revoke Alice's.
    let list: Value = app.get("/api-tokens").await.json().await.unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["id"], bob["id"]);
    assert_error(app.get("/api-tokens?all=true").await, 403, "insufficient_scope").await;
    assert_error(app.get("/api-tokens?all=maybe").await, 400, "invalid_query").await;
    let alice_id = alice["id"].as_str().unwrap();
    assert_error(app.delete(&format!("/api-tokens/{alice_id}")).await, 404, "not_found").await;
    assert_error(app.delete("/api-tokens/not-a-uuid").await, 404, "not_found").await;
    assert_error(app.delete(&format!("/api-tokens/{}", uuid::Uuid::new_v4())).await, 404, "not_found").await;
    assert_eq!(app.get_bearer("/me", &token_of(&alice)).await.status(), 200);

    // An admin, here through a bearer token with users:admin, lists everyone's and revokes any.
    app.login("root", "admin password").await;
    let admin_token = token_of(&tap(&app).await);
    let all: Value =
        bearer(reqwest::Method::GET, &app, "/api-tokens?all=true", &admin_token).send().await.unwrap().json().await.unwrap();
    let mut owners: Vec<&str> = all.as_array().unwrap().iter().map(|t| t["username"].as_str().unwrap()).collect();
    owners.sort();
    assert_eq!(owners, ["alice", "bob", "root"]);
    let own_only: Value =
        bearer(reqwest::Method::GET, &app, "/api-tokens", &admin_token).send().await.unwrap().json().await.unwrap();
    assert_eq!(own_only.as_array().unwrap().len(), 1);
    let bob_id = bob["id"].as_str().unwrap();
    let response = bearer(reqwest::Method::DELETE, &app, &format!("/api-tokens/{bob_id}"), &admin_token).send().await.unwrap();
    assert_eq!(response.status(), 204);
    assert_error(app.get_bearer("/me", &token_of(&bob)).await, 401, "invalid_token").await;
    assert_eq!(app.get_bearer("/me", &token_of(&alice)).await.status(), 200);
}
both_backends!(other_peoples_tokens_are_not_found_unless_admin);

async fn an_expired_token_is_refused(backend: Backend) {
    let app = spawn(backend).with(|s| s.auth.api_token_ttl = Duration::from_secs(2).into()).start().await;
    app.create_user("alice", "correct horse", false);
    app.login("alice", "correct horse").await;
    let body = tap(&app).await;
    let token = token_of(&body);
    assert_eq!(app.get_bearer("/me", &token).await.status(), 200);
    app.advance(Duration::from_millis(2300));
    assert_error(app.get_bearer("/me", &token).await, 401, "invalid_token").await;
    // Gone from the listing too.
    let list: Value = app.get("/api-tokens").await.json().await.unwrap();
    assert_eq!(list, json!([]));
}
both_backends!(an_expired_token_is_refused);

/// An external user (as single sign-on makes them) with `valid_until`, and
/// a token of theirs put straight into the database.
async fn external_user_with_token(app: &TestApp, name: &str, valid_until: chrono::NaiveDateTime) -> String {
    let token = format!("dmn_{}", doorman::crypto::random_token(32));
    let hash = doorman::crypto::sha256_hex(&token);
    let name = name.to_string();
    let now = app.clock.now_naive();
    app.state
        .db
        .run(move |conn| {
            use doorman::db;
            let username = doorman::identity::users::Username::parse(&name).unwrap();
            let user = doorman::identity::users::new_user_row(&username, None, false, true, "default", now);
            db::users::insert(conn, &user)?;
            db::identities::insert(
                conn,
                &db::identities::IdentityRow {
                    id: db::new_id(),
                    user_id: user.id.clone(),
                    provider_id: "example".into(),
                    issuer: "https://idp.example.com".into(),
                    subject: format!("subject-{name}"),
                    valid_until,
                    refresh_token_enc: None,
                    refresh_state: "none".into(),
                    refresh_failures: 0,
                    next_refresh_at: None,
                    lease_until: None,
                    created_at: now,
                    updated_at: now,
                },
            )?;
            db::api_tokens::insert(
                conn,
                &db::api_tokens::ApiTokenRow {
                    id: db::new_id(),
                    user_id: user.id,
                    name: "sdk".into(),
                    token_hash: hash,
                    scopes: "account tokens".into(),
                    created_at: now,
                    expires_at: now + chrono::Duration::days(1),
                    last_used_at: None,
                    revoked_at: None,
                },
            )
        })
        .await
        .unwrap();
    token
}

async fn external_users_tokens_end_at_valid_until(backend: Backend) {
    let app = spawn_app(backend).await;
    let now = app.clock.now_naive();
    let vouched = external_user_with_token(&app, "erin", now + chrono::Duration::hours(1)).await;
    let lapsed = external_user_with_token(&app, "frank", now - chrono::Duration::seconds(1)).await;
    let me: Value = app.get_bearer("/me", &vouched).await.json().await.unwrap();
    assert_eq!(me["username"], "erin");
    assert_eq!(me["is_external_user"], true);
    assert_error(app.get_bearer("/me", &lapsed).await, 401, "sign_in_again").await;
    // Nor does it get a service JWT.
    let response = reqwest::Client::new().post(app.url("/token")).bearer_auth(&lapsed).send().await.unwrap();
    assert_error(response, 401, "sign_in_again").await;
}
both_backends!(external_users_tokens_end_at_valid_until);

async fn python_client_prints_the_username(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_user("alice", "correct horse", false);
    app.login("alice", "correct horse").await;
    let token = token_of(&tap(&app).await);
    let stdout =
        python(vec!["examples/python/client.py".into(), app.address.clone()], vec![("DOORMAN_TOKEN".into(), token.clone())])
            .await;
    assert_eq!(stdout.trim(), "alice");
    // The token as an argument works too; a wrong one fails with doorman's error.
    let stdout = python(vec!["examples/python/client.py".into(), app.address.clone(), token], vec![]).await;
    assert_eq!(stdout.trim(), "alice");
    let out = run_python(vec!["examples/python/client.py".into(), app.address.clone(), "dmn_wrong".into()], vec![]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("401 invalid_token"), "{stderr}");
}
both_backends!(python_client_prints_the_username);
