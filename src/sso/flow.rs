//! The authorization-code flow, top to bottom: [`begin`] sends the browser
//! to the provider; [`finish`] checks everything that comes back and signs
//! the user in. Each step is a named function returning `OidcError`.

use std::time::{Duration, Instant};

use chrono::{NaiveDateTime, TimeDelta};
use openidconnect::core::{CoreAuthPrompt, CoreAuthenticationFlow, CoreGenderClaim};
use openidconnect::{
    AccessToken, AuthorizationCode, CsrfToken, Nonce, OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier,
    RequestTokenError, Scope, SubjectIdentifier, TokenResponse as _,
};
use serde::{Deserialize, Serialize};

use super::account::{self, Admission, ExternalProfile, SignedIn};
use super::id_token::{self, Expected, IdTokenError};
use super::provider::Ready;
use super::redeemed::Seen;
use super::rules::{self, Facts};
use super::types::{ExtraClaims, IdToken, IdTokenClaims, TokenResponse};
use super::{OidcError, Sso};
use crate::config::Approval;
use crate::crypto::{constant_time_eq, sha256_hex};
use crate::db;
use crate::identity::audit::{Event, Kind, Origin};
use crate::identity::sessions::{ProviderLogin, SessionCredentials};
use crate::identity::IdentityError;

/// How long a sign-in at the provider may take.
pub const LIFETIME_SECS: i64 = 600;

/// A sign-in started at `/oidc/authenticate`, kept by the browser (the HTTP
/// layer stores it in an encrypted cookie) until the provider sends it back.
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
    /// Linking: the signed-in user the provider's identity is added to.
    #[serde(default)]
    pub link_user: Option<String>,
}

/// Where the browser goes to sign in, and the pending login to keep.
pub struct Redirect {
    pub url: String,
    pub pending: PendingLogin,
}

/// `GET /oidc/authenticate`: the provider's authorization URL with `state`,
/// `nonce` and a PKCE S256 challenge; `next` is a target the caller vetted.
/// With `link_user` (the signed-in user's id), the callback links the
/// provider's identity to that user instead of signing anyone in.
pub fn begin(sso: &Sso, provider_id: Option<&str>, next: String, link_user: Option<String>) -> Result<Redirect, OidcError> {
    let provider = sso.providers.choose(provider_id)?;
    let ready = provider.ready()?;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request =
        ready.client.authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random);
    for scope in provider.settings.scopes.iter().filter(|s| *s != "openid") {
        request = request.add_scope(Scope::new(scope.clone()));
    }
    if provider.settings.scopes.iter().any(|s| s == "offline_access") {
        // OpenID Connect Core 11: offline access needs prompt=consent.
        request = request.add_prompt(CoreAuthPrompt::Consent);
    }
    let (url, csrf, nonce) = request.set_pkce_challenge(challenge).url();
    let pending = PendingLogin {
        provider: provider.settings.id.clone(),
        issuer: ready.issuer.clone(),
        state: csrf.secret().clone(),
        nonce: nonce.secret().clone(),
        verifier: verifier.secret().clone(),
        next,
        expires: sso.clock.timestamp() + LIFETIME_SECS,
        link_user,
    };
    Ok(Redirect { url: url.to_string(), pending })
}

/// What the provider sends back to `/oidc/callback`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallbackQuery {
    pub code: Option<String>,
    pub state: Option<String>,
    pub iss: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

