//! `GET /healthz`.

use actix_web::HttpResponse;

pub async fn check() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}
