//! `GET /healthz`.

use actix_web::HttpResponse;
use serde::Serialize;

/// The body of `GET /healthz` (schema only).
#[derive(Serialize, utoipa::ToSchema)]
pub struct Health {
    /// Always `ok`.
    #[schema(example = "ok")]
    pub status: String,
}

/// Liveness: 200 whenever doorman can serve; touches nothing.
#[utoipa::path(get, path = "/healthz", tag = "service", responses((status = 200, description = "Alive", body = Health)))]
pub async fn check() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}
