//! The sign-in itself: complete logins per second through the real
//! `oidc-provider` on loopback (tests/idp), and doorman's own time per
//! callback apart from the provider's (from its `Server-Timing` header).
//!
//!   cargo bench --bench signin            (LOGINS=200 CONCURRENCY=4 to change)

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

async fn login(base: &str, user: &str) -> Sample {
    let client = client();
    let started = Instant::now();
    let start = client.get(format!("{base}/oidc/authenticate")).send().await.unwrap();
    let authenticate = started.elapsed();
    assert_eq!(start.status(), 302);
    let callback_url = login_at_provider(&client, start.headers()["location"].to_str().unwrap(), user, "pw").await;
    let at_callback = Instant::now();
    let done = client.get(&callback_url).send().await.unwrap();
    let callback = at_callback.elapsed();
    assert_eq!(done.status(), 302, "callback failed");
    let mut steps = timings(done.headers().get("server-timing"));
    let own = steps.iter().find(|(name, _)| name == "doorman").map(|(_, d)| *d).expect("Server-Timing: doorman;dur=");
    steps.retain(|(name, _)| name != "doorman" && name != "provider");
    Sample { total: started.elapsed(), authenticate, callback, callback_own: own, steps }
}

fn percentile(mut values: Vec<Duration>, p: f64) -> Duration {
    values.sort();
    values[((values.len() as f64 - 1.0) * p).round() as usize]
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
    let op = RealOp::start(json!({
        "clients": [{"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "redirect_uris": [format!("{base}/oidc/callback")]}],
        "accounts": accounts,
        "auto_consent": true,
    }));
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::from_toml(&format!(
        "[server]\npublic_url = \"{base}\"\n[database]\nurl = \"sqlite://{}/doorman.db\"\n[auth]\nsecret_key = \"bench-secret-key-0123456789abcdef-0123456789\"",
        dir.path().display()
    ))
    .unwrap();
    settings.providers.push(op.provider_settings("real"));
    let app = Application::build_on(settings, listener, doorman::clock::Clock::system()).await.expect("doorman starts");
    tokio::spawn(app.run());

    for i in 0..5 {
        login(&base, &format!("user{}", i % 20)).await;
    }
    // One at a time: latency of each part.
    let samples: Vec<Sample> = {
        let mut out = Vec::new();
        for i in 0..logins {
            out.push(login(&base, &format!("user{}", i % 20)).await);
        }
        out
    };
    // Several at once: throughput.
    let started = Instant::now();
    let per_task = logins / concurrency;
    let tasks: Vec<_> = (0..concurrency)
        .map(|t| {
            let base = base.clone();
            tokio::spawn(async move {
                for i in 0..per_task {
                    login(&base, &format!("user{}", (t * per_task + i) % 20)).await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let rate = (per_task * concurrency) as f64 / started.elapsed().as_secs_f64();

    let row = |what: &str, f: fn(&Sample) -> Duration| {
        let values: Vec<Duration> = samples.iter().map(f).collect();
        println!("| {what} | {} | {} |", ms(percentile(values.clone(), 0.5)), ms(percentile(values, 0.99)));
    };
    println!("{logins} logins through oidc-provider on loopback (auto consent), doorman on SQLite, release build");
    println!();
    println!("| measure | median | p99 |");
    println!("| --- | ---: | ---: |");
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
    drop(op);
}
