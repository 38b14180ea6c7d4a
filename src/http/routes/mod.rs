//! The route table ([`ENDPOINTS`]): every endpoint, and the scope it needs, in one place.

mod admin;
mod audit;
mod device;
mod health;
mod info;
mod jwks;
mod me;
mod oidc;
pub mod openapi;
mod pages;
mod tokens;
mod users;

use actix_cors::Cors;
use actix_web::http::{header, Method, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse, Route};

use super::error::ApiError;
use super::guard::require;
use super::pending;
use super::state::AppState;
use crate::config::Settings;
use crate::identity::Scope;

/// One endpoint: method and path (actix's `{name}` pattern, also the
/// OpenAPI path), the scope the guard checks before the handler runs, and
/// the handler. `/openapi.json` describes exactly these: a unit test holds
/// the description to this list and an integration test holds the list to
/// what the server answers.
pub struct Endpoint {
    pub method: Method,
    pub path: &'static str,
    /// `None`: anyone may call it, or the handler checks who calls (said beside it).
    pub scope: Option<Scope>,
    handler: fn(Route) -> Route,
}

impl Endpoint {
    const fn open(method: Method, path: &'static str, handler: fn(Route) -> Route) -> Self {
        Self { method, path, scope: None, handler }
    }
    const fn scoped(method: Method, path: &'static str, scope: Scope, handler: fn(Route) -> Route) -> Self {
        Self { method, path, scope: Some(scope), handler }
    }
}

const GET: Method = Method::GET;
const POST: Method = Method::POST;
const PUT: Method = Method::PUT;
const PATCH: Method = Method::PATCH;
const DELETE: Method = Method::DELETE;

/// The route table: every endpoint and the scope it needs, in one place.
/// Paths under `/oidc` keep the pending sign-in in a session cookie there.
pub static ENDPOINTS: &[Endpoint] = &[
    Endpoint::open(GET, "/healthz", |r| r.to(health::check)),
    Endpoint::open(GET, "/readyz", |r| r.to(health::ready)),
    Endpoint::open(GET, "/info", |r| r.to(info::show)),
    Endpoint::open(GET, "/openapi.json", |r| r.to(openapi::show)),
    // Pages.
    Endpoint::open(GET, "/", |r| r.to(pages::home)),
    Endpoint::open(GET, "/login", |r| r.to(pages::login)),
    Endpoint::open(GET, "/static/doorman.js", |r| r.to(pages::script)),
    Endpoint::open(GET, "/static/doorman.css", |r| r.to(pages::style)),
    // The administrator's page (admins only, checked inside; plain forms with a CSRF field).
    Endpoint::open(GET, "/admin", |r| r.to(admin::show)),
    Endpoint::open(POST, "/admin/users/{username}/approve", |r| r.to(admin::approve)),
    Endpoint::open(POST, "/admin/users/{username}/reject", |r| r.to(admin::reject)),
    // Command-line sign-in (RFC 8628): the page a signed-in user approves
    // a tool's code on (CSRF form field checked inside), the tool's codes,
    // and the metadata; the tool polls POST /token.
    Endpoint::open(GET, "/device", |r| r.to(device::page)),
    Endpoint::open(POST, "/device", |r| r.to(device::decide)),
    Endpoint::open(POST, "/oauth/device_authorization", |r| r.to(device::authorize)),
    Endpoint::open(GET, "/.well-known/oauth-authorization-server", |r| r.to(device::metadata)),
    // Single sign-on; the pending sign-in lives in a session cookie on /oidc.
    Endpoint::open(GET, "/oidc/authenticate", |r| r.to(oidc::authenticate)),
    Endpoint::open(GET, "/oidc/callback", |r| r.to(oidc::callback)),
    Endpoint::open(POST, "/oidc/backchannel-logout", |r| r.to(oidc::backchannel_logout)),
    // Browser sessions (the session cookie; CSRF checked inside).
    Endpoint::open(POST, "/me/login", |r| r.to(me::login)),
    Endpoint::open(POST, "/me/refresh", |r| r.to(me::refresh)),
    Endpoint::open(POST, "/me/logout", |r| r.to(me::logout)),
    // API: cookie or bearer, with the scope each needs.
    Endpoint::scoped(GET, "/me", Scope::Account, |r| r.to(me::show)),
    Endpoint::scoped(GET, "/me/sessions", Scope::Account, |r| r.to(me::sessions)),
    Endpoint::scoped(DELETE, "/me/sessions/{id}", Scope::Account, |r| r.to(me::end_session)),
    Endpoint::scoped(GET, "/users", Scope::UsersRead, |r| r.to(users::list)),
    Endpoint::scoped(POST, "/users", Scope::UsersAdmin, |r| r.to(users::create)),
    Endpoint::scoped(GET, "/users/{username}", Scope::UsersRead, |r| r.to(users::show)),
    Endpoint::scoped(PATCH, "/users/{username}", Scope::UsersAdmin, |r| r.to(users::update)),
    Endpoint::scoped(DELETE, "/users/{username}", Scope::UsersAdmin, |r| r.to(users::delete)),
    Endpoint::scoped(POST, "/users/{username}/approve", Scope::UsersAdmin, |r| r.to(users::approve)),
    // The user themself (account) or an admin (users:admin, checked inside).
    Endpoint::scoped(PUT, "/users/{username}/password", Scope::Account, |r| r.to(users::set_password)),
    Endpoint::scoped(GET, "/users/{username}/sessions", Scope::UsersAdmin, |r| r.to(users::sessions)),
    Endpoint::scoped(POST, "/users/{username}/sign-out", Scope::UsersAdmin, |r| r.to(users::sign_out)),
    Endpoint::scoped(GET, "/audit-events", Scope::UsersAdmin, |r| r.to(audit::list)),
    // Bearer tokens for SDKs: minted from a browser session only (checked inside).
    Endpoint::scoped(GET, "/api-token-tap", Scope::Tokens, |r| r.to(tokens::tap_get)),
    Endpoint::scoped(POST, "/api-token-tap", Scope::Tokens, |r| r.to(tokens::tap_post)),
    // Own tokens; everyone's with users:admin (checked inside).
    Endpoint::scoped(GET, "/api-tokens", Scope::Tokens, |r| r.to(tokens::list)),
    Endpoint::scoped(DELETE, "/api-tokens/{id}", Scope::Tokens, |r| r.to(tokens::revoke)),
    // Service JWTs: bearer or cookie with `tokens` (checked inside), or client credentials (HTTP Basic);
    // and a command-line tool's API token (device-code grant, RFC 8628).
    Endpoint::open(POST, "/token", |r| r.to(tokens::service_token)),
    Endpoint::open(GET, "/.well-known/jwks.json", |r| r.to(jwks::show)),
];

