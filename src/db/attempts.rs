//! The `login_attempts` table: attempt counters in fixed windows, shared by
//! every instance on the database. Each count is taken by one statement (an
//! `INSERT ... ON CONFLICT DO UPDATE ... RETURNING`), so concurrent attempts
//! never read the same count.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Text};

use super::schema::login_attempts;
use super::DbConnection;

#[derive(QueryableByName)]
struct Counted {
    #[diesel(sql_type = Integer)]
    attempts: i32,
    #[diesel(sql_type = BigInt)]
    window_start: i64,
}

/// One counter after an attempt was added to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Count {
    /// Attempts in the current window, this one included.
    pub attempts: i32,
    /// When the window began (seconds since the epoch).
    pub window_start: i64,
}

const POSTGRES_COUNT: &str = "INSERT INTO login_attempts (key, window_start, attempts) VALUES ($1, $2, 1) \
     ON CONFLICT (key) DO UPDATE SET \
       attempts = CASE WHEN login_attempts.window_start <= $3 THEN 1 ELSE login_attempts.attempts + 1 END, \
       window_start = CASE WHEN login_attempts.window_start <= $3 THEN $2 ELSE login_attempts.window_start END \
     RETURNING attempts, window_start";

const SQLITE_COUNT: &str = "INSERT INTO login_attempts (key, window_start, attempts) VALUES (?1, ?2, 1) \
     ON CONFLICT (key) DO UPDATE SET \
       attempts = CASE WHEN login_attempts.window_start <= ?3 THEN 1 ELSE login_attempts.attempts + 1 END, \
       window_start = CASE WHEN login_attempts.window_start <= ?3 THEN ?2 ELSE login_attempts.window_start END \
     RETURNING attempts, window_start";

/// Adds one attempt to `key` at `now` (seconds) and returns the count; a
/// window that began at or before `now - window_secs` starts again at `now`.
pub fn count(conn: &mut DbConnection, key: &str, now: i64, window_secs: i64) -> QueryResult<Count> {
    let expired = now - window_secs;
    let row: Counted = match conn {
        DbConnection::Postgresql(pg) => diesel::sql_query(POSTGRES_COUNT)
            .bind::<Text, _>(key)
            .bind::<BigInt, _>(now)
            .bind::<BigInt, _>(expired)
            .get_result(pg)?,
        DbConnection::Sqlite(lite) => diesel::sql_query(SQLITE_COUNT)
            .bind::<Text, _>(key)
            .bind::<BigInt, _>(now)
            .bind::<BigInt, _>(expired)
            .get_result(lite)?,
    };
    Ok(Count { attempts: row.attempts, window_start: row.window_start })
}

/// Takes one attempt back from `key` (a success, which should not use up
/// the allowance), unless the window already went past `limit`: then
/// someone is guessing, and a burst that happens to hold the right secret
/// must not reopen the window for the rest of the burst.
pub fn refund(conn: &mut DbConnection, key: &str, limit: i32) -> QueryResult<()> {
    diesel::update(
        login_attempts::table
            .filter(login_attempts::key.eq(key))
            .filter(login_attempts::attempts.gt(0))
            .filter(login_attempts::attempts.le(limit)),
    )
    .set(login_attempts::attempts.eq(login_attempts::attempts - 1))
    .execute(conn)
    .map(|_| ())
}

/// Deletes counters whose window ended before `before` (seconds).
pub fn prune(conn: &mut DbConnection, before: i64) -> QueryResult<usize> {
    diesel::delete(login_attempts::table.filter(login_attempts::window_start.lt(before))).execute(conn)
}
