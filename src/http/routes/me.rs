//! `/me`: the caller's account, password sign-in, session refresh and logout.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::NO_STORE;
use crate::http::client::ClientInfo;
use crate::http::cookies::{self, SESSION};
use crate::http::error::ApiError;
use crate::http::extract::check_csrf;
use crate::http::state::AppState;
use crate::identity::principal::{MeJson, UserJson};
use crate::identity::{sessions, users, IdentityError, Principal};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    username: String,
    password: String,
}

/// `GET /me`: the caller as their credential carries them; reads no database.
pub async fn show(principal: Principal) -> HttpResponse {
    HttpResponse::Ok().json(MeJson::from(&principal))
}

pub async fn login(
    state: web::Data<AppState>,
    client: ClientInfo,
    body: web::Json<Credentials>,
) -> Result<HttpResponse, ApiError> {
    let origin = client.origin();
    let user = users::password_login(&state.identity, &body.username, &body.password, &origin).await?;
    let issued = state.identity.sessions.open(&user, &origin).await?;
    let mut response = HttpResponse::Ok();
    response.insert_header(NO_STORE);
    for cookie in cookies::login(&state.settings, &issued) {
        response.cookie(cookie);
    }
    Ok(response.json(UserJson::from(&user)))
}

fn session_cookie(req: &HttpRequest) -> Result<String, IdentityError> {
    req.cookie(SESSION).map(|c| c.value().to_string()).ok_or(IdentityError::NotAuthenticated)
}

pub async fn refresh(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let token = session_cookie(&req)?;
    check_csrf(&req)?;
    let access = state.identity.sessions.refresh(&token, state.sso.as_ref()).await?;
    Ok(HttpResponse::Ok()
        .insert_header(NO_STORE)
        .cookie(cookies::access(&state.settings, access))
        .json(serde_json::json!({"refreshed": true})))
}

pub async fn logout(state: web::Data<AppState>, req: HttpRequest, client: ClientInfo) -> Result<HttpResponse, ApiError> {
    let token = session_cookie(&req)?;
    check_csrf(&req)?;
    let ended = sessions::logout(&state.identity, &token, &client.origin()).await?;
    let logout_url = match ended {
        Some((session, user)) => crate::sso::logout::after_session_end(&state.sso, &session, &user).await,
        None => None,
    };
    let mut response = HttpResponse::Ok();
    response.insert_header(NO_STORE);
    for cookie in cookies::cleared(&state.settings) {
        response.cookie(cookie);
    }
    Ok(response.json(serde_json::json!({"logged_out": true, "logout_url": logout_url})))
}

/// `GET /me/sessions`: the caller's live browser sessions.
pub async fn sessions(state: web::Data<AppState>, principal: Principal) -> Result<HttpResponse, ApiError> {
    let list = state.identity.sessions.list(&principal.user_id, principal.session_id()).await?;
    Ok(HttpResponse::Ok().insert_header(NO_STORE).json(list))
}

/// `DELETE /me/sessions/{id}`: ends one of the caller's sessions.
pub async fn end_session(
    state: web::Data<AppState>,
    principal: Principal,
    client: ClientInfo,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    sessions::end_own(&state.identity, &principal, &id, &client.origin()).await?;
    Ok(HttpResponse::NoContent().finish())
}
