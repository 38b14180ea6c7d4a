//! The two migration trees describe one schema, and each goes down and up again.

use diesel::prelude::*;
use diesel::sql_types::{Integer, Text};
use diesel::{PgConnection, SqliteConnection};
use diesel_migrations::MigrationHarness;
use doorman::db::{POSTGRES_MIGRATIONS, SQLITE_MIGRATIONS};

use crate::helpers::{fresh_database, Backend};

#[derive(QueryableByName, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Column {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    column_name: String,
    #[diesel(sql_type = Integer)]
    not_null: i32,
}

fn sqlite_columns(conn: &mut SqliteConnection) -> Vec<Column> {
    let mut cols: Vec<Column> = diesel::sql_query(
        "SELECT m.name AS table_name, p.name AS column_name, p.\"notnull\" AS not_null \
         FROM sqlite_master m JOIN pragma_table_info(m.name) p \
         WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name != '__diesel_schema_migrations'",
    )
    .load(conn)
    .unwrap();
    // SQLite reports a TEXT PRIMARY KEY as nullable unless NOT NULL is written; we write it.
    cols.sort();
    cols
}

fn postgres_columns(conn: &mut PgConnection) -> Vec<Column> {
    let mut cols: Vec<Column> = diesel::sql_query(
        "SELECT table_name::text AS table_name, column_name::text AS column_name, \
                CASE WHEN is_nullable = 'NO' THEN 1 ELSE 0 END AS not_null \
         FROM information_schema.columns WHERE table_schema = 'public' AND table_name != '__diesel_schema_migrations'",
    )
    .load(conn)
    .unwrap();
    cols.sort();
    cols
}

fn sqlite_conn() -> (SqliteConnection, tempfile::TempDir) {
    let (url, dir) = fresh_database(Backend::Sqlite);
    (SqliteConnection::establish(url.strip_prefix("sqlite://").unwrap()).unwrap(), dir.unwrap())
}

fn pg_conn() -> PgConnection {
    let (url, _) = fresh_database(Backend::Postgres);
    PgConnection::establish(&url).unwrap()
}

#[test]
fn sqlite_and_postgres_trees_make_the_same_tables_and_columns() {
    let (mut lite, _dir) = sqlite_conn();
    lite.run_pending_migrations(SQLITE_MIGRATIONS).unwrap();
    let mut pg = pg_conn();
    pg.run_pending_migrations(POSTGRES_MIGRATIONS).unwrap();
    let a = sqlite_columns(&mut lite);
    let b = postgres_columns(&mut pg);
    assert!(a.len() > 40, "{a:?}");
    assert_eq!(a, b);
}

#[test]
fn sqlite_migrations_go_down_and_up() {
    let (mut lite, _dir) = sqlite_conn();
    lite.run_pending_migrations(SQLITE_MIGRATIONS).unwrap();
    let before = sqlite_columns(&mut lite);
    lite.revert_all_migrations(SQLITE_MIGRATIONS).unwrap();
    assert!(sqlite_columns(&mut lite).is_empty());
    lite.run_pending_migrations(SQLITE_MIGRATIONS).unwrap();
    assert_eq!(sqlite_columns(&mut lite), before);
}

#[test]
fn postgres_migrations_go_down_and_up() {
    let mut pg = pg_conn();
    pg.run_pending_migrations(POSTGRES_MIGRATIONS).unwrap();
    let before = postgres_columns(&mut pg);
    pg.revert_all_migrations(POSTGRES_MIGRATIONS).unwrap();
    assert!(postgres_columns(&mut pg).is_empty());
    pg.run_pending_migrations(POSTGRES_MIGRATIONS).unwrap();
    assert_eq!(postgres_columns(&mut pg), before);
}
