//! The cookies doorman sets: the access JWT, the opaque browser session and
//! the CSRF token, with the attributes the settings call for.

use actix_web::cookie::{time, Cookie, SameSite};

use crate::config::{Settings, Ttl};
use crate::identity::sessions::SessionCredentials;

pub const ACCESS: &str = "doorman_access";
pub const SESSION: &str = "doorman_session";
pub const CSRF: &str = "csrftoken";
pub const CSRF_HEADER: &str = "X-CSRFToken";

fn base<'a>(settings: &Settings, name: &'a str, value: String, http_only: bool) -> Cookie<'a> {
    let mut cookie = Cookie::build(name, value)
        .path("/")
        .http_only(http_only)
        .secure(settings.server.secure_cookies())
        .same_site(SameSite::Lax)
        .finish();
    if let Some(domain) = &settings.server.cookie_domain {
        cookie.set_domain(domain.clone());
    }
    cookie
}

fn max_age(ttl: Ttl) -> time::Duration {
    time::Duration::seconds(ttl.delta().num_seconds())
}

pub fn access(settings: &Settings, token: String) -> Cookie<'static> {
    let mut c = base(settings, ACCESS, token, true);
    c.set_max_age(max_age(settings.auth.access_ttl));
    c
}

pub fn session(settings: &Settings, token: String) -> Cookie<'static> {
    let mut c = base(settings, SESSION, token, true);
    c.set_max_age(max_age(settings.auth.session_ttl));
    c
}

pub fn csrf(settings: &Settings, token: String) -> Cookie<'static> {
    let mut c = base(settings, CSRF, token, false);
    c.set_max_age(max_age(settings.auth.session_ttl));
    c
}

/// All three cookies of a new browser session.
pub fn login(settings: &Settings, issued: &SessionCredentials) -> [Cookie<'static>; 3] {
    [
        access(settings, issued.access_token.clone()),
        session(settings, issued.session_token.expose().to_string()),
        csrf(settings, issued.csrf_token.clone()),
    ]
}

/// Cookies that delete the login cookies.
pub fn cleared(settings: &Settings) -> [Cookie<'static>; 3] {
    [ACCESS, SESSION, CSRF].map(|name| {
        let mut c = base(settings, name, String::new(), name != CSRF);
        c.make_removal();
        c
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(extra: &str) -> Settings {
        Settings::from_toml(&format!("[auth]\nsecret_key = \"0123456789abcdef0123456789abcdef\"\n{extra}")).unwrap()
    }

    #[test]
    fn attributes_follow_the_settings() {
        let plain = settings("");
        let c = access(&plain, "t".into());
        assert_eq!(
            (c.http_only(), c.secure(), c.same_site(), c.path()),
            (Some(true), Some(false), Some(SameSite::Lax), Some("/"))
        );
        assert_eq!(c.max_age(), Some(time::Duration::minutes(15)));
        assert_eq!(csrf(&plain, "t".into()).http_only(), Some(false));

        let public = settings("[server]\npublic_url = \"https://auth.example.com\"\ncookie_domain = \".example.com\"");
        let c = session(&public, "t".into());
        assert_eq!((c.secure(), c.domain()), (Some(true), Some(".example.com")));
        assert!(cleared(&public).iter().all(|c| c.max_age() == Some(time::Duration::ZERO)));
    }
}
