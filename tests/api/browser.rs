//! The sign-in pages in a real headless Chromium (Debian's, driven by
//! playwright-core from tests/browser).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use serde_json::{json, Value};

use crate::helpers::fake_op::{FakeOp, FakeUser};
use crate::helpers::real_op::account;
use crate::helpers::sso::real_setup;
use crate::helpers::{spawn, spawn_app, Backend};

/// One Chromium at a time: two cores are shared by the whole suite.
static BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Runs `node tests/browser/<script> <args>`; its one-line JSON verdict.
async fn browser(script: &str, args: Vec<String>) -> Value {
    let _one_at_a_time = BROWSER.lock().await;
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser");
    assert!(
        std::path::Path::new(&format!("{dir}/node_modules/playwright-core")).exists(),
        "playwright-core is not installed: run `npm ci` in tests/browser (scripts/test.sh does)"
    );
    assert!(
        std::path::Path::new("/usr/bin/chromium").exists() || std::env::var("CHROMIUM_PATH").is_ok(),
        "Chromium is not installed (apt-get install chromium)"
    );
    let script = format!("{dir}/{script}");
    let output = tokio::task::spawn_blocking(move || std::process::Command::new("node").arg(script).args(args).output())
        .await
        .unwrap()
        .expect("node must be installed for the browser tests");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line)
        .unwrap_or_else(|_| panic!("browser script said {stdout:?}, stderr {:?}", String::from_utf8_lossy(&output.stderr)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_sign_in_in_chromium() {
    let app = spawn_app(Backend::Sqlite).await;
    app.create_user("alice", "correct horse", false);
    let wrong = browser("password_login.mjs", vec![app.address.clone(), "alice".into(), "wrong horse".into()]).await;
    assert_eq!(wrong["ok"], false, "{wrong}");
    assert!(wrong["error"].as_str().unwrap().contains("wrong username or password"), "{wrong}");
    let verdict = browser("password_login.mjs", vec![app.address.clone(), "alice".into(), "correct horse".into()]).await;
    assert_eq!(verdict["ok"], true, "{verdict}");
    assert_eq!(verdict["shown"], "alice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sso_sign_in_in_chromium() {
    let (app, _op) = real_setup(Backend::Sqlite, "offline_access", vec![account("u7", "carol", "carol-pw")], |_| {}).await;
    let verdict = browser("sso_login.mjs", vec![app.address.clone(), "real".into(), "carol".into(), "carol-pw".into()]).await;
    assert_eq!(verdict["ok"], true, "{verdict}");
    assert_eq!(verdict["shown"], "carol");
    assert_eq!(app.user_count().await, 1);
    let _ = json!({});
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_approves_and_rejects_in_chromium() {
    let op = FakeOp::start().await;
    let mut provider = op.provider_settings("fake");
    provider.access.approval = doorman::config::Approval::Admin;
    let app = spawn(Backend::Sqlite).with(move |s| s.providers.push(provider)).start().await;
    app.create_user("root", "root password", true);
    for (subject, name) in [("s1", "ann.new"), ("s2", "bo.new")] {
        op.set_user(FakeUser {
            subject: subject.into(),
            email: format!("{name}@example.com"),
            preferred_username: Some(name.into()),
        });
        let response = app.another_browser().sso_login("fake").await;
        assert_eq!(response.status(), 403);
    }
    let args = ["root", "root password", "ann.new", "bo.new"].map(String::from);
    let screenshot = std::env::temp_dir().join("doorman-admin-page.png").display().to_string();
    let verdict =
        browser("admin_approval.mjs", std::iter::once(app.address.clone()).chain(args).chain([screenshot]).collect()).await;
    assert_eq!(verdict["ok"], true, "{verdict}");
    assert_eq!(verdict["before"], json!(["ann.new", "bo.new"]), "{verdict}");
    assert_eq!(verdict["after_approve"], json!(["bo.new"]), "{verdict}");
    assert_eq!(verdict["after_reject"], json!([]), "{verdict}");
    assert_eq!(verdict["notices"], json!(["ann.new was approved.", "bo.new was rejected."]), "{verdict}");
    assert_eq!(verdict["csp_errors"], 0, "{verdict}");
    // As stored: one active, one gone.
    assert_eq!(app.user_count().await, 2);
    op.set_user(FakeUser {
        subject: "s1".into(),
        email: "ann.new@example.com".into(),
        preferred_username: Some("ann.new".into()),
    });
    assert_eq!(app.another_browser().sso_login("fake").await.status(), 302, "the approved user signs in");
}

/// The Python package's `doorman-login` polls while Chromium signs in
/// through the real provider from the device page and approves the code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_sign_in_approved_in_chromium_while_the_python_client_polls() {
    let (app, _op) = real_setup(Backend::Sqlite, "offline_access", vec![account("u9", "dana", "dana-pw")], |_| {}).await;
    let dir = env!("CARGO_MANIFEST_DIR");
    let home = tempfile::tempdir().unwrap();
    let mut tool = Command::new("python3")
        .args(["-m", "doorman_client", &app.address])
        .env("PYTHONPATH", format!("{dir}/clients/python/src"))
        .env("DOORMAN_CREDENTIALS", home.path().join("credentials.json"))
        .env("DOORMAN_NO_BROWSER", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 must be installed");
    let stderr = tool.stderr.take().unwrap();
    // The link the tool prints (it keeps polling meanwhile).
    let link = tokio::task::spawn_blocking(move || {
        let mut lines = BufReader::new(stderr).lines();
        let link = lines.by_ref().map_while(Result::ok).find_map(|l| l.trim().starts_with("http").then(|| l.trim().to_string()));
        std::thread::spawn(move || lines.for_each(drop));
        link
    })
    .await
    .unwrap()
    .expect("doorman-login printed no link");
    assert!(link.starts_with(&format!("{}/device?user_code=", app.address)), "{link}");

    let verdict = browser("device_approve.mjs", vec![link.clone(), "real".into(), "dana".into(), "dana-pw".into()]).await;
    assert_eq!(verdict["ok"], true, "{verdict}");
    assert_eq!(verdict["outcome"], "approved");
    assert_eq!(verdict["client"], "doorman-python");
    assert_eq!(verdict["went_through_login"], true);
    assert!(link.ends_with(verdict["code"].as_str().unwrap()));

    let output =
        tokio::time::timeout(std::time::Duration::from_secs(60), tokio::task::spawn_blocking(move || tool.wait_with_output()))
            .await
            .expect("doorman-login finished after the approval")
            .unwrap()
            .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "dana");
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(home.path().join("credentials.json")).unwrap()).unwrap();
    let token = saved[&app.address]["token"].as_str().unwrap();
    let me: Value = app.get_bearer("/me", token).await.json().await.unwrap();
    assert_eq!(me["username"], "dana");
}

/// A person ends another browser's session from the signed-in page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_is_ended_from_the_signed_in_page() {
    let app = spawn_app(Backend::Sqlite).await;
    app.create_user("alice", "correct horse", false);
    // Another browser of alice's, signed in first.
    let other = app.another_browser();
    assert_eq!(other.login("alice", "correct horse").await.status(), 200);
    let shot = std::env::var("SESSIONS_SCREENSHOT").unwrap_or_default();
    let mut args = vec![app.address.clone(), "alice".into(), "correct horse".into()];
    if !shot.is_empty() {
        args.push(shot);
    }
    let verdict = browser("end_session.mjs", args).await;
    assert_eq!(verdict["ok"], true, "{verdict}");
    assert_eq!((verdict["before"].as_u64(), verdict["after"].as_u64()), (Some(2), Some(1)), "{verdict}");
    assert_eq!(verdict["cspViolations"], 0, "the page's script runs under its policy: {verdict}");
    assert_eq!(other.get("/me").await.status(), 401, "the other browser is signed out");
}

/// The signed-in page's API helper, once the access cookie has run out while
/// the session lives: one refresh, one retry, and the person stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_refreshes_an_expired_access_cookie_and_retries_once() {
    let app = spawn_app(Backend::Sqlite).await;
    app.create_user("alice", "correct horse", false);
    let _one_at_a_time = BROWSER.lock().await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser/access_refresh.mjs");
    let mut page = Command::new("node")
        .args([script, &app.address, "alice", "correct horse"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node must be installed for the browser tests");
    let stderr = page.stderr.take().unwrap();
    let signed_in = tokio::task::spawn_blocking(move || {
        let mut lines = BufReader::new(stderr).lines();
        let seen = lines.by_ref().map_while(Result::ok).any(|line| line == "signed in");
        std::thread::spawn(move || lines.for_each(drop));
        seen
    })
    .await
    .unwrap();
    assert!(signed_in, "the browser did not sign in");
    // Past the access cookie's lifetime (15 minutes), well within the session's.
    app.advance(std::time::Duration::from_secs(16 * 60));
    std::io::Write::write_all(&mut page.stdin.take().unwrap(), b"go\n").unwrap();
    let output = tokio::task::spawn_blocking(move || page.wait_with_output()).await.unwrap().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let verdict: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|_| panic!("browser script said {stdout:?}"));
    assert_eq!(verdict["ok"], true, "{verdict}");
    assert_eq!(verdict["status"], 200, "{verdict}");
    assert_eq!(verdict["calls"], json!(["GET /me 401 access_expired", "POST /me/refresh 200", "GET /me 200"]), "{verdict}");
    assert_eq!(verdict["path"], "/", "still on the signed-in page: {verdict}");
}
