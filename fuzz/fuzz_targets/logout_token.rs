//! The back-channel logout token (sso::logout), without network: any text
//! through the whole check against one provider's keys (first byte 0), any
//! JSON through the claims' check (1), or any JSON claims signed with the
//! provider's key through the whole check (2).
#![no_main]

use std::sync::OnceLock;

use doorman::sso::logout::{check_claims, LogoutKeys};
use jsonwebtoken::jwk::JwkSet;
use libfuzzer_sys::fuzz_target;
use openidconnect::core::{CoreJsonWebKeySet, CoreRsaPrivateSigningKey};
use openidconnect::{JsonWebKeyId, PrivateSigningKey};

const PEM: &str = include_str!("../../tests/api/helpers/fake_op/key1.pem");
const NOW: i64 = 1_800_000_000;

fn keys() -> LogoutKeys<'static> {
    static JWKS: OnceLock<JwkSet> = OnceLock::new();
    let jwks = JWKS.get_or_init(|| {
        let key = CoreRsaPrivateSigningKey::from_pem(PEM, Some(JsonWebKeyId::new("key1".into()))).expect("test key");
        let set = serde_json::to_value(CoreJsonWebKeySet::new(vec![key.as_verification_key()])).expect("jwks");
        serde_json::from_value(set).expect("jwks")
    });
    LogoutKeys { issuer: "https://op.example", client_id: "doorman", jwks }
}

fn signing_key() -> &'static jsonwebtoken::EncodingKey {
    static KEY: OnceLock<jsonwebtoken::EncodingKey> = OnceLock::new();
    KEY.get_or_init(|| jsonwebtoken::EncodingKey::from_rsa_pem(PEM.as_bytes()).expect("test key"))
}

fuzz_target!(|data: &[u8]| {
    let Some((mode, rest)) = data.split_first() else { return };
    match mode % 3 {
        0 => {
            let _ = keys().parse(&String::from_utf8_lossy(rest), NOW);
        }
        1 => {
            if let Ok(claims) = serde_json::from_slice::<serde_json::Value>(rest) {
                let _ = check_claims(&claims, NOW);
            }
        }
        _ => {
            let Ok(claims) = serde_json::from_slice::<serde_json::Value>(rest) else { return };
            let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
            header.kid = Some("key1".into());
            let Ok(token) = jsonwebtoken::encode(&header, &claims, signing_key()) else { return };
            if let Ok(request) = keys().parse(&token, NOW) {
                assert!(request.sid.is_some() || request.sub.is_some());
            }
        }
    }
});
