//! Signing keys: Ed25519 (JWS `EdDSA`), made once, the private half stored
//! encrypted in `signing_keys` so every instance shares them.
//!
//! Life of a key: `doorman rotate-keys` inserts a new key whose
//! `active_from` lies a propagation delay ahead. From then on it is
//! published in the JWKS, but the previous key goes on signing until
//! `active_from`; the previous key is retired at that moment and stays
//! published until its last tokens have expired (`publish_until` =
//! `active_from` + `auth.service_token_ttl` + [`CLOCK_SKEW`]). Each instance
//! rereads the table when its copy is older than `auth.cache_ttl`, so a key
//! added by another process is signed with and published everywhere
//! without a restart.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use diesel::prelude::*;
use ed25519_dalek::Signer;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::crypto::Vault;
use crate::db::signing_keys::{self, SigningKeyRow};
use crate::db::{self, Db, DbConnection};

/// The JWS algorithm of every doorman key.
pub const ALG: &str = "EdDSA";
/// Margin for clocks of verifiers running ahead or behind.
pub const CLOCK_SKEW: TimeDelta = TimeDelta::seconds(60);
/// `Cache-Control: max-age` of `GET /.well-known/jwks.json`, in seconds.
pub const JWKS_MAX_AGE: u64 = 300;
/// PostgreSQL advisory lock taken while the first key is made, so two
/// instances starting at once on an empty table make one key.
const FIRST_KEY_LOCK: i64 = 0x646f_6f72_6d61_6e01;

/// A key loaded from the database, its private half decrypted.
pub struct LoadedKey {
    pub kid: String,
    signing: ed25519_dalek::SigningKey,
    /// The public JWK as published.
    pub jwk: Value,
    pub active_from: DateTime<Utc>,
    pub retired_at: Option<DateTime<Utc>>,
    pub publish_until: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for LoadedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedKey").field("kid", &self.kid).field("active_from", &self.active_from).finish_non_exhaustive()
    }
}

impl LoadedKey {
    /// Whether this key may sign at `now`.
    pub fn signs_at(&self, now: DateTime<Utc>) -> bool {
        self.active_from <= now && self.retired_at.is_none_or(|r| r > now)
    }

    /// Whether this key is in the JWKS at `now`.
    pub fn published_at(&self, now: DateTime<Utc>) -> bool {
        self.publish_until.is_none_or(|p| p > now)
    }

    /// Signs `claims` with `header` (whose `alg` and `kid` this sets): a
    /// JWS compact serialization (RFC 7515) with an Ed25519 signature (RFC 8037).
    ///
    /// The same bytes as `jsonwebtoken::encode`, which however parses the
    /// PKCS#8 key and derives its public half again on every call: signing
    /// with the key held here costs half as much (see benches/primitives.rs).
    pub fn sign<T: serde::Serialize>(&self, mut header: jsonwebtoken::Header, claims: &T) -> Result<String, serde_json::Error> {
        header.alg = jsonwebtoken::Algorithm::EdDSA;
        header.kid = Some(self.kid.clone());
        let header = serde_json::to_vec(&header)?;
        let claims = serde_json::to_vec(claims)?;
        let mut jws = String::with_capacity((header.len() + claims.len() + 64) * 4 / 3 + 4);
        URL_SAFE_NO_PAD.encode_string(header, &mut jws);
        jws.push('.');
        URL_SAFE_NO_PAD.encode_string(claims, &mut jws);
        let signature = self.signing.sign(jws.as_bytes());
        jws.push('.');
        URL_SAFE_NO_PAD.encode_string(signature.to_bytes(), &mut jws);
        Ok(jws)
    }
}

/// Every key of the table, as one instance last read it.
#[derive(Debug)]
pub struct KeySet {
    pub keys: Vec<LoadedKey>,
    loaded_at: Instant,
}

impl KeySet {
    pub fn empty() -> Self {
        Self { keys: Vec::new(), loaded_at: Instant::now() }
    }

