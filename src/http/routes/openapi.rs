//! `GET /openapi.json`: the OpenAPI 3.1 description of the route table,
//! generated from the handlers' `#[utoipa::path]` attributes, the types
//! they take and give, and [`ENDPOINTS`] (scopes, and the answers of the
//! scope guard), so that it cannot drift from the code.
//!
//! Adding an endpoint: its line in [`ENDPOINTS`], a `#[utoipa::path]` on its
//! handler, and the handler in `paths(...)` below; the tests here fail until
//! all three agree. A guarded route's scope is written once, in
//! [`ENDPOINTS`]: [`RouteTable`] turns it into the operation's security
//! requirements (the scope named in each), an `x-scope` extension and the
//! guard's 401, 403 and 503 answers.

use std::sync::LazyLock;

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use serde::Serialize;
use utoipa::openapi::extensions::ExtensionsBuilder;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::server::Server;
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder, Schema};
use utoipa::{Modify, OpenApi, ToSchema};

use super::{admin, audit, device, health, info, jwks, me, oidc, pages, tokens, users, Endpoint, ENDPOINTS};
use crate::http::cookies::{ACCESS, CSRF_HEADER, SESSION};
use crate::http::error::ErrorBody;
use crate::http::state::AppState;

/// The description, built from the handlers' attributes and the route table.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "doorman",
        description = "Authentication backend: password and OpenID Connect sign-in, JWT cookies, scoped bearer tokens.\n\n\
            Every error is `{\"error\": \"<code>\", \"message\": \"<text>\"}` (schema `ErrorBody`); OAuth answers \
            (`POST /token`, `POST /oauth/device_authorization`) repeat the message as `error_description`. \
            A route's scope is named in its security requirements and in `x-scope`. API calls authenticate with \
            the access cookie (`cookie`) or `Authorization: Bearer` (`bearer`); cookie-authenticated POST, PUT, \
            PATCH and DELETE also need the `csrf` header equal to the `csrftoken` cookie. A 401 \
            `access_expired` means: call `POST /me/refresh` and retry; `invalid_session` and `sign_in_again` \
            mean: sign in again."
    ),
    paths(
        health::check,
        health::ready,
        info::show,
        show,
        pages::home,
        pages::login,
        pages::script,
        pages::style,
        admin::show,
        admin::approve,
        admin::reject,
        device::page,
        device::decide,
        device::authorize,
        device::metadata,
        oidc::authenticate,
        oidc::callback,
        oidc::backchannel_logout,
        me::login,
        me::refresh,
        me::logout,
        me::show,
        me::sessions,
        me::end_session,
        users::list,
        users::create,
        users::show,
        users::update,
        users::delete,
        users::approve,
        users::set_password,
        users::sessions,
        users::sign_out,
        audit::list,
        tokens::tap_get,
        tokens::tap_post,
        tokens::list,
        tokens::revoke,
        tokens::service_token,
        jwks::show,
    ),
    components(schemas(ErrorBody)),
    modifiers(&SecuritySchemes, &RouteTable, &OptionalBodies),
    tags(
        (name = "service", description = "Health, readiness, discovery"),
        (name = "pages", description = "Server-rendered pages and their files"),
        (name = "admin page", description = "The administrator's page (plain forms)"),
        (name = "sso", description = "Single sign-on (OpenID Connect)"),
        (name = "session", description = "Browser sessions: password sign-in, refresh, logout"),
        (name = "me", description = "The caller's account and sessions"),
        (name = "users", description = "User administration"),
        (name = "audit", description = "Audit events"),
        (name = "tokens", description = "API tokens and service JWTs"),
        (name = "device", description = "Command-line sign-in (RFC 8628)"),
    )
)]
pub struct ApiDoc;

