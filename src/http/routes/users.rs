//! `/users`: user administration and password changes.

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::NO_STORE;
use crate::http::client::ClientInfo;
use crate::http::error::ApiError;
use crate::http::state::AppState;
use crate::identity::admin::{self, Approval, ListQuery, NewUser, UserPatch};
use crate::identity::principal::UserJson;
use crate::identity::{sessions, users, Principal};

/// `GET /users?status=&q=&limit=&after=`: a JSON array of users; when more
/// may follow, a `Link: <...>; rel="next"` header gives the next page.
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
pub async fn show(state: web::Data<AppState>, username: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let user = admin::get(&state.identity, &username).await?;
    Ok(HttpResponse::Ok().json(UserJson::from(&user)))
}

/// `PATCH /users/{username}`.
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

/// `DELETE /users/{username}`: 204.
pub async fn delete(
    state: web::Data<AppState>,
    principal: Principal,
    client: ClientInfo,
    username: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    admin::delete(&state.identity, &username, &client.origin().by(&principal.username)).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `POST /users/{username}/approve`: the body may be left out.
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewPassword {
    password: String,
    old_password: Option<String>,
    /// A change of one's own password keeps one's API tokens.
    #[serde(default)]
    keep_api_tokens: bool,
}

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
