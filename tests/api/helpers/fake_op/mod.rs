#![allow(dead_code)]
//! `FakeOp`: an in-process OpenID Provider that can misbehave on purpose.
//! Built from openidconnect's provider-side types with fixed test keys; the
//! authorization endpoint signs the configured user in at once and
//! redirects back with a code, so a test follows every hop itself.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::Duration;
use doorman::sso::types::{ExtraClaims, IdToken};
use openidconnect::core::{
    CoreJsonWebKeySet, CoreJwsSigningAlgorithm, CoreProviderMetadata, CoreResponseType, CoreRsaPrivateSigningKey,
    CoreSubjectIdentifierType,
};
use openidconnect::{
    AccessToken, Audience, AuthUrl, EmptyAdditionalProviderMetadata, EndUserEmail, EndUserUsername, IssuerUrl, JsonWebKeyId,
    JsonWebKeySetUrl, Nonce, PrivateSigningKey, ResponseTypes, StandardClaims, SubjectIdentifier, TokenUrl, UserInfoUrl,
};
use sha2::{Digest, Sha256};

pub const CLIENT_ID: &str = "doorman-test";
pub const CLIENT_SECRET: &str = "fake-op-client-secret";
const KEY1: &str = include_str!("key1.pem");
const KEY2: &str = include_str!("key2.pem");

/// How the provider behaves; each knob is one bad case.
#[derive(Debug, Clone, Default)]
pub struct Knobs {
    pub bad_signature: bool,
    pub alg_none: bool,
    pub hs256_with_public_key: bool,
    pub wrong_issuer: bool,
    pub wrong_audience: bool,
    pub extra_audience_without_azp: bool,
    pub expired: bool,
    pub issued_in_future: bool,
    pub nonce_missing: bool,
    pub nonce_wrong: bool,
    pub kid_absent: bool,
    /// Sign with a key the JWKS does not publish.
    pub unpublished_key: bool,
    pub wrong_at_hash: bool,
    pub userinfo_sub_mismatch: bool,
    pub token_endpoint_error: bool,
    pub authorize_error: bool,
    /// Put RFC 9207 `iss` in authorization responses and announce it.
    pub iss_parameter: bool,
    /// Issue a refresh token.
    pub refresh_token: bool,
    /// Refuse refresh grants with invalid_grant (user removed).
    pub refuse_refresh: bool,
    /// Answer refresh grants with a 503 page (provider down).
    pub refresh_unavailable: bool,
    /// Sign refreshed ID tokens for another subject.
    pub refresh_other_subject: bool,
    /// The user's `groups` claim (ID token and userinfo); `None`: no claim.
    pub groups: Option<Vec<String>>,
    /// The `email_verified` claim (ID token and userinfo); `None`: no claim.
    pub email_verified: Option<bool>,
    /// An `azp` claim in ID tokens.
    pub azp: Option<String>,
    /// Issue ID tokens (`iat`) this long ago, still unexpired.
    pub issued_ago: Option<Duration>,
    /// Announce this `end_session_endpoint` instead of the provider's own.
    pub end_session_endpoint: Option<String>,
    /// The token endpoint accepts the request and never answers.
    pub token_hangs: bool,
}

/// The user the provider signs in.
#[derive(Debug, Clone)]
pub struct FakeUser {
    pub subject: String,
    pub email: String,
    pub preferred_username: Option<String>,
}

struct Pending {
    nonce: String,
    challenge: String,
    redirect_uri: String,
}

struct OpState {
    issuer: String,
    /// The provider's time: the system's, or the app's when a test moves it.
    clock: doorman::clock::Clock,
    knobs: Knobs,
    user: FakeUser,
    /// Index of the signing key in use (0 = key1, 1 = key2); the JWKS publishes only it.
    key: usize,
    codes: HashMap<String, Pending>,
    access_tokens: HashMap<String, String>,
    token_requests: usize,
    refresh_requests: usize,
    jwks_requests: usize,
    revocations: Vec<String>,
}

