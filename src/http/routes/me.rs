//! `/me`: the caller's account, password sign-in, session refresh and logout.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use super::NO_STORE;
use crate::http::client::ClientInfo;
use crate::http::cookies::{self, SESSION};
use crate::http::error::{ApiError, ErrorBody};
use crate::http::extract::check_csrf;
use crate::http::state::AppState;
use crate::identity::principal::{MeJson, UserJson};
use crate::identity::sessions::SessionInfo;
use crate::identity::{sessions, users, IdentityError, Principal};

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    username: String,
    password: String,
}

/// `GET /me`: the caller as their credential carries them; reads no database.
#[utoipa::path(
    get,
    path = "/me",
    tag = "me",
    responses((status = 200, description = "The caller", body = MeJson)),
)]
pub async fn show(principal: Principal) -> HttpResponse {
    HttpResponse::Ok().json(MeJson::from(&principal))
}

/// Password sign-in: sets the access, session and `csrftoken` cookies.
#[utoipa::path(
    post,
    path = "/me/login",
    tag = "session",
    request_body = Credentials,
    responses(
        (status = 200, description = "Signed in: the cookies set", body = UserJson, headers(("Set-Cookie" = String))),
        (status = 400, description = "`invalid_json`", body = ErrorBody),
        (status = 401, description = "`invalid_credentials`, also for users without a password", body = ErrorBody),
        (status = 403, description = "`password_login_disabled`, `account_disabled` or `approval_pending`", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: send application/json", body = ErrorBody),
        (status = 429, description = "`too_many_attempts` (`Retry-After`)", body = ErrorBody),
        (status = 503, description = "`busy` or `database_unavailable` (`Retry-After`)", body = ErrorBody),
    ),
)]
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

/// The refresh's answer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Refreshed {
    /// Always `true`.
    refreshed: bool,
}

/// A new access cookie from the session cookie.
#[utoipa::path(
    post,
    path = "/me/refresh",
    tag = "session",
    security(("session" = [], "csrf" = [])),
    responses(
        (status = 200, description = "A new access cookie", body = Refreshed, headers(("Set-Cookie" = String))),
        (status = 401, description = "`not_authenticated` (no session cookie), `invalid_session` or `sign_in_again`", body = ErrorBody),
        (status = 403, description = "`csrf_failed` or `account_disabled`", body = ErrorBody),
        (status = 503, description = "`database_unavailable`", body = ErrorBody),
    ),
)]
pub async fn refresh(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let token = session_cookie(&req)?;
    check_csrf(&req)?;
    let access = state.identity.sessions.refresh(&token, state.sso.as_ref()).await?;
    Ok(HttpResponse::Ok()
        .insert_header(NO_STORE)
        .cookie(cookies::access(&state.settings, access))
        .json(Refreshed { refreshed: true }))
}

/// The logout's answer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct LoggedOut {
    /// Always `true`.
    logged_out: bool,
    /// Single sign-on: the provider's logout URL, when it has one.
    logout_url: Option<String>,
}

/// Ends the browser session and clears the cookies.
#[utoipa::path(
    post,
    path = "/me/logout",
    tag = "session",
    security(("session" = [], "csrf" = [])),
    responses(
        (status = 200, description = "Signed out: the cookies cleared", body = LoggedOut, headers(("Set-Cookie" = String))),
        (status = 401, description = "`not_authenticated`: no session cookie", body = ErrorBody),
        (status = 403, description = "`csrf_failed`", body = ErrorBody),
        (status = 503, description = "`database_unavailable`", body = ErrorBody),
    ),
)]
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
    Ok(response.json(LoggedOut { logged_out: true, logout_url }))
}

/// `GET /me/sessions`: the caller's live browser sessions.
#[utoipa::path(
    get,
    path = "/me/sessions",
    tag = "me",
    responses((status = 200, description = "The caller's live browser sessions", body = Vec<SessionInfo>)),
)]
pub async fn sessions(state: web::Data<AppState>, principal: Principal) -> Result<HttpResponse, ApiError> {
    let list = state.identity.sessions.list(&principal.user_id, principal.session_id()).await?;
    Ok(HttpResponse::Ok().insert_header(NO_STORE).json(list))
}

/// `DELETE /me/sessions/{id}`: ends one of the caller's sessions.
#[utoipa::path(
    delete,
    path = "/me/sessions/{id}",
    tag = "me",
    params(("id" = String, Path, description = "The session's id, from `GET /me/sessions`")),
    responses(
        (status = 204, description = "The session ended (on every instance)"),
        (status = 404, description = "No live session of the caller has this id", body = ErrorBody),
    ),
)]
pub async fn end_session(
    state: web::Data<AppState>,
    principal: Principal,
    client: ClientInfo,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    sessions::end_own(&state.identity, &principal, &id, &client.origin()).await?;
    Ok(HttpResponse::NoContent().finish())
}
