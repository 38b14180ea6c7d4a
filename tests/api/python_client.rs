//! The Python client package (clients/python): its own pytest suite against
//! this doorman, live. pytest's exit code must be 0: "no tests collected"
//! (5) or a missing pytest fails here, loudly.

use crate::helpers::python::run_python;
use crate::helpers::{spawn_app, Backend};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_package_tests_pass_against_a_live_doorman() {
    let app = spawn_app(Backend::Sqlite).await;
    app.create_user("alice", "correct horse", false);
    let dir = env!("CARGO_MANIFEST_DIR");
    let out = run_python(
        vec!["-m".into(), "pytest".into(), "-q".into(), "-p".into(), "no:cacheprovider".into(), "clients/python/tests".into()],
        vec![
            ("PYTHONPATH".into(), format!("{dir}/clients/python/src")),
            ("DOORMAN_TEST_URL".into(), app.address.clone()),
            ("DOORMAN_TEST_USER".into(), "alice".into()),
            ("DOORMAN_TEST_PASSWORD".into(), "correct horse".into()),
        ],
    )
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "pytest failed ({}; 5 = no tests collected; install it with `pip install ./clients/python[test]`)\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(" passed"), "{stdout}");
}
