//! Who may sign in through a provider (the in-process one): e-mail domains,
//! allowed and admin groups at sign-in and at refresh, the approval queue,
//! disabled users, linking, `azp` and the ID token's age.

use std::time::Duration;

use doorman::config::{AccessRules, Approval};
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::fake_op::{FakeOp, FakeUser, CLIENT_ID};
use crate::helpers::{assert_error, spawn, Backend, TestApp};

const VALIDITY: Duration = Duration::from_secs(3600);

fn minutes(n: u64) -> Duration {
    Duration::from_secs(60 * n)
}

/// doorman with one in-process provider (`fake`) applying `rules`, on one
/// clock; refresh tokens issued, e-mails verified; only the test sweeps.
async fn app(backend: Backend, rules: AccessRules) -> (TestApp, FakeOp) {
    app_caching(backend, rules, Duration::from_secs(1)).await
}

/// [`app`] with `auth.cache_ttl` set to `cache_ttl`.
async fn app_caching(backend: Backend, rules: AccessRules, cache_ttl: Duration) -> (TestApp, FakeOp) {
    let op = FakeOp::start().await;
    op.set(|k| {
        k.refresh_token = true;
        k.email_verified = Some(true);
    });
    let mut provider = op.provider_settings("fake");
    provider.access = rules;
    let app = spawn(backend)
        .with(move |s| {
            s.providers.push(provider);
            s.auth.external_validity = VALIDITY.into();
            s.auth.refresh_interval = VALIDITY.into();
            s.auth.cache_ttl = cache_ttl.into();
        })
        .start()
        .await;
    op.use_clock(&app.clock);
    (app, op)
}

fn user(subject: &str, name: &str, email: &str) -> FakeUser {
    FakeUser { subject: subject.into(), email: email.into(), preferred_username: Some(name.into()) }
}

fn groups(list: &[&str]) -> Option<Vec<String>> {
    Some(list.iter().map(|g| g.to_string()).collect())
}

/// Whether a response sets the access or session cookie.
fn sets_login_cookies(response: &reqwest::Response) -> bool {
    response.headers().get_all("set-cookie").iter().any(|c| {
        let c = c.to_str().unwrap_or_default();
        c.starts_with("doorman_access=") || c.starts_with("doorman_session=")
    })
}

/// A sign-in refused by `rule`: 403 access_denied naming it, no cookie, no user stored.
async fn assert_refused(app: &TestApp, rule: &str) {
    let users_before = app.user_count().await;
    let response = app.sso_login("fake").await;
    assert!(!sets_login_cookies(&response));
    let body = assert_error(response, 403, "access_denied").await;
    assert!(body["message"].as_str().unwrap().contains(rule), "{body}");
    assert_eq!(app.user_count().await, users_before, "no user stored");
    assert_eq!(app.get("/me").await.status(), 401);
}

