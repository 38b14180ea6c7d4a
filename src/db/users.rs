//! The `users` table: local and external accounts.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{external_identities, users};
use super::DbConnection;

#[derive(Debug, Clone, Queryable, Selectable, Insertable, Identifiable)]
#[diesel(table_name = users)]
pub struct UserRow {
    pub id: String,
    pub username: String,
    pub email: Option<String>,
    pub display_name: Option<String>,
    pub password_hash: Option<String>,
    pub is_admin: bool,
    pub is_external: bool,
    pub channel: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// A user with the `valid_until` of their provider identity, if external.
#[derive(Debug, Clone)]
pub struct UserView {
    pub user: UserRow,
    pub valid_until: Option<NaiveDateTime>,
}

pub fn insert(conn: &mut DbConnection, row: &UserRow) -> QueryResult<()> {
    diesel::insert_into(users::table).values(row).execute(conn).map(|_| ())
}

pub fn find_by_username(conn: &mut DbConnection, name: &str) -> QueryResult<Option<UserRow>> {
    users::table.filter(users::username.eq(name)).select(UserRow::as_select()).first(conn).optional()
}

/// The username of user `id`.
pub fn username_of(conn: &mut DbConnection, id: &str) -> QueryResult<Option<String>> {
    users::table.find(id).select(users::username).first(conn).optional()
}

pub fn username_taken(conn: &mut DbConnection, name: &str) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(users::table.filter(users::username.eq(name)))).get_result(conn)
}

/// Every user, by username, with `valid_until` for external ones.
pub fn list(conn: &mut DbConnection) -> QueryResult<Vec<UserView>> {
    let rows: Vec<(UserRow, Option<NaiveDateTime>)> = users::table
        .left_join(external_identities::table)
        .select((UserRow::as_select(), external_identities::valid_until.nullable()))
        .order(users::username.asc())
        .load(conn)?;
    Ok(rows.into_iter().map(|(user, valid_until)| UserView { user, valid_until }).collect())
}

/// The user with their identity's `valid_until`.
pub fn view_by_id(conn: &mut DbConnection, id: &str) -> QueryResult<Option<UserView>> {
    let row: Option<(UserRow, Option<NaiveDateTime>)> = users::table
        .left_join(external_identities::table)
        .filter(users::id.eq(id))
        .select((UserRow::as_select(), external_identities::valid_until.nullable()))
        .first(conn)
        .optional()?;
    Ok(row.map(|(user, valid_until)| UserView { user, valid_until }))
}

pub fn set_password_hash(conn: &mut DbConnection, id: &str, hash: &str, now: NaiveDateTime) -> QueryResult<usize> {
    diesel::update(users::table.find(id)).set((users::password_hash.eq(Some(hash)), users::updated_at.eq(now))).execute(conn)
}

pub fn update_profile(
    conn: &mut DbConnection,
    id: &str,
    email: Option<&str>,
    display_name: Option<&str>,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::update(users::table.find(id))
        .set((users::email.eq(email), users::display_name.eq(display_name), users::updated_at.eq(now)))
        .execute(conn)
}

pub fn count(conn: &mut DbConnection) -> QueryResult<i64> {
    users::table.count().get_result(conn)
}
