//! `GET /admin`: the administrator's page listing users who wait for
//! approval, with Approve and Reject buttons. Plain HTML forms, no script:
//! each form carries the `csrftoken` cookie's value, which the POST must
//! echo (double submit), so the page needs no script at all.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use crate::crypto::constant_time_eq;
use crate::http::client::ClientInfo;
use crate::http::cookies::{ACCESS, CSRF};
use crate::http::error::{internal, ApiError, ErrorBody};
use crate::http::state::AppState;
use crate::identity::admin::{self, Approval, ListQuery};
use crate::identity::principal::UserJson;
use crate::identity::{IdentityError, Principal, Scope};

/// The admin behind the access cookie (never a bearer token: the page is for browsers).
async fn admin_caller(state: &AppState, req: &HttpRequest) -> Result<Principal, IdentityError> {
    let cookie = req.cookie(ACCESS).ok_or(IdentityError::NotAuthenticated)?;
    let principal = state.identity.sessions.authenticate(cookie.value()).await?;
    if !principal.scopes.contains(Scope::UsersAdmin) {
        return Err(IdentityError::InsufficientScope(Scope::UsersAdmin));
    }
    Ok(principal)
}

/// The page with the pages' headers (its style sheet is a file; no inline code).
fn page(status: actix_web::http::StatusCode, body: String) -> HttpResponse {
    super::pages::html_with_status(status, body)
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// The notice after an action: `approved:NAME` or `rejected:NAME`.
    done: Option<String>,
}

/// `GET /admin`: pending users; signed-out browsers go to `/login`.
#[utoipa::path(
    get,
    path = "/admin",
    tag = "admin page",
    params(PageQuery),
    security((), ("cookie" = ["users:admin"])),
    extensions(("x-scope" = json!("users:admin"))),
    responses(
        (status = 200, description = "The users waiting for approval, with Approve and Reject forms", content_type = "text/html", body = String),
        (status = 302, description = "Not signed in: to `/login?next=/admin`", headers(("Location" = String))),
        (status = 400, description = "`invalid_query`", body = ErrorBody),
        (status = 403, description = "Signed in, not an administrator", content_type = "text/html", body = String),
        (status = 503, description = "`database_unavailable`", body = ErrorBody),
    ),
)]
pub async fn show(state: web::Data<AppState>, req: HttpRequest, query: web::Query<PageQuery>) -> Result<HttpResponse, ApiError> {
    let done = query.into_inner().done.as_deref().and_then(notice);
    let principal = match admin_caller(&state, &req).await {
        Ok(p) => p,
        Err(IdentityError::InsufficientScope(_)) => {
            let body = state
                .templates
                .render(
                    "error.html",
                    minijinja::context! { code => "forbidden", title => "Administrators only",
                    message => "This page is for administrators." },
                )
                .map_err(|e| internal(&e))?;
            return Ok(page(actix_web::http::StatusCode::FORBIDDEN, body));
        }
        Err(_) => return Ok(HttpResponse::Found().insert_header((header::LOCATION, "/login?next=/admin")).finish()),
    };
    let list = ListQuery { status: Some("pending".into()), limit: Some(admin::MAX_LIMIT), ..ListQuery::default() };
    let pending = admin::list(&state.identity, list).await?;
    let users: Vec<UserJson> = pending.users.iter().map(UserJson::from).collect();
    let csrf = req.cookie(CSRF).map(|c| c.value().to_string()).unwrap_or_default();
    let body = state
        .templates
        .render("admin.html", minijinja::context! { users => users, csrf => csrf, admin => principal.username, done => done })
        .map_err(|e| internal(&e))?;
    Ok(page(actix_web::http::StatusCode::OK, body))
}

