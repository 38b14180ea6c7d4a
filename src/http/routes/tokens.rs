//! Tokens: `/api-token-tap` (bearer tokens for SDKs, from a browser
//! session), `/api-tokens` (list and revoke them) and `POST /token`
//! (short-lived service JWTs).

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::NO_STORE;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::extract;
use crate::http::state::AppState;
use crate::identity::api_tokens::{NewToken, TokenInfo, TokenRequest, TokenRequestBody};
use crate::identity::Principal;
use crate::service_tokens::issue::{Caller, Grant, TokenParams, TokenResponse};

/// Largest body these endpoints read.
const BODY_LIMIT: usize = 64 * 1024;

async fn read_body(payload: web::Payload) -> Result<web::Bytes, ApiError> {
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

fn content_type(req: &HttpRequest) -> Option<&str> {
    req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok())
}

/// `GET /api-token-tap`: a token with every scope of the user and the default lifetime.
#[utoipa::path(
    get,
    path = "/api-token-tap",
    tag = "tokens",
    security(("cookie" = ["tokens"])),
    responses(
        (status = 200, description = "A new API token; its secret is shown only here", body = NewToken),
        (status = 401, description = "Not authenticated: `not_authenticated`, `invalid_token`, `invalid_session`, `access_expired`, `sign_in_again`", body = ErrorBody),
        (status = 403, description = "`insufficient_scope`, `browser_session_required` (a bearer token cannot mint tokens)", body = ErrorBody),
        (status = 503, description = "The database is unavailable", body = ErrorBody),
    )
)]
pub async fn tap_get(state: web::Data<AppState>, principal: Principal) -> Result<HttpResponse, ApiError> {
    let token = state.identity.tokens.create(&principal, TokenRequest::default()).await?;
    Ok(HttpResponse::Ok().insert_header(NO_STORE).json(token))
}

/// `POST /api-token-tap` with an optional JSON body `{"name", "scopes", "ttl"}`.
#[utoipa::path(
    post,
    path = "/api-token-tap",
    tag = "tokens",
    request_body(content = Option<TokenRequestBody>, content_type = "application/json", description = "Optional: an empty body asks for the defaults"),
    security(("cookie" = ["tokens"], "csrf" = [])),
    responses(
        (status = 200, description = "A new API token; its secret is shown only here", body = NewToken),
        (status = 400, description = "`invalid_json`, `invalid_input` (unknown scope, a scope the user does not hold, a bad `ttl` or `name`)", body = ErrorBody),
        (status = 401, description = "Not authenticated: `not_authenticated`, `invalid_token`, `invalid_session`, `access_expired`, `sign_in_again`", body = ErrorBody),
        (status = 403, description = "`insufficient_scope`, `csrf_failed`, `browser_session_required`", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 503, description = "The database is unavailable", body = ErrorBody),
    )
)]
pub async fn tap_post(
    state: web::Data<AppState>,
    principal: Principal,
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
    let token = state.identity.tokens.create(&principal, request).await?;
    Ok(HttpResponse::Ok().insert_header(NO_STORE).json(token))
}

/// The query of `GET /api-tokens`.
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
    security(("cookie" = ["tokens"]), ("bearer" = ["tokens"])),
    responses(
        (status = 200, description = "The tokens, never their secret", body = Vec<TokenInfo>),
        (status = 400, description = "`invalid_query`", body = ErrorBody),
        (status = 401, description = "Not authenticated: `not_authenticated`, `invalid_token`, `invalid_session`, `access_expired`, `sign_in_again`", body = ErrorBody),
        (status = 403, description = "`insufficient_scope`; `forbidden` for `all=true` without `users:admin`", body = ErrorBody),
        (status = 503, description = "The database is unavailable", body = ErrorBody),
    )
)]
pub async fn list(
    state: web::Data<AppState>,
    principal: Principal,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let tokens = state.identity.tokens.list(&principal, query.all).await?;
    Ok(HttpResponse::Ok().insert_header(NO_STORE).json(tokens))
}

/// `DELETE /api-tokens/{id}`.
#[utoipa::path(
    delete,
    path = "/api-tokens/{id}",
    tag = "tokens",
    params(("id" = String, Path, description = "The token's id")),
    security(("cookie" = ["tokens"], "csrf" = []), ("bearer" = ["tokens"])),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, description = "Not authenticated: `not_authenticated`, `invalid_token`, `invalid_session`, `access_expired`, `sign_in_again`", body = ErrorBody),
        (status = 403, description = "`insufficient_scope`, `csrf_failed`", body = ErrorBody),
        (status = 404, description = "`not_found`: no such token of the caller's (anyone's with `users:admin`)", body = ErrorBody),
        (status = 503, description = "The database is unavailable", body = ErrorBody),
    )
)]
pub async fn revoke(state: web::Data<AppState>, principal: Principal, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    state.identity.tokens.revoke(&principal, &id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `POST /token`: a service JWT, for a user (bearer or browser session) or
/// a machine client (client credentials).
#[utoipa::path(
    post,
    path = "/token",
    tag = "tokens",
    request_body(
        description = "Optional; unknown form parameters are ignored, unknown JSON fields refused",
        content(
            (Option<TokenParams> = "application/x-www-form-urlencoded"),
            (Option<TokenParams> = "application/json"),
        ),
    ),
    security(("bearer" = ["tokens"]), ("cookie" = ["tokens"], "csrf" = []), ("basic" = [])),
    responses(
        (status = 200, description = "A signed JWT access token (RFC 9068)", body = TokenResponse),
        (status = 400, description = "`invalid_request`, `invalid_scope`, `unsupported_grant_type`", body = ErrorBody),
        (status = 401, description = "`invalid_client` (client credentials), or the user is not authenticated (`not_authenticated`, `invalid_token`, ...)", body = ErrorBody),
        (status = 403, description = "`insufficient_scope`, `csrf_failed`", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 429, description = "`too_many_attempts` (failed client authentication), with `Retry-After`", body = ErrorBody),
        (status = 503, description = "No signing key is active yet, or the database is unavailable", body = ErrorBody),
    )
)]
pub async fn service_token(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(payload).await?;
    let params = TokenParams::parse(content_type(&req), &body)?;
    let authorization = req.headers().get(header::AUTHORIZATION).map(|v| v.to_str().unwrap_or(""));
    let caller = match Grant::of(authorization, params.grant_type.as_deref())? {
        Grant::ClientCredentials { id, secret } => Caller::Client(state.service_tokens.authenticate_client(&id, &secret).await?),
        Grant::User => Caller::User(extract::authenticate(&req, &state).await?),
    };
    let issued = state.service_tokens.issue(caller, params).await?;
    Ok(HttpResponse::Ok().insert_header(NO_STORE).insert_header((header::PRAGMA, "no-cache")).json(issued))
}
