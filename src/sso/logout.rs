//! Logout with single sign-on: revoking the provider's refresh token (RFC
//! 7009), the provider's end-session URL (RP-initiated logout), and the
//! provider's back-channel logout tokens.

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;
use url::Url;

use super::account::refresh_token_context;
use super::provider::Ready;
use super::{OidcError, Sso};
use crate::config::ProviderSettings;
use crate::db::identities::{self, IdentityRow};
use crate::db::{self, sessions::SessionRow, users::UserView};

const BACKCHANNEL_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
/// Allowed clock skew for a logout token's `iat`.
const IAT_SKEW_SECS: i64 = 60;
/// Oldest logout token accepted.
const MAX_AGE_SECS: i64 = 600;

/// After a doorman session of an SSO user ended: revoke the provider's
/// refresh token where the provider offers revocation, and return the
/// provider's end-session URL when it has one.
pub async fn after_session_end(sso: &Sso, session: &SessionRow, user: &UserView) -> Option<String> {
    let provider = sso.providers.get(session.provider_id.as_deref()?)?;
    let ready = provider.ready().ok()?;
    let user_id = user.user.id.clone();
    if let Ok(Some(identity)) = sso.db.run(move |conn| identities::find_by_user(conn, &user_id)).await {
        revoke_refresh_token(sso, &provider.settings, &ready, &identity).await;
    }
    let id_token = session.id_token_enc.as_deref().and_then(|sealed| sso.vault.open("id_token", sealed).ok());
    let endpoint = ready.end_session_endpoint.clone()?;
    Some(end_session_url(
        endpoint,
        &provider.settings,
        id_token.as_ref().map(|t| t.expose()),
        &sso.settings.server.url_for("/login"),
    ))
}

/// RP-initiated logout: the end-session endpoint with `id_token_hint`,
/// `post_logout_redirect_uri` and `client_id`.
pub fn end_session_url(mut endpoint: Url, provider: &ProviderSettings, id_token: Option<&str>, after: &str) -> String {
    {
        let mut query = endpoint.query_pairs_mut();
        if let Some(hint) = id_token {
            query.append_pair("id_token_hint", hint);
        }
        query.append_pair("post_logout_redirect_uri", after).append_pair("client_id", &provider.client_id);
    }
    endpoint.to_string()
}

/// Revokes the stored refresh token at the provider and forgets it.
async fn revoke_refresh_token(sso: &Sso, provider: &ProviderSettings, ready: &Ready, identity: &IdentityRow) {
    let Some(sealed) = identity.refresh_token_enc.as_deref() else { return };
    if let (Some(endpoint), Ok(token)) =
        (&ready.revocation_endpoint, sso.vault.open(&refresh_token_context(&identity.id), sealed))
    {
        let encode = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let mut request =
            sso.http.post(endpoint.as_str()).form(&[("token", token.expose()), ("token_type_hint", "refresh_token")]);
        request = match &provider.client_secret {
            // RFC 6749 2.3.1: client_secret_basic with form-encoded id and secret.
            Some(secret) => request.basic_auth(encode(&provider.client_id), Some(encode(secret.expose()))),
            None => request.query(&[("client_id", provider.client_id.as_str())]),
        };
        match request.send().await {
            Ok(response) if response.status().is_success() => {}
            Ok(response) => log::warn!("provider {} refused to revoke a refresh token: {}", provider.id, response.status()),
            Err(err) => log::warn!("provider {} unreachable to revoke a refresh token: {err}", provider.id),
        }
    }
    let id = identity.id.clone();
    if let Err(err) = sso.db.run(move |conn| identities::drop_refresh_token(conn, &id)).await {
        log::error!("cannot forget a revoked refresh token: {}", crate::report::chain(&err));
    }
}

