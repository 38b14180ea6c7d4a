//! Holding under attack: the guessing limits (atomic, per name and address,
//! per address, shared by instances), the argon2 cap, compressed bodies,
//! `state` before the callback's error, the headers, private SQLite files
//! and the SPEC's shape for a wrong method.

use std::time::Duration;

use futures_util::future::join_all;
use serde_json::json;

use crate::both_backends;
use crate::helpers::fake_op::FakeOp;
use crate::helpers::sso::app_with_op;
use crate::helpers::{assert_error, fresh_postgres_database, spawn, spawn_app, trusting_loopback_proxy, Backend};

/// Finding 1: 50 concurrent wrong passwords, the right one 20th: the
/// attempts are counted before argon2, so at most 5 are checked at all.
async fn a_burst_of_guesses_reaches_the_password_check_at_most_five_times(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_user("alice", "correct horse", false);
    let attempts = (0..50).map(|i| {
        let password = if i == 19 { "correct horse" } else { "wrong horse" };
        let client = reqwest::Client::new();
        let url = app.url("/me/login");
        async move {
            client.post(url).json(&json!({"username": "alice", "password": password})).send().await.unwrap().status().as_u16()
        }
    });
    let statuses = join_all(attempts).await;
    let checked = statuses.iter().filter(|s| **s != 429).count();
    assert!(statuses.iter().all(|s| matches!(s, 200 | 401 | 429)), "{statuses:?}");
    assert!(checked <= 5, "{checked} attempts were checked: {statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 50 - checked);
}
both_backends!(a_burst_of_guesses_reaches_the_password_check_at_most_five_times);

/// Finding 5: five wrong passwords from one address do not lock the user
/// out from another; one address cannot spray many names either.
async fn the_lockout_is_per_name_and_address(backend: Backend) {
    let app = spawn(backend).with(trusting_loopback_proxy).start().await;
    app.create_user("alice", "correct horse", false);
    for _ in 0..5 {
        assert_eq!(app.login_from("203.0.113.66", "alice", "wrong horse").await.status(), 401);
    }
    let locked = app.login_from("203.0.113.66", "alice", "correct horse").await;
    assert!(locked.headers().contains_key("retry-after"));
    assert_error(locked, 429, "too_many_attempts").await;
    // The user, elsewhere, is not locked out.
    assert_eq!(app.login_from("198.51.100.7", "alice", "correct horse").await.status(), 200);
    // One address, many names: refused past the per-address limit.
    let mut refused = 0;
    for i in 0..40 {
        if app.login_from("203.0.113.99", &format!("nobody{i}"), "wrong horse").await.status() == 429 {
            refused += 1;
        }
    }
    assert_eq!(refused, 10, "30 attempts a minute per address");
    // A minute later the window is over.
    app.advance(Duration::from_secs(61));
    assert_eq!(app.login_from("203.0.113.66", "alice", "correct horse").await.status(), 200);
}
both_backends!(the_lockout_is_per_name_and_address);

/// Finding 5: wrong client secrets from one address never lock out the
/// right secret from another.
async fn machine_client_failures_are_limited_per_address(backend: Backend) {
    let app = spawn(backend).with(trusting_loopback_proxy).start().await;
    let (id, secret) = app.create_client("ci", &["queue:submit"]);
    let token = |ip: &'static str, secret: String| {
        let request = reqwest::Client::new()
            .post(app.url("/token"))
            .basic_auth(&id, Some(secret))
            .header("X-Forwarded-For", ip)
            .form(&[("grant_type", "client_credentials")]);
        async move { request.send().await.unwrap() }
    };
    for _ in 0..5 {
        assert_eq!(token("203.0.113.66", "dmc_wrong".into()).await.status(), 401);
    }
    assert_error(token("203.0.113.66", "dmc_wrong".into()).await, 429, "too_many_attempts").await;
    assert_eq!(token("198.51.100.7", secret.clone()).await.status(), 200);
    assert_eq!(token("198.51.100.7", secret.clone()).await.status(), 200);
}
both_backends!(machine_client_failures_are_limited_per_address);

/// Issue 11 point 8: two instances on one PostgreSQL database share the
/// allowance; together they let 5 guesses through, not 10.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_the_guessing_limit() {
    let db = fresh_postgres_database();
    let one = spawn(Backend::Postgres).on_database(&db).start().await;
    let two = spawn(Backend::Postgres).on_database(&db).on_clock(&one.clock).start().await;
    one.create_user("alice", "correct horse", false);
    let mut statuses = Vec::new();
    for i in 0..10 {
        let app = if i % 2 == 0 { &one } else { &two };
        statuses.push(app.login("alice", "wrong horse").await.status().as_u16());
    }
    assert_eq!(statuses, [401, 401, 401, 401, 401, 429, 429, 429, 429, 429]);
    assert_error(two.login("alice", "correct horse").await, 429, "too_many_attempts").await;
}

