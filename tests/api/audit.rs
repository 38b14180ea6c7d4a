//! Audit events: one for each kind the code has (sign-ins and their
//! refusals, sessions, tokens, user administration, device sign-in, the
//! provider's refreshes and logouts, keys), stored and listed by
//! `GET /audit-events` (filters, newest first, cursor paging), deleted past
//! `audit.retention`, and never holding a secret (events and log lines).

use std::time::Duration;

use serde_json::{json, Value};

use doorman::config::{AccessRules, Approval};

use crate::both_backends;
use crate::helpers::device::assert_oauth_error;
use crate::helpers::fake_op::{FakeOp, FakeUser};
use crate::helpers::{assert_error, captured_logs, spawn, spawn_app, Backend, TestApp};

/// An administrator's bearer token (the admin signs in in a browser of their own).
async fn admin_token(app: &TestApp) -> String {
    app.create_user("root", "root password", true);
    let admin = app.another_browser();
    assert_eq!(admin.login("root", "root password").await.status(), 200);
    let body: Value = admin.post_json("/api-token-tap", &json!({"name": "audit"})).await.json().await.unwrap();
    body["token"].as_str().unwrap().to_string()
}

/// The newest event of `kind` (about `username`, when given).
async fn newest(app: &TestApp, token: &str, kind: &str, username: Option<&str>) -> Value {
    let mut query = format!("&kind={kind}");
    if let Some(name) = username {
        query.push_str(&format!("&username={name}"));
    }
    let events = app.audit_events(token, &query).await;
    events.into_iter().next().unwrap_or_else(|| panic!("no {kind} event for {username:?}"))
}

fn assert_shape(event: &Value) {
    let keys: Vec<&str> = event.as_object().unwrap().keys().map(String::as_str).collect();
    let mut keys = keys;
    keys.sort();
    assert_eq!(keys, ["actor", "at", "detail", "id", "ip", "kind", "outcome", "user_agent", "username"], "{event}");
    assert!(event["detail"].is_object(), "{event}");
}

