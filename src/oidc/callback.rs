//! The authorization-code flow, top to bottom: [`begin`] sends the browser
//! to the provider; [`finish`] checks everything that comes back and signs
//! the user in. Each step is a named function returning `OidcError`.

use std::sync::Arc;

use chrono::{Duration as ChronoDuration, Utc};
use openidconnect::core::{CoreAuthPrompt, CoreAuthenticationFlow, CoreUserInfoClaims};
use openidconnect::{
    AccessToken, AccessTokenHash, AuthorizationCode, CsrfToken, Nonce, OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier,
    RequestTokenError, Scope, SubjectIdentifier, TokenResponse as _,
};
use serde::Deserialize;

use super::account::{self, ExternalProfile};
use super::flow::{PendingLogin, LIFETIME_SECS};
use super::next_path::NextTarget;
use super::provider::{Provider, Ready};
use super::types::{IdToken, IdTokenClaims, TokenResponse};
use super::OidcError;
use crate::auth::cookies::LoginCookies;
use crate::auth::login::ProviderLogin;
use crate::crypto::{constant_time_eq, sha256_hex};
use crate::db;
use crate::state::AppState;

/// Allowed clock skew for `iat`.
const IAT_SKEW_SECS: i64 = 60;

/// Where the browser goes to sign in, and the pending login to keep.
pub struct Redirect {
    pub url: String,
    pub pending: PendingLogin,
}

/// `GET /oidc/authenticate`: the provider's authorization URL with `state`,
/// `nonce` and a PKCE S256 challenge.
pub fn begin(state: &AppState, provider_id: Option<&str>, next: Option<&str>) -> Result<Redirect, OidcError> {
    let provider = state.providers.choose(provider_id)?;
    let next = match next {
        Some(text) => NextTarget::parse(text, &state.settings).map_err(OidcError::InvalidNext)?.into_string(),
        None => "/".to_string(),
    };
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
        expires: Utc::now().timestamp() + LIFETIME_SECS,
    };
    Ok(Redirect { url: url.to_string(), pending })
}

