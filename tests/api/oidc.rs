//! Single sign-on against the in-process provider, good and bad.

use reqwest::Response;
use serde_json::json;

use crate::both_backends;
use crate::helpers::fake_op::{FakeOp, FakeUser, Knobs};
use crate::helpers::sso::{app_with_op, urlencode};
use crate::helpers::{assert_error, spawn, Backend, TestApp};

fn set_cookie_names(response: &Response) -> Vec<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter(|c| !c.contains("Max-Age=0") && !c.contains("=;"))
        .map(|c| c.split('=').next().unwrap().to_string())
        .collect()
}

/// A bad case: 4xx with `code`, no login cookies, no user.
async fn assert_refused(app: &TestApp, response: Response, status: u16, code: &str) {
    let cookies = set_cookie_names(&response);
    assert!(!cookies.iter().any(|c| c.starts_with("doorman_access") || c.starts_with("doorman_session")), "{cookies:?}");
    assert_error(response, status, code).await;
    assert_eq!(app.user_count().await, 0, "no user may be created");
    assert_error(app.get("/me").await, 401, "not_authenticated").await;
}

async fn sso_login_creates_an_external_user(backend: Backend) {
    let (app, op) = app_with_op(backend).await;
    op.set(|k| k.refresh_token = true);
    let callback = app.begin_login("fake", Some("/dashboard?tab=2")).await;
    let response = app.get(&callback).await;
    assert_eq!(response.status(), 302);
    assert_eq!(response.headers()["location"], "/dashboard?tab=2");
    assert_eq!(response.headers()["referrer-policy"], "no-referrer");
    assert_eq!(response.headers()["cache-control"], "no-store");
    let timing = response.headers()["server-timing"].to_str().unwrap();
    assert!(timing.starts_with("doorman;dur=") && timing.contains(", provider;dur="), "{timing}");
    let me: serde_json::Value = app.get("/me").await.json().await.unwrap();
    assert_eq!(me["username"], "sso.user");
    assert_eq!(me["email"], "sso.user@example.com");
    assert_eq!(me["is_external_user"], true);
    assert_eq!(me["channel"], "default");
    let valid_until: chrono::DateTime<chrono::Utc> = me["valid_until"].as_str().unwrap().parse().unwrap();
    let expected = chrono::Utc::now() + chrono::Duration::hours(24);
    assert!((valid_until - expected).num_seconds().abs() < 60, "{valid_until}");

    // The refresh token is stored encrypted, never in clear.
    let stored: Vec<Option<String>> = app
        .state
        .db
        .run(|conn| {
            use diesel::prelude::*;
            use doorman::db::schema::external_identities::dsl::*;
            external_identities.select(refresh_token_enc).load(conn)
        })
        .await
        .unwrap();
    let sealed = stored[0].clone().expect("refresh token stored");
    assert!(!sealed.contains("rt-"));

    // External users have no password and cannot set one.
    let refused = app.put_json("/users/sso.user/password", &json!({"password": "a new password", "old_password": "x"})).await;
    assert_error(refused, 403, "external_user").await;
    assert_error(app.login("sso.user", "").await, 401, "invalid_credentials").await;
}
both_backends!(sso_login_creates_an_external_user);

async fn second_login_finds_the_same_user_and_follows_email(backend: Backend) {
    let (app, op) = app_with_op(backend).await;
    assert_eq!(app.sso_login("fake").await.status(), 302);
    op.set_user(FakeUser {
        subject: "subject-1".into(),
        email: "new.address@example.com".into(),
        preferred_username: Some("renamed".into()),
    });
    let other = app.another_browser();
    assert_eq!(other.sso_login("fake").await.status(), 302);
    assert_eq!(app.user_count().await, 1);
    let me: serde_json::Value = other.get("/me").await.json().await.unwrap();
    assert_eq!(me["username"], "sso.user", "the username stays");
    assert_eq!(me["email"], "new.address@example.com", "the e-mail follows the provider");
}
both_backends!(second_login_finds_the_same_user_and_follows_email);

