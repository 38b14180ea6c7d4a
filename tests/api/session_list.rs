//! `/me/sessions` and the administrator's `/users/{username}/sessions` and
//! `/users/{username}/sign-out`.

use std::time::Duration;

use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::{assert_error, spawn_app, Backend, TestApp};

async fn sessions_of(app: &TestApp) -> Vec<Value> {
    let response = app.get("/me/sessions").await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn login_with_agent(app: &TestApp, username: &str, password: &str, agent: &str) {
    let response = app
        .client
        .post(app.url("/me/login"))
        .header("User-Agent", agent)
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

async fn own_sessions_are_listed_and_ended(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_user("alice", "correct horse", false);
    app.create_user("bob", "battery staple", false);
    login_with_agent(&app, "alice", "correct horse", "Firefox/1").await;
    let phone = app.another_browser();
    login_with_agent(&phone, "alice", "correct horse", "Phone/2").await;
    let bob = app.another_browser();
    assert_eq!(bob.login("bob", "battery staple").await.status(), 200);

    let list = sessions_of(&app).await;
    assert_eq!(list.len(), 2, "{list:?}");
    let mine = list.iter().find(|s| s["current"] == true).expect("the current session is marked");
    assert_eq!(mine["user_agent"], "Firefox/1");
    assert_eq!(mine["ip"], "127.0.0.1");
    assert_eq!(mine["method"], "password");
    assert_eq!(mine["created_at"], mine["last_seen_at"]);
    let keys: Vec<&String> = mine.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 7, "exactly the SPEC's fields: {mine}");
    let other = list.iter().find(|s| s["current"] == false).unwrap();
    assert_eq!(other["user_agent"], "Phone/2");

    // A refresh moves last_seen_at.
    app.advance(Duration::from_secs(120));
    assert_eq!(app.post_empty("/me/refresh").await.status(), 200);
    let mine = sessions_of(&app).await.into_iter().find(|s| s["current"] == true).unwrap();
    assert_ne!(mine["created_at"], mine["last_seen_at"]);

    // Ending the phone's session: refused at once on this instance.
    let phone_id = other["id"].as_str().unwrap().to_string();
    assert_eq!(phone.get("/me").await.status(), 200);
    assert_eq!(app.delete(&format!("/me/sessions/{phone_id}")).await.status(), 204);
    assert_error(phone.get("/me").await, 401, "invalid_session").await;
    assert_eq!(sessions_of(&app).await.len(), 1);
    // Again, unknown, malformed and someone else's: 404, and bob's session lives on.
    assert_error(app.delete(&format!("/me/sessions/{phone_id}")).await, 404, "not_found").await;
    assert_error(app.delete(&format!("/me/sessions/{}", uuid::Uuid::new_v4())).await, 404, "not_found").await;
    assert_error(app.delete("/me/sessions/not-an-id").await, 404, "not_found").await;
    let bob_id = sessions_of(&bob).await[0]["id"].as_str().unwrap().to_string();
    assert_error(app.delete(&format!("/me/sessions/{bob_id}")).await, 404, "not_found").await;
    assert_eq!(bob.get("/me").await.status(), 200);
    // Without the CSRF header, a cookie caller cannot end a session.
    let no_csrf = app.client.delete(app.url(&format!("/me/sessions/{bob_id}"))).send().await.unwrap();
    assert_error(no_csrf, 403, "csrf_failed").await;

    // Ending one's own current session signs this browser out.
    let mine_id = mine["id"].as_str().unwrap().to_string();
    assert_eq!(app.delete(&format!("/me/sessions/{mine_id}")).await.status(), 204);
    assert_error(app.get("/me").await, 401, "invalid_session").await;
    assert_error(app.get("/me/sessions").await, 401, "invalid_session").await;
}
both_backends!(own_sessions_are_listed_and_ended);

async fn admin_lists_sessions_and_signs_a_user_out(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_user("root", "root password", true);
    app.create_user("alice", "correct horse", false);
    assert_eq!(app.login("alice", "correct horse").await.status(), 200);
    let token: Value = app.post_json("/api-token-tap", &json!({})).await.json().await.unwrap();
    let token = token["token"].as_str().unwrap().to_string();
    assert_eq!(app.get_bearer("/me", &token).await.status(), 200);

    // Not an administrator: 403, with a cookie or a token.
    assert_error(app.get("/users/alice/sessions").await, 403, "insufficient_scope").await;
    assert_error(app.post_empty("/users/alice/sign-out").await, 403, "insufficient_scope").await;
    assert_error(app.get_bearer("/audit-events", &token).await, 403, "insufficient_scope").await;

    let admin = app.another_browser();
    assert_eq!(admin.login("root", "root password").await.status(), 200);
    let list: Vec<Value> = admin.get("/users/alice/sessions").await.json().await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["method"], "password");
    assert_eq!(list[0]["current"], false);
    assert_error(admin.get("/users/nobody/sessions").await, 404, "not_found").await;
    assert_error(admin.post_empty("/users/nobody/sign-out").await, 404, "not_found").await;

    assert_eq!(admin.post_empty("/users/alice/sign-out").await.status(), 204);
    assert_error(app.get("/me").await, 401, "invalid_session").await;
    assert_error(app.get_bearer("/me", &token).await, 401, "invalid_token").await;
    let list: Vec<Value> = admin.get("/users/alice/sessions").await.json().await.unwrap();
    assert!(list.is_empty());
    assert_eq!(admin.get("/me").await.status(), 200, "the administrator's own session lives on");
}
both_backends!(admin_lists_sessions_and_signs_a_user_out);
