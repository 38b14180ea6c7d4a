//! API tokens for SDKs and scripts: `dmn_` + 256 random bits, shown once,
//! stored as SHA-256, checked through a short per-instance cache; listed
//! (never their secret) and revoked by their owner or an admin.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::audit::{self, Audit, Event, Kind, Origin};
use super::revocation::TokenCache;
use super::{EndedCredentials, ExternalValidity, Identity, IdentityError, Principal, Scope, ScopeSet, Via};
use crate::clock::Clock;
use crate::config::{AuthSettings, Ttl};
use crate::crypto::{OpaqueToken, SecretString};
use crate::db::{self, api_tokens::ApiTokenRow, users::UserView, Db};

/// API tokens: `dmn_` makes them recognisable (secret scanners, logs).
pub const API_TOKEN: OpaqueToken = OpaqueToken::new("dmn_");
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
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NewToken {
    pub id: String,
    pub name: String,
    /// The bearer token (`dmn_...`), shown this once.
    #[serde(serialize_with = "expose")]
    #[schema(value_type = String)]
    pub token: SecretString,
    pub expires_at: DateTime<Utc>,
    #[schema(value_type = Vec<String>, examples(json!(["account", "tokens"])))]
    pub scopes: ScopeSet,
}

/// What a caller may ask of a new token.
#[derive(Debug, Default)]
pub struct TokenRequest {
    pub name: Option<String>,
    pub scopes: Option<ScopeSet>,
    pub ttl: Option<Ttl>,
}

fn expose<S: serde::Serializer>(secret: &SecretString, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(secret.expose())
}

