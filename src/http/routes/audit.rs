//! `/audit-events`: the audit trail, for administrators.

use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::NO_STORE;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::state::AppState;
use crate::identity::audit::{ListQuery, Page as AuditPage};

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct Query {
    /// Events about this user.
    username: Option<String>,
    /// Events of this kind, e.g. `sign_in`.
    kind: Option<String>,
    /// Events at or after this time (RFC 3339).
    since: Option<String>,
    /// Events before this time (RFC 3339).
    before: Option<String>,
    /// Page size: 1 to 1000, default 100.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
    /// The `next` of the previous page.
    cursor: Option<String>,
}

/// `GET /audit-events?username=&kind=&since=&before=&limit=&cursor=`: newest first.
#[utoipa::path(
    get,
    path = "/audit-events",
    tag = "audit",
    params(Query),
    responses(
        (status = 200, description = "A page of events, newest first", body = AuditPage),
        (status = 400, description = "`invalid_query` or `invalid_input` (a bad time, limit or cursor)", body = ErrorBody),
    ),
)]
pub async fn list(state: web::Data<AppState>, query: web::Query<Query>) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let query =
        ListQuery { username: q.username, kind: q.kind, since: q.since, before: q.before, limit: q.limit, cursor: q.cursor };
    let page = state.identity.audit.list(query).await?;
    Ok(HttpResponse::Ok().insert_header(NO_STORE).json(page))
}
