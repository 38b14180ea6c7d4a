#![allow(dead_code)]
//! The test harness, in one place: doorman started on a random port against
//! a temporary SQLite file or a fresh PostgreSQL database, on a clock the
//! test moves; a client that keeps cookies and never follows redirects; the
//! providers (in-process and real) and the Python and sign-in helpers.

pub mod cluster;
pub mod device;
pub mod fake_op;
pub mod python;
pub mod real_op;
pub mod record;
pub mod sso;

use std::sync::Arc;

use actix_web::web;
use diesel::{Connection, PgConnection, RunQueryDsl};
use doorman::clock::Clock;
use doorman::config::Settings;
use doorman::http::startup::Application;
use doorman::http::state::AppState;
use reqwest::cookie::{CookieStore, Jar};
use reqwest::{Response, StatusCode};
use serde_json::Value;

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs an async test body once per backend, as two test functions.
#[macro_export]
macro_rules! both_backends {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::helpers::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::helpers::Backend::Postgres).await
            }
        }
    };
}

pub const SECRET_KEY: &str = "test-secret-key-0123456789abcdef-0123456789";

/// Every log line of this test process (level, target, message): doorman's
/// at debug and above, the rest at info and above; kept so tests can search
/// them (e.g. for secrets), added to the run's record, and printed too with
/// `TEST_LOG=1`.
static CAPTURED_LOGS: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

struct CaptureLogger {
    echo: bool,
}

impl log::Log for CaptureLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::Level::Info || metadata.target().starts_with("doorman")
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let line = format!("{} {} {}", record.level(), record.target(), record.args());
        if self.echo {
            eprintln!("{line}");
        }
        record::log_line(&line);
        CAPTURED_LOGS.lock().unwrap_or_else(|e| e.into_inner()).push(line);
    }

    fn flush(&self) {}
}

fn init_logging() {
    static INIT: std::sync::Once = std::sync::Once::new();
    INIT.call_once(|| {
        let echo = std::env::var("TEST_LOG").is_ok();
        if log::set_boxed_logger(Box::new(CaptureLogger { echo })).is_ok() {
            log::set_max_level(log::LevelFilter::Debug);
        }
    });
}

/// The log lines of this test process so far (every test's).
pub fn captured_logs() -> Vec<String> {
    CAPTURED_LOGS.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// A fresh database URL for `backend`; the returned guard keeps a temp dir alive.
pub fn fresh_database(backend: Backend) -> (String, Option<tempfile::TempDir>) {
    match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().expect("temp dir");
            let url = format!("sqlite://{}", dir.path().join("doorman.db").display());
            (url, Some(dir))
        }
        Backend::Postgres => (fresh_postgres_database(), None),
    }
}

/// Creates a new, empty PostgreSQL database from `DOORMAN_TEST_POSTGRES_URL`.
/// Without that variable the test fails, naming it (never a silent pass);
/// `cargo test -- --skip postgres` leaves these tests out on purpose.
pub fn fresh_postgres_database() -> String {
    let admin_url = match std::env::var("DOORMAN_TEST_POSTGRES_URL") {
        Ok(url) => url,
        Err(_) => panic!(
            "DOORMAN_TEST_POSTGRES_URL is not set: PostgreSQL tests need a server \
             (e.g. DOORMAN_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test); \
             to leave them out run `cargo test -- --skip postgres`"
        ),
    };
    let now = chrono::Utc::now().timestamp();
    let name = format!("doorman_test_{now}_{}", uuid::Uuid::new_v4().simple());
    let mut conn = PgConnection::establish(&admin_url)
        .unwrap_or_else(|e| panic!("cannot reach PostgreSQL at DOORMAN_TEST_POSTGRES_URL: {e}"));
    static SWEPT: std::sync::Once = std::sync::Once::new();
    SWEPT.call_once(|| drop_old_test_databases(&mut conn, now - 3 * 3600));
    diesel::sql_query(format!("CREATE DATABASE {name}")).execute(&mut conn).expect("create database");
    let mut url = url::Url::parse(&admin_url).expect("DOORMAN_TEST_POSTGRES_URL is a URL");
    url.set_path(&name);
    url.to_string()
}

