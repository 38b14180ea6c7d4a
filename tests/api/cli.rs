//! The binary: configuration errors, create-user, serving with no configuration.

use std::io::Write;
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_doorman");

fn doorman(dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir).env_remove("DOORMAN_CONFIG").env("RUST_LOG", "warn");
    for (key, _) in std::env::vars() {
        if key.starts_with("DOORMAN__") {
            cmd.env_remove(key);
        }
    }
    cmd
}

#[test]
fn bad_configuration_is_one_line_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.toml"), "[auth]\naccess_ttl = \"15 minutes\"\n").unwrap();
    let out = doorman(dir.path()).args(["--config", "bad.toml"]).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.trim().lines().last().unwrap(),
        "config: auth.access_ttl: invalid duration \"15 minutes\" (write e.g. 90s, 15m, 24h, 7d)"
    );

    std::fs::write(dir.path().join("unknown.toml"), "[server]\nbindd = \"x\"\n").unwrap();
    let out = doorman(dir.path()).env("DOORMAN_CONFIG", "unknown.toml").output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("config: server.bindd: unknown key"));

    let out = doorman(dir.path()).env("DOORMAN__DATABASE__URL", "mysql://x").output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("config: database.url: unsupported URL"));
}

#[test]
fn create_user_reads_the_password_from_stdin_and_the_server_accepts_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = doorman(dir.path())
        .args(["create-user", "admin", "--admin", "--email", "admin@example.com"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"admin password\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(dir.path().join("doorman.db").exists());
    let key = dir.path().join("doorman.db.secret_key");
    assert!(key.exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    }

    // Twice: a clear refusal.
    let mut child =
        doorman(dir.path()).args(["create-user", "admin"]).stdin(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(b"admin password\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));

    // The stored hash is argon2id, not the password.
    let conn_url = dir.path().join("doorman.db");
    let mut conn = <diesel::SqliteConnection as diesel::Connection>::establish(conn_url.to_str().unwrap()).unwrap();
    use diesel::prelude::*;
    use doorman::db::schema::users::dsl::*;
    let stored: Option<String> = users.select(password_hash).first(&mut conn).unwrap();
    let stored = stored.unwrap();
    assert!(stored.starts_with("$argon2id$") && !stored.contains("admin password"));
}

#[test]
fn serves_with_no_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = doorman(dir.path())
        .env("DOORMAN__SERVER__BIND", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/healthz");
    let mut ok = false;
    for _ in 0..100 {
        if let Ok(r) = http::blocking_get(&url) {
            ok = r == 200;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    child.kill().unwrap();
    let _ = child.wait();
    assert!(ok, "doorman did not answer /healthz");
    assert!(dir.path().join("doorman.db").exists());
}

mod http {
    /// A tiny blocking GET over a std TcpStream (the test crate has no blocking client).
    pub fn blocking_get(url: &str) -> std::io::Result<u16> {
        use std::io::{Read, Write};
        let rest = url.strip_prefix("http://").unwrap();
        let (host, path) = rest.split_once('/').unwrap();
        let mut stream = std::net::TcpStream::connect(host)?;
        write!(stream, "GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        Ok(response.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0))
    }
}
