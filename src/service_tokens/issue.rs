//! `POST /token`: short-lived JWT access tokens for other services, in the
//! RFC 9068 profile (`typ: at+jwt`; `iss`, `sub`, `aud`, `exp`, `iat`,
//! `jti`, `scope`, `client_id`), signed with the current key.
//!
//! Callers: a user (a bearer token or a browser session holding the scope
//! `tokens`), who gets at most their own scopes; or a machine client with
//! `grant_type=client_credentials` and HTTP Basic, who gets its scopes and
//! extra claims.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{clients, ServiceTokens, TokenError};
use crate::identity::{Principal, Scope, ScopeSet, Via};

/// The `grant_type` of machine clients.
pub const CLIENT_CREDENTIALS: &str = "client_credentials";
/// The `grant_type` of command-line tools polling with a device code.
pub const DEVICE_CODE: &str = crate::identity::device::GRANT_TYPE;
/// `client_id` of tokens asked for from a browser session.
pub const BROWSER_CLIENT_ID: &str = "browser-session";
/// Longest `audience`.
pub const MAX_AUDIENCE: usize = 200;

/// The parameters of a token request, as a form (OAuth) or a JSON body.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenParams {
    pub grant_type: Option<String>,
    /// Space-separated scopes; by default every scope the caller holds.
    pub scope: Option<String>,
    /// The `aud` claim; by default the issuer (`server.public_url`).
    pub audience: Option<String>,
    /// The device-code grant (RFC 8628): the code the tool got.
    pub device_code: Option<String>,
    /// The device-code grant: the tool's label. Other grants authenticate
    /// clients with HTTP Basic and refuse it.
    pub client_id: Option<String>,
}

impl TokenParams {
    /// Parses the body by its `Content-Type`: `application/x-www-form-urlencoded`
    /// (unknown parameters ignored, as OAuth asks), `application/json`
    /// (unknown fields refused), or nothing at all.
    pub fn parse(content_type: Option<&str>, body: &[u8]) -> Result<Self, TokenError> {
        let mime = content_type.map(|c| c.split(';').next().unwrap_or("").trim().to_ascii_lowercase());
        match mime.as_deref() {
            _ if body.iter().all(u8::is_ascii_whitespace) => Ok(Self::default()),
            Some("application/x-www-form-urlencoded") => Self::from_form(body),
            Some("application/json") => {
                serde_json::from_slice(body).map_err(|e| TokenError::InvalidRequest(format!("invalid JSON body: {e}")))
            }
            _ => Err(TokenError::UnsupportedMediaType),
        }
    }

    fn from_form(body: &[u8]) -> Result<Self, TokenError> {
        let mut params = Self::default();
        for (key, value) in url::form_urlencoded::parse(body) {
            let slot = match key.as_ref() {
                "grant_type" => &mut params.grant_type,
                "scope" => &mut params.scope,
                "audience" => &mut params.audience,
                "device_code" => &mut params.device_code,
                "client_id" => &mut params.client_id,
                "client_secret" => return Err(TokenError::InvalidClient("authenticate the client with HTTP Basic")),
                _ => continue,
            };
            if slot.replace(value.into_owned()).is_some() {
                return Err(TokenError::InvalidRequest(format!("{key} given more than once")));
            }
        }
        Ok(params)
    }
}

/// The answer of `POST /token` (RFC 6749 §5.1).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    pub scope: String,
}

/// The claims of a service JWT.
#[derive(Debug, Serialize, Deserialize)]
pub struct ServiceClaims {
    pub iss: String,
    /// The user id, or the client id for a machine client.
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub jti: String,
    pub scope: String,
    pub client_id: String,
    /// For users `preferred_username` and `channel`; for clients their claims.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// How a token request authenticates, from its `Authorization` header and
/// `grant_type`.
#[derive(Debug, PartialEq, Eq)]
pub enum Grant {
    /// A user: a bearer token or a browser session, with no `grant_type`.
    User,
    /// A machine client: `grant_type=client_credentials` with HTTP Basic.
    ClientCredentials { id: String, secret: String },
    /// A command-line tool polling with its device code (RFC 8628).
    DeviceCode { device_code: Option<String>, client_id: Option<String> },
}

impl Grant {
    /// The grant of a parsed request: the device-code grant by its
    /// `grant_type` (no client authentication: a public client), else as
    /// [`Grant::of`], where `client_id` is refused (HTTP Basic is the way).
    pub fn for_request(authorization: Option<&str>, params: &mut TokenParams) -> Result<Grant, TokenError> {
        if params.grant_type.as_deref() == Some(DEVICE_CODE) {
            return Ok(Grant::DeviceCode { device_code: params.device_code.take(), client_id: params.client_id.take() });
        }
        if params.client_id.is_some() {
            return Err(TokenError::InvalidClient("authenticate the client with HTTP Basic"));
        }
        Grant::of(authorization, params.grant_type.as_deref())
    }

