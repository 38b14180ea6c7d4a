//! Who is calling, at the bottom of doorman: users and their passwords,
//! browser sessions and the access JWT, API tokens, scopes, the caller
//! ([`Principal`]) and password-guessing limits. Nothing here knows HTTP or
//! single sign-on; the one question it cannot answer itself (does a provider
//! still vouch for an external user?) it asks through [`ExternalValidity`].

pub mod access;
pub mod api_tokens;
pub mod audit;
pub mod password;
pub mod principal;
pub mod scopes;
pub mod sessions;
pub mod throttle;
pub mod users;

use std::future::Future;

use chrono::NaiveDateTime;

pub use principal::{Principal, Via};
pub use scopes::{Scope, ScopeSet};

use crate::clock::Clock;
use crate::config::AuthSettings;
use crate::crypto::DerivedKeys;
use crate::db::users::UserView;
use crate::db::{Db, DbError};

/// Why a caller is not let in, or an identity operation is refused.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
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

/// Asks the identity provider of an external user to vouch for them again.
/// Declared here, implemented by single sign-on: identity calls it when an
/// external user's `valid_until` has passed (see [`Identity::ensure_valid`]).
pub trait ExternalValidity: Sync {
    /// Refreshes `user_id` at their provider now: the new `valid_until`, or
    /// `None` when the provider no longer vouches (or cannot be asked).
    fn refresh_now(&self, user_id: &str) -> impl Future<Output = Option<NaiveDateTime>> + Send;
}

/// The identity services of one instance, each owning its state.
pub struct Identity {
    pub db: Db,
    pub clock: Clock,
    pub settings: AuthSettings,
    pub sessions: sessions::Sessions,
    pub tokens: api_tokens::ApiTokens,
    pub throttle: throttle::Throttle,
    pub audit: audit::Audit,
}

/// Browser sessions and API tokens that just ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Revoked {
    /// Session ids.
    pub sessions: Vec<String>,
    /// API-token hashes (what the token caches are keyed by).
    pub token_hashes: Vec<String>,
}

impl Identity {
    pub fn new(settings: &AuthSettings, keys: &DerivedKeys, db: Db, clock: Clock, audit: audit::Audit) -> Self {
        Self {
            sessions: sessions::Sessions::new(settings, &keys.access_jwt, db.clone(), clock.clone(), audit.clone()),
            tokens: api_tokens::ApiTokens::new(settings, db.clone(), clock.clone(), audit.clone()),
            throttle: throttle::Throttle::default(),
            settings: settings.clone(),
            audit,
            db,
            clock,
        }
    }

    /// The one way every ended session or token is announced, once the
    /// database says so: this instance forgets them at once (whatever
    /// else must hear of a revocation hooks in here).
    pub fn revoked(&self, revoked: &Revoked) {
        self.sessions.forget(&revoked.sessions);
        self.tokens.forget(&revoked.token_hashes);
    }
}

/// `user` if their provider still vouches for them at `now` (always, for
/// local users); past `valid_until`, `provider` is asked once, at once.
pub async fn ensure_valid(
    mut user: UserView,
    now: NaiveDateTime,
    provider: &impl ExternalValidity,
) -> Result<UserView, IdentityError> {
    if !user.user.is_external || user.valid_until.is_some_and(|vu| vu > now) {
        return Ok(user);
    }
    match provider.refresh_now(&user.user.id).await {
        Some(valid_until) if valid_until > now => {
            user.valid_until = Some(valid_until);
            Ok(user)
        }
        _ => Err(IdentityError::SignInAgain),
    }
}
