//! Two doorman processes (the real binary) on one PostgreSQL database,
//! signing in through the real provider: what one issues works on the
//! other, each user is refreshed at the provider once, not twice, and what
//! one revokes the other refuses within a second.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::real_op::{account, login_at_provider, RealOp, CLIENT_ID, CLIENT_SECRET};
use crate::helpers::{client_with, fresh_database, record, Backend, SECRET_KEY};

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
    let auth = format!(
        "external_validity = \"8s\"\nrefresh_interval = \"1s\"\ncache_ttl = \"1s\"\n\
         [[oidc.providers]]\nid = \"real\"\nname = \"Real\"\nissuer = \"{issuer}\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret = \"{CLIENT_SECRET}\"\n"
    );
    start_with(dir, name, port, db_url, &auth).await
}

/// The config file of process `name`: `auth` is the rest of its `[auth]`
/// table and what follows it.
fn write_config(dir: &std::path::Path, name: &str, port: u16, db_url: &str, auth: &str) -> std::path::PathBuf {
    let config = dir.join(format!("{name}.toml"));
    std::fs::write(
        &config,
        format!("[server]\nbind = \"127.0.0.1:{port}\"\n[database]\nurl = \"{db_url}\"\n[auth]\nsecret_key = \"{SECRET_KEY}\"\n{auth}"),
    )
    .unwrap();
    config
}

async fn start_with(dir: &std::path::Path, name: &str, port: u16, db_url: &str, auth: &str) -> Doorman {
    let config = write_config(dir, name, port, db_url, auth);
    let child = Command::new(env!("CARGO_BIN_EXE_doorman"))
        .arg("--config")
        .arg(&config)
        .current_dir(dir)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(if std::env::var("TEST_LOG").is_ok() { Stdio::inherit() } else { record::stderr_file(name).into() })
        .spawn()
        .unwrap();
    // Reached through the run's tap, like every in-process app.
    let public = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", public.local_addr().unwrap());
    record::tap(public, port);
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

/// Revocation between real processes: with `auth.cache_ttl = 1h`, only the
/// PostgreSQL notification can make B refuse, within a second, a token and
/// a browser session that A revoked after B had cached them as valid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_one_process_revokes_the_other_refuses_within_a_second() {
    let (db_url, _) = fresh_database(Backend::Postgres);
    let dir = tempfile::tempdir().unwrap();
    let auth = "cache_ttl = \"1h\"\n";
    let (port_a, port_b) = (free_port(), free_port());
    let config = write_config(dir.path(), "a", port_a, &db_url, auth);
    let mut create = Command::new(env!("CARGO_BIN_EXE_doorman"))
        .args(["--config", config.to_str().unwrap(), "create-user", "alice"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(record::stderr_file("create-user"))
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut create.stdin.take().unwrap(), b"correct horse\n").unwrap();
    assert!(create.wait().unwrap().success());
    let a = start_with(dir.path(), "a", port_a, &db_url, auth).await;
    let b = start_with(dir.path(), "b", port_b, &db_url, auth).await;

    let jar = Arc::new(reqwest::cookie::Jar::default());
    let browser = client_with(jar.clone());
    let login = browser.post(format!("{}/me/login", a.base)).json(&json!({"username": "alice", "password": "correct horse"}));
    assert_eq!(login.send().await.unwrap().status(), 200);
    let csrf = reqwest::cookie::CookieStore::cookies(jar.as_ref(), &a.base.parse().unwrap())
        .and_then(|h| {
            h.to_str().ok().and_then(|c| c.split("; ").find_map(|kv| kv.strip_prefix("csrftoken=")).map(str::to_string))
        })
        .unwrap();
    let minted: Value = browser
        .post(format!("{}/api-token-tap", a.base))
        .header("X-CSRFToken", &csrf)
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = minted["token"].as_str().unwrap().to_string();
    let plain = reqwest::Client::new();
    // B caches both as valid.
    assert_eq!(browser.get(format!("{}/me", b.base)).send().await.unwrap().status(), 200);
    assert_eq!(plain.get(format!("{}/me", b.base)).bearer_auth(&token).send().await.unwrap().status(), 200);

    let revoke = browser.delete(format!("{}/api-tokens/{}", a.base, minted["id"].as_str().unwrap())).header("X-CSRFToken", &csrf);
    assert_eq!(revoke.send().await.unwrap().status(), 204);
    let delay = refused_within_a_second(plain.get(format!("{}/me", b.base)).bearer_auth(&token)).await;
    eprintln!("token revoked on A, refused on B after {delay:?}");
    // B needs the access cookie alone to answer: keep it before A clears it.
    let access = reqwest::cookie::CookieStore::cookies(jar.as_ref(), &a.base.parse().unwrap()).unwrap();
    let logout = browser.post(format!("{}/me/logout", a.base)).header("X-CSRFToken", &csrf);
    assert_eq!(logout.send().await.unwrap().status(), 200);
    let delay = refused_within_a_second(plain.get(format!("{}/me", b.base)).header("Cookie", access)).await;
    eprintln!("session ended on A, refused on B after {delay:?}");
    drop(a);
    drop(b);
}

/// A browser of one doorman process: its own cookie jar, signed in with a password.
struct Browser {
    client: reqwest::Client,
    jar: Arc<reqwest::cookie::Jar>,
    base: String,
}

impl Browser {
    async fn sign_in(base: &str, name: &str, password: &str) -> Browser {
        let jar = Arc::new(reqwest::cookie::Jar::default());
        let browser = Browser { client: client_with(jar.clone()), jar, base: base.to_string() };
        let login = browser.client.post(format!("{base}/me/login")).json(&json!({"username": name, "password": password}));
        assert_eq!(login.send().await.unwrap().status(), 200, "{name} signs in");
        browser
    }

    /// Its cookies, as a `Cookie` header another process can be sent.
    fn cookies(&self) -> String {
        let header = reqwest::cookie::CookieStore::cookies(self.jar.as_ref(), &self.base.parse().unwrap()).unwrap();
        header.to_str().unwrap().to_string()
    }

    /// A request to its own process, with the CSRF header.
    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let csrf = self.cookies().split("; ").find_map(|kv| kv.strip_prefix("csrftoken=")).unwrap().to_string();
        self.client.request(method, format!("{}{path}", self.base)).header("X-CSRFToken", csrf)
    }
}

