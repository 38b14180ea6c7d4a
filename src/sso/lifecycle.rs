//! The external user's lifecycle: `valid_until` follows what the provider
//! still says. A background task in every instance refreshes users shortly
//! before their `valid_until` (rows leased so exactly one instance does each);
//! a request that finds `valid_until` passed tries one refresh at once.

use std::sync::Arc;
use std::time::Duration;

use chrono::{NaiveDateTime, TimeDelta};
use openidconnect::{OAuth2TokenResponse, RefreshToken, RequestTokenError, SubjectIdentifier, TokenResponse as _};

use super::account::{follow_admin_groups, next_refresh_at, refresh_token_context};
use super::flow;
use super::id_token::{self, Expected};
use super::rules::{self, Facts};
use super::{OidcError, Sso};
use crate::db::identities::{self, IdentityRow};
use crate::db::{self as store, audit_events, users, DbConnection};
use crate::identity::audit::{self, Audit, Event, Kind};
use crate::identity::revocation::Revoked;

/// How long one instance holds a row it is refreshing.
const LEASE: TimeDelta = TimeDelta::seconds(60);
/// Rows taken per claim.
const BATCH: i64 = 100;
/// Longest wait between retries while a provider is down.
const MAX_BACKOFF_SECS: i64 = 3600;

/// Refreshes `user_id` at their provider now; the new `valid_until`, or
/// `None` when there is no refresh token or the refresh failed. Requests
/// for one user share one refresh, however many wait on it.
pub async fn refresh_now(sso: &Sso, user_id: &str) -> Option<NaiveDateTime> {
    let key = user_id.to_string();
    sso.refresh_inflight.get_with(key.clone(), refresh_user(sso, key)).await
}

