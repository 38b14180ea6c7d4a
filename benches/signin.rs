//! The sign-in itself: complete logins per second through the real
//! `oidc-provider` on loopback (tests/idp), and doorman's own time per
//! callback apart from the provider's (from its `Server-Timing` header).
//!
//!   cargo bench --bench signin            (LOGINS=200 CONCURRENCY=4 to change)
//!
//! With `PEER_PYTHON` (a Python with bench/peer/requirements.txt installed;
//! `bench/signin_vs_peer.sh` makes one), the peer is measured in the same
//! run: Substra's stack (Django, mozilla-django-oidc, simplejwt, gunicorn
//! with 2 workers) in bench/peer, a second client of the same provider,
//! its logins taking turns with doorman's (BLOCK at a time, default 25),
//! its own time from its `Server-Timing` (`peer`) the same way.

#[path = "../tests/api/helpers/real_op.rs"]
#[allow(dead_code)]
mod real_op;

use std::sync::Arc;
use std::time::{Duration, Instant};

use doorman::config::Settings;
use doorman::http::startup::Application;
use real_op::{account, login_at_provider, RealOp, CLIENT_ID, CLIENT_SECRET};
use serde_json::json;

struct Sample {
    total: Duration,
    authenticate: Duration,
    callback: Duration,
    callback_own: Duration,
    /// doorman's steps within its own time (`Server-Timing` entries besides
    /// `doorman` and `provider`), when it gives them.
    steps: Vec<(String, Duration)>,
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_provider(Arc::new(reqwest::cookie::Jar::default()))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The `name;dur=ms` entries of a `Server-Timing` header.
fn timings(header: Option<&reqwest::header::HeaderValue>) -> Vec<(String, Duration)> {
    let text = header.and_then(|v| v.to_str().ok()).unwrap_or_default();
    text.split(',')
        .filter_map(|part| {
            let (name, dur) = part.trim().split_once(";dur=")?;
            Some((name.to_string(), Duration::from_secs_f64(dur.parse::<f64>().ok()? / 1000.0)))
        })
        .collect()
}

/// Where a login starts and what its callback calls its own time.
#[derive(Clone, Copy)]
struct Rp<'a> {
    base: &'a str,
    authenticate: &'static str,
    own: &'static str,
}

impl Rp<'_> {
    fn doorman(base: &str) -> Rp<'_> {
        Rp { base, authenticate: "/oidc/authenticate", own: "doorman" }
    }
}

async fn login(rp: Rp<'_>, user: &str) -> Sample {
    let client = client();
    let started = Instant::now();
    let start = client.get(format!("{}{}", rp.base, rp.authenticate)).send().await.unwrap();
    let authenticate = started.elapsed();
    assert_eq!(start.status(), 302);
    let callback_url = login_at_provider(&client, start.headers()["location"].to_str().unwrap(), user, "pw").await;
    let at_callback = Instant::now();
    let done = client.get(&callback_url).send().await.unwrap();
    let callback = at_callback.elapsed();
    assert_eq!(done.status(), 302, "callback failed");
    let to = done.headers().get("location").and_then(|l| l.to_str().ok()).unwrap_or_default();
    assert_eq!(to, "/", "the callback did not sign in");
    let mut steps = timings(done.headers().get("server-timing"));
    let own = steps.iter().find(|(name, _)| name == rp.own).map(|(_, d)| *d).expect("Server-Timing: own time");
    steps.retain(|(name, _)| name != rp.own && name != "provider");
    Sample { total: started.elapsed(), authenticate, callback, callback_own: own, steps }
}

/// Complete logins per second at `rp`, `concurrency` at once, about `logins` in all.
async fn throughput(rp: Rp<'_>, logins: usize, concurrency: usize) -> f64 {
    let started = Instant::now();
    let per_task = logins / concurrency;
    let tasks = (0..concurrency).map(|t| async move {
        for i in 0..per_task {
            login(rp, &format!("user{}", (t * per_task + i) % 20)).await;
        }
    });
    futures_util::future::join_all(tasks).await;
    (per_task * concurrency) as f64 / started.elapsed().as_secs_f64()
}

