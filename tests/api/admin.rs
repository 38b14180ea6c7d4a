//! User administration: `/users` endpoints with their 4xx cases, the last
//! administrator, disabling cutting cookie and bearer at once, usernames
//! without case, and password changes revoking API tokens.

use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::{assert_error, spawn_app, Backend, TestApp};

/// root (admin) signed in on `app`; bob (not admin) signed in on the returned browser.
async fn setup(backend: Backend) -> (TestApp, TestApp) {
    let app = spawn_app(backend).await;
    app.create_user("root", "root password", true);
    app.create_user("bob", "bob password", false);
    assert_eq!(app.login("root", "root password").await.status(), 200);
    let bob = app.another_browser();
    assert_eq!(bob.login("bob", "bob password").await.status(), 200);
    (app, bob)
}

async fn json_of(response: reqwest::Response, status: u16) -> Value {
    let got = response.status().as_u16();
    let text = response.text().await.unwrap();
    assert_eq!(got, status, "{text}");
    serde_json::from_str(&text).unwrap()
}

async fn tap(browser: &TestApp) -> String {
    let tap = crate::helpers::python::tap(browser).await;
    tap["token"].as_str().unwrap().to_string()
}

async fn user_endpoints_and_their_errors(backend: Backend) {
    let (app, bob) = setup(backend).await;
    // Non-admins: 403 on every administration endpoint, and no raising one's own rights.
    let new = json!({"username": "carol", "password": "carol password"});
    assert_error(bob.post_json("/users", &new).await, 403, "insufficient_scope").await;
    assert_error(bob.get("/users/root").await, 403, "insufficient_scope").await;
    assert_error(bob.patch_json("/users/bob", &json!({"is_admin": true})).await, 403, "insufficient_scope").await;
    assert_error(bob.patch_json("/users/root", &json!({"status": "disabled"})).await, 403, "insufficient_scope").await;
    assert_error(bob.delete("/users/root").await, 403, "insufficient_scope").await;
    assert_error(bob.post_json("/users/bob/approve", &json!({})).await, 403, "insufficient_scope").await;
    assert_eq!(json_of(bob.get("/me").await, 200).await["is_admin"], false);

    // Create.
    let created = json_of(
        app.post_json(
            "/users",
            &json!({"username": "carol", "password": "carol password", "email": "carol@example.com", "channel": "team"}),
        )
        .await,
        201,
    )
    .await;
    assert_eq!(created["username"], "carol");
    assert_eq!(created["email"], "carol@example.com");
    assert_eq!((created["channel"].as_str(), created["status"].as_str()), (Some("team"), Some("active")));
    assert_eq!((created["is_admin"].as_bool(), created["is_external_user"].as_bool()), (Some(false), Some(false)));
    assert!(created["created_at"].is_string());
    assert_eq!(created["last_login_at"], Value::Null);
    assert_eq!(created["providers"], json!([]));
    let carol = app.another_browser();
    assert_eq!(carol.login("carol", "carol password").await.status(), 200);
    assert_error(
        app.post_json("/users", &json!({"username": "CAROL", "password": "another password"})).await,
        409,
        "username_taken",
    )
    .await;
    assert_error(app.post_json("/users", &json!({"username": "bad name", "password": "a password"})).await, 400, "invalid_input")
        .await;
    assert_error(app.post_json("/users", &json!({"username": "dave", "password": "short"})).await, 400, "invalid_input").await;
    assert_error(
        app.post_json("/users", &json!({"username": "dave", "password": "long enough", "email": "nope"})).await,
        400,
        "invalid_input",
    )
    .await;
    assert_error(app.post_json("/users", &json!({"username": "dave"})).await, 400, "invalid_json").await;

    // Read, any case.
    let one = json_of(app.get("/users/Carol").await, 200).await;
    assert_eq!(one["username"], "carol");
    assert!(one["last_login_at"].is_string(), "{one}");
    assert_error(app.get("/users/nobody").await, 404, "not_found").await;

    // Change.
    let changed =
        json_of(app.patch_json("/users/carol", &json!({"email": null, "channel": "ops", "is_admin": true})).await, 200).await;
    assert_eq!(
        (changed["email"].clone(), changed["channel"].clone(), changed["is_admin"].clone()),
        (Value::Null, json!("ops"), json!(true))
    );
    assert_error(app.patch_json("/users/nobody", &json!({"channel": "x"})).await, 404, "not_found").await;
    assert_error(app.patch_json("/users/carol", &json!({"status": "pending"})).await, 400, "invalid_input").await;
    assert_error(app.patch_json("/users/carol", &json!({"status": "gone"})).await, 400, "invalid_input").await;
    assert_error(app.patch_json("/users/carol", &json!({"email": "not-an-email"})).await, 400, "invalid_input").await;
    assert_error(app.patch_json("/users/carol", &json!({"channel": ""})).await, 400, "invalid_input").await;
    assert_error(app.patch_json("/users/carol", &json!({"colour": "red"})).await, 400, "invalid_json").await;

    // Approve: only pending users.
    assert_error(app.post_json("/users/carol/approve", &json!({})).await, 409, "not_pending").await;
    assert_error(app.post_json("/users/nobody/approve", &json!({})).await, 404, "not_found").await;

    // List: filters and cursor paging.
    let all = json_of(app.get("/users").await, 200).await;
    let names: Vec<&str> = all.as_array().unwrap().iter().map(|u| u["username"].as_str().unwrap()).collect();
    assert_eq!(names, ["bob", "carol", "root"]);
    let found = json_of(app.get("/users?q=CAR").await, 200).await;
    assert_eq!(found.as_array().unwrap().len(), 1);
    let by_mail = json_of(app.get("/users?q=bob%40example").await, 200).await;
    assert_eq!(by_mail[0]["username"], "bob");
    let none = json_of(app.get("/users?q=%25").await, 200).await;
    assert_eq!(none, json!([]), "% is no wildcard");
    let first = app.get("/users?limit=2").await;
    let link = first.headers()["link"].to_str().unwrap().to_string();
    assert!(link.contains("after=carol") && link.contains("rel=\"next\""), "{link}");
    let first = json_of(first, 200).await;
    assert_eq!(first.as_array().unwrap().len(), 2);
    let rest = json_of(app.get("/users?limit=2&after=carol").await, 200).await;
    assert_eq!(rest.as_array().unwrap().iter().map(|u| u["username"].as_str().unwrap()).collect::<Vec<_>>(), ["root"]);
    assert_error(app.get("/users?limit=0").await, 400, "invalid_input").await;
    assert_error(app.get("/users?limit=1001").await, 400, "invalid_input").await;
    assert_error(app.get("/users?status=gone").await, 400, "invalid_input").await;
    assert_eq!(json_of(app.get("/users?status=disabled").await, 200).await, json!([]));

    // Delete.
    assert_eq!(app.delete("/users/carol").await.status(), 204);
    assert_error(app.get("/users/carol").await, 404, "not_found").await;
    assert_error(app.delete("/users/carol").await, 404, "not_found").await;
    assert_error(carol.get("/me").await, 401, "invalid_session").await;
    assert_eq!(carol.login("carol", "carol password").await.status(), 401);
}
both_backends!(user_endpoints_and_their_errors);

