//! `/oidc/authenticate` and `/oidc/callback`: the browser's side of single
//! sign-on; and the provider's back-channel logout.

use actix_session::Session;
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::NO_STORE;
use crate::http::client::ClientInfo;
use crate::http::cookies;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::next_path::NextTarget;
use crate::http::pending;
use crate::http::state::AppState;
use crate::identity::{IdentityError, Via};
use crate::sso::flow::{self, CallbackQuery};
use crate::sso::OidcError;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuthenticateQuery {
    /// The provider's id; may be left out when exactly one is configured.
    provider: Option<String>,
    /// Where to go afterwards: a path on this site or a URL on a front-end origin.
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

/// Starts single sign-on: 302 to the provider (code flow, `state`, `nonce`, PKCE S256).
/// Errors are a page, or JSON when the request accepts `application/json`.
#[utoipa::path(
    get,
    path = "/oidc/authenticate",
    tag = "sso",
    params(AuthenticateQuery),
    security((), ("cookie" = [])),
    responses(
        (status = 302, description = "To the provider's authorization endpoint; sets the pending sign-in cookie", headers(("Location" = String))),
        (status = 400, description = "A `next` that is not allowed, or `invalid_query`", content((String = "text/html"), (ErrorBody = "application/json"))),
        (status = 401, description = "`link=true` without a browser session", content((String = "text/html"), (ErrorBody = "application/json"))),
        (status = 403, description = "`link=true` with a bearer token (`browser_session_required`)", content((String = "text/html"), (ErrorBody = "application/json"))),
        (status = 404, description = "No such provider, or none configured", content((String = "text/html"), (ErrorBody = "application/json"))),
        (status = 503, description = "The provider is unreachable (`Retry-After`)", content((String = "text/html"), (ErrorBody = "application/json"))),
    ),
)]
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

/// The provider's redirect: checks everything, signs in (or links), 302 to `next`.
/// Any failure: a 4xx page (JSON when asked), no cookies, no user.
#[utoipa::path(
    get,
    path = "/oidc/callback",
    tag = "sso",
    params(CallbackQuery),
    responses(
        (status = 302, description = "Signed in (or linked): the cookies set, to `next`", headers(("Location" = String))),
        (status = 400, description = "A bad or foreign response (no pending sign-in, `state` mismatch, bad ID token...)", content((String = "text/html"), (ErrorBody = "application/json"))),
        (status = 401, description = "Linking without a live browser session", content((String = "text/html"), (ErrorBody = "application/json"))),
        (status = 403, description = "Refused by the provider or the rules (`access_denied`, `approval_pending`, `account_disabled`)", content((String = "text/html"), (ErrorBody = "application/json"))),
        (status = 404, description = "The provider is no longer configured", content((String = "text/html"), (ErrorBody = "application/json"))),
        (status = 409, description = "`identity_taken`: the identity belongs to another user", content((String = "text/html"), (ErrorBody = "application/json"))),
        (status = 503, description = "The provider is unreachable, or `database_unavailable`", content((String = "text/html"), (ErrorBody = "application/json"))),
    ),
)]
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

#[derive(Deserialize, utoipa::ToSchema)]
pub struct BackchannelLogout {
    /// The provider's signed logout token (OpenID Connect Back-Channel Logout 1.0).
    logout_token: String,
}

/// `POST /oidc/backchannel-logout`: 200 when the logout token is valid, else 400.
#[utoipa::path(
    post,
    path = "/oidc/backchannel-logout",
    tag = "sso",
    request_body(content = BackchannelLogout, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "The user's sessions at that provider ended"),
        (status = 400, description = "A bad, expired or replayed logout token, or `invalid_form`", body = ErrorBody),
        (status = 503, description = "`database_unavailable`, or the provider's keys cannot be fetched", body = ErrorBody),
    ),
)]
pub async fn backchannel_logout(
    state: web::Data<AppState>,
    client: ClientInfo,
    form: web::Form<BackchannelLogout>,
) -> Result<HttpResponse, ApiError> {
    crate::sso::logout::backchannel(&state.sso, &form.logout_token, &client.origin()).await?;
    Ok(HttpResponse::Ok().insert_header(NO_STORE).finish())
}
