//! `http::next_path::NextTarget::parse`: the `next` a sign-in returns to
//! must stay on doorman or a configured front end, whatever it is given.
#![no_main]

use std::sync::OnceLock;

use doorman::config::Settings;
use doorman::http::next_path::NextTarget;
use libfuzzer_sys::fuzz_target;

fn settings() -> &'static Settings {
    static SETTINGS: OnceLock<Settings> = OnceLock::new();
    SETTINGS.get_or_init(|| {
        Settings::from_toml(
            "[server]\npublic_url = \"https://auth.example.com\"\nfrontend_origins = [\"https://app.example.com\"]\n\
             [database]\nurl = \"postgres://localhost/doorman\"\n\
             [auth]\nsecret_key = \"fuzz-secret-key-0123456789abcdef-0123456789\"",
        )
        .expect("fuzz settings")
    })
}

fuzz_target!(|text: &str| {
    if let Ok(next) = NextTarget::parse(text, settings()) {
        let target = next.into_string();
        // Accepted: where a browser on doorman's pages would go is doorman
        // itself or the configured front end, never another host.
        let base = url::Url::parse("https://auth.example.com/login").expect("base");
        let lands = base.join(&target).expect("an accepted next resolves");
        let origin = lands.origin().ascii_serialization();
        assert!(
            origin == "https://auth.example.com" || origin == "https://app.example.com",
            "accepted next {target:?} (from {text:?}) leads to {origin}"
        );
    }
});
