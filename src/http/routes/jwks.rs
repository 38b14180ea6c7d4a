//! `GET /.well-known/jwks.json`: the public keys that verify doorman's
//! service JWTs, including a key announced by `rotate-keys` that does not
//! sign yet and retired keys whose tokens may still be live.

use actix_web::http::header;
use actix_web::{web, HttpResponse};

use crate::http::state::AppState;
use crate::service_tokens::keys::JWKS_MAX_AGE;

/// A JSON Web Key Set (RFC 7517).
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Jwks {
    /// Public keys (`kty`, `crv`, `x`, `kid`, `alg`, `use`).
    #[schema(value_type = Vec<Object>)]
    keys: Vec<serde_json::Value>,
}

/// The public keys that verify doorman's service JWTs.
#[utoipa::path(
    get,
    path = "/.well-known/jwks.json",
    tag = "service",
    responses((status = 200, description = "The key set", body = Jwks)),
)]
pub async fn show(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, format!("public, max-age={JWKS_MAX_AGE}")))
        .json(state.service_tokens.jwks().await)
}
