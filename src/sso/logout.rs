//! Logout with single sign-on: revoking the provider's refresh token (RFC
//! 7009), the provider's end-session URL (RP-initiated logout), and the
//! provider's back-channel logout tokens.

use std::sync::Arc;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;
use url::Url;

use super::account::refresh_token_context;
use super::provider::{Provider, Ready};
use super::{OidcError, Sso};
use crate::config::ProviderSettings;
use crate::db::identities::{self, IdentityRow};
use crate::db::{self, sessions::SessionRow, users::UserView};
use crate::identity::audit::{self, Event, Kind, Origin};
use crate::identity::{end_credentials_in, EndWhich, EndedCredentials};

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
    let (user_id, provider_id) = (user.user.id.clone(), provider.settings.id.clone());
    if let Ok(Some(identity)) = sso.db.run(move |conn| identities::find_by_user_provider(conn, &user_id, &provider_id)).await {
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

/// `POST /oidc/backchannel-logout` from `client`: validates the provider's
/// logout token (signature with an algorithm the provider announced, iss,
/// aud, iat, exp, jti, events, sid or sub, no nonce), redeems its `jti`
/// once, and ends what it names on every instance: with `sid`, the sessions
/// opened in that provider session; with `sub` alone, every session of the
/// user; whenever `sub` names a user, their API tokens too. A `sid`-only
/// token leaves API tokens alone: it names one browser session at the
/// provider, not the person, and an API token belongs to no browser session.
/// What ended is recorded in the same transaction; a refused token that a
/// provider signed is recorded too. Returns how many sessions ended.
pub async fn backchannel(sso: &Sso, logout_token: &str, client: &Origin) -> Result<usize, OidcError> {
    // A token no configured provider signed is anyone's noise: refused and
    // logged, never stored (it costs the sender nothing to send).
    let (provider, claims) = match signed_by(sso, logout_token) {
        Ok(verified) => verified,
        Err(err) => {
            log::info!("back-channel logout refused: {err}");
            return Err(err);
        }
    };
    let result = end_named(sso, &provider, claims, client).await;
    match &result {
        // Our own fault (the database): logged, not the provider's doing.
        Err(OidcError::Db(_)) => {}
        Err(err) => {
            let event = Event::failure(Kind::BackchannelLogout)
                .origin(client)
                .detail("provider", provider.settings.id.clone())
                .detail("reason", err.code())
                .detail("message", err.to_string());
            sso.identity.audit.record(event).await;
        }
        Ok(_) => {}
    }
    result
}

/// The provider whose keys verify `logout_token` for this client, with an
/// algorithm it announced, and the token's claims.
fn signed_by(sso: &Sso, logout_token: &str) -> Result<(Arc<Provider>, Value), OidcError> {
    let header = header_of(logout_token)?;
    let mut verified = None;
    let mut unannounced = false;
    for provider in sso.providers.all() {
        let Ok(ready) = provider.ready() else { continue };
        let Some(jwks) = jwk_set(&ready) else { continue };
        let keys = LogoutKeys { issuer: ready.issuer.as_str(), client_id: &provider.settings.client_id, jwks: &jwks };
        if let Some(claims) = keys.verify(&header, logout_token) {
            if !announced(&ready, header.alg) {
                unannounced = true;
                continue;
            }
            verified = Some((provider.clone(), claims));
            break;
        }
    }
    if unannounced && verified.is_none() {
        return Err(bad("signed with an algorithm the provider does not announce"));
    }
    verified.ok_or_else(|| bad("no configured provider signed it for this client"))
}

fn bad(message: &str) -> OidcError {
    OidcError::InvalidLogoutToken(message.to_string())
}

/// The JOSE header of a logout token; an HMAC-signed one is refused, since
/// a client secret is no provider's signature.
pub fn header_of(logout_token: &str) -> Result<jsonwebtoken::Header, OidcError> {
    let header = jsonwebtoken::decode_header(logout_token).map_err(|_| bad("not a signed JWT"))?;
    if matches!(header.alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) {
        return Err(bad("an HMAC-signed logout token is not accepted"));
    }
    Ok(header)
}

/// What a logout token names, once its claims passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutClaims {
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    pub sid: Option<String>,
    pub sub: Option<String>,
}

