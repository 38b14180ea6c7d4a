//! Single sign-on with OpenID Connect providers: the authorization-code flow
//! with PKCE, users keyed by (issuer, subject), and their lifecycle
//! (`valid_until`, background refresh, logout). Built on the identity layer;
//! knows nothing of HTTP.

pub mod account;
mod error;
pub mod flow;
pub mod id_token;
pub mod jwk;
pub mod lifecycle;
pub mod logout;
pub mod provider;
mod redeemed;
pub mod rules;
pub mod types;

use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDateTime;
use openidconnect::RedirectUrl;

pub use error::OidcError;
pub use provider::Provider;

use crate::clock::Clock;
use crate::config::Settings;
use crate::crypto::Vault;
use crate::db::Db;
use crate::identity::{ExternalValidity, Identity};

/// Every configured provider, by id.
pub struct Providers {
    list: Vec<Arc<Provider>>,
}

impl Providers {
    pub fn new(settings: &Settings) -> anyhow::Result<Self> {
        let redirect = RedirectUrl::new(settings.server.url_for("/oidc/callback"))?;
        let list = settings.providers.iter().map(|p| Arc::new(Provider::new(p.clone(), redirect.clone()))).collect();
        Ok(Self { list })
    }

    pub fn all(&self) -> &[Arc<Provider>] {
        &self.list
    }

    pub fn get(&self, id: &str) -> Option<&Arc<Provider>> {
        self.list.iter().find(|p| p.settings.id == id)
    }

    /// The provider a login asks for; may be left out when exactly one is configured.
    pub fn choose(&self, id: Option<&str>) -> Result<&Arc<Provider>, OidcError> {
        match id {
            Some(id) => self.get(id).ok_or_else(|| OidcError::UnknownProvider(id.to_string())),
            None if self.list.len() == 1 => Ok(&self.list[0]),
            None if self.list.is_empty() => Err(OidcError::NoProvider),
            None => Err(OidcError::ProviderRequired),
        }
    }
}

/// The HTTP client for providers: no redirects followed, short timeouts.
pub fn http_client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10))
        .user_agent(concat!("doorman/", env!("CARGO_PKG_VERSION")))
        .build()?)
}

/// How many identity ids [`Sso`] keeps for returning users (each about
/// 200 bytes), and how long one unused is kept.
const IDENTITY_IDS_KEPT: u64 = 50_000;
const IDENTITY_IDS_IDLE: Duration = Duration::from_secs(24 * 3600);

/// Single sign-on of one instance: the providers, the HTTP client that
/// talks to them, and the immediate refreshes in flight.
pub struct Sso {
    pub providers: Providers,
    pub identity: Arc<Identity>,
    db: Db,
    clock: Clock,
    http: reqwest::Client,
    vault: Vault,
    settings: Arc<Settings>,
    /// User id -> the `valid_until` an immediate refresh gave (one refresh in flight per user).
    refresh_inflight: moka::future::Cache<String, Option<NaiveDateTime>>,
    /// Identity ids this instance holds a refresh lease on right now.
    leases: std::sync::Mutex<std::collections::HashSet<String>>,
    /// The background refresh task, stopped at shutdown.
    background: std::sync::Mutex<Option<tokio::task::AbortHandle>>,
    /// When (seconds since the epoch) this instance last forgot expired sign-in states.
    states_purged_at: std::sync::atomic::AtomicI64,
    /// The sign-in states redeemed lately, for the check before a code is spent.
    redeemed: redeemed::Redeemed,
    /// (issuer, subject) -> the id of its stored identity, as the last
    /// sign-in found it: a returning user's sign-in updates that row at
    /// once instead of looking it up first. Only a hint: the update checks
    /// the row is still that account's.
    identity_ids: moka::sync::Cache<(String, String), String>,
}

impl Sso {
    pub fn new(settings: Arc<Settings>, identity: Arc<Identity>, vault: Vault) -> anyhow::Result<Self> {
        Ok(Self {
            providers: Providers::new(&settings)?,
            db: identity.db.clone(),
            clock: identity.clock.clone(),
            http: http_client()?,
            vault,
            refresh_inflight: moka::future::Cache::builder().max_capacity(100_000).time_to_live(Duration::from_secs(5)).build(),
            leases: Default::default(),
            background: Default::default(),
            states_purged_at: Default::default(),
            redeemed: redeemed::Redeemed::new(Duration::from_secs(flow::USED_STATE_SECS as u64)),
            identity_ids: moka::sync::Cache::builder().max_capacity(IDENTITY_IDS_KEPT).time_to_idle(IDENTITY_IDS_IDLE).build(),
            identity,
            settings,
        })
    }

    /// Discovers every provider once (a few seconds at most), then keeps
    /// retrying in the background those that are down, and starts the
    /// background refresh of external users.
    pub async fn start(self: &Arc<Self>) {
        self.load_redeemed_states().await;
        let first = futures_util::future::join_all(self.providers.all().iter().map(|p| {
            let http = self.http.clone();
            let p = p.clone();
            async move { tokio::time::timeout(Duration::from_secs(5), p.discover(&http)).await.is_ok_and(|r| r.is_ok()) }
        }))
        .await;
        for (provider, ready) in self.providers.all().iter().zip(first) {
            if !ready {
                let provider = provider.clone();
                let http = self.http.clone();
                tokio::spawn(async move { provider.discover_until_ready(&http).await });
            }
        }
        let task = lifecycle::start_refresh_task(self.clone());
        *self.background.lock().unwrap_or_else(|e| e.into_inner()) = task;
    }

    /// Stops the background refresh where it stands (a refresh cut off is
    /// neither a success nor a failure) and gives up its leases.
    pub async fn stop(&self) -> Result<usize, crate::db::DbError> {
        if let Some(task) = self.background.lock().unwrap_or_else(|e| e.into_inner()).take() {
            task.abort();
        }
        self.release_leases().await
    }
}

impl Sso {
    /// On SQLite (one instance), loads the unexpired redeemed states, after
    /// which memory alone answers whether a state was redeemed. Should the
    /// load fail, each callback keeps asking the database.
    async fn load_redeemed_states(&self) {
        if self.db.backend() != crate::db::Backend::Sqlite {
            return;
        }
        let now = self.clock.now_naive();
        match self.db.run(move |conn| crate::db::oidc_states::unexpired(conn, now)).await {
            Ok(hashes) => self.redeemed.load_all(hashes),
            Err(err) => log::warn!("cannot load the redeemed sign-in states ({err}); each callback will read them"),
        }
    }

    fn held(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<String>> {
        self.leases.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Gives up every refresh lease this instance still holds (at shutdown),
    /// so another instance can take those users at once instead of after
    /// the lease runs out. Returns how many rows were released.
    pub async fn release_leases(&self) -> Result<usize, crate::db::DbError> {
        let ids: Vec<String> = self.held().drain().collect();
        if ids.is_empty() {
            return Ok(0);
        }
        self.db.run(move |conn| crate::db::identities::release_leases(conn, &ids)).await
    }
}

impl ExternalValidity for Sso {
    async fn refresh_now(&self, user_id: &str) -> Option<NaiveDateTime> {
        lifecycle::refresh_now(self, user_id).await
    }
}