/// The security schemes the operations name.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let cookie = |name: &str, description: &str| {
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(name, description)))
        };
        components.add_security_scheme(
            "cookie",
            cookie(
                ACCESS,
                "The access JWT cookie a browser gets from `POST /me/login` or `/oidc/callback`; it holds every scope of \
                 its user. With POST, PUT, PATCH and DELETE it needs the `csrf` header too.",
            ),
        );
        components.add_security_scheme(
            "csrf",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                CSRF_HEADER,
                "Equal to the `csrftoken` cookie; required beside the `cookie` or `session` scheme on unsafe methods.",
            ))),
        );
        components.add_security_scheme(
            "session",
            cookie(SESSION, "The browser session cookie (opaque); `POST /me/refresh` and `POST /me/logout` read it."),
        );
        let mut bearer = Http::new(HttpAuthScheme::Bearer);
        bearer.description = Some(
            "An API token (`dmn_...`) from `/api-token-tap` or the device-code grant; it holds the scopes it was made with."
                .into(),
        );
        components.add_security_scheme("bearer", SecurityScheme::Http(bearer));
        let mut basic = Http::new(HttpAuthScheme::Basic);
        basic.description =
            Some("A machine client's id and secret, for `POST /token` with `grant_type=client_credentials`.".into());
        components.add_security_scheme("basic", SecurityScheme::Http(basic));
    }
}

/// What [`ENDPOINTS`] says of each guarded route: who may call it (the
/// scope in each security requirement, unless the handler's attribute
/// narrows it), `x-scope`, and the guard's refusals.
struct RouteTable;

impl Modify for RouteTable {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for endpoint in ENDPOINTS {
            let Some(operation) = operation_mut(openapi, endpoint) else { continue };
            // Handlers' names repeat across modules (`show`); method and path do not.
            operation.operation_id = Some(operation_id(endpoint));
            let Some(scope) = endpoint.scope else { continue };
            let scope = scope.as_str();
            if operation.security.is_none() {
                let cookie = if is_unsafe(endpoint) {
                    SecurityRequirement::new("cookie", [scope]).add("csrf", Vec::<String>::new())
                } else {
                    SecurityRequirement::new("cookie", [scope])
                };
                operation.security = Some(vec![cookie, SecurityRequirement::new("bearer", [scope])]);
            }
            operation
                .extensions
                .get_or_insert_with(Default::default)
                .merge(ExtensionsBuilder::new().add("x-scope", scope).build());
            let refusals = [
                (
                    "401",
                    "Not authenticated: `not_authenticated`, `invalid_token`, `access_expired` (refresh and retry), \
                     `invalid_session` or `sign_in_again` (sign in)",
                ),
                ("403", "`insufficient_scope` (`WWW-Authenticate` names it) or, with the cookie, `csrf_failed`"),
                ("503", "`database_unavailable` (`Retry-After`)"),
            ];
            for (status, description) in refusals {
                if !operation.responses.responses.contains_key(status) {
                    operation.responses.responses.insert(status.to_string(), error_response(description).into());
                }
            }
        }
    }
}

/// `get_users_by_username_sessions` for `GET /users/{username}/sessions`; `get_root` for `GET /`.
fn operation_id(endpoint: &Endpoint) -> String {
    let mut id = endpoint.method.as_str().to_lowercase();
    let segments: Vec<&str> = endpoint.path.split('/').filter(|s| !s.is_empty()).collect();
    if segments.is_empty() {
        id.push_str("_root");
    }
    for segment in segments {
        id.push('_');
        if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            id.push_str("by_");
            id.push_str(name);
        } else {
            id.extend(segment.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).skip_while(|c| *c == '_'));
        }
    }
    id
}

/// A request body written `Option<T>` in a handler's attribute may be left
/// out (it is not `required`); utoipa also lets it be JSON `null`
/// (`oneOf: [null, T]`), which no handler takes: the body's schema is `T`.
struct OptionalBodies;

impl Modify for OptionalBodies {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for endpoint in ENDPOINTS {
            let Some(operation) = operation_mut(openapi, endpoint) else { continue };
            let Some(body) = operation.request_body.as_mut() else { continue };
            if body.required.is_some() {
                continue;
            }
            for content in body.content.values_mut() {
                if let Some(RefOr::T(Schema::OneOf(one_of))) = &content.schema {
                    let mut refs = one_of.items.iter().filter(|item| matches!(item, RefOr::Ref(_)));
                    if let (Some(only), None) = (refs.next(), refs.next()) {
                        content.schema = Some(only.clone());
                    }
                }
            }
        }
    }
}

