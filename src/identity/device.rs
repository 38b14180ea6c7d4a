//! Command-line sign-in (RFC 8628, the device authorization grant): a tool
//! asks for a pair of codes, its user approves the short one in a signed-in
//! browser, and the tool's polls with the long one end, exactly once, in an
//! ordinary API token. Both codes are stored only as SHA-256; time comes
//! from the [`Clock`]. Wrong user codes are counted per browser session and
//! per client address. A decision, and the token it brings, are recorded as
//! audit events in the transaction that stores them.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::api_tokens::{self, ApiTokens, NewToken};
use super::audit::{self, Audit, Event, Kind, Origin};
use super::throttle::Throttle;
use super::{ExternalValidity, IdentityError, Principal, Scope, ScopeSet};
use crate::clock::Clock;
use crate::crypto::{sha256_hex, OpaqueToken, SecretString};
use crate::db::device_codes::{self as rows, DeviceCodeRow, APPROVED, DENIED, ISSUED, PENDING};
use crate::db::{self, users::UserView, Db, DbError};

/// Device codes: `dmd_` + 256 random bits.
pub const DEVICE_CODE: OpaqueToken = OpaqueToken::new("dmd_");
/// The `grant_type` of the tool's polls at `POST /token`.
pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// The letters of user codes: no vowels (no words), no look-alikes.
pub const USER_CODE_ALPHABET: &[u8; 20] = b"BCDFGHJKLMNPQRSTVWXZ";
/// Letters in a user code (shown `XXXX-XXXX`).
pub const USER_CODE_LEN: usize = 8;
/// How long a request lives.
pub const LIFETIME: Duration = Duration::from_secs(600);
/// The first polling interval.
pub const INTERVAL_SECS: i32 = 5;
/// What `slow_down` adds to the interval.
pub const SLOW_DOWN_SECS: i32 = 5;
/// Longest tool label (`client_id`).
pub const MAX_CLIENT_ID: usize = 64;
/// Expired requests are kept this long (so late polls get `expired_token`).
const KEEP_EXPIRED: Duration = Duration::from_secs(24 * 3600);

/// Why a device request goes no further. The first group are the OAuth
/// answers of the two endpoints; the rest are the approval page's.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("invalid scope: {0}")]
    InvalidScope(String),
    #[error("unsupported media type")]
    UnsupportedMediaType,
    #[error("the user has not decided yet")]
    AuthorizationPending,
    /// Polled faster than the interval, which is now this many seconds.
    #[error("polling too fast")]
    SlowDown(i32),
    #[error("access denied: {0}")]
    AccessDenied(&'static str),
    #[error("the device code has expired")]
    ExpiredToken,
    #[error("invalid grant: {0}")]
    InvalidGrant(&'static str),
    /// The page: no live request has this user code.
    #[error("unknown user code")]
    UnknownCode,
    /// The page: the request was approved or denied already.
    #[error("already decided")]
    AlreadyDecided,
    /// The page: too many wrong codes; wait this many seconds.
    #[error("too many wrong codes")]
    TooManyAttempts(u64),
    /// The page: the request asks for scopes the user does not hold.
    #[error("scopes not held: {0}")]
    ScopesNotHeld(String),
}

/// A user code, normalised: 8 letters of [`USER_CODE_ALPHABET`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserCode(String);

impl UserCode {
    fn generate() -> Self {
        let mut rng = rand::rngs::OsRng;
        Self((0..USER_CODE_LEN).map(|_| USER_CODE_ALPHABET[rng.gen_range(0..USER_CODE_ALPHABET.len())] as char).collect())
    }

    /// What a person typed: any case, with or without the dash (and spaces).
    pub fn parse(text: &str) -> Option<Self> {
        let code: String = text.chars().filter(|c| *c != '-' && !c.is_whitespace()).map(|c| c.to_ascii_uppercase()).collect();
        let valid = code.len() == USER_CODE_LEN && code.bytes().all(|b| USER_CODE_ALPHABET.contains(&b));
        valid.then_some(Self(code))
    }

    /// `XXXX-XXXX`.
    pub fn display(&self) -> String {
        format!("{}-{}", &self.0[..4], &self.0[4..])
    }

    fn hash(&self) -> String {
        sha256_hex(&format!("user-code:{}", self.0))
    }
}

/// The body of `POST /oauth/device_authorization`, as a form or JSON.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthorizationParams {
    pub client_id: Option<String>,
    pub scope: Option<String>,
}

