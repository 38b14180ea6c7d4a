//! Single sign-on and the user lifecycle against the real `oidc-provider`.

use std::time::Duration;

use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::python::tap;
use crate::helpers::real_op::{account, client_for, RealOp};
use crate::helpers::sso::real_setup;
use crate::helpers::{assert_error, spawn, Backend};

async fn full_login_through_the_real_provider(backend: Backend) {
    let (app, op) = real_setup(backend, "offline_access", vec![account("u1", "alice", "alice-pw")], |_| {}).await;
    let response = app.real_login("real", "alice", "alice-pw").await;
    assert_eq!(response.status(), 302);
    assert_eq!(response.headers()["location"], "/");
    let me: Value = app.get("/me").await.json().await.unwrap();
    assert_eq!(me["username"], "alice");
    assert_eq!(me["email"], "alice@example.com");
    assert_eq!(me["is_external_user"], true);

    // The refresh token from offline_access is stored, encrypted.
    let rows = app.identities().await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].issuer, op.issuer);
    assert_eq!(rows[0].subject, "u1");
    let sealed = rows[0].refresh_token_enc.clone().expect("a refresh token is stored");
    let clear = app.open_sealed(&format!("refresh_token:{}", rows[0].id), &sealed);
    assert!(!sealed.contains(&clear));

    // A second sign-in, from another browser, finds the same user.
    let other = app.another_browser();
    assert_eq!(other.real_login("real", "alice", "alice-pw").await.status(), 302);
    assert_eq!(app.user_count().await, 1);
    let again: Value = other.get("/me").await.json().await.unwrap();
    assert_eq!(again["username"], "alice");
    assert!(op.stats().await["userinfo_requests"].as_u64().unwrap() >= 2, "userinfo was asked");
}
both_backends!(full_login_through_the_real_provider);

async fn two_real_providers_keep_equal_subjects_apart(backend: Backend) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let config = |name: &str| json!({"clients": [client_for(&base, "offline_access")], "accounts": [account("same-sub", name, "pw-12345")]});
    let first = RealOp::start(config("ann"));
    let second = RealOp::start(config("bob"));
    let (p1, p2) = (first.provider_settings("first"), second.provider_settings("second"));
    let app = spawn(backend)
        .on_listener(listener)
        .with(move |s| {
            s.providers.push(p1);
            s.providers.push(p2);
        })
        .start()
        .await;
    assert_eq!(app.real_login("first", "ann", "pw-12345").await.status(), 302);
    let other = app.another_browser();
    assert_eq!(other.real_login("second", "bob", "pw-12345").await.status(), 302);
    assert_eq!(app.user_count().await, 2);
    let a: Value = app.get("/me").await.json().await.unwrap();
    let b: Value = other.get("/me").await.json().await.unwrap();
    assert_eq!((a["username"].as_str(), b["username"].as_str()), (Some("ann"), Some("bob")));
    let rows = app.identities().await;
    assert!(rows.iter().all(|r| r.subject == "same-sub"));
    assert_ne!(rows[0].issuer, rows[1].issuer);
}
both_backends!(two_real_providers_keep_equal_subjects_apart);

