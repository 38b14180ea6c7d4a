//! `/users`: the user list and password changes.

use actix_web::{web, HttpResponse};
use serde::Deserialize;

use crate::db;
use crate::http::error::ApiError;
use crate::http::state::AppState;
use crate::identity::principal::UserJson;
use crate::identity::{users, Principal};

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
    username: web::Path<String>,
    body: web::Json<NewPassword>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    users::change_password(&state.identity, &principal, &username, body.password, body.old_password).await?;
    Ok(HttpResponse::NoContent().finish())
}
