//! Service JWTs: `POST /token` for users and machine clients, the JWKS,
//! key rotation across processes, two instances starting at once, and the
//! Python verifier example.

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::python::{python, run_python, tap, tap_with};
use crate::helpers::{assert_error, fresh_database, spawn, spawn_app, Backend, TestApp, SECRET_KEY};

/// The doorman binary on the app's database and secret key.
fn doorman(app: &TestApp, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_doorman"));
    cmd.env_remove("DOORMAN_CONFIG").env("RUST_LOG", "warn");
    for (key, _) in std::env::vars() {
        if key.starts_with("DOORMAN__") {
            cmd.env_remove(key);
        }
    }
    let out = cmd
        .env("DOORMAN__DATABASE__URL", &app.db_url)
        .env("DOORMAN__AUTH__SECRET_KEY", SECRET_KEY)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "doorman {args:?}: {}, stderr {:?}, stdout {:?}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    out
}

/// `doorman create-client`: (client id, secret).
fn create_client(app: &TestApp, args: &[&str]) -> (String, String) {
    let mut all = vec!["create-client"];
    all.extend_from_slice(args);
    let out = doorman(app, &all);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let field = |name: &str| {
        stdout.lines().find_map(|l| l.strip_prefix(name)).unwrap_or_else(|| panic!("no {name} in {stdout}")).trim().to_string()
    };
    (field("client_id:"), field("client_secret:"))
}

async fn jwks(app: &TestApp) -> Value {
    let response = app.get("/.well-known/jwks.json").await;
    assert_eq!(response.status(), 200);
    assert!(response.headers()["cache-control"].to_str().unwrap().contains("max-age"));
    response.json().await.unwrap()
}

/// Verifies `token` with the app's JWKS only, as another service would; its claims.
async fn verify(app: &TestApp, token: &str, audience: &str) -> Value {
    verify_with(app, &app.address, token, audience).await
}

/// Verifies `token` from `issuer` with the JWKS that `app` publishes.
async fn verify_with(app: &TestApp, issuer: &str, token: &str, audience: &str) -> Value {
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.alg, Algorithm::EdDSA);
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    let kid = header.kid.expect("kid");
    let set = jwks(app).await;
    let jwk = set["keys"].as_array().unwrap().iter().find(|k| k["kid"] == kid.as_str()).expect("kid published");
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(jwk.clone()).unwrap();
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_audience(&[audience]);
    validation.set_issuer(&[issuer]);
    validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
    jsonwebtoken::decode::<Value>(token, &DecodingKey::from_jwk(&jwk).unwrap(), &validation).unwrap().claims
}

async fn post_token(app: &TestApp, token: &str, form: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(app.url("/token"))
        .bearer_auth(token)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form.to_string())
        .send()
        .await
        .unwrap()
}

async fn client_credentials(app: &TestApp, id: &str, secret: &str, form: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(app.url("/token"))
        .basic_auth(id, Some(secret))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form.to_string())
        .send()
        .await
        .unwrap()
}

async fn user_id(app: &TestApp, name: &str) -> String {
    let name = name.to_string();
    app.state.db.run(move |conn| doorman::db::users::find_by_username(conn, &name)).await.unwrap().unwrap().id
}

