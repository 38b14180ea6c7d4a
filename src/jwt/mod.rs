//! doorman's own signed JWTs for other services (`POST /token`), the keys
//! that sign them, their public half (`GET /.well-known/jwks.json`), and the
//! machine clients that may ask for them with client credentials.

pub mod clients;
pub mod issue;
pub mod keys;

use std::sync::Arc;
use std::time::Duration;

use moka::sync::Cache;

use crate::auth::AuthError;
use crate::db::DbError;

/// What an instance keeps for service JWTs: the signing keys and a short
/// cache of client records.
pub struct ServiceTokens {
    pub keys: keys::KeyRing,
    /// Client id -> the client, for `auth.cache_ttl`.
    pub clients: Cache<String, Arc<clients::Client>>,
}

impl ServiceTokens {
    /// `ttl` is `auth.cache_ttl`: how long keys and clients read from the
    /// database are trusted before reading them again.
    pub fn new(ttl: Duration) -> Self {
        Self { keys: keys::KeyRing::new(ttl), clients: Cache::builder().max_capacity(100_000).time_to_live(ttl).build() }
    }
}

/// Why `POST /token` gives no token. The codes are OAuth 2.0's (RFC 6749 §5.2).
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Db(#[from] DbError),
    /// Unknown client, wrong secret, revoked client, or no client authentication.
    #[error("client authentication failed: {0}")]
    InvalidClient(&'static str),
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("invalid scope: {0}")]
    InvalidScope(String),
    #[error("unsupported grant_type {0:?}")]
    UnsupportedGrantType(String),
    #[error("unsupported media type")]
    UnsupportedMediaType,
    #[error("too many failed attempts")]
    TooManyAttempts(u64),
    /// No key may sign now (none loaded yet, or none decryptable).
    #[error("no signing key is available")]
    NoSigningKey,
    #[error("signing failed")]
    Signing(#[source] serde_json::Error),
}