/// A finished sign-in: the session's credentials (none after linking) and where to go.
pub struct Completed {
    pub credentials: Option<SessionCredentials>,
    pub next: String,
    /// Time spent waiting on the provider (token endpoint, userinfo, keys).
    pub provider_time: Duration,
    /// doorman's own time in its main steps, for `Server-Timing`.
    pub steps: Vec<(&'static str, Duration)>,
}

/// `GET /oidc/callback`: validates the response and signs the user in (or
/// links the provider account to the signed-in user) from `client`.
/// The `state` is checked first: nothing of a response that does not belong
/// to this browser's sign-in (its `error`, its `error_description`) is used
/// or shown. A success, and a stored user's refusal, are recorded in the
/// transaction that stores them; any other failure on its own (a callback
/// that is not this browser's sign-in is no attempt, and is not).
pub async fn finish(
    sso: &Sso,
    pending: Option<PendingLogin>,
    query: CallbackQuery,
    client: &Origin,
) -> Result<Completed, OidcError> {
    let method = pending.as_ref().map_or_else(|| "sso".to_string(), |p| format!("sso:{}", p.provider));
    let linking = pending.as_ref().is_some_and(|p| p.link_user.is_some());
    let result = match finish_checked(sso, pending, query, client).await {
        Ok(Finished::Completed(done)) => Ok(done),
        Ok(Finished::Refused(err)) => Err(err),
        Err(err) => {
            if let Some(reason) = failure_reason(&err) {
                let kind = if linking { Kind::IdentityLinked } else { Kind::SignIn };
                let event = Event::failure(kind).origin(client).detail("method", method.clone()).detail("reason", reason);
                sso.identity.audit.record(event).await;
            }
            Err(err)
        }
    };
    let outcome = match &result {
        Ok(_) => "success",
        Err(OidcError::Unavailable(_) | OidcError::ProviderUnreachable(_)) => "unavailable",
        // Turned away by the access rules, the approval queue or a disabled account.
        Err(
            OidcError::AccessDenied(_) | OidcError::Identity(IdentityError::ApprovalPending | IdentityError::AccountDisabled),
        ) => "refused",
        Err(_) => "failure",
    };
    metrics::counter!("doorman_sign_ins_total", "method" => method, "outcome" => outcome).increment(1);
    result
}

/// The reason a failed callback is recorded under; `None` for our own
/// faults (the database), which are logged instead, and for a callback that
/// is not this browser's sign-in.
fn failure_reason(err: &OidcError) -> Option<&'static str> {
    match err {
        OidcError::Db(_) | OidcError::Identity(IdentityError::Db(_) | IdentityError::Internal(_)) => None,
        // Not this browser's sign-in (a bare or forged link): it leaves the
        // sign-in under way as it was, and could be sent again and again.
        err if err.is_foreign_callback() => None,
        OidcError::Identity(IdentityError::AccountDisabled) => Some("account_disabled"),
        OidcError::Identity(IdentityError::ApprovalPending) => Some("approval_pending"),
        OidcError::Identity(IdentityError::InvalidSession) => Some("invalid_session"),
        other => Some(other.code()),
    }
}

/// How a callback that went through ended.
enum Finished {
    Completed(Completed),
    /// Refused by the provider's rules or the user's status; the refusal is
    /// recorded already.
    Refused(OidcError),
}

async fn finish_checked(
    sso: &Sso,
    pending: Option<PendingLogin>,
    query: CallbackQuery,
    client: &Origin,
) -> Result<Finished, OidcError> {
    let started = Instant::now();
    let pending = check_state(sso, pending, &query)?;
    refuse_provider_error(&query)?;
    let provider = sso.providers.get(&pending.provider).ok_or_else(|| OidcError::UnknownProvider(pending.provider.clone()))?;
    let ready = provider.ready()?;
    check_issuer(&ready, &pending, &query)?;
    let state_hash = refuse_used_state(sso, &pending).await?;
    let code = query.code.filter(|c| !c.is_empty()).ok_or(OidcError::MissingCode)?;
    let mut steps = vec![("checks", started.elapsed())];
    let waited = Instant::now();
    let response = exchange_code(sso, &ready, code, &pending).await?;
    let mut provider_time = waited.elapsed();
    let id_token = response.id_token().ok_or(OidcError::NoIdToken)?.clone();
    let fetches_before = provider.key_fetches();
    let verifying = Instant::now();
    let nonce = Nonce::new(pending.nonce.clone());
    let expected = Expected::SignIn { nonce: &nonce, access_token: response.access_token() };
    let (ready, claims) =
        id_token::verify(provider, ready, &id_token, expected, &sso.http, &sso.clock).await.map_err(|e| match e {
            IdTokenError::AtHashMismatch => OidcError::AtHashMismatch,
            IdTokenError::KeyFetch(e) => e,
            other => OidcError::InvalidIdToken(other.to_string()),
        })?;
    if provider.key_fetches() != fetches_before {
        provider_time += verifying.elapsed();
    } else {
        steps.push(("id-token", verifying.elapsed()));
    }
    let waited = Instant::now();
    let profile = profile(sso, &ready, &provider.settings.access.groups_claim, &response, &claims, &id_token).await?;
    provider_time += waited.elapsed();
    let recording = Instant::now();
    let rules = &provider.settings.access;
    let facts = Facts { email: profile.email.clone(), email_verified: profile.email_verified, groups: profile.groups.clone() };
    let verdict = match rules::check(rules, &facts) {
        Ok(verdict) => verdict,
        Err(rule) => {
            let kind = if pending.link_user.is_some() { Kind::IdentityLinked } else { Kind::SignIn };
            let mut event = Event::failure(kind)
                .origin(client)
                .detail("method", format!("sso:{}", provider.settings.id))
                .detail("reason", "access_denied")
                .detail("rule", rule.clone())
                .detail("subject", profile.subject.clone());
            if let Some(email) = &profile.email {
                event = event.detail("email", email.clone());
            }
            sso.identity.audit.record(event).await;
            return Ok(Finished::Refused(OidcError::AccessDenied(rule)));
        }
    };
    let state = UsedState::of(sso, state_hash);
    if let Some(user_id) = &pending.link_user {
        account::link(sso, &provider.settings.id, profile, user_id, state, client).await?;
        steps.push(("link", recording.elapsed()));
        return Ok(Finished::Completed(Completed { credentials: None, next: pending.next, provider_time, steps }));
    }
    let provider_login = ProviderLogin {
        provider_id: provider.settings.id.clone(),
        sid: profile.sid.clone(),
        id_token_enc: Some(sso.vault.seal("id_token", &profile.id_token)),
    };
    let admission = Admission {
        is_admin: verdict.is_admin,
        approval: rules.approval == Approval::Admin,
        channel: rules.channel.clone().unwrap_or_else(|| sso.settings.auth.default_channel.clone()),
    };
    let signed_in = account::sign_in(sso, &provider.settings.id, profile, admission, provider_login, state, client).await?;
    steps.push(("sign-in", recording.elapsed()));
    match signed_in {
        SignedIn::Session(signed_in) => {
            let (user, session) = *signed_in;
            let credentials = sso.identity.sessions.credentials(session, &user);
            Ok(Finished::Completed(Completed { credentials: Some(credentials), next: pending.next, provider_time, steps }))
        }
        SignedIn::Pending => Ok(Finished::Refused(IdentityError::ApprovalPending.into())),
        SignedIn::Disabled => Ok(Finished::Refused(IdentityError::AccountDisabled.into())),
    }
}