    /// The key that signs at `now`: of those allowed to, the latest to
    /// become active (ties broken by `kid`, so every instance picks the same).
    pub fn signer(&self, now: DateTime<Utc>) -> Option<&LoadedKey> {
        self.keys.iter().filter(|k| k.signs_at(now)).max_by(|a, b| (a.active_from, &a.kid).cmp(&(b.active_from, &b.kid)))
    }

    /// The JWKS document: every key published at `now`, including keys that
    /// do not sign yet.
    pub fn jwks(&self, now: DateTime<Utc>) -> Value {
        json!({ "keys": self.keys.iter().filter(|k| k.published_at(now)).map(|k| &k.jwk).collect::<Vec<_>>() })
    }
}

/// Why stored keys cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("signing key {0} cannot be decrypted (is auth.secret_key the same on every instance?)")]
    Decrypt(String),
    #[error("signing key {0} is malformed")]
    Malformed(String),
}

/// This instance's copy of the keys, reread from the database when older
/// than the configured TTL.
pub struct KeyRing {
    current: RwLock<Arc<KeySet>>,
    reloading: AtomicBool,
    ttl: Duration,
}

impl KeyRing {
    pub fn new(ttl: Duration) -> Self {
        Self { current: RwLock::new(Arc::new(KeySet::empty())), reloading: AtomicBool::new(false), ttl }
    }

    /// The keys as last loaded, without touching the database.
    pub fn snapshot(&self) -> Arc<KeySet> {
        // A poisoned lock only means a writer panicked between two whole
        // assignments; the value inside is still a complete set.
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn store(&self, set: KeySet) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(set);
    }

    /// The current keys, reread first when the copy is older than the TTL.
    /// One request rereads at a time; the others go on with the old copy,
    /// and so does everyone when the database cannot be read.
    pub async fn get(&self, db: &Db, vault: &Vault) -> Arc<KeySet> {
        let set = self.snapshot();
        if set.loaded_at.elapsed() < self.ttl || self.reloading.swap(true, Ordering::AcqRel) {
            return set;
        }
        // Clears the flag however this future ends (it may be dropped mid-await).
        struct Reset<'a>(&'a AtomicBool);
        impl Drop for Reset<'_> {
            fn drop(&mut self) {
                self.0.store(false, Ordering::Release);
            }
        }
        let _reset = Reset(&self.reloading);
        match load(db, vault).await {
            Ok(fresh) => {
                self.store(fresh);
                self.snapshot()
            }
            Err(err) => {
                log::error!("cannot reload the signing keys, keeping the ones loaded: {err:#}");
                set
            }
        }
    }
}

async fn load(db: &Db, vault: &Vault) -> anyhow::Result<KeySet> {
    let rows = db.run(signing_keys::all).await?;
    Ok(decrypt_all(&rows, vault)?)
}

/// Decrypts every row; one key that cannot be read is an error, since it
/// means this instance does not share `auth.secret_key` with the others.
pub fn decrypt_all(rows: &[SigningKeyRow], vault: &Vault) -> Result<KeySet, KeyError> {
    let keys = rows.iter().map(|row| decrypt(row, vault)).collect::<Result<Vec<_>, _>>()?;
    Ok(KeySet { keys, loaded_at: Instant::now() })
}

fn vault_context(kid: &str) -> String {
    format!("signing_key:{kid}")
}

