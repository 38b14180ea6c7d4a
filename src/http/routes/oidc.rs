//! `/oidc/authenticate` and `/oidc/callback`: the browser's side of single
//! sign-on; and the provider's back-channel logout.

use actix_session::Session;
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::NO_STORE;
use crate::http::cookies;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::next_path::NextTarget;
use crate::http::pending;
use crate::http::state::AppState;
use crate::sso::flow::{self, CallbackQuery};
use crate::sso::OidcError;

/// The query of `GET /oidc/authenticate`.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuthenticateQuery {
    /// The provider's id; may be left out when exactly one is configured.
    provider: Option<String>,
    /// Where to go after signing in: a path on this site or a URL on one of `frontend_origins`.
    next: Option<String>,
}

/// Starts single sign-on: a redirect to the provider's authorization endpoint.
/// Errors are a page, or JSON when the client accepts `application/json`.
#[utoipa::path(
    get,
    path = "/oidc/authenticate",
    tag = "sso",
    params(AuthenticateQuery),
    responses(
        (status = 302, description = "To the provider (code flow, `state`, `nonce`, PKCE S256)"),
        (status = 400, description = "`invalid_next`, `invalid_query`", content((ErrorBody = "application/json"), (String = "text/html"))),
        (status = 404, description = "`unknown_provider`, `no_provider`", content((ErrorBody = "application/json"), (String = "text/html"))),
        (status = 500, description = "The pending sign-in could not be kept", content((ErrorBody = "application/json"), (String = "text/html"))),
        (status = 503, description = "The provider is unavailable, with `Retry-After`", content((ErrorBody = "application/json"), (String = "text/html"))),
    )
)]
pub async fn authenticate(
    state: web::Data<AppState>,
    req: HttpRequest,
    session: Session,
    query: web::Query<AuthenticateQuery>,
) -> HttpResponse {
    let begun = NextTarget::parse_or_root(query.next.as_deref(), &state.settings)
        .map_err(OidcError::InvalidNext)
        .and_then(|next| flow::begin(&state.sso, query.provider.as_deref(), next));
    match begun {
        Ok(redirect) => match pending::keep(&session, &redirect.pending) {
            Ok(()) => HttpResponse::Found().insert_header((header::LOCATION, redirect.url)).insert_header(NO_STORE).finish(),
            Err(err) => crate::http::error::internal(&err).into_response(),
        },
        Err(err) => error_page(&state, &req, &session, err),
    }
}

/// The provider's redirect back: signs the user in and redirects to `next`.
/// Any failure is a page (JSON when asked), with no cookie and no user.
#[utoipa::path(
    get,
    path = "/oidc/callback",
    tag = "sso",
    params(
        ("code" = Option<String>, Query, description = "The authorization code"),
        ("state" = Option<String>, Query, description = "The state doorman sent"),
        ("iss" = Option<String>, Query, description = "The issuer (RFC 9207)"),
        ("error" = Option<String>, Query, description = "The provider's error code"),
        ("error_description" = Option<String>, Query, description = "The provider's error text"),
    ),
    responses(
        (status = 302, description = "Signed in: the cookies are set, to `next`"),
        (status = 400, description = "A failed check (e.g. `invalid_state`, `missing_code`)", content((ErrorBody = "application/json"), (String = "text/html"))),
        (status = 403, description = "Refused: `access_denied`, `approval_pending`, `account_disabled`, or the provider's error", content((ErrorBody = "application/json"), (String = "text/html"))),
        (status = 404, description = "`unknown_provider`", content((ErrorBody = "application/json"), (String = "text/html"))),
        (status = 409, description = "`identity_taken`", content((ErrorBody = "application/json"), (String = "text/html"))),
        (status = 503, description = "The provider or the database is unavailable, with `Retry-After`", content((ErrorBody = "application/json"), (String = "text/html"))),
    )
)]
pub async fn callback(state: web::Data<AppState>, req: HttpRequest, session: Session) -> HttpResponse {
    // Parsed by hand so that even a malformed query ends on the error page.
    let query = web::Query::<CallbackQuery>::from_query(req.query_string()).map(|q| q.into_inner()).unwrap_or_default();
    let started = std::time::Instant::now();
    let pending = pending::take(&session);
    match flow::finish(&state.sso, pending, query).await {
        Ok(done) => {
            let total = started.elapsed();
            let own = total.saturating_sub(done.provider_time);
            let mut response = HttpResponse::Found();
            response
                // Our time and the provider's, for browser dev tools and the sign-in benchmark.
                .insert_header((
                    "Server-Timing",
                    format!(
                        "doorman;dur={:.3}, provider;dur={:.3}",
                        own.as_secs_f64() * 1000.0,
                        done.provider_time.as_secs_f64() * 1000.0
                    ),
                ))
                .insert_header((header::LOCATION, done.next))
                .insert_header(NO_STORE)
                .insert_header(("Referrer-Policy", "no-referrer"));
            for cookie in cookies::login(&state.settings, &done.credentials) {
                response.cookie(cookie);
            }
            response.finish()
        }
        Err(err) => error_page(&state, &req, &session, err),
    }
}

/// The error as JSON when the client asks for it, else as a page; any
/// pending sign-in is forgotten.
fn error_page(state: &AppState, req: &HttpRequest, session: &Session, err: OidcError) -> HttpResponse {
    pending::clear(session);
    let api = ApiError::from(err);
    let wants_json =
        req.headers().get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|accept| accept.contains("application/json"));
    let mut response = if wants_json {
        api.into_response()
    } else {
        let page = state
            .templates
            .render("error.html", minijinja::context! { code => api.code, message => &api.message })
            .unwrap_or_else(|_| api.message.clone());
        let mut builder = HttpResponse::build(api.status);
        if let Some(seconds) = api.retry_after {
            builder.insert_header((header::RETRY_AFTER, seconds.to_string()));
        }
        builder.content_type("text/html; charset=utf-8").insert_header(NO_STORE).body(page)
    };
    response.headers_mut().insert(header::REFERRER_POLICY, header::HeaderValue::from_static("no-referrer"));
    response
}

/// The form of `POST /oidc/backchannel-logout`.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct BackchannelLogout {
    /// The provider's logout token (a signed JWT).
    logout_token: String,
}

/// `POST /oidc/backchannel-logout`: 200 when the logout token is valid, else 400.
#[utoipa::path(
    post,
    path = "/oidc/backchannel-logout",
    tag = "sso",
    request_body(content = BackchannelLogout, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "The user's sessions at that provider are ended"),
        (status = 400, description = "A bad logout token (`invalid_logout_token`), `invalid_form`", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 503, description = "The provider's keys or the database are unavailable", body = ErrorBody),
    )
)]
pub async fn backchannel_logout(
    state: web::Data<AppState>,
    form: web::Form<BackchannelLogout>,
) -> Result<HttpResponse, ApiError> {
    crate::sso::logout::backchannel(&state.sso, &form.logout_token).await?;
    Ok(HttpResponse::Ok().insert_header(NO_STORE).finish())
}
