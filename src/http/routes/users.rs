//! `/users`: user administration and password changes.

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::NO_STORE;
use crate::http::client::ClientInfo;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::state::AppState;
use crate::identity::admin::{self, Approval, ListQuery, NewUser, UserPatch};
use crate::identity::principal::UserJson;
use crate::identity::sessions::SessionInfo;
use crate::identity::{sessions, users, Principal};

/// `GET /users?status=&q=&limit=&after=`: a JSON array of users; when more
/// may follow, a `Link: <...>; rel="next"` header gives the next page.
#[utoipa::path(
    get,
    path = "/users",
    tag = "users",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of users, by username", body = Vec<UserJson>,
            headers(("Link" = String, description = "`</users?after=...>; rel=\"next\"` when more may follow"))),
        (status = 400, description = "`invalid_query` or `invalid_input` (a bad `status` or `limit`)", body = ErrorBody),
    ),
)]
pub async fn list(state: web::Data<AppState>, query: web::Query<ListQuery>) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let (status, q, limit) = (query.status.clone(), query.q.clone(), query.limit);
    let page = admin::list(&state.identity, query).await?;
    let mut response = HttpResponse::Ok();
    if let Some(after) = &page.next {
        let mut next = url::form_urlencoded::Serializer::new(String::new());
        next.append_pair("after", after);
        if let Some(limit) = limit {
            next.append_pair("limit", &limit.to_string());
        }
        if let Some(status) = &status {
            next.append_pair("status", status);
        }
        if let Some(q) = &q {
            next.append_pair("q", q);
        }
        response.insert_header((header::LINK, format!("</users?{}>; rel=\"next\"", next.finish())));
    }
    Ok(response.json(page.users.iter().map(UserJson::from).collect::<Vec<_>>()))
}

/// `POST /users`: 201 the new local user.
#[utoipa::path(
    post,
    path = "/users",
    tag = "users",
    request_body = NewUser,
    responses(
        (status = 201, description = "The new local user", body = UserJson),
        (status = 400, description = "`invalid_json` or `invalid_input` (a bad username, password, e-mail or channel)", body = ErrorBody),
        (status = 409, description = "`username_taken`", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: send application/json", body = ErrorBody),
    ),
)]
pub async fn create(
    state: web::Data<AppState>,
    principal: Principal,
    client: ClientInfo,
    body: web::Json<NewUser>,
) -> Result<HttpResponse, ApiError> {
    let user = admin::create(&state.identity, body.into_inner(), &client.origin().by(&principal.username)).await?;
    Ok(HttpResponse::Created().json(UserJson::from(&user)))
}

/// `GET /users/{username}`.
#[utoipa::path(
    get,
    path = "/users/{username}",
    tag = "users",
    params(("username" = String, Path, description = "The user's username")),
    responses(
        (status = 200, description = "The user", body = UserJson),
        (status = 404, description = "No such user", body = ErrorBody),
    ),
)]
pub async fn show(state: web::Data<AppState>, username: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let user = admin::get(&state.identity, &username).await?;
    Ok(HttpResponse::Ok().json(UserJson::from(&user)))
}

/// `PATCH /users/{username}`: a field left out is left alone; `status: "disabled"`
/// ends every session and API token of the user at once.
#[utoipa::path(
    patch,
    path = "/users/{username}",
    tag = "users",
    params(("username" = String, Path, description = "The user's username")),
    request_body = UserPatch,
    responses(
        (status = 200, description = "The user as changed", body = UserJson),
        (status = 400, description = "`invalid_json` or `invalid_input`", body = ErrorBody),
        (status = 404, description = "No such user", body = ErrorBody),
        (status = 409, description = "`last_admin`: the last active administrator cannot be demoted or disabled", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: send application/json", body = ErrorBody),
    ),
)]
pub async fn update(
    state: web::Data<AppState>,
    principal: Principal,
    client: ClientInfo,
    username: web::Path<String>,
    body: web::Json<UserPatch>,
) -> Result<HttpResponse, ApiError> {
    let user = admin::update(&state.identity, &principal, &username, body.into_inner(), &client.origin()).await?;
    Ok(HttpResponse::Ok().json(UserJson::from(&user)))
}