fn refuse_provider_error(query: &CallbackQuery) -> Result<(), OidcError> {
    match &query.error {
        Some(error) => Err(OidcError::ProviderError {
            error: truncate(error, 100),
            description: truncate(query.error_description.as_deref().unwrap_or("sign-in was not completed"), 300),
        }),
        None => Ok(()),
    }
}

fn truncate(text: &str, max: usize) -> String {
    text.chars().filter(|c| !c.is_control()).take(max).collect()
}

fn check_state(sso: &Sso, pending: Option<PendingLogin>, query: &CallbackQuery) -> Result<PendingLogin, OidcError> {
    let pending = pending.ok_or(OidcError::MissingFlow)?;
    if pending.expires < sso.clock.timestamp() {
        return Err(OidcError::FlowExpired);
    }
    let given = query.state.as_deref().unwrap_or("");
    if !constant_time_eq(given, &pending.state) {
        return Err(OidcError::StateMismatch);
    }
    Ok(pending)
}

/// Mix-up defence: the response must come from the issuer the flow began at
/// (RFC 9207 `iss` when given, and required when the provider announces it).
fn check_issuer(ready: &Ready, pending: &PendingLogin, query: &CallbackQuery) -> Result<(), OidcError> {
    if ready.issuer != pending.issuer {
        return Err(OidcError::IssuerMismatch);
    }
    match &query.iss {
        Some(iss) if iss != &ready.issuer => Err(OidcError::IssuerMismatch),
        None if ready.iss_parameter_supported => Err(OidcError::IssuerMismatch),
        _ => Ok(()),
    }
}

/// Refuses a `state` already redeemed before its code is sent to the
/// provider (a replayed callback must not spend the code again). Only a
/// read: the state is recorded as used in the sign-in's own transaction
/// ([`account::sign_in`], [`account::link`]), which refuses it if a
/// callback with the same state got there first. The state's hash, as
/// stored.
async fn refuse_used_state(sso: &Sso, pending: &PendingLogin) -> Result<String, OidcError> {
    let hash = sha256_hex(&pending.state);
    let redeemed = match sso.redeemed.seen(&hash) {
        Seen::Redeemed => true,
        Seen::Fresh => false,
        Seen::Unknown => {
            let hash = hash.clone();
            sso.db.run(move |conn| db::oidc_states::is_used(conn, &hash)).await?
        }
    };
    if redeemed {
        Err(OidcError::Replayed)
    } else {
        Ok(hash)
    }
}

/// How long a redeemed state is kept: past the end of its flow.
pub const USED_STATE_SECS: i64 = LIFETIME_SECS + 60;

/// How often an instance forgets expired states, in the transaction of a
/// sign-in (rather than at each one).
const STATE_PURGE_SECS: i64 = 60;