fn decrypt(row: &SigningKeyRow, vault: &Vault) -> Result<LoadedKey, KeyError> {
    let malformed = || KeyError::Malformed(row.kid.clone());
    if row.alg != ALG {
        return Err(malformed());
    }
    let seed = vault.open(&vault_context(&row.kid), &row.private_key_enc).map_err(|_| KeyError::Decrypt(row.kid.clone()))?;
    let seed: [u8; 32] = URL_SAFE_NO_PAD.decode(seed.expose()).ok().and_then(|b| b.try_into().ok()).ok_or_else(malformed)?;
    let key = ed25519_dalek::SigningKey::from_bytes(&seed);
    let jwk: Value = serde_json::from_str(&row.public_jwk).map_err(|_| malformed())?;
    // The published half must be the private half's.
    if jwk["x"].as_str() != Some(URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes()).as_str()) {
        return Err(malformed());
    }
    Ok(LoadedKey {
        kid: row.kid.clone(),
        signing: key,
        jwk,
        active_from: row.active_from.and_utc(),
        retired_at: row.retired_at.map(|t| t.and_utc()),
        publish_until: row.publish_until.map(|t| t.and_utc()),
    })
}

/// RFC 7638 thumbprint of an Ed25519 public key given as its JWK `x`.
pub fn thumbprint(x: &str) -> String {
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// A fresh key pair as stored: the seed sealed with the vault, the public
/// JWK in clear, `kid` its thumbprint.
pub fn generate(vault: &Vault, active_from: NaiveDateTime, now: NaiveDateTime) -> SigningKeyRow {
    let key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
    let x = URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes());
    let kid = thumbprint(&x);
    let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "alg": ALG, "use": "sig"});
    let seed = URL_SAFE_NO_PAD.encode(key.to_bytes());
    SigningKeyRow {
        private_key_enc: vault.seal(&vault_context(&kid), &seed),
        kid,
        alg: ALG.into(),
        public_jwk: jwk.to_string(),
        created_at: now,
        active_from,
        retired_at: None,
        publish_until: None,
    }
}

/// Serialises the writers of `signing_keys` inside a transaction: an
/// advisory lock on PostgreSQL; on SQLite [`db::write_transaction`] already
/// holds the single write lock.
fn lock_keys(conn: &mut DbConnection) -> QueryResult<()> {
    if matches!(conn, DbConnection::Postgresql(_)) {
        diesel::sql_query(format!("SELECT pg_advisory_xact_lock({FIRST_KEY_LOCK})")).execute(conn)?;
    }
    Ok(())
}

/// Makes the first key when the table is empty, and returns every key.
/// Two instances starting at once make one key: the writers are serialised
/// ([`lock_keys`]) and look again inside the transaction before inserting.
pub fn ensure_first_key(conn: &mut DbConnection, vault: &Vault, now: NaiveDateTime) -> QueryResult<Vec<SigningKeyRow>> {
    let rows = signing_keys::all(conn)?;
    if !rows.is_empty() {
        return Ok(rows);
    }
    db::write_transaction(conn, |conn| {
        lock_keys(conn)?;
        if signing_keys::all(conn)?.is_empty() {
            signing_keys::insert(conn, &generate(vault, now, now))?;
        }
        Ok::<_, diesel::result::Error>(())
    })?;
    signing_keys::all(conn)
}

/// What `doorman rotate-keys` did.
#[derive(Debug)]
pub struct Rotation {
    pub kid: String,
    pub active_from: NaiveDateTime,
    /// Until when the keys it replaces stay published.
    pub previous_published_until: NaiveDateTime,
    pub retired: usize,
    pub pruned: usize,
}

