//! One identity provider: its discovery document and keys, fetched at start,
//! retried in the background while it is down, and its keys fetched again
//! (at most once per [`JWKS_REFETCH_INTERVAL`]) when a token names a key id
//! doorman does not know.

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use openidconnect::core::{CoreJsonWebKeySet, CoreJwsSigningAlgorithm, CoreProviderMetadata};
use openidconnect::{ClientId, ClientSecret, RedirectUrl};
use url::Url;

use super::types::OidcClient;
use super::OidcError;
use crate::config::ProviderSettings;

/// Shortest time between two JWKS fetches of one provider.
pub const JWKS_REFETCH_INTERVAL: Duration = Duration::from_secs(10);

/// A provider whose discovery succeeded.
pub struct Ready {
    pub issuer: String,
    pub client: OidcClient,
    pub metadata: CoreProviderMetadata,
    /// Signature algorithms accepted for its ID tokens: those it announced,
    /// never `none` nor an HMAC.
    pub allowed_algs: Vec<CoreJwsSigningAlgorithm>,
    pub end_session_endpoint: Option<Url>,
    pub revocation_endpoint: Option<Url>,
    /// RFC 9207: the provider puts `iss` in its authorization responses.
    pub iss_parameter_supported: bool,
}

enum Status {
    Pending,
    Ready(Arc<Ready>),
    Unavailable,
}

/// A configured provider and what is known of it.
pub struct Provider {
    pub settings: ProviderSettings,
    redirect_uri: RedirectUrl,
    status: RwLock<Status>,
    last_jwks_fetch: Mutex<Option<Instant>>,
    key_fetches: std::sync::atomic::AtomicUsize,
}

impl Provider {
    pub fn new(settings: ProviderSettings, redirect_uri: RedirectUrl) -> Self {
        Self {
            settings,
            redirect_uri,
            status: RwLock::new(Status::Pending),
            last_jwks_fetch: Mutex::new(None),
            key_fetches: Default::default(),
        }
    }

    /// The provider, if its discovery succeeded.
    pub fn ready(&self) -> Result<Arc<Ready>, OidcError> {
        match &*self.status.read().unwrap_or_else(|e| e.into_inner()) {
            Status::Ready(ready) => Ok(ready.clone()),
            Status::Pending | Status::Unavailable => Err(OidcError::Unavailable(self.settings.id.clone())),
        }
    }

    /// How many times the keys were fetched again (key rotation).
    pub fn key_fetches(&self) -> usize {
        self.key_fetches.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn set(&self, status: Status) {
        *self.status.write().unwrap_or_else(|e| e.into_inner()) = status;
    }

    /// Fetches the discovery document and keys; marks the provider ready or unavailable.
    pub async fn discover(&self, http: &reqwest::Client) -> Result<(), OidcError> {
        let found = discover(http, &self.settings, &self.redirect_uri).await;
        metrics::counter!("doorman_provider_key_fetches_total", "provider" => self.settings.id.clone(), "reason" => "discovery")
            .increment(1);
        match found {
            Ok(ready) => {
                self.set(Status::Ready(Arc::new(ready)));
                log::info!("provider {}: ready", self.settings.id);
                Ok(())
            }
            Err(err) => {
                log::warn!("provider {}: discovery failed: {}", self.settings.id, crate::report::chain(&err));
                self.set(Status::Unavailable);
                Err(err)
            }
        }
    }

    /// Fetches the keys again after a token named an unknown key, unless
    /// that was done less than [`JWKS_REFETCH_INTERVAL`] ago. Returns the
    /// provider with the new keys, or `None` when nothing was fetched.
    pub async fn refetch_keys(&self, http: &reqwest::Client) -> Result<Option<Arc<Ready>>, OidcError> {
        {
            let mut last = self.last_jwks_fetch.lock().unwrap_or_else(|e| e.into_inner());
            if last.is_some_and(|at| at.elapsed() < JWKS_REFETCH_INTERVAL) {
                return Ok(None);
            }
            *last = Some(Instant::now());
        }
        let current = self.ready()?;
        self.key_fetches.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        metrics::counter!("doorman_provider_key_fetches_total", "provider" => self.settings.id.clone(), "reason" => "unknown_kid")
            .increment(1);
        let jwks = CoreJsonWebKeySet::fetch_async(current.metadata.jwks_uri(), http)
            .await
            .map_err(|e| OidcError::ProviderUnreachable(anyhow::anyhow!("JWKS: {e}")))?;
        let metadata = current.metadata.clone().set_jwks(jwks);
        let ready = build_ready(&self.settings, &self.redirect_uri, metadata, current.extras())?;
        let ready = Arc::new(ready);
        self.set(Status::Ready(ready.clone()));
        log::info!("provider {}: keys fetched again", self.settings.id);
        Ok(Some(ready))
    }

    /// Tries discovery until it succeeds, waiting longer after each failure (up to 60 s).
    pub async fn discover_until_ready(&self, http: &reqwest::Client) {
        let mut wait = Duration::from_secs(1);
        while self.discover(http).await.is_err() {
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(60));
        }
    }
}

/// What discovery says beyond `CoreProviderMetadata`.
#[derive(Clone, Default)]
struct Extras {
    end_session_endpoint: Option<Url>,
    revocation_endpoint: Option<Url>,
    iss_parameter_supported: bool,
}