/// Finding 2: 150 concurrent sign-ins with random names: argon2 never runs
/// more often at once than there are cores; the rest wait or get 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn argon2_runs_behind_a_cap_sized_to_the_cores() {
    let app = spawn(Backend::Sqlite).with(trusting_loopback_proxy).start().await;
    let logins = (0..150).map(|i| {
        let request = reqwest::Client::new()
            .post(app.url("/me/login"))
            // Each from its own address, so only the cap holds them back.
            .header("X-Forwarded-For", format!("10.1.{}.{}", i / 200, i % 200 + 1))
            .json(&json!({"username": format!("random{i}"), "password": "whatever it is"}));
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let retry_after = response.headers().contains_key("retry-after");
            (status, retry_after)
        }
    });
    let answers = join_all(logins).await;
    for (status, retry_after) in &answers {
        assert!(matches!(status, 401 | 503), "{answers:?}");
        assert!(*status != 503 || *retry_after, "a 503 says when to come back");
    }
    let passwords = &app.state.identity.passwords;
    let peak = passwords.peak_in_flight();
    assert!(peak <= passwords.slots(), "{peak} argon2 runs at once");
    assert!(peak >= 1);
}

/// Finding 3: a compressed body is refused (415) before it is read, on
/// every endpoint that takes a body without signing in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_request_bodies_are_refused() {
    let app = spawn_app(Backend::Sqlite).await;
    for path in ["/me/login", "/oidc/backchannel-logout", "/token"] {
        for encoding in ["gzip", "deflate", "br", "zstd", "gzip, identity"] {
            let response = reqwest::Client::new()
                .post(app.url(path))
                .header("Content-Encoding", encoding)
                .header("Content-Type", "application/json")
                .body(vec![0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00])
                .send()
                .await
                .unwrap();
            assert_error(response, 415, "unsupported_content_encoding").await;
        }
    }
    // Plain bodies (and `identity`) go on as before.
    let plain = reqwest::Client::new()
        .post(app.url("/me/login"))
        .header("Content-Encoding", "identity")
        .json(&json!({"username": "nobody", "password": "wrong horse"}))
        .send()
        .await
        .unwrap();
    assert_error(plain, 401, "invalid_credentials").await;
}

/// Finding 8: nosniff on JSON, no-store on /me and /users, credentials in
/// CORS only beside an allowed origin; finding 10's 405 in the SPEC's shape.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_carry_the_safe_headers() {
    let app = spawn(Backend::Sqlite)
        .with(|s| s.server.frontend_origins = vec![url::Url::parse("https://app.example.com").unwrap().origin()])
        .start()
        .await;
    app.create_user("root", "correct horse", true);
    app.login("root", "correct horse").await;
    for path in ["/me", "/users"] {
        let response = app.get(path).await;
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(response.headers()["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(response.headers()["cache-control"], "no-store", "{path}");
    }
    let info = app.get("/info").await;
    assert_eq!(info.headers()["x-content-type-options"], "nosniff");
    assert!(info.headers().get("access-control-allow-credentials").is_none(), "no origin, no CORS credentials");
    let foreign = app.client.get(app.url("/info")).header("Origin", "https://evil.example").send().await.unwrap();
    assert!(foreign.headers().get("access-control-allow-credentials").is_none());
    let allowed = app.client.get(app.url("/info")).header("Origin", "https://app.example.com").send().await.unwrap();
    assert_eq!(allowed.headers()["access-control-allow-origin"], "https://app.example.com");
    assert_eq!(allowed.headers()["access-control-allow-credentials"], "true");

    let wrong_method = app.client.patch(app.url("/healthz")).send().await.unwrap();
    assert_eq!(wrong_method.headers()["x-content-type-options"], "nosniff");
    let post_me = app.post_empty("/me").await;
    assert_eq!(post_me.headers()["allow"], "GET");
    assert_error(post_me, 405, "method_not_allowed").await;
    assert_error(app.delete("/me").await, 405, "method_not_allowed").await;
}

/// Finding 4: no page allows inline script or style; the pages' script is a
/// file doorman serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_run_no_inline_code() {
    let app = spawn_app(Backend::Sqlite).await;
    app.create_user("alice", "correct horse", false);
    let login = app.get("/login?next=/after").await;
    let csp = login.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert!(!csp.contains("unsafe-inline") && csp.contains("script-src 'self'"), "{csp}");
    assert_eq!(login.headers()["x-frame-options"], "DENY");
    let html = login.text().await.unwrap();
    assert!(!html.contains("<script>") && !html.contains("<style>"), "{html}");
    assert!(html.contains("data-next=\"&#x2f;after\""), "{html}");
    app.login("alice", "correct horse").await;
    let home = app.get("/").await;
    assert!(!home.headers()["content-security-policy"].to_str().unwrap().contains("unsafe-inline"));
    assert!(!home.text().await.unwrap().contains("<script>"));
    let script = app.get("/static/doorman.js").await;
    assert_eq!(script.status(), 200);
    assert!(script.headers()["content-type"].to_str().unwrap().starts_with("text/javascript"));
    let text = script.text().await.unwrap();
    assert!(text.contains("url.protocol === \"https:\""), "navigation is limited to http(s)");
    assert_eq!(app.get("/static/doorman.css").await.status(), 200);
}

