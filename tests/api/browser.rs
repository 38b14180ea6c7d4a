//! The sign-in pages in a real headless Chromium (Debian's, driven by
//! playwright-core from tests/browser).

use serde_json::{json, Value};

use crate::helpers::real_op::account;
use crate::helpers::sso::real_setup;
use crate::helpers::{spawn_app, Backend};

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
