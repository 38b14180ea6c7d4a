//! Prometheus metrics: the recorder behind the `metrics` facade (which the
//! domain layers record through), the middleware that counts and times
//! every request by route pattern and status, and `GET /metrics` on its own
//! listener (`metrics.bind`). With `metrics.bind` empty nothing is
//! installed and the facade's calls cost next to nothing.

use std::net::TcpListener;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, App, HttpResponse, HttpServer};
use anyhow::Context;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use super::state::AppState;

/// Upper bounds (seconds) of the request-latency histogram's buckets.
const LATENCY_BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// The process's Prometheus recorder, installed by the first instance
/// that serves metrics (the `metrics` facade has one recorder per process).
fn recorder() -> anyhow::Result<PrometheusHandle> {
    static HANDLE: Mutex<Option<PrometheusHandle>> = Mutex::new(None);
    let mut slot = HANDLE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(handle) = slot.as_ref() {
        return Ok(handle.clone());
    }
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full("doorman_http_request_duration_seconds".into()), LATENCY_BUCKETS)
        .context("metrics buckets")?
        .install_recorder()
        .context("cannot install the metrics recorder")?;
    describe();
    *slot = Some(handle.clone());
    Ok(handle)
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!("doorman_http_requests_total", "HTTP requests by method, route pattern and status");
    describe_histogram!(
        "doorman_http_request_duration_seconds",
        Unit::Seconds,
        "HTTP request latency by method and route pattern"
    );
    describe_counter!("doorman_sign_ins_total", "Sign-ins by method (password, sso:<provider>) and outcome");
    describe_counter!("doorman_provider_refreshes_total", "Refreshes of external users at their provider, by outcome");
    describe_gauge!("doorman_provider_up", "1 when the provider's discovery succeeded, else 0");
    describe_counter!("doorman_provider_key_fetches_total", "Fetches of a provider's signing keys (JWKS)");
    describe_counter!("doorman_cache_requests_total", "Session and API-token cache lookups, by hit or miss");
    describe_gauge!("doorman_db_pool_connections", "Database pool connections by state (idle, in_use, max)");
    describe_counter!("doorman_tokens_issued_total", "Credentials issued, by kind");
    describe_counter!("doorman_revocations_total", "Revocations forgotten from the caches, by kind and source");
    describe_gauge!("doorman_revocation_channel_up", "1 while the PostgreSQL revocation channel listens, else 0");
}

/// Counts and times one request under its route pattern (`/users/{username}`,
/// never the raw path, so the label set stays small).
pub async fn record(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let start = Instant::now();
    let method = req.method().as_str().to_string();
    let route = req.match_pattern().unwrap_or_else(|| "unmatched".to_string());
    let result = next.call(req).await;
    let status = match &result {
        Ok(response) => response.status().as_u16(),
        Err(err) => err.as_response_error().status_code().as_u16(),
    };
    metrics::counter!("doorman_http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status.to_string())
        .increment(1);
    metrics::histogram!("doorman_http_request_duration_seconds", "method" => method, "route" => route)
        .record(start.elapsed().as_secs_f64());
    result
}

/// The metrics listener: `GET /metrics` in Prometheus text, on `listener`.
pub fn server(listener: TcpListener, state: web::Data<AppState>) -> anyhow::Result<Server> {
    let handle = recorder()?;
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(5));
        loop {
            every.tick().await;
            upkeep.run_upkeep();
        }
    });
    let server = HttpServer::new(move || {
        App::new().app_data(state.clone()).app_data(web::Data::new(handle.clone())).route("/metrics", web::get().to(scrape))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)?
    .run();
    Ok(server)
}

/// `GET /metrics`: gauges read now (pool, providers, channel), then everything.
async fn scrape(state: web::Data<AppState>, handle: web::Data<PrometheusHandle>) -> HttpResponse {
    let (open, idle, max) = state.db.pool_state();
    metrics::gauge!("doorman_db_pool_connections", "state" => "idle").set(f64::from(idle));
    metrics::gauge!("doorman_db_pool_connections", "state" => "in_use").set(f64::from(open.saturating_sub(idle)));
    metrics::gauge!("doorman_db_pool_connections", "state" => "max").set(f64::from(max));
    for provider in state.sso.providers.all() {
        let up = if provider.ready().is_ok() { 1.0 } else { 0.0 };
        metrics::gauge!("doorman_provider_up", "provider" => provider.settings.id.clone()).set(up);
    }
    let channel_up = state.identity.revocations.state() == crate::identity::revocation::ChannelState::Listening;
    metrics::gauge!("doorman_revocation_channel_up").set(if channel_up { 1.0 } else { 0.0 });
    handle.run_upkeep();
    HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(handle.render())
}
