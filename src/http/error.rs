//! `ApiError`: the SPEC's error body `{"error", "message"}` with its status,
//! and the one place where every layer's error becomes HTTP.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::db::DbError;
use crate::identity::device::DeviceError;
use crate::identity::IdentityError;
use crate::report::chain;
use crate::service_tokens::TokenError;
use crate::sso::OidcError;

/// An error as the client sees it.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// `WWW-Authenticate` value, for 401 and 403 on API calls.
    pub www_authenticate: Option<String>,
    /// `Retry-After` seconds, for 429 and 503.
    pub retry_after: Option<u64>,
    /// An OAuth answer (`POST /token`, `POST /oauth/device_authorization`):
    /// the message is repeated as `error_description` (RFC 6749 §5.2).
    pub oauth: bool,
}

/// Every error's body: `{"error": "<code>", "message": "<text>"}`; an OAuth
/// answer repeats the message as `error_description`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// A stable code for programs, e.g. `not_authenticated`.
    #[schema(examples("not_authenticated"))]
    pub error: String,
    /// A sentence for people.
    #[schema(examples("authentication is required"))]
    pub message: String,
    /// OAuth answers only (`POST /token`, `POST /oauth/device_authorization`): the message again (RFC 6749 §5.2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_description: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), www_authenticate: None, retry_after: None, oauth: false }
    }
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, message)
    }
    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }
    pub fn internal() -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", "the server could not complete the request")
    }
    pub fn unavailable(message: impl Into<String>) -> Self {
        let mut e = Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message);
        e.retry_after = Some(30);
        e
    }
    pub fn with_challenge(mut self, value: impl Into<String>) -> Self {
        self.www_authenticate = Some(value.into());
        self
    }
    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }
    /// Marks an OAuth answer: `error_description` beside `message`.
    pub fn oauth(mut self) -> Self {
        self.oauth = true;
        self
    }
}

impl ApiError {
    /// The response, for handlers that answer without `Result`.
    pub fn into_response(self) -> HttpResponse {
        self.error_response()
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.code, self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        if FAILED_GUESSES.contains(&self.code) {
            response.extensions_mut().insert(FailedGuess);
        }
        response.insert_header((header::CACHE_CONTROL, "no-store"));
        if let Some(challenge) = &self.www_authenticate {
            response.insert_header((header::WWW_AUTHENTICATE, challenge.as_str()));
        }
        if let Some(seconds) = self.retry_after {
            response.insert_header((header::RETRY_AFTER, seconds.to_string()));
        }
        let error_description = self.oauth.then(|| self.message.clone());
        response.json(ErrorBody { error: self.code.to_string(), message: self.message.clone(), error_description })
    }
}

/// The answers that tell a guesser "wrong": held back by
/// `server.failure_delay` (see `hardening`), so that a caller guessing
/// secrets, or spraying tokens, gets few answers a second per connection.
const FAILED_GUESSES: &[&str] =
    &["invalid_credentials", "invalid_token", "invalid_client", "too_many_attempts", "unsupported_content_encoding"];

/// Marks a response as the answer to a failed guess.
#[derive(Debug, Clone, Copy)]
pub struct FailedGuess;

/// Logs an internal failure with its whole chain, once, and hides it from the client.
pub fn internal(err: &(dyn std::error::Error + 'static)) -> ApiError {
    log::error!("{}", chain(err));
    ApiError::internal()
}

impl From<DbError> for ApiError {
    fn from(err: DbError) -> Self {
        match err {
            ref e if e.is_unavailable() => {
                log::error!("database unavailable: {}", chain(e));
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "database_unavailable",
                    "the database is unavailable, try again shortly",
                )
                .with_retry_after(5)
            }
            other if other.is_unique_violation() => ApiError::conflict("this already exists"),
            other => internal(&other),
        }
    }
}

