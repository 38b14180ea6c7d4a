//! The `users` table: local and external accounts. Usernames are unique
//! without regard to case (a `lower(username)` unique index), and every
//! lookup by name ignores case too.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{external_identities, users};
use super::{DbConnection, Prepared};

diesel::define_sql_function!(fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text);

/// The values of `users.status`.
pub mod status {
    /// May sign in.
    pub const ACTIVE: &str = "active";
    /// Waits for an administrator's approval (`approval = "admin"`).
    pub const PENDING: &str = "pending";
    /// Refused at every sign-in; every credential ended.
    pub const DISABLED: &str = "disabled";
}

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
    /// `active`, `pending` or `disabled` (see [`status`]).
    pub status: String,
    pub last_login_at: Option<NaiveDateTime>,
}

impl UserRow {
    /// Whether the user may hold credentials now.
    pub fn is_active(&self) -> bool {
        self.status == status::ACTIVE
    }
}

/// A user with the latest `valid_until` of their provider identities (if
/// external) and the ids of the providers they sign in with.
#[derive(Debug, Clone)]
pub struct UserView {
    pub user: UserRow,
    pub valid_until: Option<NaiveDateTime>,
    pub providers: Vec<String>,
}

pub fn insert(conn: &mut DbConnection, row: &UserRow) -> QueryResult<()> {
    diesel::insert_into(users::table).values(row).execute(conn).map(|_| ())
}

/// The user named `name`, whatever its case.
pub fn find_by_username(conn: &mut DbConnection, name: &str) -> QueryResult<Option<UserRow>> {
    users::table.filter(lower(users::username).eq(name.to_ascii_lowercase())).select(UserRow::as_select()).first(conn).optional()
}

pub fn find(conn: &mut DbConnection, id: &str) -> QueryResult<Option<UserRow>> {
    users::table.find(id).select(UserRow::as_select()).first(conn).optional()
}

/// Whether `name` is taken, whatever its case.
/// The username of user `id`.
pub fn username_of(conn: &mut DbConnection, id: &str) -> QueryResult<Option<String>> {
    users::table.find(id).select(users::username).first(conn).optional()
}

pub fn username_taken(conn: &mut DbConnection, name: &str) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(users::table.filter(lower(users::username).eq(name.to_ascii_lowercase()))))
        .get_result(conn)
}

/// What `GET /users` asks for.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub status: Option<String>,
    /// Part of a username or e-mail, any case.
    pub q: Option<String>,
    /// Only usernames after this one.
    pub after: Option<String>,
    pub limit: i64,
}

/// Users by username, filtered, with their identities' `valid_until` and providers.
pub fn list(conn: &mut DbConnection, filter: &ListFilter) -> QueryResult<Vec<UserView>> {
    let mut query = users::table.into_boxed();
    if let Some(status) = &filter.status {
        query = query.filter(users::status.eq(status.clone()));
    }
    if let Some(q) = &filter.q {
        let escaped = q.to_ascii_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
        let pattern = format!("%{escaped}%");
        query = query.filter(
            lower(users::username)
                .like(pattern.clone())
                .escape('\\')
                .or(lower(users::email.assume_not_null()).like(pattern).escape('\\')),
        );
    }
    if let Some(after) = &filter.after {
        query = query.filter(users::username.gt(after.clone()));
    }
    let rows: Vec<UserRow> = query.order(users::username.asc()).limit(filter.limit).select(UserRow::as_select()).load(conn)?;
    with_identities(conn, rows)
}

/// Adds each user's identities (latest `valid_until`, provider ids).
fn with_identities(conn: &mut DbConnection, rows: Vec<UserRow>) -> QueryResult<Vec<UserView>> {
    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    let identities: Vec<IdentitySummary> = external_identities::table
        .filter(external_identities::user_id.eq_any(&ids))
        .order(external_identities::created_at.asc())
        .select(IDENTITY_SUMMARY)
        .load(conn)?;
    Ok(rows.into_iter().map(|user| summarised(user, &identities)).collect())
}

/// (user id, provider id, valid until) of an identity.
type IdentitySummary = (String, String, NaiveDateTime);
const IDENTITY_SUMMARY: (external_identities::user_id, external_identities::provider_id, external_identities::valid_until) =
    (external_identities::user_id, external_identities::provider_id, external_identities::valid_until);

/// `user` with the latest `valid_until` and the providers (first linked
/// first) of those of `identities` that are theirs.
fn summarised(user: UserRow, identities: &[IdentitySummary]) -> UserView {
    let mine = identities.iter().filter(|(uid, _, _)| *uid == user.id);
    let valid_until = mine.clone().map(|(_, _, vu)| *vu).max();
    let mut providers: Vec<String> = Vec::new();
    for (_, provider, _) in mine {
        if !providers.contains(provider) {
            providers.push(provider.clone());
        }
    }
    UserView { user, valid_until, providers }
}

