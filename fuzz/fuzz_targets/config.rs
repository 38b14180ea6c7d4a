//! `config::Settings::from_toml`: any text as a configuration file.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    // Without `auth.secret_key` on SQLite, doorman makes a development key
    // file beside the database: a fuzzer must not write files wherever its
    // input says, so such inputs stop at the TOML parse (which
    // `from_toml` runs first, and which is what can fail on hostile text).
    let writes_key_file = toml::from_str::<toml::Table>(text)
        .ok()
        .is_some_and(|t| t.get("auth").and_then(|a| a.as_table()).is_none_or(|a| !a.contains_key("secret_key")));
    if writes_key_file {
        return;
    }
    if let Ok(settings) = doorman::config::Settings::from_toml(text) {
        // What startup reads from valid settings.
        let _ = settings.server.url_for("/oidc/callback");
    }
});
