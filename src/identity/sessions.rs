//! Browser sessions: opened at sign-in (password or single sign-on), held by
//! an opaque `dms_` cookie stored only as its SHA-256, renewed into short
//! access JWTs, and ended by logout or revocation. The service keeps a
//! per-instance cache of which sessions are live, so an authenticated
//! request reads no database on its hot path.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use moka::sync::Cache;
use serde::Serialize;

use super::access::{AccessClaims, AccessKeys};
use super::audit::{self, Audit, Event, Kind, Origin};
use super::revocation::{CachedSession, SessionCache};
use super::{EndedCredentials, ExternalValidity, Identity, IdentityError, Principal, ScopeSet, Via};
use crate::clock::Clock;
use crate::config::{AuthSettings, Ttl};
use crate::crypto::{random_token, OpaqueToken, SecretString};
use crate::db::{self, sessions::SessionRow, users::UserView, Db};

/// Browser-session tokens.
pub const SESSION_TOKEN: OpaqueToken = OpaqueToken::new("dms_");

/// What a sign-in hands the browser: the access JWT, the session token and
/// the CSRF token (the HTTP layer turns them into cookies).
#[derive(Debug, Clone)]
pub struct SessionCredentials {
    pub access_token: String,
    pub session_token: SecretString,
    pub csrf_token: String,
}

/// Where a session came from, when it came from a provider.
#[derive(Debug, Clone, Default)]
pub struct ProviderLogin {
    pub provider_id: String,
    /// The provider's session id (`sid`), for back-channel logout.
    pub sid: Option<String>,
    /// The ID token, encrypted, for `id_token_hint` at logout.
    pub id_token_enc: Option<String>,
}

/// How and from where a browser session starts.
#[derive(Debug, Clone)]
pub struct SessionOrigin {
    /// `password` or `sso:<provider id>`.
    pub method: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

impl SessionOrigin {
    /// A password sign-in from `client`.
    pub fn password(client: &Origin) -> Self {
        Self { method: "password".into(), ip: client.ip.map(|ip| ip.to_string()), user_agent: client.user_agent.clone() }
    }

    /// A sign-in through provider `provider_id` from `client`.
    pub fn sso(provider_id: &str, client: &Origin) -> Self {
        Self {
            method: format!("sso:{provider_id}"),
            ip: client.ip.map(|ip| ip.to_string()),
            user_agent: client.user_agent.clone(),
        }
    }
}

/// A live browser session as `GET /me/sessions` shows it (never its token).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SessionInfo {
    pub id: String,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    pub method: String,
    /// Whether it is the session of the caller's own request.
    pub current: bool,
}

impl SessionInfo {
    fn of(row: &SessionRow, current: Option<&str>) -> Self {
        Self {
            id: row.id.clone(),
            created_at: row.created_at.and_utc(),
            last_seen_at: row.last_seen_at.and_utc(),
            user_agent: row.user_agent.clone(),
            ip: row.ip.clone(),
            method: row.method.clone(),
            current: current == Some(row.id.as_str()),
        }
    }
}

/// A browser session about to be stored: its row and its token.
pub struct NewSession {
    pub row: SessionRow,
    token: SecretString,
}

/// The sessions of one instance: the access-JWT keys and the cache of live sessions.
pub struct Sessions {
    db: Db,
    clock: Clock,
    audit: Audit,
    access: AccessKeys,
    access_ttl: Ttl,
    session_ttl: Ttl,
    /// Session id -> still live (and whose), for `auth.cache_ttl` or until revoked.
    live: SessionCache,
    /// Access JWT -> its verified claims: a JWT never changes, so its
    /// signature is checked once per instance (its `exp` at every use).
    verified: Cache<String, Arc<AccessClaims>>,
}

impl Sessions {
    pub fn new(settings: &AuthSettings, access_key: &[u8; 32], db: Db, clock: Clock, live: SessionCache, audit: Audit) -> Self {
        Self {
            db,
            clock,
            audit,
            access: AccessKeys::new(access_key),
            access_ttl: settings.access_ttl,
            session_ttl: settings.session_ttl,
            live,
            verified: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(settings.access_ttl.std().min(Duration::from_secs(300)))
                .build(),
        }
    }