/// Drops the test databases of earlier runs (made more than a few hours ago),
/// so a long-lived server does not fill up.
fn drop_old_test_databases(conn: &mut PgConnection, before: i64) {
    #[derive(diesel::QueryableByName)]
    struct Name {
        #[diesel(sql_type = diesel::sql_types::Text)]
        datname: String,
    }
    let names: Vec<Name> =
        diesel::sql_query("SELECT datname::text AS datname FROM pg_database WHERE datname LIKE 'doorman\\_test\\_%'")
            .load(conn)
            .unwrap_or_default();
    for Name { datname } in names {
        let made: Option<i64> = datname.split('_').nth(2).and_then(|t| t.parse().ok());
        if made.is_some_and(|t| t < before) {
            let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {datname} WITH (FORCE)")).execute(conn);
        }
    }
}

/// Settings for a test app: port 0, the given database, a fixed key.
pub fn test_settings(db_url: &str, extra_toml: &str) -> Settings {
    let text = format!(
        "[server]\nbind = \"127.0.0.1:0\"\nworkers = 1\nfailure_delay = \"0s\"\n[database]\nurl = \"{db_url}\"\npool_size = 4\n[auth]\nsecret_key = \"{SECRET_KEY}\"\n{extra_toml}"
    );
    Settings::from_toml(&text).unwrap_or_else(|e| panic!("test settings: {e}"))
}

pub struct TestApp {
    /// Where callers reach doorman: the run's tap (see `record`).
    pub address: String,
    /// doorman's own listener, past the tap: for schemathesis, whose
    /// generated values are no secrets and come back in paths and names.
    pub direct_address: String,
    pub port: u16,
    pub backend: Backend,
    pub db_url: String,
    pub client: reqwest::Client,
    pub jar: Arc<Jar>,
    pub state: web::Data<AppState>,
    /// The app's clock: `advance` it to move doorman's time.
    pub clock: Clock,
    /// The port of the metrics listener, when `metrics.bind` was set.
    pub metrics_port: Option<u16>,
    _events: Arc<EventsOnDrop>,
    _dir: Option<Arc<tempfile::TempDir>>,
}

type Adjust = Box<dyn FnOnce(&mut Settings)>;

/// How to start a test app: the one builder every test uses.
pub struct Spawn {
    backend: Backend,
    database: Option<(String, Option<tempfile::TempDir>)>,
    listener: Option<std::net::TcpListener>,
    clock: Option<Clock>,
    adjust: Vec<Adjust>,
}

/// Starts describing a test app on `backend`.
pub fn spawn(backend: Backend) -> Spawn {
    Spawn { backend, database: None, listener: None, clock: None, adjust: Vec::new() }
}

/// Starts doorman on `backend` with default settings.
pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn(backend).start().await
}

impl Spawn {
    /// Adjusts the settings (`server.public_url` is the bound address unless changed here).
    pub fn with(mut self, adjust: impl FnOnce(&mut Settings) + 'static) -> Self {
        self.adjust.push(Box::new(adjust));
        self
    }

    /// Uses an existing database (several apps on one database) instead of a fresh one.
    pub fn on_database(mut self, url: &str) -> Self {
        self.database = Some((url.to_string(), None));
        self
    }

    /// Serves on a listener the test bound (so a provider can be told
    /// doorman's address before doorman starts).
    pub fn on_listener(mut self, listener: std::net::TcpListener) -> Self {
        self.listener = Some(listener);
        self
    }

    /// Runs on another app's clock (several instances, one time).
    pub fn on_clock(mut self, clock: &Clock) -> Self {
        self.clock = Some(clock.clone());
        self
    }

    pub async fn start(self) -> TestApp {
        init_logging();
        let (db_url, dir) = self.database.unwrap_or_else(|| fresh_database(self.backend));
        // Callers reach doorman through the run's tap on `public`, which
        // relays to doorman's own listener (see `record`).
        let public = self.listener.unwrap_or_else(|| std::net::TcpListener::bind("127.0.0.1:0").unwrap());
        let port = public.local_addr().unwrap().port();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut settings = test_settings(&db_url, "");
        settings.server.bind = listener.local_addr().unwrap().to_string().parse().unwrap();
        settings.server.public_url = format!("http://127.0.0.1:{port}").parse().unwrap();
        for adjust in self.adjust {
            adjust(&mut settings);
        }
        let clock = self.clock.unwrap_or_default();
        let app = Application::build_on(settings, listener, clock.clone()).await.expect("application builds");
        let direct_address = format!("http://127.0.0.1:{}", app.port());
        record::tap(public, app.port());
        let metrics_port = app.metrics_port();
        let state = app.state();
        tokio::spawn(app.run());
        let jar = Arc::new(Jar::default());
        let events = Arc::new(EventsOnDrop(state.db.clone()));
        TestApp {
            address: format!("http://127.0.0.1:{port}"),
            direct_address,
            port,
            backend: self.backend,
            db_url,
            client: client_with(jar.clone()),
            jar,
            state,
            clock,
            metrics_port,
            _events: events,
            _dir: dir.map(Arc::new),
        }
    }
}

