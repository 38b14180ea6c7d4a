//! API tokens for SDKs and scripts: `dmn_` + 256 random bits, shown once,
//! stored as SHA-256, checked through a short per-instance cache; listed
//! (never their secret) and revoked by their owner or an admin.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{AuthError, Principal, Scope, ScopeSet, Via};
use crate::crypto::{random_token, sha256_hex};
use crate::db::{self, api_tokens::ApiTokenRow, users::UserView};
use crate::state::AppState;

/// The prefix that makes doorman tokens recognisable (secret scanners, logs).
pub const PREFIX: &str = "dmn_";
/// Longest name a token may have.
pub const MAX_NAME: usize = 100;

/// What an instance remembers of a valid token for `auth.cache_ttl`.
#[derive(Debug)]
pub struct CachedToken {
    pub token_id: String,
    pub scopes: ScopeSet,
    pub expires_at: DateTime<Utc>,
    pub user: UserView,
}

/// A freshly minted token; the only time its secret exists in clear.
#[derive(Debug, Serialize)]
pub struct NewToken {
    pub id: String,
    pub name: String,
    pub token: String,
    pub expires_at: DateTime<Utc>,
    pub scopes: ScopeSet,
}

/// What a caller may ask of a new token.
#[derive(Debug, Default)]
pub struct TokenRequest {
    pub name: Option<String>,
    pub scopes: Option<ScopeSet>,
    pub ttl: Option<Duration>,
}