/// `DELETE /users/{username}`: 204; the user's sessions, API tokens and provider identities go with them.
#[utoipa::path(
    delete,
    path = "/users/{username}",
    tag = "users",
    params(("username" = String, Path, description = "The user's username")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such user", body = ErrorBody),
        (status = 409, description = "`last_admin`: the last active administrator cannot be deleted", body = ErrorBody),
    ),
)]
pub async fn delete(
    state: web::Data<AppState>,
    principal: Principal,
    client: ClientInfo,
    username: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    admin::delete(&state.identity, &username, &client.origin().by(&principal.username)).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `POST /users/{username}/approve`: a pending user becomes active; the body may be left out.
#[utoipa::path(
    post,
    path = "/users/{username}/approve",
    tag = "users",
    params(("username" = String, Path, description = "The user's username")),
    request_body(content = Option<Approval>, description = "Optional: the channel and admin flag to give"),
    responses(
        (status = 200, description = "The user, now active", body = UserJson),
        (status = 400, description = "`invalid_json` or `invalid_input`", body = ErrorBody),
        (status = 404, description = "No such user", body = ErrorBody),
        (status = 409, description = "`not_pending`: the user is not waiting for approval", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: send application/json", body = ErrorBody),
    ),
)]
pub async fn approve(
    state: web::Data<AppState>,
    principal: Principal,
    client: ClientInfo,
    username: web::Path<String>,
    body: Option<web::Json<Approval>>,
) -> Result<HttpResponse, ApiError> {
    let body = body.map(web::Json::into_inner).unwrap_or_default();
    let user = admin::approve(&state.identity, &username, body, &client.origin().by(&principal.username)).await?;
    Ok(HttpResponse::Ok().json(UserJson::from(&user)))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPassword {
    /// The new password: 8 characters to 1024 bytes.
    #[schema(min_length = 8, max_length = 1024)]
    password: String,
    /// The current password: required when changing one's own.
    old_password: Option<String>,
    /// A change of one's own password keeps one's API tokens.
    #[serde(default)]
    keep_api_tokens: bool,
}

/// Sets a password: the user themself (with `old_password`), or an admin (`users:admin`, without).
#[utoipa::path(
    put,
    path = "/users/{username}/password",
    tag = "users",
    params(("username" = String, Path, description = "The user's username")),
    request_body = NewPassword,
    responses(
        (status = 204, description = "Changed; the user's other sessions (and API tokens unless kept) end"),
        (status = 400, description = "`invalid_json` or `invalid_input` (e.g. a password too short or long)", body = ErrorBody),
        (status = 401, description = "`invalid_credentials`: a wrong `old_password`", body = ErrorBody),
        (status = 403, description = "`forbidden` (another user's password without `users:admin`) or `external_user`", body = ErrorBody),
        (status = 404, description = "No such user", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: send application/json", body = ErrorBody),
        (status = 429, description = "`too_many_attempts`: wrong old passwords (`Retry-After`)", body = ErrorBody),
    ),
)]
pub async fn set_password(
    state: web::Data<AppState>,
    principal: Principal,
    client: ClientInfo,
    username: web::Path<String>,
    body: web::Json<NewPassword>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let origin = client.origin();
    users::change_password(
        &state.identity,
        &principal,
        &username,
        body.password,
        body.old_password,
        body.keep_api_tokens,
        &origin,
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `GET /users/{username}/sessions` (admin): that user's live sessions.
#[utoipa::path(
    get,
    path = "/users/{username}/sessions",
    tag = "users",
    params(("username" = String, Path, description = "The user's username")),
    responses(
        (status = 200, description = "The user's live browser sessions (`current` is always false)", body = Vec<SessionInfo>),
        (status = 404, description = "No such user", body = ErrorBody),
    ),
)]
pub async fn sessions(state: web::Data<AppState>, username: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let list = sessions::of_user(&state.identity, &username).await?;
    Ok(HttpResponse::Ok().insert_header(NO_STORE).json(list))
}

/// `POST /users/{username}/sign-out` (admin): ends every session and API token of the user.
#[utoipa::path(
    post,
    path = "/users/{username}/sign-out",
    tag = "users",
    params(("username" = String, Path, description = "The user's username")),
    responses(
        (status = 204, description = "Every session and API token of the user ended"),
        (status = 404, description = "No such user", body = ErrorBody),
    ),
)]
pub async fn sign_out(
    state: web::Data<AppState>,
    principal: Principal,
    client: ClientInfo,
    username: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    sessions::sign_out_user(&state.identity, &username, &client.origin().by(&principal.username)).await?;
    Ok(HttpResponse::NoContent().finish())
}