async fn disabling_cuts_cookie_and_bearer_at_once(backend: Backend) {
    let (app, bob) = setup(backend).await;
    let bearer = tap(&bob).await;
    assert_eq!(app.get_bearer("/me", &bearer).await.status(), 200);
    assert_eq!(bob.get("/me").await.status(), 200);

    let disabled = json_of(app.patch_json("/users/bob", &json!({"status": "disabled"})).await, 200).await;
    assert_eq!(disabled["status"], "disabled");
    // At once: no wait for a cache.
    assert_error(bob.get("/me").await, 401, "invalid_session").await;
    assert_error(app.get_bearer("/me", &bearer).await, 401, "invalid_token").await;
    assert_eq!(bob.post_empty("/me/refresh").await.status(), 401);
    let other = app.another_browser();
    assert_error(other.login("bob", "bob password").await, 403, "account_disabled").await;
    assert_error(other.login("bob", "wrong password").await, 401, "invalid_credentials").await;
    let listed = json_of(app.get("/users?status=disabled").await, 200).await;
    assert_eq!(listed[0]["username"], "bob");

    // Enabled again: signs in anew; the old credentials stay ended.
    assert_eq!(json_of(app.patch_json("/users/bob", &json!({"status": "active"})).await, 200).await["status"], "active");
    assert_eq!(other.login("bob", "bob password").await.status(), 200);
    assert_eq!(app.get_bearer("/me", &bearer).await.status(), 401);
}
both_backends!(disabling_cuts_cookie_and_bearer_at_once);

async fn deleting_cuts_cookie_and_bearer_at_once(backend: Backend) {
    let (app, bob) = setup(backend).await;
    let bearer = tap(&bob).await;
    assert_eq!(app.get_bearer("/me", &bearer).await.status(), 200);
    assert_eq!(app.delete("/users/bob").await.status(), 204);
    assert_eq!(bob.get("/me").await.status(), 401);
    assert_error(app.get_bearer("/me", &bearer).await, 401, "invalid_token").await;
}
both_backends!(deleting_cuts_cookie_and_bearer_at_once);

