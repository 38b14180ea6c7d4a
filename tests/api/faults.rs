//! SPEC "Faults": the database gone and back (a PostgreSQL cluster of the
//! test's own, stopped and started mid-test), a provider that never answers,
//! and SIGTERM to the real binary.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::cluster::Cluster;
use crate::helpers::fake_op::FakeOp;
use crate::helpers::{assert_error, client_with, spawn, Backend, SECRET_KEY};

/// The database stops: what needs it answers 503 `database_unavailable`
/// with `Retry-After` within `database.timeout`; `/healthz` and requests
/// with a signed-in cookie go on; when it is back doorman recovers alone,
/// and the failed write left nothing behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_is_503_and_heals_by_itself() {
    let cluster = Cluster::start();
    let app = spawn(Backend::Postgres)
        .on_database(&cluster.url())
        .with(|s| s.database.timeout = doorman::config::Ttl::from_secs(2))
        .start()
        .await;
    app.create_user("alice", "correct horse", false);
    app.create_user("bob", "correct horse", false);
    assert_eq!(app.login("alice", "correct horse").await.status(), 200);
    assert_eq!(app.get("/me").await.status(), 200);

    cluster.stop();
    let bob = app.another_browser();
    let started = Instant::now();
    let refused = bob.login("bob", "correct horse").await;
    let waited = started.elapsed();
    assert!(refused.headers().contains_key("retry-after"), "{:?}", refused.headers());
    assert_error(refused, 503, "database_unavailable").await;
    assert!(waited < Duration::from_secs(3), "answered after {waited:?}, database.timeout is 2s");
    // Whatever the pool held is broken too: every try is a 503, never a 500.
    for _ in 0..3 {
        assert_error(bob.login("bob", "correct horse").await, 503, "database_unavailable").await;
    }
    assert_eq!(app.get("/healthz").await.status(), 200);
    let me = app.get("/me").await;
    assert_eq!(me.status(), 200, "a signed-in cookie needs no database: {:?}", me.text().await);

    cluster.resume();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = bob.login("bob", "correct horse").await.status();
        if status == 200 {
            break;
        }
        assert_eq!(status, 503, "only 503 while recovering");
        assert!(Instant::now() < deadline, "doorman did not recover");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(bob.get("/me").await.status(), 200);
    // No half-done write: bob has exactly the session of his successful sign-in.
    let sessions = app
        .state
        .db
        .run(|conn| {
            use diesel::prelude::*;
            use doorman::db::schema::{sessions, users};
            sessions::table.inner_join(users::table).filter(users::username.eq("bob")).count().get_result::<i64>(conn)
        })
        .await
        .unwrap();
    assert_eq!(sessions, 1);
}