/// The view of one user row: one statement with a fixed text (prepared
/// once per connection), unlike a listing's `IN (...)`.
pub fn view_of(conn: &mut DbConnection, user: UserRow) -> QueryResult<UserView> {
    let identities: Vec<IdentitySummary> = external_identities::table
        .filter(external_identities::user_id.eq(&user.id))
        .order(external_identities::created_at.asc())
        .select(IDENTITY_SUMMARY)
        .load(conn)?;
    Ok(summarised(user, &identities))
}

/// The user with their identities' latest `valid_until` and providers.
pub fn view_by_id(conn: &mut DbConnection, id: &str) -> QueryResult<Option<UserView>> {
    find(conn, id)?.map(|row| view_of(conn, row)).transpose()
}

pub fn set_password_hash(conn: &mut DbConnection, id: &str, hash: &str, now: NaiveDateTime) -> QueryResult<usize> {
    diesel::update(users::table.find(id)).set((users::password_hash.eq(Some(hash)), users::updated_at.eq(now))).execute(conn)
}

/// Records a sign-in through a provider of user `id`: what the provider
/// says of them, and `last_login_at` when they are active (a pending or
/// disabled user does not sign in). The row as it is now, in one statement.
pub fn record_sso_sign_in(
    conn: &mut DbConnection,
    id: &str,
    email: Option<&str>,
    display_name: Option<&str>,
    now: NaiveDateTime,
) -> QueryResult<Option<UserRow>> {
    use diesel::dsl::case_when;
    use diesel::sql_types::{Nullable, Timestamp};
    let last_login =
        case_when(users::status.eq(status::ACTIVE), Some(now).into_sql::<Nullable<Timestamp>>()).otherwise(users::last_login_at);
    let update = diesel::update(users::table.find(id)).set((
        users::email.eq(email),
        users::display_name.eq(display_name),
        users::updated_at.eq(now),
        users::last_login_at.eq(last_login),
    ));
    // `as_returning` names its backend, so one statement per backend.
    match conn {
        DbConnection::Postgresql(pg) => Prepared(update.returning(UserRow::as_returning())).get_result(pg).optional(),
        DbConnection::Sqlite(lite) => Prepared(update.returning(UserRow::as_returning())).get_result(lite).optional(),
    }
}

/// What an administrator (or a provider's `admin_groups`) may change.
#[derive(Debug, Clone, Default, AsChangeset)]
#[diesel(table_name = users)]
pub struct UserChanges {
    pub email: Option<Option<String>>,
    pub is_admin: Option<bool>,
    pub channel: Option<String>,
    pub status: Option<String>,
    pub updated_at: Option<NaiveDateTime>,
}

pub fn update(conn: &mut DbConnection, id: &str, changes: &UserChanges) -> QueryResult<usize> {
    diesel::update(users::table.find(id)).set(changes).execute(conn)
}

/// Sets the admin flag of user `id`; whether it changed.
pub fn set_admin(conn: &mut DbConnection, id: &str, is_admin: bool) -> QueryResult<bool> {
    let changed = diesel::update(users::table.find(id).filter(users::is_admin.ne(is_admin)))
        .set(users::is_admin.eq(is_admin))
        .execute(conn)?;
    Ok(changed > 0)
}

/// Records a password sign-in of user `id`; whether the user exists.
pub fn record_login(conn: &mut DbConnection, id: &str, now: NaiveDateTime) -> QueryResult<bool> {
    let update = diesel::update(users::table.find(id)).set(users::last_login_at.eq(Some(now)));
    Ok(Prepared(update.returning(users::id)).get_optional::<String>(conn)?.is_some())
}

pub fn delete(conn: &mut DbConnection, id: &str) -> QueryResult<usize> {
    diesel::delete(users::table.find(id)).execute(conn)
}

/// The active administrators other than `except`; on PostgreSQL their rows
/// are locked until the transaction ends, so two demotions at once cannot
/// both leave the other as the last.
pub fn other_active_admins(conn: &mut DbConnection, except: &str) -> QueryResult<i64> {
    let query = users::table
        .filter(users::is_admin.eq(true))
        .filter(users::status.eq(status::ACTIVE))
        .filter(users::id.ne(except))
        .select(users::id);
    let ids: Vec<String> = match conn {
        DbConnection::Postgresql(pg) => query.for_update().load(pg)?,
        DbConnection::Sqlite(lite) => query.load(lite)?,
    };
    Ok(ids.len() as i64)
}

pub fn count(conn: &mut DbConnection) -> QueryResult<i64> {
    users::table.count().get_result(conn)
}
