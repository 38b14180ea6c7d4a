//! The caller of an API request: found from `Authorization: Bearer` or from
//! the access cookie (plus its CSRF check), without a database read on the
//! hot path.

use std::future::Future;
use std::pin::Pin;

use actix_web::http::{header, Method};
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use chrono::{DateTime, Utc};

use super::cookies::{ACCESS, CSRF, CSRF_HEADER};
use super::{api_token, AuthError, ScopeSet};
use crate::crypto::constant_time_eq;
use crate::error::ApiError;
use crate::state::AppState;

/// How the caller proved who they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// The browser's access cookie, in this browser session.
    Cookie { session_id: String },
    /// An API token.
    Bearer { token_id: String },
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user_id: String,
    pub username: String,
    pub email: Option<String>,
    pub channel: String,
    pub is_admin: bool,
    pub is_external: bool,
    pub valid_until: Option<DateTime<Utc>>,
    pub scopes: ScopeSet,
    pub via: Via,
}

impl Principal {
    pub fn session_id(&self) -> Option<&str> {
        match &self.via {
            Via::Cookie { session_id } => Some(session_id),
            Via::Bearer { .. } => None,
        }
    }
}

/// Finds the caller of `req`.
pub async fn authenticate(req: &HttpRequest, state: &AppState) -> Result<Principal, AuthError> {
    if let Some(value) = req.headers().get(header::AUTHORIZATION) {
        let token = bearer_token(value.to_str().map_err(|_| AuthError::MalformedAuthorization)?)?;
        return api_token::authenticate(state, token).await;
    }
    let cookie = req.cookie(ACCESS).ok_or(AuthError::NotAuthenticated)?;
    let claims = state.access.verify(cookie.value()).ok_or(AuthError::InvalidSession)?;
    let now = Utc::now();
    let valid_until = claims.vu.and_then(|s| DateTime::from_timestamp(s, 0));
    if claims.ext && valid_until.is_none_or(|vu| vu <= now) {
        return Err(AuthError::SignInAgain);
    }
    if !state.session_is_live(&claims.sid).await? {
        return Err(AuthError::InvalidSession);
    }
    if is_unsafe(req.method()) {
        check_csrf(req)?;
    }
    Ok(Principal {
        user_id: claims.sub,
        username: claims.usr,
        email: claims.email,
        channel: claims.ch,
        is_admin: claims.adm,
        is_external: claims.ext,
        valid_until,
        scopes: ScopeSet::for_user(claims.adm),
        via: Via::Cookie { session_id: claims.sid },
    })
}

/// The token of a `Bearer <token>` header value.
pub fn bearer_token(value: &str) -> Result<&str, AuthError> {
    let (scheme, token) = value.split_once(' ').ok_or(AuthError::MalformedAuthorization)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() || token.contains(char::is_whitespace) {
        return Err(AuthError::MalformedAuthorization);
    }
    Ok(token)
}

pub fn is_unsafe(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Cookie-authenticated unsafe requests must echo the `csrftoken` cookie in `X-CSRFToken`.
pub fn check_csrf(req: &HttpRequest) -> Result<(), AuthError> {
    let cookie = req.cookie(CSRF).ok_or(AuthError::CsrfFailed)?;
    let header = req.headers().get(CSRF_HEADER).and_then(|v| v.to_str().ok()).ok_or(AuthError::CsrfFailed)?;
    if cookie.value().is_empty() || !constant_time_eq(cookie.value(), header) {
        return Err(AuthError::CsrfFailed);
    }
    Ok(())
}

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
            let principal = authenticate(&req, &state).await?;
            Ok(principal)
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
