//! Tokens: `/api-token-tap` (bearer tokens for SDKs, from a browser
//! session), `/api-tokens` (list and revoke them) and `POST /token`
//! (short-lived service JWTs, and the API token of a command-line tool's
//! device-code grant).

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::NO_STORE;
use crate::http::client::ClientInfo;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::extract;
use crate::http::state::AppState;
use crate::identity::api_tokens::{self, NewToken, TokenInfo, TokenRequest, TokenRequestBody};
use crate::identity::{IdentityError, Principal};
use crate::service_tokens::issue::{Caller, Grant, TokenParams, TokenResponse};

/// Largest body these endpoints read.
const BODY_LIMIT: usize = 64 * 1024;

pub(super) async fn read_body(payload: web::Payload) -> Result<web::Bytes, ApiError> {
    match payload.to_bytes_limited(BODY_LIMIT).await {
        Ok(Ok(body)) => Ok(body),
        Ok(Err(_)) => Err(ApiError::bad_request("invalid_body", "the request body could not be read")),
        Err(_) => Err(ApiError::new(
            actix_web::http::StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "the request body is too large",
        )),
    }
}

pub(super) fn content_type(req: &HttpRequest) -> Option<&str> {
    req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok())
}

/// `GET /api-token-tap`: a token with every scope of the user and the default lifetime.
/// A GET with the session cookie mints a credential, so it must come from
/// this site: see [`same_site_get`].
#[utoipa::path(
    get,
    path = "/api-token-tap",
    tag = "tokens",
    security(("cookie" = ["tokens"])),
    responses(
        (status = 200, description = "A new bearer token with every scope of the user", body = NewToken),
        (status = 403, description = "`browser_session_required` (a bearer token), `cross_site_request` or `csrf_failed` (neither `X-CSRFToken` nor `Sec-Fetch-Site: same-origin`/`none`)", body = ErrorBody),
    ),
)]
pub async fn tap_get(
    state: web::Data<AppState>,
    principal: Principal,
    client: ClientInfo,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    same_site_get(&req, &principal)?;
    let token = state.identity.tokens.create(&principal, TokenRequest::default(), &client.origin()).await?;
    Ok(HttpResponse::Ok().insert_header(NO_STORE).json(token))
}

/// The rule for a cookie-authenticated `GET /api-token-tap`:
/// - `Sec-Fetch-Site: cross-site` (a link or image on another site): refused,
///   403 `cross_site_request`, whatever else the request carries;
/// - else `X-CSRFToken` equal to the `csrftoken` cookie (scripts and front
///   ends, as for POST): allowed;
/// - else `Sec-Fetch-Site: same-origin` (doorman's own pages) or `none` (the
///   user typed the address or opened a bookmark): allowed — browsers set
///   this header themselves and no page can forge it;
/// - anything else (`same-site`, or no header and no CSRF token): 403 `csrf_failed`.
///
/// Bearer callers are refused further on (`browser_session_required`).
fn same_site_get(req: &HttpRequest, principal: &Principal) -> Result<(), ApiError> {
    if principal.session_id().is_none() {
        return Ok(());
    }
    let site = req.headers().get("sec-fetch-site").and_then(|v| v.to_str().ok()).map(str::to_ascii_lowercase);
    if site.as_deref() == Some("cross-site") {
        return Err(ApiError::forbidden(
            "cross_site_request",
            "GET /api-token-tap was sent from another site; open it from this site or send X-CSRFToken",
        ));
    }
    if extract::check_csrf(req).is_ok() || matches!(site.as_deref(), Some("same-origin" | "none")) {
        return Ok(());
    }
    Err(IdentityError::CsrfFailed.into())
}

/// `POST /api-token-tap` with an optional JSON body `{"name", "scopes", "ttl"}`.
#[utoipa::path(
    post,
    path = "/api-token-tap",
    tag = "tokens",
    request_body(content = Option<TokenRequestBody>, description = "Optional: a name, scopes within the user's, a lifetime"),
    security(("cookie" = ["tokens"], "csrf" = [])),
    responses(
        (status = 200, description = "A new bearer token", body = NewToken),
        (status = 400, description = "`invalid_json` or `invalid_input` (an unknown scope, a bad ttl or name)", body = ErrorBody),
        (status = 403, description = "`browser_session_required` (a bearer token), `csrf_failed`, or scopes the user does not hold", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: send application/json", body = ErrorBody),
    ),
)]
pub async fn tap_post(
    state: web::Data<AppState>,
    principal: Principal,
    client: ClientInfo,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(payload).await?;
    let request = if body.iter().all(u8::is_ascii_whitespace) {
        TokenRequest::default()
    } else {
        let is_json =
            content_type(&req).is_some_and(|c| c.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case("application/json"));
        if !is_json {
            return Err(ApiError::new(
                actix_web::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send application/json",
            ));
        }
        let parsed: TokenRequestBody = serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request("invalid_json", format!("invalid JSON body: {e}")))?;
        TokenRequest::try_from(parsed)?
    };
    let token = state.identity.tokens.create(&principal, request, &client.origin()).await?;
    Ok(HttpResponse::Ok().insert_header(NO_STORE).json(token))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Everyone's tokens (admins: `users:admin`).
    #[serde(default)]
    all: bool,
}