/// Registers [`ENDPOINTS`]: one resource per path, each route behind the
/// guard of its scope; a known path called with another method gets 405.
pub fn configure(cfg: &mut web::ServiceConfig, state: &AppState) {
    let mut oidc = web::scope(pending::PATH).wrap(pending::middleware(&state.settings, &state.keys.cookie));
    let mut paths: Vec<&'static str> = Vec::new();
    for endpoint in ENDPOINTS {
        if !paths.contains(&endpoint.path) {
            paths.push(endpoint.path);
        }
    }
    for path in paths {
        let (under_oidc, relative) = match path.strip_prefix(pending::PATH) {
            Some(rest) if rest.starts_with('/') => (true, rest),
            _ => (false, path),
        };
        let mut resource = web::resource(relative).default_service(web::to(method_not_allowed));
        for endpoint in ENDPOINTS.iter().filter(|e| e.path == path) {
            let route = (endpoint.handler)(web::method(endpoint.method.clone()));
            resource = resource.route(match endpoint.scope {
                Some(scope) => route.wrap(require(scope)),
                None => route,
            });
        }
        if under_oidc {
            oidc = oidc.service(resource);
        } else {
            cfg.service(resource);
        }
    }
    cfg.service(oidc).default_service(web::to(not_found));
}

/// The methods [`ENDPOINTS`] routes on `path` (an actix pattern).
pub fn methods_of(path: &str) -> Vec<&'static str> {
    ENDPOINTS.iter().filter(|e| e.path == path).map(|e| e.method.as_str()).collect()
}

/// A known path called with a method it does not take: 405 with `Allow`.
async fn method_not_allowed(req: HttpRequest) -> HttpResponse {
    let allowed = req.match_pattern().map(|p| methods_of(&p)).unwrap_or_default().join(", ");
    let mut response = ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} is not allowed on {}; allowed: {allowed}", req.method(), req.path()),
    )
    .into_response();
    if let Ok(value) = header::HeaderValue::from_str(&allowed) {
        response.headers_mut().insert(header::ALLOW, value);
    }
    response
}

async fn not_found(req: HttpRequest) -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::not_found(format!("no such endpoint: {} {}", req.method(), req.path())))
}

/// CORS with credentials for `server.frontend_origins`; other origins get no
/// CORS headers (the browser then refuses), not an error.
pub fn cors(settings: &Settings) -> Cors {
    let mut cors = Cors::default()
        .allowed_methods(["GET", "POST", "PUT", "PATCH", "DELETE"])
        .allowed_headers([header::CONTENT_TYPE, header::AUTHORIZATION, header::HeaderName::from_static("x-csrftoken")])
        .supports_credentials()
        .block_on_origin_mismatch(false)
        .max_age(3600);
    for origin in &settings.server.frontend_origins {
        cors = cors.allowed_origin(&origin.ascii_serialization());
    }
    cors
}

/// `Cache-Control: no-store` for responses carrying credentials.
pub(crate) const NO_STORE: (header::HeaderName, &str) = (header::CACHE_CONTROL, "no-store");
