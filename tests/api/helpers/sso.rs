//! Signing in through a provider: the in-process one (`FakeOp`) and the real
//! `oidc-provider`.

use reqwest::Response;
use serde_json::{json, Value};

use super::fake_op::FakeOp;
use super::real_op::{client_for, login_at_provider, RealOp};
use super::{spawn, Backend, TestApp};

pub async fn app_with_op(backend: Backend) -> (TestApp, FakeOp) {
    let op = FakeOp::start().await;
    let provider = op.provider_settings("fake");
    let app = spawn(backend).with(move |s| s.providers.push(provider)).start().await;
    (app, op)
}

impl TestApp {
    /// Follows `/oidc/authenticate` to the provider and back; the callback URL.
    pub async fn begin_login(&self, provider: &str, next: Option<&str>) -> String {
        let mut url = format!("/oidc/authenticate?provider={provider}");
        if let Some(next) = next {
            url.push_str(&format!("&next={}", urlencode(next)));
        }
        let start = self.get(&url).await;
        assert_eq!(start.status(), 302, "{:?}", start.text().await);
        let to_provider = start.headers()["location"].to_str().unwrap().to_string();
        let at_provider = self.client.get(&to_provider).send().await.unwrap();
        assert_eq!(at_provider.status(), 302);
        at_provider.headers()["location"].to_str().unwrap().to_string()
    }

    /// A whole sign-in; the callback's response.
    pub async fn sso_login(&self, provider: &str) -> Response {
        let callback = self.begin_login(provider, None).await;
        self.client.get(&callback).header("Accept", "application/json").send().await.unwrap()
    }
}

/// doorman and one real provider that knows it, with `accounts`.
pub async fn real_setup(
    backend: Backend,
    refresh_tokens: &str,
    accounts: Vec<Value>,
    adjust: impl FnOnce(&mut doorman::config::Settings) + 'static,
) -> (TestApp, RealOp) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let op = RealOp::start(json!({"clients": [client_for(&base, refresh_tokens)], "accounts": accounts}));
    let provider = op.provider_settings("real");
    let app = spawn(backend)
        .on_listener(listener)
        .with(move |s| {
            s.providers.push(provider);
            adjust(s);
        })
        .start()
        .await;
    (app, op)
}

impl TestApp {
    /// A whole sign-in through the provider's own forms; doorman's callback response.
    pub async fn real_login(&self, provider: &str, login: &str, password: &str) -> Response {
        let start = self.get(&format!("/oidc/authenticate?provider={provider}")).await;
        assert_eq!(start.status(), 302);
        let authorize = start.headers()["location"].to_str().unwrap().to_string();
        let callback = login_at_provider(&self.client, &authorize, login, password).await;
        self.get(&callback).await
    }
}

pub fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}
