//! The Python side of the tests (the SDK examples and client package) and
//! the token helpers they start from.

use serde_json::Value;

use super::TestApp;

/// A token from `GET /api-token-tap` in the app's browser session, sent as
/// a script would: with `X-CSRFToken` (see the rule in README.md).
pub async fn tap(app: &TestApp) -> Value {
    let csrf = app.cookie("csrftoken").expect("a browser session (csrftoken cookie)");
    let response = app.client.get(app.url("/api-token-tap")).header("X-CSRFToken", csrf).send().await.expect("request");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    response.json().await.unwrap()
}

pub async fn tap_with(app: &TestApp, body: Value) -> reqwest::Response {
    app.post_json("/api-token-tap", &body).await
}

/// Runs `python3 ARGS...` from the repository root, off the async workers.
/// A missing interpreter fails the test, loudly.
pub async fn run_python(args: Vec<String>, env: Vec<(String, String)>) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .args(&args)
            .envs(env)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap_or_else(|e| panic!("cannot run python3 (install Python 3 and examples/python/requirements.txt): {e}"))
    })
    .await
    .unwrap()
}

/// [`run_python`] that must succeed (a missing package fails here); its stdout.
pub async fn python(args: Vec<String>, env: Vec<(String, String)>) -> String {
    let out = run_python(args, env).await;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "python3 failed ({}); did `pip install -r examples/python/requirements.txt` run?\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}
