//! The device flow's codes: the user code as typed on the verification
//! page (`UserCode::parse`), and the device authorization request body
//! (`AuthorizationParams::parse`, by `Content-Type`).
#![no_main]

use doorman::identity::device::{AuthorizationParams, UserCode};
use libfuzzer_sys::fuzz_target;

const CONTENT_TYPES: [Option<&str>; 3] = [None, Some("application/x-www-form-urlencoded"), Some("application/json")];

fuzz_target!(|data: &[u8]| {
    let Some((mode, rest)) = data.split_first() else { return };
    if let Ok(text) = std::str::from_utf8(rest) {
        if let Some(code) = UserCode::parse(text) {
            // A parsed code reads back as itself.
            assert_eq!(UserCode::parse(&code.display()).map(|c| c.display()), Some(code.display()));
        }
    }
    let _ = AuthorizationParams::parse(CONTENT_TYPES[*mode as usize % CONTENT_TYPES.len()], rest);
});