impl From<IdentityError> for ApiError {
    fn from(err: IdentityError) -> Self {
        use IdentityError::*;
        let bearer = |e: ApiError, detail: &str| {
            e.with_challenge(format!("Bearer realm=\"doorman\", error=\"invalid_token\", error_description=\"{detail}\""))
        };
        match err {
            Db(e) => e.into(),
            Internal(e) => internal(e.as_ref()),
            NotAuthenticated => ApiError::unauthorized("not_authenticated", "authentication is required")
                .with_challenge("Bearer realm=\"doorman\""),
            BadCredentials => ApiError::unauthorized("invalid_credentials", "wrong username or password"),
            MalformedAuthorization => bearer(
                ApiError::unauthorized("invalid_token", "the Authorization header must be \"Bearer <token>\""),
                "malformed",
            ),
            InvalidToken => {
                bearer(ApiError::unauthorized("invalid_token", "the token is invalid, expired or revoked"), "invalid")
            }
            InvalidSession => {
                ApiError::unauthorized("invalid_session", "the session is invalid, expired or ended; sign in again")
            }
            AccessExpired => ApiError::unauthorized(
                "access_expired",
                "the access cookie has expired while the session lives; call POST /me/refresh and retry",
            ),
            SignInAgain => bearer(
                ApiError::unauthorized(
                    "sign_in_again",
                    "your identity provider no longer vouches for this account; sign in again",
                ),
                "expired",
            ),
            CsrfFailed => ApiError::forbidden("csrf_failed", "the X-CSRFToken header must match the csrftoken cookie"),
            InsufficientScope(scope) => {
                ApiError::forbidden("insufficient_scope", format!("this call needs the scope \"{scope}\""))
                    .with_challenge(format!("Bearer realm=\"doorman\", error=\"insufficient_scope\", scope=\"{scope}\""))
            }
            Forbidden(message) => ApiError::forbidden("forbidden", message),
            ExternalUser => ApiError::forbidden(
                "external_user",
                "this account signs in through its identity provider and cannot have a password",
            ),
            TooManyAttempts(seconds) => {
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, "too_many_attempts", "too many failed attempts; wait and try again")
                    .with_retry_after(seconds)
            }
            Busy(seconds) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "busy", "too many sign-ins at once; try again shortly")
                    .with_retry_after(seconds)
            }
            BrowserSessionRequired => {
                ApiError::forbidden("browser_session_required", "this call needs a signed-in browser session")
            }
            InvalidInput(message) => ApiError::bad_request("invalid_input", message),
            PasswordLoginDisabled => ApiError::forbidden("password_login_disabled", "password login is turned off"),
            NotFound(message) => ApiError::not_found(message),
            AccountDisabled => ApiError::forbidden("account_disabled", "this account is disabled; ask an administrator"),
            ApprovalPending => ApiError::forbidden(
                "approval_pending",
                "your account waits for an administrator's approval; you can sign in once it is approved",
            ),
            LastAdmin => ApiError::new(
                StatusCode::CONFLICT,
                "last_admin",
                "the last active administrator cannot be demoted, disabled or deleted",
            ),
            UsernameTaken(name) => ApiError::new(
                StatusCode::CONFLICT,
                "username_taken",
                if name.is_empty() { "this username is taken".to_string() } else { format!("the username {name:?} is taken") },
            ),
            NotPending => ApiError::new(StatusCode::CONFLICT, "not_pending", "the user is not waiting for approval"),
        }
    }
}

impl From<TokenError> for ApiError {
    fn from(err: TokenError) -> Self {
        use TokenError::*;
        match err {
            Identity(e) => e.into(),
            Db(e) => e.into(),
            // RFC 6749 §5.2: 401 with the scheme the client should use.
            InvalidClient(message) => {
                ApiError::unauthorized("invalid_client", message).with_challenge("Basic realm=\"doorman\"").oauth()
            }
            InvalidRequest(message) => ApiError::bad_request("invalid_request", message).oauth(),
            InvalidScope(message) => ApiError::bad_request("invalid_scope", message).oauth(),
            UnsupportedGrantType(grant) => ApiError::bad_request(
                "unsupported_grant_type",
                format!("grant_type {grant:?} is not supported: leave it out (bearer token or browser session), or use client_credentials or {}", crate::identity::device::GRANT_TYPE),
            )
            .oauth(),
            UnsupportedMediaType => ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send application/x-www-form-urlencoded or application/json",
            ),
            TooManyAttempts(seconds) => {
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, "too_many_attempts", "too many failed attempts; wait and try again")
                    .with_retry_after(seconds)
            }
            NoSigningKey => {
                log::error!("POST /token: no signing key is active");
                ApiError::unavailable("no signing key is active yet, try again shortly")
            }
            Signing(ref e) => {
                log::error!("signing a service token failed: {e}");
                ApiError::internal()
            }
        }
    }
}

