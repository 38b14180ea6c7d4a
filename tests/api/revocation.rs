//! Revocation on every instance: two doorman instances on one PostgreSQL
//! database with an hour-long `auth.cache_ttl`, so that only the
//! notification can explain a revocation seen on the other instance within
//! a second; the notification connection killed and made again; the
//! `access_expired` code; `/readyz`; the metrics listener.

use std::future::Future;
use std::time::{Duration, Instant};

use diesel::{Connection, PgConnection, RunQueryDsl};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::fake_op::FakeOp;
use crate::helpers::{assert_error, fresh_database, spawn, spawn_app, Backend, TestApp};

const PASSWORD: &str = "correct horse battery staple";
const HOUR: Duration = Duration::from_secs(3600);

/// Two instances on one fresh PostgreSQL database and one clock, caching
/// for an hour, both knowing the in-process provider.
async fn two_instances() -> (TestApp, TestApp, FakeOp) {
    let op = FakeOp::start().await;
    let (db_url, _) = fresh_database(Backend::Postgres);
    let configure = |op: &FakeOp| {
        let provider = op.provider_settings("fake");
        move |s: &mut doorman::config::Settings| {
            s.providers.push(provider);
            s.auth.cache_ttl = HOUR.into();
        }
    };
    let a = spawn(Backend::Postgres).on_database(&db_url).with(configure(&op)).start().await;
    let b = spawn(Backend::Postgres).on_database(&db_url).with(configure(&op)).on_clock(&a.clock).start().await;
    op.use_clock(&a.clock);
    (a, b, op)
}

/// Polls `check` for up to a second; how long until it held.
async fn within_a_second<F, Fut>(what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return start.elapsed();
        }
        assert!(start.elapsed() < Duration::from_secs(1), "{what}: not seen on the other instance within 1 s");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn status_with_cookie(app: &TestApp, access: &str) -> StatusCode {
    reqwest::Client::new().get(app.url("/me")).header("Cookie", format!("doorman_access={access}")).send().await.unwrap().status()
}

async fn status_with_bearer(app: &TestApp, token: &str) -> StatusCode {
    app.get_bearer("/me", token).await.status()
}

/// A new API token minted from `browser`'s session.
async fn api_token(browser: &TestApp) -> (String, String) {
    let body: Value = browser.post_json("/api-token-tap", &json!({})).await.json().await.unwrap();
    (body["id"].as_str().unwrap().to_string(), body["token"].as_str().unwrap().to_string())
}

