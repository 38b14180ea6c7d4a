//! Command-line sign-in (RFC 8628): the tool's codes, the approval page,
//! every answer of the polls, the wrong-code limit, the metadata, and the
//! same-site rule of `GET /api-token-tap`.

use std::time::Duration;

use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::device::assert_oauth_error;
use crate::helpers::{assert_error, spawn_app, Backend, TestApp};

const TOOL: &str = "doorman-python";

async fn signed_in(backend: Backend, admin: bool) -> TestApp {
    let app = spawn_app(backend).await;
    app.create_user("alice", "correct horse", admin);
    assert_eq!(app.login("alice", "correct horse").await.status(), 200);
    app
}

fn code_of(answer: &Value, key: &str) -> String {
    answer[key].as_str().unwrap().to_string()
}

async fn stored_codes(app: &TestApp) -> Vec<String> {
    app.state
        .db
        .run(|conn| {
            use diesel::prelude::*;
            use doorman::db::schema::device_codes::dsl::*;
            device_codes
                .select((device_code_hash, user_code_hash, client_id, status))
                .load::<(String, String, String, String)>(conn)
        })
        .await
        .unwrap()
        .into_iter()
        .flat_map(|(a, b, c, d)| [a, b, c, d])
        .collect()
}

async fn full_flow_ends_in_one_listed_api_token(backend: Backend) {
    let app = signed_in(backend, false).await;
    let answer = app.device_authorize(&[("client_id", TOOL)]).await;
    let (device_code, user_code) = (code_of(&answer, "device_code"), code_of(&answer, "user_code"));
    assert_eq!(answer["verification_uri"], format!("{}/device", app.address));
    assert_eq!(answer["verification_uri_complete"], format!("{}/device?user_code={user_code}", app.address));
    assert_eq!((answer["expires_in"].as_u64(), answer["interval"].as_u64()), (Some(600), Some(5)));
    assert!(device_code.starts_with("dmd_"));
    assert_eq!(user_code.len(), 9);
    assert_eq!(&user_code[4..5], "-");
    assert!(user_code.chars().filter(|c| *c != '-').all(|c| "BCDFGHJKLMNPQRSTVWXZ".contains(c)), "{user_code}");

    // Neither code is stored in clear.
    let stored = stored_codes(&app).await;
    assert!(stored.iter().all(|v| !v.contains(&device_code) && !v.contains(&user_code.replace('-', ""))), "{stored:?}");

    // Until the user decides: pending, with error_description.
    assert_oauth_error(app.device_poll(&device_code, TOOL).await, "authorization_pending").await;

    // The page: typed in lower case without the dash, it shows the request.
    let typed = user_code.replace('-', "").to_lowercase();
    let page = app.device_page(&typed).await;
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["cache-control"], "no-store");
    let html = page.text().await.unwrap();
    assert!(html.contains(TOOL), "{html}");
    assert!(html.contains("everything your account may do"));
    assert!(html.contains("Only approve a request you started yourself"));
    assert!(html.contains(&user_code));
    assert!(html.contains("id=\"created\""));
    assert!(html.contains(&format!("value=\"{}\"", app.cookie("csrftoken").unwrap())));

    let approved = app.device_decide(&user_code, "approve").await;
    assert_eq!(approved.status(), 200);
    assert!(approved.text().await.unwrap().contains("data-outcome=\"approved\""));

    // Exactly once: the token, then invalid_grant.
    app.advance(Duration::from_secs(6));
    let success = app.device_poll(&device_code, TOOL).await;
    assert_eq!(success.status(), 200);
    assert_eq!(success.headers()["cache-control"], "no-store");
    let token: Value = success.json().await.unwrap();
    assert_eq!(token["token_type"], "Bearer");
    assert_eq!(token["scope"], "account tokens");
    let expires_in = token["expires_in"].as_i64().unwrap();
    assert!((30 * 86400 - 60..=30 * 86400).contains(&expires_in), "{token}");
    let bearer = code_of(&token, "access_token");
    assert!(bearer.starts_with("dmn_"));
    assert_oauth_error(app.device_poll(&device_code, TOOL).await, "invalid_grant").await;

    // An ordinary API token: it works, it is listed under the tool's label, it can be revoked.
    let me: Value = app.get_bearer("/me", &bearer).await.json().await.unwrap();
    assert_eq!(me["username"], "alice");
    let listed: Value = app.get("/api-tokens").await.json().await.unwrap();
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["name"], TOOL);
    assert_eq!(app.delete(&format!("/api-tokens/{}", listed[0]["id"].as_str().unwrap())).await.status(), 204);
    assert_error(app.get_bearer("/me", &bearer).await, 401, "invalid_token").await;

    // A decided code cannot be decided again.
    let again = app.device_decide(&user_code, "deny").await;
    assert_eq!(again.status(), 409);
    assert!(again.text().await.unwrap().contains("already"));
}
both_backends!(full_flow_ends_in_one_listed_api_token);