/// Sends `request` until it gets 401, failing if that takes a second; how long it took.
async fn refused_within_a_second(request: reqwest::RequestBuilder) -> Duration {
    let revoked = std::time::Instant::now();
    loop {
        let status = request.try_clone().unwrap().send().await.unwrap().status();
        if status == 401 {
            return revoked.elapsed();
        }
        assert_eq!(status, 200);
        assert!(revoked.elapsed() < Duration::from_secs(1), "B still accepts it a second after A revoked it");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Every cause of revocation an administrator or the person performs on A
/// (besides logout and token revocation, above): a session ended from the
/// list, a password change, a user disabled, deleted or signed out by an
/// administrator. B caches the victim's browser session for an hour first;
/// only the notification can make it refuse within a second. (A
/// back-channel logout is the provider's doing: `revocation.rs` covers it
/// with two instances on one database.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_cause_on_one_process_is_refused_by_the_other_within_a_second() {
    let (db_url, _) = fresh_database(Backend::Postgres);
    let dir = tempfile::tempdir().unwrap();
    let auth = "cache_ttl = \"1h\"\n";
    let (port_a, port_b) = (free_port(), free_port());
    let config = write_config(dir.path(), "a", port_a, &db_url, auth);
    let users = ["root", "listed", "changed", "disabled", "deleted", "signed-out"];
    for name in users {
        let mut args = vec!["--config", config.to_str().unwrap(), "create-user", name];
        if name == "root" {
            args.push("--admin");
        }
        let mut create = Command::new(env!("CARGO_BIN_EXE_doorman"))
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(record::stderr_file("create-user"))
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut create.stdin.take().unwrap(), format!("{name} password\n").as_bytes()).unwrap();
        assert!(create.wait().unwrap().success());
        record::secret(&format!("{name} password"));
    }
    let a = start_with(dir.path(), "a", port_a, &db_url, auth).await;
    let b = start_with(dir.path(), "b", port_b, &db_url, auth).await;
    let root = Browser::sign_in(&a.base, "root", "root password").await;
    let plain = reqwest::Client::new();

    for (cause, name) in [
        ("a session ended from the list", "listed"),
        ("a password change", "changed"),
        ("a user disabled", "disabled"),
        ("a user deleted", "deleted"),
        ("an administrator's sign-out", "signed-out"),
    ] {
        let password = format!("{name} password");
        let (acting, victim) =
            (Browser::sign_in(&a.base, name, &password).await, Browser::sign_in(&a.base, name, &password).await);
        let on_b = plain.get(format!("{}/me", b.base)).header("Cookie", victim.cookies());
        assert_eq!(on_b.try_clone().unwrap().send().await.unwrap().status(), 200, "B caches {name}'s session");
        let done = match cause {
            "a session ended from the list" => {
                let sessions: Vec<Value> =
                    acting.request(reqwest::Method::GET, "/me/sessions").send().await.unwrap().json().await.unwrap();
                let other = sessions.iter().find(|s| s["current"] != true).expect("the victim's session is listed");
                let path = format!("/me/sessions/{}", other["id"].as_str().unwrap());
                acting.request(reqwest::Method::DELETE, &path).send().await.unwrap()
            }
            "a password change" => {
                let body = json!({"old_password": password, "password": format!("{name} new password")});
                record::secret(&format!("{name} new password"));
                acting.request(reqwest::Method::PUT, &format!("/users/{name}/password")).json(&body).send().await.unwrap()
            }
            "a user disabled" => {
                let body = json!({"status": "disabled"});
                root.request(reqwest::Method::PATCH, &format!("/users/{name}")).json(&body).send().await.unwrap()
            }
            "a user deleted" => root.request(reqwest::Method::DELETE, &format!("/users/{name}")).send().await.unwrap(),
            _ => root.request(reqwest::Method::POST, &format!("/users/{name}/sign-out")).send().await.unwrap(),
        };
        assert!(done.status().is_success(), "{cause}: {}", done.status());
        let delay = refused_within_a_second(on_b).await;
        eprintln!("{cause} on A, refused on B after {delay:?}");
    }
    drop(a);
    drop(b);
}