impl AuthorizationParams {
    /// Parses the body by its `Content-Type` (form: unknown parameters ignored,
    /// as OAuth asks; JSON: unknown fields refused).
    pub fn parse(content_type: Option<&str>, body: &[u8]) -> Result<Self, DeviceError> {
        let mime = content_type.map(|c| c.split(';').next().unwrap_or("").trim().to_ascii_lowercase());
        match mime.as_deref() {
            _ if body.iter().all(u8::is_ascii_whitespace) => Ok(Self::default()),
            Some("application/x-www-form-urlencoded") => {
                let mut params = Self::default();
                for (key, value) in url::form_urlencoded::parse(body) {
                    let slot = match key.as_ref() {
                        "client_id" => &mut params.client_id,
                        "scope" => &mut params.scope,
                        _ => continue,
                    };
                    if slot.replace(value.into_owned()).is_some() {
                        return Err(DeviceError::InvalidRequest(format!("{key} given more than once")));
                    }
                }
                Ok(params)
            }
            Some("application/json") => {
                serde_json::from_slice(body).map_err(|e| DeviceError::InvalidRequest(format!("invalid JSON body: {e}")))
            }
            _ => Err(DeviceError::UnsupportedMediaType),
        }
    }
}

/// The answer of `POST /oauth/device_authorization` (RFC 8628 §3.2).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeviceAuthorization {
    #[serde(serialize_with = "expose")]
    #[schema(value_type = String)]
    pub device_code: SecretString,
    pub user_code: String,
    pub verification_uri: String,
    pub verification_uri_complete: String,
    pub expires_in: u64,
    pub interval: i32,
}

fn expose<S: serde::Serializer>(secret: &SecretString, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(secret.expose())
}

/// A request as the approval page shows it.
#[derive(Debug, Serialize)]
pub struct RequestView {
    /// `XXXX-XXXX`.
    pub user_code: String,
    /// The tool's label.
    pub client_id: String,
    /// The scopes asked for; `None`: every scope the user holds.
    pub scopes: Option<Vec<String>>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// Who tries a user code on the page: their browser session and address.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub session_id: String,
    pub ip: std::net::IpAddr,
}

/// The outcome of a decision on the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Approve,
    Deny,
}

/// The device flow: its store is the database, as is the count of user
/// codes tried (shared by every instance).
pub struct DeviceFlow {
    db: Db,
    clock: Clock,
    audit: Audit,
    wrong_codes: Throttle,
}

enum PollStep {
    Pending,
    SlowDown(i32),
    Approved(Box<DeviceCodeRow>, Box<UserView>),
}

impl DeviceFlow {
    pub fn new(db: Db, clock: Clock, audit: Audit) -> Self {
        Self { wrong_codes: Throttle::new(db.clone(), clock.clone()), db, clock, audit }
    }