async fn jwks_publishes_one_encrypted_ed25519_key(backend: Backend) {
    let app = spawn_app(backend).await;
    let set = jwks(&app).await;
    let keys = set["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    let key = &keys[0];
    assert_eq!(
        (&key["kty"], &key["crv"], &key["alg"], &key["use"]),
        (&json!("OKP"), &json!("Ed25519"), &json!("EdDSA"), &json!("sig"))
    );
    assert!(key["kid"].is_string() && key.get("d").is_none(), "{key}");
    let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(key["x"].as_str().unwrap()).unwrap();
    assert_eq!(x.len(), 32);
    // The private half is stored sealed, not as its seed.
    let rows = app.state.db.run(doorman::db::signing_keys::all).await.unwrap();
    assert_eq!(rows.len(), 1);
    let sealed = &rows[0].private_key_enc;
    let seed = app.open_sealed(&format!("signing_key:{}", rows[0].kid), sealed);
    assert!(!sealed.contains(&seed));
    assert_eq!(rows[0].kid, key["kid"]);
}
both_backends!(jwks_publishes_one_encrypted_ed25519_key);

async fn a_bearer_token_trades_for_a_verifiable_jwt(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_user("alice", "correct horse", false);
    app.login("alice", "correct horse").await;
    let tapped = tap(&app).await;
    let token = tapped["token"].as_str().unwrap();

    let response = post_token(&app, token, "").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 300);
    assert_eq!(body["scope"], "account tokens");
    let jwt = body["access_token"].as_str().unwrap();
    let claims = verify(&app, jwt, &app.address).await;
    assert_eq!(claims["iss"], app.address.as_str());
    assert_eq!(claims["sub"], user_id(&app, "alice").await.as_str());
    assert_eq!(claims["scope"], "account tokens");
    assert_eq!(claims["client_id"], format!("api-token:{}", tapped["id"].as_str().unwrap()));
    assert_eq!(claims["preferred_username"], "alice");
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 300);
    assert!(uuid::Uuid::parse_str(claims["jti"].as_str().unwrap()).is_ok());

    // Fewer scopes and an audience, as a form or as JSON; a new jti each time.
    let body: Value = post_token(&app, token, "scope=account&audience=queue-service").await.json().await.unwrap();
    assert_eq!(body["scope"], "account");
    let narrowed = verify(&app, body["access_token"].as_str().unwrap(), "queue-service").await;
    assert_eq!(narrowed["scope"], "account");
    assert_ne!(narrowed["jti"], claims["jti"]);
    let json_body =
        reqwest::Client::new().post(app.url("/token")).bearer_auth(token).json(&json!({"audience": "a"})).send().await.unwrap();
    assert_eq!(json_body.status(), 200);

    // Never more than the token holds.
    let body = assert_error(post_token(&app, token, "scope=account+users:admin").await, 400, "invalid_scope").await;
    assert!(body["message"].as_str().unwrap().contains("users:admin"));
    assert_error(post_token(&app, token, "scope=root").await, 400, "invalid_scope").await;
    let narrow = tap_with(&app, json!({"scopes": ["tokens"]})).await.json::<Value>().await.unwrap();
    let narrow = narrow["token"].as_str().unwrap();
    assert_error(post_token(&app, narrow, "scope=account").await, 400, "invalid_scope").await;
    // A token without the scope `tokens` gets none.
    let account_only = tap_with(&app, json!({"scopes": ["account"]})).await.json::<Value>().await.unwrap();
    let refused = post_token(&app, account_only["token"].as_str().unwrap(), "").await;
    assert!(refused.headers()["www-authenticate"].to_str().unwrap().contains("scope=\"tokens\""));
    assert_error(refused, 403, "insufficient_scope").await;
}
both_backends!(a_bearer_token_trades_for_a_verifiable_jwt);

async fn a_browser_session_gets_a_jwt_with_csrf(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_user("alice", "correct horse", false);
    app.login("alice", "correct horse").await;
    let no_csrf = app.client.post(app.url("/token")).send().await.unwrap();
    assert_error(no_csrf, 403, "csrf_failed").await;
    let response = app.post_empty("/token").await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let claims = verify(&app, body["access_token"].as_str().unwrap(), &app.address).await;
    assert_eq!(claims["client_id"], "browser-session");
    assert_eq!(claims["preferred_username"], "alice");
    assert_eq!(claims["channel"], "default");
    // Nobody at all: 401.
    assert_error(reqwest::Client::new().post(app.url("/token")).send().await.unwrap(), 401, "not_authenticated").await;
}
both_backends!(a_browser_session_gets_a_jwt_with_csrf);

