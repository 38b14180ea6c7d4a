//! The server-rendered pages: `/login` and the signed-in page at `/`
//! (the device approval page is in device.rs).

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::info::auth_methods;
use crate::http::error::{internal, ApiError, ErrorBody};
use crate::http::hardening;
use crate::http::next_path::NextTarget;
use crate::http::state::AppState;
use crate::http::{cookies, extract};
use crate::identity::sessions::SessionInfo;
use crate::identity::IdentityError;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LoginQuery {
    /// Where to go after signing in: a path on this site or a URL on a front-end origin; anything else is dropped.
    next: Option<String>,
}

fn html(body: String) -> HttpResponse {
    html_with_status(StatusCode::OK, body)
}

/// A page with `status`, never cached nor framed, with the pages' strict headers.
pub(super) fn html_with_status(status: StatusCode, body: String) -> HttpResponse {
    let mut response =
        HttpResponse::build(status).content_type("text/html; charset=utf-8").insert_header(super::NO_STORE).body(body);
    hardening::page_headers(&mut response);
    response
}

/// The pages' script, a file so that no page needs inline code.
#[utoipa::path(
    get,
    path = "/static/doorman.js",
    tag = "pages",
    responses((status = 200, description = "The pages' script", content_type = "text/javascript", body = String)),
)]
pub async fn script() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .body(include_str!("../../../static/doorman.js"))
}

/// The pages' style sheet.
#[utoipa::path(
    get,
    path = "/static/doorman.css",
    tag = "pages",
    responses((status = 200, description = "The pages' style sheet", content_type = "text/css", body = String)),
)]
pub async fn style() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .body(include_str!("../../../static/doorman.css"))
}

/// The sign-in page: the password form (when password login is on) and one button per provider.
#[utoipa::path(
    get,
    path = "/login",
    tag = "pages",
    params(LoginQuery),
    responses(
        (status = 200, description = "The sign-in page", content_type = "text/html", body = String),
        (status = 400, description = "`invalid_query`: a malformed query string", body = ErrorBody),
    ),
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

/// The signed-in page, or a redirect to `/login`. An access cookie that
/// merely ran out is renewed from the session cookie, as the page's script would.
#[utoipa::path(
    get,
    path = "/",
    tag = "pages",
    security((), ("cookie" = [])),
    responses(
        (status = 200, description = "The signed-in page: account, linked providers, sessions", content_type = "text/html", body = String),
        (status = 302, description = "Not signed in: to `/login`", headers(("Location" = String))),
        (status = 503, description = "`database_unavailable`", body = ErrorBody),
    ),
)]
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
    let id = who.user_id.clone();
    let view = state.db.run(move |conn| crate::db::users::view_by_id(conn, &id)).await?;
    let providers: Vec<(String, String)> = view
        .map(|v| v.providers)
        .unwrap_or_default()
        .into_iter()
        .map(|id| {
            let name = state.settings.providers.iter().find(|p| p.id == id).map_or_else(|| id.clone(), |p| p.name.clone());
            (id, name)
        })
        .collect();
    let linkable: Vec<(String, String)> = state
        .settings
        .providers
        .iter()
        .filter(|p| !providers.iter().any(|(id, _)| *id == p.id))
        .map(|p| (p.id.clone(), p.name.clone()))
        .collect();
    let sessions: Vec<SessionView> =
        state.identity.sessions.list(&who.user_id, who.session_id()).await?.into_iter().map(SessionView::from).collect();
    let page = state
        .templates
        .render(
            "signed_in.html",
            minijinja::context! {
                username => who.username, email => who.email, is_external => who.is_external,
                is_admin => who.is_admin, providers => providers, linkable => linkable, sessions => sessions,
            },
        )
        .map_err(|e| internal(&e))?;
    let mut response = html(page);
    if let Some(cookie) = renewed {
        response.add_cookie(&cookie).map_err(|e| internal(&e))?;
    }
    Ok(response)
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