/// OpenID Connect Back-Channel Logout 1.0, section 2.6, on claims whose
/// signature, `iss` and `aud` were verified, at time `now`: `iat` recent,
/// `exp` present and not past, `jti`, the back-channel event, no `nonce`,
/// and `sid` or `sub`.
pub fn check_claims(claims: &Value, now: i64) -> Result<LogoutClaims, OidcError> {
    let iat = claims.get("iat").and_then(Value::as_i64).ok_or_else(|| bad("iat is missing"))?;
    if iat > now.saturating_add(IAT_SKEW_SECS) || iat < now.saturating_sub(MAX_AGE_SECS) {
        return Err(bad("iat is out of range"));
    }
    let exp = claims.get("exp").and_then(Value::as_i64).ok_or_else(|| bad("exp is missing"))?;
    if exp <= now.saturating_sub(IAT_SKEW_SECS) {
        return Err(bad("the logout token has expired"));
    }
    let jti = claims.get("jti").and_then(Value::as_str).filter(|j| !j.is_empty()).ok_or_else(|| bad("jti is missing"))?;
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
    Ok(LogoutClaims { iat, exp, jti: jti.to_string(), sid, sub })
}

impl LogoutClaims {
    /// Until when the `jti` must be remembered: as long as the token could
    /// be accepted, that is until its `exp` and never past its `iat` age
    /// limit, plus the skew.
    pub fn remember_until(&self) -> Option<chrono::NaiveDateTime> {
        let until = self.exp.min(self.iat.saturating_add(MAX_AGE_SECS)).saturating_add(IAT_SKEW_SECS);
        chrono::DateTime::from_timestamp(until, 0).map(|t| t.naive_utc())
    }
}

/// One provider's keys, issuer and this client's id: all a logout token's
/// signature is checked against, without network.
pub struct LogoutKeys<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    pub jwks: &'a JwkSet,
}

impl LogoutKeys<'_> {
    /// The claims of `token` (whose header is `header`) if these keys
    /// verify it for this client and issuer.
    pub fn verify(&self, header: &jsonwebtoken::Header, token: &str) -> Option<Value> {
        let jwk = match &header.kid {
            Some(kid) => self.jwks.find(kid)?,
            None if self.jwks.keys.len() == 1 => &self.jwks.keys[0],
            None => return None,
        };
        let key = DecodingKey::from_jwk(jwk).ok()?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[self.issuer]);
        validation.set_audience(&[self.client_id]);
        validation.set_required_spec_claims(&["iss", "aud", "iat", "exp"]);
        // `exp` is compared with doorman's clock in `check_claims`, so tests can move time.
        validation.validate_exp = false;
        validation.leeway = IAT_SKEW_SECS as u64;
        jsonwebtoken::decode::<Value>(token, &key, &validation).ok().map(|data| data.claims)
    }

    /// The whole check of a logout token at time `now`, short of whether
    /// its provider announced the algorithm and whether its `jti` was used.
    pub fn parse(&self, token: &str, now: i64) -> Result<LogoutClaims, OidcError> {
        let header = header_of(token)?;
        let claims = self.verify(&header, token).ok_or_else(|| bad("these keys did not sign it for this client"))?;
        check_claims(&claims, now)
    }
}