fn percentile(mut values: Vec<Duration>, p: f64) -> Duration {
    values.sort();
    values[((values.len() as f64 - 1.0) * p).round() as usize]
}

fn print_table_head() {
    println!();
    println!("| measure | median | p99 |");
    println!("| --- | ---: | ---: |");
}

/// A table row: the median and p99 of `f` over `samples`.
fn print_row(samples: &[Sample], what: &str, f: fn(&Sample) -> Duration) {
    let values: Vec<Duration> = samples.iter().map(f).collect();
    println!("| {what} | {} | {} |", ms(percentile(values.clone(), 0.5)), ms(percentile(values, 0.99)));
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let _ = env_logger::builder().filter_level(log::LevelFilter::Warn).parse_default_env().try_init();
    let logins: usize = std::env::var("LOGINS").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
    let concurrency: usize = std::env::var("CONCURRENCY").ok().and_then(|v| v.parse().ok()).unwrap_or(4);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let accounts: Vec<_> = (0..20).map(|i| account(&format!("u{i}"), &format!("user{i}"), "pw")).collect();
    let peer_python = std::env::var("PEER_PYTHON").ok();
    let peer_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let peer_base = format!("http://127.0.0.1:{peer_port}");
    let mut clients =
        vec![json!({"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "redirect_uris": [format!("{base}/oidc/callback")]})];
    if peer_python.is_some() {
        clients.push(json!({"client_id": PEER_CLIENT, "client_secret": CLIENT_SECRET, "redirect_uris": [format!("{peer_base}/oidc/callback/")]}));
    }
    let op = RealOp::start(json!({"clients": clients, "accounts": accounts, "auto_consent": true}));
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::from_toml(&format!(
        "[server]\npublic_url = \"{base}\"\n[database]\nurl = \"sqlite://{}/doorman.db\"\n[auth]\nsecret_key = \"bench-secret-key-0123456789abcdef-0123456789\"",
        dir.path().display()
    ))
    .unwrap();
    settings.providers.push(op.provider_settings("real"));
    let app = Application::build_on(settings, listener, doorman::clock::Clock::system()).await.expect("doorman starts");
    tokio::spawn(app.run());
    let doorman = Rp::doorman(&base);
    let peer = peer_python.as_deref().map(|python| Peer::start(python, &op.issuer, peer_port, &dir.path().join("peer.db")));
    let peer_rp = Rp { base: &peer_base, authenticate: "/oidc/authenticate/", own: "peer" };

    for i in 0..5 {
        login(doorman, &format!("user{}", i % 20)).await;
        if peer.is_some() {
            login(peer_rp, &format!("user{}", i % 20)).await;
        }
    }
    // One at a time: latency of each part. The peer's logins, if any, take
    // turns with doorman's in blocks of BLOCK (default 25; 1 alternates login
    // by login, so that each callback finds the caches the other server used).
    let block: usize = std::env::var("BLOCK").ok().and_then(|v| v.parse().ok()).unwrap_or(25).max(1);
    let (samples, peer_samples) = {
        let (mut out, mut peer_out) = (Vec::new(), Vec::new());
        for first in (0..logins).step_by(block) {
            let turn = first..(first + block).min(logins);
            for i in turn.clone() {
                out.push(login(doorman, &format!("user{}", i % 20)).await);
            }
            if peer.is_some() {
                for i in turn {
                    peer_out.push(login(peer_rp, &format!("user{}", i % 20)).await);
                }
            }
        }
        (out, peer_out)
    };
    // Several at once: throughput, then the peer's.
    let rate = throughput(Rp::doorman(&base), logins, concurrency).await;
    let peer_rate = match peer {
        Some(_) => Some(throughput(peer_rp, logins, concurrency).await),
        None => None,
    };

    let row = |what: &str, f: fn(&Sample) -> Duration| print_row(&samples, what, f);
    println!("{logins} logins through oidc-provider on loopback (auto consent), doorman on SQLite, release build");
    print_table_head();
    row("whole login, client's view (all hops, doorman and provider)", |s| s.total);
    row("GET /oidc/authenticate, client's view", |s| s.authenticate);
    row("GET /oidc/callback, client's view (incl. token + userinfo at the provider)", |s| s.callback);
    row("GET /oidc/callback, doorman's own time (Server-Timing, provider excluded)", |s| s.callback_own);
    let names: Vec<String> = samples[0].steps.iter().map(|(name, _)| name.clone()).collect();
    for name in &names {
        let values: Vec<Duration> =
            samples.iter().map(|s| s.steps.iter().find(|(n, _)| n == name).map(|(_, d)| *d).unwrap_or_default()).collect();
        println!("| — of which `{name}` | {} | {} |", ms(percentile(values.clone(), 0.5)), ms(percentile(values, 0.99)));
    }
    if !names.is_empty() {
        let rest: Vec<Duration> =
            samples.iter().map(|s| s.callback_own.saturating_sub(s.steps.iter().map(|(_, d)| *d).sum())).collect();
        println!(
            "| — of which the rest (flow cookie, session cookies, response) | {} | {} |",
            ms(percentile(rest.clone(), 0.5)),
            ms(percentile(rest, 0.99))
        );
    }
    println!();
    println!("complete logins per second, {concurrency} at once: {rate:.0}");
    if !peer_samples.is_empty() {
        let median = |samples: &[Sample]| percentile(samples.iter().map(|s| s.callback_own).collect(), 0.5);
        let peer_row = |what: &str, f: fn(&Sample) -> Duration| print_row(&peer_samples, what, f);
        println!();
        println!(
            "the peer (bench/peer: Django, mozilla-django-oidc, simplejwt, gunicorn -w 2, SQLite), its logins taking turns with doorman's, {block} at a time:"
        );
        print_table_head();
        peer_row("whole login, client's view (all hops, the peer and provider)", |s| s.total);
        peer_row("GET /oidc/callback/, client's view (incl. token, keys + userinfo at the provider)", |s| s.callback);
        peer_row("GET /oidc/callback/, the peer's own time (Server-Timing, provider excluded)", |s| s.callback_own);
        let (ours, theirs) = (median(&samples), median(&peer_samples));
        println!();
        println!(
            "own time per callback, medians: doorman {}, the peer {}: {:.1} times less",
            ms(ours),
            ms(theirs),
            theirs.as_secs_f64() / ours.as_secs_f64()
        );
        if let Some(peer_rate) = peer_rate {
            println!(
                "complete logins per second, {concurrency} at once (the provider's pages included): doorman {rate:.0}, the peer {peer_rate:.0}"
            );
        }
    }
    drop(peer);
    drop(op);
}

const PEER_CLIENT: &str = "peer";

/// The peer, bench/peer under gunicorn with 2 workers; stopped when dropped.
struct Peer {
    child: std::process::Child,
}

impl Peer {
    /// Creates its tables in `db`, starts it on `port` and waits until it answers.
    fn start(python: &str, issuer: &str, port: u16, db: &std::path::Path) -> Peer {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/bench/peer");
        let env = [
            ("PEER_ISSUER", issuer.to_string()),
            ("PEER_CLIENT_ID", PEER_CLIENT.to_string()),
            ("PEER_CLIENT_SECRET", CLIENT_SECRET.to_string()),
            ("PEER_DB", db.display().to_string()),
            ("PYTHONDONTWRITEBYTECODE", "1".to_string()),
        ];
        let python_runs = |args: &[&str]| {
            let mut command = std::process::Command::new(python);
            command.args(args).current_dir(dir).envs(env.clone());
            command
        };
        let migrated = python_runs(&["manage.py", "migrate", "-v", "0"]).status().expect("PEER_PYTHON runs");
        assert!(migrated.success(), "the peer's tables could not be created (is bench/peer/requirements.txt installed?)");
        let bind = format!("127.0.0.1:{port}");
        let child = python_runs(&["-m", "gunicorn", "-w", "2", "-b", &bind, "--log-level", "warning", "peer.wsgi"])
            .spawn()
            .expect("gunicorn starts");
        let peer = Peer { child };
        for _ in 0..300 {
            if std::net::TcpStream::connect(&bind).is_ok() {
                return peer;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the peer did not listen on {bind} within 30 s");
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
