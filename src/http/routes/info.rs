//! `GET /info`: version and the sign-in methods the front end offers.

use actix_web::{web, HttpResponse};
use serde::Serialize;

use crate::http::state::AppState;

#[derive(Serialize, utoipa::ToSchema)]
pub struct Info {
    pub version: &'static str,
    pub auth: AuthMethods,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct AuthMethods {
    pub password: bool,
    pub oidc: Vec<ProviderEntry>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ProviderEntry {
    pub id: String,
    pub name: String,
    pub login_url: String,
}

/// What `/info` and `/login` show; one entry per configured provider.
pub fn auth_methods(state: &AppState) -> AuthMethods {
    let settings = &state.settings;
    AuthMethods {
        password: settings.auth.password_login,
        oidc: settings
            .providers
            .iter()
            .map(|p| ProviderEntry {
                id: p.id.clone(),
                name: p.name.clone(),
                login_url: settings.server.url_for(&format!("/oidc/authenticate?provider={}", p.id)),
            })
            .collect(),
    }
}

/// Version and the sign-in methods (one entry per single sign-on provider, for its button).
#[utoipa::path(get, path = "/info", tag = "service", responses((status = 200, description = "Version and sign-in methods", body = Info)))]
pub async fn show(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(Info { version: env!("CARGO_PKG_VERSION"), auth: auth_methods(&state) })
}
