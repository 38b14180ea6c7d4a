//! `Application::build(settings)`: open the database, bind the listener and
//! assemble the HTTP server; the binary and the tests both start it here.

use std::net::TcpListener;

use actix_web::dev::Server;
use actix_web::middleware::{from_fn, Compress, Condition, Logger};
use actix_web::{web, App, HttpServer};
use anyhow::Context;

use super::state::AppState;
use super::{error, hardening, metrics, routes};
use crate::clock::Clock;
use crate::config::{DatabaseUrl, Settings};
use crate::db::Db;

/// How often the audit retention sweep runs.
const AUDIT_SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

/// A built, bound, not yet running doorman.
pub struct Application {
    port: u16,
    server: Server,
    /// The metrics listener, when `metrics.bind` is set.
    metrics: Option<(u16, Server)>,
    state: web::Data<AppState>,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        let listener =
            TcpListener::bind(settings.server.bind).with_context(|| format!("cannot listen on {}", settings.server.bind))?;
        Self::build_on(settings, listener, Clock::system()).await
    }

    /// Like [`Application::build`] on a listener the caller bound (tests bind
    /// port 0 first, to know `public_url` before the app starts), running on
    /// `clock` (tests move it to drive expiry and refresh).
    pub async fn build_on(settings: Settings, listener: TcpListener, clock: Clock) -> anyhow::Result<Application> {
        let db_url = settings.database.url.clone();
        let pool_size = settings.database.pool_size;
        let timeout = settings.database.timeout.std();
        let db = tokio::task::spawn_blocking(move || Db::connect_with(&db_url, pool_size, timeout))
            .await
            .context("database setup")??;
        let port = listener.local_addr()?.port();
        let workers = settings.server.workers;
        let shutdown_timeout = settings.server.shutdown_timeout.as_secs();
        let metrics_bind = settings.metrics.bind;
        let metrics_listener = match metrics_bind {
            Some(addr) => Some(TcpListener::bind(addr).with_context(|| format!("metrics.bind: cannot listen on {addr}"))?),
            None => None,
        };
        let listen_url = match &settings.database.url {
            DatabaseUrl::Postgres(url) => Some(url.clone()),
            DatabaseUrl::Sqlite(_) => None,
        };
        let state = web::Data::new(AppState::new(settings, db, clock)?);
        if let Some(url) = listen_url {
            state.identity.revocations.start_listener(&url).await;
        }
        state.service_tokens.start().await?;
        state.sso.start().await;
        std::sync::Arc::new(state.identity.audit.clone()).start_retention_task(AUDIT_SWEEP_EVERY);
        let metrics = match metrics_listener {
            Some(listener) => {
                let port = listener.local_addr()?.port();
                Some((port, metrics::server(listener, state.clone())?))
            }
            None => None,
        };
        let with_metrics = metrics.is_some();

        let app_state = state.clone();
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(app_state.clone())
                .app_data(web::JsonConfig::default().limit(64 * 1024).error_handler(error::json_error))
                .app_data(web::QueryConfig::default().error_handler(error::query_error))
                .app_data(web::PathConfig::default().error_handler(error::path_error))
                .app_data(web::FormConfig::default().limit(64 * 1024).error_handler(error::form_error))
                .wrap(routes::cors(&app_state.settings))
                // Outside CORS (to see its headers), before any body is read.
                .wrap(from_fn(hardening::harden))
                .wrap(Compress::default())
                .wrap(Condition::new(with_metrics, from_fn(metrics::record)))
                // %U: the path only; the OIDC callback's query carries the code.
                .wrap(
                    Logger::new("%a %{method}xi %U %s %b %Dms").custom_request_replace("method", |req| req.method().to_string()),
                )
                .configure(|cfg| routes::configure(cfg, &app_state))
        })
        // At a stop signal (handled in `run`), in-flight requests get this long.
        .shutdown_timeout(shutdown_timeout)
        .disable_signals()
        .listen(listener)?;
        if workers > 0 {
            server = server.workers(workers);
        }
        let server = server.run();
        Ok(Application { port, server, metrics, state })
    }

    /// The port the server listens on (useful with `bind = "127.0.0.1:0"`).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port of the metrics listener, when `metrics.bind` is set.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics.as_ref().map(|(port, _)| *port)
    }

    /// The shared state, for tests that look inside.
    pub fn state(&self) -> web::Data<AppState> {
        self.state.clone()
    }

    /// Serves until SIGTERM or SIGINT. Then the background refresh stops
    /// where it stands and gives up its leases, the listener closes, and
    /// in-flight requests finish within `server.shutdown_timeout`; the
    /// leases those requests held are given up last.
    pub async fn run(self) -> std::io::Result<()> {
        let handle = self.server.handle();
        let state = self.state.clone();
        let stopper = tokio::spawn(async move {
            stop_signal().await;
            log::info!("stopping: no new connections, in-flight requests finish first");
            release(state.sso.stop().await);
            handle.stop(true).await;
        });
        let metrics = self.metrics.map(|(_, metrics)| {
            let handle = metrics.handle();
            tokio::spawn(metrics);
            handle
        });
        let served = self.server.await;
        stopper.abort();
        if let Some(metrics) = metrics {
            metrics.stop(true).await;
        }
        release(self.state.sso.release_leases().await);
        log::info!("doorman stopped");
        served
    }
}

fn release(released: Result<usize, crate::db::DbError>) {
    match released {
        Ok(0) => {}
        Ok(n) => log::info!("released {n} refresh lease(s)"),
        Err(err) => log::warn!("could not release refresh leases: {}", crate::report::chain(&err)),
    }
}

/// SIGTERM or SIGINT (Ctrl-C).
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(err) => {
                log::warn!("cannot listen for SIGTERM: {err}");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
