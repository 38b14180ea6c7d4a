//! Signing in and out: password checks, opening a browser session, renewing
//! its access cookie and ending it. Plain functions over [`AppState`].

use chrono::Utc;

use super::cookies::LoginCookies;
use super::password;
use super::AuthError;
use crate::crypto::{random_token, sha256_hex};
use crate::db::{self, sessions::SessionRow, users::UserView};
use crate::state::AppState;

/// Prefix of browser-session tokens.
pub const SESSION_PREFIX: &str = "dms_";

/// Where a session came from, when it came from a provider.
#[derive(Debug, Clone, Default)]
pub struct ProviderLogin {
    pub provider_id: String,
    /// The provider's session id (`sid`), for back-channel logout.
    pub sid: Option<String>,
    /// The ID token, encrypted, for `id_token_hint` at logout.
    pub id_token_enc: Option<String>,
}

/// Checks a username and password; the user on success.
pub async fn password_login(state: &AppState, username: &str, password: &str) -> Result<UserView, AuthError> {
    if !state.settings.auth.password_login {
        return Err(AuthError::PasswordLoginDisabled);
    }
    // A name no account can have is refused before any lookup.
    if crate::accounts::Username::parse(username).is_err() || password.is_empty() {
        return Err(AuthError::BadCredentials);
    }
    state.throttle.check(username).map_err(AuthError::TooManyAttempts)?;
    let name = username.to_string();
    let view = state
        .db
        .run(move |conn| match db::users::find_by_username(conn, &name)? {
            Some(user) => db::users::view_by_id(conn, &user.id),
            None => Ok(None),
        })
        .await?;
    let stored = view.as_ref().and_then(|v| v.user.password_hash.clone());
    let matches = password::verify_blocking(stored, password.to_string()).await?;
    match view {
        Some(view) if matches => {
            state.throttle.succeed(username);
            Ok(view)
        }
        _ => {
            state.throttle.fail(username);
            Err(AuthError::BadCredentials)
        }
    }
}

/// A browser session about to be stored: its row and its cookie's value.
pub struct NewSession {
    pub row: SessionRow,
    token: String,
}

/// A new session for `user_id` (from a provider, when `provider` is given).
pub fn new_session(state: &AppState, user_id: &str, provider: Option<ProviderLogin>) -> NewSession {
    let token = format!("{SESSION_PREFIX}{}", random_token(32));
    let now = db::now();
    let ttl = chrono::Duration::from_std(state.settings.auth.session_ttl).unwrap_or(chrono::Duration::days(7));
    let provider = provider.unwrap_or_default();
    let row = SessionRow {
        id: db::new_id(),
        user_id: user_id.to_string(),
        token_hash: sha256_hex(&token),
        provider_id: Some(provider.provider_id).filter(|p| !p.is_empty()),
        provider_sid: provider.sid,
        id_token_enc: provider.id_token_enc,
        created_at: now,
        expires_at: now + ttl,
        revoked_at: None,
    };
    NewSession { row, token }
}

impl NewSession {
    /// The cookies of this session, once stored, with its first access JWT.
    pub fn cookies(self, state: &AppState, user: &UserView) -> LoginCookies {
        let (access_token, _) = state.access.issue(user, &self.row.id, state.settings.auth.access_ttl, Utc::now());
        LoginCookies { access_token, session_token: self.token, csrf_token: random_token(24) }
    }
}

/// Opens a browser session for `user` and signs its first access cookie.
pub async fn open_session(state: &AppState, user: &UserView) -> Result<LoginCookies, AuthError> {
    let session = new_session(state, &user.user.id, None);
    let row = session.row.clone();
    state.db.run(move |conn| db::sessions::insert(conn, &row)).await?;
    Ok(session.cookies(state, user))
}

/// Finds the live session of a session cookie, with its user.
pub async fn live_session(state: &AppState, session_token: &str) -> Result<(SessionRow, UserView), AuthError> {
    if !session_token.starts_with(SESSION_PREFIX) || session_token.len() > 200 {
        return Err(AuthError::InvalidSession);
    }
    let hash = sha256_hex(session_token);
    let found = state
        .db
        .run(move |conn| {
            let Some(session) = db::sessions::find_by_hash(conn, &hash)? else { return Ok(None) };
            let Some(user) = db::users::view_by_id(conn, &session.user_id)? else { return Ok(None) };
            Ok(Some((session, user)))
        })
        .await?;
    match found {
        Some((session, user)) if session.is_live(db::now()) => Ok((session, user)),
        _ => Err(AuthError::InvalidSession),
    }
}

/// A new access cookie for a live session. External users past
/// `valid_until` must sign in again.
pub async fn refresh(state: &AppState, session_token: &str) -> Result<String, AuthError> {
    let (session, user) = live_session(state, session_token).await?;
    let user = crate::oidc::lifecycle::ensure_valid(state, user).await?;
    let (access_token, _) = state.access.issue(&user, &session.id, state.settings.auth.access_ttl, Utc::now());
    Ok(access_token)
}

/// Ends the session of a session cookie; the ended session, if it was live.
pub async fn logout(state: &AppState, session_token: &str) -> Result<Option<(SessionRow, UserView)>, AuthError> {
    let Ok((session, user)) = live_session(state, session_token).await else { return Ok(None) };
    let id = session.id.clone();
    state.db.run(move |conn| db::sessions::revoke(conn, &id)).await?;
    state.session_cache.invalidate(&session.id);
    Ok(Some((session, user)))
}
