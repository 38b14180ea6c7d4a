//! `AppState`: what every request handler shares.

use std::sync::Arc;

use moka::sync::Cache;

use crate::auth::access::AccessKeys;
use crate::auth::api_token::CachedToken;
use crate::auth::throttle::Throttle;
use crate::config::Settings;
use crate::crypto::DerivedKeys;
use crate::db::{self, Db, DbError};
use crate::oidc::Providers;
use crate::templates::Templates;

/// Shared state of one doorman instance.
pub struct AppState {
    pub settings: Arc<Settings>,
    pub db: Db,
    pub keys: DerivedKeys,
    pub access: AccessKeys,
    /// Session id -> still live, for `auth.cache_ttl`.
    pub session_cache: Cache<String, bool>,
    /// Token hash -> the token and its user, for `auth.cache_ttl`.
    pub token_cache: Cache<String, Arc<CachedToken>>,
    /// Signing keys and machine clients of `POST /token`.
    pub service_tokens: crate::jwt::ServiceTokens,
    /// User id -> the `valid_until` an immediate refresh gave (one refresh in flight per user).
    pub refresh_inflight: moka::future::Cache<String, Option<chrono::NaiveDateTime>>,
    pub throttle: Throttle,
    pub templates: Templates,
    pub providers: Providers,
    pub http: reqwest::Client,
}

impl AppState {
    pub fn new(settings: Settings, db: Db) -> anyhow::Result<Self> {
        let keys = DerivedKeys::derive(&settings.auth.secret_key);
        let access = AccessKeys::new(&keys.access_jwt);
        let ttl = settings.auth.cache_ttl;
        let http = crate::oidc::http_client()?;
        let providers = Providers::new(&settings)?;
        Ok(Self {
            access,
            keys,
            session_cache: Cache::builder().max_capacity(1_000_000).time_to_live(ttl).build(),
            token_cache: Cache::builder().max_capacity(1_000_000).time_to_live(ttl).build(),
            service_tokens: crate::jwt::ServiceTokens::new(ttl),
            refresh_inflight: moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(std::time::Duration::from_secs(5))
                .build(),
            throttle: Throttle::default(),
            templates: Templates::new()?,
            providers,
            http,
            settings: Arc::new(settings),
            db,
        })
    }

    /// Whether browser session `id` is live, from the cache or the database.
    pub async fn session_is_live(&self, id: &str) -> Result<bool, DbError> {
        if let Some(live) = self.session_cache.get(id) {
            return Ok(live);
        }
        let key = id.to_string();
        let live = self.db.run(move |conn| Ok(db::sessions::find(conn, &key)?.is_some_and(|s| s.is_live(db::now())))).await?;
        self.session_cache.insert(id.to_string(), live);
        Ok(live)
    }
}
