//! The one way doorman checks a provider's ID token, at sign-in and after a
//! refresh: the signature with the provider's keys and an algorithm it
//! announced (never `none`, never an HMAC), fetching the keys once more when
//! the token names a key doorman does not know (key rotation); then what
//! each moment asks of the claims.

use std::sync::Arc;

use chrono::TimeDelta;
use openidconnect::{AccessToken, AccessTokenHash, Nonce};

use super::provider::{Provider, Ready};
use super::types::{IdToken, IdTokenClaims};
use super::OidcError;
use crate::clock::Clock;

/// Allowed clock skew for `iat`.
const IAT_SKEW: TimeDelta = TimeDelta::seconds(60);

/// What the claims must say besides `iss`, `aud`, `azp` and `exp`.
pub enum Expected<'a> {
    /// At sign-in (OpenID Connect Core 3.1.3.7): the flow's `nonce`, and
    /// `at_hash` (when present) matching the access token.
    SignIn { nonce: &'a Nonce, access_token: &'a AccessToken },
    /// After a refresh (Core 12.2): no nonce; the same subject and issuer as
    /// the stored identity.
    Refresh { issuer: &'a str, subject: &'a str },
}

/// Why an ID token is refused.
#[derive(Debug, thiserror::Error)]
pub enum IdTokenError {
    #[error("signed with an unknown key")]
    UnknownKey,
    #[error("{0}")]
    Invalid(String),
    #[error("the access token does not match the ID token's at_hash")]
    AtHashMismatch,
    /// The keys could not be fetched again.
    #[error(transparent)]
    KeyFetch(OidcError),
}

/// Checks `id_token` with `ready`'s keys, fetching them again once when the
/// token names an unknown key. Returns the provider as it now is (with the
/// new keys, if fetched) and the verified claims.
pub async fn verify(
    provider: &Provider,
    ready: Arc<Ready>,
    id_token: &IdToken,
    expected: Expected<'_>,
    http: &reqwest::Client,
    clock: &Clock,
) -> Result<(Arc<Ready>, IdTokenClaims), IdTokenError> {
    let max_age = provider.settings.max_id_token_age.delta();
    match check(&ready, id_token, &expected, clock, max_age) {
        Err(IdTokenError::UnknownKey) => {
            let fresh = provider.refetch_keys(http).await.map_err(IdTokenError::KeyFetch)?.ok_or(IdTokenError::UnknownKey)?;
            let claims = check(&fresh, id_token, &expected, clock, max_age)?;
            Ok((fresh, claims))
        }
        Ok(claims) => Ok((ready, claims)),
        Err(e) => Err(e),
    }
}

/// `azp`, when present, must be our client id (Core 3.1.3.7 step 5): an ID
/// token issued to another client is never accepted, whatever its `aud`.
fn check_azp(ready: &Ready, claims: &IdTokenClaims) -> Result<(), IdTokenError> {
    match claims.authorized_party() {
        Some(azp) if azp.as_str() != ready.client.client_id().as_str() => {
            Err(IdTokenError::Invalid(format!("it was issued to another client (azp {:?})", azp.as_str())))
        }
        _ => Ok(()),
    }
}

/// The check itself, with `ready`'s keys as they are (no fetch): what
/// [`verify`] does before and after fetching the keys again.
pub fn check(
    ready: &Ready,
    id_token: &IdToken,
    expected: &Expected<'_>,
    clock: &Clock,
    max_age: TimeDelta,
) -> Result<IdTokenClaims, IdTokenError> {
    use openidconnect::{ClaimsVerificationError as C, SignatureVerificationError as S};
    let now = clock.clone();
    let issue_clock = clock.clone();
    let verifier = ready
        .client
        .id_token_verifier()
        .set_allowed_algs(ready.allowed_algs.iter().cloned())
        .set_time_fn(move || now.now())
        .set_issue_time_verifier_fn(move |iat| {
            if iat > issue_clock.now() + IAT_SKEW {
                Err("issued in the future".to_string())
            } else {
                Ok(())
            }
        });
    let refused = |err: C| match err {
        C::SignatureVerification(S::NoMatchingKey) => IdTokenError::UnknownKey,
        other => IdTokenError::Invalid(other.to_string()),
    };
    match expected {
        Expected::SignIn { nonce, access_token } => {
            let claims = id_token.claims(&verifier, *nonce).map_err(refused)?;
            check_azp(ready, claims)?;
            if claims.issue_time() < clock.now() - max_age {
                return Err(IdTokenError::Invalid(format!(
                    "it was issued more than {}s ago (max_id_token_age)",
                    max_age.num_seconds()
                )));
            }
            if let Some(want) = claims.access_token_hash() {
                let invalid = |e: String| IdTokenError::Invalid(e);
                let alg = id_token.signing_alg().map_err(|e| invalid(e.to_string()))?;
                let key = id_token.signing_key(&verifier).map_err(|e| invalid(e.to_string()))?;
                let actual = AccessTokenHash::from_token(access_token, alg, key).map_err(|e| invalid(e.to_string()))?;
                if actual != *want {
                    return Err(IdTokenError::AtHashMismatch);
                }
            }
            Ok(claims.clone())
        }
        Expected::Refresh { issuer, subject } => {
            // Core 12.2: no nonce is expected in a refreshed ID token.
            let no_nonce = |_: Option<&Nonce>| -> Result<(), String> { Ok(()) };
            let claims = id_token.claims(&verifier, no_nonce).map_err(refused)?;
            check_azp(ready, claims)?;
            if claims.subject().as_str() != *subject || claims.issuer().as_str() != *issuer {
                return Err(IdTokenError::Invalid("it names another user or issuer".into()));
            }
            Ok(claims.clone())
        }
    }
}
