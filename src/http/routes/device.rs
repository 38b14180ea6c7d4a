//! Command-line sign-in (RFC 8628): `POST /oauth/device_authorization`, the
//! `/device` page where a signed-in user approves or denies a tool's code,
//! and the RFC 8414 metadata that lets an OAuth client find it all. The
//! token itself is polled at `POST /token` (see tokens.rs).

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use super::pages::html_with_status;
use super::tokens::{content_type, read_body};
use super::NO_STORE;
use crate::crypto::constant_time_eq;
use crate::http::client::ClientInfo;
use crate::http::cookies::{ACCESS, CSRF};
use crate::http::error::{internal, ApiError, ErrorBody};
use crate::http::state::AppState;
use crate::identity::device::{self, Attempt, AuthorizationParams, Decision, DeviceAuthorization, DeviceError, RequestView};
use crate::identity::{Principal, Scope};

/// `POST /oauth/device_authorization` (form or JSON): the codes for a tool.
#[utoipa::path(
    post,
    path = "/oauth/device_authorization",
    tag = "device",
    request_body(
        description = "`client_id` (the tool's label) and optionally `scope` (space-separated); as a form or JSON",
        content(
            (AuthorizationParams = "application/x-www-form-urlencoded"),
            (AuthorizationParams = "application/json"),
        ),
    ),
    responses(
        (status = 200, description = "The codes (RFC 8628 §3.2)", body = DeviceAuthorization),
        (status = 400, description = "`invalid_request` or `invalid_scope` (OAuth error, with `error_description`)", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 503, description = "`database_unavailable`", body = ErrorBody),
    ),
)]
pub async fn authorize(state: web::Data<AppState>, req: HttpRequest, payload: web::Payload) -> Result<HttpResponse, ApiError> {
    let body = read_body(payload).await?;
    let params = AuthorizationParams::parse(content_type(&req), &body)?;
    let answer = state.identity.device.authorize(params, &state.settings.server.url_for("/device")).await?;
    Ok(HttpResponse::Ok().insert_header(NO_STORE).insert_header((header::PRAGMA, "no-cache")).json(answer))
}

/// RFC 8414 authorization server metadata.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ServerMetadata {
    issuer: String,
    token_endpoint: String,
    device_authorization_endpoint: String,
    jwks_uri: String,
    grant_types_supported: [&'static str; 2],
    response_types_supported: [&'static str; 0],
    scopes_supported: Vec<&'static str>,
    token_endpoint_auth_methods_supported: [&'static str; 2],
}

/// `GET /.well-known/oauth-authorization-server` (RFC 8414).
#[utoipa::path(
    get,
    path = "/.well-known/oauth-authorization-server",
    tag = "device",
    responses((status = 200, description = "The metadata", body = ServerMetadata)),
)]
pub async fn metadata(state: web::Data<AppState>) -> HttpResponse {
    let server = &state.settings.server;
    HttpResponse::Ok().insert_header((header::CACHE_CONTROL, "public, max-age=3600")).json(ServerMetadata {
        issuer: server.url_for(""),
        token_endpoint: server.url_for("/token"),
        device_authorization_endpoint: server.url_for("/oauth/device_authorization"),
        jwks_uri: server.url_for("/.well-known/jwks.json"),
        grant_types_supported: ["client_credentials", device::GRANT_TYPE],
        response_types_supported: [],
        scopes_supported: Scope::ALL.iter().map(|s| s.as_str()).collect(),
        // Machine clients use HTTP Basic; command-line tools are public clients.
        token_endpoint_auth_methods_supported: ["client_secret_basic", "none"],
    })
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// The code the tool shows (`XXXX-XXXX`, any case, dash optional).
    user_code: Option<String>,
}

/// The approve/deny form of `POST /device`.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct DecisionForm {
    /// The code the tool shows.
    user_code: Option<String>,
    /// `approve` or `deny`.
    action: Option<String>,
    /// The `csrftoken` cookie's value.
    csrf_token: Option<String>,
}

/// Longest user code echoed back into a page or a `next` link.
const MAX_ECHO: usize = 32;

