//! The `external_identities` table: a user's account at an identity
//! provider, keyed by (issuer, subject), with `valid_until` and the
//! provider's refresh token, encrypted.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::external_identities as ei;
use super::{DbConnection, Prepared};

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

/// The first identity of a user (a user may have several once linked).
pub fn find_by_user(conn: &mut DbConnection, user_id: &str) -> QueryResult<Option<IdentityRow>> {
    ei::table
        .filter(ei::user_id.eq(user_id))
        .order((ei::created_at.asc(), ei::id.asc()))
        .select(IdentityRow::as_select())
        .first(conn)
        .optional()
}

/// The identity of a user at provider `provider_id`.
pub fn find_by_user_provider(conn: &mut DbConnection, user_id: &str, provider_id: &str) -> QueryResult<Option<IdentityRow>> {
    ei::table
        .filter(ei::user_id.eq(user_id))
        .filter(ei::provider_id.eq(provider_id))
        .order((ei::created_at.asc(), ei::id.asc()))
        .select(IdentityRow::as_select())
        .first(conn)
        .optional()
}

/// An identity as a sign-in names it: its row, which must still be the
/// provider's account (`issuer`, `subject`).
#[derive(Debug, Clone, Copy)]
pub struct Named<'a> {
    pub id: &'a str,
    pub issuer: &'a str,
    pub subject: &'a str,
}

/// Records a sign-in through identity `named`: its new `valid_until` and
/// refresh token, its failures and lease cleared. The id of the user it
/// belongs to, or `None` when no row is that id with that issuer and
/// subject (an id remembered from an earlier sign-in, since unlinked).
pub fn record_login(
    conn: &mut DbConnection,
    named: Named<'_>,
    valid_until: NaiveDateTime,
    refresh_token_enc: Option<&str>,
    next_refresh_at: Option<NaiveDateTime>,
    now: NaiveDateTime,
) -> QueryResult<Option<String>> {
    let state = if refresh_token_enc.is_some() { refresh_state::ACTIVE } else { refresh_state::NONE };
    let row = ei::table.find(named.id).filter(ei::issuer.eq(named.issuer)).filter(ei::subject.eq(named.subject));
    let update = diesel::update(row).set((
        ei::valid_until.eq(valid_until),
        ei::refresh_token_enc.eq(refresh_token_enc),
        ei::refresh_state.eq(state),
        ei::refresh_failures.eq(0),
        ei::next_refresh_at.eq(next_refresh_at),
        ei::lease_until.eq(None::<NaiveDateTime>),
        ei::updated_at.eq(now),
    ));
    Prepared(update.returning(ei::user_id)).get_optional::<String>(conn)
}

/// How a refresh at the provider ended, as stored.
pub mod refresh_state {
    /// A refresh token is held and refreshed in the background.
    pub const ACTIVE: &str = "active";
    /// No refresh token: `valid_until` does not move until the next sign-in.
    pub const NONE: &str = "none";
    /// The provider refused the refresh (user removed or disabled).
    pub const REFUSED: &str = "refused";
}

/// Leases up to `limit` identities due for refresh (`next_refresh_at <= now`)
/// until `lease_until`. On PostgreSQL rows are taken with
/// `FOR UPDATE SKIP LOCKED`, so instances sharing a database never take the
/// same row; on SQLite an immediate transaction serialises the claim.
pub fn claim_due(
    conn: &mut DbConnection,
    now: NaiveDateTime,
    lease_until: NaiveDateTime,
    limit: i64,
) -> QueryResult<Vec<IdentityRow>> {
    match conn {
        DbConnection::Postgresql(pg) => {
            #[derive(QueryableByName)]
            struct Claimed {
                #[diesel(sql_type = diesel::sql_types::Text)]
                id: String,
            }
            let claimed: Vec<Claimed> = diesel::sql_query(
                "UPDATE external_identities SET lease_until = $1 WHERE id IN ( \
                   SELECT id FROM external_identities \
                   WHERE refresh_state = 'active' AND next_refresh_at <= $2 \
                     AND (lease_until IS NULL OR lease_until < $2) \
                   ORDER BY next_refresh_at LIMIT $3 FOR UPDATE SKIP LOCKED) \
                 RETURNING id",
            )
            .bind::<diesel::sql_types::Timestamp, _>(lease_until)
            .bind::<diesel::sql_types::Timestamp, _>(now)
            .bind::<diesel::sql_types::BigInt, _>(limit)
            .load(pg)?;
            let ids: Vec<String> = claimed.into_iter().map(|c| c.id).collect();
            ei::table.filter(ei::id.eq_any(&ids)).select(IdentityRow::as_select()).load(conn)
        }
        DbConnection::Sqlite(lite) => lite.immediate_transaction(|lite| {
            let rows: Vec<IdentityRow> = ei::table
                .filter(ei::refresh_state.eq(refresh_state::ACTIVE))
                .filter(ei::next_refresh_at.le(now))
                .filter(ei::lease_until.is_null().or(ei::lease_until.lt(now)))
                .order(ei::next_refresh_at.asc())
                .limit(limit)
                .select(IdentityRow::as_select())
                .load(lite)?;
            let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
            diesel::update(ei::table.filter(ei::id.eq_any(&ids))).set(ei::lease_until.eq(Some(lease_until))).execute(lite)?;
            Ok(rows)
        }),
    }
}

