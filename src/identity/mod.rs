//! Who is calling, at the bottom of doorman: users and their passwords,
//! browser sessions and the access JWT, API tokens, scopes, the caller
//! ([`Principal`]) and password-guessing limits. Nothing here knows HTTP or
//! single sign-on; the one question it cannot answer itself (does a provider
//! still vouch for an external user?) it asks through [`ExternalValidity`].

pub mod access;
pub mod admin;
pub mod api_tokens;
pub mod audit;
pub mod device;
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
use crate::db::{Db, DbConnection, DbError};

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
    /// Every password check slot is taken: try again in that many seconds.
    #[error("busy")]
    Busy(u64),
    #[error("browser session required")]
    BrowserSessionRequired,
    #[error("invalid input: {0}")]
    InvalidInput(String),
    #[error("password login disabled")]
    PasswordLoginDisabled,
    #[error("not found: {0}")]
    NotFound(String),
    #[error("this account is disabled")]
    AccountDisabled,
    #[error("this account waits for an administrator's approval")]
    ApprovalPending,
    #[error("the last active administrator cannot be demoted, disabled or deleted")]
    LastAdmin,
    #[error("the username {0:?} is taken")]
    UsernameTaken(String),
    #[error("the user is not waiting for approval")]
    NotPending,
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
    /// Command-line sign-in (RFC 8628).
    pub device: device::DeviceFlow,
    pub throttle: throttle::Throttle,
    /// argon2, behind this instance's cap.
    pub passwords: password::Hasher,
    /// Revocation on every instance (see [`revocation`]).
    pub revocations: Arc<revocation::Revocations>,
    /// The audit trail.
    pub audit: audit::Audit,
}

impl Identity {
    pub fn new(settings: &AuthSettings, keys: &DerivedKeys, db: Db, clock: Clock, audit: audit::Audit) -> Self {
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
                audit.clone(),
            ),
            tokens: api_tokens::ApiTokens::new(settings, db.clone(), clock.clone(), token_cache, audit.clone()),
            device: device::DeviceFlow::new(db.clone(), clock.clone(), audit.clone()),
            throttle: throttle::Throttle::new(db.clone(), clock.clone()),
            passwords: password::Hasher::default(),
            revocations,
            settings: settings.clone(),
            audit,
            db,
            clock,
        }
    }
}

/// Browser sessions and API tokens that just ended.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct EndedCredentials {
    /// Ids of the browser sessions ended.
    pub session_ids: Vec<String>,
    /// Hashes of the API tokens revoked (what the token caches are keyed by).
    pub token_hashes: Vec<String>,
}

impl EndedCredentials {
    /// `event` with how many sessions and API tokens ended.
    pub fn counted(&self, event: audit::Event) -> audit::Event {
        event.detail("sessions", self.session_ids.len()).detail("api_tokens", self.token_hashes.len())
    }

    /// Adds what `other` ended.
    pub fn extend(&mut self, other: EndedCredentials) {
        self.session_ids.extend(other.session_ids);
        self.token_hashes.extend(other.token_hashes);
    }

    /// What stopped working, as every instance is told.
    fn revoked(&self) -> [revocation::Revoked; 2] {
        [revocation::Revoked::Sessions(self.session_ids.clone()), revocation::Revoked::Tokens(self.token_hashes.clone())]
    }

    /// Tells every instance, inside the caller's transaction, that these
    /// credentials ended (PostgreSQL sends it at commit; see [`revocation`]).
    pub fn announce(&self, conn: &mut DbConnection) -> diesel::QueryResult<()> {
        self.revoked().iter().try_for_each(|revoked| revocation::Revocations::announce(conn, revoked))
    }
}

/// Which of a user's credentials to end.
#[derive(Debug, Clone, Copy)]
pub struct EndWhich<'a> {
    /// Whether browser sessions end (all of them but `keep_session`).
    pub sessions: bool,
    /// A browser session to keep (the caller's own, at a password change).
    pub keep_session: Option<&'a str>,
    /// Whether API tokens end too.
    pub api_tokens: bool,
}

impl EndWhich<'_> {
    /// Every browser session and API token.
    pub const ALL: EndWhich<'static> = EndWhich { sessions: true, keep_session: None, api_tokens: true };
}

/// Ends credentials `which` of `user_id` inside the caller's transaction
/// and announces them to every instance (sent when, and only when, the
/// transaction commits). Every cause that ends a user's credentials
/// (disabling, deleting, an administrator's sign-out, a password change, a
/// back-channel logout naming the subject) goes through here, in the
/// transaction that makes the change and records its audit event; after the
/// commit the caller makes this instance forget them with
/// [`Identity::forget_ended`].
pub fn end_credentials_in(
    conn: &mut DbConnection,
    user_id: &str,
    which: EndWhich<'_>,
    now: NaiveDateTime,
) -> diesel::QueryResult<EndedCredentials> {
    let session_ids = if which.sessions {
        crate::db::sessions::revoke_all_for_user(conn, user_id, which.keep_session, now)?
    } else {
        Vec::new()
    };
    let token_hashes =
        if which.api_tokens { crate::db::api_tokens::revoke_all_for_user(conn, user_id, now)? } else { Vec::new() };
    let ended = EndedCredentials { session_ids, token_hashes };
    ended.announce(conn)?;
    Ok(ended)
}

impl Identity {
    /// Ends every browser session and API token of `user_id` at once on
    /// every instance (an administrator's sign-out), recording `event` with
    /// how many ended in the same transaction; then this instance forgets
    /// them, so the access cookie (through `Sessions::is_live`) and every
    /// bearer token are refused from the next request on, here at once and
    /// elsewhere within about a second.
    pub async fn end_all_credentials(&self, user_id: &str, event: audit::Event) -> Result<EndedCredentials, IdentityError> {
        let user_id = user_id.to_string();
        let (audit, now) = (self.audit.clone(), self.clock.now_naive());
        let (ended, row) = self
            .db
            .run(move |conn| {
                crate::db::write_transaction(conn, |conn| {
                    let ended = end_credentials_in(conn, &user_id, EndWhich::ALL, now)?;
                    let row = audit.row(ended.counted(event));
                    crate::db::audit_events::insert(conn, &row)?;
                    Ok((ended, row))
                })
            })
            .await?;
        audit::log_stored(&[row]);
        self.forget_ended(&ended);
        Ok(ended)
    }

    /// Makes this instance forget credentials ended (and announced) by
    /// [`end_credentials_in`] in a transaction that has committed.
    pub fn forget_ended(&self, ended: &EndedCredentials) {
        for revoked in ended.revoked() {
            if !revoked.is_empty() {
                self.revocations.forget(&revoked);
            }
        }
    }
}

/// Refuses a user who may not hold credentials now.
pub fn check_status(user: &crate::db::users::UserRow) -> Result<(), IdentityError> {
    match user.status.as_str() {
        crate::db::users::status::ACTIVE => Ok(()),
        crate::db::users::status::PENDING => Err(IdentityError::ApprovalPending),
        _ => Err(IdentityError::AccountDisabled),
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
