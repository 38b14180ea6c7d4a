//! The server-rendered pages: `/login` and the signed-in page at `/`.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::info::auth_methods;
use crate::http::error::{internal, ApiError};
use crate::http::extract;
use crate::http::next_path::NextTarget;
use crate::http::state::AppState;
use crate::identity::sessions::SessionInfo;

#[derive(Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

/// The sign-in page's policy: its small script is inline.
const INLINE_SCRIPT_CSP: &str =
    "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; frame-ancestors 'none'";
/// The signed-in page's policy: its script is a file from this origin, no inline script.
const FILE_SCRIPT_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'unsafe-inline'; frame-ancestors 'none'";

fn html(body: String, csp: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header(super::NO_STORE)
        .insert_header(("X-Frame-Options", "DENY"))
        .insert_header(("Content-Security-Policy", csp))
        .body(body)
}

/// The signed-in page's script.
const SIGNED_IN_JS: &str = include_str!("../../../templates/signed_in.js");

/// `GET /assets/signed_in.js`.
pub async fn signed_in_js() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .body(SIGNED_IN_JS)
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
    Ok(html(page, INLINE_SCRIPT_CSP))
}

/// The signed-in page, or a redirect to `/login`.
pub async fn home(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let Ok(who) = extract::authenticate(&req, &state).await else {
        return Ok(HttpResponse::Found().insert_header((header::LOCATION, "/login")).finish());
    };
    let sessions: Vec<SessionView> =
        state.identity.sessions.list(&who.user_id, who.session_id()).await?.into_iter().map(SessionView::from).collect();
    let page = state
        .templates
        .render(
            "signed_in.html",
            minijinja::context! {
                username => who.username, email => who.email, is_external => who.is_external, sessions => sessions,
            },
        )
        .map_err(|e| internal(&e))?;
    Ok(html(page, FILE_SCRIPT_CSP))
}

/// A session as the signed-in page shows it: times in words a person reads.
#[derive(serde::Serialize)]
struct SessionView {
    id: String,
    user_agent: Option<String>,
    ip: Option<String>,
    method: String,
    created_at: String,
    last_seen_at: String,
    current: bool,
}

impl From<SessionInfo> for SessionView {
    fn from(s: SessionInfo) -> Self {
        let when = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%d %H:%M UTC").to_string();
        Self {
            created_at: when(s.created_at),
            last_seen_at: when(s.last_seen_at),
            id: s.id,
            user_agent: s.user_agent,
            ip: s.ip,
            method: s.method,
            current: s.current,
        }
    }
}
