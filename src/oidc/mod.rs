//! Single sign-on with OpenID Connect providers.

pub mod lifecycle;
pub mod logout;
pub mod next_path;

use std::time::Duration;

use actix_web::web;

use crate::config::ProviderSettings;
use crate::state::AppState;

/// The configured providers and what is known of each.
pub struct Providers {
    configured: Vec<ProviderSettings>,
}

impl Providers {
    pub fn new(settings: &[ProviderSettings]) -> Self {
        Self { configured: settings.to_vec() }
    }

    pub fn configured(&self) -> &[ProviderSettings] {
        &self.configured
    }
}

/// The HTTP client for providers: no redirects followed, short timeouts.
pub fn http_client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10))
        .build()?)
}

/// Starts provider discovery and the refresh task of this instance.
pub fn start_background_tasks(_state: web::Data<AppState>) {}