async fn password_account_and_token_events(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = admin_token(&app).await;
    app.create_user("alice", "correct horse", false);

    // Sign-in failures, with their reason.
    assert_eq!(app.login("alice", "wrong horse").await.status(), 401);
    let e = newest(&app, &token, "sign_in", Some("alice")).await;
    assert_shape(&e);
    assert_eq!((e["outcome"].as_str(), e["detail"]["reason"].as_str()), (Some("failure"), Some("wrong_password")));
    assert_eq!(e["detail"]["method"], "password");
    assert_eq!(e["ip"], "127.0.0.1");
    assert_eq!(app.login("nobody", "correct horse").await.status(), 401);
    let e = newest(&app, &token, "sign_in", Some("nobody")).await;
    assert_eq!(e["detail"]["reason"], "unknown_user");

    // Success, in the same transaction as the session it opened.
    let response = app
        .client
        .post(app.url("/me/login"))
        .header("User-Agent", "AuditAgent/1")
        .json(&json!({"username": "alice", "password": "correct horse"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let e = newest(&app, &token, "sign_in", Some("alice")).await;
    assert_eq!((e["outcome"].as_str(), e["actor"].as_str()), (Some("success"), Some("alice")));
    assert_eq!(e["user_agent"], "AuditAgent/1");
    let sessions: Vec<Value> = app.get("/me/sessions").await.json().await.unwrap();
    assert_eq!(e["detail"]["session_id"], sessions[0]["id"]);

    // API tokens: created and revoked.
    let created: Value = app.post_json("/api-token-tap", &json!({"name": "laptop"})).await.json().await.unwrap();
    let e = newest(&app, &token, "api_token_created", Some("alice")).await;
    assert_eq!(e["detail"]["token_id"], created["id"]);
    assert_eq!(e["detail"]["name"], "laptop");
    assert_eq!(app.delete(&format!("/api-tokens/{}", created["id"].as_str().unwrap())).await.status(), 204);
    let e = newest(&app, &token, "api_token_revoked", Some("alice")).await;
    assert_eq!((e["detail"]["token_id"].clone(), e["actor"].as_str()), (created["id"].clone(), Some("alice")));

    // A session ended from the list, then the password changed, then sign-out.
    let phone = app.another_browser();
    assert_eq!(phone.login("alice", "correct horse").await.status(), 200);
    let listed: Vec<Value> = phone.get("/me/sessions").await.json().await.unwrap();
    let phone_id = listed.into_iter().find(|s| s["current"] == true).map(|s| s["id"].clone()).unwrap();
    assert_eq!(app.delete(&format!("/me/sessions/{}", phone_id.as_str().unwrap())).await.status(), 204);
    let e = newest(&app, &token, "session_ended", Some("alice")).await;
    assert_eq!(e["detail"]["session_id"], phone_id);
    let changed =
        app.put_json("/users/alice/password", &json!({"password": "new horse staple", "old_password": "correct horse"})).await;
    assert_eq!(changed.status(), 204);
    let e = newest(&app, &token, "password_changed", Some("alice")).await;
    assert_eq!((e["actor"].as_str(), e["detail"]["by_admin"].as_bool()), (Some("alice"), Some(false)));
    assert_eq!(app.post_empty("/me/logout").await.status(), 200);
    let e = newest(&app, &token, "sign_out", Some("alice")).await;
    assert_eq!(e["outcome"], "success");

    // An administrator signs alice out everywhere.
    assert_eq!(app.login("alice", "new horse staple").await.status(), 200);
    let admin = reqwest::Client::new();
    let signed_out = admin.post(app.url("/users/alice/sign-out")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(signed_out.status(), 204);
    let e = newest(&app, &token, "user_signed_out", Some("alice")).await;
    assert_eq!((e["actor"].as_str(), e["detail"]["sessions"].as_u64()), (Some("root"), Some(1)));

    // Client credentials refused.
    let refused = admin
        .post(app.url("/token"))
        .basic_auth("no-such-client", Some("dmc_wrong"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let e = newest(&app, &token, "client_credentials_failed", None).await;
    assert_eq!((e["outcome"].as_str(), e["detail"]["client_id"].as_str()), (Some("failure"), Some("no-such-client")));

    // Key rotation from the command line.
    app.doorman_cli(&["rotate-keys", "--delay", "0s"]);
    let e = newest(&app, &token, "key_rotated", None).await;
    assert_eq!(e["actor"], "cli");
    assert!(e["detail"]["kid"].is_string());
}
both_backends!(password_account_and_token_events);

/// doorman with the in-process provider, on one clock.
async fn app_with_provider(backend: Backend) -> (TestApp, FakeOp) {
    let op = FakeOp::start().await;
    op.set(|k| k.refresh_token = true);
    let provider = op.provider_settings("fake");
    let app = spawn(backend)
        .with(move |s| {
            s.providers.push(provider);
            s.auth.external_validity = Duration::from_secs(3600).into();
            s.auth.refresh_interval = Duration::from_secs(3600).into();
        })
        .start()
        .await;
    op.use_clock(&app.clock);
    (app, op)
}

async fn single_sign_on_events(backend: Backend) {
    let (app, op) = app_with_provider(backend).await;
    let token = admin_token(&app).await;

    // A failed sign-in, by provider and reason.
    op.set(|k| k.nonce_wrong = true);
    assert_eq!(app.sso_login("fake").await.status(), 400);
    let e = newest(&app, &token, "sign_in", None).await;
    assert_eq!((e["outcome"].as_str(), e["detail"]["method"].as_str()), (Some("failure"), Some("sso:fake")));
    assert_eq!(e["detail"]["reason"], "invalid_id_token");
    op.set(|k| k.nonce_wrong = false);

    // Success: the event, and the session's method.
    assert_eq!(app.sso_login("fake").await.status(), 302);
    let me: Value = app.get("/me").await.json().await.unwrap();
    let username = me["username"].as_str().unwrap().to_string();
    let e = newest(&app, &token, "sign_in", Some(&username)).await;
    assert_eq!((e["outcome"].as_str(), e["detail"]["method"].as_str()), (Some("success"), Some("sso:fake")));
    let sessions: Vec<Value> = app.get("/me/sessions").await.json().await.unwrap();
    assert_eq!(sessions[0]["method"], "sso:fake");

    // Refresh outcomes at the provider.
    app.advance(Duration::from_secs(31 * 60));
    app.sweep().await;
    let e = newest(&app, &token, "provider_refresh", Some(&username)).await;
    assert_eq!((e["outcome"].as_str(), e["detail"]["result"].as_str()), (Some("success"), Some("refreshed")));
    assert_eq!(e["detail"]["provider"], "fake");
    op.set(|k| k.refresh_unavailable = true);
    app.advance(Duration::from_secs(31 * 60));
    app.sweep().await;
    let e = newest(&app, &token, "provider_refresh", Some(&username)).await;
    assert_eq!((e["outcome"].as_str(), e["detail"]["result"].as_str()), (Some("failure"), Some("unreachable")));
    op.set(|k| {
        k.refresh_unavailable = false;
        k.refuse_refresh = true;
    });
    app.advance(Duration::from_secs(3600));
    app.sweep().await;
    let e = newest(&app, &token, "provider_refresh", Some(&username)).await;
    assert_eq!((e["outcome"].as_str(), e["detail"]["result"].as_str()), (Some("failure"), Some("refused")));

    // Back-channel logout: a token no provider signed is not stored; a good
    // one is, and so is the provider's token sent again.
    let plain = reqwest::Client::new();
    let post = |t: String| plain.post(app.url("/oidc/backchannel-logout")).form(&[("logout_token", t)]).send();
    assert_eq!(post("not.a.jwt".into()).await.unwrap().status(), 400);
    assert!(app.audit_events(&token, "&kind=backchannel_logout").await.is_empty());
    op.set(|k| k.refuse_refresh = false);
    let fresh = app.another_browser();
    assert_eq!(fresh.sso_login("fake").await.status(), 302);
    let logout = op.logout_token(Some("subject-1"), None, |_| {});
    assert_eq!(post(logout.clone()).await.unwrap().status(), 200);
    let e = newest(&app, &token, "backchannel_logout", Some(&username)).await;
    assert_eq!((e["outcome"].as_str(), e["detail"]["by"].as_str()), (Some("success"), Some("sub")));
    assert!(e["detail"]["sessions"].as_u64().unwrap() >= 1);
    assert_eq!(post(logout).await.unwrap().status(), 400);
    let e = newest(&app, &token, "backchannel_logout", None).await;
    assert_eq!((e["outcome"].as_str(), e["detail"]["provider"].as_str()), (Some("failure"), Some("fake")));
    assert_eq!(e["detail"]["reason"], "invalid_logout_token");

    // Callbacks that are not this browser's sign-in are not stored: no
    // sign-in under way, or a state that is not its own.
    let before = app.audit_events(&token, "&kind=sign_in").await.len();
    assert_eq!(app.another_browser().get("/oidc/callback?code=x&state=y").await.status(), 400);
    let browser = app.another_browser();
    let callback = browser.begin_login("fake", None).await;
    let forged = callback.replace("state=", "state=forged");
    assert!(browser.get(&forged).await.status().is_client_error());
    assert_eq!(app.audit_events(&token, "&kind=sign_in").await.len(), before);
}
both_backends!(single_sign_on_events);

async fn administration_device_and_throttle_events(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = admin_token(&app).await;
    let http = reqwest::Client::new();

    // An administrator creates, changes, disables and deletes a user.
    let created = http
        .post(app.url("/users"))
        .bearer_auth(&token)
        .json(&json!({"username": "carol", "password": "carol password", "channel": "team"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let e = newest(&app, &token, "user_created", Some("carol")).await;
    assert_shape(&e);
    assert_eq!((e["actor"].as_str(), e["detail"]["channel"].as_str()), (Some("root"), Some("team")));
    assert_eq!((e["detail"]["is_admin"].as_bool(), e["detail"]["external"].as_bool()), (Some(false), Some(false)));
    let any_case = app.audit_events(&token, "&username=CAROL").await;
    assert_eq!(any_case.first().map(|e| e["id"].clone()), Some(e["id"].clone()), "a user's events, whatever the name's case");
    let patch = |body: Value| http.patch(app.url("/users/carol")).bearer_auth(&token).json(&body).send();
    assert_eq!(patch(json!({"email": "carol@example.com"})).await.unwrap().status(), 200);
    let e = newest(&app, &token, "user_changed", Some("carol")).await;
    assert_eq!(e["detail"]["changes"], json!({"email": "carol@example.com"}));
    assert_eq!(app.login("carol", "carol password").await.status(), 200);
    assert_eq!(patch(json!({"status": "disabled"})).await.unwrap().status(), 200);
    let e = newest(&app, &token, "user_disabled", Some("carol")).await;
    assert_eq!((e["actor"].as_str(), e["detail"]["sessions"].as_u64()), (Some("root"), Some(1)));
    assert_eq!(e["detail"]["changes"], json!({"status": "disabled"}));
    // The right password of a disabled account: a refusal, with its reason.
    assert_error(app.login("carol", "carol password").await, 403, "account_disabled").await;
    let e = newest(&app, &token, "sign_in", Some("carol")).await;
    assert_eq!((e["outcome"].as_str(), e["detail"]["reason"].as_str()), (Some("failure"), Some("account_disabled")));
    assert_eq!(http.delete(app.url("/users/carol")).bearer_auth(&token).send().await.unwrap().status(), 204);
    let e = newest(&app, &token, "user_deleted", Some("carol")).await;
    assert_eq!((e["actor"].as_str(), e["detail"]["status"].as_str()), (Some("root"), Some("disabled")));
    // The last administrator cannot go: nothing happened, nothing recorded.
    assert_eq!(http.delete(app.url("/users/root")).bearer_auth(&token).send().await.unwrap().status(), 409);
    assert!(app.audit_events(&token, "&kind=user_deleted&username=root").await.is_empty());

    // A name guessed at past its limit: refused unchecked, recorded as such (once).
    for _ in 0..5 {
        assert_eq!(app.login("dave", "a wrong guess").await.status(), 401);
    }
    assert_error(app.login("dave", "a wrong guess").await, 429, "too_many_attempts").await;
    let e = newest(&app, &token, "sign_in", Some("dave")).await;
    assert_eq!(e["detail"]["reason"], "too_many_attempts");
    // A flood past the limit writes one event a window, not one each.
    for _ in 0..3 {
        assert_error(app.login("dave", "a wrong guess").await, 429, "too_many_attempts").await;
    }
    assert_eq!(app.audit_events(&token, "&kind=sign_in&username=dave").await.len(), 6);

    // Command-line sign-in: the user's decision, then the tool's token.
    app.create_user("alice", "correct horse", false);
    assert_eq!(app.login("alice", "correct horse").await.status(), 200);
    let answer = app.device_authorize(&[("client_id", "audit-tool"), ("scope", "account")]).await;
    let (device_code, user_code) =
        (answer["device_code"].as_str().unwrap().to_string(), answer["user_code"].as_str().unwrap().to_string());
    assert_eq!(app.device_decide(&user_code, "approve").await.status(), 200);
    let e = newest(&app, &token, "device_approved", Some("alice")).await;
    assert_eq!((e["actor"].as_str(), e["detail"]["client_id"].as_str()), (Some("alice"), Some("audit-tool")));
    assert_eq!(e["detail"]["scopes"], "account");
    let issued = app.device_poll(&device_code, "audit-tool").await;
    assert_eq!(issued.status(), 200);
    let e = newest(&app, &token, "api_token_created", Some("alice")).await;
    assert_eq!((e["detail"]["via"].as_str(), e["detail"]["name"].as_str()), (Some("device"), Some("audit-tool")));
    let answer = app.device_authorize(&[("client_id", "other-tool")]).await;
    let (device_code, user_code) =
        (answer["device_code"].as_str().unwrap().to_string(), answer["user_code"].as_str().unwrap().to_string());
    assert_eq!(app.device_decide(&user_code, "deny").await.status(), 200);
    let e = newest(&app, &token, "device_denied", Some("alice")).await;
    assert_eq!(e["detail"]["client_id"], "other-tool");
    assert_oauth_error(app.device_poll(&device_code, "other-tool").await, "access_denied").await;
    assert_eq!(app.audit_events(&token, "&kind=api_token_created&username=alice").await.len(), 1);
}
both_backends!(administration_device_and_throttle_events);

async fn provider_rules_approval_and_linking_events(backend: Backend) {
    let op = FakeOp::start().await;
    op.set(|k| k.email_verified = Some(true));
    let other = FakeOp::start().await;
    other.set_user(FakeUser { subject: "o-1".into(), email: "ann@other.example".into(), preferred_username: None });
    let mut provider = op.provider_settings("fake");
    provider.access = AccessRules { allowed_groups: vec!["staff".into()], approval: Approval::Admin, ..AccessRules::default() };
    let second = other.provider_settings("other");
    let app = spawn(backend)
        .with(move |s| {
            s.providers.push(provider);
            s.providers.push(second);
        })
        .start()
        .await;
    let token = admin_token(&app).await;

    // Refused by the provider's rules: the rule, and who the provider said it was.
    assert_error(app.sso_login("fake").await, 403, "access_denied").await;
    let e = newest(&app, &token, "sign_in", None).await;
    assert_eq!((e["outcome"].as_str(), e["detail"]["reason"].as_str()), (Some("failure"), Some("access_denied")));
    assert!(e["detail"]["rule"].as_str().unwrap().contains("allowed_groups"), "{e}");
    assert_eq!((e["detail"]["method"].as_str(), e["detail"]["subject"].as_str()), (Some("sso:fake"), Some("subject-1")));

    // A member: stored, waiting for approval; both in the same transaction.
    op.set(|k| k.groups = Some(vec!["staff".into()]));
    assert_error(app.sso_login("fake").await, 403, "approval_pending").await;
    let e = newest(&app, &token, "user_created", Some("sso.user")).await;
    assert_eq!((e["detail"]["status"].as_str(), e["detail"]["provider"].as_str()), (Some("pending"), Some("fake")));
    let e = newest(&app, &token, "sign_in", Some("sso.user")).await;
    assert_eq!((e["outcome"].as_str(), e["detail"]["reason"].as_str()), (Some("failure"), Some("approval_pending")));

    // Approved by an administrator, then in.
    let approved = reqwest::Client::new()
        .post(app.url("/users/sso.user/approve"))
        .bearer_auth(&token)
        .json(&json!({"channel": "team"}))
        .send()
        .await
        .unwrap();
    assert_eq!(approved.status(), 200);
    let e = newest(&app, &token, "user_approved", Some("sso.user")).await;
    assert_eq!((e["actor"].as_str(), e["detail"]["channel"].as_str()), (Some("root"), Some("team")));
    assert_eq!(app.sso_login("fake").await.status(), 302);
    let e = newest(&app, &token, "sign_in", Some("sso.user")).await;
    assert_eq!((e["outcome"].as_str(), e["actor"].as_str()), (Some("success"), Some("sso.user")));

    // A second provider linked to the signed-in user.
    let start = app.get("/oidc/authenticate?provider=other&link=true").await;
    assert_eq!(start.status(), 302);
    let at_provider = app.client.get(start.headers()["location"].to_str().unwrap()).send().await.unwrap();
    let callback = at_provider.headers()["location"].to_str().unwrap().to_string();
    assert_eq!(app.client.get(&callback).send().await.unwrap().status(), 302);
    let e = newest(&app, &token, "identity_linked", Some("sso.user")).await;
    assert_eq!((e["outcome"].as_str(), e["detail"]["provider"].as_str()), (Some("success"), Some("other")));
    assert_eq!((e["detail"]["subject"].as_str(), e["detail"]["added"].as_bool()), (Some("o-1"), Some(true)));
}
both_backends!(provider_rules_approval_and_linking_events);

/// Stores `n` sign-in events, one a minute, alternating two users.
async fn fill(app: &TestApp, n: usize) {
    use doorman::identity::audit::{Event, Kind};
    for i in 0..n {
        let user = if i % 2 == 0 { "even" } else { "odd" };
        let kind = if i % 3 == 0 { Kind::SignOut } else { Kind::SignIn };
        app.state.identity.audit.record(Event::success(kind).username(user).detail("i", i)).await;
        app.advance(Duration::from_secs(60));
    }
}

async fn listing_filters_and_pages(backend: Backend) {
    let app = spawn_app(backend).await;
    let start = app.clock.now();
    fill(&app, 30).await;
    let token = admin_token(&app).await;
    let bearer = |url: String| {
        let token = token.clone();
        let app = &app;
        async move { app.get_bearer(&url, &token).await }
    };

    // Newest first; pages of 7 cover everything once.
    let all = app.audit_events(&token, "&username=even").await;
    assert_eq!(all.len(), 15);
    let is: Vec<u64> = all.iter().map(|e| e["detail"]["i"].as_u64().unwrap()).collect();
    assert_eq!(is, (0..30).rev().filter(|i| i % 2 == 0).collect::<Vec<u64>>());
    let mut paged = Vec::new();
    let mut url = "/audit-events?username=even&limit=7".to_string();
    loop {
        let page: Value = bearer(url.clone()).await.json().await.unwrap();
        let events = page["events"].as_array().unwrap();
        assert!(events.len() <= 7);
        paged.extend(events.iter().map(|e| e["detail"]["i"].as_u64().unwrap()));
        match page["next"].as_str() {
            Some(next) => url = format!("/audit-events?username=even&limit=7&cursor={next}"),
            None => break,
        }
    }
    assert_eq!(paged, is);

    // Kind, since and before.
    let sign_outs = app.audit_events(&token, "&kind=sign_out").await;
    assert_eq!(sign_outs.len(), 10);
    assert!(sign_outs.iter().all(|e| e["kind"] == "sign_out"));
    let since = (start + chrono::TimeDelta::minutes(20)).to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let before = (start + chrono::TimeDelta::minutes(25)).to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let window = app.audit_events(&token, &format!("&username=odd&since={since}&before={before}")).await;
    let is: Vec<u64> = window.iter().map(|e| e["detail"]["i"].as_u64().unwrap()).collect();
    assert_eq!(is, vec![23, 21]);
    let page: Value = bearer("/audit-events?limit=2".into()).await.json().await.unwrap();
    assert_eq!(page["events"].as_array().unwrap().len(), 2);
    assert!(page["next"].is_string());

    // Bad input: 400 in the SPEC's shape.
    for bad in ["limit=0", "limit=1001", "kind=nope", "since=yesterday", "cursor=abc", "before=2026-13-01", "extra=1"] {
        let response = bearer(format!("/audit-events?{bad}")).await;
        assert_eq!(response.status(), 400, "{bad}");
    }
}
both_backends!(listing_filters_and_pages);

async fn retention_sweep_deletes_old_events(backend: Backend) {
    let app = spawn(backend).with(|s| s.audit.retention = Duration::from_secs(90 * 86_400).into()).start().await;
    fill(&app, 3).await;
    app.advance(Duration::from_secs(89 * 86_400));
    fill(&app, 2).await;
    assert_eq!(app.state.identity.audit.sweep().await.unwrap(), 0, "nothing is older than 90 days yet");
    app.advance(Duration::from_secs(2 * 86_400));
    assert_eq!(app.state.identity.audit.sweep().await.unwrap(), 3);
    let token = admin_token(&app).await;
    let kept: Vec<u64> = app.audit_events(&token, "").await.iter().filter_map(|e| e["detail"]["i"].as_u64()).collect();
    assert_eq!(kept, vec![1, 0], "the two recent fill events stay");
}
both_backends!(retention_sweep_deletes_old_events);

/// Every secret a run creates, searched for in every event and every log line.
async fn no_secret_in_events_or_logs(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = admin_token(&app).await;
    let mut secrets = vec!["root password".to_string(), token.clone()];
    app.create_user("alice", "correct horse", false);
    secrets.extend(["correct horse".to_string(), "wrong horse guess".to_string(), "new horse staple".to_string()]);
    assert_eq!(app.login("alice", "wrong horse guess").await.status(), 401);
    assert_eq!(app.login("alice", "correct horse").await.status(), 200);
    for cookie in ["doorman_session", "doorman_access", "csrftoken"] {
        secrets.push(app.cookie(cookie).unwrap());
    }
    let created: Value = app.post_json("/api-token-tap", &json!({"name": "t"})).await.json().await.unwrap();
    secrets.push(created["token"].as_str().unwrap().to_string());
    assert_eq!(app.delete(&format!("/api-tokens/{}", created["id"].as_str().unwrap())).await.status(), 204);
    let body = json!({"password": "new horse staple", "old_password": "correct horse"});
    assert_eq!(app.put_json("/users/alice/password", &body).await.status(), 204);
    let out = app.doorman_cli(&["create-client", "svc", "--scopes", "queue:read"]);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let client_id = stdout.lines().find_map(|l| l.strip_prefix("client_id:")).unwrap().trim().to_string();
    let client_secret = stdout.lines().find_map(|l| l.strip_prefix("client_secret:")).unwrap().trim().to_string();
    secrets.push(client_secret.clone());
    let wrong_secret = format!("{client_secret}x");
    secrets.push(wrong_secret.clone());
    for secret in [&client_secret, &wrong_secret] {
        reqwest::Client::new()
            .post(app.url("/token"))
            .basic_auth(&client_id, Some(secret))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("grant_type=client_credentials")
            .send()
            .await
            .unwrap();
    }
    let session_id = app.get("/me/sessions").await.json::<Vec<Value>>().await.unwrap()[0]["id"].as_str().unwrap().to_string();
    assert_eq!(app.delete(&format!("/me/sessions/{session_id}")).await.status(), 204);
    assert_eq!(app.login("alice", "new horse staple").await.status(), 200);
    secrets.push(app.cookie("doorman_session").unwrap());
    secrets.push(app.cookie("csrftoken").unwrap());
    assert_eq!(app.post_empty("/me/logout").await.status(), 200);

    let events = app.audit_events(&token, "").await;
    assert!(events.len() >= 8, "{events:?}");
    let kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    for kind in [
        "sign_in",
        "api_token_created",
        "api_token_revoked",
        "password_changed",
        "session_ended",
        "sign_out",
        "client_credentials_failed",
    ] {
        assert!(kinds.contains(&kind), "{kind} missing from {kinds:?}");
    }
    let logs = captured_logs();
    let audit_lines = logs.iter().filter(|l| l.contains("doorman::audit")).count();
    assert!(audit_lines >= events.len(), "each event is a log line: {audit_lines} < {}", events.len());
    let haystack: Vec<String> = events.iter().map(Value::to_string).chain(logs).collect();
    // The search finds what is there: the client id (no secret) is in the failure's event and log line.
    assert!(haystack.iter().filter(|line| line.contains(&client_id)).count() >= 2);
    for secret in &secrets {
        assert!(secret.len() >= 8, "{secret:?} is long enough to search for");
        if let Some(found) = haystack.iter().find(|line| line.contains(secret.as_str())) {
            panic!("a secret appears in {found}");
        }
    }
}
both_backends!(no_secret_in_events_or_logs);

async fn audit_listing_needs_an_administrator(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_user("alice", "correct horse", false);
    assert_error(app.get("/audit-events").await, 401, "not_authenticated").await;
    assert_eq!(app.login("alice", "correct horse").await.status(), 200);
    assert_error(app.get("/audit-events").await, 403, "insufficient_scope").await;
}
both_backends!(audit_listing_needs_an_administrator);
