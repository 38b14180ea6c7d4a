//! The route table: every endpoint, and the scope it needs, in one place.

mod admin;
mod audit;
mod device;
mod health;
mod info;
mod jwks;
mod me;
mod oidc;
mod pages;
mod tokens;
mod users;

use actix_cors::Cors;
use actix_web::http::header;
use actix_web::{guard, web, HttpRequest};

use super::error::ApiError;
use super::guard::require;
use super::pending;
use super::state::AppState;
use crate::config::Settings;
use crate::identity::Scope;

pub fn configure(cfg: &mut web::ServiceConfig, state: &AppState) {
    cfg.route("/healthz", web::get().to(health::check))
        .route("/readyz", web::get().to(health::ready))
        .route("/info", web::get().to(info::show))
        // Pages.
        .route("/", web::get().to(pages::home))
        .route("/login", web::get().to(pages::login))
        .route("/static/doorman.js", web::get().to(pages::script))
        .route("/static/doorman.css", web::get().to(pages::style))
        // The administrator's page (admins only, checked inside; plain forms with a CSRF field).
        .route("/admin", web::get().to(admin::show))
        .route("/admin/users/{username}/approve", web::post().to(admin::approve))
        .route("/admin/users/{username}/reject", web::post().to(admin::reject))
        // Command-line sign-in (RFC 8628): the page a signed-in user approves
        // a tool's code on (CSRF form field checked inside), the tool's codes,
        // and the metadata; the tool polls POST /token.
        .route("/device", web::get().to(device::page))
        .route("/device", web::post().to(device::decide))
        .route("/oauth/device_authorization", web::post().to(device::authorize))
        .route("/.well-known/oauth-authorization-server", web::get().to(device::metadata))
        // Single sign-on; the pending sign-in lives in a session cookie on /oidc.
        .service(
            web::scope(pending::PATH)
                .wrap(pending::middleware(&state.settings, &state.keys.cookie))
                .route("/authenticate", web::get().to(oidc::authenticate))
                .route("/callback", web::get().to(oidc::callback))
                .route("/backchannel-logout", web::post().to(oidc::backchannel_logout)),
        )
        // Browser sessions (the session cookie; CSRF checked inside).
        .route("/me/login", web::post().to(me::login))
        .route("/me/refresh", web::post().to(me::refresh))
        .route("/me/logout", web::post().to(me::logout))
        // API: cookie or bearer, with the scope each needs.
        .service(web::resource("/me").wrap(require(Scope::Account)).get(me::show))
        .service(web::resource("/me/sessions").wrap(require(Scope::Account)).get(me::sessions))
        .service(web::resource("/me/sessions/{id}").wrap(require(Scope::Account)).delete(me::end_session))
        .service(web::resource("/users").guard(guard::Get()).wrap(require(Scope::UsersRead)).get(users::list))
        .service(web::resource("/users").guard(guard::Post()).wrap(require(Scope::UsersAdmin)).post(users::create))
        .service(web::resource("/users/{username}").guard(guard::Get()).wrap(require(Scope::UsersRead)).get(users::show))
        .service(
            web::resource("/users/{username}")
                .wrap(require(Scope::UsersAdmin))
                .route(web::patch().to(users::update))
                .route(web::delete().to(users::delete)),
        )
        .service(web::resource("/users/{username}/approve").wrap(require(Scope::UsersAdmin)).post(users::approve))
        .service(
            // The user themself (account) or an admin (users:admin, checked inside).
            web::resource("/users/{username}/password").wrap(require(Scope::Account)).put(users::set_password),
        )
        .service(web::resource("/users/{username}/sessions").wrap(require(Scope::UsersAdmin)).get(users::sessions))
        .service(web::resource("/users/{username}/sign-out").wrap(require(Scope::UsersAdmin)).post(users::sign_out))
        .service(web::resource("/audit-events").wrap(require(Scope::UsersAdmin)).get(audit::list))
        // Bearer tokens for SDKs: minted from a browser session only (checked inside).
        .service(web::resource("/api-token-tap").wrap(require(Scope::Tokens)).get(tokens::tap_get).post(tokens::tap_post))
        // Own tokens; everyone's with users:admin (checked inside).
        .service(web::resource("/api-tokens").wrap(require(Scope::Tokens)).get(tokens::list))
        .service(web::resource("/api-tokens/{id}").wrap(require(Scope::Tokens)).delete(tokens::revoke))
        // Service JWTs: bearer or cookie with `tokens` (checked inside), or client credentials (HTTP Basic);
        // and a command-line tool's API token (device-code grant, RFC 8628).
        .route("/token", web::post().to(tokens::service_token))
        .route("/.well-known/jwks.json", web::get().to(jwks::show))
        .default_service(web::to(not_found));
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
