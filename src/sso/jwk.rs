//! The key type doorman gives openidconnect for a provider's signing keys.
//!
//! openidconnect keeps every decision: which key a token names (`kid`), its
//! type, use and algorithm, and every claim. Only the signature arithmetic
//! of RSA (RS256/384/512, PS256/384/512, keys of 2048 to 4096 bits) and
//! ECDSA (ES256, ES384) is done by *ring* instead of the pure-Rust `rsa` and
//! `p256` crates: an RS256 check costs about a tenth as much. Any other key
//! or algorithm goes to openidconnect's own `CoreJsonWebKey` check.

use openidconnect::core::{CoreJsonWebKey, CoreJsonWebKeyType, CoreJsonWebKeyUse, CoreJwsSigningAlgorithm};
use openidconnect::{
    JsonWebKey, JsonWebKeyAlgorithm, JsonWebKeyId, JsonWebKeyUse, JwsSigningAlgorithm, SignatureVerificationError,
};
use ring::signature::{self as ring_sig, RsaPublicKeyComponents, UnparsedPublicKey};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// Smallest and largest RSA modulus *ring* checks here; others go to
/// openidconnect's check, so that doorman accepts exactly the keys it did.
const RSA_BITS: std::ops::RangeInclusive<usize> = 2048..=4096;

/// A provider's public key: openidconnect's `CoreJsonWebKey`, with its
/// public numbers ready for *ring*.
#[derive(Clone, Debug)]
pub struct ProviderKey {
    core: CoreJsonWebKey,
    public: Option<PublicNumbers>,
}

#[derive(Clone, Debug)]
enum PublicNumbers {
    /// Modulus and exponent, big-endian without leading zeros.
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// An uncompressed point (`04 || x || y`).
    P256(Vec<u8>),
    P384(Vec<u8>),
}

impl ProviderKey {
    /// Wraps one of openidconnect's keys.
    pub fn new(core: CoreJsonWebKey) -> Self {
        // The numbers are read back from openidconnect's own encoding of the
        // key, so both checks always see the same key.
        let public = serde_json::to_value(&core).ok().and_then(|v| PublicNumbers::from_jwk(&v));
        Self { core, public }
    }

    /// *ring*'s check of a signature of `alg` by this key, when it has one.
    fn ring_check(&self, alg: &CoreJwsSigningAlgorithm) -> Option<RingCheck<'_>> {
        use CoreJwsSigningAlgorithm as A;
        Some(match (self.public.as_ref()?, alg) {
            (PublicNumbers::Rsa { n, e }, _) => {
                let params = match alg {
                    A::RsaSsaPkcs1V15Sha256 => &ring_sig::RSA_PKCS1_2048_8192_SHA256,
                    A::RsaSsaPkcs1V15Sha384 => &ring_sig::RSA_PKCS1_2048_8192_SHA384,
                    A::RsaSsaPkcs1V15Sha512 => &ring_sig::RSA_PKCS1_2048_8192_SHA512,
                    A::RsaSsaPssSha256 => &ring_sig::RSA_PSS_2048_8192_SHA256,
                    A::RsaSsaPssSha384 => &ring_sig::RSA_PSS_2048_8192_SHA384,
                    A::RsaSsaPssSha512 => &ring_sig::RSA_PSS_2048_8192_SHA512,
                    _ => return None,
                };
                RingCheck::Rsa(RsaPublicKeyComponents { n: n.as_slice(), e: e.as_slice() }, params)
            }
            (PublicNumbers::P256(point), A::EcdsaP256Sha256) => {
                RingCheck::Ecdsa(UnparsedPublicKey::new(&ring_sig::ECDSA_P256_SHA256_FIXED, point.as_slice()))
            }
            (PublicNumbers::P384(point), A::EcdsaP384Sha384) => {
                RingCheck::Ecdsa(UnparsedPublicKey::new(&ring_sig::ECDSA_P384_SHA384_FIXED, point.as_slice()))
            }
            _ => return None,
        })
    }
}

/// A signature check *ring* does.
enum RingCheck<'a> {
    Rsa(RsaPublicKeyComponents<&'a [u8]>, &'static ring_sig::RsaParameters),
    Ecdsa(UnparsedPublicKey<&'a [u8]>),
}

impl RingCheck<'_> {
    fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), ring::error::Unspecified> {
        match self {
            Self::Rsa(key, params) => key.verify(params, message, signature),
            Self::Ecdsa(key) => key.verify(message, signature),
        }
    }
}

impl PublicNumbers {
    fn from_jwk(jwk: &Value) -> Option<Self> {
        let bytes = |name: &str| -> Option<Vec<u8>> {
            use base64::Engine as _;
            base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(jwk.get(name)?.as_str()?).ok()
        };
        match (jwk.get("kty")?.as_str()?, jwk.get("crv").and_then(Value::as_str)) {
            ("RSA", _) => {
                let n = without_leading_zeros(bytes("n")?);
                let e = without_leading_zeros(bytes("e")?);
                let bits = n.first().map(|top| n.len() * 8 - top.leading_zeros() as usize)?;
                RSA_BITS.contains(&bits).then_some(Self::Rsa { n, e })
            }
            ("EC", Some("P-256")) => Some(Self::P256(uncompressed_point(bytes("x")?, bytes("y")?, 32)?)),
            ("EC", Some("P-384")) => Some(Self::P384(uncompressed_point(bytes("x")?, bytes("y")?, 48)?)),
            _ => None,
        }
    }
}