/// The JSON body of `POST /api-token-tap`; every field may be left out.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRequestBody {
    pub name: Option<String>,
    /// `["account", "tokens"]` or `"account tokens"`.
    pub scopes: Option<ScopesField>,
    /// `"1h"`, `"90m"`, `"7d"`, or a number of seconds.
    pub ttl: Option<TtlField>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum ScopesField {
    List(Vec<String>),
    Text(String),
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum TtlField {
    Seconds(u64),
    Text(String),
}

impl TryFrom<TokenRequestBody> for TokenRequest {
    type Error = AuthError;

    fn try_from(body: TokenRequestBody) -> Result<Self, AuthError> {
        let scopes = match body.scopes {
            None => None,
            Some(ScopesField::Text(text)) => Some(ScopeSet::parse(&text).map_err(AuthError::InvalidInput)?),
            Some(ScopesField::List(list)) => Some(ScopeSet::parse(&list.join(" ")).map_err(AuthError::InvalidInput)?),
        };
        let ttl = match body.ttl {
            None => None,
            Some(TtlField::Seconds(0)) => return Err(AuthError::InvalidInput("ttl must be more than zero".into())),
            Some(TtlField::Seconds(s)) => Some(Duration::from_secs(s)),
            Some(TtlField::Text(text)) => {
                Some(crate::config::parse_duration(&text).map_err(|e| AuthError::InvalidInput(format!("ttl: {e}")))?)
            }
        };
        Ok(TokenRequest { name: body.name, scopes, ttl })
    }
}

/// Mints a token for `principal`, within what they hold and `api_token_ttl`.
pub async fn create(state: &AppState, principal: &Principal, request: TokenRequest) -> Result<NewToken, AuthError> {
    if !matches!(principal.via, Via::Cookie { .. }) {
        return Err(AuthError::BrowserSessionRequired);
    }
    let held = principal.scopes;
    let scopes = request.scopes.unwrap_or(held);
    if scopes.is_empty() {
        return Err(AuthError::InvalidInput("scopes must not be empty".into()));
    }
    if !scopes.is_subset_of(held) {
        let missing: Vec<&str> = scopes.iter().filter(|s| !held.contains(*s)).map(Scope::as_str).collect();
        return Err(AuthError::Forbidden(format!("a token cannot hold scopes its user does not hold: {}", missing.join(" "))));
    }
    let max_ttl = state.settings.auth.api_token_ttl;
    let ttl = request.ttl.unwrap_or(max_ttl);
    if ttl > max_ttl {
        return Err(AuthError::InvalidInput(format!("ttl must not exceed {}s", max_ttl.as_secs())));
    }
    let name = request.name.map(|n| n.trim().to_string()).unwrap_or_default();
    if name.chars().count() > MAX_NAME || name.chars().any(char::is_control) {
        return Err(AuthError::InvalidInput(format!("name must be at most {MAX_NAME} printable characters")));
    }
    let name = if name.is_empty() { "api-token-tap".to_string() } else { name };

    let token = format!("{PREFIX}{}", random_token(32));
    let now = db::now();
    let expires_at = now + chrono::Duration::from_std(ttl).map_err(|_| AuthError::InvalidInput("ttl is too long".into()))?;
    let row = ApiTokenRow {
        id: db::new_id(),
        user_id: principal.user_id.clone(),
        name: name.clone(),
        token_hash: sha256_hex(&token),
        scopes: scopes.to_string_list(),
        created_at: now,
        expires_at,
        last_used_at: None,
        revoked_at: None,
    };
    let id = row.id.clone();
    state.db.run(move |conn| db::api_tokens::insert(conn, &row)).await?;
    Ok(NewToken { id, name, token, expires_at: expires_at.and_utc(), scopes })
}

/// The caller presenting bearer `token`.
pub async fn authenticate(state: &AppState, token: &str) -> Result<Principal, AuthError> {
    if !token.starts_with(PREFIX) || token.len() > 200 {
        return Err(AuthError::InvalidToken);
    }
    let hash = sha256_hex(token);
    let mut entry = match state.token_cache.get(&hash) {
        Some(entry) => entry,
        None => {
            let loaded = load(state, hash.clone()).await?;
            let entry = Arc::new(loaded.ok_or(AuthError::InvalidToken)?);
            state.token_cache.insert(hash.clone(), entry.clone());
            entry
        }
    };
    let now = Utc::now();
    if entry.expires_at <= now {
        return Err(AuthError::InvalidToken);
    }
    let expired = |e: &CachedToken| e.user.user.is_external && e.user.valid_until.is_none_or(|vu| vu.and_utc() <= now);
    if expired(&entry) {
        entry = revalidate(state, hash).await?;
    }
    let user = &entry.user.user;
    let valid_until = entry.user.valid_until.map(|v| v.and_utc());
    Ok(Principal {
        user_id: user.id.clone(),
        username: user.username.clone(),
        email: user.email.clone(),
        channel: user.channel.clone(),
        is_admin: user.is_admin,
        is_external: user.is_external,
        valid_until,
        // A token never holds more than its user holds now.
        scopes: ScopeSet::from_iter(entry.scopes.iter().filter(|s| ScopeSet::for_user(user.is_admin).contains(*s))),
        via: Via::Bearer { token_id: entry.token_id.clone() },
    })
}

/// An external user's token whose cached `valid_until` has passed: read
/// again (another instance or a new sign-in may have moved it), else one
/// refresh at the provider is tried at once; else the user must sign in again.
async fn revalidate(state: &AppState, hash: String) -> Result<Arc<CachedToken>, AuthError> {
    state.token_cache.invalidate(&hash);
    let mut fresh = load(state, hash.clone()).await?.ok_or(AuthError::InvalidToken)?;
    fresh.user = crate::oidc::lifecycle::ensure_valid(state, fresh.user).await?;
    let fresh = Arc::new(fresh);
    state.token_cache.insert(hash, fresh.clone());
    Ok(fresh)
}

/// Reads a live token and its user, and records the use.
async fn load(state: &AppState, hash: String) -> Result<Option<CachedToken>, AuthError> {
    let found = state
        .db
        .run(move |conn| {
            let Some(row) = db::api_tokens::find_by_hash(conn, &hash)? else { return Ok(None) };
            let now: NaiveDateTime = db::now();
            if row.revoked_at.is_some() || row.expires_at <= now {
                return Ok(None);
            }
            let Some(user) = db::users::view_by_id(conn, &row.user_id)? else { return Ok(None) };
            db::api_tokens::touch(conn, &row.id, now)?;
            Ok(Some((row, user)))
        })
        .await?;
    Ok(found.map(|(row, user)| CachedToken {
        token_id: row.id,
        scopes: ScopeSet::parse(&row.scopes).unwrap_or_default(),
        expires_at: row.expires_at.and_utc(),
        user,
    }))
}

/// A token as `GET /api-tokens` shows it: never its secret nor its hash.
#[derive(Debug, Serialize)]
pub struct TokenInfo {
    pub id: String,
    pub name: String,
    pub username: String,
    pub scopes: ScopeSet,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// When an instance last read the token from the database: the use that
    /// filled its cache, so exact to about `auth.cache_ttl`.
    pub last_used_at: Option<DateTime<Utc>>,
}

/// The caller's live tokens; with `all`, everyone's (needs `users:admin`).
pub async fn list(state: &AppState, principal: &Principal, all: bool) -> Result<Vec<TokenInfo>, AuthError> {
    if all && !principal.scopes.contains(Scope::UsersAdmin) {
        return Err(AuthError::InsufficientScope(Scope::UsersAdmin));
    }
    let owner = (!all).then(|| principal.user_id.clone());
    let rows = state.db.run(move |conn| db::api_tokens::list(conn, owner.as_deref(), db::now())).await?;
    Ok(rows
        .into_iter()
        .map(|(row, username)| TokenInfo {
            id: row.id,
            name: row.name,
            username,
            scopes: ScopeSet::parse(&row.scopes).unwrap_or_default(),
            created_at: row.created_at.and_utc(),
            expires_at: row.expires_at.and_utc(),
            last_used_at: row.last_used_at.map(|t| t.and_utc()),
        })
        .collect())
}

/// Revokes token `id` of the caller, or anyone's for an admin (`users:admin`).
/// Unknown, already revoked and other people's tokens are all "not found".
/// This instance forgets the token at once; others within `auth.cache_ttl`.
pub async fn revoke(state: &AppState, principal: &Principal, id: &str) -> Result<(), AuthError> {
    let not_found = || AuthError::NotFound("no such token".into());
    if uuid::Uuid::parse_str(id).is_err() {
        return Err(not_found());
    }
    let key = id.to_string();
    let owner = principal.user_id.clone();
    let as_admin = principal.scopes.contains(Scope::UsersAdmin);
    let revoked = state
        .db
        .run(move |conn| {
            let Some(row) = db::api_tokens::find(conn, &key)? else { return Ok(None) };
            if row.revoked_at.is_some() || (row.user_id != owner && !as_admin) {
                return Ok(None);
            }
            db::api_tokens::revoke(conn, &row.id)?;
            Ok(Some(row.token_hash))
        })
        .await?;
    let hash = revoked.ok_or_else(not_found)?;
    state.token_cache.invalidate(&hash);
    Ok(())
}