/// A returning user's sign-in updates the identity this instance saw last;
/// once that row is gone, the same provider account is a new user.
async fn a_deleted_external_user_signs_in_again_as_a_new_one(backend: Backend) {
    let (app, op) = app_with_op(backend).await;
    assert_eq!(app.sso_login("fake").await.status(), 302);
    assert_eq!(app.another_browser().sso_login("fake").await.status(), 302, "a returning user");
    app.create_user("root", "root password", true);
    let admin = app.another_browser();
    assert_eq!(admin.login("root", "root password").await.status(), 200);
    assert_eq!(admin.delete("/users/sso.user").await.status(), 204);

    op.set_user(FakeUser {
        subject: "subject-1".into(),
        email: "sso.user@example.com".into(),
        preferred_username: Some("sso.user".into()),
    });
    for _ in 0..2 {
        let again = app.another_browser();
        assert_eq!(again.sso_login("fake").await.status(), 302);
        let me: serde_json::Value = again.get("/me").await.json().await.unwrap();
        assert_eq!(me["username"], "sso.user");
    }
    assert_eq!(app.user_count().await, 2, "root and the new user");
    assert_error(app.get("/me").await, 401, "invalid_session").await;
}
both_backends!(a_deleted_external_user_signs_in_again_as_a_new_one);

async fn same_email_other_subject_is_another_user(backend: Backend) {
    let (app, op) = app_with_op(backend).await;
    app.create_user("sso.user", "local password", false);
    assert_eq!(app.sso_login("fake").await.status(), 302);
    op.set_user(FakeUser {
        subject: "subject-2".into(),
        email: "sso.user@example.com".into(),
        preferred_username: Some("sso.user".into()),
    });
    let other = app.another_browser();
    assert_eq!(other.sso_login("fake").await.status(), 302);
    assert_eq!(app.user_count().await, 3);
    let first: serde_json::Value = app.get("/me").await.json().await.unwrap();
    let second: serde_json::Value = other.get("/me").await.json().await.unwrap();
    assert_eq!(first["username"], "sso.user-2");
    assert_eq!(second["username"], "sso.user-3");
}
both_backends!(same_email_other_subject_is_another_user);

async fn a_profile_without_a_usable_name_is_refused(backend: Backend) {
    let (app, op) = app_with_op(backend).await;
    op.set_user(FakeUser { subject: "subject-9".into(), email: "山田@例え.日本".into(), preferred_username: None });
    let response = app.client.get(app.begin_login("fake", None).await).header("Accept", "application/json").send().await.unwrap();
    assert_refused(&app, response, 400, "invalid_profile").await;
}
both_backends!(a_profile_without_a_usable_name_is_refused);

async fn bad_case(backend: Backend, knobs: impl FnOnce(&mut Knobs), status: u16, code: &str) {
    let (app, op) = app_with_op(backend).await;
    op.set(knobs);
    let response = app.sso_login("fake").await;
    assert_refused(&app, response, status, code).await;
}

macro_rules! bad_cases {
    ($($name:ident: $knob:ident => $status:expr, $code:expr;)*) => {
        $(
            async fn $name(backend: Backend) {
                bad_case(backend, |k| k.$knob = true, $status, $code).await
            }
            both_backends!($name);
        )*
    };
}

bad_cases! {
    bad_signature_is_refused: bad_signature => 400, "invalid_id_token";
    alg_none_is_refused: alg_none => 400, "invalid_id_token";
    hs256_keyed_with_public_key_is_refused: hs256_with_public_key => 400, "invalid_id_token";
    wrong_issuer_is_refused: wrong_issuer => 400, "invalid_id_token";
    wrong_audience_is_refused: wrong_audience => 400, "invalid_id_token";
    extra_audience_without_azp_is_refused: extra_audience_without_azp => 400, "invalid_id_token";
    expired_id_token_is_refused: expired => 400, "invalid_id_token";
    id_token_from_the_future_is_refused: issued_in_future => 400, "invalid_id_token";
    missing_nonce_is_refused: nonce_missing => 400, "invalid_id_token";
    wrong_nonce_is_refused: nonce_wrong => 400, "invalid_id_token";
    wrong_at_hash_is_refused: wrong_at_hash => 400, "invalid_id_token";
    userinfo_sub_mismatch_is_refused: userinfo_sub_mismatch => 400, "userinfo_failed";
    token_endpoint_error_is_refused: token_endpoint_error => 400, "token_exchange_failed";
    access_denied_is_refused: authorize_error => 403, "provider_error";
}