/// A sign-in's `state`, to record as used.
#[derive(Clone)]
pub struct UsedState {
    pub hash: String,
    /// Kept until its flow could no longer finish.
    pub expires: NaiveDateTime,
    /// States expired before this moment are to be forgotten with it.
    pub purge_before: Option<NaiveDateTime>,
}

impl UsedState {
    /// The state of hash `hash` (as [`refuse_used_state`] gives it).
    fn of(sso: &Sso, hash: String) -> Self {
        use std::sync::atomic::Ordering;
        let now = sso.clock.now_naive();
        let seconds = now.and_utc().timestamp();
        let last = sso.states_purged_at.load(Ordering::Relaxed);
        let purge = seconds - last >= STATE_PURGE_SECS
            && sso.states_purged_at.compare_exchange(last, seconds, Ordering::Relaxed, Ordering::Relaxed).is_ok();
        Self { hash, expires: now + TimeDelta::seconds(USED_STATE_SECS), purge_before: purge.then_some(now) }
    }

    /// Records it as used in the caller's transaction: `false` if it already was.
    pub fn record(&self, conn: &mut crate::db::DbConnection) -> diesel::QueryResult<bool> {
        if let Some(before) = self.purge_before {
            db::oidc_states::purge_expired(conn, before)?;
        }
        db::oidc_states::mark_used(conn, &self.hash, self.expires)
    }
}

async fn exchange_code(sso: &Sso, ready: &Ready, code: String, pending: &PendingLogin) -> Result<TokenResponse, OidcError> {
    let request = ready
        .client
        .exchange_code(AuthorizationCode::new(code))
        .map_err(|e| OidcError::Exchange(anyhow::anyhow!("{e}")))?
        .set_pkce_verifier(PkceCodeVerifier::new(pending.verifier.clone()));
    request.request_async(&sso.http).await.map_err(|err| match err {
        RequestTokenError::Request(e) => OidcError::ProviderUnreachable(anyhow::anyhow!("token endpoint: {e}")),
        RequestTokenError::ServerResponse(r) => OidcError::Exchange(anyhow::anyhow!("token endpoint refused: {}", r.error())),
        other => OidcError::Exchange(anyhow::anyhow!("{other}")),
    })
}

/// The user's profile: the ID token's claims, completed by userinfo (whose
/// `sub` must match) when the provider has it.
async fn profile(
    sso: &Sso,
    ready: &Ready,
    groups_claim: &str,
    response: &TokenResponse,
    claims: &IdTokenClaims,
    id_token: &IdToken,
) -> Result<ExternalProfile, OidcError> {
    let subject = claims.subject().clone();
    let mut profile = ExternalProfile {
        issuer: claims.issuer().as_str().to_string(),
        subject: subject.as_str().to_string(),
        email: claims.email().map(|e| e.as_str().to_string()),
        email_verified: claims.email_verified(),
        name: claims.name().and_then(|n| n.get(None)).map(|n| n.as_str().to_string()),
        preferred_username: claims.preferred_username().map(|u| u.as_str().to_string()),
        sid: claims.additional_claims().sid.clone(),
        refresh_token: response.refresh_token().map(|t| t.secret().clone()),
        id_token: id_token.to_string(),
        groups: rules::groups(&claims.additional_claims().other, groups_claim),
    };
    if ready.client.user_info_url().is_some() {
        let info = userinfo(sso, ready, response.access_token().clone(), subject).await?;
        // Groups in userinfo, when it has them, win over the ID token's.
        let from_info = rules::groups(&info.additional_claims().other, groups_claim);
        if !from_info.is_empty() || info.additional_claims().other.contains_key(groups_claim) {
            profile.groups = from_info;
        }
        if let Some(email) = info.email() {
            profile.email = Some(email.as_str().to_string());
            profile.email_verified = info.email_verified();
        }
        if let Some(name) = info.name().and_then(|n| n.get(None)) {
            profile.name = Some(name.as_str().to_string());
        }
        if let Some(username) = info.preferred_username() {
            profile.preferred_username = Some(username.as_str().to_string());
        }
    }
    Ok(profile)
}

/// The provider's userinfo, whose `sub` must be `subject`.
pub async fn userinfo(
    sso: &Sso,
    ready: &Ready,
    access_token: AccessToken,
    subject: SubjectIdentifier,
) -> Result<UserInfoClaims, OidcError> {
    let request = ready.client.user_info(access_token, Some(subject)).map_err(|e| OidcError::UserInfo(e.to_string()))?;
    request.request_async(&sso.http).await.map_err(|e| OidcError::UserInfo(e.to_string()))
}

/// Userinfo with every claim doorman may read.
pub type UserInfoClaims = openidconnect::UserInfoClaims<ExtraClaims, CoreGenderClaim>;