/// `/device?user_code=...` (or `/device`), for `next`.
fn this_page(user_code: Option<&str>) -> String {
    match user_code.filter(|c| !c.is_empty() && c.len() <= MAX_ECHO) {
        Some(code) => format!("/device?user_code={}", url::form_urlencoded::byte_serialize(code.as_bytes()).collect::<String>()),
        None => "/device".into(),
    }
}

fn to_login(user_code: Option<&str>) -> HttpResponse {
    let next: String = url::form_urlencoded::byte_serialize(this_page(user_code).as_bytes()).collect();
    HttpResponse::Found().insert_header((header::LOCATION, format!("/login?next={next}"))).insert_header(NO_STORE).finish()
}

/// The signed-in browser user of a page request (the access cookie; the
/// form's CSRF field is checked by the caller), or `None` (sign in first).
async fn signed_in(req: &HttpRequest, state: &AppState) -> Option<(Principal, String)> {
    let cookie = req.cookie(ACCESS)?;
    let principal = state.identity.sessions.authenticate(cookie.value()).await.ok()?;
    let session_id = principal.session_id()?.to_string();
    Some((principal, session_id))
}

/// What the page shows.
struct Page<'a> {
    status: StatusCode,
    /// `enter` (type a code), `confirm` (approve or deny) or `done`.
    step: &'a str,
    username: &'a str,
    typed: Option<&'a str>,
    request: Option<&'a RequestView>,
    csrf: &'a str,
    error: Option<String>,
    outcome: Option<&'a str>,
}

impl<'a> Page<'a> {
    /// The first step: the form to type a code into.
    fn enter(username: &'a str, typed: Option<&'a str>, csrf: &'a str) -> Self {
        Self { status: StatusCode::OK, step: "enter", username, typed, request: None, csrf, error: None, outcome: None }
    }
}

fn render(state: &AppState, page: Page<'_>) -> Result<HttpResponse, ApiError> {
    let scopes: Option<Vec<&str>> = page.request.map(|r| match &r.scopes {
        Some(list) => list.iter().map(String::as_str).collect(),
        None => vec![],
    });
    let typed = page.typed.filter(|t| t.len() <= MAX_ECHO);
    let body = state
        .templates
        .render(
            "device.html",
            minijinja::context! {
                step => page.step,
                username => page.username,
                typed => typed,
                request => page.request,
                every_scope => page.request.is_some_and(|r| r.scopes.is_none()),
                scopes => scopes,
                created => page.request.map(|r| r.created_at.format("%Y-%m-%d %H:%M:%S UTC").to_string()),
                csrf => page.csrf,
                error => page.error,
                outcome => page.outcome,
            },
        )
        .map_err(|e| internal(&e))?;
    Ok(html_with_status(page.status, body))
}

fn csrf_cookie(req: &HttpRequest) -> String {
    req.cookie(CSRF).map(|c| c.value().to_string()).unwrap_or_default()
}

/// The page's answer to a refused step: the error in the page, with its status.
fn refused(err: DeviceError) -> (StatusCode, String) {
    let api = ApiError::from(err);
    (api.status, api.message)
}

/// `GET /device[?user_code=]`: the code form, or the request to decide.
#[utoipa::path(
    get,
    path = "/device",
    tag = "device",
    params(PageQuery),
    security((), ("cookie" = [])),
    responses(
        (status = 200, description = "The form to type a code, or the request to approve or deny", content_type = "text/html", body = String),
        (status = 302, description = "Not signed in: to `/login` and back", headers(("Location" = String))),
        (status = 400, content(
            (String = "text/html"),
            (ErrorBody = "application/json"),
        ), description = "`invalid_query` (JSON), or the page with a refused code"),
        (status = 404, description = "No pending request has this code (the page)", content_type = "text/html", body = String),
        (status = 409, description = "Decided already (the page)", content_type = "text/html", body = String),
        (status = 429, description = "Too many wrong codes from this session (the page)", content_type = "text/html", body = String),
        (status = 503, description = "`database_unavailable`", body = ErrorBody),
    ),
)]
pub async fn page(
    state: web::Data<AppState>,
    req: HttpRequest,
    client: ClientInfo,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let typed = query.user_code.as_deref().map(str::trim).filter(|c| !c.is_empty());
    let Some((principal, session_id)) = signed_in(&req, &state).await else { return Ok(to_login(typed)) };
    let csrf = csrf_cookie(&req);
    let mut page = Page::enter(&principal.username, typed, &csrf);
    let Some(code) = typed else { return render(&state, page) };
    let attempt = Attempt { session_id, ip: client.ip };
    match state.identity.device.lookup(&attempt, code).await {
        Ok(request) => {
            page.step = "confirm";
            page.request = Some(&request);
            render(&state, page)
        }
        Err(DeviceError::Db(e)) => Err(e.into()),
        Err(err) => {
            let (status, message) = refused(err);
            (page.status, page.error) = (status, Some(message));
            render(&state, page)
        }
    }
}

