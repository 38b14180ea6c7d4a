//! The `audit_events` table: what happened, newest first, kept for `audit.retention`.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::audit_events;
use super::DbConnection;

/// One stored audit event; `detail` is a JSON object.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = audit_events)]
pub struct AuditRow {
    pub id: String,
    pub at: NaiveDateTime,
    pub kind: String,
    pub outcome: String,
    pub username: Option<String>,
    pub actor: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub detail: String,
}

pub fn insert(conn: &mut DbConnection, row: &AuditRow) -> QueryResult<()> {
    diesel::insert_into(audit_events::table).values(row).execute(conn).map(|_| ())
}

pub fn insert_all(conn: &mut DbConnection, rows: &[AuditRow]) -> QueryResult<()> {
    for row in rows {
        insert(conn, row)?;
    }
    Ok(())
}

/// Which events a listing wants.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub username: Option<String>,
    pub kind: Option<String>,
    /// At or after.
    pub since: Option<NaiveDateTime>,
    /// Strictly before.
    pub before: Option<NaiveDateTime>,
    /// Resume after this `(at, id)`: the last event of the previous page.
    pub after: Option<(NaiveDateTime, String)>,
    pub limit: i64,
}

/// Events matching `filter`, newest first (ties by id, descending), walking
/// one of the `(…, at DESC, id DESC)` indexes.
pub fn list(conn: &mut DbConnection, filter: &Filter) -> QueryResult<Vec<AuditRow>> {
    use audit_events as t;
    let mut query = t::table.into_boxed();
    if let Some(name) = &filter.username {
        query = query.filter(t::username.eq(name.clone()));
    }
    if let Some(k) = &filter.kind {
        query = query.filter(t::kind.eq(k.clone()));
    }
    if let Some(at) = filter.since {
        query = query.filter(t::at.ge(at));
    }
    if let Some(at) = filter.before {
        query = query.filter(t::at.lt(at));
    }
    if let Some((at, last)) = &filter.after {
        // `at <= t` alone is an index condition; the OR then drops the ties already shown.
        query = query.filter(t::at.le(*at)).filter(t::at.lt(*at).or(t::id.lt(last.clone())));
    }
    query.order((t::at.desc(), t::id.desc())).limit(filter.limit).select(AuditRow::as_select()).load(conn)
}

/// Deletes at most `batch` events older than `cutoff`; how many went.
pub fn delete_before(conn: &mut DbConnection, cutoff: NaiveDateTime, batch: i64) -> QueryResult<usize> {
    use audit_events as t;
    let ids: Vec<String> = t::table.filter(t::at.lt(cutoff)).order(t::at.asc()).select(t::id).limit(batch).load(conn)?;
    if ids.is_empty() {
        return Ok(0);
    }
    diesel::delete(t::table.filter(t::id.eq_any(&ids))).execute(conn)
}
