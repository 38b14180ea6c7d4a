//! Single sign-on with OpenID Connect providers: the authorization-code flow
//! with PKCE, users keyed by (issuer, subject), and their lifecycle.

pub mod account;
pub mod callback;
mod error;
pub mod flow;
pub mod lifecycle;
pub mod logout;
pub mod next_path;
pub mod provider;
pub mod types;

use std::sync::Arc;
use std::time::Duration;

use actix_web::web;
use openidconnect::RedirectUrl;

pub use error::OidcError;
pub use provider::Provider;

use crate::config::Settings;
use crate::state::AppState;

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

/// Discovers every provider once (a few seconds at most), then keeps retrying
/// in the background those that are down, and starts the refresh task.
pub async fn start(state: web::Data<AppState>) {
    let first = futures_util::future::join_all(state.providers.all().iter().map(|p| {
        let http = state.http.clone();
        let p = p.clone();
        async move { tokio::time::timeout(Duration::from_secs(5), p.discover(&http)).await.is_ok_and(|r| r.is_ok()) }
    }))
    .await;
    for (provider, ready) in state.providers.all().iter().zip(first) {
        if !ready {
            let provider = provider.clone();
            let http = state.http.clone();
            tokio::spawn(async move { provider.discover_until_ready(&http).await });
        }
    }
    lifecycle::start_refresh_task(state);
}