/// `POST /oidc/backchannel-logout`: validates the provider's logout token
/// (signature, iss, aud, iat, events, sid or sub, no nonce) and ends the
/// sessions it names. Returns how many sessions ended.
pub async fn backchannel(sso: &Sso, logout_token: &str) -> Result<usize, OidcError> {
    let header = logout_header(logout_token)?;
    let mut verified = None;
    for provider in sso.providers.all() {
        let Ok(ready) = provider.ready() else { continue };
        let Some(keys) = LogoutKeys::of(&ready, &provider.settings) else { continue };
        if let Some(claims) = keys.verify(&header, logout_token) {
            verified = Some((provider.clone(), claims));
            break;
        }
    }
    let (provider, claims) = verified.ok_or_else(|| bad("no configured provider signed it for this client"))?;
    let LogoutRequest { sid, sub } = check_logout_claims(&claims, sso.clock.timestamp())?;
    let provider_id = provider.settings.id.clone();
    let issuer = provider.ready()?.issuer.clone();
    let at = sso.clock.now_naive();
    let ended = sso
        .db
        .run(move |conn| {
            let mut ended = Vec::new();
            if let Some(sid) = &sid {
                for session in db::sessions::find_by_provider_sid(conn, &provider_id, sid)? {
                    db::sessions::revoke(conn, &session.id, at)?;
                    ended.push(session.id);
                }
            }
            if let (None, Some(sub)) = (&sid, &sub) {
                if let Some(identity) = identities::find_by_subject(conn, &issuer, sub)? {
                    ended.extend(db::sessions::revoke_all_for_user(conn, &identity.user_id, None, at)?);
                }
            }
            Ok(ended)
        })
        .await?;
    sso.identity.sessions.forget(&ended);
    log::info!("back-channel logout from provider {}: {} session(s) ended", provider.settings.id, ended.len());
    Ok(ended.len())
}

fn bad(why: &str) -> OidcError {
    OidcError::InvalidLogoutToken(why.to_string())
}

/// What a valid logout token asks for: the end of the provider session
/// `sid`, or else of every session of the user `sub`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutRequest {
    pub sid: Option<String>,
    pub sub: Option<String>,
}

/// The header of a logout token: a signed JWT, never HMAC-signed.
pub fn logout_header(token: &str) -> Result<jsonwebtoken::Header, OidcError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| bad("not a signed JWT"))?;
    if matches!(header.alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) {
        return Err(bad("an HMAC-signed logout token is not accepted"));
    }
    Ok(header)
}

/// What a logout token's claims must say besides `iss` and `aud` (OpenID
/// Connect Back-Channel Logout 2.6): a recent `iat`, the back-channel
/// logout event, no `nonce`, and `sid` or `sub`.
pub fn check_logout_claims(claims: &Value, now: i64) -> Result<LogoutRequest, OidcError> {
    let iat = claims.get("iat").and_then(Value::as_i64).ok_or_else(|| bad("iat is missing"))?;
    if iat > now.saturating_add(IAT_SKEW_SECS) || iat < now.saturating_sub(MAX_AGE_SECS) {
        return Err(bad("iat is out of range"));
    }
    if !claims.get("events").and_then(|e| e.get(BACKCHANNEL_EVENT)).is_some_and(Value::is_object) {
        return Err(bad("events does not hold the back-channel logout event"));
    }
    if claims.get("nonce").is_some() {
        return Err(bad("a logout token must not hold a nonce"));
    }
    let sid = claims.get("sid").and_then(Value::as_str).map(str::to_string);
    let sub = claims.get("sub").and_then(Value::as_str).map(str::to_string);
    if sid.is_none() && sub.is_none() {
        return Err(bad("neither sid nor sub is present"));
    }
    Ok(LogoutRequest { sid, sub })
}

/// One provider's keys and names, against which a logout token is checked.
pub struct LogoutKeys<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    pub jwks: JwkSet,
}

impl<'a> LogoutKeys<'a> {
    fn of(ready: &'a Ready, settings: &'a ProviderSettings) -> Option<Self> {
        let jwks = serde_json::to_value(ready.metadata.jwks()).ok().and_then(|v| serde_json::from_value(v).ok())?;
        Some(Self { issuer: &ready.issuer, client_id: &settings.client_id, jwks })
    }

    /// The whole check of a logout token by one provider, without network:
    /// header, signature, `iss`, `aud`, then [`check_logout_claims`].
    pub fn parse(&self, token: &str, now: i64) -> Result<LogoutRequest, OidcError> {
        let header = logout_header(token)?;
        let claims = self.verify(&header, token).ok_or_else(|| bad("this provider did not sign it for this client"))?;
        check_logout_claims(&claims, now)
    }