/// Adds the audit events of an app's database to the run's record when the
/// app's last handle goes (before a SQLite file's directory is removed).
struct EventsOnDrop(doorman::db::Db);

impl Drop for EventsOnDrop {
    fn drop(&mut self) {
        record::events_of(&self.0);
    }
}

/// A client that keeps cookies in `jar` and never follows redirects.
pub fn client_with(jar: Arc<Jar>) -> reqwest::Client {
    reqwest::Client::builder().cookie_provider(jar).redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}{}", self.address, path)
        }
    }

    /// The value of cookie `name` in the client's jar.
    pub fn cookie(&self, name: &str) -> Option<String> {
        let url: url::Url = self.address.parse().unwrap();
        let header = self.jar.cookies(&url)?;
        header.to_str().ok()?.split("; ").find_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            (k == name).then(|| v.to_string())
        })
    }

    fn with_csrf(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self.cookie("csrftoken") {
            Some(token) => request.header("X-CSRFToken", token),
            None => request,
        }
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client.get(self.url(path)).send().await.expect("request")
    }

    pub async fn get_bearer(&self, path: &str, token: &str) -> Response {
        reqwest::Client::new().get(self.url(path)).bearer_auth(token).send().await.expect("request")
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.with_csrf(self.client.post(self.url(path)).json(body)).send().await.expect("request")
    }

    pub async fn post_empty(&self, path: &str) -> Response {
        self.with_csrf(self.client.post(self.url(path))).send().await.expect("request")
    }

    pub async fn put_json(&self, path: &str, body: &Value) -> Response {
        self.with_csrf(self.client.put(self.url(path)).json(body)).send().await.expect("request")
    }

    pub async fn patch_json(&self, path: &str, body: &Value) -> Response {
        self.with_csrf(self.client.patch(self.url(path)).json(body)).send().await.expect("request")
    }

    pub async fn delete(&self, path: &str) -> Response {
        self.with_csrf(self.client.delete(self.url(path))).send().await.expect("request")
    }

    pub async fn login(&self, username: &str, password: &str) -> Response {
        self.post_json("/me/login", &serde_json::json!({"username": username, "password": password})).await
    }

    /// Creates a local user directly in the database.
    pub fn create_user(&self, name: &str, password: &str, admin: bool) {
        record::secret(password);
        let mut conn = self.state.db.get().expect("connection");
        let email = format!("{name}@example.com");
        let now = self.clock.now_naive();
        doorman::identity::users::create_local_user(&mut conn, name, password, Some(&email), admin, "default", now)
            .expect("create user");
    }

    /// A password sign-in as if from `ip` (the app must trust 127.0.0.1 as a
    /// proxy: see [`trusting_loopback_proxy`]); its own cookie jar.
    pub async fn login_from(&self, ip: &str, username: &str, password: &str) -> Response {
        reqwest::Client::new()
            .post(self.url("/me/login"))
            .header("X-Forwarded-For", ip)
            .json(&serde_json::json!({"username": username, "password": password}))
            .send()
            .await
            .expect("request")
    }

    /// Makes a machine client directly in the database: (id, secret).
    pub fn create_client(&self, name: &str, scopes: &[&str]) -> (String, String) {
        let mut conn = self.state.db.get().expect("connection");
        let scopes: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
        let made = doorman::service_tokens::clients::create(&mut conn, name, &scopes, None, self.clock.now_naive())
            .expect("create client");
        record::secret(made.secret.expose());
        (made.id, made.secret.expose().to_string())
    }

    /// Runs the doorman binary on this app's database and secret key; its output.
    pub fn doorman_cli(&self, args: &[&str]) -> std::process::Output {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_doorman"));
        cmd.env_remove("DOORMAN_CONFIG").env("RUST_LOG", "info");
        for (key, _) in std::env::vars() {
            if key.starts_with("DOORMAN__") {
                cmd.env_remove(key);
            }
        }
        let out = cmd
            .env("DOORMAN__DATABASE__URL", &self.db_url)
            .env("DOORMAN__AUTH__SECRET_KEY", SECRET_KEY)
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run doorman");
        assert!(out.status.success(), "doorman {args:?}: {}, stderr {:?}", out.status, String::from_utf8_lossy(&out.stderr));
        let stdout = String::from_utf8_lossy(&out.stdout);
        stdout.lines().filter_map(|line| line.strip_prefix("client_secret:")).for_each(record::secret);
        String::from_utf8_lossy(&out.stderr).lines().for_each(record::log_line);
        out
    }

    /// Every audit event, newest first, read through `GET /audit-events` by
    /// an administrator's bearer token, following the cursor.
    pub async fn audit_events(&self, admin_token: &str, query: &str) -> Vec<Value> {
        let mut events = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut url = format!("/audit-events?limit=1000{query}");
            if let Some(c) = &cursor {
                url.push_str(&format!("&cursor={c}"));
            }
            let response = self.get_bearer(&url, admin_token).await;
            assert_eq!(response.status(), 200);
            let page: Value = response.json().await.unwrap();
            events.extend(page["events"].as_array().unwrap().iter().cloned());
            match page["next"].as_str() {
                Some(next) => cursor = Some(next.to_string()),
                None => return events,
            }
        }
    }

    /// Moves doorman's time forward.
    pub fn advance(&self, by: std::time::Duration) {
        self.clock.advance(by);
    }

    /// One pass of the background refresh, now.
    pub async fn sweep(&self) -> doorman::sso::lifecycle::SweepReport {
        doorman::sso::lifecycle::sweep(&self.state.sso).await.expect("refresh sweep")
    }

    /// Opens a stored secret, as the app would.
    pub fn open_sealed(&self, context: &str, sealed: &str) -> String {
        self.state.keys.vault.open(context, sealed).expect("sealed with the app's key").expose().to_string()
    }

    pub async fn user_count(&self) -> i64 {
        self.state.db.run(doorman::db::users::count).await.expect("count users")
    }

    /// Every external identity, as stored.
    pub async fn identities(&self) -> Vec<doorman::db::identities::IdentityRow> {
        self.state
            .db
            .run(|conn| {
                use diesel::prelude::*;
                use doorman::db::schema::external_identities::dsl::*;
                external_identities.order(created_at.asc()).select(doorman::db::identities::IdentityRow::as_select()).load(conn)
            })
            .await
            .expect("read identities")
    }

    /// The same app seen from another browser (its own cookies).
    pub fn another_browser(&self) -> TestApp {
        let jar = Arc::new(Jar::default());
        TestApp {
            address: self.address.clone(),
            direct_address: self.direct_address.clone(),
            port: self.port,
            backend: self.backend,
            db_url: self.db_url.clone(),
            client: client_with(jar.clone()),
            jar,
            state: self.state.clone(),
            clock: self.clock.clone(),
            metrics_port: self.metrics_port,
            _events: self._events.clone(),
            _dir: self._dir.clone(),
        }
    }

    /// A second client on the same app, with its own cookies.
    pub fn new_browser(&self) -> (reqwest::Client, Arc<Jar>) {
        let jar = Arc::new(Jar::default());
        (client_with(jar.clone()), jar)
    }
}

/// Settings change: believe `X-Forwarded-For` from 127.0.0.1, so a test can
/// speak as many client addresses.
pub fn trusting_loopback_proxy(settings: &mut Settings) {
    settings.server.trusted_proxies = vec!["127.0.0.1/32".parse().expect("a CIDR")];
}

/// Asserts status and error code of a SPEC-shaped error response.
pub async fn assert_error(response: Response, status: u16, code: &str) -> Value {
    let got = response.status();
    let text = response.text().await.unwrap_or_default();
    assert_eq!(got, StatusCode::from_u16(status).unwrap(), "body: {text}");
    let body: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("error body is not JSON: {text}"));
    assert_eq!(body["error"], code, "body: {text}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "message missing: {text}");
    body
}