/// The JSON body of `POST /api-token-tap`; every field may be left out.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequestBody {
    pub name: Option<String>,
    /// `["account", "tokens"]` or `"account tokens"`.
    pub scopes: Option<ScopesField>,
    /// `"1h"`, `"90m"`, `"7d"`, or a number of seconds.
    pub ttl: Option<TtlField>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum ScopesField {
    List(Vec<String>),
    Text(String),
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum TtlField {
    Seconds(u64),
    Text(String),
}

impl TryFrom<TokenRequestBody> for TokenRequest {
    type Error = IdentityError;

    fn try_from(body: TokenRequestBody) -> Result<Self, IdentityError> {
        let scopes = match body.scopes {
            None => None,
            Some(ScopesField::Text(text)) => Some(ScopeSet::parse(&text).map_err(IdentityError::InvalidInput)?),
            Some(ScopesField::List(list)) => Some(ScopeSet::parse(&list.join(" ")).map_err(IdentityError::InvalidInput)?),
        };
        let ttl = match body.ttl {
            None => None,
            Some(TtlField::Seconds(0)) => return Err(IdentityError::InvalidInput("ttl must be more than zero".into())),
            Some(TtlField::Seconds(s)) => Some(Ttl::from_secs(s)),
            Some(TtlField::Text(text)) => {
                Some(crate::config::parse_duration(&text).map_err(|e| IdentityError::InvalidInput(format!("ttl: {e}")))?)
            }
        };
        Ok(TokenRequest { name: body.name, scopes, ttl })
    }
}

/// The API tokens of one instance: minting, checking through a short
/// cache, listing and revoking.
pub struct ApiTokens {
    db: Db,
    clock: Clock,
    audit: Audit,
    max_ttl: Ttl,
    /// Token hash -> the token and its user, for `auth.cache_ttl` or until revoked.
    cache: TokenCache,
}

impl ApiTokens {
    pub fn new(settings: &AuthSettings, db: Db, clock: Clock, cache: TokenCache, audit: Audit) -> Self {
        Self { db, clock, audit, max_ttl: settings.api_token_ttl, cache }
    }

    /// Mints a token for `principal`, within what they hold and
    /// `api_token_ttl`, recording it in the same transaction.
    pub async fn create(&self, principal: &Principal, request: TokenRequest, client: &Origin) -> Result<NewToken, IdentityError> {
        if !matches!(principal.via, Via::Cookie { .. }) {
            return Err(IdentityError::BrowserSessionRequired);
        }
        let held = principal.scopes;
        let scopes = request.scopes.unwrap_or(held);
        if scopes.is_empty() {
            return Err(IdentityError::InvalidInput("scopes must not be empty".into()));
        }
        if !scopes.is_subset_of(held) {
            let missing: Vec<&str> = scopes.iter().filter(|s| !held.contains(*s)).map(Scope::as_str).collect();
            return Err(IdentityError::Forbidden(format!(
                "a token cannot hold scopes its user does not hold: {}",
                missing.join(" ")
            )));
        }
        let ttl = request.ttl.unwrap_or(self.max_ttl);
        if ttl > self.max_ttl {
            return Err(IdentityError::InvalidInput(format!("ttl must not exceed {}s", self.max_ttl.as_secs())));
        }
        let (row, token) = self.prepare(&principal.user_id, request.name.as_deref(), scopes, ttl)?;
        let event = self.audit.row(created_event(&row, &principal.username).origin(&client.by(&principal.username)));
        let stored = event.clone();
        self.db
            .run(move |conn| {
                db::write_transaction(conn, |conn| {
                    db::api_tokens::insert(conn, &row)?;
                    db::audit_events::insert(conn, &stored)
                })
            })
            .await?;
        audit::log_stored(&[event]);
        metrics::counter!("doorman_tokens_issued_total", "kind" => "api_token").increment(1);
        Ok(token)
    }

    /// A token for an approved device request (RFC 8628, `POST /token`): no
    /// browser session is involved, the user's approval was. `scopes` must
    /// already lie within what the user holds; the lifetime is
    /// `auth.api_token_ttl`. The caller stores the row (in its transaction).
    pub fn prepare_for_device(
        &self,
        user_id: &str,
        label: &str,
        scopes: ScopeSet,
    ) -> Result<(ApiTokenRow, NewToken), IdentityError> {
        if scopes.is_empty() {
            return Err(IdentityError::InvalidInput("scopes must not be empty".into()));
        }
        self.prepare(user_id, Some(label), scopes, self.max_ttl)
    }

    /// Checks the name and mints: the row to store and what its holder sees once.
    fn prepare(
        &self,
        user_id: &str,
        name: Option<&str>,
        scopes: ScopeSet,
        ttl: Ttl,
    ) -> Result<(ApiTokenRow, NewToken), IdentityError> {
        let name = name.map(|n| n.trim().to_string()).unwrap_or_default();
        if name.chars().count() > MAX_NAME || name.chars().any(char::is_control) {
            return Err(IdentityError::InvalidInput(format!("name must be at most {MAX_NAME} printable characters")));
        }
        let name = if name.is_empty() { "api-token-tap".to_string() } else { name };
        let minted = API_TOKEN.mint();
        let now = self.clock.now_naive();
        let expires_at = now + ttl.delta();
        let row = ApiTokenRow {
            id: db::new_id(),
            user_id: user_id.to_string(),
            name: name.clone(),
            token_hash: minted.hash,
            scopes: scopes.to_string_list(),
            created_at: now,
            expires_at,
            last_used_at: None,
            revoked_at: None,
        };
        let token = NewToken { id: row.id.clone(), name, token: minted.secret, expires_at: expires_at.and_utc(), scopes };
        Ok((row, token))
    }

    /// The caller presenting bearer `token`. An external user past
    /// `valid_until` is vouched for again by `provider`, or refused.
    pub async fn authenticate(&self, token: &str, provider: &impl ExternalValidity) -> Result<Principal, IdentityError> {
        let hash = API_TOKEN.hash(token).ok_or(IdentityError::InvalidToken)?;
        let mut entry = match self.cache.get(&hash) {
            Some(entry) => {
                metrics::counter!("doorman_cache_requests_total", "cache" => "tokens", "result" => "hit").increment(1);
                entry
            }
            None => {
                metrics::counter!("doorman_cache_requests_total", "cache" => "tokens", "result" => "miss").increment(1);
                let entry = Arc::new(self.load(hash.clone()).await?.ok_or(IdentityError::InvalidToken)?);
                self.cache.insert(hash.clone(), entry.clone());
                entry
            }
        };
        let now = self.clock.now();
        if entry.expires_at <= now {
            return Err(IdentityError::InvalidToken);
        }
        let expired = |e: &CachedToken| e.user.user.is_external && e.user.valid_until.is_none_or(|vu| vu.and_utc() <= now);
        if expired(&entry) {
            entry = self.revalidate(hash, provider).await?;
        }
        Ok(Principal::bearer(&entry.user, &entry.token_id, entry.scopes))
    }

    /// An external user's token whose cached `valid_until` has passed: read
    /// again (another instance or a new sign-in may have moved it), else the
    /// provider is asked at once; else the user must sign in again.
    async fn revalidate(&self, hash: String, provider: &impl ExternalValidity) -> Result<Arc<CachedToken>, IdentityError> {
        self.cache.invalidate(&hash);
        let mut fresh = self.load(hash.clone()).await?.ok_or(IdentityError::InvalidToken)?;
        fresh.user = super::ensure_valid(fresh.user, self.clock.now_naive(), provider).await?;
        let fresh = Arc::new(fresh);
        self.cache.insert(hash, fresh.clone());
        Ok(fresh)
    }

    /// Reads a live token and its user, and records the use.
    async fn load(&self, hash: String) -> Result<Option<CachedToken>, IdentityError> {
        let now = self.clock.now_naive();
        let found = self
            .db
            .run(move |conn| {
                let Some(row) = db::api_tokens::find_by_hash(conn, &hash)? else { return Ok(None) };
                if row.revoked_at.is_some() || row.expires_at <= now {
                    return Ok(None);
                }
                let Some(user) = db::users::view_by_id(conn, &row.user_id)? else { return Ok(None) };
                if !user.user.is_active() {
                    return Ok(None);
                }
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

    /// The caller's live tokens; with `all`, everyone's (needs `users:admin`).
    pub async fn list(&self, principal: &Principal, all: bool) -> Result<Vec<TokenInfo>, IdentityError> {
        if all && !principal.scopes.contains(Scope::UsersAdmin) {
            return Err(IdentityError::InsufficientScope(Scope::UsersAdmin));
        }
        let owner = (!all).then(|| principal.user_id.clone());
        let now = self.clock.now_naive();
        let rows = self.db.run(move |conn| db::api_tokens::list(conn, owner.as_deref(), now)).await?;
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

    /// Revokes token `id` of the caller, or anyone's for an admin
    /// (`users:admin`), recorded and announced to every instance in the same
    /// transaction; see [`revoke`].
    async fn revoke_stored(&self, principal: &Principal, id: &str, client: &Origin) -> Result<EndedCredentials, IdentityError> {
        let not_found = || IdentityError::NotFound("no such token".into());
        if uuid::Uuid::parse_str(id).is_err() {
            return Err(not_found());
        }
        let key = id.to_string();
        let owner = principal.user_id.clone();
        let as_admin = principal.scopes.contains(Scope::UsersAdmin);
        let now = self.clock.now_naive();
        let audit = self.audit.clone();
        let client = client.by(&principal.username);
        let revoked = self
            .db
            .run(move |conn| {
                db::write_transaction(conn, |conn| {
                    let Some(row) = db::api_tokens::find(conn, &key)? else { return Ok(None) };
                    if row.revoked_at.is_some() || (row.user_id != owner && !as_admin) {
                        return Ok(None);
                    }
                    db::api_tokens::revoke(conn, &row.id, now)?;
                    let ended = EndedCredentials { session_ids: Vec::new(), token_hashes: vec![row.token_hash.clone()] };
                    ended.announce(conn)?;
                    let mut event = Event::success(Kind::ApiTokenRevoked)
                        .origin(&client)
                        .detail("token_id", row.id.clone())
                        .detail("name", row.name.clone());
                    event.username = db::users::username_of(conn, &row.user_id)?;
                    let event = audit.row(event);
                    db::audit_events::insert(conn, &event)?;
                    Ok(Some((ended, event)))
                })
            })
            .await?;
        let (ended, event) = revoked.ok_or_else(not_found)?;
        audit::log_stored(&[event]);
        Ok(ended)
    }
}

/// `DELETE /api-tokens/{id}`: revokes token `id` of the caller, or anyone's
/// for an admin (`users:admin`). Unknown, already revoked and other
/// people's tokens are all "not found".
pub async fn revoke(identity: &Identity, principal: &Principal, id: &str, client: &Origin) -> Result<(), IdentityError> {
    let ended = identity.tokens.revoke_stored(principal, id, client).await?;
    identity.forget_ended(&ended);
    Ok(())
}

/// The event of a new token of `username`, as stored in `row` (never its secret).
pub fn created_event(row: &ApiTokenRow, username: &str) -> Event {
    Event::success(Kind::ApiTokenCreated)
        .username(username)
        .detail("token_id", row.id.clone())
        .detail("name", row.name.clone())
        .detail("scopes", row.scopes.clone())
        .detail("expires_at", row.expires_at.and_utc().to_rfc3339())
}

/// A token as `GET /api-tokens` shows it: never its secret nor its hash.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenInfo {
    pub id: String,
    pub name: String,
    pub username: String,
    #[schema(value_type = Vec<String>)]
    pub scopes: ScopeSet,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// When an instance last read the token from the database: the use that
    /// filled its cache, so exact to about `auth.cache_ttl`.
    pub last_used_at: Option<DateTime<Utc>>,
}