async fn kid_absent_with_a_single_key_is_accepted(backend: Backend) {
    let (app, op) = app_with_op(backend).await;
    op.set(|k| k.kid_absent = true);
    assert_eq!(app.sso_login("fake").await.status(), 302);
    assert_eq!(app.get("/me").await.status(), 200);
}
both_backends!(kid_absent_with_a_single_key_is_accepted);

async fn rotated_provider_key_is_accepted_after_refetch(backend: Backend) {
    let (app, op) = app_with_op(backend).await;
    assert_eq!(app.sso_login("fake").await.status(), 302);
    let fetched = op.jwks_requests();
    op.rotate_key();
    let other = app.another_browser();
    assert_eq!(other.sso_login("fake").await.status(), 302);
    assert_eq!(op.jwks_requests(), fetched + 1, "keys fetched again once");
    assert_eq!(other.get("/me").await.status(), 200);
}
both_backends!(rotated_provider_key_is_accepted_after_refetch);

async fn unknown_keys_are_fetched_again_at_most_once_per_interval(backend: Backend) {
    let (app, op) = app_with_op(backend).await;
    op.set(|k| k.unpublished_key = true);
    let fetched = op.jwks_requests();
    let response = app.sso_login("fake").await;
    assert_refused(&app, response, 400, "invalid_id_token").await;
    assert_eq!(op.jwks_requests(), fetched + 1, "an unknown key id makes doorman fetch the keys again");
    let again = app.another_browser();
    let response = again.sso_login("fake").await;
    assert_refused(&app, response, 400, "invalid_id_token").await;
    assert_eq!(op.jwks_requests(), fetched + 1, "but not twice within the interval");
}
both_backends!(unknown_keys_are_fetched_again_at_most_once_per_interval);

async fn tampered_state_is_refused(backend: Backend) {
    let (app, _op) = app_with_op(backend).await;
    let callback = app.begin_login("fake", None).await;
    let mut url = url::Url::parse(&callback).unwrap();
    let pairs: Vec<(String, String)> = url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    url.query_pairs_mut().clear();
    for (k, v) in pairs {
        url.query_pairs_mut().append_pair(&k, &if k == "state" { format!("{v}x") } else { v });
    }
    let response = app.client.get(url.as_str()).header("Accept", "application/json").send().await.unwrap();
    assert_refused(&app, response, 400, "invalid_state").await;
}
both_backends!(tampered_state_is_refused);

async fn replayed_callback_is_refused(backend: Backend) {
    let (app, op) = app_with_op(backend).await;
    let callback = app.begin_login("fake", None).await;
    let cookie = app.cookie("doorman_oidc");
    assert!(cookie.is_none(), "the flow cookie is on /oidc only");
    // Keep the flow cookie as an attacker would, and replay it with the callback.
    let flow_cookie = {
        let url: url::Url = format!("{}/oidc/callback", app.address).parse().unwrap();
        use reqwest::cookie::CookieStore;
        app.jar.cookies(&url).unwrap().to_str().unwrap().to_string()
    };
    assert_eq!(app.get(&callback).await.status(), 302);
    assert_eq!(app.user_count().await, 1);
    let exchanges = op.token_requests();
    let replay = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let again = replay.get(&callback).header("Cookie", flow_cookie).header("Accept", "application/json").send().await.unwrap();
    assert!(!set_cookie_names(&again).iter().any(|c| c == "doorman_session"));
    assert_error(again, 400, "invalid_state").await;
    assert_eq!(app.user_count().await, 1);
    assert_eq!(op.token_requests(), exchanges, "the replayed code never reaches the provider");
}
both_backends!(replayed_callback_is_refused);

/// The flow cookie and callback URL of a sign-in, as an attacker would keep them.
fn kept_flow_cookie(app: &TestApp) -> String {
    let url: url::Url = format!("{}/oidc/callback", app.address).parse().unwrap();
    use reqwest::cookie::CookieStore;
    app.jar.cookies(&url).unwrap().to_str().unwrap().to_string()
}