async fn clients_trade_credentials_for_jwts_with_their_claims(backend: Backend) {
    let app = spawn_app(backend).await;
    let (id, secret) = create_client(
        &app,
        &["queue-runner", "--scopes", "queue:submit queue:read", "--claims", r#"{"queues": {"gpu": 10, "cpu": 1}}"#],
    );
    assert!(secret.starts_with("dmc_") && secret.len() == 4 + 43, "{secret}");

    let response = client_credentials(&app, &id, &secret, "grant_type=client_credentials").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["scope"], "queue:submit queue:read");
    let claims = verify(&app, body["access_token"].as_str().unwrap(), &app.address).await;
    assert_eq!(claims["sub"], id.as_str());
    assert_eq!(claims["client_id"], id.as_str());
    assert_eq!(claims["scope"], "queue:submit queue:read");
    assert_eq!(claims["queues"], json!({"gpu": 10, "cpu": 1}));

    let body: Value = client_credentials(&app, &id, &secret, "grant_type=client_credentials&scope=queue:read&audience=queue")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(verify(&app, body["access_token"].as_str().unwrap(), "queue").await["scope"], "queue:read");
    assert_error(
        client_credentials(&app, &id, &secret, "grant_type=client_credentials&scope=queue:admin").await,
        400,
        "invalid_scope",
    )
    .await;
    assert_error(client_credentials(&app, &id, &secret, "grant_type=password").await, 400, "unsupported_grant_type").await;
    assert_error(client_credentials(&app, &id, &secret, "").await, 400, "invalid_request").await;

    // The secret is stored only as its SHA-256.
    let rows = app
        .state
        .db
        .run(|conn| {
            use diesel::prelude::*;
            use doorman::db::schema::clients::dsl::*;
            clients.select((secret_hash, claims, scopes)).load::<(String, String, String)>(conn)
        })
        .await
        .unwrap();
    assert_eq!(rows[0].0, doorman::crypto::sha256_hex(&secret));
    assert!(!format!("{rows:?}").contains(&secret[4..]));

    // Wrong credentials: 401 invalid_client with a Basic challenge.
    for (who, password) in [(id.as_str(), "dmc_wrong"), ("no-such-client", secret.as_str()), ("", "")] {
        let response = client_credentials(&app, who, password, "grant_type=client_credentials").await;
        assert_eq!(response.headers()["www-authenticate"], "Basic realm=\"doorman\"");
        assert_error(response, 401, "invalid_client").await;
    }
    let no_auth = reqwest::Client::new()
        .post(app.url("/token"))
        .form(&[("grant_type", "client_credentials"), ("client_id", id.as_str()), ("client_secret", secret.as_str())])
        .send()
        .await
        .unwrap();
    assert_error(no_auth, 401, "invalid_client").await;
    let garbled = reqwest::Client::new()
        .post(app.url("/token"))
        .header("authorization", "Basic %%%")
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_error(garbled, 401, "invalid_client").await;

    // Repeated failures slow the client down: even the right secret waits.
    for _ in 0..4 {
        assert_eq!(client_credentials(&app, &id, "dmc_wrong", "grant_type=client_credentials").await.status(), 401);
    }
    let throttled = client_credentials(&app, &id, &secret, "grant_type=client_credentials").await;
    assert!(throttled.headers().contains_key("retry-after"));
    assert_error(throttled, 429, "too_many_attempts").await;
}
both_backends!(clients_trade_credentials_for_jwts_with_their_claims);

