//! `Authorization` values: `Bearer` (http::extract::bearer_token) and the
//! clients' `Basic` (service_tokens::clients::parse_basic).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|value: &str| {
    if let Ok(token) = doorman::http::extract::bearer_token(value) {
        assert!(!token.is_empty() && !token.contains(char::is_whitespace), "bearer token {token:?} from {value:?}");
    }
    let _ = doorman::service_tokens::clients::parse_basic(value);
});