fn without_leading_zeros(mut bytes: Vec<u8>) -> Vec<u8> {
    let zeros = bytes.iter().take_while(|b| **b == 0).count();
    bytes.drain(..zeros);
    bytes
}

fn uncompressed_point(x: Vec<u8>, y: Vec<u8>, size: usize) -> Option<Vec<u8>> {
    if x.len() != size || y.len() != size {
        return None;
    }
    let mut point = Vec::with_capacity(1 + 2 * size);
    point.push(4);
    point.extend_from_slice(&x);
    point.extend_from_slice(&y);
    Some(point)
}

/// What openidconnect asks of a key before checking a signature with it
/// (its `check_key_compatibility`, which it keeps to itself): a key for
/// signatures, of the algorithm's type, and of that algorithm if it names one.
fn check_compatible(key: &ProviderKey, alg: &CoreJwsSigningAlgorithm) -> Result<(), SignatureVerificationError> {
    let refuse = |why: &str| Err(SignatureVerificationError::InvalidKey(why.to_string()));
    if key.key_use().is_some_and(|use_| !use_.allows_signature()) {
        return refuse("key usage not permitted for digital signatures");
    }
    if alg.key_type().as_ref() != Some(key.key_type()) {
        return refuse("key type does not match signature algorithm");
    }
    match key.signing_alg() {
        JsonWebKeyAlgorithm::Unspecified => Ok(()),
        JsonWebKeyAlgorithm::Algorithm(key_alg) if key_alg == alg => Ok(()),
        JsonWebKeyAlgorithm::Algorithm(_) => refuse("incompatible key algorithm"),
        JsonWebKeyAlgorithm::Unsupported => refuse("key algorithm is not a signing algorithm"),
    }
}

impl JsonWebKey for ProviderKey {
    type KeyUse = CoreJsonWebKeyUse;
    type SigningAlgorithm = CoreJwsSigningAlgorithm;

    fn key_id(&self) -> Option<&JsonWebKeyId> {
        self.core.key_id()
    }

    fn key_type(&self) -> &CoreJsonWebKeyType {
        self.core.key_type()
    }

    fn key_use(&self) -> Option<&CoreJsonWebKeyUse> {
        self.core.key_use()
    }

    fn signing_alg(&self) -> JsonWebKeyAlgorithm<&CoreJwsSigningAlgorithm> {
        self.core.signing_alg()
    }

    fn new_symmetric(key: Vec<u8>) -> Self {
        Self { core: CoreJsonWebKey::new_symmetric(key), public: None }
    }

    fn verify_signature(
        &self,
        alg: &CoreJwsSigningAlgorithm,
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), SignatureVerificationError> {
        let Some(check) = self.ring_check(alg) else {
            return self.core.verify_signature(alg, message, signature);
        };
        check_compatible(self, alg)?;
        check.verify(message, signature).map_err(|_| SignatureVerificationError::CryptoError("bad signature".to_string()))
    }

    fn hash_bytes(&self, bytes: &[u8], alg: &CoreJwsSigningAlgorithm) -> Result<Vec<u8>, String> {
        self.core.hash_bytes(bytes, alg)
    }
}

impl Serialize for ProviderKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.core.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for ProviderKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        CoreJsonWebKey::deserialize(deserializer).map(Self::new)
    }
}

