//! Command-line sign-in (RFC 8628) from the test's side: the tool's two
//! calls and the browser's page.

use reqwest::Response;
use serde_json::Value;

use super::TestApp;

pub const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

impl TestApp {
    /// `POST /oauth/device_authorization` as a form; the JSON answer (must be 200).
    pub async fn device_authorize(&self, form: &[(&str, &str)]) -> Value {
        let response = self.device_authorize_raw(form).await;
        assert_eq!(response.status(), 200, "{:?}", response.text().await);
        assert_eq!(response.headers()["cache-control"], "no-store");
        response.json().await.unwrap()
    }

    pub async fn device_authorize_raw(&self, form: &[(&str, &str)]) -> Response {
        reqwest::Client::new().post(self.url("/oauth/device_authorization")).form(form).send().await.unwrap()
    }

    /// One poll of the tool at `POST /token`.
    pub async fn device_poll(&self, device_code: &str, client_id: &str) -> Response {
        let form = [("grant_type", DEVICE_GRANT), ("device_code", device_code), ("client_id", client_id)];
        reqwest::Client::new().post(self.url("/token")).form(&form).send().await.unwrap()
    }

    /// `GET /device?user_code=` in this browser.
    pub async fn device_page(&self, user_code: &str) -> Response {
        self.client.get(self.url("/device")).query(&[("user_code", user_code)]).send().await.unwrap()
    }

    /// `POST /device` from the page's form: `action` is `approve` or `deny`.
    pub async fn device_decide(&self, user_code: &str, action: &str) -> Response {
        let csrf = self.cookie("csrftoken").unwrap_or_default();
        let form = [("user_code", user_code), ("action", action), ("csrf_token", csrf.as_str())];
        self.client.post(self.url("/device")).form(&form).send().await.unwrap()
    }
}

/// Asserts an OAuth error of `POST /token`: 400, the code, and
/// `error_description` beside `message`.
pub async fn assert_oauth_error(response: Response, code: &str) -> Value {
    let body = super::assert_error(response, 400, code).await;
    assert_eq!(body["error_description"], body["message"], "{body}");
    body
}