/// Checks the claims of a logout token `provider` signed and ends what they
/// name, recorded in the same transaction.
async fn end_named(sso: &Sso, provider: &Provider, claims: Value, client: &Origin) -> Result<usize, OidcError> {
    let checked = check_claims(&claims, sso.clock.timestamp())?;
    let remember_until = checked.remember_until().ok_or_else(|| bad("exp is out of range"))?;
    let LogoutClaims { jti, sid, sub, .. } = checked;
    let provider_id = provider.settings.id.clone();
    let issuer = provider.ready()?.issuer.clone();
    let used_key = crate::crypto::sha256_hex(&format!("backchannel-logout-jti\n{issuer}\n{jti}"));
    let at = sso.clock.now_naive();
    let audit = sso.identity.audit.clone();
    let client = client.clone();
    let outcome = sso
        .db
        .run(move |conn| {
            db::write_transaction(conn, |conn| {
                db::oidc_states::purge_expired(conn, at)?;
                if !db::oidc_states::mark_used(conn, &used_key, remember_until)? {
                    return Ok(None);
                }
                let mut ended = EndedCredentials::default();
                let mut users = Vec::new();
                if let Some(sid) = &sid {
                    for session in db::sessions::find_by_provider_sid(conn, &provider_id, sid)? {
                        db::sessions::revoke(conn, &session.id, at)?;
                        ended.session_ids.push(session.id);
                        users.push(session.user_id);
                    }
                    ended.announce(conn)?;
                }
                if let Some(sub) = &sub {
                    if let Some(identity) = identities::find_by_subject(conn, &issuer, sub)? {
                        let which = EndWhich { sessions: sid.is_none(), ..EndWhich::ALL };
                        let of_user = end_credentials_in(conn, &identity.user_id, which, at)?;
                        log::info!("back-channel logout: {} API token(s) of the user ended", of_user.token_hashes.len());
                        ended.extend(of_user);
                        users.push(identity.user_id);
                    }
                }
                users.sort();
                users.dedup();
                let mut event = ended.counted(
                    Event::success(Kind::BackchannelLogout)
                        .origin(&client)
                        .detail("provider", provider_id.clone())
                        .detail("by", if sid.is_some() { "sid" } else { "sub" }),
                );
                if let [user_id] = users.as_slice() {
                    event.username = db::users::username_of(conn, user_id)?;
                }
                let event = audit.row(event);
                db::audit_events::insert(conn, &event)?;
                Ok(Some((ended, event)))
            })
        })
        .await?;
    let (ended, event) = outcome.ok_or_else(|| bad("this logout token was already used"))?;
    audit::log_stored(&[event]);
    sso.identity.forget_ended(&ended);
    let ended = ended.session_ids.len();
    log::info!("back-channel logout from provider {}: {ended} session(s) ended", provider.settings.id);
    Ok(ended)
}

/// Whether `alg` is one of the signing algorithms `ready` announced.
fn announced(ready: &Ready, alg: Algorithm) -> bool {
    let name = serde_json::to_value(alg).ok();
    ready.allowed_algs.iter().any(|a| serde_json::to_value(a).ok() == name)
}

/// The provider's key set in jsonwebtoken's form.
fn jwk_set(ready: &Ready) -> Option<JwkSet> {
    serde_json::to_value(ready.metadata.jwks()).ok().and_then(|v| serde_json::from_value(v).ok())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn claims() -> Value {
        json!({"iat": NOW, "exp": NOW + 120, "jti": "j1", "sid": "s1", "events": {BACKCHANNEL_EVENT: {}}})
    }

    #[test]
    fn well_formed_claims_name_what_they_end() {
        let checked = check_claims(&claims(), NOW).unwrap();
        assert_eq!((checked.jti.as_str(), checked.sid.as_deref(), checked.sub.as_deref()), ("j1", Some("s1"), None));
        // Remembered until exp plus the skew.
        assert_eq!(checked.remember_until().unwrap().and_utc().timestamp(), NOW + 120 + IAT_SKEW_SECS);
    }

    #[test]
    fn each_missing_or_wrong_claim_is_refused() {
        let cases: [(&str, Value); 7] = [
            ("iat", Value::Null),
            ("iat", json!(NOW + IAT_SKEW_SECS + 1)),
            ("exp", Value::Null),
            ("exp", json!(NOW - IAT_SKEW_SECS)),
            ("jti", json!("")),
            ("events", json!({"other": {}})),
            ("nonce", json!("n")),
        ];
        for (claim, value) in cases {
            let mut c = claims();
            if value.is_null() {
                c.as_object_mut().unwrap().remove(claim);
            } else {
                c[claim] = value;
            }
            assert!(check_claims(&c, NOW).is_err(), "{claim} = {}", c[claim]);
        }
        let mut neither = claims();
        neither.as_object_mut().unwrap().remove("sid");
        assert!(check_claims(&neither, NOW).is_err());
    }

    #[test]
    fn extreme_times_neither_overflow_nor_pass() {
        let mut c = claims();
        c["iat"] = json!(i64::MIN);
        assert!(check_claims(&c, NOW).is_err());
        let mut c = claims();
        c["exp"] = json!(i64::MAX);
        let checked = check_claims(&c, NOW).unwrap();
        assert!(checked.remember_until().is_some(), "capped by the iat age limit");
    }

    #[test]
    fn hmac_and_garbage_headers_are_refused() {
        assert!(header_of("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1MSJ9.c2ln").is_err());
        assert!(header_of("not a token").is_err());
    }
}
