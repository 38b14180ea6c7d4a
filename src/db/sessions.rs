//! The `sessions` table: browser sessions, stored by the hash of their cookie.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::sessions;
use super::{DbConnection, Prepared};

/// One browser session. A `None` is stored as `NULL`, so its `INSERT` has
/// one shape, which diesel keeps prepared by its type.
#[derive(Debug, Clone, Queryable, Selectable, Insertable, Identifiable)]
#[diesel(table_name = sessions, treat_none_as_default_value = false)]
pub struct SessionRow {
    pub id: String,
    pub user_id: String,
    pub token_hash: String,
    pub provider_id: Option<String>,
    pub provider_sid: Option<String>,
    pub id_token_enc: Option<String>,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
    pub revoked_at: Option<NaiveDateTime>,
    /// How it started: `password` or `sso:<provider id>`.
    pub method: String,
    /// The client's address at sign-in.
    pub ip: Option<String>,
    /// The client's user agent at sign-in.
    pub user_agent: Option<String>,
    /// The last sign-in or refresh.
    pub last_seen_at: NaiveDateTime,
}

impl SessionRow {
    pub fn is_live(&self, now: NaiveDateTime) -> bool {
        self.revoked_at.is_none() && self.expires_at > now
    }
}

pub fn insert(conn: &mut DbConnection, row: &SessionRow) -> QueryResult<()> {
    diesel::insert_into(sessions::table).values(row).execute(conn).map(|_| ())
}

pub fn find_by_hash(conn: &mut DbConnection, hash: &str) -> QueryResult<Option<SessionRow>> {
    sessions::table.filter(sessions::token_hash.eq(hash)).select(SessionRow::as_select()).first(conn).optional()
}

pub fn find(conn: &mut DbConnection, id: &str) -> QueryResult<Option<SessionRow>> {
    sessions::table.find(id).select(SessionRow::as_select()).first(conn).optional()
}

/// The live sessions of a user at `now`, newest first.
pub fn live_for_user(conn: &mut DbConnection, user_id: &str, now: NaiveDateTime) -> QueryResult<Vec<SessionRow>> {
    sessions::table
        .filter(sessions::user_id.eq(user_id))
        .filter(sessions::revoked_at.is_null())
        .filter(sessions::expires_at.gt(now))
        .order((sessions::created_at.desc(), sessions::id.asc()))
        .select(SessionRow::as_select())
        .load(conn)
}

/// Records a refresh of session `id`; whether the session exists.
pub fn touch(conn: &mut DbConnection, id: &str, at: NaiveDateTime) -> QueryResult<bool> {
    let update = diesel::update(sessions::table.find(id)).set(sessions::last_seen_at.eq(at));
    Ok(Prepared(update.returning(sessions::id)).get_optional::<String>(conn)?.is_some())
}

pub fn revoke(conn: &mut DbConnection, id: &str, now: NaiveDateTime) -> QueryResult<usize> {
    diesel::update(sessions::table.find(id).filter(sessions::revoked_at.is_null()))
        .set(sessions::revoked_at.eq(Some(now)))
        .execute(conn)
}

/// Ends every live session of a user except `keep`; returns their ids.
pub fn revoke_all_for_user(
    conn: &mut DbConnection,
    user_id: &str,
    keep: Option<&str>,
    now: NaiveDateTime,
) -> QueryResult<Vec<String>> {
    let keep = keep.unwrap_or("");
    let ids: Vec<String> = sessions::table
        .filter(sessions::user_id.eq(user_id))
        .filter(sessions::revoked_at.is_null())
        .filter(sessions::id.ne(keep))
        .select(sessions::id)
        .load(conn)?;
    diesel::update(sessions::table.filter(sessions::id.eq_any(&ids))).set(sessions::revoked_at.eq(Some(now))).execute(conn)?;
    Ok(ids)
}

/// Live sessions opened at `provider_id` with the provider's session id `sid`.
pub fn find_by_provider_sid(conn: &mut DbConnection, provider_id: &str, sid: &str) -> QueryResult<Vec<SessionRow>> {
    sessions::table
        .filter(sessions::provider_id.eq(provider_id))
        .filter(sessions::provider_sid.eq(sid))
        .filter(sessions::revoked_at.is_null())
        .select(SessionRow::as_select())
        .load(conn)
}
