//! What every request and response goes through before and after routing:
//! a request body with a `Content-Encoding` is refused (415) before a byte
//! of it is read, so a small compressed body cannot grow into a large one;
//! every response says `nosniff`; a response that names no caching is
//! `no-store` (answers here depend on who asks); CORS's
//! `Access-Control-Allow-Credentials` goes out only beside an allowed
//! origin; and a bare 405 gets the SPEC's error body.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::HttpResponse;

use super::error::{ApiError, FailedGuess};
use super::state::AppState;

/// The middleware function (wrap it with `actix_web::middleware::from_fn`).
pub async fn harden(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    if let Some(encoding) = req.headers().get(header::CONTENT_ENCODING) {
        let identity = encoding.to_str().is_ok_and(|e| e.trim().eq_ignore_ascii_case("identity"));
        if !identity {
            let refused = ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_content_encoding",
                "request bodies must not be compressed (no Content-Encoding)",
            )
            .into_response();
            let (req, _) = req.into_parts();
            let mut response = ServiceResponse::new(req, refused);
            finish(&mut response);
            hold_back_failed_guess(&response).await;
            return Ok(response);
        }
    }
    let mut response = next.call(req).await?.map_into_boxed_body();
    if response.status() == StatusCode::METHOD_NOT_ALLOWED && !is_json(&response) {
        let (req, old) = response.into_parts();
        let message = format!("{} is not allowed on {}", req.method(), req.path());
        let mut replaced = ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", message).into_response();
        if let Some(allow) = old.headers().get(header::ALLOW) {
            replaced.headers_mut().insert(header::ALLOW, allow.clone());
        }
        response = ServiceResponse::new(req, replaced);
    }
    finish(&mut response);
    hold_back_failed_guess(&response).await;
    Ok(response)
}

/// Waits `server.failure_delay` before answering a failed guess: a timer,
/// no work, so one connection gets at most a few wrong answers a second
/// and a flood of them leaves the cores to everyone else.
async fn hold_back_failed_guess(response: &ServiceResponse<BoxBody>) {
    if response.response().extensions().get::<FailedGuess>().is_none() {
        return;
    }
    let delay = response
        .request()
        .app_data::<actix_web::web::Data<AppState>>()
        .map_or(std::time::Duration::ZERO, |state| state.settings.server.failure_delay);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
}

fn is_json(response: &ServiceResponse<BoxBody>) -> bool {
    response.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("application/json"))
}

fn finish(response: &mut ServiceResponse<BoxBody>) {
    let headers = response.headers_mut();
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if !headers.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN) {
        headers.remove(header::ACCESS_CONTROL_ALLOW_CREDENTIALS);
    }
}

/// Headers of every HTML page: no framing, no sniffing, and a policy that
/// runs only doorman's own script and style files (no inline code).
pub fn page_headers(response: &mut HttpResponse) {
    let headers = response.headers_mut();
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(PAGE_CSP));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
}

/// The pages' Content-Security-Policy.
pub const PAGE_CSP: &str =
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";