async fn refresh_user(sso: &Sso, user_id: String) -> Option<NaiveDateTime> {
    let now = sso.clock.now_naive();
    let id = user_id.clone();
    let claimed = sso.db.run(move |conn| identities::claim_user(conn, &id, now, now + LEASE)).await.ok()?;
    match claimed {
        Some(identity) => match refresh_identity(sso, identity).await {
            Outcome::Refreshed(valid_until) => Some(valid_until),
            Outcome::Refused | Outcome::Retry => None,
        },
        None => {
            // Another instance may be refreshing this user: wait for it a little.
            for _ in 0..20 {
                let id = user_id.clone();
                let identity = sso.db.run(move |conn| identities::find_by_user(conn, &id)).await.ok()??;
                let now = sso.clock.now_naive();
                if identity.valid_until > now {
                    return Some(identity.valid_until);
                }
                if identity.lease_until.is_none_or(|l| l < now) {
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
pub async fn refresh_identity(sso: &Sso, identity: IdentityRow) -> Outcome {
    sso.held().insert(identity.id.clone());
    let result = exchange_refresh_token(sso, &identity).await;
    let id = identity.id.clone();
    let now = sso.clock.now_naive();
    let audit = sso.identity.audit.clone();
    let (user_id, provider_id) = (identity.user_id.clone(), identity.provider_id.clone());
    let outcome = match result {
        Ok(Refreshed { rotated, is_admin }) => {
            let valid_until = now + sso.settings.auth.external_validity.delta();
            let next = next_refresh_at(&sso.settings.auth, valid_until);
            let sealed = rotated.map(|t| sso.vault.seal(&refresh_token_context(&identity.id), &t));
            let mut event = Event::success(Kind::ProviderRefresh)
                .detail("result", "refreshed")
                .detail("valid_until", valid_until.and_utc().to_rfc3339());
            if let Some(is_admin) = is_admin {
                event = event.detail("is_admin", is_admin);
            }
            let stored = sso
                .db
                .run(move |conn| {
                    store::write_transaction(conn, |conn| {
                        identities::refreshed(conn, &id, valid_until, sealed.as_deref(), next, now)?;
                        // `admin_groups` follows the provider at every refresh.
                        let admin_changed = match is_admin {
                            Some(is_admin) => follow_admin_groups(conn, &user_id, is_admin)?,
                            None => false,
                        };
                        Ok((record_refresh(conn, &audit, event, &user_id, &provider_id)?, admin_changed))
                    })
                })
                .await;
            match stored {
                Ok((event, admin_changed)) => {
                    audit::log_stored(&[event]);
                    if admin_changed {
                        sso.identity.revocations.forget(&Revoked::User(identity.user_id.clone()));
                    }
                    Outcome::Refreshed(valid_until)
                }
                Err(_) => Outcome::Retry,
            }
        }
        Err(Failure::Refused(reason)) => {
            log::warn!("provider {} refused to refresh user {}: {reason}", identity.provider_id, identity.user_id);
            let event = Event::failure(Kind::ProviderRefresh).detail("result", "refused").detail("reason", reason);
            let stored = sso
                .db
                .run(move |conn| {
                    store::write_transaction(conn, |conn| {
                        identities::refused(conn, &id, now)?;
                        record_refresh(conn, &audit, event, &user_id, &provider_id)
                    })
                })
                .await;
            if let Ok(event) = stored {
                audit::log_stored(&[event]);
            }
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
            let next = now + TimeDelta::seconds(wait);
            let event = Event::failure(Kind::ProviderRefresh)
                .detail("result", "unreachable")
                .detail("reason", reason)
                .detail("attempt", failures);
            let stored = sso
                .db
                .run(move |conn| {
                    store::write_transaction(conn, |conn| {
                        identities::retry_later(conn, &id, failures, next)?;
                        record_refresh(conn, &audit, event, &user_id, &provider_id)
                    })
                })
                .await;
            if let Ok(event) = stored {
                audit::log_stored(&[event]);
            }
            Outcome::Retry
        }
    };
    sso.held().remove(&identity.id);
    let label = match outcome {
        Outcome::Refreshed(_) => "refreshed",
        Outcome::Refused => "refused",
        Outcome::Retry => "retry",
    };
    metrics::counter!("doorman_provider_refreshes_total", "provider" => identity.provider_id.clone(), "outcome" => label)
        .increment(1);
    sso.refresh_inflight.invalidate(&identity.user_id).await;
    outcome
}

/// Stores a refresh outcome of `user_id` at `provider_id` (inside the
/// transaction that records it); the stored row, to log once committed.
fn record_refresh(
    conn: &mut DbConnection,
    audit: &Audit,
    mut event: Event,
    user_id: &str,
    provider_id: &str,
) -> diesel::QueryResult<audit_events::AuditRow> {
    event.username = users::username_of(conn, user_id)?;
    let row = audit.row(event.detail("provider", provider_id));
    audit_events::insert(conn, &row)?;
    Ok(row)
}

enum Failure {
    Refused(String),
    Unreachable(String),
}

/// What a refresh the provider granted brings.
struct Refreshed {
    /// The rotated refresh token, if the provider rotated it.
    rotated: Option<String>,
    /// The admin flag `admin_groups` gives now, when set.
    is_admin: Option<bool>,
}

/// The refresh grant; a refreshed ID token must pass OpenID Connect Core
/// 12.2 (valid signature, same iss, sub and aud), else it counts as a
/// refusal. The provider's access rules are checked again against the
/// refreshed ID token, completed by userinfo when the provider has it; a
/// user they no longer admit counts as a refusal too.
async fn exchange_refresh_token(sso: &Sso, identity: &IdentityRow) -> Result<Refreshed, Failure> {
    let provider = sso
        .providers
        .get(&identity.provider_id)
        .ok_or_else(|| Failure::Refused(format!("provider {:?} is no longer configured", identity.provider_id)))?;
    let ready = provider.ready().map_err(|e| Failure::Unreachable(e.to_string()))?;
    if ready.issuer != identity.issuer {
        return Err(Failure::Refused("the provider's issuer changed".into()));
    }
    let sealed = identity.refresh_token_enc.as_deref().ok_or_else(|| Failure::Refused("no refresh token".into()))?;
    let token = sso
        .vault
        .open(&refresh_token_context(&identity.id), sealed)
        .map_err(|_| Failure::Refused("the stored refresh token cannot be decrypted".into()))?;
    let refresh_token = RefreshToken::new(token.expose().to_string());
    let request = ready.client.exchange_refresh_token(&refresh_token).map_err(|e| Failure::Refused(e.to_string()))?;
    let response = request.request_async(&sso.http).await.map_err(|err| match err {
        RequestTokenError::ServerResponse(r) => Failure::Refused(format!("token endpoint answered {}", r.error())),
        RequestTokenError::Request(e) => Failure::Unreachable(e.to_string()),
        other => Failure::Unreachable(other.to_string()),
    })?;
    let access = &provider.settings.access;
    let mut facts: Option<Facts> = None;
    if let Some(token) = response.id_token() {
        let expected = Expected::Refresh { issuer: &identity.issuer, subject: &identity.subject };
        let (_, claims) = id_token::verify(provider, ready.clone(), token, expected, &sso.http, &sso.clock)
            .await
            .map_err(|e| Failure::Refused(format!("refreshed ID token: {e}")))?;
        facts = Some(Facts {
            email: claims.email().map(|e| e.as_str().to_string()),
            email_verified: claims.email_verified(),
            groups: rules::groups(&claims.additional_claims().other, &access.groups_claim),
        });
    }
    let mut is_admin = None;
    if rules::active(access) {
        if ready.client.user_info_url().is_some() {
            let subject = SubjectIdentifier::new(identity.subject.clone());
            let info = flow::userinfo(sso, &ready, response.access_token().clone(), subject)
                .await
                .map_err(|e| Failure::Unreachable(e.to_string()))?;
            let known = facts.get_or_insert_with(Facts::default);
            if let Some(email) = info.email() {
                known.email = Some(email.as_str().to_string());
                known.email_verified = info.email_verified();
            }
            let groups = rules::groups(&info.additional_claims().other, &access.groups_claim);
            if !groups.is_empty() || info.additional_claims().other.contains_key(&access.groups_claim) {
                known.groups = groups;
            }
        }
        let facts = facts.ok_or_else(|| {
            Failure::Refused("the provider gave neither an ID token nor userinfo to check the access rules against".into())
        })?;
        is_admin = rules::check(access, &facts).map_err(|rule| Failure::Refused(format!("access rules: {rule}")))?.is_admin;
    }
    let rotated = response.refresh_token().map(|t| t.secret().clone()).filter(|t| t != token.expose());
    Ok(Refreshed { rotated, is_admin })
}

/// One pass of the background task: refreshes every due user, in batches.
/// Returns how many were refreshed, refused and left for later.
pub async fn sweep(sso: &Sso) -> Result<SweepReport, OidcError> {
    let mut report = SweepReport::default();
    loop {
        let now = sso.clock.now_naive();
        let batch = sso.db.run(move |conn| identities::claim_due(conn, now, now + LEASE, BATCH)).await?;
        let count = batch.len();
        let outcomes = futures_util::future::join_all(batch.into_iter().map(|identity| refresh_identity(sso, identity))).await;
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
pub fn start_refresh_task(sso: Arc<Sso>) -> Option<tokio::task::AbortHandle> {
    if sso.providers.all().is_empty() {
        return None;
    }
    let interval = sso.settings.auth.refresh_interval.std();
    let task = tokio::spawn(async move {
        // Instances started together spread their sweeps a little; the
        // first sweep comes one interval after start.
        let jitter = Duration::from_millis(u64::from(sso.clock.now().timestamp_subsec_millis()) % 1000);
        tokio::time::sleep(jitter).await;
        loop {
            tokio::time::sleep(interval).await;
            match sweep(&sso).await {
                Ok(report) if report != SweepReport::default() => log::info!("refresh sweep: {report:?}"),
                Ok(_) => {}
                Err(err) => log::warn!("refresh sweep failed: {}", crate::report::chain(&err)),
            }
        }
    });
    Some(task.abort_handle())
}
