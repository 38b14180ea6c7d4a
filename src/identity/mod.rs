//! Who is calling, at the bottom of doorman: users and their passwords,
//! browser sessions and the access JWT, API tokens, scopes, the caller
//! ([`Principal`]) and password-guessing limits. Nothing here knows HTTP or
//! single sign-on; the one question it cannot answer itself (does a provider
//! still vouch for an external user?) it asks through [`ExternalValidity`].

pub mod access;
pub mod api_tokens;
pub mod password;
pub mod principal;
pub mod revocation;
pub mod scopes;
pub mod sessions;
pub mod throttle;
pub mod users;

use std::future::Future;
use std::sync::Arc;

use chrono::NaiveDateTime;
use moka::sync::Cache;

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
    /// The access cookie ran out while its browser session lives: refresh and retry.
    #[error("access cookie expired")]
    AccessExpired,
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
    /// Revocation on every instance (see [`revocation`]).
    pub revocations: Arc<revocation::Revocations>,
}

impl Identity {
    pub fn new(settings: &AuthSettings, keys: &DerivedKeys, db: Db, clock: Clock) -> Self {
        // Built with invalidation closures: a revoked user is forgotten by user id.
        let session_cache: revocation::SessionCache = Cache::builder()
            .max_capacity(1_000_000)
            .time_to_live(settings.cache_ttl.std())
            .support_invalidation_closures()
            .build();
        let token_cache: revocation::TokenCache = Cache::builder()
            .max_capacity(1_000_000)
            .time_to_live(settings.cache_ttl.std())
            .support_invalidation_closures()
            .build();
        let shared = db.backend() == crate::db::Backend::Postgres;
        let revocations = Arc::new(revocation::Revocations::new(session_cache.clone(), token_cache.clone(), shared));
        Self {
            sessions: sessions::Sessions::new(
                settings,
                &keys.access_jwt,
                db.clone(),
                clock.clone(),
                session_cache,
                revocations.clone(),
            ),
            tokens: api_tokens::ApiTokens::new(settings, db.clone(), clock.clone(), token_cache, revocations.clone()),
            revocations,
            throttle: throttle::Throttle::default(),
            settings: settings.clone(),
            db,
            clock,
        }
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
