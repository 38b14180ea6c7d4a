//! The `signing_keys` table: doorman's own JWT signing keys, the private
//! half encrypted, shared by every instance.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::signing_keys;
use super::DbConnection;

#[derive(Debug, Clone, Queryable, Selectable, Insertable, Identifiable)]
#[diesel(table_name = signing_keys, primary_key(kid))]
pub struct SigningKeyRow {
    pub kid: String,
    pub alg: String,
    pub private_key_enc: String,
    pub public_jwk: String,
    pub created_at: NaiveDateTime,
    pub active_from: NaiveDateTime,
    pub retired_at: Option<NaiveDateTime>,
    pub publish_until: Option<NaiveDateTime>,
}

pub fn insert(conn: &mut DbConnection, row: &SigningKeyRow) -> QueryResult<()> {
    diesel::insert_into(signing_keys::table).values(row).execute(conn).map(|_| ())
}

/// Every key, oldest first.
pub fn all(conn: &mut DbConnection) -> QueryResult<Vec<SigningKeyRow>> {
    signing_keys::table.order(signing_keys::created_at.asc()).select(SigningKeyRow::as_select()).load(conn)
}

/// Retires every key but `kid`, keeping it published until `publish_until`.
pub fn retire_others(conn: &mut DbConnection, kid: &str, at: NaiveDateTime, publish_until: NaiveDateTime) -> QueryResult<usize> {
    diesel::update(signing_keys::table.filter(signing_keys::kid.ne(kid)).filter(signing_keys::retired_at.is_null()))
        .set((signing_keys::retired_at.eq(Some(at)), signing_keys::publish_until.eq(Some(publish_until))))
        .execute(conn)
}

/// Deletes the keys whose publication ended before `now`; their tokens have all expired.
pub fn delete_unpublished(conn: &mut DbConnection, now: NaiveDateTime) -> QueryResult<usize> {
    diesel::delete(signing_keys::table.filter(signing_keys::publish_until.lt(now))).execute(conn)
}
