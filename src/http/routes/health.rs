//! `GET /healthz` (liveness: touches nothing) and `GET /readyz` (the
//! database within a second, each provider, the revocation channel).

use std::collections::BTreeMap;
use std::time::Duration;

use actix_web::{web, HttpResponse};
use serde::Serialize;

use crate::http::state::AppState;

/// How long `/readyz` waits for the database.
const DATABASE_WITHIN: Duration = Duration::from_secs(1);

#[derive(Serialize, utoipa::ToSchema)]
pub struct Health {
    /// Always `ok`.
    status: &'static str,
}

/// Liveness: 200 whenever the process can answer; touches nothing.
#[utoipa::path(get, path = "/healthz", tag = "service", responses((status = 200, description = "Alive", body = Health)))]
pub async fn check() -> HttpResponse {
    HttpResponse::Ok().json(Health { status: "ok" })
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Readiness {
    /// `ok` or `unavailable`.
    database: &'static str,
    /// Each provider's id: `ok` or `unavailable` (informative; a provider down does not make doorman unready).
    providers: BTreeMap<String, &'static str>,
    /// The revocation channel: `ok`, `connecting`, `lost` (caches fall back to `auth.cache_ttl`) or `single_instance` (SQLite).
    notifications: &'static str,
}

/// 200 when the database answers within a second, else 503; the providers'
/// and the revocation channel's states are shown, not required.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "service",
    responses(
        (status = 200, description = "Ready: the database answered within a second", body = Readiness),
        (status = 503, description = "Not ready: the database did not answer", body = Readiness),
    ),
)]
pub async fn ready(state: web::Data<AppState>) -> HttpResponse {
    let database = match state.db.ping(DATABASE_WITHIN).await {
        Ok(()) => "ok",
        Err(err) => {
            log::warn!("readiness: the database does not answer: {}", crate::report::chain(&err));
            "unavailable"
        }
    };
    let providers = state
        .sso
        .providers
        .all()
        .iter()
        .map(|p| (p.settings.id.clone(), if p.ready().is_ok() { "ok" } else { "unavailable" }))
        .collect();
    let body = Readiness { database, providers, notifications: state.identity.revocations.state().as_str() };
    let mut response = if database == "ok" { HttpResponse::Ok() } else { HttpResponse::ServiceUnavailable() };
    response.insert_header(super::NO_STORE).json(body)
}