/// Ends the refresh leases on `ids` (an instance shutting down).
pub fn release_leases(conn: &mut DbConnection, ids: &[String]) -> QueryResult<usize> {
    diesel::update(ei::table.filter(ei::id.eq_any(ids)).filter(ei::lease_until.is_not_null()))
        .set(ei::lease_until.eq(None::<NaiveDateTime>))
        .execute(conn)
}

/// Leases the identity of `user_id` for an immediate refresh, if it holds a
/// refresh token and no other instance is refreshing it.
pub fn claim_user(
    conn: &mut DbConnection,
    user_id: &str,
    now: NaiveDateTime,
    lease_until: NaiveDateTime,
) -> QueryResult<Option<IdentityRow>> {
    // A linked user may have several identities: the one whose `valid_until` runs longest.
    let candidate: Option<String> = ei::table
        .filter(ei::user_id.eq(user_id))
        .filter(ei::refresh_state.eq(refresh_state::ACTIVE))
        .filter(ei::lease_until.is_null().or(ei::lease_until.lt(now)))
        .order(ei::valid_until.desc())
        .select(ei::id)
        .first(conn)
        .optional()?;
    let Some(id) = candidate else { return Ok(None) };
    let taken = diesel::update(ei::table.find(&id).filter(ei::lease_until.is_null().or(ei::lease_until.lt(now))))
        .set(ei::lease_until.eq(Some(lease_until)))
        .execute(conn)?;
    if taken == 0 {
        return Ok(None);
    }
    ei::table.find(&id).select(IdentityRow::as_select()).first(conn).optional()
}

/// A successful refresh: `valid_until` moves; a rotated refresh token replaces the old one.
pub fn refreshed(
    conn: &mut DbConnection,
    id: &str,
    valid_until: NaiveDateTime,
    rotated_token_enc: Option<&str>,
    next_refresh_at: NaiveDateTime,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    let target = ei::table.find(id);
    if let Some(token) = rotated_token_enc {
        diesel::update(target).set(ei::refresh_token_enc.eq(Some(token))).execute(conn)?;
    }
    diesel::update(target)
        .set((
            ei::valid_until.eq(valid_until),
            ei::refresh_failures.eq(0),
            ei::next_refresh_at.eq(Some(next_refresh_at)),
            ei::lease_until.eq(None::<NaiveDateTime>),
            ei::updated_at.eq(now),
        ))
        .execute(conn)
}

/// The provider refused: `valid_until` stops moving, the useless token is dropped.
pub fn refused(conn: &mut DbConnection, id: &str, now: NaiveDateTime) -> QueryResult<usize> {
    diesel::update(ei::table.find(id))
        .set((
            ei::refresh_state.eq(refresh_state::REFUSED),
            ei::refresh_token_enc.eq(None::<String>),
            ei::next_refresh_at.eq(None::<NaiveDateTime>),
            ei::lease_until.eq(None::<NaiveDateTime>),
            ei::updated_at.eq(now),
        ))
        .execute(conn)
}

/// The provider could not be reached: try again at `next_refresh_at`.
pub fn retry_later(conn: &mut DbConnection, id: &str, failures: i32, next_refresh_at: NaiveDateTime) -> QueryResult<usize> {
    diesel::update(ei::table.find(id))
        .set((
            ei::refresh_failures.eq(failures),
            ei::next_refresh_at.eq(Some(next_refresh_at)),
            ei::lease_until.eq(None::<NaiveDateTime>),
        ))
        .execute(conn)
}

/// Forgets a user's refresh token (after it was revoked at logout).
pub fn drop_refresh_token(conn: &mut DbConnection, id: &str) -> QueryResult<usize> {
    diesel::update(ei::table.find(id))
        .set((
            ei::refresh_state.eq(refresh_state::NONE),
            ei::refresh_token_enc.eq(None::<String>),
            ei::next_refresh_at.eq(None::<NaiveDateTime>),
            ei::lease_until.eq(None::<NaiveDateTime>),
        ))
        .execute(conn)
}
