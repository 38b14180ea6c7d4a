//! The command line: `serve` (the default), `create-user`, `create-client`,
//! `rotate-keys`.

use std::io::BufRead;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::clock::Clock;
use crate::config::Settings;
use crate::db::{Db, DbConnection};
use crate::http::startup::Application;
use crate::identity::audit::{self, Event, Kind, Origin};

#[derive(Debug, Parser)]
#[command(
    name = "doorman",
    version,
    about = "Authentication backend: password and OpenID Connect sign-in, JWT cookies, scoped bearer tokens"
)]
pub struct Cli {
    /// TOML configuration file; every key may also be set as DOORMAN__SECTION__KEY.
    #[arg(long, env = "DOORMAN_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve HTTP (the default).
    Serve,
    /// Create a local user; the password is read from standard input.
    CreateUser {
        name: String,
        /// Make the user an administrator.
        #[arg(long)]
        admin: bool,
        #[arg(long)]
        email: Option<String>,
    },
    /// Create a machine client for `POST /token` (client credentials); prints its id and secret once.
    CreateClient {
        name: String,
        /// Scopes its tokens carry (space-separated, or the option repeated).
        #[arg(long, required = true, num_args = 1..)]
        scopes: Vec<String>,
        /// Extra claims put in its tokens, a JSON object, e.g. '{"queues": {"gpu": 10}}'.
        #[arg(long)]
        claims: Option<String>,
    },
    /// Add a new signing key: published at once, signing after --delay; the old keys stay
    /// published until their last tokens have expired.
    RotateKeys {
        /// How long every instance and verifier has to see the new key before it signs
        /// (e.g. 15m; 0s signs at once).
        #[arg(long, default_value = "15m")]
        delay: String,
    },
}

pub fn dispatch(cli: Cli) -> anyhow::Result<()> {
    let settings = Settings::load(cli.config.as_deref())?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(settings),
        Command::CreateUser { name, admin, email } => create_user(settings, &name, admin, email.as_deref()),
        Command::CreateClient { name, scopes, claims } => create_client(settings, &name, &scopes, claims.as_deref()),
        Command::RotateKeys { delay } => rotate_keys(settings, &delay),
    }
}

fn serve(settings: Settings) -> anyhow::Result<()> {
    actix_web::rt::System::new().block_on(async move {
        let app = Application::build(settings).await?;
        log::info!("doorman {} listening on port {}", env!("CARGO_PKG_VERSION"), app.port());
        app.run().await.context("server failed")
    })
}

fn open_db(settings: &Settings) -> anyhow::Result<DbConnection> {
    Db::connect_one(&settings.database.url)
}

/// The first line of standard input, without its line ending.
fn read_secret_line() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).context("cannot read the password from standard input")?;
    let line = line.trim_end_matches(['\n', '\r']).to_string();
    anyhow::ensure!(!line.is_empty(), "no password on standard input");
    Ok(line)
}

fn create_user(settings: Settings, name: &str, admin: bool, email: Option<&str>) -> anyhow::Result<()> {
    let password = read_secret_line()?;
    let mut conn = open_db(&settings)?;
    let channel = &settings.auth.default_channel;
    let now = Clock::system().now_naive();
    let user = crate::identity::users::new_local_user(name, &password, email, admin, channel, now)?;
    // The user and their audit event, in one transaction.
    let event = crate::db::write_transaction(&mut conn, |conn| {
        match crate::identity::users::store_local_user(conn, &user) {
            Ok(()) => {}
            Err(crate::identity::users::CreateUserError::Db(e)) => return Err(e),
            Err(e) => return Ok(Err(e)),
        }
        let event = crate::identity::users::created_event(&user)
            .origin(&Origin { actor: Some("cli".into()), ..Origin::default() })
            .into_row(now);
        crate::db::audit_events::insert(conn, &event)?;
        Ok(Ok(event))
    })??;
    audit::log_stored(&[event]);
    println!("created user {}{}", user.username, if admin { " (admin)" } else { "" });
    Ok(())
}

fn create_client(settings: Settings, name: &str, scopes: &[String], claims: Option<&str>) -> anyhow::Result<()> {
    let mut conn = open_db(&settings)?;
    let client = crate::service_tokens::clients::create(&mut conn, name, scopes, claims, Clock::system().now_naive())?;
    println!("created client {} with scopes: {}", client.name, client.scopes.join(" "));
    println!("client_id: {}", client.id);
    println!("client_secret: {}", client.secret.expose());
    println!("(the secret is shown only this once; doorman keeps only its hash)");
    Ok(())
}

fn rotate_keys(settings: Settings, delay: &str) -> anyhow::Result<()> {
    let delay = match delay.trim() {
        "0" | "0s" => chrono::TimeDelta::zero(),
        text => crate::config::parse_duration(text).map_err(|e| anyhow::anyhow!("--delay: {e}"))?.delta(),
    };
    let mut conn = open_db(&settings)?;
    let vault = crate::crypto::DerivedKeys::derive(&settings.auth.secret_key).vault;
    let ttl = settings.auth.service_token_ttl.delta();
    let now = Clock::system().now_naive();
    // The rotation and its audit event, in one transaction.
    let (done, event) = crate::db::write_transaction(&mut conn, |conn| {
        let done = crate::service_tokens::keys::rotate(conn, &vault, delay, ttl, now)?;
        let event = Event::success(Kind::KeyRotated)
            .origin(&Origin { actor: Some("cli".into()), ..Origin::default() })
            .detail("kid", done.kid.clone())
            .detail("active_from", done.active_from.and_utc().to_rfc3339())
            .detail("retired", done.retired)
            .detail("pruned", done.pruned)
            .into_row(now);
        crate::db::audit_events::insert(conn, &event)?;
        Ok((done, event))
    })
    .context("rotating the signing keys")?;
    audit::log_stored(&[event]);
    println!("new signing key {}: published now, signs from {} UTC", done.kid, done.active_from.format("%Y-%m-%d %H:%M:%S"));
    if done.retired > 0 {
        println!(
            "{} previous key(s) stop signing then and stay published until {} UTC",
            done.retired,
            done.previous_published_until.format("%Y-%m-%d %H:%M:%S")
        );
    }
    if done.pruned > 0 {
        println!("removed {} key(s) no longer published", done.pruned);
    }
    Ok(())
}
