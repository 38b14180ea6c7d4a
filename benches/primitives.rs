//! Primitives on one core: signing a service JWT (what `POST /token` pays
//! besides HTTP), verifying it, hashing a bearer token (what a cache
//! lookup pays), and checking a provider's RS256 ID token (what a sign-in
//! callback pays besides the database). `cargo bench --bench primitives`.

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

/// The sign-in's ID-token check (`sso::id_token::check`): an RS256 token of
/// the test provider's 2048-bit key, with `nonce` and `at_hash`.
fn id_token(c: &mut Criterion) {
    use doorman::sso::id_token::{self, Expected};
    use doorman::sso::provider::Ready;
    use doorman::sso::types::{ExtraClaims, IdToken, IdTokenClaims, JsonWebKeySet, OidcClient, ProviderMetadata};
    use openidconnect::core::*;
    use openidconnect::*;

    let issuer = "http://127.0.0.1:9999";
    let key = CoreRsaPrivateSigningKey::from_pem(
        include_str!("../tests/api/helpers/fake_op/key1.pem"),
        Some(JsonWebKeyId::new("key1".into())),
    )
    .expect("test key");
    let core = CoreProviderMetadata::new(
        IssuerUrl::new(issuer.into()).expect("url"),
        AuthUrl::new(format!("{issuer}/authorize")).expect("url"),
        JsonWebKeySetUrl::new(format!("{issuer}/jwks")).expect("url"),
        vec![ResponseTypes::new(vec![CoreResponseType::Code])],
        vec![CoreSubjectIdentifierType::Public],
        vec![CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256],
        EmptyAdditionalProviderMetadata {},
    )
    .set_token_endpoint(Some(TokenUrl::new(format!("{issuer}/token")).expect("url")));
    let jwks = serde_json::to_value(CoreJsonWebKeySet::new(vec![key.as_verification_key()])).expect("jwks");
    let metadata: ProviderMetadata = serde_json::from_value(serde_json::to_value(core).expect("metadata")).expect("metadata");
    let metadata = metadata.set_jwks(serde_json::from_value::<JsonWebKeySet>(jwks).expect("jwks"));
    let client = OidcClient::from_provider_metadata(
        metadata.clone(),
        ClientId::new("doorman".into()),
        Some(ClientSecret::new("s".into())),
    );
    let ready = Ready {
        issuer: issuer.into(),
        client,
        metadata,
        allowed_algs: vec![CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256],
        end_session_endpoint: None,
        revocation_endpoint: None,
        iss_parameter_supported: false,
    };
    let now = chrono::Utc::now();
    let nonce = Nonce::new("n-0123456789".into());
    let access_token = AccessToken::new("at-0123456789abcdef".into());
    let claims = IdTokenClaims::new(
        IssuerUrl::new(issuer.into()).expect("url"),
        vec![Audience::new("doorman".into())],
        now + chrono::TimeDelta::minutes(5),
        now,
        StandardClaims::new(SubjectIdentifier::new("alice".into()))
            .set_email(Some(EndUserEmail::new("alice@example.com".into())))
            .set_email_verified(Some(true)),
        ExtraClaims { sid: Some("sid-1".into()), other: Default::default() },
    )
    .set_nonce(Some(nonce.clone()));
    let token: IdToken =
        IdToken::new(claims, &key, CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256, Some(&access_token), None).expect("signs");
    let clock = doorman::clock::Clock::system();
    let expected = || Expected::SignIn { nonce: &nonce, access_token: &access_token };
    id_token::check(&ready, &token, &expected(), &clock, chrono::TimeDelta::minutes(10)).expect("the token verifies");
    c.bench_function("check an ID token (RS256 2048, nonce, at_hash)", |b| {
        b.iter(|| {
            id_token::check(&ready, black_box(&token), &expected(), &clock, chrono::TimeDelta::minutes(10)).expect("verifies")
        });
    });
}

criterion_group!(benches, service_jwt, id_token);
criterion_main!(benches);
