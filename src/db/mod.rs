//! Storage: one diesel connection type over SQLite and PostgreSQL, a pool,
//! embedded migrations, and [`Db::run`], which keeps every query off the
//! async executor.

pub mod api_tokens;
pub mod attempts;
pub mod audit_events;
pub mod clients;
pub mod device_codes;
pub mod identities;
pub mod oidc_states;
pub mod schema;
pub mod sessions;
pub mod signing_keys;
pub mod users;

use std::time::Duration;

use diesel::prelude::*;
use diesel::r2d2::{self, ManageConnection};
use diesel::{PgConnection, SqliteConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use crate::config::DatabaseUrl;

/// `database.timeout`'s default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

pub const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");
pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");

/// A connection to either backend; the URL scheme picks the variant.
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Postgresql(PgConnection),
    Sqlite(SqliteConnection),
}

/// Which database doorman runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("no database connection available")]
    Pool(#[source] r2d2::PoolError),
    /// The connection broke under the query (the server went away).
    #[error("the database connection was lost")]
    Lost(#[source] diesel::result::Error),
    #[error("query failed")]
    Query(#[from] diesel::result::Error),
    /// The database did not answer in time.
    #[error("the database did not answer in time")]
    Timeout,
    /// The runtime shut down before the query ran.
    #[error("the database task was cancelled")]
    Cancelled,
}

impl DbError {
    /// Whether the database could not be reached (a fault to answer 503, not a bug).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, DbError::Pool(_) | DbError::Lost(_) | DbError::Timeout)
    }

    /// Whether this is a unique-constraint violation (a conflict, not a fault).
    pub fn is_unique_violation(&self) -> bool {
        matches!(
            self,
            DbError::Query(diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _))
        )
    }
}

/// Opens connections for the pool, with per-backend settings.
#[derive(Debug)]
pub struct Manager {
    url: String,
    backend: Backend,
}

impl Manager {
    fn new(url: &DatabaseUrl, timeout: Duration) -> Self {
        match url {
            DatabaseUrl::Sqlite(path) => Self { url: path.display().to_string(), backend: Backend::Sqlite },
            DatabaseUrl::Postgres(url) => Self { url: with_connect_timeout(url, timeout), backend: Backend::Postgres },
        }
    }
}

/// libpq's `connect_timeout` (whole seconds, at least 1) unless the URL sets
/// one, so connecting to an unreachable host gives up within `database.timeout`.
fn with_connect_timeout(url: &str, timeout: Duration) -> String {
    if url.contains("connect_timeout=") {
        return url.to_string();
    }
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}connect_timeout={}", timeout.as_secs().max(1))
}

/// Creates the SQLite file, readable by its owner only, when it does not
/// exist yet. SQLite gives its `-wal` and `-shm` files the database file's
/// permissions, so they are private too.
fn create_private(path: &str) -> std::io::Result<()> {
    if path == ":memory:" || path.starts_with("file:") || std::path::Path::new(path).exists() {
        return Ok(());
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path).map(|_| ())
}

/// A pooled connection, and whether a query found it broken (then the pool
/// drops it instead of handing it out again).
pub struct Pooled {
    conn: DbConnection,
    broken: bool,
}

impl std::ops::Deref for Pooled {
    type Target = DbConnection;
    fn deref(&self) -> &DbConnection {
        &self.conn
    }
}

impl std::ops::DerefMut for Pooled {
    fn deref_mut(&mut self) -> &mut DbConnection {
        &mut self.conn
    }
}

/// Whether `err` says the connection itself failed (the server stopped or
/// the network went), rather than the query.
fn connection_failed(err: &diesel::result::Error) -> bool {
    use diesel::result::{DatabaseErrorKind as K, Error as E};
    match err {
        E::DatabaseError(K::ClosedConnection | K::UnableToSendCommand, _) => true,
        E::DatabaseError(K::Unknown, info) => {
            let message = info.message();
            message.contains("terminating connection")
                || message.contains("server closed the connection")
                || message.contains("no connection to the server")
                || message.contains("connection to server")
                || message.contains("the database system is shutting down")
                || message.contains("the database system is starting up")
        }
        _ => false,
    }
}

