//! How the background refresh scales: one sweep over 100,000 external users
//! of whom 1% are due, on PostgreSQL. Measures the database side (claiming
//! due rows with `FOR UPDATE SKIP LOCKED`, recording each outcome) apart
//! from the provider, and the database load from `pg_stat_database`.
//!
//!   BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test cargo bench --bench sweep
//!   (USERS=... DUE_PERCENT=... to change the shape)

use std::time::Instant;

use chrono::Duration;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use doorman::db::{identities, Db, DbConnection};

#[derive(QueryableByName, Debug, Clone, Copy)]
struct Stats {
    #[diesel(sql_type = BigInt)]
    xact_commit: i64,
    #[diesel(sql_type = BigInt)]
    tup_returned: i64,
    #[diesel(sql_type = BigInt)]
    tup_fetched: i64,
    #[diesel(sql_type = BigInt)]
    tup_updated: i64,
    #[diesel(sql_type = BigInt)]
    blks_hit: i64,
    #[diesel(sql_type = BigInt)]
    blks_read: i64,
}

fn stats(conn: &mut DbConnection, name: &str) -> Stats {
    // The statistics collector publishes with a small delay.
    std::thread::sleep(std::time::Duration::from_millis(700));
    diesel::sql_query("SELECT pg_stat_clear_snapshot()").execute(conn).ok();
    diesel::sql_query(
        "SELECT xact_commit, tup_returned, tup_fetched, tup_updated, blks_hit, blks_read FROM pg_stat_database WHERE datname = $1",
    )
    .bind::<Text, _>(name)
    .get_result(conn)
    .expect("pg_stat_database")
}

