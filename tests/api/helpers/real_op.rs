//! The real OpenID Provider: the npm package `oidc-provider`, from
//! tests/idp, started on a loopback port for each test.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

pub const CLIENT_ID: &str = "doorman";
pub const CLIENT_SECRET: &str = "real-op-client-secret";

/// A running `oidc-provider`; killed when dropped.
pub struct RealOp {
    pub issuer: String,
    child: Child,
}

/// One account at the provider.
pub fn account(sub: &str, username: &str, password: &str) -> Value {
    json!({"sub": sub, "preferred_username": username, "email": format!("{username}@example.com"),
           "name": format!("{username} Example"), "password": password})
}

/// A client registration for a doorman at `base`.
pub fn client_for(base: &str, refresh_tokens: &str) -> Value {
    json!({
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "redirect_uris": [format!("{base}/oidc/callback")],
        "post_logout_redirect_uris": [format!("{base}/login")],
        "backchannel_logout_uri": format!("{base}/oidc/backchannel-logout"),
        "refresh_tokens": refresh_tokens,
    })
}

impl RealOp {
    /// Starts the provider with `config` (see tests/idp/server.mjs). Fails
    /// loudly when Node or the npm packages are missing. A start that has not
    /// answered within 30 s is reported, killed and tried again (twice).
    pub fn start(mut config: Value) -> RealOp {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/idp");
        assert!(
            std::path::Path::new(&format!("{dir}/node_modules/oidc-provider")).exists(),
            "the real OpenID Provider is not installed: run `npm ci` in tests/idp (scripts/test.sh does)"
        );
        config["exit_with_stdin"] = true.into();
        config["max_lifetime"] = 600.into();
        let mut failures = Vec::new();
        for _ in 0..3 {
            match Self::try_start(dir, &config) {
                Ok(op) => return op,
                Err(why) => {
                    eprintln!("real OpenID Provider: {why}");
                    failures.push(why);
                }
            }
        }
        panic!("the real OpenID Provider did not start: {failures:#?}");
    }

    fn try_start(dir: &str, config: &Value) -> Result<RealOp, String> {
        let mut child = Command::new("node")
            .arg(format!("{dir}/server.mjs"))
            .env("IDP_CONFIG", config.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("node must be installed to run the real OpenID Provider");
        // Its log is kept for a failure message (and shown with TEST_LOG).
        let log = Arc::new(Mutex::new(String::new()));
        let (stderr, kept) = (child.stderr.take().unwrap(), log.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if std::env::var("TEST_LOG").is_ok() {
                    eprintln!("idp: {line}");
                }
                kept.lock().unwrap().push_str(&format!("{line}\n"));
            }
        });
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let Ok(line) = rx.recv_timeout(Duration::from_secs(30)) else {
            let pid = child.id();
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let wchan = std::fs::read_to_string(format!("/proc/{pid}/wchan")).unwrap_or_default();
            let status = child.try_wait();
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "no answer within 30 s (status {status:?}, stat {stat:?}, wchan {wchan:?}); its log: {}",
                log.lock().unwrap()
            ));
        };
        match serde_json::from_str::<Value>(&line) {
            Ok(ready) => Ok(RealOp { issuer: ready["issuer"].as_str().unwrap().to_string(), child }),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(format!("it said {line:?}; its log: {}", log.lock().unwrap()))
            }
        }
    }

    pub fn provider_settings(&self, id: &str) -> doorman::config::ProviderSettings {
        doorman::config::ProviderSettings {
            id: id.to_string(),
            name: format!("Real {id}"),
            issuer: self.issuer.clone(),
            client_id: CLIENT_ID.into(),
            client_secret: Some(doorman::crypto::SecretString::new(CLIENT_SECRET.into())),
            scopes: vec!["openid".into(), "email".into(), "profile".into(), "offline_access".into()],
            access: Default::default(),
            max_id_token_age: doorman::config::DEFAULT_MAX_ID_TOKEN_AGE,
        }
    }

    pub async fn stats(&self) -> Value {
        reqwest::get(format!("{}/test/stats", self.issuer)).await.unwrap().json().await.unwrap()
    }

    /// Adds an account or replaces the one with its `sub` (e.g. changed `groups`).
    pub async fn put_account(&self, account: Value) {
        let response = reqwest::Client::new().post(format!("{}/test/accounts", self.issuer)).json(&account).send().await.unwrap();
        assert!(response.status().is_success(), "{:?}", response.text().await);
    }

    pub async fn delete_account(&self, sub: &str) {
        let response = reqwest::Client::new().post(format!("{}/test/accounts/{sub}/delete", self.issuer)).send().await.unwrap();
        assert!(response.status().is_success());
    }

    /// Makes the provider send a back-channel logout for `sub`; how many were sent.
    pub async fn backchannel_logout(&self, sub: &str) -> Value {
        reqwest::Client::new()
            .post(format!("{}/test/backchannel-logout?sub={sub}", self.issuer))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

impl Drop for RealOp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn resolve(base: &str, location: &str) -> String {
    url::Url::parse(base).unwrap().join(location).unwrap().to_string()
}

fn form_action(html: &str, form_id: &str) -> Option<String> {
    let start = html.find(&format!("id=\"{form_id}\""))?;
    let form_start = html[..start].rfind("<form")?;
    let tag = &html[form_start..html[form_start..].find('>')? + form_start];
    let action = tag.split("action=\"").nth(1)?.split('"').next()?;
    Some(action.replace("&amp;", "&"))
}

/// Signs in at the provider from its authorization URL, filling the login
/// and consent forms; returns doorman's callback URL. `client` keeps cookies
/// and follows no redirects.
pub async fn login_at_provider(client: &reqwest::Client, authorize_url: &str, login: &str, password: &str) -> String {
    let mut url = authorize_url.to_string();
    for _ in 0..12 {
        if url.contains("/oidc/callback") {
            return url;
        }
        let response = client.get(&url).send().await.unwrap();
        let status = response.status().as_u16();
        if (300..400).contains(&status) {
            let location = response.headers()["location"].to_str().unwrap().to_string();
            url = resolve(&url, &location);
            continue;
        }
        assert_eq!(status, 200, "at {url}");
        let html = response.text().await.unwrap();
        let next = if let Some(action) = form_action(&html, "login-form") {
            client.post(resolve(&url, &action)).form(&[("login", login), ("password", password)]).send().await.unwrap()
        } else if let Some(action) = form_action(&html, "consent-form") {
            client.post(resolve(&url, &action)).send().await.unwrap()
        } else {
            panic!("unexpected page at {url}: {html}");
        };
        assert_eq!(next.status().as_u16(), 303, "form post at {url}");
        url = resolve(&url, next.headers()["location"].to_str().unwrap());
    }
    panic!("no callback after 12 hops");
}
