//! Two doorman processes (the real binary) on one PostgreSQL database,
//! signing in through the real provider: what one issues works on the
//! other, and each user is refreshed at the provider once, not twice.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::real_op::{account, login_at_provider, RealOp, CLIENT_ID, CLIENT_SECRET};
use crate::helpers::{client_with, fresh_database, Backend, SECRET_KEY};

struct Doorman {
    child: Child,
    base: String,
}

impl Drop for Doorman {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn start_doorman(dir: &std::path::Path, name: &str, port: u16, db_url: &str, issuer: &str) -> Doorman {
    let config = dir.join(format!("{name}.toml"));
    std::fs::write(
        &config,
        format!(
            "[server]\nbind = \"127.0.0.1:{port}\"\n[database]\nurl = \"{db_url}\"\n[auth]\nsecret_key = \"{SECRET_KEY}\"\n\
             external_validity = \"8s\"\nrefresh_interval = \"1s\"\ncache_ttl = \"1s\"\n\
             [[oidc.providers]]\nid = \"real\"\nname = \"Real\"\nissuer = \"{issuer}\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret = \"{CLIENT_SECRET}\"\n"
        ),
    )
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_doorman"))
        .arg("--config")
        .arg(&config)
        .current_dir(dir)
        .env("RUST_LOG", if std::env::var("TEST_LOG").is_ok() { "info" } else { "warn" })
        .stdout(Stdio::null())
        .stderr(if std::env::var("TEST_LOG").is_ok() { Stdio::inherit() } else { Stdio::null() })
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let doorman = Doorman { child, base };
    for _ in 0..100 {
        if reqwest::get(format!("{}/healthz", doorman.base)).await.is_ok_and(|r| r.status() == 200) {
            return doorman;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("doorman {name} did not start");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_one_postgres_database() {
    let (port_a, port_b) = (free_port(), free_port());
    let (a_base, b_base) = (format!("http://127.0.0.1:{port_a}"), format!("http://127.0.0.1:{port_b}"));
    let op = RealOp::start(json!({
        "clients": [{
            "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
            "redirect_uris": [format!("{a_base}/oidc/callback"), format!("{b_base}/oidc/callback")],
        }],
        "accounts": [account("u1", "alice", "alice-pw"), account("u2", "bob", "bob-pw")],
    }));
    let (db_url, _) = fresh_database(Backend::Postgres);
    let dir = tempfile::tempdir().unwrap();
    let a = start_doorman(dir.path(), "a", port_a, &db_url, &op.issuer).await;
    let b = start_doorman(dir.path(), "b", port_b, &db_url, &op.issuer).await;

    let mut browsers = Vec::new();
    for (login, password, at) in [("alice", "alice-pw", &a.base), ("bob", "bob-pw", &b.base)] {
        let client = client_with(Arc::new(reqwest::cookie::Jar::default()));
        let start = client.get(format!("{at}/oidc/authenticate")).send().await.unwrap();
        assert_eq!(start.status(), 302);
        let callback = login_at_provider(&client, start.headers()["location"].to_str().unwrap(), login, password).await;
        assert_eq!(client.get(&callback).send().await.unwrap().status(), 302);
        browsers.push(client);
    }
    let logins_done = std::time::Instant::now();

    // Alice signed in on A: her cookies and her bearer token work on B.
    let alice = &browsers[0];
    let me: Value = alice.get(format!("{b_base}/me")).send().await.unwrap().json().await.unwrap();
    assert_eq!(me["username"], "alice");
    // A browser opening the address itself (see the GET /api-token-tap rule).
    let tap = alice.get(format!("{a_base}/api-token-tap")).header("Sec-Fetch-Site", "none").send().await.unwrap();
    let tap: Value = tap.json().await.unwrap();
    let token = tap["token"].as_str().unwrap();
    let on_b = reqwest::Client::new().get(format!("{b_base}/me")).bearer_auth(token).send().await.unwrap();
    assert_eq!(on_b.status(), 200);
    // Bob signed in on B: his cookies work on A.
    assert_eq!(browsers[1].get(format!("{a_base}/me")).send().await.unwrap().status(), 200);

    // Refreshes fall due 4 s after sign-in; both processes sweep every second.
    // Look before the second round could start (8 s after sign-in).
    let before = op.stats().await["refresh_requests"].as_u64().unwrap();
    assert_eq!(before, 0);
    tokio::time::sleep(Duration::from_millis(6500).saturating_sub(logins_done.elapsed())).await;
    let stats = op.stats().await;
    assert_eq!(stats["refresh_requests"], 2, "each user refreshed once by one of the two processes: {stats}");
    assert_eq!(stats["refresh_failures"], 0, "{stats}");
    drop(a);
    drop(b);
}
