//! The external user's lifecycle: `valid_until` follows what the provider
//! still says. A background task in every instance refreshes users shortly
//! before their `valid_until` (rows leased so exactly one instance does each);
//! a request that finds `valid_until` passed tries one refresh at once.

use std::sync::Arc;
use std::time::Duration;

use actix_web::web;
use chrono::{Duration as ChronoDuration, NaiveDateTime, Utc};
use openidconnect::{Nonce, OAuth2TokenResponse, RefreshToken, RequestTokenError, TokenResponse as _};

use super::account::{next_refresh_at, refresh_token_context};
use super::provider::Ready;
use super::OidcError;
use crate::auth::AuthError;
use crate::db::identities::{self, IdentityRow};
use crate::db::users::UserView;
use crate::db::{self};
use crate::state::AppState;

/// How long one instance holds a row it is refreshing.
const LEASE: ChronoDuration = ChronoDuration::seconds(60);
/// Rows taken per claim.
const BATCH: i64 = 100;
/// Longest wait between retries while a provider is down.
const MAX_BACKOFF_SECS: i64 = 3600;

/// `user` if the provider still vouches for them (always, for local users);
/// past `valid_until`, one refresh at the provider is tried at once.
pub async fn ensure_valid(state: &AppState, mut user: UserView) -> Result<UserView, AuthError> {
    if !user.user.is_external {
        return Ok(user);
    }
    let now = db::now();
    if user.valid_until.is_some_and(|vu| vu > now) {
        return Ok(user);
    }
    match refresh_now(state, &user.user.id).await {
        Some(valid_until) if valid_until > now => {
            user.valid_until = Some(valid_until);
            Ok(user)
        }
        _ => Err(AuthError::SignInAgain),
    }
}

/// Refreshes `user_id` at their provider now; the new `valid_until`, or
/// `None` when there is no refresh token or the refresh failed. Requests
/// for one user share one refresh, however many wait on it.
pub async fn refresh_now(state: &AppState, user_id: &str) -> Option<NaiveDateTime> {
    let key = user_id.to_string();
    state.refresh_inflight.get_with(key.clone(), refresh_user(state, key)).await
}