async fn create_client_refuses_bad_input(backend: Backend) {
    let app = spawn_app(backend).await;
    let run = |args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_doorman"));
        cmd.env("DOORMAN__DATABASE__URL", &app.db_url).env("DOORMAN__AUTH__SECRET_KEY", SECRET_KEY).env("RUST_LOG", "warn");
        cmd.arg("create-client").args(args).output().unwrap()
    };
    for (args, expected) in [
        (vec!["c1", "--scopes", "a", "--claims", r#"{"sub": "root"}"#], "\"sub\" is set by doorman"),
        (vec!["c1", "--scopes", "a", "--claims", "[1]"], "JSON object"),
        (vec!["c1", "--scopes", "a\"b"], "not a valid scope"),
        (vec!["c1"], "--scopes"),
    ] {
        let out = run(&args);
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains(expected), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    create_client(&app, &["c1", "--scopes", "a"]);
    let out = run(&["c1", "--scopes", "a"]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("already exists"));
}
both_backends!(create_client_refuses_bad_input);

async fn bad_token_requests_are_4xx(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_user("alice", "correct horse", false);
    app.login("alice", "correct horse").await;
    let token = tap(&app).await["token"].as_str().unwrap().to_string();
    let send = |content_type: &'static str, body: String| {
        reqwest::Client::new().post(app.url("/token")).bearer_auth(&token).header("content-type", content_type).body(body).send()
    };
    assert_error(send("text/plain", "scope=account".into()).await.unwrap(), 415, "unsupported_media_type").await;
    assert_error(send("application/json", "{\"scope\": ".into()).await.unwrap(), 400, "invalid_request").await;
    assert_error(send("application/json", "{\"bogus\": 1}".into()).await.unwrap(), 400, "invalid_request").await;
    assert_error(
        send("application/json", format!("{{\"scope\": \"{}\"}}", "a".repeat(100_000))).await.unwrap(),
        413,
        "payload_too_large",
    )
    .await;
    let form = "application/x-www-form-urlencoded";
    assert_error(send(form, "audience=two%20words".into()).await.unwrap(), 400, "invalid_request").await;
    assert_error(send(form, format!("audience={}", "a".repeat(201))).await.unwrap(), 400, "invalid_request").await;
    assert_error(send(form, "scope=account&scope=tokens".into()).await.unwrap(), 400, "invalid_request").await;
    assert_error(send(form, "grant_type=authorization_code".into()).await.unwrap(), 400, "unsupported_grant_type").await;
    assert_error(send(form, "grant_type=client_credentials".into()).await.unwrap(), 401, "invalid_client").await;
    assert_error(send(form, "scope=".into()).await.unwrap(), 400, "invalid_scope").await;
    // Unknown form parameters are ignored, as OAuth asks.
    assert_eq!(send(form, "%ff%fe=%ff&resource=x".into()).await.unwrap().status(), 200);
    let response = app.get("/token").await;
    assert_eq!(response.headers()["allow"], "POST");
    assert_error(response, 405, "method_not_allowed").await;
}
both_backends!(bad_token_requests_are_4xx);

/// A service JWT for the app's browser session.
async fn session_jwt(app: &TestApp) -> String {
    let body: Value = app.post_empty("/token").await.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_string()
}

async fn rotated_keys_are_published_before_they_sign(backend: Backend) {
    // cache_ttl = 1s: the instance rereads the keys after a second.
    let app = spawn(backend).with(|s| s.auth.cache_ttl = Duration::from_secs(1).into()).start().await;
    app.create_user("alice", "correct horse", false);
    app.login("alice", "correct horse").await;
    let first = jwks(&app).await["keys"][0]["kid"].as_str().unwrap().to_string();
    let before = session_jwt(&app).await;

    // Another process adds a key that signs in 4 seconds.
    let out = doorman(&app, &["rotate-keys", "--delay", "4s"]);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(stdout.contains("published now") && stdout.contains("stay published until"), "{stdout}");
    // Past cache_ttl (real time): the instance has reread the keys.
    tokio::time::sleep(Duration::from_millis(1300)).await;

    // Published at once, but the old key still signs.
    let set = jwks(&app).await;
    let kids: Vec<&str> = set["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap()).collect();
    assert_eq!(kids.len(), 2, "{set}");
    let second = kids.iter().find(|k| **k != first).unwrap().to_string();
    let during = session_jwt(&app).await;
    assert_eq!(jsonwebtoken::decode_header(&during).unwrap().kid.unwrap(), first);

    // Once active, the new key signs; the old one stays published for the old tokens.
    app.advance(Duration::from_secs(4));
    let after = session_jwt(&app).await;
    assert_eq!(jsonwebtoken::decode_header(&after).unwrap().kid.unwrap(), second);
    for token in [&before, &during, &after] {
        assert_eq!(verify(&app, token, &app.address).await["preferred_username"], "alice");
    }
    let rows = app.state.db.run(doorman::db::signing_keys::all).await.unwrap();
    let old = rows.iter().find(|r| r.kid == first).unwrap();
    let new = rows.iter().find(|r| r.kid == second).unwrap();
    assert_eq!(old.retired_at, Some(new.active_from));
    // Published until its last token (5 minutes) has expired, plus a minute of clock skew.
    assert_eq!(old.publish_until, Some(new.active_from + chrono::Duration::seconds(360)));
}
both_backends!(rotated_keys_are_published_before_they_sign);

async fn two_instances_starting_at_once_share_one_key(backend: Backend) {
    let (url, _dir) = fresh_database(backend);
    // Migrate first, as a deployment does; then start both at once on the empty key table.
    doorman::db::Db::connect(&doorman::config::DatabaseUrl::parse(&url).unwrap(), 1).unwrap();
    let (a, b) = tokio::join!(spawn(backend).on_database(&url).start(), spawn(backend).on_database(&url).start());
    let rows = a.state.db.run(doorman::db::signing_keys::all).await.unwrap();
    assert_eq!(rows.len(), 1, "{:?}", rows.iter().map(|r| &r.kid).collect::<Vec<_>>());
    assert_eq!(jwks(&a).await, jwks(&b).await);

    // A token from one instance verifies with the other's keys.
    a.create_user("alice", "correct horse", false);
    a.login("alice", "correct horse").await;
    let token = tap(&a).await["token"].as_str().unwrap().to_string();
    let body: Value = post_token(&b, &token, "").await.json().await.unwrap();
    let claims = verify_with(&a, &b.address, body["access_token"].as_str().unwrap(), &b.address).await;
    assert_eq!(claims["preferred_username"], "alice");
}
both_backends!(two_instances_starting_at_once_share_one_key);

async fn python_verifies_a_jwt_with_the_published_keys(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_user("alice", "correct horse", false);
    app.login("alice", "correct horse").await;
    let token = tap(&app).await["token"].as_str().unwrap().to_string();
    let body: Value = post_token(&app, &token, "").await.json().await.unwrap();
    let jwt = body["access_token"].as_str().unwrap().to_string();
    let stdout = python(vec!["examples/python/verify_jwt.py".into(), app.address.clone(), jwt.clone()], vec![]).await;
    let claims: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|_| panic!("not JSON: {stdout}"));
    assert_eq!(claims["sub"], user_id(&app, "alice").await.as_str());
    assert_eq!(claims["preferred_username"], "alice");
    assert_eq!(claims["scope"], "account tokens");

    // With an audience asked for, and a client's token with its claims.
    let (id, secret) = create_client(&app, &["worker", "--scopes", "queue:submit", "--claims", r#"{"queues": {"gpu": 10}}"#]);
    let body: Value =
        client_credentials(&app, &id, &secret, "grant_type=client_credentials&audience=queue").await.json().await.unwrap();
    let args = vec![
        "examples/python/verify_jwt.py".into(),
        app.address.clone(),
        body["access_token"].as_str().unwrap().into(),
        "--audience".into(),
        "queue".into(),
    ];
    let claims: Value = serde_json::from_str(python(args, vec![]).await.trim()).unwrap();
    assert_eq!(claims["queues"], json!({"gpu": 10}));

    // A tampered token or the wrong audience does not verify.
    let mut parts: Vec<String> = jwt.split('.').map(str::to_string).collect();
    parts[1] = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(
        serde_json::to_vec(&json!({"sub": "root", "iss": app.address, "aud": app.address, "exp": 4_000_000_000u64})).unwrap(),
    );
    for args in [
        vec!["examples/python/verify_jwt.py".to_string(), app.address.clone(), parts.join(".")],
        vec!["examples/python/verify_jwt.py".to_string(), app.address.clone(), jwt, "--audience".into(), "other".into()],
    ] {
        let out = run_python(args, vec![]).await;
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("invalid token"), "{}", String::from_utf8_lossy(&out.stderr));
    }
}
both_backends!(python_verifies_a_jwt_with_the_published_keys);
