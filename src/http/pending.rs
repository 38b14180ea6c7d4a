//! The pending sign-in (`state`, `nonce`, PKCE verifier, expected issuer and
//! `next`) between `/oidc/authenticate` and `/oidc/callback`: an actix-session
//! kept in a private (encrypted and authenticated) cookie scoped to `/oidc`
//! that lives as long as a sign-in may take, so any instance can finish the
//! flow and nothing piles up on the server.

use actix_session::config::{CookieContentSecurity, PersistentSession};
use actix_session::storage::CookieSessionStore;
use actix_session::{Session, SessionMiddleware};
use actix_web::cookie::{time, Key, SameSite};

use crate::config::Settings;
use crate::sso::flow::{PendingLogin, LIFETIME_SECS};

/// The name of the cookie.
pub const COOKIE: &str = "doorman_oidc";
/// Where the browser sends it.
pub const PATH: &str = "/oidc";
const PENDING: &str = "pending";

/// The session middleware of the `/oidc` scope; `secret` is the 64-byte
/// cookie key derived from `auth.secret_key`.
pub fn middleware(settings: &Settings, secret: &[u8; 64]) -> SessionMiddleware<CookieSessionStore> {
    SessionMiddleware::builder(CookieSessionStore::default(), Key::from(secret))
        .cookie_name(COOKIE.to_string())
        .cookie_path(PATH.to_string())
        .cookie_http_only(true)
        .cookie_secure(settings.server.secure_cookies())
        .cookie_same_site(SameSite::Lax)
        .cookie_content_security(CookieContentSecurity::Private)
        .session_lifecycle(PersistentSession::default().session_ttl(time::Duration::seconds(LIFETIME_SECS)))
        .build()
}

/// Keeps `pending` until the provider sends the browser back.
pub fn keep(session: &Session, pending: &PendingLogin) -> Result<(), actix_session::SessionInsertError> {
    session.renew();
    session.insert(PENDING, pending)
}

/// The pending sign-in of this browser, if any, left in place: the
/// callback removes it with [`clear`] once the response proved (by its
/// `state`) to belong to it, so a forged link cannot end it.
pub fn peek(session: &Session) -> Option<PendingLogin> {
    session.get::<PendingLogin>(PENDING).ok().flatten()
}

/// Forgets any pending sign-in (the cookie is removed).
pub fn clear(session: &Session) {
    session.purge();
}
