//! Machine clients: made by `doorman create-client`, they trade a client id
//! and secret (HTTP Basic, `grant_type=client_credentials`) for a service
//! JWT carrying their scopes and extra claims. The secret is `dmc_` + 256
//! random bits, shown once and stored as SHA-256 (enough for a random
//! secret of that length; no password hashing needed).

use std::net::IpAddr;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{Map, Value};

use chrono::NaiveDateTime;

use super::{ServiceTokens, TokenError};
use crate::crypto::{constant_time_eq, OpaqueToken};
use crate::db::{self, clients::ClientRow, DbConnection};
use crate::identity::audit::{Event, Kind, Origin};
use crate::identity::throttle::Throttled;

/// Client secrets: `dmc_` makes them recognisable (secret scanners, logs).
pub const CLIENT_SECRET: OpaqueToken = OpaqueToken::new("dmc_");
/// Longest client name.
pub const MAX_NAME: usize = 100;
/// Largest `--claims` JSON.
pub const MAX_CLAIMS: usize = 8 * 1024;
/// Claims a client cannot set: the token's own (RFC 7519, RFC 9068), and
/// every claim doorman gives users' tokens (service JWTs and the access
/// cookie), so a machine client can never pass for a user or an admin.
/// Compared without case.
pub const RESERVED_CLAIMS: [&str; 32] = [
    // RFC 7519 / RFC 9068 / OpenID Connect.
    "iss",
    "sub",
    "aud",
    "exp",
    "nbf",
    "iat",
    "jti",
    "scope",
    "scp",
    "client_id",
    "auth_time",
    "acr",
    "amr",
    "typ",
    "cnf",
    "azp",
    "sid",
    "nonce",
    // What doorman puts in users' tokens.
    "preferred_username",
    "channel",
    "email",
    "email_verified",
    "name",
    // The access cookie's own claims.
    "usr",
    "ch",
    "adm",
    "ext",
    "vu",
    // What services commonly read as a user's rights.
    "is_admin",
    "groups",
    "roles",
    "username",
];

/// Whether a client's claim `name` is one doorman sets itself.
pub fn is_reserved(name: &str) -> bool {
    RESERVED_CLAIMS.iter().any(|r| r.eq_ignore_ascii_case(name))
}

/// A client as the token endpoint uses it.
#[derive(Debug)]
pub struct Client {
    pub id: String,
    pub name: String,
    secret_hash: String,
    pub scopes: Vec<String>,
    /// Extra claims put in every token of this client.
    pub claims: Map<String, Value>,
    revoked: bool,
}

/// A client just made; the only time its secret exists in clear.
#[derive(Debug)]
pub struct NewClient {
    pub id: String,
    pub name: String,
    pub secret: crate::crypto::SecretString,
    pub scopes: Vec<String>,
}

/// Why a client could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CreateClientError {
    #[error("invalid name: {0}")]
    InvalidName(String),
    #[error("invalid scopes: {0}")]
    InvalidScopes(String),
    #[error("invalid claims: {0}")]
    InvalidClaims(String),
    #[error("client {0:?} already exists")]
    Exists(String),
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
}

/// Whether `scope` is an OAuth scope-token (RFC 6749 §3.3).
pub fn valid_scope_token(scope: &str) -> bool {
    !scope.is_empty()
        && scope.len() <= 100
        && scope.bytes().all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
}

/// Parses `--claims`: a JSON object without the token's own claims.
pub fn parse_claims(text: &str) -> Result<Map<String, Value>, String> {
    if text.len() > MAX_CLAIMS {
        return Err(format!("at most {MAX_CLAIMS} bytes"));
    }
    let value: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let Value::Object(map) = value else { return Err("must be a JSON object".into()) };
    if let Some(reserved) = map.keys().find(|k| is_reserved(k)) {
        return Err(format!("{reserved:?} is set by doorman"));
    }
    Ok(map)
}

