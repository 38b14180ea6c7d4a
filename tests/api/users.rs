//! /users and password changes.

use serde_json::json;

use crate::both_backends;
use crate::helpers::{assert_error, spawn_app, Backend};

async fn users_list_is_for_admins(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_user("root", "admin password", true);
    app.create_user("bob", "bob password", false);
    app.login("bob", "bob password").await;
    let refused = app.get("/users").await;
    assert!(refused.headers()["www-authenticate"].to_str().unwrap().contains("insufficient_scope"));
    let body = assert_error(refused, 403, "insufficient_scope").await;
    assert!(body["message"].as_str().unwrap().contains("users:read"));

    app.login("root", "admin password").await;
    let users: serde_json::Value = app.get("/users").await.json().await.unwrap();
    let names: Vec<&str> = users.as_array().unwrap().iter().map(|u| u["username"].as_str().unwrap()).collect();
    assert_eq!(names, ["bob", "root"]);
    assert!(users.as_array().unwrap().iter().all(|u| u["is_external_user"] == false));
    assert_eq!(users[1]["is_admin"], true);
}
both_backends!(users_list_is_for_admins);

async fn user_changes_own_password_with_old_one(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_user("bob", "bob password", false);
    app.login("bob", "bob password").await;
    let missing_old = app.put_json("/users/bob/password", &json!({"password": "new bob password"})).await;
    assert_error(missing_old, 400, "invalid_input").await;
    let wrong_old =
        app.put_json("/users/bob/password", &json!({"password": "new bob password", "old_password": "nope nope"})).await;
    assert_error(wrong_old, 403, "forbidden").await;
    let too_short = app.put_json("/users/bob/password", &json!({"password": "short", "old_password": "bob password"})).await;
    assert_error(too_short, 400, "invalid_input").await;
    let ok = app.put_json("/users/bob/password", &json!({"password": "new bob password", "old_password": "bob password"})).await;
    assert_eq!(ok.status(), 204);
    // This session goes on; the old password no longer works, the new one does.
    assert_eq!(app.get("/me").await.status(), 200);
    let (other, _jar) = app.new_browser();
    let old =
        other.post(app.url("/me/login")).json(&json!({"username": "bob", "password": "bob password"})).send().await.unwrap();
    assert_eq!(old.status(), 401);
    let new =
        other.post(app.url("/me/login")).json(&json!({"username": "bob", "password": "new bob password"})).send().await.unwrap();
    assert_eq!(new.status(), 200);
}
both_backends!(user_changes_own_password_with_old_one);

async fn only_admins_set_other_passwords(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_user("root", "admin password", true);
    app.create_user("bob", "bob password", false);
    app.create_user("carol", "carol password", false);
    app.login("bob", "bob password").await;
    let refused = app.put_json("/users/carol/password", &json!({"password": "hijacked password"})).await;
    assert_error(refused, 403, "insufficient_scope").await;

    // Bob's other browser session is ended when an admin resets his password.
    let (bob_browser, _jar) = app.new_browser();
    bob_browser.post(app.url("/me/login")).json(&json!({"username": "bob", "password": "bob password"})).send().await.unwrap();
    assert_eq!(bob_browser.get(app.url("/me")).send().await.unwrap().status(), 200);

    app.login("root", "admin password").await;
    let ok = app.put_json("/users/bob/password", &json!({"password": "reset by admin"})).await;
    assert_eq!(ok.status(), 204);
    let missing = app.put_json("/users/nobody/password", &json!({"password": "reset by admin"})).await;
    assert_error(missing, 404, "not_found").await;
    // Sessions are checked through a cache for `cache_ttl` (10s by default);
    // a fresh login with the old password fails at once.
    let (other, _jar) = app.new_browser();
    let old =
        other.post(app.url("/me/login")).json(&json!({"username": "bob", "password": "bob password"})).send().await.unwrap();
    assert_eq!(old.status(), 401);
    let refresh = bob_browser.post(app.url("/me/refresh")).send().await.unwrap();
    assert_eq!(refresh.status(), 403, "no CSRF header: refused before anything else");
}
both_backends!(only_admins_set_other_passwords);