async fn refresh_user(state: &AppState, user_id: String) -> Option<NaiveDateTime> {
    let now = db::now();
    let id = user_id.clone();
    let claimed = state.db.run(move |conn| identities::claim_user(conn, &id, now, now + LEASE)).await.ok()?;
    match claimed {
        Some(identity) => match refresh_identity(state, identity).await {
            Outcome::Refreshed(valid_until) => Some(valid_until),
            Outcome::Refused | Outcome::Retry => None,
        },
        None => {
            // Another instance may be refreshing this user: wait for it a little.
            for _ in 0..20 {
                let id = user_id.clone();
                let identity = state.db.run(move |conn| identities::find_by_user(conn, &id)).await.ok()??;
                if identity.valid_until > db::now() {
                    return Some(identity.valid_until);
                }
                if identity.lease_until.is_none_or(|l| l < db::now()) {
                    return None;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            None
        }
    }
}

/// What one refresh came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// `valid_until` moved to this time.
    Refreshed(NaiveDateTime),
    /// The provider refused: `valid_until` stops moving.
    Refused,
    /// The provider could not be reached: tried again later.
    Retry,
}

/// Refreshes one leased identity and records the outcome.
pub async fn refresh_identity(state: &AppState, identity: IdentityRow) -> Outcome {
    let result = exchange_refresh_token(state, &identity).await;
    let id = identity.id.clone();
    let outcome = match result {
        Ok(rotated) => {
            let validity = ChronoDuration::from_std(state.settings.auth.external_validity).unwrap_or(ChronoDuration::hours(24));
            let valid_until = db::now() + validity;
            let next = next_refresh_at(state, valid_until);
            let sealed = rotated.map(|t| state.keys.vault.seal(&refresh_token_context(&identity.id), &t));
            let stored = state.db.run(move |conn| identities::refreshed(conn, &id, valid_until, sealed.as_deref(), next)).await;
            match stored {
                Ok(_) => Outcome::Refreshed(valid_until),
                Err(_) => Outcome::Retry,
            }
        }
        Err(Failure::Refused(reason)) => {
            log::warn!("provider {} refused to refresh user {}: {reason}", identity.provider_id, identity.user_id);
            let _ = state.db.run(move |conn| identities::refused(conn, &id)).await;
            Outcome::Refused
        }
        Err(Failure::Unreachable(reason)) => {
            let failures = identity.refresh_failures.saturating_add(1);
            let wait = (30i64 << failures.min(7)).min(MAX_BACKOFF_SECS);
            log::warn!(
                "provider {} unreachable refreshing user {} (attempt {failures}, next in {wait}s): {reason}",
                identity.provider_id,
                identity.user_id
            );
            let next = db::now() + ChronoDuration::seconds(wait);
            let _ = state.db.run(move |conn| identities::retry_later(conn, &id, failures, next)).await;
            Outcome::Retry
        }
    };
    state.refresh_inflight.invalidate(&identity.user_id).await;
    outcome
}

enum Failure {
    Refused(String),
    Unreachable(String),
}

/// The refresh grant; a refreshed ID token must pass OpenID Connect Core
/// 12.2 (valid signature, same iss, sub and aud), else it counts as a
/// refusal. The rotated refresh token, if the provider rotated it.
async fn exchange_refresh_token(state: &AppState, identity: &IdentityRow) -> Result<Option<String>, Failure> {
    let provider = state
        .providers
        .get(&identity.provider_id)
        .ok_or_else(|| Failure::Refused(format!("provider {:?} is no longer configured", identity.provider_id)))?;
    let ready = provider.ready().map_err(|e| Failure::Unreachable(e.to_string()))?;
    if ready.issuer != identity.issuer {
        return Err(Failure::Refused("the provider's issuer changed".into()));
    }
    let sealed = identity.refresh_token_enc.as_deref().ok_or_else(|| Failure::Refused("no refresh token".into()))?;
    let token = state
        .keys
        .vault
        .open(&refresh_token_context(&identity.id), sealed)
        .map_err(|_| Failure::Refused("the stored refresh token cannot be decrypted".into()))?;
    let refresh_token = RefreshToken::new(token.expose().to_string());
    let request = ready.client.exchange_refresh_token(&refresh_token).map_err(|e| Failure::Refused(e.to_string()))?;
    let response = request.request_async(&state.http).await.map_err(|err| match err {
        RequestTokenError::ServerResponse(r) => Failure::Refused(format!("token endpoint answered {}", r.error())),
        RequestTokenError::Request(e) => Failure::Unreachable(e.to_string()),
        other => Failure::Unreachable(other.to_string()),
    })?;
    if let Some(id_token) = response.id_token() {
        let refused = |e: CheckError| match e {
            CheckError::UnknownKey => Failure::Refused("refreshed ID token signed with an unknown key".into()),
            CheckError::Invalid(reason) => Failure::Refused(reason),
        };
        match check_refreshed_id_token(&ready, id_token, identity) {
            Ok(()) => {}
            // A rotated key: fetch the keys once more and check again.
            Err(CheckError::UnknownKey) => match provider.refetch_keys(&state.http).await {
                Ok(Some(fresh)) => check_refreshed_id_token(&fresh, id_token, identity).map_err(refused)?,
                _ => return Err(refused(CheckError::UnknownKey)),
            },
            Err(other) => return Err(refused(other)),
        }
    }
    let rotated = response.refresh_token().map(|t| t.secret().clone()).filter(|t| t != token.expose());
    Ok(rotated)
}

enum CheckError {
    UnknownKey,
    Invalid(String),
}

fn check_refreshed_id_token(
    ready: &Arc<Ready>,
    id_token: &super::types::IdToken,
    identity: &IdentityRow,
) -> Result<(), CheckError> {
    use openidconnect::{ClaimsVerificationError as C, SignatureVerificationError as S};
    let verifier = ready.client.id_token_verifier().set_allowed_algs(ready.allowed_algs.iter().cloned());
    // Core 12.2: no nonce is expected in a refreshed ID token.
    let no_nonce = |_: Option<&Nonce>| -> Result<(), String> { Ok(()) };
    let claims = id_token.claims(&verifier, no_nonce).map_err(|err| match err {
        C::SignatureVerification(S::NoMatchingKey) => CheckError::UnknownKey,
        other => CheckError::Invalid(format!("refreshed ID token: {other}")),
    })?;
    if claims.subject().as_str() != identity.subject || claims.issuer().as_str() != identity.issuer {
        return Err(CheckError::Invalid("refreshed ID token names another user or issuer".into()));
    }
    Ok(())
}

/// One pass of the background task: refreshes every due user, in batches.
/// Returns how many were refreshed, refused and left for later.
pub async fn sweep(state: &AppState) -> Result<SweepReport, OidcError> {
    let mut report = SweepReport::default();
    loop {
        let now = db::now();
        let batch = state.db.run(move |conn| identities::claim_due(conn, now, now + LEASE, BATCH)).await?;
        let count = batch.len();
        let outcomes = futures_util::future::join_all(batch.into_iter().map(|identity| refresh_identity(state, identity))).await;
        for outcome in outcomes {
            match outcome {
                Outcome::Refreshed(_) => report.refreshed += 1,
                Outcome::Refused => report.refused += 1,
                Outcome::Retry => report.retried += 1,
            }
        }
        if (count as i64) < BATCH {
            return Ok(report);
        }
    }
}

/// What a sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SweepReport {
    pub refreshed: usize,
    pub refused: usize,
    pub retried: usize,
}

/// Starts this instance's background refresh of external users.
pub fn start_refresh_task(state: web::Data<AppState>) {
    if state.providers.all().is_empty() {
        return;
    }
    let interval = state.settings.auth.refresh_interval;
    tokio::spawn(async move {
        // Instances started together spread their sweeps a little.
        let jitter = Duration::from_millis(u64::from(Utc::now().timestamp_subsec_millis()) % 1000);
        tokio::time::sleep(jitter).await;
        loop {
            match sweep(&state).await {
                Ok(report) if report != SweepReport::default() => log::info!("refresh sweep: {report:?}"),
                Ok(_) => {}
                Err(err) => log::warn!("refresh sweep failed: {}", crate::error::chain(&err)),
            }
            tokio::time::sleep(interval).await;
        }
    });
}
