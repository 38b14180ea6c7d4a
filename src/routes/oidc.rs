//! `/oidc/authenticate` and `/oidc/callback`: the browser's side of single sign-on.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::NO_STORE;
use crate::auth::cookies;
use crate::error::ApiError;
use crate::oidc::callback::{self, CallbackQuery};
use crate::oidc::{flow, OidcError};
use crate::state::AppState;

#[derive(Deserialize)]
pub struct AuthenticateQuery {
    provider: Option<String>,
    next: Option<String>,
}

pub async fn authenticate(state: web::Data<AppState>, req: HttpRequest, query: web::Query<AuthenticateQuery>) -> HttpResponse {
    match callback::begin(&state, query.provider.as_deref(), query.next.as_deref()) {
        Ok(redirect) => HttpResponse::Found()
            .insert_header((header::LOCATION, redirect.url))
            .insert_header(NO_STORE)
            .cookie(flow::cookie(&redirect.pending, &state.keys.cookie, &state.settings))
            .finish(),
        Err(err) => error_page(&state, &req, err),
    }
}

pub async fn callback(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    // Parsed by hand so that even a malformed query ends on the error page.
    let query = web::Query::<CallbackQuery>::from_query(req.query_string()).map(|q| q.into_inner()).unwrap_or_default();
    let started = std::time::Instant::now();
    let pending = flow::read(&req, &state.keys.cookie);
    match callback::finish(&state, pending, query).await {
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
                .insert_header(("Referrer-Policy", "no-referrer"))
                .cookie(flow::cleared(&state.settings));
            for cookie in cookies::login(&state.settings, &done.cookies) {
                response.cookie(cookie);
            }
            response.finish()
        }
        Err(err) => error_page(&state, &req, err),
    }
}

/// The error as JSON when the client asks for it, else as a page; the flow cookie is cleared.
fn error_page(state: &AppState, req: &HttpRequest, err: OidcError) -> HttpResponse {
    let api = ApiError::from(err);
    let wants_json =
        req.headers().get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|accept| accept.contains("application/json"));
    let mut response = if wants_json {
        actix_web::ResponseError::error_response(&api)
    } else {
        let page = state
            .templates
            .render("error.html", minijinja::context! { code => api.code, message => api.message.clone() })
            .unwrap_or_else(|_| api.message.clone());
        let mut builder = HttpResponse::build(api.status);
        if let Some(seconds) = api.retry_after {
            builder.insert_header((header::RETRY_AFTER, seconds.to_string()));
        }
        builder.content_type("text/html; charset=utf-8").insert_header(NO_STORE).body(page)
    };
    response.headers_mut().insert(header::REFERRER_POLICY, header::HeaderValue::from_static("no-referrer"));
    let _ = response.add_cookie(&flow::cleared(&state.settings));
    response
}

#[derive(Deserialize)]
pub struct BackchannelLogout {
    logout_token: String,
}

/// `POST /oidc/backchannel-logout`: 200 when the logout token is valid, else 400.
pub async fn backchannel_logout(
    state: web::Data<AppState>,
    form: web::Form<BackchannelLogout>,
) -> Result<HttpResponse, ApiError> {
    crate::oidc::logout::backchannel(&state, &form.logout_token).await?;
    Ok(HttpResponse::Ok().insert_header(NO_STORE).finish())
}
