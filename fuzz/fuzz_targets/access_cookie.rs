//! `identity::access::AccessKeys::verify`: the access cookie's JWT, as any
//! text (first byte 0) or as any JSON claims signed with doorman's key (so
//! the claims' parsing is reached too).
#![no_main]

use std::sync::OnceLock;

use doorman::identity::access::AccessKeys;
use libfuzzer_sys::fuzz_target;

const SECRET: [u8; 32] = *b"fuzz-access-key-0123456789abcdef";

fn keys() -> &'static AccessKeys {
    static KEYS: OnceLock<AccessKeys> = OnceLock::new();
    KEYS.get_or_init(|| AccessKeys::new(&SECRET))
}

fuzz_target!(|data: &[u8]| {
    let Some((mode, rest)) = data.split_first() else { return };
    let token = if mode % 2 == 0 {
        String::from_utf8_lossy(rest).into_owned()
    } else {
        let Ok(claims) = serde_json::from_slice::<serde_json::Value>(rest) else { return };
        let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        jsonwebtoken::encode(&header, &claims, &jsonwebtoken::EncodingKey::from_secret(&SECRET)).expect("HS256 signs")
    };
    let _ = keys().verify(&token);
});
