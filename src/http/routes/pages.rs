//! The server-rendered pages: `/login` and the signed-in page at `/`.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::info::auth_methods;
use crate::http::error::{internal, ApiError};
use crate::http::next_path::NextTarget;
use crate::http::state::AppState;
use crate::http::{cookies, extract};
use crate::identity::IdentityError;

#[derive(Deserialize)]
pub struct LoginQuery {
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

/// The signed-in page, or a redirect to `/login`. An access cookie that
/// merely ran out is renewed from the session cookie, as the page's script would.
pub async fn home(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let to_login = || HttpResponse::Found().insert_header((header::LOCATION, "/login")).finish();
    let (who, renewed) = match extract::authenticate(&req, &state).await {
        Ok(who) => (who, None),
        Err(IdentityError::AccessExpired) => {
            let Some(session) = req.cookie(cookies::SESSION) else { return Ok(to_login()) };
            let Ok(access) = state.identity.sessions.refresh(session.value(), state.sso.as_ref()).await else {
                return Ok(to_login());
            };
            let Ok(who) = state.identity.sessions.authenticate(&access).await else { return Ok(to_login()) };
            (who, Some(cookies::access(&state.settings, access)))
        }
        Err(_) => return Ok(to_login()),
    };
    let page = state
        .templates
        .render(
            "signed_in.html",
            minijinja::context! { username => who.username, email => who.email, is_external => who.is_external },
        )
        .map_err(|e| internal(&e))?;
    let mut response = html(page);
    if let Some(cookie) = renewed {
        response.add_cookie(&cookie).map_err(|e| internal(&e))?;
    }
    Ok(response)
}
