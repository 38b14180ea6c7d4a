//! The route table: every endpoint, and the scope it needs, in one place.

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
use actix_web::http::{header, Method};
use actix_web::{web, HttpRequest, HttpResponse, Route};

use super::error::ApiError;
use super::guard::require;
use super::pending;
use super::state::AppState;
use crate::config::Settings;
use crate::identity::Scope;

/// One endpoint: its method and path, the scope the guard checks before the
/// handler runs, and the handler. `/openapi.json` describes exactly these
/// (a test holds the two together); each handler carries its `#[utoipa::path]`.
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
const DELETE: Method = Method::DELETE;

/// The route table: every endpoint and the scope it needs, in one place.
/// Paths under `/oidc` keep the pending sign-in in a session cookie there.
pub static ENDPOINTS: &[Endpoint] = &[
    Endpoint::open(GET, "/healthz", |r| r.to(health::check)),
    Endpoint::open(GET, "/info", |r| r.to(info::show)),
    Endpoint::open(GET, "/openapi.json", |r| r.to(openapi::show)),
    // Pages.
    Endpoint::open(GET, "/", |r| r.to(pages::home)),
    Endpoint::open(GET, "/login", |r| r.to(pages::login)),
    // Single sign-on.
    Endpoint::open(GET, "/oidc/authenticate", |r| r.to(oidc::authenticate)),
    Endpoint::open(GET, "/oidc/callback", |r| r.to(oidc::callback)),
    Endpoint::open(POST, "/oidc/backchannel-logout", |r| r.to(oidc::backchannel_logout)),
    // Browser sessions (the session cookie; CSRF checked inside).
    Endpoint::open(POST, "/me/login", |r| r.to(me::login)),
    Endpoint::open(POST, "/me/refresh", |r| r.to(me::refresh)),
    Endpoint::open(POST, "/me/logout", |r| r.to(me::logout)),
    // API: cookie or bearer, with the scope each needs.
    Endpoint::scoped(GET, "/me", Scope::Account, |r| r.to(me::show)),
    Endpoint::scoped(GET, "/users", Scope::UsersRead, |r| r.to(users::list)),
    // The user themself (account) or an admin (users:admin, checked inside).
    Endpoint::scoped(PUT, "/users/{username}/password", Scope::Account, |r| r.to(users::set_password)),
    // Bearer tokens for SDKs: minted from a browser session only (checked inside).
    Endpoint::scoped(GET, "/api-token-tap", Scope::Tokens, |r| r.to(tokens::tap_get)),
    Endpoint::scoped(POST, "/api-token-tap", Scope::Tokens, |r| r.to(tokens::tap_post)),
    // Own tokens; everyone's with users:admin (checked inside).
    Endpoint::scoped(GET, "/api-tokens", Scope::Tokens, |r| r.to(tokens::list)),
    Endpoint::scoped(DELETE, "/api-tokens/{id}", Scope::Tokens, |r| r.to(tokens::revoke)),
    // Service JWTs: bearer or cookie with `tokens` (checked inside), or client credentials (HTTP Basic).
    Endpoint::open(POST, "/token", |r| r.to(tokens::service_token)),
    Endpoint::open(GET, "/.well-known/jwks.json", |r| r.to(jwks::show)),
];

/// Registers [`ENDPOINTS`]: one resource per path, each route behind the
/// guard of its scope; a known path with another method gets 405.
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

/// A known path called with a method it does not take.
async fn method_not_allowed(req: HttpRequest) -> HttpResponse {
    let pattern = req.match_pattern();
    let allowed: Vec<&str> = ENDPOINTS.iter().filter(|e| Some(e.path) == pattern.as_deref()).map(|e| e.method.as_str()).collect();
    let mut response = ApiError::new(
        actix_web::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} is not allowed here; allowed: {}", req.method(), allowed.join(", ")),
    )
    .into_response();
    if let Ok(value) = header::HeaderValue::from_str(&allowed.join(", ")) {
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
        .allowed_methods(["GET", "POST", "PUT", "DELETE"])
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
