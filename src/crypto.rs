//! Secrets and the primitives doorman builds on: random tokens, SHA-256
//! digests, keys derived from `auth.secret_key`, and an AEAD box for what is
//! stored encrypted (provider refresh tokens, signing keys).

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// A string that never shows itself in `Debug` output or logs.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(String);

impl SecretString {
    pub fn new(value: String) -> Self {
        Self(value)
    }
    /// The secret itself; call only where it is used.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// `bytes` random bytes from the OS generator, base64url without padding.
pub fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

/// Hex SHA-256 of a token: how opaque tokens are stored and looked up.
pub fn sha256_hex(value: &str) -> String {
    let digest = Sha256::digest(value.as_bytes());
    let mut out = String::with_capacity(64);
    for byte in digest {
        use std::fmt::Write;
        let _ = write!(out, "{byte:02x}");
    }
    out
}

/// A kind of opaque secret token: a recognisable prefix (for secret
/// scanners and logs) plus 256 random bits, shown once and stored only as
/// its SHA-256. Browser sessions (`dms_`), API tokens (`dmn_`) and machine
/// client secrets (`dmc_`) are all made and checked here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpaqueToken {
    prefix: &'static str,
}

/// Random bytes in an opaque token.
const OPAQUE_BYTES: usize = 32;
/// Their length in base64url without padding.
const OPAQUE_CHARS: usize = 43;

/// A freshly minted opaque token: the only time its secret exists in clear.
#[derive(Debug)]
pub struct MintedToken {
    pub secret: SecretString,
    pub hash: String,
}

impl OpaqueToken {
    pub const fn new(prefix: &'static str) -> Self {
        Self { prefix }
    }

    pub fn prefix(self) -> &'static str {
        self.prefix
    }

    pub fn mint(self) -> MintedToken {
        let secret = format!("{}{}", self.prefix, random_token(OPAQUE_BYTES));
        let hash = sha256_hex(&secret);
        MintedToken { secret: SecretString::new(secret), hash }
    }

    /// The stored hash of `presented`, or `None` when it cannot be a token of
    /// this kind (wrong prefix, length or alphabet): such input costs no hash.
    pub fn hash(self, presented: &str) -> Option<String> {
        let body = presented.strip_prefix(self.prefix)?;
        let well_formed = body.len() == OPAQUE_CHARS && body.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        well_formed.then(|| sha256_hex(presented))
    }
}

/// Constant-time comparison of two strings.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Keys derived from `auth.secret_key`, one per purpose.
#[derive(Clone)]
pub struct DerivedKeys {
    /// HMAC key of the access cookie JWT.
    pub access_jwt: [u8; 32],
    /// Key of the encrypted flow cookie (64 bytes: signing + encryption).
    pub cookie: [u8; 64],
    /// AEAD for data stored encrypted.
    pub vault: Vault,
}

impl DerivedKeys {
    pub fn derive(secret: &SecretString) -> Self {
        let hk = Hkdf::<Sha256>::new(Some(b"doorman"), secret.expose().as_bytes());
        let mut access_jwt = [0u8; 32];
        let mut cookie = [0u8; 64];
        let mut vault = [0u8; 32];
        // HKDF-SHA256 can expand up to 8160 bytes, so these lengths cannot fail.
        hk.expand(b"access-jwt", &mut access_jwt).expect("valid HKDF length");
        hk.expand(b"cookie", &mut cookie).expect("valid HKDF length");
        hk.expand(b"vault", &mut vault).expect("valid HKDF length");
        Self { access_jwt, cookie, vault: Vault::new(&vault) }
    }
}

impl std::fmt::Debug for DerivedKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DerivedKeys([redacted])")
    }
}

/// XChaCha20-Poly1305 encryption of stored secrets. The output is
/// `base64(nonce || ciphertext)`; `context` binds a value to its purpose
/// (for example `refresh_token:<identity id>`), so it cannot be moved.
#[derive(Clone)]
pub struct Vault {
    cipher: XChaCha20Poly1305,
}

#[derive(Debug, thiserror::Error)]
#[error("stored secret cannot be decrypted")]
pub struct VaultError;

impl Vault {
    fn new(key: &[u8; 32]) -> Self {
        Self { cipher: XChaCha20Poly1305::new(key.into()) }
    }

    pub fn seal(&self, context: &str, plaintext: &str) -> String {
        let mut nonce = [0u8; 24];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let payload = Payload { msg: plaintext.as_bytes(), aad: context.as_bytes() };
        // Encryption with a valid key and nonce length only fails past 256 GiB.
        let ciphertext = self.cipher.encrypt(XNonce::from_slice(&nonce), payload).expect("encryption");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ciphertext);
        STANDARD.encode(out)
    }

    pub fn open(&self, context: &str, sealed: &str) -> Result<SecretString, VaultError> {
        let bytes = STANDARD.decode(sealed).map_err(|_| VaultError)?;
        if bytes.len() < 24 {
            return Err(VaultError);
        }
        let (nonce, ciphertext) = bytes.split_at(24);
        let payload = Payload { msg: ciphertext, aad: context.as_bytes() };
        let plain = self.cipher.decrypt(XNonce::from_slice(nonce), payload).map_err(|_| VaultError)?;
        String::from_utf8(plain).map(SecretString::new).map_err(|_| VaultError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vault_round_trip_and_binding() {
        let keys = DerivedKeys::derive(&SecretString::new("k".repeat(32)));
        let sealed = keys.vault.seal("refresh:1", "rt-secret");
        assert!(!sealed.contains("rt-secret"));
        assert_eq!(keys.vault.open("refresh:1", &sealed).unwrap().expose(), "rt-secret");
        assert!(keys.vault.open("refresh:2", &sealed).is_err());
        let other = DerivedKeys::derive(&SecretString::new("x".repeat(32)));
        assert!(other.vault.open("refresh:1", &sealed).is_err());
    }

    #[test]
    fn secrets_do_not_print() {
        assert_eq!(format!("{:?}", SecretString::new("hunter2".into())), "[redacted]");
    }

    #[test]
    fn tokens_are_random_and_long() {
        let a = random_token(32);
        assert_eq!(a.len(), 43);
        assert_ne!(a, random_token(32));
        assert_eq!(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn opaque_tokens_round_trip_and_refuse_other_shapes() {
        let kind = OpaqueToken::new("dmx_");
        let minted = kind.mint();
        assert!(minted.secret.expose().starts_with("dmx_"));
        assert_eq!(kind.hash(minted.secret.expose()), Some(minted.hash.clone()));
        assert_eq!(minted.hash, sha256_hex(minted.secret.expose()));
        assert_eq!(OpaqueToken::new("dmy_").hash(minted.secret.expose()), None);
        assert_eq!(kind.hash("dmx_short"), None);
        assert_eq!(kind.hash(&format!("{}x", minted.secret.expose())), None);
        assert_eq!(kind.hash(&format!("dmx_{}", "!".repeat(43))), None);
    }
}
