//! `/users`: the user list and password changes.

use actix_web::{web, HttpResponse};
use serde::Deserialize;

use crate::db;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::state::AppState;
use crate::identity::principal::UserJson;
use crate::identity::{users, Principal};

/// Every user.
#[utoipa::path(
    get,
    path = "/users",
    tag = "users",
    security(("cookie" = ["users:read"]), ("bearer" = ["users:read"])),
    responses(
        (status = 200, description = "Every user", body = Vec<UserJson>),
        (status = 401, description = "Not authenticated: `not_authenticated`, `invalid_token`, `invalid_session`, `access_expired`, `sign_in_again`", body = ErrorBody),
        (status = 403, description = "`insufficient_scope`", body = ErrorBody),
        (status = 503, description = "The database is unavailable", body = ErrorBody),
    )
)]
pub async fn list(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let users = state.db.run(db::users::list).await?;
    Ok(HttpResponse::Ok().json(users.iter().map(UserJson::from).collect::<Vec<_>>()))
}

/// The body of `PUT /users/{username}/password`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPassword {
    password: String,
    old_password: Option<String>,
}

/// Sets a password: the user themself with `old_password`, or an admin
/// (`users:admin`) without it.
#[utoipa::path(
    put,
    path = "/users/{username}/password",
    tag = "users",
    params(("username" = String, Path, description = "The user whose password changes")),
    request_body = NewPassword,
    security(("cookie" = ["account"], "csrf" = []), ("bearer" = ["account"])),
    responses(
        (status = 204, description = "Changed"),
        (status = 400, description = "`invalid_json`, `invalid_input` (e.g. a password too short)", body = ErrorBody),
        (status = 401, description = "Not authenticated, or a wrong `old_password` (`invalid_credentials`)", body = ErrorBody),
        (status = 403, description = "`insufficient_scope`, `csrf_failed`, `forbidden` (someone else's password without `users:admin`), `external_user`", body = ErrorBody),
        (status = 404, description = "`not_found`: no such user", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 429, description = "`too_many_attempts` (wrong `old_password`), with `Retry-After`", body = ErrorBody),
        (status = 503, description = "The database is unavailable", body = ErrorBody),
    )
)]
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
