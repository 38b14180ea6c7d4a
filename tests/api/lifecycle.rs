//! The external user's lifecycle against the in-process provider:
//! background refresh, refusal, immediate refresh, logout, several instances.
//! Time is the app's clock, moved by the test; sweeps are run by the test.

use std::time::Duration;

use serde_json::json;

use crate::both_backends;
use crate::helpers::fake_op::{FakeOp, FakeUser, CLIENT_ID};
use crate::helpers::{assert_error, fresh_database, spawn, Backend, TestApp};

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn minutes(n: u64) -> Duration {
    Duration::from_secs(60 * n)
}

/// How long the provider vouches for a user at sign-in (`auth.external_validity`);
/// the background refresh falls due halfway through.
const VALIDITY: Duration = Duration::from_secs(3600);

/// doorman and the in-process provider on one clock. The background task
/// waits an hour before its first sweep, so only the test sweeps.
async fn app(backend: Backend) -> (TestApp, FakeOp) {
    let op = FakeOp::start().await;
    op.set(|k| k.refresh_token = true);
    let provider = op.provider_settings("fake");
    let app = spawn(backend)
        .with(move |s| {
            s.providers.push(provider);
            s.auth.external_validity = VALIDITY.into();
            s.auth.refresh_interval = VALIDITY.into();
            s.auth.cache_ttl = secs(1).into();
        })
        .start()
        .await;
    op.use_clock(&app.clock);
    (app, op)
}

async fn identity(app: &TestApp) -> doorman::db::identities::IdentityRow {
    app.identities().await.remove(0)
}

async fn background_refresh_moves_valid_until(backend: Backend) {
    let (app, op) = app(backend).await;
    assert_eq!(app.sso_login("fake").await.status(), 302);
    let first = identity(&app).await;
    let first_token = first.refresh_token_enc.clone().unwrap();
    app.advance(minutes(31));
    app.sweep().await;
    let later = identity(&app).await;
    assert!(op.refresh_requests() >= 1, "the provider was asked");
    assert!(later.valid_until > first.valid_until, "{:?} -> {:?}", first.valid_until, later.valid_until);
    assert_eq!(later.refresh_state, "active");
    assert_ne!(later.refresh_token_enc.unwrap(), first_token, "the rotated refresh token is stored");
    // The session goes on past the first valid_until.
    app.advance(minutes(30));
    assert_eq!(app.post_empty("/me/refresh").await.status(), 200);
    assert_eq!(app.get("/me").await.status(), 200);
}
both_backends!(background_refresh_moves_valid_until);

async fn refused_refresh_ends_access(backend: Backend) {
    let (app, op) = app(backend).await;
    assert_eq!(app.sso_login("fake").await.status(), 302);
    op.set(|k| k.refuse_refresh = true);
    app.advance(minutes(31));
    app.sweep().await;
    let row = identity(&app).await;
    assert_eq!(row.refresh_state, "refused");
    assert!(row.refresh_token_enc.is_none());
    app.advance(minutes(30));
    assert_eq!(app.get("/me").await.status(), 401);
    let body = assert_error(app.post_empty("/me/refresh").await, 401, "sign_in_again").await;
    assert!(body["message"].as_str().unwrap().contains("sign in again"));
    // Signing in again moves valid_until forward.
    op.set(|k| k.refuse_refresh = false);
    let again = app.another_browser();
    assert_eq!(again.sso_login("fake").await.status(), 302);
    assert_eq!(again.get("/me").await.status(), 200);
    assert_eq!(identity(&app).await.refresh_state, "active");
}
both_backends!(refused_refresh_ends_access);

async fn refreshed_id_token_for_another_user_is_a_refusal(backend: Backend) {
    let (app, op) = app(backend).await;
    assert_eq!(app.sso_login("fake").await.status(), 302);
    op.set(|k| k.refresh_other_subject = true);
    app.advance(minutes(31));
    app.sweep().await;
    assert_eq!(identity(&app).await.refresh_state, "refused");
}
both_backends!(refreshed_id_token_for_another_user_is_a_refusal);