impl ManageConnection for Manager {
    type Connection = Pooled;
    type Error = r2d2::Error;

    fn connect(&self) -> Result<Pooled, r2d2::Error> {
        self.connect_one().map(|conn| Pooled { conn, broken: false })
    }

    fn is_valid(&self, conn: &mut Pooled) -> Result<(), r2d2::Error> {
        diesel::sql_query("SELECT 1").execute(&mut conn.conn).map(|_| ()).map_err(r2d2::Error::QueryError)
    }

    fn has_broken(&self, conn: &mut Pooled) -> bool {
        conn.broken
    }
}

impl Manager {
    fn connect_one(&self) -> Result<DbConnection, r2d2::Error> {
        match self.backend {
            Backend::Postgres => {
                PgConnection::establish(&self.url).map(DbConnection::Postgresql).map_err(r2d2::Error::ConnectionError)
            }
            Backend::Sqlite => {
                create_private(&self.url).map_err(|e| {
                    r2d2::Error::ConnectionError(diesel::ConnectionError::BadConnection(format!(
                        "cannot create {}: {e}",
                        self.url
                    )))
                })?;
                let mut conn = SqliteConnection::establish(&self.url).map_err(r2d2::Error::ConnectionError)?;
                for pragma in [
                    "PRAGMA journal_mode = WAL",
                    "PRAGMA synchronous = NORMAL",
                    "PRAGMA foreign_keys = ON",
                    "PRAGMA busy_timeout = 10000",
                ] {
                    diesel::sql_query(pragma).execute(&mut conn).map_err(r2d2::Error::QueryError)?;
                }
                Ok(DbConnection::Sqlite(conn))
            }
        }
    }
}

/// The connection pool, cheap to clone.
#[derive(Clone)]
pub struct Db {
    pool: r2d2::Pool<Manager>,
    backend: Backend,
}

impl Db {
    /// Opens a pool for `url` and applies the pending migrations.
    pub fn connect(url: &DatabaseUrl, pool_size: u32) -> anyhow::Result<Db> {
        Self::connect_with(url, pool_size, DEFAULT_TIMEOUT)
    }

    /// Like [`Db::connect`], waiting at most `timeout` for a connection
    /// (`database.timeout`): past it a request gets [`DbError::Pool`].
    pub fn connect_with(url: &DatabaseUrl, pool_size: u32, timeout: Duration) -> anyhow::Result<Db> {
        use anyhow::Context;
        let manager = Manager::new(url, timeout);
        let backend = manager.backend;
        let pool = r2d2::Pool::builder()
            .max_size(pool_size)
            .min_idle(Some(1))
            .connection_timeout(timeout)
            .test_on_check_out(false)
            .build(manager)
            .with_context(|| format!("cannot open the {backend:?} database"))?;
        let db = Db { pool, backend };
        let mut conn = db.pool.get().context("cannot connect to the database")?;
        migrate(&mut conn).map_err(|e| anyhow::anyhow!("migrations failed: {e}"))?;
        Ok(db)
    }

    /// One connection without a pool, migrated: for the command line, which
    /// must not leave pool threads opening connections while it exits.
    pub fn connect_one(url: &DatabaseUrl) -> anyhow::Result<DbConnection> {
        let mut conn = Manager::new(url, DEFAULT_TIMEOUT)
            .connect_one()
            .map_err(|e| anyhow::anyhow!("cannot connect to the database: {e}"))?;
        migrate(&mut conn).map_err(|e| anyhow::anyhow!("migrations failed: {e}"))?;
        Ok(conn)
    }