    /// Starts a request for tool `client_id`, asking `scope` (all the
    /// approving user holds when `None`); `verification_uri` is the page.
    pub async fn authorize(
        &self,
        params: AuthorizationParams,
        verification_uri: &str,
    ) -> Result<DeviceAuthorization, DeviceError> {
        let client_id = params.client_id.map(|c| c.trim().to_string()).unwrap_or_default();
        if client_id.is_empty() || client_id.chars().count() > MAX_CLIENT_ID || client_id.chars().any(|c| c.is_control()) {
            return Err(DeviceError::InvalidRequest(format!(
                "client_id must name the tool in 1 to {MAX_CLIENT_ID} printable characters"
            )));
        }
        let scopes = match params.scope.as_deref() {
            None => None,
            Some(text) => {
                let set = ScopeSet::parse(text).map_err(DeviceError::InvalidScope)?;
                if set.is_empty() {
                    return Err(DeviceError::InvalidScope("scope is empty".into()));
                }
                Some(set.to_string_list())
            }
        };
        let now = self.clock.now_naive();
        let expires_at = now + TimeDelta::from_std(LIFETIME).unwrap_or(TimeDelta::MAX);
        let forget_before = now - TimeDelta::from_std(KEEP_EXPIRED).unwrap_or(TimeDelta::MAX);
        // A user code equal to a kept one is drawn again (unique index).
        for _ in 0..3 {
            let device_code = DEVICE_CODE.mint();
            let user_code = UserCode::generate();
            let row = DeviceCodeRow {
                id: db::new_id(),
                device_code_hash: device_code.hash,
                user_code_hash: user_code.hash(),
                client_id: client_id.clone(),
                scopes: scopes.clone(),
                status: PENDING.into(),
                interval_secs: INTERVAL_SECS,
                created_at: now,
                expires_at,
                last_polled_at: None,
                user_id: None,
                granted_scopes: None,
                decided_at: None,
            };
            let stored = self
                .db
                .run(move |conn| {
                    rows::delete_expired(conn, forget_before)?;
                    rows::insert(conn, &row)
                })
                .await;
            match stored {
                Err(e) if e.is_unique_violation() => continue,
                Err(e) => return Err(e.into()),
                Ok(()) => {
                    let display = user_code.display();
                    return Ok(DeviceAuthorization {
                        device_code: device_code.secret,
                        verification_uri_complete: format!("{verification_uri}?user_code={display}"),
                        user_code: display,
                        verification_uri: verification_uri.to_string(),
                        expires_in: LIFETIME.as_secs(),
                        interval: INTERVAL_SECS,
                    });
                }
            }
        }
        Err(DeviceError::Identity(IdentityError::Internal("three user codes in a row were taken".into())))
    }