fn is_unsafe(endpoint: &Endpoint) -> bool {
    !matches!(endpoint.method.as_str(), "GET" | "HEAD" | "OPTIONS")
}

fn operation_mut<'a>(openapi: &'a mut utoipa::openapi::OpenApi, endpoint: &Endpoint) -> Option<&'a mut Operation> {
    let item = openapi.paths.paths.get_mut(endpoint.path)?;
    match endpoint.method.as_str() {
        "GET" => item.get.as_mut(),
        "POST" => item.post.as_mut(),
        "PUT" => item.put.as_mut(),
        "PATCH" => item.patch.as_mut(),
        "DELETE" => item.delete.as_mut(),
        _ => None,
    }
}

/// An error answer in the SPEC's shape.
fn error_response(description: &str) -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description(description)
        .content("application/json", ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build())
        .build()
}

static DESCRIPTION: LazyLock<utoipa::openapi::OpenApi> = LazyLock::new(description);

/// The description without `servers`.
pub fn description() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    doc
}

/// An OpenAPI 3.1 document (the body of `GET /openapi.json`).
#[derive(Serialize, ToSchema)]
pub struct OpenApiDocument {
    /// `3.1.0`.
    pub openapi: String,
    #[schema(value_type = Object)]
    pub info: serde_json::Value,
    #[schema(value_type = Object)]
    pub paths: serde_json::Value,
}

