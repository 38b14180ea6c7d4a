//! The `external_identities` table: a user's account at an identity
//! provider, keyed by (issuer, subject), with `valid_until` and the
//! provider's refresh token, encrypted.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::external_identities as ei;
use super::DbConnection;

#[derive(Debug, Clone, Queryable, Selectable, Insertable, Identifiable)]
#[diesel(table_name = ei)]
pub struct IdentityRow {
    pub id: String,
    pub user_id: String,
    pub provider_id: String,
    pub issuer: String,
    pub subject: String,
    pub valid_until: NaiveDateTime,
    pub refresh_token_enc: Option<String>,
    pub refresh_state: String,
    pub refresh_failures: i32,
    pub next_refresh_at: Option<NaiveDateTime>,
    pub lease_until: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

pub fn insert(conn: &mut DbConnection, row: &IdentityRow) -> QueryResult<()> {
    diesel::insert_into(ei::table).values(row).execute(conn).map(|_| ())
}

pub fn find_by_subject(conn: &mut DbConnection, issuer: &str, subject: &str) -> QueryResult<Option<IdentityRow>> {
    ei::table
        .filter(ei::issuer.eq(issuer))
        .filter(ei::subject.eq(subject))
        .select(IdentityRow::as_select())
        .first(conn)
        .optional()
}

pub fn find_by_user(conn: &mut DbConnection, user_id: &str) -> QueryResult<Option<IdentityRow>> {
    ei::table.filter(ei::user_id.eq(user_id)).select(IdentityRow::as_select()).first(conn).optional()
}

/// Records a fresh sign-in: `valid_until`, the refresh token (if any) and
/// when to refresh next.
pub fn record_login(
    conn: &mut DbConnection,
    id: &str,
    valid_until: NaiveDateTime,
    refresh_token_enc: Option<&str>,
    next_refresh_at: Option<NaiveDateTime>,
) -> QueryResult<usize> {
    let state = if refresh_token_enc.is_some() { "active" } else { "none" };
    diesel::update(ei::table.find(id))
        .set((
            ei::valid_until.eq(valid_until),
            ei::refresh_token_enc.eq(refresh_token_enc),
            ei::refresh_state.eq(state),
            ei::refresh_failures.eq(0),
            ei::next_refresh_at.eq(next_refresh_at),
            ei::lease_until.eq(None::<NaiveDateTime>),
            ei::updated_at.eq(super::now()),
        ))
        .execute(conn)
}