    /// A new session for `user_id` (from a provider, when `provider` is
    /// given), to be stored by the caller, possibly inside a larger transaction.
    pub fn new_session(&self, user_id: &str, origin: &SessionOrigin, provider: Option<ProviderLogin>) -> NewSession {
        let minted = SESSION_TOKEN.mint();
        let now = self.clock.now_naive();
        let provider = provider.unwrap_or_default();
        let row = SessionRow {
            id: db::new_id(),
            user_id: user_id.to_string(),
            token_hash: minted.hash,
            provider_id: Some(provider.provider_id).filter(|p| !p.is_empty()),
            provider_sid: provider.sid,
            id_token_enc: provider.id_token_enc,
            created_at: now,
            expires_at: now + self.session_ttl.delta(),
            revoked_at: None,
            method: origin.method.clone(),
            ip: origin.ip.clone(),
            user_agent: origin.user_agent.clone(),
            last_seen_at: now,
        };
        NewSession { row, token: minted.secret }
    }

    /// The credentials of a stored session, with its first access JWT.
    pub fn credentials(&self, session: NewSession, user: &UserView) -> SessionCredentials {
        let (access_token, _) = self.access.issue(user, &session.row.id, self.access_ttl, self.clock.now());
        metrics::counter!("doorman_tokens_issued_total", "kind" => "session").increment(1);
        metrics::counter!("doorman_tokens_issued_total", "kind" => "access").increment(1);
        SessionCredentials { access_token, session_token: session.token, csrf_token: random_token(24) }
    }

    /// Opens a browser session for `user`, who signed in with a password
    /// from `client`, recording the sign-in in the same transaction, and
    /// signs its first access JWT.
    pub async fn open(&self, user: &UserView, client: &Origin) -> Result<SessionCredentials, IdentityError> {
        let session = self.new_session(&user.user.id, &SessionOrigin::password(client), None);
        let row = session.row.clone();
        let event = self.audit.row(
            Event::success(Kind::SignIn)
                .username(&user.user.username)
                .origin(&client.by(&user.user.username))
                .detail("method", "password")
                .detail("session_id", row.id.clone()),
        );
        let stored = event.clone();
        self.db
            .run(move |conn| {
                db::write_transaction(conn, |conn| {
                    db::sessions::insert(conn, &row)?;
                    db::audit_events::insert(conn, &stored)
                })
            })
            .await?;
        audit::log_stored(&[event]);
        Ok(self.credentials(session, user))
    }

    /// The live sessions of user `user_id`, newest first; `current` is the caller's own.
    pub async fn list(&self, user_id: &str, current: Option<&str>) -> Result<Vec<SessionInfo>, IdentityError> {
        let id = user_id.to_string();
        let now = self.clock.now_naive();
        let rows = self.db.run(move |conn| db::sessions::live_for_user(conn, &id, now)).await?;
        Ok(rows.iter().map(|row| SessionInfo::of(row, current)).collect())
    }

    /// The live session of a session token, with its user.
    pub async fn live(&self, session_token: &str) -> Result<(SessionRow, UserView), IdentityError> {
        let hash = SESSION_TOKEN.hash(session_token).ok_or(IdentityError::InvalidSession)?;
        let found = self
            .db
            .run(move |conn| {
                let Some(session) = db::sessions::find_by_hash(conn, &hash)? else { return Ok(None) };
                let Some(user) = db::users::view_by_id(conn, &session.user_id)? else { return Ok(None) };
                Ok(Some((session, user)))
            })
            .await?;
        match found {
            Some((session, user)) if session.is_live(self.clock.now_naive()) && user.user.is_active() => Ok((session, user)),
            _ => Err(IdentityError::InvalidSession),
        }
    }