/// `POST /device` (form: `user_code`, `action` = `approve` | `deny`,
/// `csrf_token` = the `csrftoken` cookie): the decision.
#[utoipa::path(
    post,
    path = "/device",
    tag = "device",
    request_body(content = DecisionForm, content_type = "application/x-www-form-urlencoded"),
    security((), ("cookie" = [])),
    responses(
        (status = 200, description = "Approved or denied (the page)", content_type = "text/html", body = String),
        (status = 302, description = "Not signed in: to `/login` and back", headers(("Location" = String))),
        (status = 400, content(
            (String = "text/html"),
            (ErrorBody = "application/json"),
        ), description = "`invalid_form` (JSON), or the page: no code, no action, an expired request"),
        (status = 403, description = "The form's CSRF token does not match, or it came from another site (the page)", content_type = "text/html", body = String),
        (status = 404, description = "No pending request has this code (the page)", content_type = "text/html", body = String),
        (status = 409, description = "Decided already (the page)", content_type = "text/html", body = String),
        (status = 429, description = "Too many wrong codes from this session (the page)", content_type = "text/html", body = String),
        (status = 503, description = "`database_unavailable`", body = ErrorBody),
    ),
)]
pub async fn decide(
    state: web::Data<AppState>,
    req: HttpRequest,
    client: ClientInfo,
    form: web::Form<DecisionForm>,
) -> Result<HttpResponse, ApiError> {
    let form = form.into_inner();
    let typed = form.user_code.as_deref().map(str::trim).filter(|c| !c.is_empty());
    let Some((principal, session_id)) = signed_in(&req, &state).await else { return Ok(to_login(typed)) };
    let csrf = csrf_cookie(&req);
    let mut page = Page::enter(&principal.username, typed, &csrf);
    let cross_site =
        req.headers().get("sec-fetch-site").and_then(|v| v.to_str().ok()).is_some_and(|v| v.eq_ignore_ascii_case("cross-site"));
    let token_ok = form.csrf_token.as_deref().is_some_and(|t| !csrf.is_empty() && constant_time_eq(t, &csrf));
    if cross_site || !token_ok {
        page.status = StatusCode::FORBIDDEN;
        page.error = Some("this form has expired or was sent from another site; open the page again".into());
        return render(&state, page);
    }
    let decision = match form.action.as_deref() {
        Some("approve") => Decision::Approve,
        Some("deny") => Decision::Deny,
        _ => {
            page.status = StatusCode::BAD_REQUEST;
            page.error = Some("choose approve or deny".into());
            return render(&state, page);
        }
    };
    let Some(code) = typed else {
        page.status = StatusCode::BAD_REQUEST;
        page.error = Some("type the code your tool shows".into());
        return render(&state, page);
    };
    let attempt = Attempt { session_id, ip: client.ip };
    let origin = client.origin().by(&principal.username);
    match state.identity.device.decide(&attempt, &principal, code, decision, &origin).await {
        Ok(request) => {
            page.step = "done";
            page.outcome = Some(if decision == Decision::Approve { "approved" } else { "denied" });
            page.request = Some(&request);
            render(&state, page)
        }
        Err(DeviceError::Db(e)) => Err(e.into()),
        Err(err) => {
            let (status, message) = refused(err);
            page.status = status;
            page.error = Some(message);
            render(&state, page)
        }
    }
}