async fn slow_down_denied_and_expired(backend: Backend) {
    let app = signed_in(backend, false).await;
    // JSON works as well as a form.
    let answer: Value = reqwest::Client::new()
        .post(app.url("/oauth/device_authorization"))
        .json(&json!({"client_id": TOOL, "scope": "tokens"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let device_code = code_of(&answer, "device_code");

    // Too fast: slow_down, and the interval grows by 5 s each time (stored).
    assert_oauth_error(app.device_poll(&device_code, TOOL).await, "authorization_pending").await;
    let slow = assert_oauth_error(app.device_poll(&device_code, TOOL).await, "slow_down").await;
    assert!(slow["message"].as_str().unwrap().contains("10 s"), "{slow}");
    app.advance(Duration::from_secs(6));
    let slower = assert_oauth_error(app.device_poll(&device_code, TOOL).await, "slow_down").await;
    assert!(slower["message"].as_str().unwrap().contains("15 s"), "{slower}");
    app.advance(Duration::from_secs(16));
    assert_oauth_error(app.device_poll(&device_code, TOOL).await, "authorization_pending").await;

    // Another client_id cannot use the code.
    assert_oauth_error(app.device_poll(&device_code, "other-tool").await, "invalid_grant").await;

    // Denied: access_denied, and so it stays.
    let denied = app.device_decide(&code_of(&answer, "user_code"), "deny").await;
    assert_eq!(denied.status(), 200);
    assert!(denied.text().await.unwrap().contains("data-outcome=\"denied\""));
    app.advance(Duration::from_secs(16));
    assert_oauth_error(app.device_poll(&device_code, TOOL).await, "access_denied").await;
    assert_eq!(app.get("/api-tokens").await.json::<Value>().await.unwrap().as_array().unwrap().len(), 0);

    // Past ten minutes: expired_token, and the page no longer knows the code.
    let late = app.device_authorize(&[("client_id", TOOL)]).await;
    app.advance(Duration::from_secs(601));
    assert_oauth_error(app.device_poll(&code_of(&late, "device_code"), TOOL).await, "expired_token").await;
    assert_eq!(app.device_page(&code_of(&late, "user_code")).await.status(), 404);
    assert_eq!(app.device_decide(&code_of(&late, "user_code"), "approve").await.status(), 404);

    // Unknown codes.
    assert_oauth_error(app.device_poll("dmd_nope", TOOL).await, "invalid_grant").await;
    let unknown = format!("dmd_{}", "A".repeat(43));
    assert_oauth_error(app.device_poll(&unknown, TOOL).await, "invalid_grant").await;
}
both_backends!(slow_down_denied_and_expired);

async fn bad_requests_and_scopes(backend: Backend) {
    let app = signed_in(backend, false).await;
    assert_oauth_error(app.device_authorize_raw(&[]).await, "invalid_request").await;
    assert_oauth_error(app.device_authorize_raw(&[("client_id", &"x".repeat(65))]).await, "invalid_request").await;
    assert_oauth_error(app.device_authorize_raw(&[("client_id", "a\u{7}b")]).await, "invalid_request").await;
    assert_oauth_error(app.device_authorize_raw(&[("client_id", TOOL), ("scope", "root")]).await, "invalid_scope").await;
    let text = reqwest::Client::new().post(app.url("/oauth/device_authorization")).body("x").header("content-type", "text/plain");
    assert_error(text.send().await.unwrap(), 415, "unsupported_media_type").await;
    let no_code = reqwest::Client::new()
        .post(app.url("/token"))
        .form(&[("grant_type", crate::helpers::device::DEVICE_GRANT), ("client_id", TOOL)])
        .send()
        .await
        .unwrap();
    assert_oauth_error(no_code, "invalid_request").await;

    // A request for more than the user holds cannot be approved.
    let admin = app.device_authorize(&[("client_id", TOOL), ("scope", "users:admin")]).await;
    let refused = app.device_decide(&code_of(&admin, "user_code"), "approve").await;
    assert_eq!(refused.status(), 403);
    assert!(refused.text().await.unwrap().contains("users:admin"));

    // A narrower one gets just that.
    let narrow = app.device_authorize(&[("client_id", "narrow"), ("scope", "tokens")]).await;
    let page = app.device_page(&code_of(&narrow, "user_code")).await.text().await.unwrap();
    assert!(page.contains(">tokens<"), "{page}");
    assert_eq!(app.device_decide(&code_of(&narrow, "user_code"), "approve").await.status(), 200);
    let token: Value = app.device_poll(&code_of(&narrow, "device_code"), "narrow").await.json().await.unwrap();
    assert_eq!(token["scope"], "tokens");
    assert_error(app.get_bearer("/me", token["access_token"].as_str().unwrap()).await, 403, "insufficient_scope").await;
}
both_backends!(bad_requests_and_scopes);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_sends_strangers_through_login_and_back() {
    let app = spawn_app(Backend::Sqlite).await;
    app.create_user("alice", "correct horse", false);
    let answer = app.device_authorize(&[("client_id", TOOL)]).await;
    let user_code = code_of(&answer, "user_code");
    let page = app.device_page(&user_code).await;
    assert_eq!(page.status(), 302);
    let location = page.headers()["location"].to_str().unwrap().to_string();
    assert_eq!(location, format!("/login?next=%2Fdevice%3Fuser_code%3D{user_code}"));
    let login = app.get(&location).await.text().await.unwrap();
    assert!(login.contains("data-next=") && login.contains(&format!("device?user_code={user_code}\"")), "{login}");
    // Nor can a stranger decide.
    let post = app.client.post(app.url("/device")).form(&[("user_code", user_code.as_str()), ("action", "approve")]);
    assert_eq!(post.send().await.unwrap().status(), 302);

    app.login("alice", "correct horse").await;
    assert_eq!(app.device_page(&user_code).await.status(), 200);
    assert!(app.get("/device").await.text().await.unwrap().contains("id=\"code-form\""));

    // The form needs the CSRF token, and not from another site.
    let no_token = app.client.post(app.url("/device")).form(&[("user_code", user_code.as_str()), ("action", "approve")]);
    assert_eq!(no_token.send().await.unwrap().status(), 403);
    let csrf = app.cookie("csrftoken").unwrap();
    let form = [("user_code", user_code.as_str()), ("action", "approve"), ("csrf_token", csrf.as_str())];
    let cross = app.client.post(app.url("/device")).header("Sec-Fetch-Site", "cross-site").form(&form);
    assert_eq!(cross.send().await.unwrap().status(), 403);
    assert_oauth_error(app.device_poll(&code_of(&answer, "device_code"), TOOL).await, "authorization_pending").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_codes_are_limited_per_session_and_address() {
    let app = signed_in(Backend::Sqlite, false).await;
    let answer = app.device_authorize(&[("client_id", TOOL)]).await;
    let user_code = code_of(&answer, "user_code");
    for wrong in ["BCDF-GHJK", "bcdfghjm", "not a code", "BCDF-GHJL", "ZZZZ-ZZZZ"] {
        assert_eq!(app.device_page(wrong).await.status(), 404, "{wrong}");
    }
    // The sixth try within the minute is refused, even with the right code.
    let limited = app.device_page(&user_code).await;
    assert_eq!(limited.status(), 429);
    assert!(limited.text().await.unwrap().contains("too many wrong codes"));
    assert_eq!(app.device_decide(&user_code, "approve").await.status(), 429);

    // Another session from the same address is limited too.
    let other = app.another_browser();
    app.create_user("bob", "battery staple", false);
    other.login("bob", "battery staple").await;
    assert_eq!(other.device_page(&user_code).await.status(), 429);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_lists_the_endpoints() {
    let app = spawn_app(Backend::Sqlite).await;
    let meta: Value = app.get("/.well-known/oauth-authorization-server").await.json().await.unwrap();
    assert_eq!(meta["issuer"], app.address);
    assert_eq!(meta["token_endpoint"], format!("{}/token", app.address));
    assert_eq!(meta["device_authorization_endpoint"], format!("{}/oauth/device_authorization", app.address));
    assert_eq!(meta["jwks_uri"], format!("{}/.well-known/jwks.json", app.address));
    let grants = meta["grant_types_supported"].as_array().unwrap();
    assert!(grants.contains(&json!("client_credentials")));
    assert!(grants.contains(&json!(crate::helpers::device::DEVICE_GRANT)));
    assert_eq!(meta["scopes_supported"], json!(["account", "tokens", "users:read", "users:admin"]));
    assert_eq!(meta["token_endpoint_auth_methods_supported"], json!(["client_secret_basic", "none"]));
}

async fn tap_get_must_come_from_this_site(backend: Backend) {
    let app = signed_in(backend, false).await;
    let tap = |site: Option<&'static str>, csrf: bool| {
        let mut request = app.client.get(app.url("/api-token-tap"));
        if let Some(site) = site {
            request = request.header("Sec-Fetch-Site", site);
        }
        if csrf {
            request = request.header("X-CSRFToken", app.cookie("csrftoken").unwrap());
        }
        request.send()
    };
    // A link or image on another site: refused, CSRF header or not.
    assert_error(tap(Some("cross-site"), false).await.unwrap(), 403, "cross_site_request").await;
    assert_error(tap(Some("cross-site"), true).await.unwrap(), 403, "cross_site_request").await;
    // Nothing saying it comes from here: refused.
    assert_error(tap(None, false).await.unwrap(), 403, "csrf_failed").await;
    assert_error(tap(Some("same-site"), false).await.unwrap(), 403, "csrf_failed").await;
    let wrong = app.client.get(app.url("/api-token-tap")).header("X-CSRFToken", "nope").send().await.unwrap();
    assert_error(wrong, 403, "csrf_failed").await;
    assert_eq!(app.get("/api-tokens").await.json::<Value>().await.unwrap().as_array().unwrap().len(), 0);
    // Scripts with the header, doorman's own pages and a typed address: allowed.
    for (site, csrf) in [(None, true), (Some("same-site"), true), (Some("same-origin"), false), (Some("none"), false)] {
        let response = tap(site, csrf).await.unwrap();
        assert_eq!(response.status(), 200, "{site:?} {csrf}");
    }
    assert_eq!(app.get("/api-tokens").await.json::<Value>().await.unwrap().as_array().unwrap().len(), 4);
}
both_backends!(tap_get_must_come_from_this_site);
