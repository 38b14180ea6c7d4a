//! `/oidc/authenticate` and `/oidc/callback`: the browser's side of single
//! sign-on; and the provider's back-channel logout.

use actix_session::Session;
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::NO_STORE;
use crate::http::client::ClientInfo;
use crate::http::cookies;
use crate::http::error::ApiError;
use crate::http::next_path::NextTarget;
use crate::http::pending;
use crate::http::state::AppState;
use crate::identity::{IdentityError, Via};
use crate::sso::flow::{self, CallbackQuery};
use crate::sso::OidcError;

#[derive(Deserialize)]
pub struct AuthenticateQuery {
    provider: Option<String>,
    next: Option<String>,
    /// Link the provider's identity to the signed-in browser's user.
    #[serde(default)]
    link: bool,
}

/// The user linking a provider: the caller of a signed-in browser session.
async fn linking_user(state: &AppState, req: &HttpRequest) -> Result<String, OidcError> {
    if req.headers().contains_key(header::AUTHORIZATION) {
        return Err(IdentityError::BrowserSessionRequired.into());
    }
    let principal = crate::http::extract::authenticate(req, state).await?;
    match principal.via {
        Via::Cookie { .. } => Ok(principal.user_id),
        Via::Bearer { .. } => Err(IdentityError::BrowserSessionRequired.into()),
    }
}

pub async fn authenticate(
    state: web::Data<AppState>,
    req: HttpRequest,
    session: Session,
    query: web::Query<AuthenticateQuery>,
) -> HttpResponse {
    let link_user = if query.link {
        match linking_user(&state, &req).await {
            Ok(user) => Some(user),
            Err(err) => return error_page(&state, &req, err),
        }
    } else {
        None
    };
    let begun = NextTarget::parse_or_root(query.next.as_deref(), &state.settings)
        .map_err(OidcError::InvalidNext)
        .and_then(|next| flow::begin(&state.sso, query.provider.as_deref(), next, link_user));
    match begun {
        Ok(redirect) => match pending::keep(&session, &redirect.pending) {
            Ok(()) => HttpResponse::Found().insert_header((header::LOCATION, redirect.url)).insert_header(NO_STORE).finish(),
            Err(err) => crate::http::error::internal(&err).into_response(),
        },
        Err(err) => error_page(&state, &req, err),
    }
}

pub async fn callback(state: web::Data<AppState>, req: HttpRequest, session: Session) -> HttpResponse {
    // Parsed by hand so that even a malformed query ends on the error page.
    let query = web::Query::<CallbackQuery>::from_query(req.query_string()).map(|q| q.into_inner()).unwrap_or_default();
    let started = std::time::Instant::now();
    let pending = pending::peek(&session);
    let client = ClientInfo::of(&req, &state.settings.server.trusted_proxies).origin();
    match flow::finish(&state.sso, pending, query, &client).await {
        Ok(done) => {
            pending::clear(&session);
            let total = started.elapsed();
            let own = total.saturating_sub(done.provider_time);
            let mut response = HttpResponse::Found();
            response
                // Our time and the provider's, for browser dev tools and the sign-in benchmark.
                .insert_header(("Server-Timing", server_timing(own, &done)))
                .insert_header((header::LOCATION, done.next))
                .insert_header(NO_STORE)
                .insert_header(("Referrer-Policy", "no-referrer"));
            if let Some(credentials) = &done.credentials {
                for cookie in cookies::login(&state.settings, credentials) {
                    response.cookie(cookie);
                }
            }
            response.finish()
        }
        Err(err) => {
            // A response that is this browser's (its state matched) uses the
            // sign-in up; a foreign one leaves it for the real response.
            if !err.is_foreign_callback() {
                pending::clear(&session);
            }
            error_page(&state, &req, err)
        }
    }
}

/// `Server-Timing`: doorman's own time, the provider's, and doorman's main
/// steps (`checks`, `id-token`, `sign-in`), in milliseconds.
fn server_timing(own: std::time::Duration, done: &flow::Completed) -> String {
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
    let mut header = format!("doorman;dur={:.3}, provider;dur={:.3}", ms(own), ms(done.provider_time));
    for (step, took) in &done.steps {
        header.push_str(&format!(", {step};dur={:.3}", ms(*took)));
    }
    header
}

/// The error as JSON when the client asks for it, else as a page.
fn error_page(state: &AppState, req: &HttpRequest, err: OidcError) -> HttpResponse {
    let api = ApiError::from(err);
    let wants_json =
        req.headers().get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|accept| accept.contains("application/json"));
    let mut response = if wants_json {
        api.into_response()
    } else {
        let page = state
            .templates
            .render(
                "error.html",
                minijinja::context! { code => api.code, message => &api.message, title => page_title(api.code) },
            )
            .unwrap_or_else(|_| api.message.clone());
        let mut builder = HttpResponse::build(api.status);
        if let Some(seconds) = api.retry_after {
            builder.insert_header((header::RETRY_AFTER, seconds.to_string()));
        }
        let mut page = builder.content_type("text/html; charset=utf-8").insert_header(NO_STORE).body(page);
        crate::http::hardening::page_headers(&mut page);
        page
    };
    response.headers_mut().insert(header::REFERRER_POLICY, header::HeaderValue::from_static("no-referrer"));
    response
}

/// The heading of the error page.
fn page_title(code: &str) -> &'static str {
    match code {
        "access_denied" => "Access denied",
        "approval_pending" => "Waiting for approval",
        "account_disabled" => "Account disabled",
        "identity_taken" => "Account already linked",
        _ => "Sign-in failed",
    }
}

#[derive(Deserialize)]
pub struct BackchannelLogout {
    logout_token: String,
}

/// `POST /oidc/backchannel-logout`: 200 when the logout token is valid, else 400.
pub async fn backchannel_logout(
    state: web::Data<AppState>,
    client: ClientInfo,
    form: web::Form<BackchannelLogout>,
) -> Result<HttpResponse, ApiError> {
    crate::sso::logout::backchannel(&state.sso, &form.logout_token, &client.origin()).await?;
    Ok(HttpResponse::Ok().insert_header(NO_STORE).finish())
}