pub struct FakeOp {
    pub issuer: String,
    state: Arc<Mutex<OpState>>,
}

fn signing_key(index: usize, with_kid: bool) -> CoreRsaPrivateSigningKey {
    let (pem, kid) = if index == 0 { (KEY1, "key1") } else { (KEY2, "key2") };
    CoreRsaPrivateSigningKey::from_pem(pem, with_kid.then(|| JsonWebKeyId::new(kid.to_string()))).expect("test key")
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn random() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

impl FakeOp {
    pub async fn start() -> FakeOp {
        Self::start_on(0).await
    }

    /// Starts on a given loopback port (0: any free one).
    pub async fn start_on(port: u16) -> FakeOp {
        let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let issuer = format!("http://127.0.0.1:{port}");
        let state = Arc::new(Mutex::new(OpState {
            issuer: issuer.clone(),
            clock: doorman::clock::Clock::system(),
            knobs: Knobs::default(),
            user: FakeUser {
                subject: "subject-1".into(),
                email: "sso.user@example.com".into(),
                preferred_username: Some("sso.user".into()),
            },
            key: 0,
            codes: HashMap::new(),
            access_tokens: HashMap::new(),
            token_requests: 0,
            refresh_requests: 0,
            jwks_requests: 0,
            revocations: Vec::new(),
        }));
        let data = web::Data::from(state.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route("/.well-known/openid-configuration", web::get().to(discovery))
                .route("/jwks", web::get().to(jwks))
                .route("/authorize", web::get().to(authorize))
                .route("/token", web::post().to(token))
                .route("/userinfo", web::get().to(userinfo))
                .route("/revoke", web::post().to(revoke))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
        tokio::spawn(server);
        FakeOp { issuer, state }
    }

    pub fn set(&self, change: impl FnOnce(&mut Knobs)) {
        change(&mut self.state.lock().unwrap().knobs);
    }

    /// Runs the provider on `clock` (the app's), so its tokens follow the test's time.
    pub fn use_clock(&self, clock: &doorman::clock::Clock) {
        self.state.lock().unwrap().clock = clock.clone();
    }

    pub fn set_user(&self, user: FakeUser) {
        self.state.lock().unwrap().user = user;
    }

    /// Signs with the second key from now on, and publishes only it.
    pub fn rotate_key(&self) {
        self.state.lock().unwrap().key = 1;
    }

    pub fn token_requests(&self) -> usize {
        self.state.lock().unwrap().token_requests
    }

    pub fn refresh_requests(&self) -> usize {
        self.state.lock().unwrap().refresh_requests
    }

    /// Tokens revoked through RFC 7009.
    pub fn revocations(&self) -> Vec<String> {
        self.state.lock().unwrap().revocations.clone()
    }

    /// A back-channel logout token for `sub`/`sid`, signed with the current key;
    /// `change` may bend its claims.
    pub fn logout_token(&self, sub: Option<&str>, sid: Option<&str>, change: impl FnOnce(&mut serde_json::Value)) -> String {
        self.logout_token_signed(jsonwebtoken::Algorithm::RS256, sub, sid, change)
    }

    /// Like [`FakeOp::logout_token`], signed with `alg` (an RSA algorithm).
    pub fn logout_token_signed(
        &self,
        alg: jsonwebtoken::Algorithm,
        sub: Option<&str>,
        sid: Option<&str>,
        change: impl FnOnce(&mut serde_json::Value),
    ) -> String {
        let op = self.state.lock().unwrap();
        let mut claims = serde_json::json!({
            "iss": op.issuer, "aud": CLIENT_ID, "iat": op.clock.timestamp(), "exp": op.clock.timestamp() + 120,
            "jti": random(), "events": {"http://schemas.openid.net/event/backchannel-logout": {}},
        });
        if let Some(sub) = sub {
            claims["sub"] = sub.into();
        }
        if let Some(sid) = sid {
            claims["sid"] = sid.into();
        }
        change(&mut claims);
        let pem = if op.key == 0 { KEY1 } else { KEY2 };
        let mut header = jsonwebtoken::Header::new(alg);
        header.kid = Some(if op.key == 0 { "key1".into() } else { "key2".into() });
        header.typ = Some("logout+jwt".into());
        jsonwebtoken::encode(&header, &claims, &jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap()).unwrap()
    }

    pub fn jwks_requests(&self) -> usize {
        self.state.lock().unwrap().jwks_requests
    }

    /// The `[[oidc.providers]]` entry for this provider.
    pub fn provider_settings(&self, id: &str) -> doorman::config::ProviderSettings {
        doorman::config::ProviderSettings {
            id: id.to_string(),
            name: format!("Fake {id}"),
            issuer: self.issuer.clone(),
            client_id: CLIENT_ID.into(),
            client_secret: Some(doorman::crypto::SecretString::new(CLIENT_SECRET.into())),
            scopes: vec!["openid".into(), "email".into(), "profile".into(), "offline_access".into()],
            access: Default::default(),
            max_id_token_age: doorman::config::DEFAULT_MAX_ID_TOKEN_AGE,
        }
    }
}

type Op = web::Data<Mutex<OpState>>;

async fn discovery(op: Op) -> HttpResponse {
    let op = op.lock().unwrap();
    let iss = &op.issuer;
    let metadata = CoreProviderMetadata::new(
        IssuerUrl::new(iss.clone()).unwrap(),
        AuthUrl::new(format!("{iss}/authorize")).unwrap(),
        JsonWebKeySetUrl::new(format!("{iss}/jwks")).unwrap(),
        vec![ResponseTypes::new(vec![CoreResponseType::Code])],
        vec![CoreSubjectIdentifierType::Public],
        vec![CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256],
        EmptyAdditionalProviderMetadata {},
    )
    .set_token_endpoint(Some(TokenUrl::new(format!("{iss}/token")).unwrap()))
    .set_userinfo_endpoint(Some(UserInfoUrl::new(format!("{iss}/userinfo")).unwrap()));
    let mut doc = serde_json::to_value(&metadata).unwrap();
    doc["end_session_endpoint"] = op.knobs.end_session_endpoint.clone().unwrap_or_else(|| format!("{iss}/logout")).into();
    doc["revocation_endpoint"] = format!("{iss}/revoke").into();
    doc["authorization_response_iss_parameter_supported"] = op.knobs.iss_parameter.into();
    HttpResponse::Ok().json(doc)
}

async fn jwks(op: Op) -> HttpResponse {
    let mut op = op.lock().unwrap();
    op.jwks_requests += 1;
    let keys = CoreJsonWebKeySet::new(vec![signing_key(op.key, true).as_verification_key()]);
    HttpResponse::Ok().json(keys)
}

async fn authorize(op: Op, query: web::Query<HashMap<String, String>>) -> HttpResponse {
    let mut op = op.lock().unwrap();
    let q = query.into_inner();
    let get = |k: &str| q.get(k).cloned().unwrap_or_default();
    assert_eq!(get("response_type"), "code");
    assert_eq!(get("client_id"), CLIENT_ID);
    assert_eq!(get("code_challenge_method"), "S256", "PKCE S256 is required");
    assert!(!get("nonce").is_empty() && !get("state").is_empty());
    let redirect_uri = get("redirect_uri");
    let mut location = url::Url::parse(&redirect_uri).unwrap();
    if op.knobs.authorize_error {
        location.query_pairs_mut().append_pair("error", "access_denied").append_pair("error_description", "the user said no");
    } else {
        let code = random();
        op.codes.insert(code.clone(), Pending { nonce: get("nonce"), challenge: get("code_challenge"), redirect_uri });
        location.query_pairs_mut().append_pair("code", &code);
    }
    location.query_pairs_mut().append_pair("state", &get("state"));
    if op.knobs.iss_parameter {
        let iss = op.issuer.clone();
        location.query_pairs_mut().append_pair("iss", &iss);
    }
    HttpResponse::Found().insert_header(("Location", location.to_string())).finish()
}

fn basic_auth_ok(req: &HttpRequest) -> bool {
    let expected = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}")));
    req.headers().get("authorization").and_then(|v| v.to_str().ok()) == Some(expected.as_str())
}

fn token_error(error: &str) -> HttpResponse {
    HttpResponse::BadRequest().json(serde_json::json!({"error": error}))
}

async fn token(op: Op, req: HttpRequest, form: web::Form<HashMap<String, String>>) -> HttpResponse {
    let hangs = op.lock().unwrap().knobs.token_hangs;
    if hangs {
        tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
    }
    let mut op = op.lock().unwrap();
    op.token_requests += 1;
    if !basic_auth_ok(&req) {
        return HttpResponse::Unauthorized().json(serde_json::json!({"error": "invalid_client"}));
    }
    let form = form.into_inner();
    let get = |k: &str| form.get(k).cloned().unwrap_or_default();
    let nonce = match get("grant_type").as_str() {
        "authorization_code" => {
            if op.knobs.token_endpoint_error {
                return token_error("invalid_grant");
            }
            let Some(pending) = op.codes.remove(&get("code")) else { return token_error("invalid_grant") };
            let challenge = b64(&Sha256::digest(get("code_verifier").as_bytes()));
            if challenge != pending.challenge || get("redirect_uri") != pending.redirect_uri {
                return token_error("invalid_grant");
            }
            Some(pending.nonce)
        }
        "refresh_token" => {
            op.refresh_requests += 1;
            if op.knobs.refresh_unavailable {
                return HttpResponse::ServiceUnavailable().content_type("text/html").body("<h1>down for maintenance</h1>");
            }
            if op.knobs.refuse_refresh
                || !get("refresh_token").starts_with("rt-")
                || op.revocations.contains(&get("refresh_token"))
            {
                return token_error("invalid_grant");
            }
            None
        }
        _ => return token_error("unsupported_grant_type"),
    };
    let access_token = format!("at-{}", random());
    let subject = op.user.subject.clone();
    op.access_tokens.insert(access_token.clone(), subject);
    let id_token = id_token(&op, nonce.as_deref(), &access_token);
    let mut body = serde_json::json!({
        "access_token": access_token, "token_type": "Bearer", "expires_in": 300, "id_token": id_token,
    });
    if op.knobs.refresh_token {
        body["refresh_token"] = format!("rt-{}", random()).into();
    }
    HttpResponse::Ok().json(body)
}

/// The ID token, bent by the knobs.
fn id_token(op: &OpState, nonce: Option<&str>, access_token: &str) -> String {
    let k = &op.knobs;
    let now = op.clock.now();
    let issuer = if k.wrong_issuer { "http://127.0.0.1:1/other".to_string() } else { op.issuer.clone() };
    let mut audiences = vec![Audience::new(if k.wrong_audience { "someone-else".into() } else { CLIENT_ID.to_string() })];
    if k.extra_audience_without_azp {
        audiences.push(Audience::new("another-client".into()));
    }
    let (iat, exp) = if let Some(ago) = k.issued_ago {
        (now - ago, now + Duration::minutes(5))
    } else if k.expired {
        (now - Duration::minutes(10), now - Duration::minutes(5))
    } else if k.issued_in_future {
        (now + Duration::minutes(10), now + Duration::minutes(20))
    } else {
        (now, now + Duration::minutes(5))
    };
    let subject =
        if nonce.is_none() && k.refresh_other_subject { "another-subject".to_string() } else { op.user.subject.clone() };
    let mut standard =
        StandardClaims::new(SubjectIdentifier::new(subject)).set_email(Some(EndUserEmail::new(op.user.email.clone())));
    if let Some(name) = &op.user.preferred_username {
        standard = standard.set_preferred_username(Some(EndUserUsername::new(name.clone())));
    }
    standard = standard.set_email_verified(k.email_verified);
    let mut extra = ExtraClaims { sid: Some(format!("sid-{}", op.user.subject)), ..Default::default() };
    if let Some(groups) = &k.groups {
        extra.other.insert("groups".into(), serde_json::json!(groups));
    }
    let mut claims = openidconnect::IdTokenClaims::new(IssuerUrl::new(issuer).unwrap(), audiences, exp, iat, standard, extra);
    if let Some(azp) = &k.azp {
        claims = claims.set_authorized_party(Some(openidconnect::ClientId::new(azp.clone())));
    }
    let nonce = if k.nonce_wrong { Some("not-the-nonce".to_string()) } else { nonce.map(str::to_string) };
    if !k.nonce_missing {
        claims = claims.set_nonce(nonce.map(Nonce::new));
    }
    let key = signing_key(if k.unpublished_key { 1 - op.key } else { op.key }, !k.kid_absent);
    let at = AccessToken::new(if k.wrong_at_hash { "another-access-token".into() } else { access_token.to_string() });
    if k.alg_none {
        let header = b64(br#"{"alg":"none","typ":"JWT"}"#);
        return format!("{header}.{}.", b64(serde_json::to_string(&claims).unwrap().as_bytes()));
    }
    if k.hs256_with_public_key {
        // The classic confusion attack: HMAC keyed with the provider's public key.
        let public_pem = rsa_public_pem(op.key);
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        header.kid = Some(if op.key == 0 { "key1".into() } else { "key2".into() });
        return jsonwebtoken::encode(&header, &claims, &jsonwebtoken::EncodingKey::from_secret(public_pem.as_bytes())).unwrap();
    }
    let token: IdToken = IdToken::new(claims, &key, CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256, Some(&at), None).unwrap();
    let text = token.to_string();
    if k.bad_signature {
        let (rest, signature) = text.rsplit_once('.').unwrap();
        let mut sig = URL_SAFE_NO_PAD.decode(signature).unwrap();
        sig[0] ^= 0x01;
        return format!("{rest}.{}", b64(&sig));
    }
    text
}

fn rsa_public_pem(index: usize) -> String {
    use rsa::pkcs1::DecodeRsaPrivateKey;
    use rsa::pkcs8::{EncodePublicKey, LineEnding};
    let pem = if index == 0 { KEY1 } else { KEY2 };
    let private = rsa::RsaPrivateKey::from_pkcs1_pem(pem).unwrap();
    private.to_public_key().to_public_key_pem(LineEnding::LF).unwrap()
}

async fn userinfo(op: Op, req: HttpRequest) -> HttpResponse {
    let op = op.lock().unwrap();
    let token = req.headers().get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    let Some(subject) = token.and_then(|t| op.access_tokens.get(t)) else {
        return HttpResponse::Unauthorized().finish();
    };
    let sub = if op.knobs.userinfo_sub_mismatch { "someone-else".to_string() } else { subject.clone() };
    let mut body = serde_json::json!({
        "sub": sub, "email": op.user.email, "preferred_username": op.user.preferred_username,
    });
    if let Some(verified) = op.knobs.email_verified {
        body["email_verified"] = verified.into();
    }
    if let Some(groups) = &op.knobs.groups {
        body["groups"] = serde_json::json!(groups);
    }
    HttpResponse::Ok().json(body)
}

async fn revoke(op: Op, req: HttpRequest, form: web::Form<HashMap<String, String>>) -> HttpResponse {
    let mut op = op.lock().unwrap();
    if !basic_auth_ok(&req) {
        return HttpResponse::Unauthorized().json(serde_json::json!({"error": "invalid_client"}));
    }
    if let Some(token) = form.get("token") {
        op.revocations.push(token.clone());
    }
    HttpResponse::Ok().finish()
}
