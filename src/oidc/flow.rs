//! The pending sign-in: `state`, `nonce`, PKCE verifier, expected issuer and
//! `next`, kept in a short-lived encrypted cookie on `/oidc`, so any
//! instance can finish the flow and nothing piles up on the server.

use actix_web::cookie::{time, Cookie, CookieJar, Key, SameSite};
use actix_web::HttpRequest;
use serde::{Deserialize, Serialize};

use crate::config::Settings;

pub const COOKIE: &str = "doorman_oidc";
const PATH: &str = "/oidc";
/// How long a sign-in at the provider may take.
pub const LIFETIME_SECS: i64 = 600;

/// A sign-in started at `/oidc/authenticate`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PendingLogin {
    pub provider: String,
    pub issuer: String,
    pub state: String,
    pub nonce: String,
    pub verifier: String,
    pub next: String,
    /// Seconds since the epoch.
    pub expires: i64,
}

fn key(secret: &[u8; 64]) -> Key {
    Key::from(secret)
}

fn attributes(cookie: &mut Cookie<'static>, settings: &Settings) {
    cookie.set_path(PATH);
    cookie.set_http_only(true);
    cookie.set_secure(settings.server.secure_cookies());
    cookie.set_same_site(SameSite::Lax);
}

/// The encrypted cookie carrying `pending`.
pub fn cookie(pending: &PendingLogin, secret: &[u8; 64], settings: &Settings) -> Cookie<'static> {
    let value = serde_json::to_string(pending).unwrap_or_default();
    let mut jar = CookieJar::new();
    jar.private_mut(&key(secret)).add(Cookie::new(COOKIE, value));
    let mut cookie = jar.get(COOKIE).cloned().unwrap_or_else(|| Cookie::new(COOKIE, ""));
    attributes(&mut cookie, settings);
    cookie.set_max_age(time::Duration::seconds(LIFETIME_SECS));
    cookie
}

/// The pending login of this browser, if its cookie is present and authentic.
pub fn read(req: &HttpRequest, secret: &[u8; 64]) -> Option<PendingLogin> {
    let raw = req.cookie(COOKIE)?;
    let mut jar = CookieJar::new();
    jar.add_original(raw.into_owned());
    let plain = jar.private(&key(secret)).get(COOKIE)?;
    serde_json::from_str(plain.value()).ok()
}

/// A cookie that deletes the flow cookie.
pub fn cleared(settings: &Settings) -> Cookie<'static> {
    let mut cookie = Cookie::new(COOKIE, "");
    attributes(&mut cookie, settings);
    cookie.make_removal();
    cookie
}
