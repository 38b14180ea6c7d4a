//! `GET /healthz` (liveness: touches nothing) and `GET /readyz` (the
//! database within a second, each provider, the revocation channel).

use std::collections::BTreeMap;
use std::time::Duration;

use actix_web::{web, HttpResponse};
use serde::Serialize;

use crate::http::state::AppState;

/// How long `/readyz` waits for the database.
const DATABASE_WITHIN: Duration = Duration::from_secs(1);

pub async fn check() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

#[derive(Serialize)]
struct Readiness {
    database: &'static str,
    providers: BTreeMap<String, &'static str>,
    notifications: &'static str,
}

/// 200 when the database answers within a second, else 503; the providers'
/// and the revocation channel's states are shown, not required.
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
