//! The record of a whole test run, for one question asked after it: does
//! any log line or audit event hold a secret the run created?
//!
//! - **Secrets.** Every test app is reached through a tap ([`tap`]): a
//!   loopback relay that passes the bytes on unchanged and picks out of them
//!   what is secret (passwords and codes in requests, cookies doorman sets,
//!   `Authorization` credentials, tokens and client secrets in bodies).
//!   Secrets a test makes without HTTP (a user or client written straight
//!   to the database, a secret the CLI printed) are added with [`secret`].
//! - **Logs.** Every log line of this process (doorman's at debug and above,
//!   the rest at info), and the standard error of the doorman processes the
//!   tests start.
//! - **Audit events.** Every stored event of every test app's database,
//!   written when the app's last handle is dropped.
//!
//! They go to files in [`dir`] (`DOORMAN_TEST_RECORD`, by default
//! `target/tmp/run-record`), one set per test process;
//! `whole_run::no_secret_in_any_log_line_or_audit_event` reads them all.
//! `scripts/test.sh` empties the directory before the run and reads it after.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{LineWriter, Write};
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use regex::bytes::Regex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

/// Shorter values are not searched for: too many innocent matches.
pub const MIN_SECRET_LEN: usize = 8;

/// Where the record is kept.
pub fn dir() -> PathBuf {
    match std::env::var_os("DOORMAN_TEST_RECORD") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("run-record"),
    }
}

/// One append-only file of this process's record, written line by line.
struct Sink {
    file: Mutex<Option<LineWriter<File>>>,
}

impl Sink {
    fn open(kind: &str) -> Sink {
        let dir = dir();
        let file = std::fs::create_dir_all(&dir)
            .and_then(|_| {
                let path = dir.join(format!("{kind}-{}.jsonl", std::process::id()));
                OpenOptions::new().create(true).append(true).open(path)
            })
            .map(LineWriter::new)
            .map_err(|err| eprintln!("the run's record cannot be written in {}: {err}", dir.display()))
            .ok();
        Sink { file: Mutex::new(file) }
    }

    /// Writes `text` as one JSON string on a line of its own.
    fn write(&self, text: &str) {
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(file) = file.as_mut() {
            let _ = writeln!(file, "{}", serde_json::Value::from(text));
        }
    }
}

fn secrets() -> &'static (Sink, Mutex<HashSet<String>>) {
    static SECRETS: OnceLock<(Sink, Mutex<HashSet<String>>)> = OnceLock::new();
    SECRETS.get_or_init(|| (Sink::open("secrets"), Mutex::new(HashSet::new())))
}

fn logs() -> &'static Sink {
    static LOGS: OnceLock<Sink> = OnceLock::new();
    LOGS.get_or_init(|| Sink::open("logs"))
}

fn events() -> &'static Sink {
    static EVENTS: OnceLock<Sink> = OnceLock::new();
    EVENTS.get_or_init(|| Sink::open("events"))
}

/// Adds `value` to the run's secrets (once; short values are left out).
pub fn secret(value: &str) {
    let value = value.trim();
    if value.len() < MIN_SECRET_LEN {
        return;
    }
    let (sink, seen) = secrets();
    if seen.lock().unwrap_or_else(|e| e.into_inner()).insert(value.to_string()) {
        sink.write(value);
    }
}

/// Adds a log line to the record.
pub fn log_line(line: &str) {
    logs().write(line);
}

/// A file the standard error of a doorman process can be written to; its
/// lines join the run's logs (as raw lines, not JSON strings).
pub fn stderr_file(name: &str) -> File {
    let dir = dir();
    std::fs::create_dir_all(&dir).expect("record directory");
    let path = dir.join(format!("stderr-{}-{name}-{}.log", std::process::id(), uuid::Uuid::new_v4().simple()));
    File::create(path).expect("a record file for standard error")
}

/// Adds every audit event stored in `db` to the record.
pub fn events_of(db: &doorman::db::Db) {
    let Ok(mut conn) = db.get() else { return };
    let filter = doorman::db::audit_events::Filter { limit: i64::MAX, ..Default::default() };
    let Ok(rows) = doorman::db::audit_events::list(&mut conn, &filter) else { return };
    for row in rows {
        let fields = [Some(&row.kind), row.username.as_ref(), row.actor.as_ref(), row.ip.as_ref(), row.user_agent.as_ref()];
        let line = fields.iter().flatten().map(|s| s.as_str()).chain([row.detail.as_str()]).collect::<Vec<_>>().join(" ");
        events().write(&line);
    }
}