/// Finding 4: a provider's `javascript:` logout endpoint is never handed
/// to the browser.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_https_logout_endpoint_is_ignored() {
    let op = FakeOp::start().await;
    op.set(|k| k.end_session_endpoint = Some("javascript:alert(document.cookie)".into()));
    let provider = op.provider_settings("fake");
    let app = spawn(Backend::Sqlite).with(move |s| s.providers.push(provider)).start().await;
    assert_eq!(app.sso_login("fake").await.status(), 302);
    let out = app.post_empty("/me/logout").await;
    assert_eq!(out.status(), 200);
    let body: serde_json::Value = out.json().await.unwrap();
    assert!(body["logout_url"].is_null(), "{body}");
}

/// Finding 6: a bare callback link with an `error` shows none of its text
/// and leaves the sign-in in progress alone, which then completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_state_is_checked_before_the_callback_error() {
    let (app, _op) = app_with_op(Backend::Sqlite).await;
    let callback = app.begin_login("fake", None).await;
    let forged = app.get("/oidc/callback?error=access_denied&error_description=Call%200800%20EVIL%20now&state=guessed").await;
    assert_eq!(forged.status(), 400);
    assert!(forged.headers()["content-security-policy"].to_str().unwrap().contains("frame-ancestors 'none'"));
    assert_eq!(forged.headers()["x-frame-options"], "DENY");
    assert_eq!(forged.headers()["x-content-type-options"], "nosniff");
    let page = forged.text().await.unwrap();
    assert!(!page.contains("EVIL") && !page.contains("access_denied"), "{page}");
    assert!(page.contains("invalid_state"), "{page}");
    // The real response still finishes the sign-in.
    let done = app.client.get(&callback).send().await.unwrap();
    assert_eq!(done.status(), 302, "{:?}", done.text().await);
}

/// Finding 9: the SQLite database and its WAL files are the owner's only.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let app = spawn_app(Backend::Sqlite).await;
    app.create_user("alice", "correct horse", false);
    app.login("alice", "correct horse").await;
    let db = std::path::PathBuf::from(app.db_url.strip_prefix("sqlite://").unwrap());
    let mut checked = 0;
    for suffix in ["", "-wal", "-shm"] {
        let path = std::path::PathBuf::from(format!("{}{suffix}", db.display()));
        if let Ok(meta) = std::fs::metadata(&path) {
            assert_eq!(meta.permissions().mode() & 0o077, 0, "{} is readable by others", path.display());
            checked += 1;
        }
    }
    assert!(checked >= 2, "the database and its WAL exist");
}

/// Failed guesses are held back by `server.failure_delay`, on a timer: a
/// flood of them, held at once on a single worker, does not hold up a
/// signed-in caller, and the right password is not held back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_guesses_are_held_back_without_holding_up_others() {
    let delay = Duration::from_secs(2);
    let app = spawn(Backend::Sqlite)
        .with(|s| s.server.failure_delay = Duration::from_secs(2))
        .with(trusting_loopback_proxy)
        .start()
        .await;
    app.create_user("alice", "correct horse", false);
    assert_eq!(app.login("alice", "correct horse").await.status(), 200);

    let started = std::time::Instant::now();
    let guesses = (0..40).map(|i| {
        let client = reqwest::Client::new();
        let app = &app;
        async move {
            let request = if i % 2 == 0 {
                client
                    .post(app.url("/me/login"))
                    .header("X-Forwarded-For", format!("198.51.100.{i}"))
                    .json(&json!({"username": format!("nobody{i}"), "password": "wrong horse"}))
            } else {
                client.get(app.url("/me")).bearer_auth(format!("dmn_{}", "A".repeat(43)))
            };
            request.send().await.unwrap().status().as_u16()
        }
    });
    // While the 40 wrong answers are held (the app has one worker), a
    // signed-in caller is answered at once, several times over.
    let signed_in = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        for _ in 0..5 {
            assert_eq!(app.get("/me").await.status(), 200);
        }
        assert!(started.elapsed() < delay, "the held answers blocked the worker");
    };
    let (statuses, ()) = tokio::join!(join_all(guesses), signed_in);
    assert!(started.elapsed() >= delay, "failed guesses were answered before failure_delay");
    assert!(statuses.iter().all(|s| *s == 401), "{statuses:?}");
    // A guard's refusal goes through the same finishing as any answer.
    let refused = reqwest::Client::new().get(app.url("/me")).bearer_auth("dmn_x").send().await.unwrap();
    assert_eq!(refused.headers()["x-content-type-options"], "nosniff");
    assert!(!refused.headers().contains_key("access-control-allow-credentials"));
    // The right password is answered without the delay.
    let before = std::time::Instant::now();
    assert_eq!(app.another_browser().login("alice", "correct horse").await.status(), 200);
    assert!(before.elapsed() < delay);
}