impl From<DeviceError> for ApiError {
    fn from(err: DeviceError) -> Self {
        use DeviceError::*;
        match err {
            Db(e) => e.into(),
            Identity(e) => e.into(),
            InvalidRequest(message) => ApiError::bad_request("invalid_request", message).oauth(),
            InvalidScope(message) => ApiError::bad_request("invalid_scope", message).oauth(),
            UnsupportedMediaType => ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send application/x-www-form-urlencoded or application/json",
            )
            .oauth(),
            AuthorizationPending => {
                ApiError::bad_request("authorization_pending", "the user has not approved or denied the request yet").oauth()
            }
            SlowDown(interval) => {
                ApiError::bad_request("slow_down", format!("polling too fast: wait {interval} s between polls from now on"))
                    .oauth()
            }
            AccessDenied(message) => ApiError::bad_request("access_denied", message).oauth(),
            ExpiredToken => ApiError::bad_request("expired_token", "the device code has expired; start a new sign-in").oauth(),
            InvalidGrant(message) => ApiError::bad_request("invalid_grant", message).oauth(),
            UnknownCode => ApiError::not_found("no pending request has this code; check it and try again"),
            AlreadyDecided => {
                ApiError::new(StatusCode::CONFLICT, "already_decided", "this request was approved or denied already")
            }
            TooManyAttempts(seconds) => ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_attempts",
                "too many wrong codes; wait a minute and try again",
            )
            .with_retry_after(seconds),
            ScopesNotHeld(missing) => {
                ApiError::forbidden("insufficient_scope", format!("this request asks for scopes you do not hold: {missing}"))
            }
        }
    }
}

/// JSON body, path and query errors in the SPEC's shape.
pub fn json_error(err: actix_web::error::JsonPayloadError, _req: &actix_web::HttpRequest) -> actix_web::Error {
    use actix_web::error::JsonPayloadError as J;
    let api = match &err {
        J::OverflowKnownLength { .. } | J::Overflow { .. } => {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "the request body is too large")
        }
        J::ContentType => ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", "send application/json"),
        J::Deserialize(e) => ApiError::bad_request("invalid_json", format!("invalid JSON body: {e}")),
        other => ApiError::bad_request("invalid_json", format!("invalid JSON body: {other}")),
    };
    api.into()
}

pub fn query_error(err: actix_web::error::QueryPayloadError, _req: &actix_web::HttpRequest) -> actix_web::Error {
    ApiError::bad_request("invalid_query", format!("invalid query string: {err}")).into()
}

pub fn path_error(err: actix_web::error::PathError, _req: &actix_web::HttpRequest) -> actix_web::Error {
    ApiError::bad_request("invalid_path", format!("invalid path: {err}")).into()
}

pub fn form_error(err: actix_web::error::UrlencodedError, _req: &actix_web::HttpRequest) -> actix_web::Error {
    ApiError::bad_request("invalid_form", format!("invalid form body: {err}")).into()
}

impl From<OidcError> for ApiError {
    fn from(err: OidcError) -> Self {
        use OidcError::*;
        let code = err.code();
        match err {
            Db(e) => e.into(),
            Identity(e) => e.into(),
            UnknownProvider(_) | NoProvider => ApiError::new(StatusCode::NOT_FOUND, code, err.to_string()),
            Unavailable(_) | ProviderUnreachable(_) => {
                log::warn!("single sign-on: {}", chain(&err));
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, code, err.to_string()).with_retry_after(30)
            }
            ProviderError { .. } => {
                log::info!("single sign-on refused: {err}");
                ApiError::new(StatusCode::FORBIDDEN, code, err.to_string())
            }
            AccessDenied(_) => {
                log::info!("single sign-on refused by the provider's rules: {err}");
                ApiError::new(StatusCode::FORBIDDEN, code, err.to_string())
            }
            IdentityTaken => ApiError::new(StatusCode::CONFLICT, code, err.to_string()),
            other => {
                log::warn!("single sign-on failed: {}", chain(&other));
                ApiError::bad_request(code, other.to_string())
            }
        }
    }
}