/// Relays connections made to `public` to `upstream` on loopback, picking
/// out the secrets in both directions. Runs on the caller's runtime.
pub fn tap(public: std::net::TcpListener, upstream: u16) {
    public.set_nonblocking(true).expect("non-blocking listener");
    let listener = TcpListener::from_std(public).expect("tokio listener");
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)).await else { return };
                let _ = (client.set_nodelay(true), server.set_nodelay(true));
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                tokio::join!(relay(client_read, server_write), relay(server_read, client_write));
            });
        }
    });
}

/// How much of what came before a read is searched again with it, so a
/// secret split between two reads is still found.
const OVERLAP: usize = 8 * 1024;

async fn relay(mut from: OwnedReadHalf, mut to: OwnedWriteHalf) {
    let mut buffer = vec![0u8; 32 * 1024];
    let mut window: Vec<u8> = Vec::new();
    loop {
        let n = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if to.write_all(&buffer[..n]).await.is_err() {
            break;
        }
        window.extend_from_slice(&buffer[..n]);
        secrets_in(&window);
        let keep = window.len().min(OVERLAP);
        window.drain(..window.len() - keep);
    }
    let _ = to.shutdown().await;
}

/// Every secret in a stretch of HTTP traffic.
pub fn secrets_in(traffic: &[u8]) {
    static PATTERNS: OnceLock<[Regex; 4]> = OnceLock::new();
    let [json, form, cookie, authorization] = PATTERNS.get_or_init(|| {
        let names = "password|old_password|new_password|token|access_token|refresh_token|id_token|client_secret|\
                     device_code|user_code|subject_token|code|secret|csrfmiddlewaretoken|csrf";
        [
            Regex::new(&format!(r#""(?:{names})"\s*:\s*"((?:[^"\\]|\\.)+)""#)).unwrap(),
            Regex::new(&format!(r#"(?:^|[?&\s])(?:{names})=([^&\s"]+)"#)).unwrap(),
            Regex::new(r"(?im)^(?:set-cookie:[ \t]*[^=\s]+=([^;\r\n]+)|cookie:[ \t]*([^\r\n]+))").unwrap(),
            Regex::new(r"(?im)^(?:authorization:[ \t]*(?:bearer|basic)[ \t]+([^\r\n]+)|x-csrftoken:[ \t]*([^\r\n]+))").unwrap(),
        ]
    });
    for found in json.captures_iter(traffic) {
        let raw = String::from_utf8_lossy(&found[1]);
        match serde_json::from_str::<String>(&format!("\"{raw}\"")) {
            Ok(value) => secret(&value),
            Err(_) => secret(&raw),
        }
    }
    for found in form.captures_iter(traffic) {
        let raw = String::from_utf8_lossy(&found[1]).replace('+', " ");
        secret(&percent_decoded(&raw));
    }
    for found in cookie.captures_iter(traffic) {
        if let Some(value) = found.get(1) {
            secret(&String::from_utf8_lossy(value.as_bytes()));
        }
        if let Some(pairs) = found.get(2) {
            for pair in String::from_utf8_lossy(pairs.as_bytes()).split(';') {
                if let Some((_, value)) = pair.split_once('=') {
                    secret(value);
                }
            }
        }
    }
    for found in authorization.captures_iter(traffic) {
        let Some(value) = found.get(1).or_else(|| found.get(2)) else { continue };
        let value = String::from_utf8_lossy(value.as_bytes()).to_string();
        secret(&value);
        // HTTP Basic: the password half (form-encoded, RFC 6749 2.3.1).
        if let Some(decoded) = base64_decoded(&value) {
            if let Some((_, password)) = decoded.split_once(':') {
                secret(password);
                secret(&percent_decoded(password));
            }
        }
    }
}

fn percent_decoded(text: &str) -> String {
    url::form_urlencoded::parse(format!("x={text}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| text.to_string())
}

fn base64_decoded(text: &str) -> Option<String> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD.decode(text.trim()).ok()?;
    String::from_utf8(bytes).ok()
}