/// A provider that takes connections and never answers: its sign-in ends
/// with a clear 5xx page within the HTTP timeouts, while password sign-in
/// and the other provider stay fast.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_that_never_answers_does_not_hold_up_the_others() {
    // Accepts connections and holds them, saying nothing.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_issuer = format!("http://{}", silent.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let good = FakeOp::start().await;
    let stalling = FakeOp::start().await;
    let mut silent_settings = good.provider_settings("silent");
    silent_settings.issuer = silent_issuer;
    let (good_settings, stalling_settings) = (good.provider_settings("good"), stalling.provider_settings("stalling"));
    let app = spawn(Backend::Sqlite)
        .with(move |s| s.providers.extend([good_settings, stalling_settings, silent_settings]))
        .start()
        .await;
    app.create_user("alice", "correct horse", false);

    // Discovery never answered: that provider's sign-in is a 503 page at once.
    let started = Instant::now();
    let page = app.get("/oidc/authenticate?provider=silent").await;
    assert_eq!(page.status(), 503);
    assert!(page.headers().contains_key("retry-after"));
    assert!(page.text().await.unwrap().contains("provider_unavailable"));
    assert!(started.elapsed() < Duration::from_secs(1));

    // The token endpoint takes the request and never answers.
    stalling.set(|k| k.token_hangs = true);
    let browser = app.another_browser();
    let callback = browser.begin_login("stalling", None).await;
    let stalled = tokio::spawn({
        let client = browser.client.clone();
        async move {
            let started = Instant::now();
            let response = client.get(&callback).send().await.unwrap();
            (started.elapsed(), response.status().as_u16(), response.text().await.unwrap())
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Meanwhile: password sign-in and the other provider answer at once.
    let started = Instant::now();
    assert_eq!(app.login("alice", "correct horse").await.status(), 200);
    assert_eq!(app.another_browser().sso_login("good").await.status(), 302);
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());

    let (took, status, page) = stalled.await.unwrap();
    assert_eq!(status, 503, "{page}");
    assert!(page.contains("provider_unavailable"), "{page}");
    assert!(took < Duration::from_secs(15), "the HTTP timeouts end it: {took:?}");
}

/// SIGTERM to the real binary: it stops taking connections, lets the request
/// in flight finish, gives up its refresh leases and exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_in_flight_requests_and_releases_leases() {
    let op = FakeOp::start().await;
    op.set(|k| k.refresh_token = true);
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let db_path = dir.path().join("doorman.db");
    let settings = op.provider_settings("fake");
    let config = dir.path().join("doorman.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nbind = \"127.0.0.1:{port}\"\nshutdown_timeout = \"20s\"\n[database]\nurl = \"sqlite://{}\"\n\
             [auth]\nsecret_key = \"{SECRET_KEY}\"\nexternal_validity = \"2s\"\nrefresh_interval = \"1s\"\n\
             [[oidc.providers]]\nid = \"fake\"\nname = \"Fake\"\nissuer = \"{}\"\nclient_id = \"{}\"\nclient_secret = \"{}\"\n",
            db_path.display(),
            settings.issuer,
            settings.client_id,
            settings.client_secret.as_ref().map(|s| s.expose().to_string()).unwrap_or_default(),
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_doorman"))
        .arg("--config")
        .arg(&config)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(if std::env::var("TEST_LOG").is_ok() { Stdio::inherit() } else { Stdio::null() })
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let mut up = false;
    for _ in 0..100 {
        if reqwest::get(format!("{base}/healthz")).await.is_ok_and(|r| r.status() == 200) {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(up, "doorman did not start");

    // A user signed in through the provider, with a refresh token.
    let sign_in = |client: reqwest::Client| {
        let base = base.clone();
        async move {
            let start = client.get(format!("{base}/oidc/authenticate?provider=fake")).send().await.unwrap();
            assert_eq!(start.status(), 302);
            let at_op = client.get(start.headers()["location"].to_str().unwrap()).send().await.unwrap();
            at_op.headers()["location"].to_str().unwrap().to_string()
        }
    };
    let browser = client_with(Default::default());
    let callback = sign_in(browser.clone()).await;
    assert_eq!(browser.get(&callback).send().await.unwrap().status(), 302);

    // The provider stops answering. A second sign-in waits on its token
    // endpoint (the request in flight at SIGTERM); a moment later the
    // background refresh of the first user takes its lease and waits too.
    op.set(|k| k.token_hangs = true);
    let other = client_with(Default::default());
    let callback = sign_in(other.clone()).await;
    let in_flight = tokio::spawn(async move {
        let response = other.get(&callback).send().await.unwrap();
        response.status().as_u16()
    });
    let identities = || {
        let conn = &mut <diesel::SqliteConnection as diesel::Connection>::establish(db_path.to_str().unwrap()).unwrap();
        use diesel::prelude::*;
        use doorman::db::schema::external_identities::dsl::*;
        let leased = external_identities.filter(lease_until.is_not_null()).count().get_result::<i64>(conn).unwrap();
        let failed = external_identities.filter(refresh_failures.gt(0)).count().get_result::<i64>(conn).unwrap();
        (leased, failed)
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while identities().0 == 0 {
        assert!(Instant::now() < deadline, "the refresh never took its lease");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let term = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().unwrap();
    assert!(term.success());
    let stopped_at = Instant::now();

    // New connections are no longer taken.
    let mut refused = false;
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if reqwest::Client::new().get(format!("{base}/healthz")).timeout(Duration::from_secs(1)).send().await.is_err() {
            refused = true;
            break;
        }
    }
    assert!(refused, "doorman still takes connections after SIGTERM");
    // The request in flight finishes (the provider's timeout ends it with a clear 503).
    let status = in_flight.await.unwrap();
    assert_eq!(status, 503);
    // And the process exits 0, its lease given back.
    let deadline = Instant::now() + Duration::from_secs(25);
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "doorman did not exit");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(exit.success(), "exit status {exit}");
    assert!(stopped_at.elapsed() < Duration::from_secs(21), "within server.shutdown_timeout");
    // Released at shutdown, not by the refresh giving up (no failure recorded).
    assert_eq!(identities(), (0, 0), "the refresh lease was released");
}