async fn readyz(app: &TestApp) -> (StatusCode, Value) {
    let response = reqwest::Client::new().get(app.url("/readyz")).send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_cause_on_one_instance_is_seen_on_the_other_within_a_second() {
    let (a, b, op) = two_instances().await;
    assert_eq!(readyz(&a).await.1["notifications"], "ok");
    assert_eq!(readyz(&b).await.1["notifications"], "ok");
    a.create_user("alice", PASSWORD, false);
    let mut delays = Vec::new();

    // Logout on B: the cookie A has cached as live is refused on A.
    let browser = b.another_browser();
    assert_eq!(browser.login("alice", PASSWORD).await.status(), 200);
    let access = browser.cookie("doorman_access").unwrap();
    assert_eq!(status_with_cookie(&a, &access).await, 200, "A caches the session as live");
    assert_eq!(browser.post_empty("/me/logout").await.status(), 200);
    delays.push(within_a_second("logout", || async { status_with_cookie(&a, &access).await == 401 }).await);

    // A session ended from the list on B: the other browser's cookie, cached on A, is refused on A.
    let phone = a.another_browser();
    assert_eq!(phone.login("alice", PASSWORD).await.status(), 200);
    let phone_access = phone.cookie("doorman_access").unwrap();
    assert_eq!(status_with_cookie(&a, &phone_access).await, 200, "A caches the session as live");
    let laptop = b.another_browser();
    assert_eq!(laptop.login("alice", PASSWORD).await.status(), 200);
    let listed: Vec<Value> = laptop.get("/me/sessions").await.json().await.unwrap();
    let phone_id = listed.iter().find(|s| s["current"] == false).expect("the phone's session is listed")["id"].clone();
    assert_eq!(laptop.delete(&format!("/me/sessions/{}", phone_id.as_str().unwrap())).await.status(), 204);
    delays.push(
        within_a_second("session ended from the list", || async { status_with_cookie(&a, &phone_access).await == 401 }).await,
    );

    // Token revocation on B: the bearer token A has cached is refused on A.
    let browser = b.another_browser();
    assert_eq!(browser.login("alice", PASSWORD).await.status(), 200);
    let (id, token) = api_token(&browser).await;
    assert_eq!(status_with_bearer(&a, &token).await, 200, "A caches the token");
    assert_eq!(browser.delete(&format!("/api-tokens/{id}")).await.status(), 204);
    delays.push(within_a_second("token revocation", || async { status_with_bearer(&a, &token).await == 401 }).await);

    // Password change on B: the user's other session, cached on A, is refused on A.
    let other = a.another_browser();
    assert_eq!(other.login("alice", PASSWORD).await.status(), 200);
    assert_eq!(other.get("/me").await.status(), 200);
    let changed =
        browser.put_json("/users/alice/password", &json!({"password": "a new long password 1", "old_password": PASSWORD})).await;
    assert_eq!(changed.status(), 204);
    delays.push(within_a_second("password change", || async { other.get("/me").await.status() == 401 }).await);
    assert_eq!(browser.client.get(a.url("/me")).send().await.unwrap().status(), 200, "the changing session goes on");

    // Back-channel logout at B naming the subject: A refuses the user's session and API token.
    let sso = a.another_browser();
    assert_eq!(sso.sso_login("fake").await.status(), 302);
    let (_, sso_token) = api_token(&sso).await;
    assert_eq!(sso.get("/me").await.status(), 200);
    assert_eq!(status_with_bearer(&a, &sso_token).await, 200);
    let logout = op.logout_token(Some("subject-1"), None, |_| {});
    let posted = reqwest::Client::new().post(b.url("/oidc/backchannel-logout")).form(&[("logout_token", logout)]).send().await;
    assert_eq!(posted.unwrap().status(), 200);
    delays.push(
        within_a_second("back-channel logout", || async {
            sso.get("/me").await.status() == 401 && status_with_bearer(&a, &sso_token).await == 401
        })
        .await,
    );
    eprintln!("revocation delays across instances: {delays:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_notification_connection_is_shown_made_again_and_forgets_the_caches() {
    let (a, b, _op) = two_instances().await;
    a.create_user("alice", PASSWORD, false);
    let browser = a.another_browser();
    assert_eq!(browser.login("alice", PASSWORD).await.status(), 200);
    let (first_id, first) = api_token(&browser).await;
    let (_, second) = api_token(&browser).await;
    assert_eq!(status_with_bearer(&b, &first).await, 200, "B caches both tokens");
    assert_eq!(status_with_bearer(&b, &second).await, 200);

    // Kill both instances' listening connections from SQL.
    let mut admin = PgConnection::establish(&a.db_url).unwrap();
    let killed: Vec<Terminated> = diesel::sql_query(
        "SELECT pg_terminate_backend(pid) AS done FROM pg_stat_activity \
         WHERE application_name = 'doorman-revocations' AND datname = current_database()",
    )
    .load(&mut admin)
    .unwrap();
    assert_eq!(killed.len(), 2, "one listening connection per instance");
    within_a_second("readyz shows the lost channel", || async { readyz(&b).await.1["notifications"] == "lost" }).await;
    let (status, body) = readyz(&b).await;
    assert_eq!(status, 200, "a lost channel does not make doorman unready: {body}");

    // Revoked while B cannot hear: B still serves its cached view (cache_ttl is an hour)...
    assert_eq!(browser.delete(&format!("/api-tokens/{first_id}")).await.status(), 204);
    assert_eq!(status_with_bearer(&a, &first).await, 401, "at once where it was revoked");
    assert_eq!(status_with_bearer(&b, &first).await, 200, "B did not hear it");
    // ...until it listens again and forgets what it cached.
    let start = Instant::now();
    while readyz(&b).await.1["notifications"] != "ok" {
        assert!(start.elapsed() < Duration::from_secs(10), "the channel is made again");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(status_with_bearer(&b, &first).await, 401, "forgotten on reconnecting");
    assert_eq!(status_with_bearer(&b, &second).await, 200, "the other token is read again and works");
    // And revocation travels again.
    while readyz(&a).await.1["notifications"] != "ok" {
        assert!(start.elapsed() < Duration::from_secs(10), "A's channel is made again");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let list: Value = browser.get("/api-tokens").await.json().await.unwrap();
    let second_id = list.as_array().unwrap()[0]["id"].as_str().unwrap().to_string();
    assert_eq!(browser.delete(&format!("/api-tokens/{second_id}")).await.status(), 204);
    within_a_second("revocation after reconnecting", || async { status_with_bearer(&b, &second).await == 401 }).await;
}

#[derive(diesel::QueryableByName)]
struct Terminated {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    #[allow(dead_code)]
    done: bool,
}

async fn expired_access_cookie_says_access_expired(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_user("alice", PASSWORD, false);
    assert_eq!(app.login("alice", PASSWORD).await.status(), 200);
    let access = app.cookie("doorman_access").unwrap();
    app.advance(Duration::from_secs(16 * 60));
    assert_error(app.get("/me").await, 401, "access_expired").await;
    assert_eq!(app.post_empty("/me/refresh").await.status(), 200);
    assert_eq!(app.get("/me").await.status(), 200, "refreshed, then retried");
    // An expired cookie of an ended session is invalid_session, never access_expired.
    assert_eq!(app.post_empty("/me/logout").await.status(), 200);
    let old = reqwest::Client::new().get(app.url("/me")).header("Cookie", format!("doorman_access={access}")).send().await;
    assert_error(old.unwrap(), 401, "invalid_session").await;
}
both_backends!(expired_access_cookie_says_access_expired);

async fn backchannel_logout_tokens_are_checked_and_used_once(backend: Backend) {
    let op = FakeOp::start().await;
    let provider = op.provider_settings("fake");
    let app = spawn(backend).with(move |s| s.providers.push(provider)).start().await;
    op.use_clock(&app.clock);
    assert_eq!(app.sso_login("fake").await.status(), 302);
    let (_, token) = api_token(&app).await;
    let plain = reqwest::Client::new();
    let post = |t: String| plain.post(app.url("/oidc/backchannel-logout")).form(&[("logout_token", t)]).send();
    let now = app.clock.timestamp();
    let bad = [
        op.logout_token(Some("subject-1"), None, |c| {
            c.as_object_mut().unwrap().remove("exp");
        }),
        op.logout_token(Some("subject-1"), None, |c| c["exp"] = (now - 300).into()),
        op.logout_token(Some("subject-1"), None, |c| {
            c.as_object_mut().unwrap().remove("jti");
        }),
        // RS384 verifies with the provider's RSA key, but the provider announced only RS256.
        op.logout_token_signed(jsonwebtoken::Algorithm::RS384, Some("subject-1"), None, |_| {}),
    ];
    for t in bad {
        assert_error(post(t).await.unwrap(), 400, "invalid_logout_token").await;
    }
    assert_eq!(app.get("/me").await.status(), 200);

    // sid only: that session ends, the API token stays.
    let by_sid = op.logout_token(None, Some("sid-subject-1"), |_| {});
    assert_eq!(post(by_sid.clone()).await.unwrap().status(), 200);
    assert_eq!(app.get("/me").await.status(), 401);
    assert_eq!(app.get_bearer("/me", &token).await.status(), 200, "a sid-only logout leaves API tokens");
    let body = assert_error(post(by_sid).await.unwrap(), 400, "invalid_logout_token").await;
    assert!(body["message"].as_str().unwrap().contains("already used"), "{body}");

    // The subject: every session and API token of the user.
    assert_eq!(app.sso_login("fake").await.status(), 302);
    assert_eq!(post(op.logout_token(Some("subject-1"), None, |_| {})).await.unwrap().status(), 200);
    assert_eq!(app.get("/me").await.status(), 401);
    assert_error(app.get_bearer("/me", &token).await, 401, "invalid_token").await;
}
both_backends!(backchannel_logout_tokens_are_checked_and_used_once);

async fn readyz_shows_database_providers_and_channel(backend: Backend) {
    let app = spawn(backend)
        .with(|s| {
            s.providers.push(doorman::config::ProviderSettings {
                id: "down".into(),
                name: "Down".into(),
                issuer: "http://127.0.0.1:1".into(),
                client_id: "c".into(),
                client_secret: None,
                scopes: vec!["openid".into()],
                access: Default::default(),
                max_id_token_age: doorman::config::DEFAULT_MAX_ID_TOKEN_AGE,
            });
        })
        .start()
        .await;
    let started = Instant::now();
    let (status, body) = readyz(&app).await;
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(status, 200, "a provider down does not make doorman unready: {body}");
    assert_eq!(body["database"], "ok");
    assert_eq!(body["providers"], json!({"down": "unavailable"}));
    let channel = if backend == Backend::Postgres { "ok" } else { "single_instance" };
    assert_eq!(body["notifications"], channel);
}
both_backends!(readyz_shows_database_providers_and_channel);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_503_when_the_database_is_gone() {
    let app = spawn_app(Backend::Postgres).await;
    assert_eq!(readyz(&app).await.0, 200);
    let name = url::Url::parse(&app.db_url).unwrap().path().trim_start_matches('/').to_string();
    let mut admin = PgConnection::establish(&std::env::var("DOORMAN_TEST_POSTGRES_URL").unwrap()).unwrap();
    // The database goes away under doorman: no new connection is let in and
    // the open ones are cut (a DROP DATABASE would wait for the pool's
    // reconnections, for seconds to minutes on a busy server).
    diesel::sql_query(format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false")).execute(&mut admin).unwrap();
    diesel::sql_query(format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"))
        .execute(&mut admin)
        .unwrap();
    let started = Instant::now();
    let (status, body) = readyz(&app).await;
    assert!(started.elapsed() < Duration::from_millis(2500), "answered within the 1 s bound: {:?}", started.elapsed());
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["database"], "unavailable");
    assert!(body["providers"].is_object() && body["notifications"].is_string(), "the same shape: {body}");
    assert_eq!(app.get("/healthz").await.status(), 200, "liveness touches nothing");
}

/// The value of every sample of `name` whose labels include all of `labels`, summed.
fn sample(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .filter(|l| labels.iter().all(|label| l.contains(label)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_a_sign_in() {
    let app = spawn(Backend::Sqlite).with(|s| s.metrics.bind = Some("127.0.0.1:0".parse().unwrap())).start().await;
    let port = app.metrics_port.expect("the metrics listener is bound");
    let scrape = || async move {
        let response = reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await.unwrap();
        assert_eq!(response.status(), 200);
        assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
        response.text().await.unwrap()
    };
    app.create_user("alice", PASSWORD, false);
    let before = scrape().await;
    let signed_in = |t: &str| sample(t, "doorman_sign_ins_total", &[r#"method="password""#, r#"outcome="success""#]);
    let login_requests =
        |t: &str| sample(t, "doorman_http_requests_total", &[r#"route="/me/login""#, r#"status="200""#, r#"method="POST""#]);
    assert_eq!(app.login("alice", PASSWORD).await.status(), 200);
    assert_eq!(app.get("/me").await.status(), 200);
    let after = scrape().await;
    assert!(signed_in(&after) >= signed_in(&before) + 1.0, "a sign-in is counted:\n{after}");
    assert!(login_requests(&after) >= login_requests(&before) + 1.0, "the request is counted by route:\n{after}");
    assert!(after.contains("doorman_http_request_duration_seconds_bucket{"), "latency histogram:\n{after}");
    assert!(sample(&after, "doorman_cache_requests_total", &[r#"cache="sessions""#]) >= 1.0);
    assert!(sample(&after, "doorman_tokens_issued_total", &[r#"kind="session""#]) >= 1.0);
    assert!(after.contains("doorman_db_pool_connections{"), "pool use:\n{after}");
    assert!(!after.contains("/users/alice"), "routes are patterns, never raw paths");
    assert!(!after.contains(PASSWORD));
}

/// `name` signed in on `b` with a cookie and an API token, both cached by `b` as valid.
async fn cached_on(b: &TestApp, name: &str) -> (TestApp, String) {
    let browser = b.another_browser();
    assert_eq!(browser.login(name, PASSWORD).await.status(), 200);
    let (_, token) = api_token(&browser).await;
    assert_eq!(browser.get("/me").await.status(), 200, "B caches the session as live");
    assert_eq!(status_with_bearer(b, &token).await, 200, "B caches the token");
    (browser, token)
}

/// Whether `b` refuses both the cookie of `browser` and `token`.
async fn both_refused(b: &TestApp, browser: &TestApp, token: &str) -> bool {
    browser.get("/me").await.status() == 401 && status_with_bearer(b, token).await == 401
}

/// What an administrator does on A to a user whose cookie and bearer token B
/// has cached for an hour: disabling, deleting, signing them out everywhere
/// (`POST /users/{username}/sign-out`) and a demotion are all followed by B
/// within a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn administration_on_one_instance_is_seen_on_the_other_within_a_second() {
    let (a, b, _op) = two_instances().await;
    a.create_user("root", PASSWORD, true);
    let root = a.another_browser();
    assert_eq!(root.login("root", PASSWORD).await.status(), 200);
    let mut delays = Vec::new();

    // Disabled on A.
    a.create_user("bob", PASSWORD, false);
    let (bob, bob_token) = cached_on(&b, "bob").await;
    assert_eq!(root.patch_json("/users/bob", &json!({"status": "disabled"})).await.status(), 200);
    delays.push(within_a_second("user disabled", || both_refused(&b, &bob, &bob_token)).await);

    // Deleted on A.
    a.create_user("carol", PASSWORD, false);
    let (carol, carol_token) = cached_on(&b, "carol").await;
    assert_eq!(root.delete("/users/carol").await.status(), 204);
    delays.push(within_a_second("user deleted", || both_refused(&b, &carol, &carol_token)).await);

    // Every credential of a user ended on A: an administrator's sign-out.
    a.create_user("dave", PASSWORD, false);
    let (dave, dave_token) = cached_on(&b, "dave").await;
    assert_eq!(root.post_empty("/users/dave/sign-out").await.status(), 204);
    delays.push(within_a_second("user signed out", || both_refused(&b, &dave, &dave_token)).await);

    // An administrator demoted on A: their bearer token, cached by B with
    // `users:admin`, loses it on B too.
    a.create_user("erin", PASSWORD, true);
    let (_erin, erin_token) = cached_on(&b, "erin").await;
    assert_eq!(b.get_bearer("/users", &erin_token).await.status(), 200);
    assert_eq!(root.patch_json("/users/erin", &json!({"is_admin": false})).await.status(), 200);
    delays.push(within_a_second("admin demoted", || async { b.get_bearer("/users", &erin_token).await.status() == 403 }).await);
    assert_eq!(status_with_bearer(&b, &erin_token).await, 200, "the token itself still works, with fewer scopes");
    eprintln!("revocation delays across instances (administration): {delays:?}");
}