fn main() {
    let admin = std::env::var("BENCH_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let users: i64 = std::env::var("USERS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let due_percent: i64 = std::env::var("DUE_PERCENT").ok().and_then(|v| v.parse().ok()).unwrap_or(1);
    let name = format!("doorman_sweep_{}", std::process::id());
    let mut admin_conn = PgConnection::establish(&admin).expect("PostgreSQL reachable at BENCH_POSTGRES_URL");
    diesel::sql_query(format!("CREATE DATABASE {name}")).execute(&mut admin_conn).expect("create database");
    let mut url = url::Url::parse(&admin).expect("URL");
    url.set_path(&name);
    let db =
        Db::connect(&doorman::config::DatabaseUrl::parse(url.as_str()).expect("a database URL"), 4).expect("connect and migrate");
    let mut pooled = db.get().expect("connection");
    let conn: &mut doorman::db::DbConnection = &mut pooled;

    // 100,000 external users; 1% due now, the rest later.
    let started = Instant::now();
    diesel::sql_query(
        "INSERT INTO users (id, username, is_admin, is_external, channel, created_at, updated_at) \
         SELECT 'u' || g, 'user' || g, false, true, 'default', now(), now() FROM generate_series(1, $1) g",
    )
    .bind::<BigInt, _>(users)
    .execute(conn)
    .expect("users");
    diesel::sql_query(
        "INSERT INTO external_identities (id, user_id, provider_id, issuer, subject, valid_until, refresh_token_enc, \
           refresh_state, refresh_failures, next_refresh_at, created_at, updated_at) \
         SELECT 'i' || g, 'u' || g, 'p', 'http://127.0.0.1:1', 's' || g, now() + interval '1 hour', 'sealed', 'active', 0, \
           CASE WHEN g % (100 / $2) = 0 THEN now() - interval '1 minute' ELSE now() + interval '1 hour' + (g || ' seconds')::interval END, \
           now(), now() \
         FROM generate_series(1, $1) g",
    )
    .bind::<BigInt, _>(users)
    .bind::<BigInt, _>(due_percent)
    .execute(conn)
    .expect("identities");
    diesel::sql_query("ANALYZE").execute(conn).expect("analyze");
    println!("set-up: {users} users, {due_percent}% due, in {:.1?}", started.elapsed());

    let now = doorman::clock::Clock::system().now_naive();
    let lease = now + Duration::seconds(60);

    // An idle sweep: what every instance pays every refresh_interval when nobody is due.
    let before = stats(conn, &name);
    let idle_started = Instant::now();
    let idle = identities::claim_due(conn, now - Duration::hours(1), lease, 100).expect("claim");
    let idle_time = idle_started.elapsed();
    assert!(idle.is_empty());
    let after_idle = stats(conn, &name);

    // A full sweep: claim in batches of 100, record a successful refresh for each.
    let sweep_started = Instant::now();
    let mut claimed = 0usize;
    let mut claim_time = std::time::Duration::ZERO;
    loop {
        let t = Instant::now();
        let batch = identities::claim_due(conn, now, lease, 100).expect("claim");
        claim_time += t.elapsed();
        if batch.is_empty() {
            break;
        }
        claimed += batch.len();
        for row in batch {
            let valid_until = now + Duration::hours(24);
            identities::refreshed(conn, &row.id, valid_until, None, valid_until - Duration::hours(1), now).expect("record");
        }
    }
    let sweep_time = sweep_started.elapsed();
    let after = stats(conn, &name);
    let expected = (users / (100 / due_percent)) as usize;
    assert_eq!(claimed, expected, "every due user claimed once");

    let _ = (before, after_idle);
    let idle_buffers = {
        #[derive(QueryableByName)]
        struct Line {
            #[diesel(sql_type = Text, column_name = "QUERY PLAN")]
            line: String,
        }
        let lines = diesel::sql_query(
            "EXPLAIN (ANALYZE, BUFFERS) SELECT id FROM external_identities WHERE refresh_state = 'active' \
             AND next_refresh_at <= now() - interval '1 hour' AND (lease_until IS NULL OR lease_until < now()) \
             ORDER BY next_refresh_at LIMIT 100 FOR UPDATE SKIP LOCKED",
        )
        .load::<Line>(conn)
        .expect("explain analyze");
        let first = lines.iter().find_map(|l| l.line.trim().strip_prefix("Buffers: ").map(str::to_string));
        first.unwrap_or_else(|| "no buffers".into())
    };
    let plan: Vec<String> = {
        #[derive(QueryableByName)]
        struct Line {
            #[diesel(sql_type = Text, column_name = "QUERY PLAN")]
            line: String,
        }
        diesel::sql_query(
            "EXPLAIN SELECT id FROM external_identities WHERE refresh_state = 'active' AND next_refresh_at <= now() \
             AND (lease_until IS NULL OR lease_until < now()) ORDER BY next_refresh_at LIMIT 100 FOR UPDATE SKIP LOCKED",
        )
        .load::<Line>(conn)
        .expect("explain")
        .into_iter()
        .map(|l| l.line)
        .collect()
    };

    println!();
    println!("| measure | value |");
    println!("| --- | ---: |");
    println!("| users / due | {users} / {claimed} |");
    println!("| idle sweep (nobody due): one claim query | {:.2?} |", idle_time);
    println!("| full sweep: claims + {claimed} outcome updates | {:.1?} |", sweep_time);
    println!("| of which claim queries ({} batches) | {:.1?} |", claimed.div_ceil(100) + 1, claim_time);
    println!("| per due user | {:.0?} |", sweep_time / claimed.max(1) as u32);
    println!("| idle sweep load: buffers of the claim (EXPLAIN ANALYZE BUFFERS) | {idle_buffers} |");
    println!(
        "| full sweep load: transactions / rows read / rows updated / blocks touched | {} / {} / {} / {} |",
        after.xact_commit - after_idle.xact_commit,
        (after.tup_returned - after_idle.tup_returned) + (after.tup_fetched - after_idle.tup_fetched),
        after.tup_updated - after_idle.tup_updated,
        (after.blks_hit - after_idle.blks_hit) + (after.blks_read - after_idle.blks_read)
    );
    println!();
    println!("claim plan: {}", plan.join(" / ").split_whitespace().collect::<Vec<_>>().join(" "));

    drop(pooled);
    drop(db);
    diesel::sql_query(format!("DROP DATABASE {name} WITH (FORCE)")).execute(&mut admin_conn).ok();
}
