//! `/audit-events`: the audit trail, for administrators.

use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::NO_STORE;
use crate::http::error::ApiError;
use crate::http::state::AppState;
use crate::identity::audit::ListQuery;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Query {
    username: Option<String>,
    kind: Option<String>,
    since: Option<String>,
    before: Option<String>,
    limit: Option<i64>,
    /// The `next` of the previous page.
    cursor: Option<String>,
}

/// `GET /audit-events?username=&kind=&since=&before=&limit=&cursor=`: newest first.
pub async fn list(state: web::Data<AppState>, query: web::Query<Query>) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let query =
        ListQuery { username: q.username, kind: q.kind, since: q.since, before: q.before, limit: q.limit, cursor: q.cursor };
    let page = state.identity.audit.list(query).await?;
    Ok(HttpResponse::Ok().insert_header(NO_STORE).json(page))
}