/// Makes a client (synchronous: the command line). `scopes` may hold
/// several space-separated scopes per item.
pub fn create(
    conn: &mut DbConnection,
    name: &str,
    scopes: &[String],
    claims: Option<&str>,
    now: NaiveDateTime,
) -> Result<NewClient, CreateClientError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME || name.chars().any(char::is_control) {
        return Err(CreateClientError::InvalidName(format!("1 to {MAX_NAME} printable characters")));
    }
    let mut list: Vec<String> = Vec::new();
    for scope in scopes.iter().flat_map(|s| s.split_whitespace()) {
        if !valid_scope_token(scope) {
            return Err(CreateClientError::InvalidScopes(format!("{scope:?} is not a valid scope")));
        }
        if !list.iter().any(|s| s == scope) {
            list.push(scope.to_string());
        }
    }
    if list.is_empty() {
        return Err(CreateClientError::InvalidScopes("give at least one scope".into()));
    }
    let claims = match claims {
        Some(text) => parse_claims(text).map_err(CreateClientError::InvalidClaims)?,
        None => Map::new(),
    };
    let minted = CLIENT_SECRET.mint();
    let row = ClientRow {
        id: db::new_id(),
        name: name.to_string(),
        secret_hash: minted.hash,
        scopes: list.join(" "),
        claims: Value::Object(claims).to_string(),
        created_at: now,
        revoked_at: None,
    };
    match db::clients::insert(conn, &row) {
        Ok(()) => Ok(NewClient { id: row.id, name: row.name, secret: minted.secret, scopes: list }),
        Err(diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)) => {
            Err(CreateClientError::Exists(name.to_string()))
        }
        Err(e) => Err(e.into()),
    }
}

impl From<ClientRow> for Client {
    fn from(row: ClientRow) -> Self {
        let claims = match serde_json::from_str(&row.claims) {
            Ok(Value::Object(map)) => map,
            _ => {
                log::error!("client {}: stored claims are not a JSON object; ignoring them", row.id);
                Map::new()
            }
        };
        Self {
            scopes: row.scopes.split_whitespace().map(str::to_string).collect(),
            id: row.id,
            name: row.name,
            secret_hash: row.secret_hash,
            claims,
            revoked: row.revoked_at.is_some(),
        }
    }
}

/// The client id and secret of an `Authorization: Basic` value (RFC 6749
/// §2.3.1: each form-urlencoded, then joined by `:` and base64-encoded).
pub fn parse_basic(value: &str) -> Option<(String, String)> {
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let unescape = |part: &str| -> String {
        if part.contains(['%', '+']) {
            url::form_urlencoded::parse(part.as_bytes()).next().map(|(k, _)| k.into_owned()).unwrap_or_default()
        } else {
            part.to_string()
        }
    };
    Some((unescape(id), unescape(secret)))
}

/// Why client credentials did not go through.
enum Refusal {
    Throttled(Throttled),
    Other(TokenError),
}

impl From<TokenError> for Refusal {
    fn from(err: TokenError) -> Self {
        Refusal::Other(err)
    }
}