#[cfg(test)]
mod tests {
    use openidconnect::core::{CoreJsonWebKeySet, CoreRsaPrivateSigningKey};
    use openidconnect::PrivateSigningKey;
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, KeyPair};

    use super::*;

    const PEM: &str = include_str!("../../tests/api/helpers/fake_op/key1.pem");

    fn rsa_key() -> (CoreRsaPrivateSigningKey, ProviderKey) {
        let private = CoreRsaPrivateSigningKey::from_pem(PEM, Some(JsonWebKeyId::new("k".into()))).unwrap();
        let public = ProviderKey::new(private.as_verification_key());
        (private, public)
    }

    fn with(key: &ProviderKey, change: impl FnOnce(&mut Value)) -> ProviderKey {
        let mut jwk = serde_json::to_value(key).unwrap();
        change(&mut jwk);
        serde_json::from_value(jwk).unwrap()
    }

    #[test]
    fn rsa_signatures_are_checked_by_ring_as_openidconnect_would() {
        use CoreJwsSigningAlgorithm as A;
        let (private, public) = rsa_key();
        assert!(matches!(public.public, Some(PublicNumbers::Rsa { .. })));
        for alg in [A::RsaSsaPkcs1V15Sha256, A::RsaSsaPkcs1V15Sha384, A::RsaSsaPkcs1V15Sha512, A::RsaSsaPssSha256] {
            let signature = private.sign(&alg, b"message").unwrap();
            assert!(public.ring_check(&alg).is_some());
            public.verify_signature(&alg, b"message", &signature).unwrap();
            public.core.verify_signature(&alg, b"message", &signature).unwrap();
            assert!(public.verify_signature(&alg, b"messagf", &signature).is_err(), "{alg:?}: another message");
            let mut bent = signature.clone();
            bent[10] ^= 1;
            assert!(public.verify_signature(&alg, b"message", &bent).is_err(), "{alg:?}: a bent signature");
            assert!(public.verify_signature(&alg, b"message", &signature[1..]).is_err(), "{alg:?}: a short signature");
        }
        let rs256 = private.sign(&A::RsaSsaPkcs1V15Sha256, b"message").unwrap();
        assert!(public.verify_signature(&A::RsaSsaPkcs1V15Sha384, b"message", &rs256).is_err(), "another hash");
        assert!(public.verify_signature(&A::EcdsaP256Sha256, b"message", &rs256).is_err(), "another key type");
        assert!(public.verify_signature(&A::HmacSha256, b"message", &rs256).is_err(), "an HMAC");
    }

    #[test]
    fn what_a_key_allows_is_kept() {
        use CoreJwsSigningAlgorithm as A;
        let (private, public) = rsa_key();
        let signature = private.sign(&A::RsaSsaPkcs1V15Sha256, b"message").unwrap();
        let for_encryption = with(&public, |jwk| jwk["use"] = "enc".into());
        assert!(matches!(
            for_encryption.verify_signature(&A::RsaSsaPkcs1V15Sha256, b"message", &signature),
            Err(SignatureVerificationError::InvalidKey(_))
        ));
        let for_rs384 = with(&public, |jwk| jwk["alg"] = "RS384".into());
        assert!(for_rs384.verify_signature(&A::RsaSsaPkcs1V15Sha256, b"message", &signature).is_err());
        let for_rs256 = with(&public, |jwk| jwk["alg"] = "RS256".into());
        for_rs256.verify_signature(&A::RsaSsaPkcs1V15Sha256, b"message", &signature).unwrap();
        let encryption_alg = with(&public, |jwk| jwk["alg"] = "A256GCM".into());
        assert!(encryption_alg.verify_signature(&A::RsaSsaPkcs1V15Sha256, b"message", &signature).is_err());
        // A modulus with a leading zero byte is the same key.
        let padded = with(&public, |jwk| {
            use base64::Engine as _;
            let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
            let mut n = engine.decode(jwk["n"].as_str().unwrap()).unwrap();
            n.insert(0, 0);
            jwk["n"] = engine.encode(n).into();
        });
        padded.verify_signature(&A::RsaSsaPkcs1V15Sha256, b"message", &signature).unwrap();
    }

    #[test]
    fn a_small_rsa_key_is_left_to_openidconnect() {
        let (_, public) = rsa_key();
        let small = with(&public, |jwk| {
            use base64::Engine as _;
            jwk["n"] = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([0xc5u8; 128]).into();
        });
        assert!(small.public.is_none());
        assert!(small.verify_signature(&CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256, b"message", &[1u8; 128]).is_err());
    }

    #[test]
    fn ecdsa_p256_signatures_are_checked_by_ring() {
        let rng = SystemRandom::new();
        let alg = &ring_sig::ECDSA_P256_SHA256_FIXED_SIGNING;
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap();
        let point = pair.public_key().as_ref();
        let core = CoreJsonWebKey::new_ec(
            point[1..33].to_vec(),
            point[33..].to_vec(),
            openidconnect::core::CoreJsonCurveType::P256,
            None,
        );
        let key = ProviderKey::new(core);
        let signature = pair.sign(&rng, b"message").unwrap();
        let es256 = CoreJwsSigningAlgorithm::EcdsaP256Sha256;
        assert!(key.ring_check(&es256).is_some());
        key.verify_signature(&es256, b"message", signature.as_ref()).unwrap();
        key.core.verify_signature(&es256, b"message", signature.as_ref()).unwrap();
        assert!(key.verify_signature(&es256, b"massage", signature.as_ref()).is_err());
        assert!(key.verify_signature(&CoreJwsSigningAlgorithm::EcdsaP384Sha384, b"message", signature.as_ref()).is_err());
    }

    #[test]
    fn key_sets_parse_as_openidconnect_parses_them() {
        let (_, public) = rsa_key();
        let core = CoreJsonWebKeySet::new(vec![public.core.clone()]);
        let mut doc = serde_json::to_value(&core).unwrap();
        doc["keys"].as_array_mut().unwrap().push(serde_json::json!({"kty": "unknown"}));
        let set: openidconnect::JsonWebKeySet<ProviderKey> = serde_json::from_value(doc).unwrap();
        assert_eq!(set.keys().len(), 1);
        assert_eq!(serde_json::to_value(&set.keys()[0]).unwrap(), serde_json::to_value(&public.core).unwrap());
    }
}