    /// `authorization` is the header's value, if any.
    pub fn of(authorization: Option<&str>, grant_type: Option<&str>) -> Result<Grant, TokenError> {
        let basic = authorization.filter(|v| v.get(..6).is_some_and(|scheme| scheme.eq_ignore_ascii_case("basic ")));
        match (basic, grant_type) {
            (Some(value), Some(CLIENT_CREDENTIALS)) => {
                let (id, secret) =
                    clients::parse_basic(value).ok_or(TokenError::InvalidClient("malformed HTTP Basic credentials"))?;
                Ok(Grant::ClientCredentials { id, secret })
            }
            (None, Some(CLIENT_CREDENTIALS)) => {
                Err(TokenError::InvalidClient("grant_type=client_credentials needs HTTP Basic client authentication"))
            }
            (_, Some(other)) => Err(TokenError::UnsupportedGrantType(other.chars().take(100).collect())),
            (Some(_), None) => {
                Err(TokenError::InvalidRequest("HTTP Basic client authentication needs grant_type=client_credentials".into()))
            }
            (None, None) => Ok(Grant::User),
        }
    }
}

/// Who asks for a token, authenticated.
pub enum Caller {
    User(Principal),
    Client(std::sync::Arc<clients::Client>),
}

impl ServiceTokens {
    /// Answers a token request of an authenticated caller: settles scope and
    /// audience, signs.
    pub async fn issue(&self, caller: Caller, params: TokenParams) -> Result<TokenResponse, TokenError> {
        let issuer = self.settings.server.url_for("");
        let audience = match params.audience {
            Some(aud)
                if aud.is_empty()
                    || aud.chars().count() > MAX_AUDIENCE
                    || aud.chars().any(|c| c.is_whitespace() || c.is_control()) =>
            {
                return Err(TokenError::InvalidRequest(format!("audience must be 1 to {MAX_AUDIENCE} characters without spaces")))
            }
            Some(aud) => aud,
            None => issuer.clone(),
        };
        let now = self.clock.now();
        let mut exp = now + self.settings.auth.service_token_ttl.delta();
        let (sub, client_id, scope, extra) = match caller {
            Caller::User(p) => {
                if !p.scopes.contains(Scope::Tokens) {
                    return Err(crate::identity::IdentityError::InsufficientScope(Scope::Tokens).into());
                }
                let scope = user_scope(p.scopes, params.scope.as_deref())?;
                if let Some(vu) = p.valid_until.filter(|_| p.is_external) {
                    exp = exp.min(vu);
                }
                let client_id = match &p.via {
                    Via::Bearer { token_id } => format!("api-token:{token_id}"),
                    Via::Cookie { .. } => BROWSER_CLIENT_ID.to_string(),
                };
                let mut extra = Map::new();
                extra.insert("preferred_username".into(), Value::String(p.username));
                extra.insert("channel".into(), Value::String(p.channel));
                (p.user_id, client_id, scope, extra)
            }
            Caller::Client(c) => {
                let scope = client_scope(&c.scopes, params.scope.as_deref())?;
                // Clients stored before a claim became reserved never set it either.
                let claims = c.claims.iter().filter(|(k, _)| !super::clients::is_reserved(k));
                (c.id.clone(), c.id.clone(), scope, claims.map(|(k, v)| (k.clone(), v.clone())).collect())
            }
        };
        let claims = ServiceClaims {
            iss: issuer,
            sub,
            aud: audience,
            exp: exp.timestamp(),
            iat: now.timestamp(),
            jti: uuid::Uuid::new_v4().to_string(),
            scope: scope.clone(),
            client_id,
            extra,
        };
        let access_token = self.sign(&claims, now).await?;
        metrics::counter!("doorman_tokens_issued_total", "kind" => "service_jwt").increment(1);
        Ok(TokenResponse { access_token, token_type: "Bearer", expires_in: (exp - now).num_seconds().max(0), scope })
    }

