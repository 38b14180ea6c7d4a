//! The token request bodies: `POST /token`'s form or JSON
//! (service_tokens::issue::TokenParams::parse, by `Content-Type`) and
//! `POST /api-token-tap`'s JSON (identity::api_tokens::TokenRequestBody).
#![no_main]

use doorman::identity::api_tokens::{TokenRequest, TokenRequestBody};
use doorman::service_tokens::issue::TokenParams;
use libfuzzer_sys::fuzz_target;

const CONTENT_TYPES: [Option<&str>; 6] = [
    None,
    Some("application/x-www-form-urlencoded"),
    Some("application/json"),
    Some("Application/JSON; charset=utf-8"),
    Some("text/plain"),
    Some(""),
];

fuzz_target!(|data: &[u8]| {
    let Some((mode, body)) = data.split_first() else { return };
    let _ = TokenParams::parse(CONTENT_TYPES[*mode as usize % CONTENT_TYPES.len()], body);
    if let Ok(request) = serde_json::from_slice::<TokenRequestBody>(body) {
        let _ = TokenRequest::try_from(request);
    }
});
