//! The command line: `serve` (the default), `create-user`, `create-client`,
//! `rotate-keys`.

use std::io::BufRead;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::config::Settings;
use crate::db::Db;
use crate::startup::Application;

#[derive(Debug, Parser)]
#[command(name = "doorman", version, about = "Authentication backend: password and OpenID Connect sign-in, JWT cookies, scoped bearer tokens")]
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
}

pub fn dispatch(cli: Cli) -> anyhow::Result<()> {
    let settings = Settings::load(cli.config.as_deref())?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(settings),
        Command::CreateUser { name, admin, email } => create_user(settings, &name, admin, email.as_deref()),
    }
}

fn serve(settings: Settings) -> anyhow::Result<()> {
    actix_web::rt::System::new().block_on(async move {
        let app = Application::build(settings).await?;
        log::info!("doorman {} listening on port {}", env!("CARGO_PKG_VERSION"), app.port());
        app.run().await.context("server failed")
    })
}

fn open_db(settings: &Settings) -> anyhow::Result<Db> {
    Db::connect(&settings.database.url, 2)
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
    let db = open_db(&settings)?;
    let mut conn = db.get()?;
    let user = crate::accounts::create_local_user(&mut conn, name, &password, email, admin, &settings.auth.default_channel)?;
    println!("created user {}{}", user.username, if admin { " (admin)" } else { "" });
    Ok(())
}