    /// Signs `claims` with the key that signs at `now`.
    pub async fn sign(&self, claims: &ServiceClaims, now: DateTime<Utc>) -> Result<String, TokenError> {
        let keys = self.keys().await;
        let key = keys.signer(now).ok_or(TokenError::NoSigningKey)?;
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
        header.typ = Some("at+jwt".into());
        key.sign(header, claims).map_err(TokenError::Signing)
    }
}

/// The scopes a user's token gets: those asked for (all held when none), never more than held.
fn user_scope(held: ScopeSet, asked: Option<&str>) -> Result<String, TokenError> {
    let Some(asked) = asked else { return Ok(held.to_string_list()) };
    let wanted = ScopeSet::parse(asked).map_err(TokenError::InvalidScope)?;
    if wanted.is_empty() {
        return Err(TokenError::InvalidScope("scope is empty".into()));
    }
    if !wanted.is_subset_of(held) {
        let missing: Vec<&str> = wanted.iter().filter(|s| !held.contains(*s)).map(Scope::as_str).collect();
        return Err(TokenError::InvalidScope(format!("not held: {}", missing.join(" "))));
    }
    Ok(wanted.to_string_list())
}

/// The scopes a client's token gets: those asked for (all when none), within the client's.
fn client_scope(held: &[String], asked: Option<&str>) -> Result<String, TokenError> {
    let Some(asked) = asked else { return Ok(held.join(" ")) };
    let mut granted: Vec<&str> = Vec::new();
    for scope in asked.split_whitespace() {
        if !held.iter().any(|h| h == scope) {
            return Err(TokenError::InvalidScope(format!(
                "not granted to this client: {}",
                scope.chars().take(100).collect::<String>()
            )));
        }
        if !granted.contains(&scope) {
            granted.push(scope);
        }
    }
    if granted.is_empty() {
        return Err(TokenError::InvalidScope("scope is empty".into()));
    }
    Ok(granted.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_and_json_bodies() {
        let form = Some("application/x-www-form-urlencoded; charset=utf-8");
        let p = TokenParams::parse(form, b"grant_type=client_credentials&scope=a+b&resource=x").unwrap();
        assert_eq!(p.grant_type.as_deref(), Some("client_credentials"));
        assert_eq!(p.scope.as_deref(), Some("a b"));
        assert!(matches!(TokenParams::parse(form, b"scope=a&scope=b"), Err(TokenError::InvalidRequest(_))));
        assert!(matches!(TokenParams::parse(form, b"client_secret=x"), Err(TokenError::InvalidClient(_))));
        let mut p = TokenParams::parse(form, b"client_id=x&grant_type=client_credentials").unwrap();
        assert!(matches!(Grant::for_request(None, &mut p), Err(TokenError::InvalidClient(_))));
        let mut p = TokenParams::parse(
            form,
            b"grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code&device_code=d&client_id=c",
        )
        .unwrap();
        assert_eq!(
            Grant::for_request(None, &mut p).unwrap(),
            Grant::DeviceCode { device_code: Some("d".into()), client_id: Some("c".into()) }
        );
        let p = TokenParams::parse(Some("application/json"), br#"{"audience": "queue"}"#).unwrap();
        assert_eq!(p.audience.as_deref(), Some("queue"));
        assert!(matches!(TokenParams::parse(Some("application/json"), br#"{"bogus": 1}"#), Err(TokenError::InvalidRequest(_))));
        assert!(matches!(TokenParams::parse(Some("text/plain"), b"x"), Err(TokenError::UnsupportedMediaType)));
        assert!(TokenParams::parse(None, b"").unwrap().grant_type.is_none());
    }

    #[test]
    fn grants() {
        use base64::Engine;
        let basic = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("id:dmc_x"));
        assert_eq!(Grant::of(None, None).unwrap(), Grant::User);
        assert_eq!(Grant::of(Some("Bearer dmn_x"), None).unwrap(), Grant::User);
        assert_eq!(
            Grant::of(Some(&basic), Some(CLIENT_CREDENTIALS)).unwrap(),
            Grant::ClientCredentials { id: "id".into(), secret: "dmc_x".into() }
        );
        assert!(matches!(Grant::of(None, Some(CLIENT_CREDENTIALS)), Err(TokenError::InvalidClient(_))));
        assert!(matches!(Grant::of(Some(&basic), None), Err(TokenError::InvalidRequest(_))));
        assert!(matches!(Grant::of(None, Some("password")), Err(TokenError::UnsupportedGrantType(_))));
    }

    #[test]
    fn scopes_never_grow() {
        let user = ScopeSet::for_user(false);
        assert_eq!(user_scope(user, None).unwrap(), "account tokens");
        assert_eq!(user_scope(user, Some("tokens")).unwrap(), "tokens");
        assert!(matches!(user_scope(user, Some("users:admin")), Err(TokenError::InvalidScope(_))));
        assert!(matches!(user_scope(user, Some("root")), Err(TokenError::InvalidScope(_))));
        let held = vec!["queue:submit".to_string(), "queue:read".to_string()];
        assert_eq!(client_scope(&held, None).unwrap(), "queue:submit queue:read");
        assert_eq!(client_scope(&held, Some("queue:read")).unwrap(), "queue:read");
        assert!(client_scope(&held, Some("queue:admin")).is_err());
        assert!(client_scope(&held, Some(" ")).is_err());
    }
}