/// `GET /api-tokens[?all=true]`.
#[utoipa::path(
    get,
    path = "/api-tokens",
    tag = "tokens",
    params(ListQuery),
    responses(
        (status = 200, description = "The caller's live tokens (everyone's with `all=true`), never their secrets", body = Vec<TokenInfo>),
        (status = 400, description = "`invalid_query`", body = ErrorBody),
        (status = 403, description = "`all=true` without `users:admin`", body = ErrorBody),
    ),
)]
pub async fn list(
    state: web::Data<AppState>,
    principal: Principal,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let tokens = state.identity.tokens.list(&principal, query.all).await?;
    Ok(HttpResponse::Ok().insert_header(NO_STORE).json(tokens))
}

/// `DELETE /api-tokens/{id}`: one's own token, or anyone's with `users:admin`.
#[utoipa::path(
    delete,
    path = "/api-tokens/{id}",
    tag = "tokens",
    params(("id" = String, Path, description = "The token's id, from `GET /api-tokens`")),
    responses(
        (status = 204, description = "Revoked (on every instance)"),
        (status = 404, description = "No such token of the caller", body = ErrorBody),
    ),
)]
pub async fn revoke(
    state: web::Data<AppState>,
    principal: Principal,
    client: ClientInfo,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    api_tokens::revoke(&state.identity, &principal, &id, &client.origin()).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `POST /token`: a service JWT, for a user (bearer or browser session) or
/// a machine client (client credentials).
#[utoipa::path(
    post,
    path = "/token",
    tag = "tokens",
    request_body(
        description = "Optional `grant_type` (left out: the bearer or browser caller; `client_credentials` with HTTP Basic; \
            or the device-code grant), `scope`, `audience`, and for the device-code grant `device_code` and `client_id`",
        content(
            (Option<TokenParams> = "application/x-www-form-urlencoded"),
            (Option<TokenParams> = "application/json"),
        ),
    ),
    security(("bearer" = ["tokens"]), ("cookie" = ["tokens"], "csrf" = []), ("basic" = []), ()),
    extensions(("x-scope" = json!("tokens"))),
    responses(
        (status = 200, description = "A signed service JWT, or (device-code grant) the tool's API token", body = TokenResponse,
            headers(("Cache-Control" = String, description = "`no-store`"))),
        (status = 400, description = "An OAuth error (with `error_description`): `invalid_request`, `invalid_scope`, \
            `unsupported_grant_type`, `invalid_grant`, and for the device-code grant `authorization_pending`, `slow_down`, \
            `access_denied`, `expired_token`", body = ErrorBody),
        (status = 401, description = "`invalid_client` (`WWW-Authenticate: Basic`), or no valid user credential \
            (`not_authenticated`, `invalid_token`, `access_expired`, `invalid_session`, `sign_in_again`)", body = ErrorBody),
        (status = 403, description = "`csrf_failed`, `insufficient_scope` or `account_disabled`", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 429, description = "`too_many_attempts`: failed client authentications (`Retry-After`)", body = ErrorBody),
        (status = 503, description = "`database_unavailable`, or no signing key yet (`Retry-After`)", body = ErrorBody),
    ),
)]
pub async fn service_token(
    state: web::Data<AppState>,
    req: HttpRequest,
    client: ClientInfo,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(payload).await?;
    let mut params = TokenParams::parse(content_type(&req), &body)?;
    let authorization = req.headers().get(header::AUTHORIZATION).map(|v| v.to_str().unwrap_or(""));
    let caller = match Grant::for_request(authorization, &mut params)? {
        Grant::ClientCredentials { id, secret } => {
            Caller::Client(state.service_tokens.authenticate_client(&id, &secret, &client.origin()).await?)
        }
        Grant::User => Caller::User(extract::authenticate(&req, &state).await?),
        Grant::DeviceCode { device_code, client_id } => {
            let identity = &state.identity;
            let token = identity
                .device
                .poll(&identity.tokens, state.sso.as_ref(), device_code.as_deref(), client_id.as_deref(), &client.origin())
                .await?;
            let issued = TokenResponse {
                expires_in: (token.expires_at - state.clock.now()).num_seconds().max(0),
                access_token: token.token.expose().to_string(),
                token_type: "Bearer",
                scope: token.scopes.to_string_list(),
            };
            return Ok(HttpResponse::Ok().insert_header(NO_STORE).insert_header((header::PRAGMA, "no-cache")).json(issued));
        }
    };
    let issued = state.service_tokens.issue(caller, params).await?;
    Ok(HttpResponse::Ok().insert_header(NO_STORE).insert_header((header::PRAGMA, "no-cache")).json(issued))
}
