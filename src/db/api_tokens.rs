//! The `api_tokens` table: bearer tokens for SDKs, stored by hash.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{api_tokens, users};
use super::{DbConnection, Prepared};

#[derive(Debug, Clone, Queryable, Selectable, Insertable, Identifiable)]
#[diesel(table_name = api_tokens)]
pub struct ApiTokenRow {
    pub id: String,
    pub user_id: String,
    pub name: String,
    pub token_hash: String,
    pub scopes: String,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
    pub last_used_at: Option<NaiveDateTime>,
    pub revoked_at: Option<NaiveDateTime>,
}

pub fn insert(conn: &mut DbConnection, row: &ApiTokenRow) -> QueryResult<()> {
    diesel::insert_into(api_tokens::table).values(row).execute(conn).map(|_| ())
}

pub fn find_by_hash(conn: &mut DbConnection, hash: &str) -> QueryResult<Option<ApiTokenRow>> {
    api_tokens::table.filter(api_tokens::token_hash.eq(hash)).select(ApiTokenRow::as_select()).first(conn).optional()
}

pub fn find(conn: &mut DbConnection, id: &str) -> QueryResult<Option<ApiTokenRow>> {
    api_tokens::table.find(id).select(ApiTokenRow::as_select()).first(conn).optional()
}

/// Live tokens (neither revoked nor expired at `now`) of one user, or of
/// everyone, newest first, each with its user's name.
pub fn list(conn: &mut DbConnection, user_id: Option<&str>, now: NaiveDateTime) -> QueryResult<Vec<(ApiTokenRow, String)>> {
    let mut query = api_tokens::table
        .inner_join(users::table)
        .filter(api_tokens::revoked_at.is_null())
        .filter(api_tokens::expires_at.gt(now))
        .into_boxed();
    if let Some(user_id) = user_id {
        query = query.filter(api_tokens::user_id.eq(user_id.to_string()));
    }
    query
        .order((api_tokens::created_at.desc(), api_tokens::id.asc()))
        .select((ApiTokenRow::as_select(), users::username))
        .load(conn)
}

pub fn revoke(conn: &mut DbConnection, id: &str, now: NaiveDateTime) -> QueryResult<usize> {
    diesel::update(api_tokens::table.find(id).filter(api_tokens::revoked_at.is_null()))
        .set(api_tokens::revoked_at.eq(Some(now)))
        .execute(conn)
}

/// Records a use of token `id`; whether the token exists.
pub fn touch(conn: &mut DbConnection, id: &str, at: NaiveDateTime) -> QueryResult<bool> {
    let update = diesel::update(api_tokens::table.find(id)).set(api_tokens::last_used_at.eq(Some(at)));
    Ok(Prepared(update.returning(api_tokens::id)).get_optional::<String>(conn)?.is_some())
}

/// Revokes every live token of a user; returns their hashes.
pub fn revoke_all_for_user(conn: &mut DbConnection, user_id: &str, now: NaiveDateTime) -> QueryResult<Vec<String>> {
    let rows: Vec<(String, String)> = api_tokens::table
        .filter(api_tokens::user_id.eq(user_id))
        .filter(api_tokens::revoked_at.is_null())
        .select((api_tokens::id, api_tokens::token_hash))
        .load(conn)?;
    let ids: Vec<&str> = rows.iter().map(|(id, _)| id.as_str()).collect();
    diesel::update(api_tokens::table.filter(api_tokens::id.eq_any(&ids)))
        .set(api_tokens::revoked_at.eq(Some(now)))
        .execute(conn)?;
    Ok(rows.into_iter().map(|(_, hash)| hash).collect())
}
