//! The `audit_events` table: what happened, newest first, kept for `audit.retention`.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::audit_events;
use super::DbConnection;

/// One stored audit event; `detail` is a JSON object. A `None` is stored as
/// `NULL`, so its `INSERT` has one shape, kept prepared by its type.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = audit_events, treat_none_as_default_value = false)]
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

/// Deletes at most `batch` events older than `cutoff`, the oldest first;
/// how many went. Both statements walk the events in `(at, id)` order, the
/// key SQLite stores them by and an index on PostgreSQL.
pub fn delete_before(conn: &mut DbConnection, cutoff: NaiveDateTime, batch: i64) -> QueryResult<usize> {
    use audit_events as t;
    let older = t::table.filter(t::at.lt(cutoff));
    let last: Option<(NaiveDateTime, String)> =
        older.order((t::at.asc(), t::id.asc())).select((t::at, t::id)).offset(batch - 1).first(conn).optional()?;
    match last {
        None => diesel::delete(older).execute(conn),
        // The batch ends at `(at, id)`: `at <= t` alone is an index condition.
        Some((at, id)) => diesel::delete(t::table.filter(t::at.le(at)).filter(t::at.lt(at).or(t::id.le(id)))).execute(conn),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::Db;

    fn event(id: &str, second: i64) -> AuditRow {
        AuditRow {
            id: id.into(),
            at: chrono::DateTime::from_timestamp(1_800_000_000 + second, 0).unwrap().naive_utc(),
            kind: "sign_in".into(),
            outcome: "success".into(),
            username: Some("dana".into()),
            actor: None,
            ip: None,
            user_agent: None,
            detail: "{}".into(),
        }
    }

    fn ids_left(conn: &mut DbConnection) -> Vec<String> {
        let all = Filter { limit: 100, ..Filter::default() };
        let mut ids: Vec<String> = list(conn, &all).unwrap().into_iter().map(|row| row.id).collect();
        ids.sort();
        ids
    }

    #[test]
    fn a_sweep_deletes_the_oldest_batch_exactly_even_among_ties() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = Db::connect_one(&crate::config::DatabaseUrl::Sqlite(dir.path().join("doorman.db"))).unwrap();
        // Three events share second 1; the batch of 3 ends among them, by id.
        let rows = [event("a", 0), event("c", 1), event("b", 1), event("d", 1), event("e", 2), event("f", 9)];
        insert_all(&mut conn, &rows).unwrap();
        let cutoff = event("", 5).at;

        assert_eq!(delete_before(&mut conn, cutoff, 3).unwrap(), 3);
        assert_eq!(ids_left(&mut conn), ["d", "e", "f"]);
        assert_eq!(delete_before(&mut conn, cutoff, 3).unwrap(), 2);
        assert_eq!(ids_left(&mut conn), ["f"], "the newer than the cutoff stays");
        assert_eq!(delete_before(&mut conn, cutoff, 3).unwrap(), 0);
    }
}