    /// A poll of the tool (`POST /token`) from `client`: pending, slow down,
    /// denied, expired, or, exactly once, its API token (recorded with it).
    pub async fn poll(
        &self,
        tokens: &ApiTokens,
        provider: &impl ExternalValidity,
        device_code: Option<&str>,
        client_id: Option<&str>,
        client: &Origin,
    ) -> Result<NewToken, DeviceError> {
        let device_code = device_code.ok_or_else(|| DeviceError::InvalidRequest("device_code is required".into()))?;
        let client_id =
            client_id.map(str::to_string).ok_or_else(|| DeviceError::InvalidRequest("client_id is required".into()))?;
        let hash = DEVICE_CODE.hash(device_code).ok_or(DeviceError::InvalidGrant("unknown device_code"))?;
        let now = self.clock.now_naive();
        let step = self
            .db
            .run(move |conn| {
                let Some(row) = rows::find_by_device_code(conn, &hash)? else {
                    return Ok(Err(DeviceError::InvalidGrant("unknown device_code")));
                };
                if row.client_id != client_id.trim() {
                    return Ok(Err(DeviceError::InvalidGrant("this device_code was issued to another client_id")));
                }
                match row.status.as_str() {
                    ISSUED => return Ok(Err(DeviceError::InvalidGrant("this device_code was exchanged already"))),
                    DENIED => return Ok(Err(DeviceError::AccessDenied("the user denied the request"))),
                    _ if row.expires_at <= now => return Ok(Err(DeviceError::ExpiredToken)),
                    APPROVED => {
                        let user_id = row.user_id.clone().unwrap_or_default();
                        return Ok(match db::users::view_by_id(conn, &user_id)? {
                            Some(user) => Ok(PollStep::Approved(Box::new(row), Box::new(user))),
                            None => Err(DeviceError::AccessDenied("the approving user no longer exists")),
                        });
                    }
                    _ => {}
                }
                let too_soon = row.last_polled_at.is_some_and(|last| now < last + TimeDelta::seconds(row.interval_secs.into()));
                let interval = if too_soon { row.interval_secs.saturating_add(SLOW_DOWN_SECS) } else { row.interval_secs };
                rows::polled(conn, &row.id, now, interval)?;
                Ok(Ok(if too_soon { PollStep::SlowDown(interval) } else { PollStep::Pending }))
            })
            .await??;
        let (row, user) = match step {
            PollStep::Pending => return Err(DeviceError::AuthorizationPending),
            PollStep::SlowDown(interval) => return Err(DeviceError::SlowDown(interval)),
            PollStep::Approved(row, user) => (row, user),
        };
        // An external user's provider must still vouch for them.
        let user = super::ensure_valid(*user, now, provider)
            .await
            .map_err(|_| DeviceError::AccessDenied("the approving user must sign in again"))?;
        // Never more than the user holds now (an admin may have been demoted since).
        let granted = ScopeSet::parse(row.granted_scopes.as_deref().unwrap_or_default()).unwrap_or_default();
        let scopes = ScopeSet::from_iter(granted.iter().filter(|s| ScopeSet::for_user(user.user.is_admin).contains(*s)));
        if scopes.is_empty() {
            return Err(DeviceError::AccessDenied("the approving user no longer holds the scopes asked for"));
        }
        let (token_row, token) = tokens.prepare_for_device(&user.user.id, &row.client_id, scopes)?;
        let event = self.audit.row(
            api_tokens::created_event(&token_row, &user.user.username)
                .origin(client)
                .detail("via", "device")
                .detail("request_id", row.id.clone()),
        );
        let (id, stored) = (row.id.clone(), event.clone());
        let claimed = self
            .db
            .run(move |conn| {
                db::write_transaction(conn, |conn| {
                    if rows::claim(conn, &id, now)? == 0 {
                        return Ok(false);
                    }
                    db::api_tokens::insert(conn, &token_row)?;
                    db::audit_events::insert(conn, &stored)?;
                    Ok(true)
                })
            })
            .await?;
        if !claimed {
            return Err(DeviceError::InvalidGrant("this device_code was exchanged already"));
        }
        audit::log_stored(&[event]);
        metrics::counter!("doorman_tokens_issued_total", "kind" => "api_token").increment(1);
        Ok(token)
    }

    /// The live request behind `user_code`, for the page. A wrong code counts
    /// against the session and the address: 5 a minute each.
    pub async fn lookup(&self, attempt: &Attempt, user_code: &str) -> Result<RequestView, DeviceError> {
        let (row, code) = self.find(attempt, user_code).await?;
        Ok(view(&row, &code))
    }

    /// Approves or denies the request behind `user_code` as `principal`
    /// from `client`, recorded in the same transaction. Approval needs the
    /// scopes asked for to be held by the user.
    pub async fn decide(
        &self,
        attempt: &Attempt,
        principal: &Principal,
        user_code: &str,
        decision: Decision,
        client: &Origin,
    ) -> Result<RequestView, DeviceError> {
        let (row, code) = self.find(attempt, user_code).await?;
        let held = principal.scopes;
        let (status, granted) = match decision {
            Decision::Deny => (DENIED, None),
            Decision::Approve => {
                let asked = match row.scopes.as_deref() {
                    Some(text) => ScopeSet::parse(text).unwrap_or_default(),
                    None => held,
                };
                if !asked.is_subset_of(held) {
                    let missing: Vec<&str> = asked.iter().filter(|s| !held.contains(*s)).map(Scope::as_str).collect();
                    return Err(DeviceError::ScopesNotHeld(missing.join(" ")));
                }
                (APPROVED, Some(asked.to_string_list()))
            }
        };
        let kind = if decision == Decision::Approve { Kind::DeviceApproved } else { Kind::DeviceDenied };
        let mut event = Event::success(kind)
            .username(&principal.username)
            .origin(client)
            .detail("client_id", row.client_id.clone())
            .detail("request_id", row.id.clone());
        if let Some(scopes) = &granted {
            event = event.detail("scopes", scopes.clone());
        }
        let event = self.audit.row(event);
        let stored = event.clone();
        let (id, user_id, now) = (row.id.clone(), principal.user_id.clone(), self.clock.now_naive());
        let changed = self
            .db
            .run(move |conn| {
                db::write_transaction(conn, |conn| {
                    let changed = rows::decide(conn, &id, status, &user_id, granted.as_deref(), now)?;
                    if changed > 0 {
                        db::audit_events::insert(conn, &stored)?;
                    }
                    Ok(changed)
                })
            })
            .await?;
        if changed == 0 {
            return Err(DeviceError::AlreadyDecided);
        }
        audit::log_stored(&[event]);
        Ok(view(&row, &code))
    }