/// The notice after an action (`done=approved:NAME` or `done=rejected:NAME`).
fn notice(done: &str) -> Option<String> {
    let (what, name) = done.split_once(':')?;
    let name: String = name.chars().filter(|c| c.is_ascii_alphanumeric() || ".@+-_".contains(*c)).take(150).collect();
    match what {
        "approved" => Some(format!("{name} was approved.")),
        "rejected" => Some(format!("{name} was rejected.")),
        _ => None,
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct ActionForm {
    /// The `csrftoken` cookie's value (double submit).
    csrf: String,
}

/// Refuses a form whose `csrf` field does not match the `csrftoken` cookie.
fn check_form_csrf(req: &HttpRequest, form: &ActionForm) -> Result<(), IdentityError> {
    let cookie = req.cookie(CSRF).ok_or(IdentityError::CsrfFailed)?;
    if cookie.value().is_empty() || !constant_time_eq(cookie.value(), &form.csrf) {
        return Err(IdentityError::CsrfFailed);
    }
    Ok(())
}

fn back(done: &str, name: &str) -> HttpResponse {
    let query: String =
        url::form_urlencoded::Serializer::new(String::new()).append_pair("done", &format!("{done}:{name}")).finish();
    HttpResponse::SeeOther().insert_header((header::LOCATION, format!("/admin?{query}"))).finish()
}

/// `POST /admin/users/{username}/approve` (form): approves, back to `/admin`.
#[utoipa::path(
    post,
    path = "/admin/users/{username}/approve",
    tag = "admin page",
    params(("username" = String, Path, description = "The pending user")),
    request_body(content = ActionForm, content_type = "application/x-www-form-urlencoded"),
    security(("cookie" = ["users:admin"])),
    extensions(("x-scope" = json!("users:admin"))),
    responses(
        (status = 303, description = "Approved: back to `/admin`", headers(("Location" = String))),
        (status = 400, description = "`invalid_form`", body = ErrorBody),
        (status = 401, description = "Not signed in (`not_authenticated`, `access_expired`, `invalid_session`)", body = ErrorBody),
        (status = 403, description = "`insufficient_scope` (not an administrator) or `csrf_failed`", body = ErrorBody),
        (status = 404, description = "No such user", body = ErrorBody),
        (status = 409, description = "`not_pending`", body = ErrorBody),
        (status = 503, description = "`database_unavailable`", body = ErrorBody),
    ),
)]
pub async fn approve(
    state: web::Data<AppState>,
    req: HttpRequest,
    client: ClientInfo,
    username: web::Path<String>,
    form: web::Form<ActionForm>,
) -> Result<HttpResponse, ApiError> {
    let caller = admin_caller(&state, &req).await?;
    check_form_csrf(&req, &form)?;
    admin::approve(&state.identity, &username, Approval::default(), &client.origin().by(&caller.username)).await?;
    Ok(back("approved", &username))
}

/// `POST /admin/users/{username}/reject` (form): deletes the pending user, back to `/admin`.
#[utoipa::path(
    post,
    path = "/admin/users/{username}/reject",
    tag = "admin page",
    params(("username" = String, Path, description = "The pending user")),
    request_body(content = ActionForm, content_type = "application/x-www-form-urlencoded"),
    security(("cookie" = ["users:admin"])),
    extensions(("x-scope" = json!("users:admin"))),
    responses(
        (status = 303, description = "Rejected (deleted): back to `/admin`", headers(("Location" = String))),
        (status = 400, description = "`invalid_form`", body = ErrorBody),
        (status = 401, description = "Not signed in (`not_authenticated`, `access_expired`, `invalid_session`)", body = ErrorBody),
        (status = 403, description = "`insufficient_scope` (not an administrator) or `csrf_failed`", body = ErrorBody),
        (status = 404, description = "No such user", body = ErrorBody),
        (status = 409, description = "`not_pending`", body = ErrorBody),
        (status = 503, description = "`database_unavailable`", body = ErrorBody),
    ),
)]
pub async fn reject(
    state: web::Data<AppState>,
    req: HttpRequest,
    client: ClientInfo,
    username: web::Path<String>,
    form: web::Form<ActionForm>,
) -> Result<HttpResponse, ApiError> {
    let caller = admin_caller(&state, &req).await?;
    check_form_csrf(&req, &form)?;
    let user = admin::get(&state.identity, &username).await?;
    if user.user.status != crate::db::users::status::PENDING {
        return Err(IdentityError::NotPending.into());
    }
    admin::delete(&state.identity, &username, &client.origin().by(&caller.username)).await?;
    Ok(back("rejected", &username))
}