impl Ready {
    fn extras(&self) -> Extras {
        Extras {
            end_session_endpoint: self.end_session_endpoint.clone(),
            revocation_endpoint: self.revocation_endpoint.clone(),
            iss_parameter_supported: self.iss_parameter_supported,
        }
    }
}

fn unreachable(context: &str, err: impl std::fmt::Display) -> OidcError {
    OidcError::ProviderUnreachable(anyhow::anyhow!("{context}: {err}"))
}

async fn discover(http: &reqwest::Client, settings: &ProviderSettings, redirect: &RedirectUrl) -> Result<Ready, OidcError> {
    let url = format!("{}/.well-known/openid-configuration", settings.issuer.trim_end_matches('/'));
    let response = http.get(&url).send().await.map_err(|e| unreachable("discovery", e))?;
    if !response.status().is_success() {
        return Err(unreachable("discovery", format!("status {}", response.status())));
    }
    let document: serde_json::Value = response.json().await.map_err(|e| unreachable("discovery document", e))?;
    let metadata: CoreProviderMetadata =
        serde_json::from_value(document.clone()).map_err(|e| unreachable("discovery document", e))?;
    if metadata.issuer().as_str().trim_end_matches('/') != settings.issuer.trim_end_matches('/') {
        return Err(unreachable(
            "discovery",
            format!("the document names issuer {:?}, not the configured {:?}", metadata.issuer().as_str(), settings.issuer),
        ));
    }
    check_endpoints(&metadata)?;
    let jwks = CoreJsonWebKeySet::fetch_async(metadata.jwks_uri(), http).await.map_err(|e| unreachable("JWKS", e))?;
    let metadata = metadata.set_jwks(jwks);
    let url_field = |name: &str| {
        let url = document.get(name).and_then(|v| v.as_str()).and_then(|s| Url::parse(s).ok())?;
        if secure_endpoint(&url) {
            Some(url)
        } else {
            log::warn!("provider {}: ignoring {name} {:?}: not an https URL", settings.id, url.as_str());
            None
        }
    };
    let extras = Extras {
        end_session_endpoint: url_field("end_session_endpoint"),
        revocation_endpoint: url_field("revocation_endpoint"),
        iss_parameter_supported: document
            .get("authorization_response_iss_parameter_supported")
            .and_then(|v| v.as_bool())
            .unwrap_or(false),
    };
    build_ready(settings, redirect, metadata, extras)
}

/// Whether doorman may send a browser or a request to `url`: https, or http
/// to this machine (a provider run locally for development or tests).
pub fn secure_endpoint(url: &Url) -> bool {
    match url.scheme() {
        "https" => url.host().is_some(),
        "http" => match url.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
            None => false,
        },
        _ => false,
    }
}

/// Every endpoint discovery names must be [`secure_endpoint`].
fn check_endpoints(metadata: &CoreProviderMetadata) -> Result<(), OidcError> {
    let mut endpoints: Vec<(&str, &Url)> =
        vec![("authorization_endpoint", metadata.authorization_endpoint().url()), ("jwks_uri", metadata.jwks_uri().url())];
    if let Some(token) = metadata.token_endpoint() {
        endpoints.push(("token_endpoint", token.url()));
    }
    if let Some(userinfo) = metadata.userinfo_endpoint() {
        endpoints.push(("userinfo_endpoint", userinfo.url()));
    }
    match endpoints.into_iter().find(|(_, url)| !secure_endpoint(url)) {
        Some((name, url)) => Err(unreachable("discovery", format!("{name} {:?} is not an https URL", url.as_str()))),
        None => Ok(()),
    }
}

fn build_ready(
    settings: &ProviderSettings,
    redirect: &RedirectUrl,
    metadata: CoreProviderMetadata,
    extras: Extras,
) -> Result<Ready, OidcError> {
    use CoreJwsSigningAlgorithm::*;
    let allowed_algs: Vec<CoreJwsSigningAlgorithm> = metadata
        .id_token_signing_alg_values_supported()
        .iter()
        .filter(|alg| !matches!(alg, None | HmacSha256 | HmacSha384 | HmacSha512))
        .cloned()
        .collect();
    if allowed_algs.is_empty() {
        return Err(unreachable("discovery", "the provider announces no asymmetric ID token algorithm"));
    }
    let client = OidcClient::from_provider_metadata(
        metadata.clone(),
        ClientId::new(settings.client_id.clone()),
        settings.client_secret.as_ref().map(|s| ClientSecret::new(s.expose().to_string())),
    )
    .set_redirect_uri(redirect.clone());
    Ok(Ready {
        issuer: metadata.issuer().as_str().to_string(),
        client,
        metadata,
        allowed_algs,
        end_session_endpoint: extras.end_session_endpoint,
        revocation_endpoint: extras.revocation_endpoint,
        iss_parameter_supported: extras.iss_parameter_supported,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_must_be_https_or_loopback() {
        for ok in ["https://idp.example.com/a", "http://127.0.0.1:9000/x", "http://[::1]/x", "http://localhost:8080/"] {
            assert!(secure_endpoint(&Url::parse(ok).unwrap()), "{ok}");
        }
        for bad in ["http://idp.example.com/", "javascript:alert(1)", "data:text/html,x", "ftp://idp.example.com/"] {
            assert!(!secure_endpoint(&Url::parse(bad).unwrap()), "{bad}");
        }
    }
}
