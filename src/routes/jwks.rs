//! `GET /.well-known/jwks.json`: the public keys that verify doorman's
//! service JWTs, including a key announced by `rotate-keys` that does not
//! sign yet and retired keys whose tokens may still be live.

use actix_web::http::header;
use actix_web::{web, HttpResponse};

use crate::jwt::keys::JWKS_MAX_AGE;
use crate::state::AppState;

pub async fn show(state: web::Data<AppState>) -> HttpResponse {
    let keys = state.service_tokens.keys.get(&state).await;
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, format!("public, max-age={JWKS_MAX_AGE}")))
        .json(keys.jwks(chrono::Utc::now()))
}