async fn user_deleted_at_the_provider_loses_access(backend: Backend) {
    // The provider's ID tokens live 10 minutes of its own (real) time, so
    // doorman's clock moves by less than that between its refreshes.
    let validity = Duration::from_secs(600);
    let (app, op) = real_setup(backend, "offline_access", vec![account("u1", "alice", "alice-pw")], move |s| {
        s.auth.external_validity = validity.into();
        s.auth.refresh_interval = Duration::from_secs(3600).into();
        s.auth.cache_ttl = Duration::from_secs(1).into();
    })
    .await;
    assert_eq!(app.real_login("real", "alice", "alice-pw").await.status(), 302);
    let tap: Value = tap(&app).await;
    let bearer = tap["token"].as_str().unwrap().to_string();
    assert_eq!(app.get_bearer("/me", &bearer).await.status(), 200);
    let first = app.identities().await[0].valid_until;

    // The background refresh, halfway through the validity, moves valid_until.
    app.advance(validity / 2 + Duration::from_secs(1));
    app.sweep().await;
    assert!(op.stats().await["refresh_requests"].as_u64().unwrap() >= 1);
    let moved = app.identities().await[0].valid_until;
    assert!(moved > first, "valid_until moved forward");

    // Removed at the provider: the next refresh is refused, and once
    // valid_until passes, cookie and bearer token are both refused.
    op.delete_account("u1").await;
    app.advance(validity / 2 + Duration::from_secs(1));
    app.sweep().await;
    assert_eq!(app.identities().await[0].refresh_state, "refused");
    app.advance(validity / 2);
    assert!(app.clock.now_naive() > moved);
    assert_error(app.get_bearer("/me", &bearer).await, 401, "sign_in_again").await;
    assert_eq!(app.get("/me").await.status(), 401);
    assert_error(app.post_empty("/me/refresh").await, 401, "sign_in_again").await;
    // And the provider no longer signs them in.
    assert!(op.stats().await["refresh_failures"].as_u64().unwrap() >= 1);
}
both_backends!(user_deleted_at_the_provider_loses_access);

