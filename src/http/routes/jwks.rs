//! `GET /.well-known/jwks.json`: the public keys that verify doorman's
//! service JWTs, including a key announced by `rotate-keys` that does not
//! sign yet and retired keys whose tokens may still be live.

use actix_web::http::header;
use actix_web::{web, HttpResponse};

use crate::http::state::AppState;
use crate::service_tokens::keys::JWKS_MAX_AGE;

pub async fn show(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, format!("public, max-age={JWKS_MAX_AGE}")))
        .json(state.service_tokens.jwks().await)
}
