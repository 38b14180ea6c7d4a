//! Primitives on one core: signing a service JWT (what `POST /token` pays
//! besides HTTP), verifying it, and hashing a bearer token (what a cache
//! lookup pays). `cargo bench --bench primitives`.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use doorman::crypto::{sha256_hex, DerivedKeys, SecretString};
use doorman::service_tokens::issue::ServiceClaims;
use doorman::service_tokens::keys;

fn service_jwt(c: &mut Criterion) {
    let vault = DerivedKeys::derive(&SecretString::new("bench-secret-key-0123456789abcdef".into())).vault;
    let now = doorman::clock::Clock::system().now_naive();
    let row = keys::generate(&vault, now, now);
    let set = keys::decrypt_all(std::slice::from_ref(&row), &vault).expect("key loads");
    let key = set.signer(chrono::Utc::now()).expect("key signs");
    let now = chrono::Utc::now().timestamp();
    let mut extra = serde_json::Map::new();
    extra.insert("preferred_username".into(), "alice".into());
    extra.insert("channel".into(), "default".into());
    let claims = ServiceClaims {
        iss: "http://127.0.0.1:8000".into(),
        sub: uuid::Uuid::new_v4().to_string(),
        aud: "http://127.0.0.1:8000".into(),
        exp: now + 300,
        iat: now,
        jti: uuid::Uuid::new_v4().to_string(),
        scope: "account tokens".into(),
        client_id: "browser-session".into(),
        extra,
    };
    let header = || {
        let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
        h.typ = Some("at+jwt".into());
        h
    };
    c.bench_function("sign service JWT (EdDSA)", |b| b.iter(|| key.sign(header(), black_box(&claims)).expect("signs")));

    let token = key.sign(header(), &claims).expect("signs");
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(key.jwk.clone()).expect("jwk");
    let decoding = jsonwebtoken::DecodingKey::from_jwk(&jwk).expect("decoding key");
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
    validation.set_audience(&["http://127.0.0.1:8000"]);
    c.bench_function("verify service JWT (EdDSA)", |b| {
        b.iter(|| jsonwebtoken::decode::<serde_json::Value>(black_box(&token), &decoding, &validation).expect("verifies"));
    });

    let bearer = format!("dmn_{}", doorman::crypto::random_token(32));
    c.bench_function("SHA-256 of a bearer token", |b| b.iter(|| sha256_hex(black_box(&bearer))));
}

criterion_group!(benches, service_jwt);
criterion_main!(benches);
