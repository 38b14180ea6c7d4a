//! The `device_codes` table: RFC 8628 device authorization requests, their
//! codes stored only as SHA-256, from creation to the one token they yield.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::device_codes;
use super::DbConnection;

/// Waiting for the user.
pub const PENDING: &str = "pending";
/// Approved; the token is not handed out yet.
pub const APPROVED: &str = "approved";
/// Denied by the user.
pub const DENIED: &str = "denied";
/// Approved and its token handed out (once).
pub const ISSUED: &str = "issued";

#[derive(Debug, Clone, Queryable, Selectable, Insertable, Identifiable)]
#[diesel(table_name = device_codes)]
pub struct DeviceCodeRow {
    pub id: String,
    pub device_code_hash: String,
    pub user_code_hash: String,
    /// The tool's label.
    pub client_id: String,
    /// Scopes asked for; `None`: every scope the approving user holds.
    pub scopes: Option<String>,
    pub status: String,
    pub interval_secs: i32,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
    pub last_polled_at: Option<NaiveDateTime>,
    /// Who approved or denied it.
    pub user_id: Option<String>,
    /// The scopes of the token, settled at approval.
    pub granted_scopes: Option<String>,
    pub decided_at: Option<NaiveDateTime>,
}

pub fn insert(conn: &mut DbConnection, row: &DeviceCodeRow) -> QueryResult<()> {
    diesel::insert_into(device_codes::table).values(row).execute(conn).map(|_| ())
}

/// The poll's read: one lookup through the unique index on `device_code_hash`.
pub fn find_by_device_code(conn: &mut DbConnection, hash: &str) -> QueryResult<Option<DeviceCodeRow>> {
    device_codes::table.filter(device_codes::device_code_hash.eq(hash)).select(DeviceCodeRow::as_select()).first(conn).optional()
}

pub fn find_by_user_code(conn: &mut DbConnection, hash: &str) -> QueryResult<Option<DeviceCodeRow>> {
    device_codes::table.filter(device_codes::user_code_hash.eq(hash)).select(DeviceCodeRow::as_select()).first(conn).optional()
}

/// Records a poll at `at`, with the interval from now on.
pub fn polled(conn: &mut DbConnection, id: &str, at: NaiveDateTime, interval_secs: i32) -> QueryResult<usize> {
    diesel::update(device_codes::table.find(id))
        .set((device_codes::last_polled_at.eq(Some(at)), device_codes::interval_secs.eq(interval_secs)))
        .execute(conn)
}

/// Moves a pending, unexpired request to `status` (approved or denied) by
/// `user_id`; 0 rows when it was decided (or expired) meanwhile.
pub fn decide(
    conn: &mut DbConnection,
    id: &str,
    status: &str,
    user_id: &str,
    granted_scopes: Option<&str>,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::update(device_codes::table.find(id).filter(device_codes::status.eq(PENDING)).filter(device_codes::expires_at.gt(now)))
        .set((
            device_codes::status.eq(status),
            device_codes::user_id.eq(Some(user_id)),
            device_codes::granted_scopes.eq(granted_scopes),
            device_codes::decided_at.eq(Some(now)),
        ))
        .execute(conn)
}

/// Marks an approved request as handed out; 0 rows when another poll won.
pub fn claim(conn: &mut DbConnection, id: &str, now: NaiveDateTime) -> QueryResult<usize> {
    diesel::update(device_codes::table.find(id).filter(device_codes::status.eq(APPROVED)))
        .set((device_codes::status.eq(ISSUED), device_codes::last_polled_at.eq(Some(now))))
        .execute(conn)
}

/// Deletes requests that expired before `before`.
pub fn delete_expired(conn: &mut DbConnection, before: NaiveDateTime) -> QueryResult<usize> {
    diesel::delete(device_codes::table.filter(device_codes::expires_at.lt(before))).execute(conn)
}
