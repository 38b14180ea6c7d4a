//! Password sign-in, the cookies, /me, refresh and logout.

use serde_json::json;

use crate::both_backends;
use crate::helpers::{assert_error, spawn, spawn_app, Backend};

async fn login_sets_cookies_and_me_answers(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_user("alice", "correct horse", false);
    let response = app.login("alice", "correct horse").await;
    assert_eq!(response.status(), 200);
    let set_cookies: Vec<String> =
        response.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_string()).collect();
    let access = set_cookies.iter().find(|c| c.starts_with("doorman_access=")).expect("access cookie");
    assert!(access.contains("HttpOnly") && access.contains("SameSite=Lax") && !access.contains("Secure"), "{access}");
    let session = set_cookies.iter().find(|c| c.starts_with("doorman_session=")).expect("session cookie");
    assert!(session.contains("HttpOnly"), "{session}");
    let csrf = set_cookies.iter().find(|c| c.starts_with("csrftoken=")).expect("csrf cookie");
    assert!(!csrf.contains("HttpOnly"), "{csrf}");

    let me: serde_json::Value = app.get("/me").await.json().await.unwrap();
    assert_eq!(
        me,
        json!({"username": "alice", "email": "alice@example.com", "channel": "default", "is_admin": false,
               "is_external_user": false, "valid_until": null, "providers": []})
    );
}
both_backends!(login_sets_cookies_and_me_answers);

async fn session_cookie_is_stored_only_as_hash(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_user("alice", "correct horse", false);
    assert_eq!(app.login("alice", "correct horse").await.status(), 200);
    let token = app.cookie("doorman_session").unwrap();
    let hashes: Vec<String> = app
        .state
        .db
        .run(|conn| {
            use diesel::prelude::*;
            use doorman::db::schema::sessions::dsl::*;
            sessions.select(token_hash).load::<String>(conn)
        })
        .await
        .unwrap();
    assert_eq!(hashes, vec![doorman::crypto::sha256_hex(&token)]);
}
both_backends!(session_cookie_is_stored_only_as_hash);

async fn wrong_password_and_unknown_user_are_401(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_user("alice", "correct horse", false);
    assert_error(app.login("alice", "wrong horse").await, 401, "invalid_credentials").await;
    assert_error(app.login("nobody", "correct horse").await, 401, "invalid_credentials").await;
    assert!(app.cookie("doorman_access").is_none());
    assert_error(app.get("/me").await, 401, "not_authenticated").await;
}
both_backends!(wrong_password_and_unknown_user_are_401);

async fn repeated_failures_are_throttled(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_user("alice", "correct horse", false);
    for _ in 0..5 {
        assert_eq!(app.login("alice", "wrong horse").await.status(), 401);
    }
    let response = app.login("alice", "correct horse").await;
    assert!(response.headers().get("retry-after").is_some());
    assert_error(response, 429, "too_many_attempts").await;
}
both_backends!(repeated_failures_are_throttled);

async fn refresh_renews_the_access_cookie_and_needs_csrf(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_user("alice", "correct horse", false);
    app.login("alice", "correct horse").await;
    let before = app.cookie("doorman_access").unwrap();
    // Without the CSRF header: refused.
    let response = app.client.post(app.url("/me/refresh")).send().await.unwrap();
    assert_error(response, 403, "csrf_failed").await;
    // A second later by doorman's clock, so the new cookie differs.
    app.advance(std::time::Duration::from_millis(1100));
    let response = app.post_empty("/me/refresh").await;
    assert_eq!(response.status(), 200);
    let after = app.cookie("doorman_access").unwrap();
    assert_ne!(before, after);
    assert_eq!(app.get("/me").await.status(), 200);
}
both_backends!(refresh_renews_the_access_cookie_and_needs_csrf);

async fn logout_ends_the_session_on_the_server(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_user("alice", "correct horse", false);
    app.login("alice", "correct horse").await;
    let access = app.cookie("doorman_access").unwrap();
    let session = app.cookie("doorman_session").unwrap();
    let response = app.post_empty("/me/logout").await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["logout_url"], serde_json::Value::Null);
    assert!(app.cookie("doorman_access").is_none());

    // The old cookies, replayed by another client, no longer work.
    let (client, _) = app.new_browser();
    let replay = client
        .get(app.url("/me"))
        .header("Cookie", format!("doorman_access={access}; doorman_session={session}"))
        .send()
        .await
        .unwrap();
    assert_error(replay, 401, "invalid_session").await;
    let refresh = client
        .post(app.url("/me/refresh"))
        .header("Cookie", format!("doorman_session={session}; csrftoken=x"))
        .header("X-CSRFToken", "x")
        .send()
        .await
        .unwrap();
    assert_error(refresh, 401, "invalid_session").await;
}
both_backends!(logout_ends_the_session_on_the_server);

async fn unsafe_cookie_requests_need_the_csrf_header(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_user("alice", "correct horse", false);
    app.login("alice", "correct horse").await;
    let no_header = app
        .client
        .put(app.url("/users/alice/password"))
        .json(&json!({"password": "a new password", "old_password": "correct horse"}))
        .send()
        .await
        .unwrap();
    assert_error(no_header, 403, "csrf_failed").await;
    let wrong_header = app
        .client
        .put(app.url("/users/alice/password"))
        .header("X-CSRFToken", "not-the-cookie")
        .json(&json!({"password": "a new password", "old_password": "correct horse"}))
        .send()
        .await
        .unwrap();
    assert_error(wrong_header, 403, "csrf_failed").await;
    // The password did not change.
    let (other, jar) = app.new_browser();
    let _ = jar;
    let ok =
        other.post(app.url("/me/login")).json(&json!({"username": "alice", "password": "correct horse"})).send().await.unwrap();
    assert_eq!(ok.status(), 200);
}
both_backends!(unsafe_cookie_requests_need_the_csrf_header);

async fn info_lists_password_login(backend: Backend) {
    let app = spawn_app(backend).await;
    let info: serde_json::Value = app.get("/info").await.json().await.unwrap();
    assert_eq!(info["auth"], json!({"password": true, "oidc": []}));
    assert_eq!(info["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(app.get("/healthz").await.status(), 200);
}
both_backends!(info_lists_password_login);

async fn password_login_can_be_turned_off(backend: Backend) {
    let app = spawn(backend).with(|s| s.auth.password_login = false).start().await;
    app.create_user("alice", "correct horse", false);
    assert_error(app.login("alice", "correct horse").await, 403, "password_login_disabled").await;
    let info: serde_json::Value = app.get("/info").await.json().await.unwrap();
    assert_eq!(info["auth"]["password"], false);
}
both_backends!(password_login_can_be_turned_off);

#[tokio::test]
async fn login_page_and_home_redirect() {
    let app = spawn_app(Backend::Sqlite).await;
    let page = app.get("/login").await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("id=\"password-form\""), "{html}");
    let home = app.get("/").await;
    assert_eq!(home.status(), 302);
    assert_eq!(home.headers()["location"], "/login");
    app.create_user("alice", "correct horse", false);
    app.login("alice", "correct horse").await;
    let home = app.get("/").await;
    assert_eq!(home.status(), 200);
    assert!(home.text().await.unwrap().contains(">alice<"));
}