async fn without_refresh_token_access_ends_after_external_validity(backend: Backend) {
    let (app, op) = real_setup(backend, "never", vec![account("u1", "alice", "alice-pw")], |s| {
        s.auth.external_validity = Duration::from_secs(60).into();
    })
    .await;
    assert_eq!(app.real_login("real", "alice", "alice-pw").await.status(), 302);
    assert!(app.identities().await[0].refresh_token_enc.is_none());
    let tap: Value = tap(&app).await;
    let bearer = tap["token"].as_str().unwrap().to_string();
    assert_eq!(app.get("/me").await.status(), 200);
    app.advance(Duration::from_secs(61));
    assert_eq!(app.get("/me").await.status(), 401);
    assert_error(app.post_empty("/me/refresh").await, 401, "sign_in_again").await;
    assert_error(app.get_bearer("/me", &bearer).await, 401, "sign_in_again").await;
    assert_eq!(op.stats().await["refresh_requests"], 0);
    // Signing in again moves valid_until forward; the bearer token works again.
    assert_eq!(app.real_login("real", "alice", "alice-pw").await.status(), 302);
    assert_eq!(app.get("/me").await.status(), 200);
    let mut ok = false;
    for _ in 0..30 {
        if app.get_bearer("/me", &bearer).await.status() == 200 {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(ok, "the bearer token works again after signing in");
}
both_backends!(without_refresh_token_access_ends_after_external_validity);

async fn rp_initiated_logout_ends_both_sessions(backend: Backend) {
    let (app, op) = real_setup(backend, "offline_access", vec![account("u1", "alice", "alice-pw")], |_| {}).await;
    assert_eq!(app.real_login("real", "alice", "alice-pw").await.status(), 302);
    let response = app.post_empty("/me/logout").await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let logout_url = body["logout_url"].as_str().expect("the provider's end-session URL").to_string();
    assert!(logout_url.starts_with(&format!("{}/session/end?", op.issuer)), "{logout_url}");
    assert_eq!(app.get("/me").await.status(), 401);
    assert_eq!(op.stats().await["revocation_requests"], 1, "the refresh token was revoked");
    assert!(app.identities().await[0].refresh_token_enc.is_none());

    // The browser follows the URL: the provider confirms, then sends it back to /login.
    let page = app.client.get(&logout_url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    let xsrf = html.split("name=\"xsrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_string();
    let confirm = app
        .client
        .post(format!("{}/session/end/confirm", op.issuer))
        .form(&[("xsrf", xsrf.as_str()), ("logout", "yes")])
        .send()
        .await
        .unwrap();
    assert_eq!(confirm.status(), 303);
    let back = confirm.headers()["location"].to_str().unwrap();
    assert!(back.starts_with(&format!("{}/login", app.address)), "{back}");
    // Signed out at the provider too: the next sign-in asks for the password again.
    let again = app.real_login("real", "alice", "alice-pw").await;
    assert_eq!(again.status(), 302);
}
both_backends!(rp_initiated_logout_ends_both_sessions);

async fn backchannel_logout_from_the_real_provider(backend: Backend) {
    let (app, op) = real_setup(backend, "offline_access", vec![account("u1", "alice", "alice-pw")], |_| {}).await;
    assert_eq!(app.real_login("real", "alice", "alice-pw").await.status(), 302);
    assert_eq!(app.get("/me").await.status(), 200);
    let sent = op.backchannel_logout("u1").await;
    assert_eq!(sent["sent"], 1, "{sent}");
    assert_eq!(sent["errors"], json!([]), "doorman accepted the logout token: {sent}");
    assert_error(app.get("/me").await, 401, "invalid_session").await;
    assert_error(app.post_empty("/me/refresh").await, 401, "invalid_session").await;
}
both_backends!(backchannel_logout_from_the_real_provider);

async fn groups_at_the_real_provider_rule_sign_in_and_refresh(backend: Backend) {
    // Refreshes fall due halfway through the validity; the provider's ID
    // tokens live 10 minutes of its own time, more than the clock moves here.
    let validity = Duration::from_secs(300);
    let step = validity / 2 + Duration::from_secs(1);
    let mut alice = account("u1", "alice", "alice-pw");
    alice["groups"] = json!(["staff", "ops"]);
    let bob = account("u2", "bob", "bob-pw");
    let (app, op) = real_setup(backend, "offline_access", vec![alice.clone(), bob], move |s| {
        s.auth.external_validity = validity.into();
        s.auth.refresh_interval = Duration::from_secs(3600).into();
        s.auth.cache_ttl = Duration::from_secs(1).into();
        s.providers[0].access.allowed_groups = vec!["staff".into(), "ops".into()];
        s.providers[0].access.admin_groups = vec!["ops".into()];
    })
    .await;
    // In none of the allowed groups: refused, nobody stored.
    let refused = app.real_login("real", "bob", "bob-pw").await;
    assert_eq!(refused.status(), 403);
    assert!(refused.text().await.unwrap().contains("data-code=\"access_denied\""));
    assert_eq!(app.user_count().await, 0);

    let alice_browser = app.another_browser();
    assert_eq!(alice_browser.real_login("real", "alice", "alice-pw").await.status(), 302);
    let me: Value = alice_browser.get("/me").await.json().await.unwrap();
    assert_eq!(me["is_admin"], true, "admin by group at sign-in");

    // Out of ops at the provider: no longer an admin after the next refresh.
    alice["groups"] = json!(["staff"]);
    op.put_account(alice.clone()).await;
    app.advance(step);
    assert_eq!(app.sweep().await.refreshed, 1);
    assert_eq!(alice_browser.post_empty("/me/refresh").await.status(), 200);
    let me: Value = alice_browser.get("/me").await.json().await.unwrap();
    assert_eq!(me["is_admin"], false, "admin taken away at refresh");

    // Back in ops: admin again at the next sign-in.
    alice["groups"] = json!(["ops"]);
    op.put_account(alice.clone()).await;
    let again = app.another_browser();
    assert_eq!(again.real_login("real", "alice", "alice-pw").await.status(), 302);
    let me: Value = again.get("/me").await.json().await.unwrap();
    assert_eq!(me["is_admin"], true, "admin given at sign-in");

    // Out of every allowed group: the next refresh is refused.
    alice["groups"] = json!([]);
    op.put_account(alice).await;
    app.advance(step);
    let report = app.sweep().await;
    assert_eq!(report.refused, 1, "{report:?}");
    assert_eq!(app.identities().await[0].refresh_state, "refused");
}
both_backends!(groups_at_the_real_provider_rule_sign_in_and_refresh);