    /// The claims of `token` if these keys verify it for this client.
    fn verify(&self, header: &jsonwebtoken::Header, token: &str) -> Option<Value> {
        let jwk = match &header.kid {
            Some(kid) => self.jwks.find(kid)?,
            None if self.jwks.keys.len() == 1 => &self.jwks.keys[0],
            None => return None,
        };
        let key = DecodingKey::from_jwk(jwk).ok()?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[self.issuer]);
        validation.set_audience(&[self.client_id]);
        validation.set_required_spec_claims(&["iss", "aud", "iat"]);
        validation.leeway = IAT_SKEW_SECS as u64;
        jsonwebtoken::decode::<Value>(token, &key, &validation).ok().map(|data| data.claims)
    }
}

#[cfg(test)]
mod tests {
    use openidconnect::core::{CoreJsonWebKeySet, CoreRsaPrivateSigningKey};
    use openidconnect::{JsonWebKeyId, PrivateSigningKey};
    use serde_json::json;

    use super::*;

    const PEM: &str = include_str!("../../tests/api/helpers/fake_op/key1.pem");
    const NOW: i64 = 1_800_000_000;

    fn keys() -> LogoutKeys<'static> {
        let key = CoreRsaPrivateSigningKey::from_pem(PEM, Some(JsonWebKeyId::new("key1".into()))).unwrap();
        let set = serde_json::to_value(CoreJsonWebKeySet::new(vec![key.as_verification_key()])).unwrap();
        LogoutKeys { issuer: "https://op.example", client_id: "doorman", jwks: serde_json::from_value(set).unwrap() }
    }

    fn claims() -> Value {
        json!({"iss": "https://op.example", "aud": "doorman", "iat": NOW, "jti": "j",
               "events": {BACKCHANNEL_EVENT: {}}, "sid": "s1"})
    }

    fn sign(claims: &Value) -> String {
        let mut header = jsonwebtoken::Header::new(Algorithm::RS256);
        header.kid = Some("key1".into());
        jsonwebtoken::encode(&header, claims, &jsonwebtoken::EncodingKey::from_rsa_pem(PEM.as_bytes()).unwrap()).unwrap()
    }

    fn refused(result: Result<LogoutRequest, OidcError>) -> String {
        match result {
            Err(OidcError::InvalidLogoutToken(why)) => why,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn a_signed_logout_token_names_a_session() {
        let request = keys().parse(&sign(&claims()), NOW).unwrap();
        assert_eq!(request, LogoutRequest { sid: Some("s1".into()), sub: None });
    }

    #[test]
    fn logout_tokens_are_refused_for_each_missing_piece() {
        let keys = keys();
        let bent = |change: &dyn Fn(&mut Value)| {
            let mut c = claims();
            change(&mut c);
            refused(keys.parse(&sign(&c), NOW))
        };
        assert!(bent(&|c| c["iss"] = "https://other.example".into()).contains("did not sign"));
        assert!(bent(&|c| c["aud"] = "someone-else".into()).contains("did not sign"));
        assert!(bent(&|c| c["iat"] = (NOW + 3600).into()).contains("iat"));
        assert!(bent(&|c| c["iat"] = (NOW - 3600).into()).contains("iat"));
        assert!(bent(&|c| c["iat"] = i64::MIN.into()).contains("iat"));
        assert!(bent(&|c| c["events"] = json!({})).contains("events"));
        assert!(bent(&|c| c["nonce"] = "n".into()).contains("nonce"));
        assert!(bent(&|c| {
            c.as_object_mut().unwrap().remove("sid");
        })
        .contains("neither"));
        assert!(refused(keys.parse("not a token", NOW)).contains("not a signed JWT"));
        let hmac = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(Algorithm::HS256),
            &claims(),
            &jsonwebtoken::EncodingKey::from_secret(b"k"),
        )
        .unwrap();
        assert!(refused(keys.parse(&hmac, NOW)).contains("HMAC"));
        let mut token = sign(&claims());
        token.push('A');
        assert!(refused(keys.parse(&token, NOW)).contains("did not sign"));
    }

    #[test]
    fn odd_claims_are_refused_not_panicked_on() {
        for claims in [
            json!(null),
            json!([]),
            json!({"iat": "1"}),
            json!({"iat": NOW, "events": []}),
            json!({"iat": NOW, "events": {BACKCHANNEL_EVENT: 1}}),
        ] {
            assert!(check_logout_claims(&claims, NOW).is_err(), "{claims}");
        }
        let sub_only = json!({"iat": NOW, "events": {BACKCHANNEL_EVENT: {}}, "sub": "u"});
        assert_eq!(check_logout_claims(&sub_only, NOW).unwrap(), LogoutRequest { sid: None, sub: Some("u".into()) });
    }
}