    /// Runs `f` with a pooled connection on the blocking thread pool, so
    /// neither the pool wait nor the query touches the async executor. A
    /// panic inside `f` is raised again here, as if `f` had run inline.
    pub async fn run<F, T>(&self, f: F) -> Result<T, DbError>
    where
        F: FnOnce(&mut DbConnection) -> QueryResult<T> + Send + 'static,
        T: Send + 'static,
    {
        let pool = self.pool.clone();
        let task = tokio::task::spawn_blocking(move || {
            let mut pooled = pool.get().map_err(DbError::Pool)?;
            f(&mut pooled.conn).map_err(|err| {
                if connection_failed(&err) {
                    pooled.broken = true;
                    DbError::Lost(err)
                } else {
                    DbError::from(err)
                }
            })
        });
        match task.await {
            Ok(result) => result,
            Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
            Err(_) => Err(DbError::Cancelled),
        }
    }

    /// Whether the database answers a query within `within` (a connection
    /// from the pool, waited for at most that long, then `SELECT 1`).
    pub async fn ping(&self, within: Duration) -> Result<(), DbError> {
        let pool = self.pool.clone();
        let task = tokio::task::spawn_blocking(move || {
            let mut pooled = pool.get_timeout(within).map_err(DbError::Pool)?;
            diesel::sql_query("SELECT 1").execute(&mut pooled.conn).map(|_| ()).map_err(|err| {
                if connection_failed(&err) {
                    pooled.broken = true;
                    DbError::Lost(err)
                } else {
                    DbError::from(err)
                }
            })
        });
        match tokio::time::timeout(within, task).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(DbError::Cancelled),
            Err(_) => Err(DbError::Timeout),
        }
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The pool's connections now: (open, idle, largest allowed).
    pub fn pool_state(&self) -> (u32, u32, u32) {
        let state = self.pool.state();
        (state.connections, state.idle_connections, self.pool.max_size())
    }

    /// A pooled connection for synchronous callers that are already off the
    /// executor (tests setting up rows).
    pub fn get(&self) -> Result<r2d2::PooledConnection<Manager>, DbError> {
        self.pool.get().map_err(DbError::Pool)
    }
}

/// Applies the pending migrations of the connection's backend.
pub fn migrate(conn: &mut DbConnection) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    match conn {
        DbConnection::Postgresql(pg) => pg.run_pending_migrations(POSTGRES_MIGRATIONS).map(|_| ()),
        DbConnection::Sqlite(lite) => lite.run_pending_migrations(SQLITE_MIGRATIONS).map(|_| ()),
    }
}

/// Runs `f` in a transaction that will write. On SQLite it begins with
/// `BEGIN IMMEDIATE`, taking the write lock first, so a transaction that
/// reads before it writes waits for other writers (`busy_timeout`) instead
/// of failing with "database is locked" when its read snapshot goes stale;
/// on PostgreSQL it is a plain transaction. Inside another transaction it
/// is a savepoint of it (on SQLite the outer one holds the lock already).
pub fn write_transaction<T, F>(conn: &mut DbConnection, f: F) -> QueryResult<T>
where
    F: FnOnce(&mut DbConnection) -> QueryResult<T>,
{
    use diesel::connection::{AnsiTransactionManager, TransactionManager};
    type Manager = <DbConnection as Connection>::TransactionManager;
    let begins_sqlite_transaction = match conn {
        DbConnection::Sqlite(lite) => AnsiTransactionManager::transaction_manager_status_mut(lite).transaction_depth()?.is_none(),
        DbConnection::Postgresql(_) => false,
    };
    if !begins_sqlite_transaction {
        return conn.transaction(f);
    }
    if let DbConnection::Sqlite(lite) = conn {
        AnsiTransactionManager::begin_transaction_sql(lite, "BEGIN IMMEDIATE")?;
    }
    // Ended as diesel's own `Connection::transaction` ends one.
    match f(conn) {
        Ok(value) => {
            Manager::commit_transaction(conn)?;
            Ok(value)
        }
        Err(err) => match Manager::rollback_transaction(conn) {
            Ok(()) | Err(diesel::result::Error::BrokenTransactionManager) => Err(err),
            Err(rollback) => Err(rollback),
        },
    }
}

