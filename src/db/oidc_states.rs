//! The `used_oidc_states` table: each sign-in `state` may be redeemed once;
//! back-channel logout tokens' `jti`s are kept here too (under a
//! domain-separated hash, see `sso::logout`).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::used_oidc_states;
use super::DbConnection;

/// Whether `state_hash` was already redeemed.
pub fn is_used(conn: &mut DbConnection, state_hash: &str) -> QueryResult<bool> {
    let found = used_oidc_states::table
        .filter(used_oidc_states::state_hash.eq(state_hash))
        .select(used_oidc_states::state_hash)
        .first::<String>(conn)
        .optional()?;
    Ok(found.is_some())
}

/// The hashes kept until after `now`.
pub fn unexpired(conn: &mut DbConnection, now: NaiveDateTime) -> QueryResult<Vec<String>> {
    used_oidc_states::table.filter(used_oidc_states::expires_at.ge(now)).select(used_oidc_states::state_hash).load(conn)
}

/// Forgets the states whose flow can no longer finish.
pub fn purge_expired(conn: &mut DbConnection, now: NaiveDateTime) -> QueryResult<usize> {
    diesel::delete(used_oidc_states::table.filter(used_oidc_states::expires_at.lt(now))).execute(conn)
}

/// Records `state_hash` as used until `expires_at`, in one statement.
/// `Ok(false)` when it already was (a replay), including by a transaction
/// that redeemed the same state at the same moment and committed first.
pub fn mark_used(conn: &mut DbConnection, state_hash: &str, expires_at: NaiveDateTime) -> QueryResult<bool> {
    let row = (used_oidc_states::state_hash.eq(state_hash), used_oidc_states::expires_at.eq(expires_at));
    let inserted = match conn {
        DbConnection::Postgresql(pg) => {
            diesel::insert_into(used_oidc_states::table).values(row).on_conflict_do_nothing().execute(pg)?
        }
        // The same on SQLite; unlike `ON CONFLICT`, diesel keeps it prepared by its type.
        DbConnection::Sqlite(lite) => diesel::insert_or_ignore_into(used_oidc_states::table).values(row).execute(lite)?,
    };
    Ok(inserted == 1)
}