    /// A live, undecided request by user code, counting wrong codes.
    async fn find(&self, attempt: &Attempt, user_code: &str) -> Result<(DeviceCodeRow, UserCode), DeviceError> {
        // Counted before the lookup; a right code is given back.
        let counted = self
            .wrong_codes
            .device_code(&attempt.session_id, attempt.ip)
            .await?
            .map_err(|t| DeviceError::TooManyAttempts(t.wait))?;
        let Some(code) = UserCode::parse(user_code) else { return Err(DeviceError::UnknownCode) };
        let hash = code.hash();
        let now = self.clock.now_naive();
        let row = self.db.run(move |conn| rows::find_by_user_code(conn, &hash)).await?;
        match row {
            None => Err(DeviceError::UnknownCode),
            Some(row) if row.expires_at <= now => Err(DeviceError::UnknownCode),
            Some(row) => {
                // A real code (decided or not) is not a guess.
                self.wrong_codes.succeeded(counted).await?;
                if row.status != PENDING {
                    return Err(DeviceError::AlreadyDecided);
                }
                Ok((row, code))
            }
        }
    }
}

fn view(row: &DeviceCodeRow, code: &UserCode) -> RequestView {
    RequestView {
        user_code: code.display(),
        client_id: row.client_id.clone(),
        scopes: row.scopes.as_deref().map(|s| s.split_whitespace().map(str::to_string).collect()),
        created_at: row.created_at.and_utc(),
        expires_at: row.expires_at.and_utc(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_codes_parse_in_any_form() {
        let code = UserCode::generate();
        assert_eq!(code.0.len(), 8);
        let shown = code.display();
        assert_eq!(shown.len(), 9);
        assert_eq!(UserCode::parse(&shown), Some(code.clone()));
        assert_eq!(UserCode::parse(&shown.to_lowercase()), Some(code.clone()));
        assert_eq!(UserCode::parse(&code.0), Some(code.clone()));
        assert_eq!(UserCode::parse(" bcdf-ghjk "), UserCode::parse("BCDFGHJK"));
        assert!(UserCode::parse("BCDF-GHJ").is_none());
        assert!(UserCode::parse("ABCD-EFGH").is_none(), "vowels are not in the alphabet");
        assert!(UserCode::parse("BCDF-GHJK-L").is_none());
        assert_ne!(UserCode::generate(), UserCode::generate());
    }

    #[test]
    fn authorization_bodies() {
        let form = Some("application/x-www-form-urlencoded");
        let p = AuthorizationParams::parse(form, b"client_id=doorman-python&scope=account+tokens&x=1").unwrap();
        assert_eq!((p.client_id.as_deref(), p.scope.as_deref()), (Some("doorman-python"), Some("account tokens")));
        assert!(matches!(AuthorizationParams::parse(form, b"client_id=a&client_id=b"), Err(DeviceError::InvalidRequest(_))));
        let p = AuthorizationParams::parse(Some("application/json"), br#"{"client_id": "cli"}"#).unwrap();
        assert_eq!(p.client_id.as_deref(), Some("cli"));
        assert!(matches!(AuthorizationParams::parse(Some("text/plain"), b"x"), Err(DeviceError::UnsupportedMediaType)));
    }
}
