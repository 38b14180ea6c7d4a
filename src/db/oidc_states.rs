//! The `used_oidc_states` table: each sign-in `state` may be redeemed once;
//! back-channel logout tokens' `jti`s are kept here too (under a
//! domain-separated hash, see `sso::logout`).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::used_oidc_states;
use super::DbConnection;

/// Records `state_hash` as used. `Ok(false)` when it already was (a replay).
pub fn mark_used(conn: &mut DbConnection, state_hash: &str, expires_at: NaiveDateTime, now: NaiveDateTime) -> QueryResult<bool> {
    diesel::delete(used_oidc_states::table.filter(used_oidc_states::expires_at.lt(now))).execute(conn)?;
    // In its own (nested) transaction: inside a caller's transaction a
    // duplicate then rolls back to a savepoint instead of aborting it all.
    let inserted = conn.transaction(|conn| {
        diesel::insert_into(used_oidc_states::table)
            .values((used_oidc_states::state_hash.eq(state_hash), used_oidc_states::expires_at.eq(expires_at)))
            .execute(conn)
    });
    match inserted {
        Ok(_) => Ok(true),
        Err(diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)) => Ok(false),
        Err(e) => Err(e),
    }
}
