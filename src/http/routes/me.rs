//! `/me`: the caller's account, password sign-in, session refresh and logout.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::NO_STORE;
use crate::http::cookies::{self, SESSION};
use crate::http::error::{ApiError, ErrorBody};
use crate::http::extract::check_csrf;
use crate::http::state::AppState;
use crate::identity::principal::UserJson;
use crate::identity::{users, IdentityError, Principal};

/// The body of `POST /me/login`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    username: String,
    password: String,
}

/// `{"refreshed": true}` (schema only).
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Refreshed {
    pub refreshed: bool,
}

/// The body of `POST /me/logout` (schema only).
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct LoggedOut {
    pub logged_out: bool,
    /// The identity provider's logout URL, for a single sign-on session whose provider has one.
    pub logout_url: Option<String>,
}

/// The caller's account.
#[utoipa::path(
    get,
    path = "/me",
    tag = "users",
    security(("cookie" = ["account"]), ("bearer" = ["account"])),
    responses(
        (status = 200, description = "The caller", body = UserJson),
        (status = 401, description = "Not authenticated: `not_authenticated`, `invalid_token`, `invalid_session`, `access_expired`, `sign_in_again`", body = ErrorBody),
        (status = 403, description = "`insufficient_scope`", body = ErrorBody),
        (status = 503, description = "The database is unavailable", body = ErrorBody),
    )
)]
pub async fn show(principal: Principal) -> HttpResponse {
    HttpResponse::Ok().json(UserJson::from(&principal))
}

/// Password sign-in: sets the access, session and CSRF cookies.
#[utoipa::path(
    post,
    path = "/me/login",
    tag = "session",
    request_body = Credentials,
    responses(
        (status = 200, description = "Signed in; the cookies are set", body = UserJson),
        (status = 400, description = "`invalid_json`", body = ErrorBody),
        (status = 401, description = "`invalid_credentials` (also for users without a password)", body = ErrorBody),
        (status = 403, description = "`password_login_disabled`, `account_disabled`", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 429, description = "`too_many_attempts`, with `Retry-After`", body = ErrorBody),
        (status = 503, description = "The database is unavailable", body = ErrorBody),
    )
)]
pub async fn login(state: web::Data<AppState>, body: web::Json<Credentials>) -> Result<HttpResponse, ApiError> {
    let user = users::password_login(&state.identity, &body.username, &body.password).await?;
    let issued = state.identity.sessions.open(&user).await?;
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

/// A new access cookie from the browser session.
#[utoipa::path(
    post,
    path = "/me/refresh",
    tag = "session",
    security(("session" = [], "csrf" = [])),
    responses(
        (status = 200, description = "A new access cookie is set", body = Refreshed),
        (status = 401, description = "`not_authenticated` (no session cookie), `invalid_session`, `sign_in_again`", body = ErrorBody),
        (status = 403, description = "`csrf_failed`", body = ErrorBody),
        (status = 503, description = "The database or the identity provider is unavailable", body = ErrorBody),
    )
)]
pub async fn refresh(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let token = session_cookie(&req)?;
    check_csrf(&req)?;
    let access = state.identity.sessions.refresh(&token, state.sso.as_ref()).await?;
    Ok(HttpResponse::Ok()
        .insert_header(NO_STORE)
        .cookie(cookies::access(&state.settings, access))
        .json(serde_json::json!({"refreshed": true})))
}

/// Ends the browser session and clears the cookies.
#[utoipa::path(
    post,
    path = "/me/logout",
    tag = "session",
    security(("session" = [], "csrf" = [])),
    responses(
        (status = 200, description = "Signed out; the cookies are cleared", body = LoggedOut),
        (status = 401, description = "`not_authenticated` (no session cookie)", body = ErrorBody),
        (status = 403, description = "`csrf_failed`", body = ErrorBody),
        (status = 503, description = "The database is unavailable", body = ErrorBody),
    )
)]
pub async fn logout(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let token = session_cookie(&req)?;
    check_csrf(&req)?;
    let ended = state.identity.sessions.logout(&token).await?;
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