    /// A new access JWT for a live session. External users past
    /// `valid_until` are vouched for again by `provider`, or must sign in again.
    pub async fn refresh(&self, session_token: &str, provider: &impl ExternalValidity) -> Result<String, IdentityError> {
        let (session, user) = self.live(session_token).await?;
        let user = super::ensure_valid(user, self.clock.now_naive(), provider).await?;
        let (access_token, _) = self.access.issue(&user, &session.id, self.access_ttl, self.clock.now());
        let (id, now) = (session.id.clone(), self.clock.now_naive());
        self.db.run(move |conn| db::sessions::touch(conn, &id, now)).await?;
        metrics::counter!("doorman_tokens_issued_total", "kind" => "access").increment(1);
        Ok(access_token)
    }

    /// Ends the session of a session token, recording the sign-out in the
    /// same transaction; the ended session, if it was live. The caller
    /// hands it to [`Identity::forget_ended`].
    async fn end_by_token(&self, session_token: &str, client: &Origin) -> Result<Option<(SessionRow, UserView)>, IdentityError> {
        let Ok((session, user)) = self.live(session_token).await else { return Ok(None) };
        let ended = EndedCredentials { session_ids: vec![session.id.clone()], ..Default::default() };
        let id = session.id.clone();
        let now = self.clock.now_naive();
        let event = self.audit.row(
            Event::success(Kind::SignOut)
                .username(&user.user.username)
                .origin(&client.by(&user.user.username))
                .detail("session_id", session.id.clone())
                .detail("method", session.method.clone()),
        );
        let stored = event.clone();
        self.db
            .run(move |conn| {
                db::write_transaction(conn, |conn| {
                    db::sessions::revoke(conn, &id, now)?;
                    ended.announce(conn)?;
                    db::audit_events::insert(conn, &stored)
                })
            })
            .await?;
        audit::log_stored(&[event]);
        Ok(Some((session, user)))
    }

    /// Whether browser session `id` is live, from the cache or the database.
    pub async fn is_live(&self, id: &str) -> Result<bool, IdentityError> {
        if let Some(cached) = self.live.get(id) {
            metrics::counter!("doorman_cache_requests_total", "cache" => "sessions", "result" => "hit").increment(1);
            return Ok(cached.live);
        }
        metrics::counter!("doorman_cache_requests_total", "cache" => "sessions", "result" => "miss").increment(1);
        let key = id.to_string();
        let now = self.clock.now_naive();
        let found = self.db.run(move |conn| db::sessions::find(conn, &key)).await?;
        let cached = match found {
            Some(s) => CachedSession { live: s.is_live(now), user_id: s.user_id },
            None => CachedSession { live: false, user_id: String::new() },
        };
        let live = cached.live;
        self.live.insert(id.to_string(), cached);
        Ok(live)
    }

    /// The verified claims of access JWT `token`, checked once per instance.
    fn verified(&self, token: &str) -> Option<Arc<AccessClaims>> {
        if let Some(claims) = self.verified.get(token) {
            return Some(claims);
        }
        let claims = Arc::new(self.access.verify(token)?);
        self.verified.insert(token.to_string(), claims.clone());
        Some(claims)
    }

    /// The caller presenting access JWT `token`, if it is authentic,
    /// unexpired, its session live and (for an external user) before
    /// `valid_until`. No database read while the session is cached. An
    /// authentic cookie that merely ran out while its session lives is
    /// [`IdentityError::AccessExpired`] (refresh and retry), never the
    /// error of an ended session.
    pub async fn authenticate(&self, token: &str) -> Result<Principal, IdentityError> {
        let now = self.clock.now();
        let claims = self.verified(token).ok_or(IdentityError::InvalidSession)?;
        let unexpired = claims.exp > now.timestamp();
        if !unexpired {
            // The refresh decides about `valid_until` (the provider may vouch again).
            return Err(if self.is_live(&claims.sid).await? {
                IdentityError::AccessExpired
            } else {
                IdentityError::InvalidSession
            });
        }
        let valid_until = claims.vu.and_then(|s| DateTime::from_timestamp(s, 0));
        if claims.ext && valid_until.is_none_or(|vu| vu <= now) {
            return Err(IdentityError::SignInAgain);
        }
        if !self.is_live(&claims.sid).await? {
            return Err(IdentityError::InvalidSession);
        }
        let claims = claims.as_ref().clone();
        Ok(Principal {
            user_id: claims.sub,
            username: claims.usr,
            email: claims.email,
            channel: claims.ch,
            is_admin: claims.adm,
            is_external: claims.ext,
            valid_until,
            scopes: ScopeSet::for_user(claims.adm),
            via: Via::Cookie { session_id: claims.sid },
            providers: claims.prv,
        })
    }
}

