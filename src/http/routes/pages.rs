//! The server-rendered pages: `/login` and the signed-in page at `/`.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::info::auth_methods;
use crate::http::error::{internal, ApiError, ErrorBody};
use crate::http::extract;
use crate::http::next_path::NextTarget;
use crate::http::state::AppState;

/// The query of `GET /login`.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LoginQuery {
    /// Where to go after signing in; ignored unless allowed (as for `/oidc/authenticate`).
    next: Option<String>,
}

fn html(body: String) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header(super::NO_STORE)
        .insert_header(("X-Frame-Options", "DENY"))
        .insert_header((
            "Content-Security-Policy",
            "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; frame-ancestors 'none'",
        ))
        .body(body)
}

/// The sign-in page.
#[utoipa::path(
    get,
    path = "/login",
    tag = "pages",
    params(LoginQuery),
    responses(
        (status = 200, description = "The page", content_type = "text/html", body = String),
        (status = 400, description = "`invalid_query`", body = ErrorBody),
    )
)]
pub async fn login(state: web::Data<AppState>, query: web::Query<LoginQuery>) -> Result<HttpResponse, ApiError> {
    let next = query
        .next
        .as_deref()
        .and_then(|n| NextTarget::parse(n, &state.settings).ok())
        .map(|n| n.into_string())
        .unwrap_or_else(|| "/".to_string());
    let mut methods = auth_methods(&state);
    if next != "/" {
        // The SSO buttons carry `next` too.
        let encoded: String = url::form_urlencoded::byte_serialize(next.as_bytes()).collect();
        for provider in &mut methods.oidc {
            provider.login_url.push_str(&format!("&next={encoded}"));
        }
    }
    let page = state
        .templates
        .render("login.html", minijinja::context! { password => methods.password, providers => methods.oidc, next => next })
        .map_err(|e| internal(&e))?;
    Ok(html(page))
}

/// The signed-in page, or a redirect to `/login`.
#[utoipa::path(
    get,
    path = "/",
    tag = "pages",
    responses(
        (status = 200, description = "The signed-in page", content_type = "text/html", body = String),
        (status = 302, description = "Not signed in: to `/login`"),
    )
)]
pub async fn home(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let Ok(who) = extract::authenticate(&req, &state).await else {
        return Ok(HttpResponse::Found().insert_header((header::LOCATION, "/login")).finish());
    };
    let page = state
        .templates
        .render(
            "signed_in.html",
            minijinja::context! { username => who.username, email => who.email, is_external => who.is_external },
        )
        .map_err(|e| internal(&e))?;
    Ok(html(page))
}
