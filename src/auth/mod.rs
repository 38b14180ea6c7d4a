//! Who is calling: passwords, browser sessions and their cookies, bearer
//! tokens, scopes and the CSRF check.

pub mod access;
pub mod api_token;
pub mod cookies;
pub mod guard;
pub mod login;
pub mod password;
pub mod principal;
pub mod scopes;
pub mod throttle;

pub use principal::{Principal, Via};
pub use scopes::{Scope, ScopeSet};

use crate::db::DbError;

/// Why a caller is not let in.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("internal failure")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("not authenticated")]
    NotAuthenticated,
    #[error("bad credentials")]
    BadCredentials,
    #[error("malformed Authorization header")]
    MalformedAuthorization,
    #[error("invalid token")]
    InvalidToken,
    #[error("invalid session")]
    InvalidSession,
    #[error("the provider no longer vouches for the user")]
    SignInAgain,
    #[error("CSRF check failed")]
    CsrfFailed,
    #[error("missing scope {0}")]
    InsufficientScope(Scope),
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("external users have no password")]
    ExternalUser,
    #[error("too many attempts")]
    TooManyAttempts(u64),
    #[error("browser session required")]
    BrowserSessionRequired,
    #[error("invalid input: {0}")]
    InvalidInput(String),
    #[error("password login disabled")]
    PasswordLoginDisabled,
    #[error("not found: {0}")]
    NotFound(String),
}