/// `POST /me/logout`: ends the session of `session_token`; the ended
/// session and its user, if it was live.
pub async fn logout(
    identity: &Identity,
    session_token: &str,
    client: &Origin,
) -> Result<Option<(SessionRow, UserView)>, IdentityError> {
    let ended = identity.sessions.end_by_token(session_token, client).await?;
    if let Some((session, _)) = &ended {
        identity.forget_ended(&EndedCredentials { session_ids: vec![session.id.clone()], ..Default::default() });
    }
    Ok(ended)
}

/// `DELETE /me/sessions/{id}`: ends one live session of the caller; any
/// other id (unknown, ended, someone else's) is "not found".
pub async fn end_own(identity: &Identity, caller: &Principal, id: &str, client: &Origin) -> Result<(), IdentityError> {
    let not_found = || IdentityError::NotFound("no such session".into());
    if uuid::Uuid::parse_str(id).is_err() {
        return Err(not_found());
    }
    let (key, owner) = (id.to_string(), caller.user_id.clone());
    let now = identity.clock.now_naive();
    let event = identity.audit.row(
        Event::success(Kind::SessionEnded)
            .username(&caller.username)
            .origin(&client.by(&caller.username))
            .detail("session_id", id)
            .detail("current", caller.session_id() == Some(id)),
    );
    let stored = event.clone();
    let ended = identity
        .db
        .run(move |conn| {
            db::write_transaction(conn, |conn| {
                let Some(row) = db::sessions::find(conn, &key)? else { return Ok(false) };
                if row.user_id != owner || !row.is_live(now) {
                    return Ok(false);
                }
                db::sessions::revoke(conn, &row.id, now)?;
                EndedCredentials { session_ids: vec![row.id.clone()], ..Default::default() }.announce(conn)?;
                db::audit_events::insert(conn, &stored)?;
                Ok(true)
            })
        })
        .await?;
    if !ended {
        return Err(not_found());
    }
    audit::log_stored(&[event]);
    identity.forget_ended(&EndedCredentials { session_ids: vec![id.to_string()], ..Default::default() });
    Ok(())
}

/// `GET /users/{username}/sessions`: that user's live sessions.
pub async fn of_user(identity: &Identity, username: &str) -> Result<Vec<SessionInfo>, IdentityError> {
    let (user_id, _) = find_user(identity, username).await?;
    identity.sessions.list(&user_id, None).await
}

/// `POST /users/{username}/sign-out` by an administrator from `client`:
/// ends every session and API token of the user, recorded in the same
/// transaction.
pub async fn sign_out_user(identity: &Identity, username: &str, client: &Origin) -> Result<EndedCredentials, IdentityError> {
    let (user_id, name) = find_user(identity, username).await?;
    identity.end_all_credentials(&user_id, Event::success(Kind::UserSignedOut).username(name).origin(client)).await
}

/// The id and the username (as stored) of the user named `username`.
async fn find_user(identity: &Identity, username: &str) -> Result<(String, String), IdentityError> {
    let not_found = || IdentityError::NotFound(format!("no user {username:?}"));
    super::users::Username::parse(username).map_err(|_| not_found())?;
    let name = username.to_string();
    let user = identity.db.run(move |conn| db::users::find_by_username(conn, &name)).await?;
    user.map(|u| (u.id, u.username)).ok_or_else(not_found)
}