/// A statement of fixed shape kept prepared per connection, keyed by its
/// SQL text. diesel prepares every `UPDATE` anew at each run (a changeset
/// may leave out columns, so one Rust type can give several texts); keyed
/// by the text, each shape is a statement of its own, so keeping them is
/// sound, and the number kept is bounded by the shapes in the code.
///
/// Run it with [`Prepared::get_optional`], as an `UPDATE ... RETURNING`:
/// `execute` hands diesel a reference, through which diesel asks the
/// statement inside, not this wrapper, and prepares it anew each time.
#[derive(Debug, Clone, Copy)]
pub struct Prepared<Q>(pub Q);

impl<Q, DB> diesel::query_builder::QueryFragment<DB> for Prepared<Q>
where
    DB: diesel::backend::Backend,
    Q: diesel::query_builder::QueryFragment<DB>,
{
    fn walk_ast<'b>(&'b self, pass: diesel::query_builder::AstPass<'_, 'b, DB>) -> QueryResult<()> {
        self.0.walk_ast(pass)
    }

    fn is_safe_to_cache_prepared(&self, _backend: &DB) -> QueryResult<bool> {
        Ok(true)
    }
}

impl<Q> diesel::query_builder::QueryId for Prepared<Q> {
    // No id from the type: the cache key is the SQL text.
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q: diesel::query_builder::Query> diesel::query_builder::Query for Prepared<Q> {
    type SqlType = Q::SqlType;
}

impl<Q, Conn> RunQueryDsl<Conn> for Prepared<Q> {}

impl<Q> Prepared<Q> {
    /// Runs the statement, kept prepared, on the connection's own backend;
    /// the row it returns, if any.
    pub fn get_optional<'query, T>(self, conn: &mut DbConnection) -> QueryResult<Option<T>>
    where
        Self: diesel::query_dsl::LoadQuery<'query, PgConnection, T> + diesel::query_dsl::LoadQuery<'query, SqliteConnection, T>,
    {
        match conn {
            DbConnection::Postgresql(pg) => self.get_result(pg).optional(),
            DbConnection::Sqlite(lite) => self.get_result(lite).optional(),
        }
    }
}

/// A fresh UUID as stored.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use diesel::connection::{Instrumentation, InstrumentationEvent};

    use super::*;

    /// The statements a connection prepared to keep, by their SQL text.
    #[derive(Clone, Default)]
    struct Kept(Arc<Mutex<Vec<String>>>);