async fn provider_down_is_retried_not_refused(backend: Backend) {
    let (app, op) = app(backend).await;
    assert_eq!(app.sso_login("fake").await.status(), 302);
    op.set(|k| k.refresh_unavailable = true);
    app.advance(minutes(31));
    app.sweep().await;
    let row = identity(&app).await;
    assert_eq!(row.refresh_state, "active", "a provider that is down is no refusal");
    assert!(row.refresh_failures >= 1);
    assert!(row.refresh_token_enc.is_some());
}
both_backends!(provider_down_is_retried_not_refused);

async fn without_refresh_token_access_ends_at_valid_until(backend: Backend) {
    let (app, op) = app(backend).await;
    op.set(|k| k.refresh_token = false);
    assert_eq!(app.sso_login("fake").await.status(), 302);
    assert_eq!(app.get("/me").await.status(), 200);
    assert_eq!(identity(&app).await.refresh_state, "none");
    app.advance(VALIDITY + secs(1));
    assert_eq!(app.get("/me").await.status(), 401);
    assert_error(app.post_empty("/me/refresh").await, 401, "sign_in_again").await;
    assert_eq!(op.refresh_requests(), 0);
    assert_eq!(app.sso_login("fake").await.status(), 302);
    assert_eq!(app.get("/me").await.status(), 200);
}
both_backends!(without_refresh_token_access_ends_at_valid_until);

async fn expired_user_is_refreshed_once_however_many_wait(backend: Backend) {
    // No sweep in this test: the refresh must come from the requests.
    let (app, op) = app(backend).await;
    assert_eq!(app.sso_login("fake").await.status(), 302);
    app.advance(VALIDITY + secs(1));
    let csrf = app.cookie("csrftoken").unwrap();
    let requests = (0..8).map(|_| app.client.post(app.url("/me/refresh")).header("X-CSRFToken", csrf.clone()).send());
    let responses = futures_util::future::join_all(requests).await;
    for response in responses {
        assert_eq!(response.unwrap().status(), 200);
    }
    assert_eq!(op.refresh_requests(), 1, "one refresh for all waiting requests");
    assert_eq!(app.get("/me").await.status(), 200);
}
both_backends!(expired_user_is_refreshed_once_however_many_wait);

async fn logout_revokes_and_returns_the_end_session_url(backend: Backend) {
    let (app, op) = app(backend).await;
    assert_eq!(app.sso_login("fake").await.status(), 302);
    let response = app.post_empty("/me/logout").await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    let url = url::Url::parse(body["logout_url"].as_str().expect("logout_url")).unwrap();
    assert_eq!(url.path(), "/logout");
    let q: std::collections::HashMap<String, String> = url.query_pairs().into_owned().collect();
    assert_eq!(q["post_logout_redirect_uri"], format!("{}/login", app.address));
    assert_eq!(q["client_id"], CLIENT_ID);
    assert_eq!(q["id_token_hint"].split('.').count(), 3);
    assert_eq!(op.revocations().len(), 1, "the refresh token was revoked at the provider");
    assert!(op.revocations()[0].starts_with("rt-"));
    let row = identity(&app).await;
    assert!(row.refresh_token_enc.is_none());
    assert_eq!(app.get("/me").await.status(), 401);
}
both_backends!(logout_revokes_and_returns_the_end_session_url);