async fn me(app: &TestApp) -> Value {
    let response = app.get("/me").await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// The stored user named `name`.
async fn stored(app: &TestApp, name: &str) -> doorman::db::users::UserRow {
    let name = name.to_string();
    app.state.db.run(move |conn| doorman::db::users::find_by_username(conn, &name)).await.unwrap().expect("user stored")
}

async fn email_domains_exact_and_without_case(backend: Backend) {
    let rules = AccessRules { allowed_email_domains: vec!["example.com".into()], ..AccessRules::default() };
    let (app, op) = app(backend, rules).await;
    op.set_user(user("s1", "ann", "ann@a.example.com"));
    assert_refused(&app, "allowed_email_domains").await;
    op.set_user(user("s1", "ann", "ann@example.com.evil.org"));
    assert_refused(&app, "allowed_email_domains").await;
    op.set_user(user("s1", "ann", "ann@example.com"));
    op.set(|k| k.email_verified = Some(false));
    assert_refused(&app, "not verified").await;
    op.set(|k| k.email_verified = None);
    assert_refused(&app, "not verified").await;

    // The refusal as a page, for a browser.
    let callback = app.begin_login("fake", None).await;
    let page = app.get(&callback).await;
    assert_eq!(page.status(), 403);
    assert!(page.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let html = page.text().await.unwrap();
    assert!(html.contains("data-code=\"access_denied\"") && html.contains("allowed_email_domains"), "{html}");

    op.set(|k| k.email_verified = Some(true));
    op.set_user(user("s1", "ann", "Ann@EXAMPLE.Com"));
    let ok = app.sso_login("fake").await;
    assert_eq!(ok.status(), 302);
    assert_eq!(me(&app).await["username"], "ann");
}
both_backends!(email_domains_exact_and_without_case);

async fn allowed_groups_admit_members_only(backend: Backend) {
    let rules = AccessRules { allowed_groups: vec!["staff".into()], ..AccessRules::default() };
    let (app, op) = app(backend, rules).await;
    assert_refused(&app, "allowed_groups").await;
    op.set(|k| k.groups = groups(&["visitors"]));
    assert_refused(&app, "allowed_groups").await;
    op.set(|k| k.groups = groups(&["visitors", "staff"]));
    assert_eq!(app.sso_login("fake").await.status(), 302);
    assert_eq!(me(&app).await["is_admin"], false);
}
both_backends!(allowed_groups_admit_members_only);

async fn admin_groups_follow_sign_in_and_refresh(backend: Backend) {
    let rules = AccessRules { admin_groups: vec!["ops".into()], ..AccessRules::default() };
    let (app, op) = app(backend, rules).await;
    // Given at sign-in.
    op.set(|k| k.groups = groups(&["ops"]));
    assert_eq!(app.sso_login("fake").await.status(), 302);
    assert_eq!(me(&app).await["is_admin"], true);
    assert_eq!(app.get("/users").await.status(), 200);
    // Taken away at the next sign-in.
    op.set(|k| k.groups = groups(&["staff"]));
    let second = app.another_browser();
    assert_eq!(second.sso_login("fake").await.status(), 302);
    assert_eq!(me(&second).await["is_admin"], false);
    assert!(!stored(&app, "sso.user").await.is_admin);
    // Given again at the next background refresh...
    op.set(|k| k.groups = groups(&["ops"]));
    app.advance(minutes(31));
    let report = app.sweep().await;
    assert_eq!(report.refreshed, 1, "{report:?}");
    assert!(stored(&app, "sso.user").await.is_admin);
    assert_eq!(second.post_empty("/me/refresh").await.status(), 200);
    assert_eq!(me(&second).await["is_admin"], true);
    // ...and taken away at the next.
    op.set(|k| k.groups = groups(&[]));
    app.advance(minutes(31));
    assert_eq!(app.sweep().await.refreshed, 1);
    assert!(!stored(&app, "sso.user").await.is_admin);
    assert_eq!(second.post_empty("/me/refresh").await.status(), 200);
    assert_eq!(me(&second).await["is_admin"], false);
    assert_error(second.get("/users").await, 403, "insufficient_scope").await;
}
both_backends!(admin_groups_follow_sign_in_and_refresh);

/// A change of the admin flag that `admin_groups` makes is announced like an
/// administrator's: a bearer token's cached view loses the admin scopes at
/// once, not after `auth.cache_ttl` (an hour here).
async fn admin_groups_changes_reach_cached_bearer_tokens(backend: Backend) {
    let rules = AccessRules { admin_groups: vec!["ops".into()], ..AccessRules::default() };
    let (app, op) = app_caching(backend, rules, minutes(60)).await;
    op.set(|k| k.groups = groups(&["ops"]));
    assert_eq!(app.sso_login("fake").await.status(), 302);
    let created: Value = app.post_json("/api-token-tap", &json!({"name": "laptop"})).await.json().await.unwrap();
    let token = created["token"].as_str().expect("token").to_string();
    assert_eq!(app.get_bearer("/users", &token).await.status(), 200, "cached as an administrator's");
    // Taken away by the background refresh...
    op.set(|k| k.groups = groups(&[]));
    app.advance(minutes(31));
    assert_eq!(app.sweep().await.refreshed, 1);
    assert_error(app.get_bearer("/users", &token).await, 403, "insufficient_scope").await;
    assert_eq!(app.get_bearer("/me", &token).await.status(), 200, "the token itself lives");
    // ...and given back by the next sign-in.
    op.set(|k| k.groups = groups(&["ops"]));
    assert_eq!(app.another_browser().sso_login("fake").await.status(), 302);
    assert_eq!(app.get_bearer("/users", &token).await.status(), 200);
}
both_backends!(admin_groups_changes_reach_cached_bearer_tokens);

async fn removed_from_allowed_groups_loses_access_at_valid_until(backend: Backend) {
    let rules = AccessRules { allowed_groups: vec!["staff".into()], ..AccessRules::default() };
    let (app, op) = app(backend, rules).await;
    op.set(|k| k.groups = groups(&["staff"]));
    assert_eq!(app.sso_login("fake").await.status(), 302);
    let tap = crate::helpers::python::tap(&app).await;
    let bearer = tap["token"].as_str().unwrap().to_string();
    op.set(|k| k.groups = groups(&["alumni"]));
    app.advance(minutes(31));
    let report = app.sweep().await;
    assert_eq!(report.refused, 1, "{report:?}");
    assert_eq!(app.identities().await[0].refresh_state, "refused");
    // Still vouched for until valid_until, then refused everywhere.
    assert_eq!(app.post_empty("/me/refresh").await.status(), 200);
    assert_eq!(app.get("/me").await.status(), 200);
    assert_eq!(app.get_bearer("/me", &bearer).await.status(), 200);
    app.advance(minutes(30));
    assert_eq!(app.get("/me").await.status(), 401);
    assert_error(app.post_empty("/me/refresh").await, 401, "sign_in_again").await;
    assert_error(app.get_bearer("/me", &bearer).await, 401, "sign_in_again").await;
    // And a new sign-in is refused by the rule.
    assert_refused(&app.another_browser(), "allowed_groups").await;
}
both_backends!(removed_from_allowed_groups_loses_access_at_valid_until);

async fn approval_queue_end_to_end(backend: Backend) {
    let rules = AccessRules { approval: Approval::Admin, channel: Some("newcomers".into()), ..AccessRules::default() };
    let (app, op) = app(backend, rules).await;
    app.create_user("root", "root password", true);
    let newcomer = app.another_browser();
    let response = newcomer.sso_login("fake").await;
    assert!(!sets_login_cookies(&response));
    let body = assert_error(response, 403, "approval_pending").await;
    assert!(body["message"].as_str().unwrap().contains("approv"), "{body}");
    assert_eq!(newcomer.get("/me").await.status(), 401);
    assert_eq!(app.user_count().await, 2, "the pending user is stored");
    // The page says what happens next.
    let callback = newcomer.begin_login("fake", None).await;
    let page = newcomer.get(&callback).await.text().await.unwrap();
    assert!(page.contains("data-code=\"approval_pending\"") && page.contains("id=\"next-step\""), "{page}");

    assert_eq!(app.login("root", "root password").await.status(), 200);
    let pending: Value = app.get("/users?status=pending").await.json().await.unwrap();
    assert_eq!(pending.as_array().unwrap().len(), 1, "{pending}");
    assert_eq!(pending[0]["username"], "sso.user");
    assert_eq!(pending[0]["status"], "pending");
    assert_eq!(pending[0]["channel"], "newcomers");
    assert_eq!(pending[0]["providers"], json!(["fake"]));
    assert_eq!(pending[0]["last_login_at"], Value::Null);

    let approved = app.post_json("/users/sso.user/approve", &json!({"channel": "team"})).await;
    assert_eq!(approved.status(), 200);
    let approved: Value = approved.json().await.unwrap();
    assert_eq!((approved["status"].as_str(), approved["channel"].as_str()), (Some("active"), Some("team")));
    assert_error(app.post_json("/users/sso.user/approve", &json!({})).await, 409, "not_pending").await;
    assert_eq!(newcomer.sso_login("fake").await.status(), 302);
    assert_eq!(me(&newcomer).await["channel"], "team");
    let stored: Value = app.get("/users/sso.user").await.json().await.unwrap();
    assert_eq!((stored["status"].as_str(), stored["channel"].as_str()), (Some("active"), Some("team")));
    assert!(stored["last_login_at"].is_string());

    // Another newcomer is rejected: deleted with their identity.
    op.set_user(user("s2", "late.comer", "late@example.com"));
    assert_error(app.another_browser().sso_login("fake").await, 403, "approval_pending").await;
    assert_eq!(app.delete("/users/late.comer").await.status(), 204);
    assert_eq!(app.user_count().await, 2);
    assert_eq!(app.identities().await.len(), 1);
    let none: Value = app.get("/users?status=pending").await.json().await.unwrap();
    assert_eq!(none, json!([]));
}
both_backends!(approval_queue_end_to_end);

async fn disabled_sso_user_cannot_sign_in(backend: Backend) {
    let (app, _op) = app(backend, AccessRules::default()).await;
    app.create_user("root", "root password", true);
    let sso = app.another_browser();
    assert_eq!(sso.sso_login("fake").await.status(), 302);
    assert_eq!(app.login("root", "root password").await.status(), 200);
    let patched = app.patch_json("/users/sso.user", &json!({"status": "disabled"})).await;
    assert_eq!(patched.status(), 200);
    assert_error(sso.get("/me").await, 401, "invalid_session").await;
    let again = sso.another_browser();
    let response = again.sso_login("fake").await;
    assert!(!sets_login_cookies(&response));
    assert_error(response, 403, "account_disabled").await;
    // Enabled again: signs in.
    assert_eq!(app.patch_json("/users/sso.user", &json!({"status": "active"})).await.status(), 200);
    assert_eq!(again.sso_login("fake").await.status(), 302);
}
both_backends!(disabled_sso_user_cannot_sign_in);

/// Follows `/oidc/authenticate?provider=ID&link=true` and the provider; the callback's response.
async fn link(app: &TestApp, provider: &str) -> reqwest::Response {
    let start = app.get(&format!("/oidc/authenticate?provider={provider}&link=true")).await;
    assert_eq!(start.status(), 302, "{:?}", start.text().await);
    let to_provider = start.headers()["location"].to_str().unwrap().to_string();
    let at_provider = app.client.get(&to_provider).send().await.unwrap();
    let callback = at_provider.headers()["location"].to_str().unwrap().to_string();
    app.client.get(&callback).header("Accept", "application/json").send().await.unwrap()
}

async fn linking_a_second_provider(backend: Backend) {
    let first = FakeOp::start().await;
    let second = FakeOp::start().await;
    second.set_user(user("other-1", "ann.other", "ann@other.example"));
    let (p1, p2) = (first.provider_settings("fake"), second.provider_settings("other"));
    let app = spawn(backend)
        .with(move |s| {
            s.providers.push(p1);
            s.providers.push(p2);
        })
        .start()
        .await;
    // Without a browser session there is nobody to link to.
    let anonymous = app.get("/oidc/authenticate?provider=other&link=true").await;
    assert_eq!(anonymous.status(), 401);

    assert_eq!(app.sso_login("fake").await.status(), 302);
    let linked = link(&app, "other").await;
    assert_eq!(linked.status(), 302);
    assert!(!sets_login_cookies(&linked), "linking signs nobody in");
    assert_eq!(app.user_count().await, 1, "linking creates no user");
    // `/me` answers from the access cookie: the next renewal carries the new provider.
    assert_eq!(app.post_empty("/me/refresh").await.status(), 200);
    assert_eq!(me(&app).await["providers"], json!(["fake", "other"]));
    let page = app.get("/").await.text().await.unwrap();
    assert!(page.contains("data-provider=\"fake\"") && page.contains("data-provider=\"other\""), "{page}");

    // Signing in through either provider reaches the same user.
    let through_other = app.another_browser();
    assert_eq!(through_other.sso_login("other").await.status(), 302);
    assert_eq!(me(&through_other).await["username"], "sso.user");

    // An identity that belongs to someone else is refused.
    second.set_user(user("other-2", "carol", "carol@other.example"));
    let carol = app.another_browser();
    assert_eq!(carol.sso_login("other").await.status(), 302);
    assert_eq!(app.user_count().await, 2);
    assert_error(link(&app, "other").await, 409, "identity_taken").await;
    assert_eq!(me(&app).await["providers"], json!(["fake", "other"]));
    assert_eq!(me(&carol).await["username"], "carol");
    assert_eq!(app.identities().await.len(), 3);
}
both_backends!(linking_a_second_provider);

/// The identity id an instance remembers for a provider account is only a
/// hint: once that row is gone and the account is linked to another user,
/// the sign-in finds the new row and reaches that user.
async fn an_account_linked_anew_after_its_user_was_deleted_reaches_the_new_user(backend: Backend) {
    let (app, _op) = app(backend, AccessRules::default()).await;
    assert_eq!(app.sso_login("fake").await.status(), 302);
    app.create_user("root", "root password", true);
    let root = app.another_browser();
    assert_eq!(root.login("root", "root password").await.status(), 200);
    assert_eq!(root.delete("/users/sso.user").await.status(), 204);
    assert_eq!(link(&root, "fake").await.status(), 302);

    let again = app.another_browser();
    assert_eq!(again.sso_login("fake").await.status(), 302);
    assert_eq!(me(&again).await["username"], "root");
    assert_eq!(app.user_count().await, 1);
}
both_backends!(an_account_linked_anew_after_its_user_was_deleted_reaches_the_new_user);

async fn azp_must_be_our_client(backend: Backend) {
    let (app, op) = app(backend, AccessRules::default()).await;
    op.set(|k| k.azp = Some("another-client".into()));
    let refused = app.sso_login("fake").await;
    assert!(!sets_login_cookies(&refused));
    let body = assert_error(refused, 400, "invalid_id_token").await;
    assert!(body["message"].as_str().unwrap().contains("azp"), "{body}");
    assert_eq!(app.user_count().await, 0);
    op.set(|k| k.azp = Some(CLIENT_ID.into()));
    assert_eq!(app.sso_login("fake").await.status(), 302);
}
both_backends!(azp_must_be_our_client);

async fn old_id_token_is_refused(backend: Backend) {
    let (app, op) = app(backend, AccessRules::default()).await;
    op.set(|k| k.issued_ago = Some(chrono::Duration::minutes(11)));
    let body = assert_error(app.sso_login("fake").await, 400, "invalid_id_token").await;
    assert!(body["message"].as_str().unwrap().contains("max_id_token_age"), "{body}");
    assert_eq!(app.user_count().await, 0);
    op.set(|k| k.issued_ago = Some(chrono::Duration::minutes(9)));
    assert_eq!(app.sso_login("fake").await.status(), 302);
}
both_backends!(old_id_token_is_refused);

async fn sso_usernames_never_collide_without_case(backend: Backend) {
    let (app, op) = app(backend, AccessRules::default()).await;
    app.create_user("admin", "admin password", true);
    op.set_user(user("s-admin", "Admin", "someone@example.com"));
    assert_eq!(app.sso_login("fake").await.status(), 302);
    assert_eq!(me(&app).await["username"], "Admin-2");
    assert_eq!(me(&app).await["is_admin"], false);
}
both_backends!(sso_usernames_never_collide_without_case);