    impl Instrumentation for Kept {
        fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
            if let InstrumentationEvent::CacheQuery { sql, .. } = event {
                self.0.lock().unwrap().push(sql.to_string());
            }
        }
    }

    fn sqlite() -> (tempfile::TempDir, DbConnection) {
        let dir = tempfile::tempdir().unwrap();
        let conn = Db::connect_one(&crate::config::DatabaseUrl::Sqlite(dir.path().join("doorman.db"))).unwrap();
        (dir, conn)
    }

    /// Session `s1` of user `u1`, all its optional fields left empty.
    fn session_of_u1(now: chrono::NaiveDateTime) -> sessions::SessionRow {
        sessions::SessionRow {
            id: "s1".into(),
            user_id: "u1".into(),
            token_hash: "h1".into(),
            provider_id: None,
            provider_sid: None,
            id_token_enc: None,
            created_at: now,
            expires_at: now,
            revoked_at: None,
            method: "password".into(),
            ip: None,
            user_agent: None,
            last_seen_at: now,
        }
    }

    #[test]
    fn the_hot_updates_are_prepared_once_per_connection() {
        let (_dir, mut conn) = sqlite();
        diesel::sql_query(
            "INSERT INTO users (id, username, is_admin, is_external, channel, created_at, updated_at, status) \
             VALUES ('u1', 'dana', 0, 1, 'default', '2026-01-01 00:00:00', '2026-01-01 00:00:00', 'active')",
        )
        .execute(&mut conn)
        .unwrap();
        diesel::sql_query(
            "INSERT INTO external_identities (id, user_id, provider_id, issuer, subject, valid_until, refresh_state, \
             refresh_failures, created_at, updated_at) VALUES ('i1', 'u1', 'op', 'https://op.example', 'sub-1', \
             '2026-01-01 00:00:00', 'none', 0, '2026-01-01 00:00:00', '2026-01-01 00:00:00')",
        )
        .execute(&mut conn)
        .unwrap();
        let now = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap().naive_utc();
        let session = session_of_u1(now);
        sessions::insert(&mut conn, &session).unwrap();

        let kept = Kept::default();
        conn.set_instrumentation(kept.clone());
        for _ in 0..3 {
            assert!(sessions::touch(&mut conn, "s1", now).unwrap());
            assert!(users::record_login(&mut conn, "u1", now).unwrap());
            let i1 = identities::Named { id: "i1", issuer: "https://op.example", subject: "sub-1" };
            assert_eq!(
                identities::record_login(&mut conn, i1, now, Some("sealed"), Some(now), now).unwrap().as_deref(),
                Some("u1")
            );
            assert!(users::record_sso_sign_in(&mut conn, "u1", None, Some("Dana"), now).unwrap().is_some());
        }
        let kept = kept.0.lock().unwrap().clone();
        let updates: Vec<&String> = kept.iter().filter(|sql| sql.starts_with("UPDATE")).collect();
        assert_eq!(updates.len(), 4, "each UPDATE prepared once and kept: {updates:#?}");
        for table in ["`sessions`", "`users` SET `last_login_at`", "`external_identities`", "`users` SET `email`"] {
            assert!(updates.iter().any(|sql| sql.contains(table)), "{table} kept: {updates:#?}");
        }

        assert!(!sessions::touch(&mut conn, "no-such-session", now).unwrap());
        let unknown = identities::Named { id: "no-such-identity", issuer: "https://op.example", subject: "sub-1" };
        assert_eq!(identities::record_login(&mut conn, unknown, now, None, None, now).unwrap(), None);
        // An id with another account's issuer or subject records nothing.
        let other_subject = identities::Named { id: "i1", issuer: "https://op.example", subject: "sub-2" };
        assert_eq!(identities::record_login(&mut conn, other_subject, now, None, None, now).unwrap(), None);
        let other_issuer = identities::Named { id: "i1", issuer: "https://other.example", subject: "sub-1" };
        assert_eq!(identities::record_login(&mut conn, other_issuer, now, None, None, now).unwrap(), None);
    }

    /// Whether diesel keeps `query` prepared by its Rust type, without
    /// writing its SQL again at each run.
    fn kept_by_type<Q: diesel::query_builder::QueryId>(_query: &Q) -> bool {
        Q::HAS_STATIC_QUERY_ID
    }

    #[test]
    fn the_inserts_of_every_sign_in_are_kept_by_their_type() {
        let now = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap().naive_utc();
        let session = session_of_u1(now);
        let event = audit_events::AuditRow {
            id: "e1".into(),
            at: now,
            kind: "sign_in".into(),
            outcome: "success".into(),
            username: None,
            actor: None,
            ip: None,
            user_agent: None,
            detail: "{}".into(),
        };
        let state = (schema::used_oidc_states::state_hash.eq("h"), schema::used_oidc_states::expires_at.eq(now));
        assert!(kept_by_type(&diesel::insert_into(schema::sessions::table).values(&session)));
        assert!(kept_by_type(&diesel::insert_into(schema::audit_events::table).values(&event)));
        assert!(kept_by_type(&diesel::insert_or_ignore_into(schema::used_oidc_states::table).values(state)));
        // What a `None` left out would give: a statement written anew each time.
        let shaped_by_values = (schema::sessions::id.eq("s1"), Some(schema::sessions::ip.eq("::1")));
        assert!(!kept_by_type(&diesel::insert_into(schema::sessions::table).values(shaped_by_values)));
    }
}
