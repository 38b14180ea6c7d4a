//! `GET /openapi.json`: the OpenAPI 3.1 description of the route table,
//! generated from the handlers' `#[utoipa::path]` attributes and the
//! request and response types, so that it cannot drift from the code.
//!
//! Adding an endpoint: its line in [`super::ENDPOINTS`], a `#[utoipa::path]`
//! on its handler, and the handler in `paths(...)` below; the tests here
//! fail until all three agree. A route's scope is written in the scopes of
//! its security requirements (e.g. `"bearer" = ["tokens"]`).

use std::sync::LazyLock;

use actix_web::{web, HttpResponse};
use serde::Serialize;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::server::Server;
use utoipa::{Modify, OpenApi, ToSchema};

use super::{health, info, jwks, me, oidc, pages, tokens, users};
use crate::http::cookies::{ACCESS, CSRF_HEADER, SESSION};
use crate::http::error::ErrorBody;
use crate::http::state::AppState;

/// The description, built once; `servers` is filled in per request.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "doorman",
        description = "Authentication backend: password and OpenID Connect sign-in, JWT cookies, scoped bearer tokens. \
            Every error is `{\"error\": \"<code>\", \"message\": \"<text>\"}` (schema `ErrorBody`). \
            A route's scope is given in the scopes of its security requirements; cookie-authenticated \
            POST, PUT, PATCH and DELETE also need the `csrf` header."
    ),
    paths(
        health::check,
        info::show,
        show,
        pages::home,
        pages::login,
        oidc::authenticate,
        oidc::callback,
        oidc::backchannel_logout,
        me::login,
        me::refresh,
        me::logout,
        me::show,
        users::list,
        users::set_password,
        tokens::tap_get,
        tokens::tap_post,
        tokens::list,
        tokens::revoke,
        tokens::service_token,
        jwks::show,
    ),
    components(schemas(ErrorBody)),
    modifiers(&SecuritySchemes),
    tags(
        (name = "service", description = "Health and discovery"),
        (name = "pages", description = "Server-rendered pages"),
        (name = "sso", description = "Single sign-on (OpenID Connect)"),
        (name = "session", description = "Browser sessions"),
        (name = "users", description = "Accounts"),
        (name = "tokens", description = "API tokens and service JWTs"),
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
                "The access JWT cookie a browser gets from `POST /me/login` or `/oidc/callback`; holds every scope of its user. \
                 With POST, PUT, PATCH and DELETE it needs the `csrf` header too.",
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
        bearer.description = Some("An API token (`dmn_...`) from `/api-token-tap`; holds the scopes it was made with.".into());
        components.add_security_scheme("bearer", SecurityScheme::Http(bearer));
        let mut basic = Http::new(HttpAuthScheme::Basic);
        basic.description = Some("A machine client's id and secret (`POST /token` with `grant_type=client_credentials`).".into());
        components.add_security_scheme("basic", SecurityScheme::Http(basic));
    }
}

static DESCRIPTION: LazyLock<utoipa::openapi::OpenApi> = LazyLock::new(description);

/// The description without `servers`.
pub fn description() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    doc
}

/// An OpenAPI 3.1 document (schema-only type: the body of `GET /openapi.json`).
#[derive(Serialize, ToSchema)]
pub struct OpenApiDocument {
    /// `3.1.0`.
    pub openapi: String,
    #[schema(value_type = Object)]
    pub info: serde_json::Value,
    #[schema(value_type = Object)]
    pub paths: serde_json::Value,
}

/// The OpenAPI 3.1 description of every endpoint.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "service",
    responses((status = 200, description = "This description", body = OpenApiDocument)),
)]
pub async fn show(state: web::Data<AppState>) -> HttpResponse {
    let mut doc = DESCRIPTION.clone();
    doc.servers = Some(vec![Server::new(state.settings.server.public_url.as_str().trim_end_matches('/'))]);
    HttpResponse::Ok().insert_header((actix_web::http::header::CACHE_CONTROL, "public, max-age=300")).json(doc)
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::super::ENDPOINTS;
    use super::*;

    fn document() -> Value {
        serde_json::to_value(description()).unwrap()
    }

    fn operations(doc: &Value) -> Vec<(String, String)> {
        let mut found = Vec::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, _) in item.as_object().unwrap() {
                if ["get", "put", "post", "delete", "patch", "head", "options", "trace"].contains(&method.as_str()) {
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
        assert_eq!(operations(&document()), table);
    }

    #[test]
    fn is_openapi_3_1_with_the_error_shape_and_security_schemes() {
        let doc = document();
        assert_eq!(doc["openapi"], "3.1.0");
        let error = &doc["components"]["schemas"]["ErrorBody"];
        assert_eq!(error["required"], serde_json::json!(["error", "message"]));
        let schemes = &doc["components"]["securitySchemes"];
        assert_eq!(schemes["cookie"]["in"], "cookie");
        assert_eq!(schemes["cookie"]["name"], "doorman_access");
        assert_eq!(schemes["csrf"]["in"], "header");
        assert_eq!(schemes["csrf"]["name"], "X-CSRFToken");
        assert_eq!(schemes["bearer"]["scheme"], "bearer");
        assert_eq!(schemes["basic"]["scheme"], "basic");
    }

    /// Every guarded route names its scope in each way in, needs a credential,
    /// and asks for the CSRF header beside the cookie on unsafe methods;
    /// every operation documents its errors in the SPEC's shape.
    #[test]
    fn scopes_csrf_and_errors_match_the_route_table() {
        let doc = document();
        for endpoint in ENDPOINTS {
            let operation = &doc["paths"][endpoint.path][endpoint.method.as_str().to_lowercase()];
            let name = format!("{} {}", endpoint.method, endpoint.path);
            let security = operation["security"].as_array().cloned().unwrap_or_default();
            if let Some(scope) = endpoint.scope {
                assert!(!security.is_empty(), "{name}: no security requirement");
                for requirement in &security {
                    let requirement = requirement.as_object().unwrap();
                    assert!(!requirement.is_empty(), "{name}: anonymous access documented behind a guard");
                    let credentials: Vec<_> = requirement.iter().filter(|(k, _)| k.as_str() != "csrf").collect();
                    for (scheme, scopes) in credentials {
                        assert!(
                            scopes.as_array().unwrap().iter().any(|s| s == scope.as_str()),
                            "{name}: {scheme} does not name the scope {scope}"
                        );
                    }
                }
            }
            let unsafe_method = !matches!(endpoint.method.as_str(), "GET" | "HEAD" | "OPTIONS");
            for requirement in &security {
                let requirement = requirement.as_object().unwrap();
                if unsafe_method && (requirement.contains_key("cookie") || requirement.contains_key("session")) {
                    assert!(requirement.contains_key("csrf"), "{name}: cookie without the CSRF header");
                }
            }
            for (status, response) in operation["responses"].as_object().unwrap() {
                if status.starts_with('4') || status.starts_with('5') {
                    let schema = &response["content"]["application/json"]["schema"]["$ref"];
                    assert_eq!(schema, "#/components/schemas/ErrorBody", "{name}: {status} is not an ErrorBody");
                }
            }
        }
    }
}
