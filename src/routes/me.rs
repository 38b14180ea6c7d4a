//! `/me`: the caller's account, password sign-in, session refresh and logout.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::NO_STORE;
use crate::accounts::UserJson;
use crate::auth::cookies::{self, SESSION};
use crate::auth::principal::check_csrf;
use crate::auth::{login, AuthError, Principal};
use crate::error::ApiError;
use crate::state::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    username: String,
    password: String,
}

pub async fn show(principal: Principal) -> HttpResponse {
    HttpResponse::Ok().json(UserJson::from(&principal))
}

pub async fn login(state: web::Data<AppState>, body: web::Json<Credentials>) -> Result<HttpResponse, ApiError> {
    let user = login::password_login(&state, &body.username, &body.password).await?;
    let issued = login::open_session(&state, &user).await?;
    let mut response = HttpResponse::Ok();
    response.insert_header(NO_STORE);
    for cookie in cookies::login(&state.settings, &issued) {
        response.cookie(cookie);
    }
    Ok(response.json(UserJson::from(&user)))
}

fn session_cookie(req: &HttpRequest) -> Result<String, AuthError> {
    req.cookie(SESSION).map(|c| c.value().to_string()).ok_or(AuthError::NotAuthenticated)
}

pub async fn refresh(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let token = session_cookie(&req)?;
    check_csrf(&req)?;
    let access = login::refresh(&state, &token).await?;
    Ok(HttpResponse::Ok()
        .insert_header(NO_STORE)
        .cookie(cookies::access(&state.settings, access))
        .json(serde_json::json!({"refreshed": true})))
}

pub async fn logout(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let token = session_cookie(&req)?;
    check_csrf(&req)?;
    let ended = login::logout(&state, &token).await?;
    let logout_url = match ended {
        Some((session, user)) => crate::oidc::logout::after_session_end(&state, &session, &user).await,
        None => None,
    };
    let mut response = HttpResponse::Ok();
    response.insert_header(NO_STORE);
    for cookie in cookies::cleared(&state.settings) {
        response.cookie(cookie);
    }
    Ok(response.json(serde_json::json!({"logged_out": true, "logout_url": logout_url})))
}
