//! `next`: where to send the browser after sign-in. Only a path on this
//! site, or a URL on one of `server.frontend_origins` (exact origin), is
//! kept; everything else is refused, so doorman is never an open redirect.

use url::Url;

use crate::config::Settings;

/// A vetted redirect target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NextTarget(String);

impl NextTarget {
    pub fn parse(text: &str, settings: &Settings) -> Result<NextTarget, &'static str> {
        if text.is_empty() || text.len() > 2048 {
            return Err("next is empty or too long");
        }
        if text.chars().any(|c| c.is_control() || c.is_whitespace() || c == '\\') {
            return Err("next holds spaces, control characters or backslashes");
        }
        // Decode a few rounds of percent-encoding and check again, so an
        // encoded `//host` or `\` is refused too.
        let mut decoded = text.to_string();
        for _ in 0..3 {
            let next = percent_decode(&decoded);
            if next.chars().any(|c| c.is_control() || c == '\\') {
                return Err("next holds encoded control characters or backslashes");
            }
            if next == decoded {
                break;
            }
            decoded = next;
        }
        if text.starts_with('/') {
            if decoded.starts_with("//") || text.starts_with("//") {
                return Err("next must not name another host");
            }
            let base = &settings.server.public_url;
            let joined = base.join(text).map_err(|_| "next is not a valid path")?;
            if joined.origin() != base.origin() {
                return Err("next must stay on this site");
            }
            // Judged, and kept, as the browser will resolve it: `/..//evil.com`
            // becomes `//evil.com`, another host.
            let normalised = &joined[url::Position::BeforePath..];
            if normalised.starts_with("//") || percent_decode(normalised).starts_with("//") {
                return Err("next must not name another host");
            }
            return Ok(NextTarget(normalised.to_string()));
        }
        let url = Url::parse(text).map_err(|_| "next is neither a path nor a URL")?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err("next must be an http(s) URL");
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("next must not carry credentials");
        }
        let origin = url.origin();
        if origin == settings.server.public_url.origin() || settings.server.frontend_origins.contains(&origin) {
            Ok(NextTarget(url.to_string()))
        } else {
            Err("next is not on an allowed origin")
        }
    }

    /// The vetted `next`, or `/` when none is given.
    pub fn parse_or_root(text: Option<&str>, settings: &Settings) -> Result<String, &'static str> {
        match text {
            Some(text) => Ok(Self::parse(text, settings)?.into_string()),
            None => Ok("/".to_string()),
        }
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push(hi * 16 + lo);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings::from_toml(
            "[server]\npublic_url = \"https://auth.example.com\"\nfrontend_origins = [\"https://app.example.com\"]\n[auth]\nsecret_key = \"0123456789abcdef0123456789abcdef\"",
        )
        .unwrap()
    }

    #[test]
    fn accepted() {
        let s = settings();
        for ok in ["/", "/dashboard?tab=1#x", "https://app.example.com/after", "https://auth.example.com/x", "/a%20b"] {
            assert!(NextTarget::parse(ok, &s).is_ok(), "{ok}");
        }
    }

    #[test]
    fn kept_in_normalised_form() {
        let s = settings();
        assert_eq!(NextTarget::parse("/a/../b?x=1", &s).unwrap().into_string(), "/b?x=1");
        assert_eq!(NextTarget::parse("/a/./b#f", &s).unwrap().into_string(), "/a/b#f");
    }

    #[test]
    fn refused() {
        let s = settings();
        for bad in [
            "//evil.com",
            "/\\evil.com",
            "\\\\evil.com",
            "/%2F%2Fevil.com",
            "/%5Cevil.com",
            "/%252F%252Fevil.com",
            "/..//evil.com",
            "/./..//evil.com",
            "/a/../..//evil.com",
            "/%2e%2e//evil.com",
            "/.%2e//evil.com",
            "https://evil.com",
            "https://app.example.com.evil.com/",
            "https://evil.com/https://app.example.com",
            "https://user@app.example.com/",
            "https://app.example.com@evil.com/",
            "http://app.example.com/",
            "https://app.example.com:444/",
            "javascript:alert(1)",
            "data:text/html,hi",
            "evil.com",
            " /x",
            "/x\ny",
            "",
        ] {
            assert!(NextTarget::parse(bad, &s).is_err(), "{bad}");
        }
    }
}
