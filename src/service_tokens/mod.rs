//! Service tokens: doorman's short-lived signed JWTs for other services
//! (`POST /token`), the keys that sign them, their public half (the JWKS),
//! and the machine clients that may ask for them with client credentials.
//! Built on the identity layer; knows nothing of HTTP.

pub mod clients;
pub mod issue;
pub mod keys;

use std::sync::Arc;

use anyhow::Context;
use moka::sync::Cache;

use crate::clock::Clock;
use crate::config::Settings;
use crate::crypto::Vault;
use crate::db::{Db, DbError};
use crate::identity::audit::Audit;
use crate::identity::throttle::Throttle;
use crate::identity::IdentityError;

/// What an instance keeps for service JWTs: the signing keys, a short cache
/// of machine clients and the count of their failed attempts.
pub struct ServiceTokens {
    db: Db,
    clock: Clock,
    vault: Vault,
    settings: Arc<Settings>,
    keys: keys::KeyRing,
    /// Client id -> the client, for `auth.cache_ttl`.
    clients: Cache<String, Arc<clients::Client>>,
    throttle: Throttle,
    audit: Audit,
}

impl ServiceTokens {
    /// Keys and clients read from the database are trusted for `auth.cache_ttl`.
    pub fn new(settings: Arc<Settings>, db: Db, clock: Clock, vault: Vault, audit: Audit) -> Self {
        let ttl = settings.auth.cache_ttl.std();
        Self {
            throttle: Throttle::new(db.clone(), clock.clone()),
            db,
            clock,
            vault,
            keys: keys::KeyRing::new(ttl),
            clients: Cache::builder().max_capacity(100_000).time_to_live(ttl).build(),
            audit,
            settings,
        }
    }

    /// Called at startup: makes the first key when there is none, and loads
    /// every key into this instance.
    pub async fn start(&self) -> anyhow::Result<()> {
        let vault = self.vault.clone();
        let now = self.clock.now_naive();
        let rows = self.db.run(move |conn| keys::ensure_first_key(conn, &vault, now)).await.context("signing keys")?;
        let set = keys::decrypt_all(&rows, &self.vault)?;
        if set.signer(self.clock.now()).is_none() {
            log::warn!("no signing key is active yet: POST /token answers 503 until one is");
        }
        self.keys.store(set);
        Ok(())
    }

    /// The current keys (reread when this instance's copy is older than `auth.cache_ttl`).
    pub async fn keys(&self) -> Arc<keys::KeySet> {
        self.keys.get(&self.db, &self.vault).await
    }

    /// The JWKS document as of now.
    pub async fn jwks(&self) -> serde_json::Value {
        self.keys().await.jwks(self.clock.now())
    }
}

/// Why `POST /token` gives no token. The codes are OAuth 2.0's (RFC 6749 §5.2).
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error(transparent)]
    Identity(#[from] IdentityError),
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
