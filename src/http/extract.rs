//! Who is calling: the [`Principal`] of a request, from `Authorization:
//! Bearer` or from the access cookie (plus its CSRF check), without a
//! database read on the hot path.

use std::future::Future;
use std::pin::Pin;

use actix_web::http::{header, Method};
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};

use super::cookies::{ACCESS, CSRF, CSRF_HEADER};
use super::error::ApiError;
use super::state::AppState;
use crate::crypto::constant_time_eq;
use crate::identity::{IdentityError, Principal};

/// Finds the caller of `req`.
pub async fn authenticate(req: &HttpRequest, state: &AppState) -> Result<Principal, IdentityError> {
    if let Some(value) = req.headers().get(header::AUTHORIZATION) {
        let token = bearer_token(value.to_str().map_err(|_| IdentityError::MalformedAuthorization)?)?;
        return state.identity.tokens.authenticate(token, state.sso.as_ref()).await;
    }
    let cookie = req.cookie(ACCESS).ok_or(IdentityError::NotAuthenticated)?;
    let principal = state.identity.sessions.authenticate(cookie.value()).await?;
    if is_unsafe(req.method()) {
        check_csrf(req)?;
    }
    Ok(principal)
}

/// The token of a `Bearer <token>` header value.
pub fn bearer_token(value: &str) -> Result<&str, IdentityError> {
    let (scheme, token) = value.split_once(' ').ok_or(IdentityError::MalformedAuthorization)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() || token.contains(char::is_whitespace) {
        return Err(IdentityError::MalformedAuthorization);
    }
    Ok(token)
}

fn is_unsafe(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Cookie-authenticated unsafe requests must echo the `csrftoken` cookie in `X-CSRFToken`.
pub fn check_csrf(req: &HttpRequest) -> Result<(), IdentityError> {
    let cookie = req.cookie(CSRF).ok_or(IdentityError::CsrfFailed)?;
    let header = req.headers().get(CSRF_HEADER).and_then(|v| v.to_str().ok()).ok_or(IdentityError::CsrfFailed)?;
    if cookie.value().is_empty() || !constant_time_eq(cookie.value(), header) {
        return Err(IdentityError::CsrfFailed);
    }
    Ok(())
}

/// The caller, as the scope guard found them or found now.
impl FromRequest for Principal {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            if let Some(principal) = req.extensions().get::<Principal>().cloned() {
                return Ok(principal);
            }
            let state = req.app_data::<web::Data<AppState>>().cloned().ok_or_else(ApiError::internal)?;
            Ok(authenticate(&req, &state).await?)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_header_forms() {
        assert_eq!(bearer_token("Bearer abc").unwrap(), "abc");
        assert_eq!(bearer_token("bearer abc").unwrap(), "abc");
        assert!(bearer_token("Basic abc").is_err());
        assert!(bearer_token("Bearer").is_err());
        assert!(bearer_token("Bearer ").is_err());
        assert!(bearer_token("Bearer a b").is_err());
    }
}