/// An instance started after a sign-in (a restart, or another instance on
/// the database) refuses its replay before the code reaches the provider:
/// on SQLite from the states it loaded at start, on PostgreSQL from the table.
async fn replay_at_an_instance_started_later_is_refused(backend: Backend) {
    let (app, op) = app_with_op(backend).await;
    let callback = app.begin_login("fake", None).await;
    let flow_cookie = kept_flow_cookie(&app);
    assert_eq!(app.get(&callback).await.status(), 302);
    let provider = op.provider_settings("fake");
    let later = spawn(backend).on_database(&app.db_url).with(move |s| s.providers.push(provider)).start().await;
    let exchanges = op.token_requests();
    let again = later
        .client
        .get(callback.replace(&app.address, &later.address))
        .header("Cookie", flow_cookie)
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_error(again, 400, "invalid_state").await;
    assert_eq!(op.token_requests(), exchanges, "the replayed code never reaches the provider");
    assert_eq!(later.user_count().await, 1);
}
both_backends!(replay_at_an_instance_started_later_is_refused);

#[tokio::test]
async fn callback_without_flow_cookie_is_an_error_page() {
    let (app, _op) = app_with_op(Backend::Sqlite).await;
    let response = app.get("/oidc/callback?code=abc&state=def").await;
    assert_eq!(response.status(), 400);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(response.text().await.unwrap().contains("data-code=\"invalid_state\""));
    let response = app.get("/oidc/callback?%ZZ=%%").await;
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn iss_parameter_is_checked_when_announced() {
    let op = FakeOp::start().await;
    op.set(|k| k.iss_parameter = true);
    let provider = op.provider_settings("fake");
    let app = spawn(Backend::Sqlite).with(move |s| s.providers.push(provider)).start().await;
    // Strip `iss` from the response: refused, since the provider announced it.
    let callback = app.begin_login("fake", None).await;
    let mut url = url::Url::parse(&callback).unwrap();
    let pairs: Vec<(String, String)> =
        url.query_pairs().filter(|(k, _)| k != "iss").map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    url.query_pairs_mut().clear().extend_pairs(pairs);
    let response = app.client.get(url.as_str()).header("Accept", "application/json").send().await.unwrap();
    assert_refused(&app, response, 400, "issuer_mismatch").await;
    // With it, accepted.
    assert_eq!(app.sso_login("fake").await.status(), 302);
}

#[tokio::test]
async fn authenticate_parameters() {
    let (app, _op) = app_with_op(Backend::Sqlite).await;
    let start = app.get("/oidc/authenticate").await;
    assert_eq!(start.status(), 302, "provider may be left out with one configured");
    let location = url::Url::parse(start.headers()["location"].to_str().unwrap()).unwrap();
    let q: std::collections::HashMap<String, String> = location.query_pairs().into_owned().collect();
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["redirect_uri"], format!("{}/oidc/callback", app.address));
    assert!(q["scope"].split(' ').any(|s| s == "offline_access"));
    assert!(q["state"].len() >= 16 && q["nonce"].len() >= 16);
    let cookie = start.headers()["set-cookie"].to_str().unwrap();
    assert!(cookie.starts_with("doorman_oidc=") && cookie.contains("Path=/oidc") && cookie.contains("HttpOnly"), "{cookie}");
    assert!(!cookie.contains(&q["state"]), "the flow cookie is encrypted");

    let unknown =
        app.client.get(app.url("/oidc/authenticate?provider=nope")).header("Accept", "application/json").send().await.unwrap();
    assert_error(unknown, 404, "unknown_provider").await;
    for next in ["//evil.com", "https://evil.com/", "/\\evil.com", "/%2F%2Fevil.com", "javascript:alert(1)"] {
        let response = app
            .client
            .get(app.url(&format!("/oidc/authenticate?next={}", urlencode(next))))
            .header("Accept", "application/json")
            .send()
            .await
            .unwrap();
        assert_error(response, 400, "invalid_next").await;
    }
}

