//! The access cookie: a short-lived HS256 JWT carrying what `GET /me` and
//! the scope check need, so an authenticated request reads no database.

use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::config::Ttl;
use crate::db::users::UserView;

const AUDIENCE: &str = "doorman-access";

/// The claims of the access cookie.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessClaims {
    /// User id.
    pub sub: String,
    pub aud: String,
    /// Browser session id; the session must still be live.
    pub sid: String,
    pub usr: String,
    pub email: Option<String>,
    pub ch: String,
    pub adm: bool,
    pub ext: bool,
    /// `valid_until` of an external user, seconds since the epoch.
    pub vu: Option<i64>,
    /// Ids of the providers the user signs in with.
    #[serde(default)]
    pub prv: Vec<String>,
    pub iat: i64,
    pub exp: i64,
}

/// Keys of the access cookie, derived from `auth.secret_key`.
#[derive(Clone)]
pub struct AccessKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl AccessKeys {
    pub fn new(secret: &[u8; 32]) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        // `exp` is compared with doorman's clock in `verify`, so tests can move time.
        validation.validate_exp = false;
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "aud", "sub"]);
        Self { encoding: EncodingKey::from_secret(secret), decoding: DecodingKey::from_secret(secret), validation }
    }

    /// Signs the access JWT of `user` in session `sid`, valid for `ttl` but
    /// never past the user's `valid_until`.
    pub fn issue(&self, user: &UserView, sid: &str, ttl: Ttl, now: DateTime<Utc>) -> (String, DateTime<Utc>) {
        let mut exp = now + ttl.delta();
        let vu = user.valid_until.map(|v| v.and_utc());
        if let Some(vu) = vu {
            exp = exp.min(vu);
        }
        let claims = AccessClaims {
            sub: user.user.id.clone(),
            aud: AUDIENCE.into(),
            sid: sid.to_string(),
            usr: user.user.username.clone(),
            email: user.user.email.clone(),
            ch: user.user.channel.clone(),
            adm: user.user.is_admin,
            ext: user.user.is_external,
            vu: vu.map(|v| v.timestamp()),
            prv: user.providers.clone(),
            iat: now.timestamp(),
            exp: exp.timestamp(),
        };
        // HS256 signing with a 32-byte key cannot fail.
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding).expect("HS256 signing");
        (token, exp)
    }

    /// The claims of an authentic access JWT, expired or not (the caller
    /// compares `exp` with doorman's clock).
    pub fn verify(&self, token: &str) -> Option<AccessClaims> {
        jsonwebtoken::decode::<AccessClaims>(token, &self.decoding, &self.validation).ok().map(|data| data.claims)
    }
}