/// What the provider sends back to `/oidc/callback`.
#[derive(Debug, Default, Deserialize)]
pub struct CallbackQuery {
    pub code: Option<String>,
    pub state: Option<String>,
    pub iss: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

/// A finished sign-in: the cookies to set and where to go.
pub struct Completed {
    pub cookies: LoginCookies,
    pub next: String,
    /// Time spent waiting on the provider (token endpoint, userinfo, keys).
    pub provider_time: std::time::Duration,
}

/// `GET /oidc/callback`: validates the response and signs the user in.
pub async fn finish(state: &AppState, pending: Option<PendingLogin>, query: CallbackQuery) -> Result<Completed, OidcError> {
    refuse_provider_error(&query)?;
    let pending = check_state(pending, &query)?;
    let provider = state.providers.get(&pending.provider).ok_or_else(|| OidcError::UnknownProvider(pending.provider.clone()))?;
    let ready = provider.ready()?;
    check_issuer(&ready, &pending, &query)?;
    mark_state_used(state, &pending).await?;
    let code = query.code.filter(|c| !c.is_empty()).ok_or(OidcError::MissingCode)?;
    let waited = std::time::Instant::now();
    let response = exchange_code(state, &ready, code, &pending).await?;
    let mut provider_time = waited.elapsed();
    let fetches_before = provider.key_fetches();
    let verifying = std::time::Instant::now();
    let (ready, claims, id_token) = verify_id_token(state, provider, ready, &response, &pending).await?;
    if provider.key_fetches() != fetches_before {
        provider_time += verifying.elapsed();
    }
    let waited = std::time::Instant::now();
    let profile = profile(state, &ready, &response, &claims, &id_token).await?;
    provider_time += waited.elapsed();
    let provider_login = ProviderLogin {
        provider_id: provider.settings.id.clone(),
        sid: profile.sid.clone(),
        id_token_enc: Some(state.keys.vault.seal("id_token", &profile.id_token)),
    };
    let (user, session) = account::sign_in(state, &provider.settings.id, profile, provider_login).await?;
    let cookies = session.cookies(state, &user);
    Ok(Completed { cookies, next: pending.next, provider_time })
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

fn check_state(pending: Option<PendingLogin>, query: &CallbackQuery) -> Result<PendingLogin, OidcError> {
    let pending = pending.ok_or(OidcError::MissingFlow)?;
    if pending.expires < Utc::now().timestamp() {
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

async fn mark_state_used(state: &AppState, pending: &PendingLogin) -> Result<(), OidcError> {
    let hash = sha256_hex(&pending.state);
    let expires = db::now() + ChronoDuration::seconds(LIFETIME_SECS + 60);
    let fresh = state.db.run(move |conn| db::oidc_states::mark_used(conn, &hash, expires)).await?;
    if fresh {
        Ok(())
    } else {
        Err(OidcError::Replayed)
    }
}

async fn exchange_code(
    state: &AppState,
    ready: &Ready,
    code: String,
    pending: &PendingLogin,
) -> Result<TokenResponse, OidcError> {
    let request = ready
        .client
        .exchange_code(AuthorizationCode::new(code))
        .map_err(|e| OidcError::Exchange(anyhow::anyhow!("{e}")))?
        .set_pkce_verifier(PkceCodeVerifier::new(pending.verifier.clone()));
    request.request_async(&state.http).await.map_err(|err| match err {
        RequestTokenError::Request(e) => OidcError::ProviderUnreachable(anyhow::anyhow!("token endpoint: {e}")),
        RequestTokenError::ServerResponse(r) => OidcError::Exchange(anyhow::anyhow!("token endpoint refused: {}", r.error())),
        other => OidcError::Exchange(anyhow::anyhow!("{other}")),
    })
}

/// OpenID Connect Core 3.1.3.7: signature with an announced algorithm and
/// the provider's keys (fetched again once for an unknown key), iss, aud,
/// azp, exp, iat, nonce and at_hash.
async fn verify_id_token(
    state: &AppState,
    provider: &Arc<Provider>,
    ready: Arc<Ready>,
    response: &TokenResponse,
    pending: &PendingLogin,
) -> Result<(Arc<Ready>, IdTokenClaims, IdToken), OidcError> {
    let id_token = response.id_token().ok_or(OidcError::NoIdToken)?.clone();
    let nonce = Nonce::new(pending.nonce.clone());
    match check_id_token(&ready, &id_token, &nonce, response.access_token()) {
        Err(IdTokenCheck::UnknownKey) => {
            let Some(fresh) = provider.refetch_keys(&state.http).await? else {
                return Err(OidcError::InvalidIdToken("signed with an unknown key".into()));
            };
            match check_id_token(&fresh, &id_token, &nonce, response.access_token()) {
                Ok(claims) => Ok((fresh, claims, id_token)),
                Err(e) => Err(e.into()),
            }
        }
        Ok(claims) => Ok((ready, claims, id_token)),
        Err(e) => Err(e.into()),
    }
}

enum IdTokenCheck {
    UnknownKey,
    Failed(OidcError),
}

impl From<IdTokenCheck> for OidcError {
    fn from(check: IdTokenCheck) -> Self {
        match check {
            IdTokenCheck::UnknownKey => OidcError::InvalidIdToken("signed with an unknown key".into()),
            IdTokenCheck::Failed(e) => e,
        }
    }
}

fn check_id_token(
    ready: &Ready,
    id_token: &IdToken,
    nonce: &Nonce,
    access_token: &AccessToken,
) -> Result<IdTokenClaims, IdTokenCheck> {
    use openidconnect::{ClaimsVerificationError as C, SignatureVerificationError as S};
    let verifier =
        ready.client.id_token_verifier().set_allowed_algs(ready.allowed_algs.iter().cloned()).set_issue_time_verifier_fn(|iat| {
            if iat > Utc::now() + ChronoDuration::seconds(IAT_SKEW_SECS) {
                Err("issued in the future".to_string())
            } else {
                Ok(())
            }
        });
    let claims = id_token.claims(&verifier, nonce).map_err(|err| match err {
        C::SignatureVerification(S::NoMatchingKey) => IdTokenCheck::UnknownKey,
        other => IdTokenCheck::Failed(OidcError::InvalidIdToken(other.to_string())),
    })?;
    if let Some(expected) = claims.access_token_hash() {
        let failed = |e: String| IdTokenCheck::Failed(OidcError::InvalidIdToken(e));
        let alg = id_token.signing_alg().map_err(|e| failed(e.to_string()))?;
        let key = id_token.signing_key(&verifier).map_err(|e| failed(e.to_string()))?;
        let actual = AccessTokenHash::from_token(access_token, alg, key).map_err(|e| failed(e.to_string()))?;
        if actual != *expected {
            return Err(IdTokenCheck::Failed(OidcError::AtHashMismatch));
        }
    }
    Ok(claims.clone())
}

/// The user's profile: the ID token's claims, completed by userinfo (whose
/// `sub` must match) when the provider has it.
async fn profile(
    state: &AppState,
    ready: &Ready,
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
    };
    if ready.client.user_info_url().is_some() {
        let info = userinfo(state, ready, response.access_token().clone(), subject).await?;
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

async fn userinfo(
    state: &AppState,
    ready: &Ready,
    access_token: AccessToken,
    subject: SubjectIdentifier,
) -> Result<CoreUserInfoClaims, OidcError> {
    let request = ready.client.user_info(access_token, Some(subject)).map_err(|e| OidcError::UserInfo(e.to_string()))?;
    request.request_async(&state.http).await.map_err(|e| OidcError::UserInfo(e.to_string()))
}
