//! `/users`: the user list and password changes.

use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::NO_STORE;
use crate::db;
use crate::http::client::ClientInfo;
use crate::http::error::ApiError;
use crate::http::state::AppState;
use crate::identity::principal::UserJson;
use crate::identity::{sessions, users, Principal};

pub async fn list(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let users = state.db.run(db::users::list).await?;
    Ok(HttpResponse::Ok().json(users.iter().map(UserJson::from).collect::<Vec<_>>()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewPassword {
    password: String,
    old_password: Option<String>,
}

pub async fn set_password(
    state: web::Data<AppState>,
    principal: Principal,
    client: ClientInfo,
    username: web::Path<String>,
    body: web::Json<NewPassword>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    users::change_password(&state.identity, &principal, &username, body.password, body.old_password, &client.origin()).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `GET /users/{username}/sessions` (admin): that user's live sessions.
pub async fn sessions(state: web::Data<AppState>, username: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let list = sessions::of_user(&state.identity, &username).await?;
    Ok(HttpResponse::Ok().insert_header(NO_STORE).json(list))
}

/// `POST /users/{username}/sign-out` (admin): ends every session and API token of the user.
pub async fn sign_out(
    state: web::Data<AppState>,
    principal: Principal,
    client: ClientInfo,
    username: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    sessions::sign_out_user(&state.identity, &username, &client.origin().by(&principal.username)).await?;
    Ok(HttpResponse::NoContent().finish())
}