async fn backchannel_logout_ends_sessions(backend: Backend) {
    let (app, op) = app(backend).await;
    assert_eq!(app.sso_login("fake").await.status(), 302);
    let other = app.another_browser();
    assert_eq!(other.sso_login("fake").await.status(), 302);
    let plain = reqwest::Client::new();
    let post = |token: String| plain.post(app.url("/oidc/backchannel-logout")).form(&[("logout_token", token)]).send();

    // Bad tokens: 400, nothing ends.
    let bad = [
        op.logout_token(Some("subject-1"), None, |c| c["nonce"] = "n".into()),
        op.logout_token(Some("subject-1"), None, |c| c["aud"] = "someone-else".into()),
        op.logout_token(Some("subject-1"), None, |c| c["iss"] = "http://127.0.0.1:1".into()),
        op.logout_token(Some("subject-1"), None, |c| c["events"] = json!({})),
        op.logout_token(None, None, |_| {}),
        op.logout_token(Some("subject-1"), None, |c| c["iat"] = (chrono::Utc::now().timestamp() + 3600).into()),
        "not.a.jwt".to_string(),
    ];
    for token in bad {
        assert_error(post(token).await.unwrap(), 400, "invalid_logout_token").await;
    }
    let forged = {
        let mut t = op.logout_token(Some("subject-1"), None, |_| {});
        t.push('x');
        t
    };
    assert_error(post(forged).await.unwrap(), 400, "invalid_logout_token").await;
    assert_eq!(app.get("/me").await.status(), 200);

    // By sid: that session ends.
    let response = post(op.logout_token(None, Some("sid-subject-1"), |_| {})).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(app.get("/me").await.status(), 401);
    assert_eq!(other.get("/me").await.status(), 401, "both sessions carried that sid");

    // By sub: every session of the user ends.
    let third = app.another_browser();
    assert_eq!(third.sso_login("fake").await.status(), 302);
    assert_eq!(third.get("/me").await.status(), 200);
    assert_eq!(post(op.logout_token(Some("subject-1"), None, |_| {})).await.unwrap().status(), 200);
    assert_eq!(third.get("/me").await.status(), 401);
    assert_error(third.post_empty("/me/refresh").await, 401, "invalid_session").await;
}
both_backends!(backchannel_logout_ends_sessions);

/// Two doorman instances on one PostgreSQL database: what one issues works
/// on the other, and each due user is refreshed by exactly one of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_one_postgres_database() {
    let op = FakeOp::start().await;
    op.set(|k| k.refresh_token = true);
    let (db_url, _) = fresh_database(Backend::Postgres);
    let configure = |op: &FakeOp| {
        let provider = op.provider_settings("fake");
        move |s: &mut doorman::config::Settings| {
            s.providers.push(provider);
            s.auth.external_validity = VALIDITY.into();
            s.auth.refresh_interval = VALIDITY.into();
            s.auth.cache_ttl = secs(1).into();
        }
    };
    let a = spawn(Backend::Postgres).on_database(&db_url).with(configure(&op)).start().await;
    let b = spawn(Backend::Postgres).on_database(&db_url).with(configure(&op)).on_clock(&a.clock).start().await;
    op.use_clock(&a.clock);
    // Ten users sign in on A.
    let mut browsers = Vec::new();
    for i in 0..10 {
        op.set_user(FakeUser {
            subject: format!("s{i}"),
            email: format!("u{i}@example.com"),
            preferred_username: Some(format!("u{i}")),
        });
        let browser = a.another_browser();
        assert_eq!(browser.sso_login("fake").await.status(), 302);
        browsers.push(browser);
    }
    // Their cookies work on B (cookies are per host, not per port).
    for browser in &browsers {
        let me = browser.client.get(b.url("/me")).send().await.unwrap();
        assert_eq!(me.status(), 200);
    }
    // A session ended on B is refused on A within cache_ttl (a real second).
    let browser = &browsers[0];
    let access = browser.cookie("doorman_access").unwrap();
    assert_eq!(
        reqwest::Client::new()
            .get(a.url("/me"))
            .header("Cookie", format!("doorman_access={access}"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let csrf = browser.cookie("csrftoken").unwrap();
    let out = browser.client.post(b.url("/me/logout")).header("X-CSRFToken", csrf).send().await.unwrap();
    assert_eq!(out.status(), 200);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let replay =
        reqwest::Client::new().get(a.url("/me")).header("Cookie", format!("doorman_access={access}")).send().await.unwrap();
    assert_error(replay, 401, "invalid_session").await;
    assert_eq!(browsers[1].get("/me").await.status(), 200, "other users go on");
    let logins = op.token_requests();
    // Refreshes fall due halfway through the validity; both instances sweep at once.
    a.advance(minutes(31));
    let (swept_a, swept_b) = tokio::join!(a.sweep(), b.sweep());
    let refreshes = op.refresh_requests();
    assert_eq!(op.token_requests() - logins, refreshes);
    assert_eq!(refreshes, 9, "each signed-in user refreshed once, not twice");
    // (The provider answers every refresh for its current user, so most are refusals.)
    let swept = |r: doorman::sso::lifecycle::SweepReport| r.refreshed + r.refused + r.retried;
    assert_eq!(swept(swept_a) + swept(swept_b), 9, "the two sweeps took disjoint rows");
}