impl ServiceTokens {
    /// The client proving itself with `id` and `secret` from `client`.
    /// Attempts are counted per (client id, address) before the check,
    /// shared by every instance; past the limit that address waits (429),
    /// while the right secret from any other address still works. A refusal
    /// is recorded (with the client id when it is printable; a flood past the
    /// limit once a window); a fault of ours (the database) is not a refusal.
    pub async fn authenticate_client(&self, id: &str, secret: &str, client: &Origin) -> Result<Arc<Client>, TokenError> {
        // An id no client can have: refused before anything, and not recorded
        // (it touches no client, and costs the sender nothing). A control
        // character (a NUL would make PostgreSQL fail the lookup) is one.
        if id.is_empty() || id.len() > 100 || id.chars().any(char::is_control) {
            return Err(TokenError::InvalidClient("wrong client id or secret"));
        }
        let result = self.check_client(id, secret, client.ip_or_unspecified()).await;
        let reason = match &result {
            Ok(_) => None,
            // A flood past the limit is recorded once a window.
            Err(Refusal::Throttled(throttled)) => throttled.first.then_some("too_many_attempts"),
            Err(Refusal::Other(TokenError::InvalidClient(_))) => Some("invalid_client"),
            Err(Refusal::Other(_)) => None,
        };
        if let Some(reason) = reason {
            let mut event = Event::failure(Kind::ClientCredentialsFailed).origin(client).detail("reason", reason);
            if id.chars().all(|c| c.is_ascii_graphic()) {
                event = event.detail("client_id", id);
            }
            self.audit.record(event).await;
        }
        result.map_err(|refusal| match refusal {
            Refusal::Throttled(throttled) => TokenError::TooManyAttempts(throttled.wait),
            Refusal::Other(err) => err,
        })
    }

    async fn check_client(&self, id: &str, secret: &str, ip: IpAddr) -> Result<Arc<Client>, Refusal> {
        let attempt = self.throttle.client(id, ip).await.map_err(TokenError::from)?.map_err(Refusal::Throttled)?;
        let client = self.find_client(id).await?;
        // Compared even for unknown clients and malformed secrets, so timing does not tell them apart.
        let presented = CLIENT_SECRET.hash(secret).unwrap_or_default();
        let stored = client.as_ref().map_or("0".repeat(64), |c| c.secret_hash.clone());
        let matches = constant_time_eq(&presented, &stored);
        match client {
            Some(client) if matches && !client.revoked => {
                self.throttle.succeeded(attempt).await.map_err(TokenError::from)?;
                Ok(client)
            }
            _ => Err(TokenError::InvalidClient("wrong client id or secret").into()),
        }
    }

    async fn find_client(&self, id: &str) -> Result<Option<Arc<Client>>, TokenError> {
        if let Some(client) = self.clients.get(id) {
            return Ok(Some(client));
        }
        let key = id.to_string();
        let row = self.db.run(move |conn| db::clients::find(conn, &key)).await?;
        Ok(row.map(|row| {
            let client = Arc::new(Client::from(row));
            self.clients.insert(id.to_string(), client.clone());
            client
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_header_forms() {
        let header = format!("Basic {}", STANDARD.encode("my-id:dmc_s3cret"));
        assert_eq!(parse_basic(&header), Some(("my-id".into(), "dmc_s3cret".into())));
        let escaped = format!("basic {}", STANDARD.encode("a%3Ab:c+d%25"));
        assert_eq!(parse_basic(&escaped), Some(("a:b".into(), "c d%".into())));
        assert_eq!(parse_basic("Bearer abc"), None);
        assert_eq!(parse_basic("Basic !!!"), None);
        assert_eq!(parse_basic(&format!("Basic {}", STANDARD.encode("no-colon"))), None);
    }

    #[test]
    fn claims_and_scopes() {
        assert!(parse_claims(r#"{"queues": {"gpu": 10, "cpu": 1}}"#).is_ok());
        assert!(parse_claims(r#"{"sub": "admin"}"#).unwrap_err().contains("sub"));
        for claim in ["preferred_username", "channel", "scope", "Channel", "PREFERRED_USERNAME", "email", "adm", "is_admin"] {
            let err = parse_claims(&format!("{{\"{claim}\": \"x\"}}")).unwrap_err();
            assert!(err.contains("is set by doorman"), "{claim}: {err}");
        }
        assert!(parse_claims("[1]").is_err());
        assert!(parse_claims("{").is_err());
        assert!(valid_scope_token("queue:submit"));
        assert!(!valid_scope_token("a\"b"));
        assert!(!valid_scope_token("a b"));
        assert!(!valid_scope_token(""));
    }
}