/// Adds a key that signs from `now + delay` (from now when no key can sign
/// at present), retires the others at that moment, keeping them published
/// until their last tokens have expired, and drops keys no longer published.
pub fn rotate(
    conn: &mut DbConnection,
    vault: &Vault,
    delay: TimeDelta,
    token_ttl: TimeDelta,
    now: NaiveDateTime,
) -> QueryResult<Rotation> {
    db::write_transaction(conn, |conn| {
        lock_keys(conn)?;
        let any_signs = signing_keys::all(conn)?.iter().any(|k| k.active_from <= now && k.retired_at.is_none_or(|r| r > now));
        let active_from = if any_signs { now + delay } else { now };
        let row = generate(vault, active_from, now);
        signing_keys::insert(conn, &row)?;
        let publish_until = active_from + token_ttl + CLOCK_SKEW;
        let retired = signing_keys::retire_others(conn, &row.kid, active_from, publish_until)?;
        let pruned = signing_keys::delete_unpublished(conn, now)?;
        Ok(Rotation { kid: row.kid, active_from, previous_published_until: publish_until, retired, pruned })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{DerivedKeys, SecretString};

    fn vault() -> Vault {
        DerivedKeys::derive(&SecretString::new("k".repeat(32))).vault
    }

    fn now() -> NaiveDateTime {
        crate::clock::Clock::system().now_naive()
    }

    #[test]
    fn generated_keys_decrypt_sign_and_verify() {
        let vault = vault();
        let row = generate(&vault, now(), now());
        assert!(!row.private_key_enc.contains(&row.kid));
        let set = decrypt_all(std::slice::from_ref(&row), &vault).unwrap();
        let key = set.signer(Utc::now()).unwrap();
        let token = key.sign(jsonwebtoken::Header::default(), &json!({"sub": "x", "exp": 4_000_000_000u64})).unwrap();
        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(set.jwks(Utc::now())["keys"][0].clone()).unwrap();
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
        validation.set_required_spec_claims(&["exp"]);
        let decoded = jsonwebtoken::decode::<Value>(&token, &jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap(), &validation);
        assert_eq!(decoded.unwrap().claims["sub"], "x");
        assert_eq!(jsonwebtoken::decode_header(&token).unwrap().kid.as_deref(), Some(row.kid.as_str()));
    }

    #[test]
    fn signatures_are_jsonwebtokens_own() {
        use ed25519_dalek::pkcs8::EncodePrivateKey;
        let vault = vault();
        let set = decrypt_all(&[generate(&vault, now(), now())], &vault).unwrap();
        let key = &set.keys[0];
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
        header.typ = Some("at+jwt".into());
        header.kid = Some(key.kid.clone());
        let claims = json!({"sub": "x", "scope": "a b", "exp": 4_000_000_000u64, "extra": {"q": [1, 2]}});
        let der = key.signing.to_pkcs8_der().unwrap();
        let theirs = jsonwebtoken::encode(&header, &claims, &jsonwebtoken::EncodingKey::from_ed_der(der.as_bytes())).unwrap();
        // Ed25519 signatures are deterministic: the same key and input give the same token.
        assert_eq!(key.sign(header, &claims).unwrap(), theirs);
    }

    #[test]
    fn another_secret_key_cannot_load_the_keys() {
        let row = generate(&vault(), now(), now());
        let other = DerivedKeys::derive(&SecretString::new("x".repeat(32))).vault;
        assert!(matches!(decrypt_all(&[row], &other), Err(KeyError::Decrypt(_))));
    }

    #[test]
    fn kid_is_the_rfc7638_thumbprint() {
        // RFC 8037 appendix A.3.
        assert_eq!(thumbprint("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"), "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
    }

    #[test]
    fn signer_and_publication_follow_the_times() {
        let vault = vault();
        let now = now();
        let mut old = generate(&vault, now - chrono::Duration::hours(1), now);
        let new = generate(&vault, now + chrono::Duration::minutes(10), now);
        old.retired_at = Some(new.active_from);
        old.publish_until = Some(new.active_from + chrono::Duration::minutes(6));
        let set = decrypt_all(&[old.clone(), new.clone()], &vault).unwrap();
        let at = |minutes: i64| (now + chrono::Duration::minutes(minutes)).and_utc();
        assert_eq!(set.signer(at(0)).unwrap().kid, old.kid);
        assert_eq!(set.signer(at(11)).unwrap().kid, new.kid);
        assert_eq!(set.jwks(at(0))["keys"].as_array().unwrap().len(), 2);
        assert_eq!(set.jwks(at(15))["keys"].as_array().unwrap().len(), 2);
        assert_eq!(set.jwks(at(17))["keys"].as_array().unwrap().len(), 1);
    }
}