async fn last_admin_is_kept(backend: Backend) {
    let (app, _bob) = setup(backend).await;
    assert_error(app.patch_json("/users/root", &json!({"is_admin": false})).await, 409, "last_admin").await;
    assert_error(app.patch_json("/users/root", &json!({"status": "disabled"})).await, 409, "last_admin").await;
    assert_error(app.delete("/users/root").await, 409, "last_admin").await;
    assert_eq!(json_of(app.get("/users/root").await, 200).await["is_admin"], true);
    // With a second admin, one may go; then the other is the last.
    json_of(app.post_json("/users", &json!({"username": "second", "password": "second password", "is_admin": true})).await, 201)
        .await;
    let demoted = json_of(app.patch_json("/users/root", &json!({"is_admin": false})).await, 200).await;
    assert_eq!(demoted["is_admin"], false);
    let second = app.another_browser();
    assert_eq!(second.login("second", "second password").await.status(), 200);
    assert_error(second.delete("/users/second").await, 409, "last_admin").await;
    assert_error(second.patch_json("/users/second", &json!({"status": "disabled"})).await, 409, "last_admin").await;
    // A disabled admin does not count as an active one.
    assert_eq!(second.patch_json("/users/root", &json!({"is_admin": true, "status": "disabled"})).await.status(), 200);
    assert_error(second.patch_json("/users/second", &json!({"is_admin": false})).await, 409, "last_admin").await;
}
both_backends!(last_admin_is_kept);

async fn usernames_are_unique_without_case(backend: Backend) {
    let (app, _bob) = setup(backend).await;
    assert_error(app.post_json("/users", &json!({"username": "Bob", "password": "bob2 password"})).await, 409, "username_taken")
        .await;
    assert_error(
        app.post_json("/users", &json!({"username": "ROOT", "password": "root2 password"})).await,
        409,
        "username_taken",
    )
    .await;
    // Signing in ignores case too.
    let other = app.another_browser();
    assert_eq!(other.login("BOB", "bob password").await.status(), 200);
    assert_eq!(json_of(other.get("/me").await, 200).await["username"], "bob");
    // The database refuses a second spelling even past the check.
    let mut conn = app.state.db.get().unwrap();
    let now = app.clock.now_naive();
    let username = doorman::identity::users::Username::parse("bOB").unwrap();
    let row = doorman::identity::users::new_user_row(&username, None, false, false, "default", now);
    assert!(doorman::db::users::insert(&mut conn, &row).is_err(), "the lower(username) index holds");
}
both_backends!(usernames_are_unique_without_case);

async fn password_changes_revoke_api_tokens(backend: Backend) {
    let (app, bob) = setup(backend).await;
    // An administrator's reset revokes them.
    let bearer = tap(&bob).await;
    assert_eq!(app.put_json("/users/bob/password", &json!({"password": "reset by root"})).await.status(), 204);
    assert_error(app.get_bearer("/me", &bearer).await, 401, "invalid_token").await;

    // A self-change revokes them too, unless asked to keep them.
    let bob = app.another_browser();
    assert_eq!(bob.login("bob", "reset by root").await.status(), 200);
    let kept = tap(&bob).await;
    let change = json!({"password": "bob's own one", "old_password": "reset by root", "keep_api_tokens": true});
    assert_eq!(bob.put_json("/users/bob/password", &change).await.status(), 204);
    assert_eq!(app.get_bearer("/me", &kept).await.status(), 200);
    let change = json!({"password": "bob's next one", "old_password": "bob's own one"});
    assert_eq!(bob.put_json("/users/bob/password", &change).await.status(), 204);
    assert_error(app.get_bearer("/me", &kept).await, 401, "invalid_token").await;
    assert_eq!(bob.get("/me").await.status(), 200, "the changing session goes on");
    // keep_api_tokens is for one's own password only.
    let reset = json!({"password": "reset again!", "keep_api_tokens": true});
    assert_error(app.put_json("/users/bob/password", &reset).await, 400, "invalid_input").await;
}
both_backends!(password_changes_revoke_api_tokens);

async fn admin_page_is_for_admins_and_checks_csrf(backend: Backend) {
    let (app, bob) = setup(backend).await;
    let signed_out = app.another_browser().get("/admin").await;
    assert_eq!(signed_out.status(), 302);
    assert_eq!(signed_out.headers()["location"], "/login?next=/admin");
    assert_eq!(bob.get("/admin").await.status(), 403);
    let page = app.get("/admin").await;
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert!(!csp.contains("unsafe-inline"), "no inline code allowed: {csp}");
    assert!(page.text().await.unwrap().contains("id=\"none\""));
    // A form post without the csrftoken cookie's value is refused.
    let forged = app.client.post(app.url("/admin/users/bob/approve")).form(&[("csrf", "forged")]).send().await.unwrap();
    assert_error(forged, 403, "csrf_failed").await;
    let csrf = app.cookie("csrftoken").unwrap();
    let not_pending = app.client.post(app.url("/admin/users/bob/reject")).form(&[("csrf", csrf.as_str())]).send().await.unwrap();
    assert_error(not_pending, 409, "not_pending").await;
    let by_bob = bob
        .client
        .post(bob.url("/admin/users/bob/approve"))
        .form(&[("csrf", bob.cookie("csrftoken").unwrap().as_str())])
        .send()
        .await
        .unwrap();
    assert_error(by_bob, 403, "insufficient_scope").await;
}
both_backends!(admin_page_is_for_admins_and_checks_csrf);