#[tokio::test]
async fn info_and_login_page_list_providers() {
    let op1 = FakeOp::start().await;
    let op2 = FakeOp::start().await;
    let (p1, p2) = (op1.provider_settings("first"), op2.provider_settings("second"));
    let app = spawn(Backend::Sqlite)
        .with(move |s| {
            s.providers.push(p1);
            s.providers.push(p2);
        })
        .start()
        .await;
    let info: serde_json::Value = app.get("/info").await.json().await.unwrap();
    assert_eq!(
        info["auth"]["oidc"],
        json!([
            {"id": "first", "name": "Fake first", "login_url": format!("{}/oidc/authenticate?provider=first", app.address)},
            {"id": "second", "name": "Fake second", "login_url": format!("{}/oidc/authenticate?provider=second", app.address)},
        ])
    );
    let page = app.get("/login").await.text().await.unwrap();
    assert!(page.contains("Sign in with Fake first") && page.contains("Sign in with Fake second"));
    let page = app.get("/login?next=/after").await.text().await.unwrap();
    assert!(page.contains("provider=first&amp;next=%2Fafter"), "the SSO buttons carry next: {page}");
    let page = app.get("/login?next=//evil.com").await.text().await.unwrap();
    assert!(!page.contains("evil.com"), "a bad next is dropped");
    let response = app.client.get(app.url("/oidc/authenticate")).header("Accept", "application/json").send().await.unwrap();
    assert_error(response, 400, "provider_required").await;
}

async fn two_providers_keep_equal_subjects_apart(backend: Backend) {
    let op1 = FakeOp::start().await;
    let op2 = FakeOp::start().await;
    let (p1, p2) = (op1.provider_settings("first"), op2.provider_settings("second"));
    let app = spawn(backend)
        .with(move |s| {
            s.providers.push(p1);
            s.providers.push(p2);
        })
        .start()
        .await;
    assert_eq!(app.sso_login("first").await.status(), 302);
    let other = app.another_browser();
    assert_eq!(other.sso_login("second").await.status(), 302);
    assert_eq!(app.user_count().await, 2);
    let a: serde_json::Value = app.get("/me").await.json().await.unwrap();
    let b: serde_json::Value = other.get("/me").await.json().await.unwrap();
    assert_ne!(a["username"], b["username"]);
}
both_backends!(two_providers_keep_equal_subjects_apart);

#[tokio::test]
async fn provider_down_at_start_answers_503_then_recovers() {
    // A port with nothing listening yet.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let op = FakeOp::start().await;
    let mut provider = op.provider_settings("down");
    provider.issuer = format!("http://127.0.0.1:{port}");
    let good = op.provider_settings("up");
    let app = spawn(Backend::Sqlite)
        .with(move |s| {
            s.providers.push(provider);
            s.providers.push(good);
        })
        .start()
        .await;
    app.create_user("alice", "correct horse", false);
    let response =
        app.client.get(app.url("/oidc/authenticate?provider=down")).header("Accept", "application/json").send().await.unwrap();
    assert!(response.headers().contains_key("retry-after"));
    assert_error(response, 503, "provider_unavailable").await;
    assert_eq!(app.login("alice", "correct horse").await.status(), 200, "password login goes on");
    assert_eq!(app.get("/oidc/authenticate?provider=up").await.status(), 302, "other providers go on");

    // The provider comes up: discovery is retried in the background and its login works.
    let late = FakeOp::start_on(port).await;
    let mut recovered = false;
    for _ in 0..40 {
        if app.get("/oidc/authenticate?provider=down").await.status() == 302 {
            recovered = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert!(recovered, "the provider was discovered once it came up");
    let callback = app.begin_login("down", None).await;
    assert!(callback.starts_with(&format!("{}/oidc/callback", app.address)));
    drop(late);
}

#[tokio::test]
async fn discovery_with_another_issuer_is_refused() {
    let op = FakeOp::start().await;
    let mut provider = op.provider_settings("liar");
    provider.issuer = format!("{}/", op.issuer.replace("127.0.0.1", "localhost"));
    let app = spawn(Backend::Sqlite).with(move |s| s.providers.push(provider)).start().await;
    let response = app.client.get(app.url("/oidc/authenticate")).header("Accept", "application/json").send().await.unwrap();
    assert_error(response, 503, "provider_unavailable").await;
}