/// This description, with this server's `public_url` as its server.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "service",
    responses((status = 200, description = "The OpenAPI 3.1 description of every endpoint", body = OpenApiDocument)),
)]
pub async fn show(state: web::Data<AppState>) -> HttpResponse {
    let mut doc = DESCRIPTION.clone();
    doc.servers = Some(vec![Server::new(state.settings.server.url_for(""))]);
    HttpResponse::Ok().insert_header((header::CACHE_CONTROL, "public, max-age=300")).json(doc)
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    fn document() -> Value {
        serde_json::to_value(description()).unwrap()
    }

    const METHODS: [&str; 8] = ["get", "put", "post", "delete", "patch", "head", "options", "trace"];

    fn operations(doc: &Value) -> Vec<(String, String)> {
        let mut found = Vec::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                if METHODS.contains(&method.as_str()) {
                    found.push((method.to_uppercase(), path.clone()));
                }
            }
        }
        found.sort();
        found
    }

    #[test]
    fn describes_every_route_of_the_table_and_nothing_else() {
        let mut table: Vec<(String, String)> =
            ENDPOINTS.iter().map(|e| (e.method.as_str().to_string(), e.path.to_string())).collect();
        table.sort();
        let before = table.len();
        table.dedup();
        assert_eq!(table.len(), before, "a route is in the table twice");
        assert_eq!(operations(&document()), table);
    }

    /// Optional bodies (left out, never `null`): `POST /token`,
    /// `POST /api-token-tap`, `POST /users/{username}/approve`.
    #[test]
    fn optional_bodies_are_not_required_and_not_null() {
        let doc = document();
        for (path, schema) in
            [("/token", "TokenParams"), ("/api-token-tap", "TokenRequestBody"), ("/users/{username}/approve", "Approval")]
        {
            let body = &doc["paths"][path]["post"]["requestBody"];
            assert!(body.get("required").is_none_or(|r| r == false), "{path}: {body}");
            for content in body["content"].as_object().unwrap().values() {
                assert_eq!(content["schema"]["$ref"], format!("#/components/schemas/{schema}"), "{path}: {body}");
            }
        }
        assert_eq!(doc["paths"]["/users"]["post"]["requestBody"]["required"], true);
    }

    #[test]
    fn operation_ids_are_unique() {
        let doc = document();
        let mut ids = Vec::new();
        for item in doc["paths"].as_object().unwrap().values() {
            for operation in item.as_object().unwrap().values() {
                ids.push(operation["operationId"].as_str().expect("an operationId").to_string());
            }
        }
        let count = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), count, "{ids:?}");
        assert!(ids.contains(&"get_users_by_username_sessions".to_string()), "{ids:?}");
        assert!(ids.contains(&"get_well_known_jwks_json".to_string()), "{ids:?}");
    }

    #[test]
    fn is_openapi_3_1_with_the_error_shape_and_security_schemes() {
        let doc = document();
        assert_eq!(doc["openapi"], "3.1.0");
        assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
        let error = &doc["components"]["schemas"]["ErrorBody"];
        assert_eq!(error["required"], serde_json::json!(["error", "message"]));
        let schemes = &doc["components"]["securitySchemes"];
        assert_eq!((&schemes["cookie"]["in"], &schemes["cookie"]["name"]), (&"cookie".into(), &ACCESS.into()));
        assert_eq!((&schemes["session"]["in"], &schemes["session"]["name"]), (&"cookie".into(), &SESSION.into()));
        assert_eq!((&schemes["csrf"]["in"], &schemes["csrf"]["name"]), (&"header".into(), &CSRF_HEADER.into()));
        assert_eq!(schemes["bearer"]["scheme"], "bearer");
        assert_eq!(schemes["basic"]["scheme"], "basic");
        let token = &doc["paths"]["/token"]["post"]["security"];
        assert!(token.as_array().unwrap().iter().any(|r| r.get("basic").is_some()), "POST /token: no HTTP Basic");
    }

    /// Every guarded route names its scope in each way in and in `x-scope`,
    /// needs a credential, and documents the guard's refusals; every cookie
    /// on an unsafe method comes with the CSRF header; every error answer
    /// that is JSON is an `ErrorBody`; every operation has a success answer.
    #[test]
    fn scopes_csrf_and_errors_match_the_route_table() {
        let doc = document();
        for endpoint in ENDPOINTS {
            let operation = &doc["paths"][endpoint.path][endpoint.method.as_str().to_lowercase()];
            let name = format!("{} {}", endpoint.method, endpoint.path);
            let security = operation["security"].as_array().cloned().unwrap_or_default();
            if let Some(scope) = endpoint.scope {
                assert_eq!(operation["x-scope"], scope.as_str(), "{name}: x-scope");
                assert!(!security.is_empty(), "{name}: no security requirement");
                for requirement in &security {
                    let requirement = requirement.as_object().unwrap();
                    assert!(!requirement.is_empty(), "{name}: anonymous access documented behind a guard");
                    for (scheme, scopes) in requirement.iter().filter(|(k, _)| k.as_str() != "csrf") {
                        assert!(
                            scopes.as_array().unwrap().iter().any(|s| s == scope.as_str()),
                            "{name}: {scheme} does not name the scope {scope}"
                        );
                    }
                }
                for status in ["401", "403", "503"] {
                    assert!(operation["responses"].get(status).is_some(), "{name}: the guard's {status} is missing");
                }
            }
            for requirement in &security {
                let requirement = requirement.as_object().unwrap();
                if is_unsafe(endpoint) && (requirement.contains_key("cookie") || requirement.contains_key("session")) {
                    let by_form = endpoint.path.starts_with("/admin/") || endpoint.path == "/device";
                    assert!(by_form || requirement.contains_key("csrf"), "{name}: cookie without the CSRF header");
                }
            }
            let responses = operation["responses"].as_object().unwrap();
            assert!(responses.keys().any(|s| s.starts_with('2') || s.starts_with('3')), "{name}: no success answer");
            for (status, response) in responses {
                if status.starts_with('4') || status.starts_with('5') {
                    // The SPEC's one exception: `/readyz` answers 503 with its readiness body.
                    let expected = if endpoint.path == "/readyz" { "Readiness" } else { "ErrorBody" };
                    if let Some(json) = response["content"].get("application/json") {
                        assert_eq!(json["schema"]["$ref"], format!("#/components/schemas/{expected}"), "{name}: {status}");
                    }
                    assert!(response["content"].as_object().is_some_and(|c| !c.is_empty()), "{name}: {status} has no body");
                }
            }
        }
    }
}
