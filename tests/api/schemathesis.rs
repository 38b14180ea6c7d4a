//! schemathesis against a live doorman, on its own `/openapi.json`: as an
//! anonymous caller, as a signed-in user and as an admin (each with the
//! session and access cookies and the `X-CSRFToken` header), and as the
//! admin's bearer token with every scope, with a provider configured. No 5xx, and
//! every answer's status, content type, headers and body as described.
//!
//! On PostgreSQL. Bounded (a fixed number of examples per operation, a time limit per run)
//! and repeatable (deterministic generation). The numbers of each run are
//! printed and written to `schemathesis-summary.txt` in cargo's test
//! directory, which scripts/test.sh shows. A missing python3 or
//! schemathesis fails here, loudly (`pip install -r tests/schemathesis/requirements.txt`).

use crate::helpers::fake_op::FakeOp;
use crate::helpers::python::{run_python, tap};
use crate::helpers::{spawn, Backend, TestApp};

const PASSWORD: &str = "correct horse battery";
/// Examples per operation and seconds per run (about 40 operations; a run
/// takes some 30 s).
const MAX_EXAMPLES: u32 = 100;
const TIME_LIMIT_SECS: u32 = 120;

/// A browser signed in as `username`, and the headers of its session: its cookies and the CSRF header.
async fn signed_in(app: &TestApp, username: &str) -> (TestApp, Vec<String>) {
    let browser = app.another_browser();
    let response = browser.login(username, PASSWORD).await;
    assert_eq!(response.status(), 200, "{username} signs in");
    let cookie = |name: &str| browser.cookie(name).unwrap_or_else(|| panic!("{username}: no {name} cookie"));
    let csrf = cookie("csrftoken");
    let headers = vec![
        format!(
            "Cookie: doorman_access={}; doorman_session={}; csrftoken={csrf}",
            cookie("doorman_access"),
            cookie("doorman_session")
        ),
        format!("X-CSRFToken: {csrf}"),
    ];
    (browser, headers)
}

struct Run {
    role: &'static str,
    headers: Vec<String>,
    /// operationIds not called.
    exclude: &'static [&'static str],
    /// (operationId, parameter, value) always sent so.
    fix: Vec<(&'static str, &'static str, &'static str)>,
}

/// Runs tests/schemathesis/run.py for `run`: (its summary line, its whole output, success).
async fn schemathesis(app: &TestApp, run: &Run, report_dir: &str) -> (String, String, bool) {
    let mut args = vec![
        "tests/schemathesis/run.py".to_string(),
        "--url".into(),
        // Past the run's tap: what schemathesis makes up is no secret.
        app.direct_address.clone(),
        "--role".into(),
        run.role.into(),
        "--max-examples".into(),
        MAX_EXAMPLES.to_string(),
        "--time-limit".into(),
        TIME_LIMIT_SECS.to_string(),
        "--report-dir".into(),
        report_dir.into(),
    ];
    for header in &run.headers {
        args.extend(["--header".to_string(), header.clone()]);
    }
    for operation in run.exclude {
        args.extend(["--exclude".to_string(), operation.to_string()]);
    }
    for (operation, parameter, value) in &run.fix {
        args.extend(["--fix".to_string(), format!("{operation} {parameter}={value}")]);
    }
    let out = run_python(args, vec![]).await;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let summary = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with("schemathesis "))
        .map(str::to_string)
        .unwrap_or_else(|| format!("schemathesis {}: no summary ({})", run.role, out.status));
    (summary, format!("{stdout}\n{stderr}"), out.status.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_failure_as_anonymous_user_admin_and_bearer() {
    // PostgreSQL, the production backend: stricter with odd text than SQLite;
    // with a provider, so that the single sign-on routes go past "no provider".
    let op = FakeOp::start().await;
    let provider = op.provider_settings("fake");
    let app = spawn(Backend::Postgres).with(move |s| s.providers.push(provider)).start().await;
    app.create_user("admin", PASSWORD, true);
    app.create_user("user", PASSWORD, false);
    // What the admin's destructive calls act on, instead of anyone signed in here.
    app.create_user("target", PASSWORD, false);
    let (_, user) = signed_in(&app, "user").await;
    let (admin_browser, admin) = signed_in(&app, "admin").await;
    // The admin's bearer token, with every scope (from their browser session).
    let token = tap(&admin_browser).await["token"].as_str().expect("a token").to_string();

    // Left out of the signed-in runs, as they would end the very session
    // the run depends on: signing out, and ending a session of one's own
    // (schemathesis learns the ids from GET /me/sessions).
    const OWN_SESSION: &[&str] = &["post_me_logout", "delete_me_sessions_by_id"];
    // With the bearer token, what would end it: revoking it (schemathesis
    // learns its id from GET /api-tokens).
    const OWN_TOKEN: &[&str] = &["delete_api_tokens_by_id"];
    // The admin's calls that sign a user out, disable, demote, delete or
    // re-password them act on `target`: on the admin themself they would
    // end the run's session or token (schemathesis learns usernames from GET /users).
    let on_target: Vec<_> = [
        "patch_users_by_username",
        "delete_users_by_username",
        "post_users_by_username_sign_out",
        "put_users_by_username_password",
    ]
    .into_iter()
    .map(|operation| (operation, "path.username", "target"))
    .collect();
    let runs = [
        Run { role: "anonymous", headers: vec![], exclude: &[], fix: vec![] },
        Run { role: "user", headers: user, exclude: OWN_SESSION, fix: vec![] },
        Run { role: "admin", headers: admin, exclude: OWN_SESSION, fix: on_target.clone() },
        Run { role: "admin-bearer", headers: vec![format!("Authorization: Bearer {token}")], exclude: OWN_TOKEN, fix: on_target },
    ];

    let report_dir = tempfile::tempdir().unwrap();
    let mut summaries = Vec::new();
    let mut failed = Vec::new();
    for run in &runs {
        let (summary, output, ok) = schemathesis(&app, run, report_dir.path().to_str().unwrap()).await;
        eprintln!("{summary}");
        if !ok {
            eprintln!("--- schemathesis as {}:\n{output}", run.role);
            failed.push(run.role);
        }
        summaries.push(summary);
    }
    let text = summaries.join("\n") + "\n";
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("schemathesis-summary.txt");
    std::fs::write(&path, &text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    assert!(failed.is_empty(), "schemathesis found failures as {failed:?}:\n{text}");
}
