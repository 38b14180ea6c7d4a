//! The sign-in's write transaction alone, on SQLite, step by step: what a
//! returning user's sign-in through a provider stores (the used `state`,
//! the identity, the user, their view, the session and the audit event),
//! run back to back ("warm"), after 2 ms idle each ("idle first", as a
//! callback finds the machine after waiting on the provider), and after
//! 32 MiB of other memory was written each ("caches cold", as a callback
//! finds the CPU's caches after the provider ran on the same cores).
//!
//!   cargo bench --bench signin_txn          (ROUNDS=600 to change)

use std::time::{Duration, Instant};

use chrono::NaiveDateTime;
use diesel::prelude::*;
use doorman::db::audit_events::AuditRow;
use doorman::db::sessions::SessionRow;
use doorman::db::{self, identities, oidc_states, users, Db, DbConnection};

const STEPS: [&str; 8] = ["begin", "state", "identity", "user", "view", "session", "audit", "commit"];

/// One sign-in; the time at the end of each step.
fn sign_in(conn: &mut DbConnection, n: usize, now: NaiveDateTime) -> Vec<Duration> {
    let started = Instant::now();
    let mut marks = Vec::with_capacity(STEPS.len());
    db::write_transaction(conn, |conn| {
        marks.push(started.elapsed());
        oidc_states::mark_used(conn, &format!("{n:064x}"), now)?;
        marks.push(started.elapsed());
        // The identity's id as the instance remembers it from an earlier sign-in.
        let named = identities::Named { id: "i1", issuer: "https://op.example", subject: "sub-1" };
        let user_id = identities::record_login(conn, named, now, Some(&"r".repeat(200)), Some(now), now)?.expect("the identity");
        marks.push(started.elapsed());
        let user = users::record_sso_sign_in(conn, &user_id, Some("dana@example.com"), Some("Dana"), now)?.expect("the user");
        marks.push(started.elapsed());
        users::view_of(conn, user)?;
        marks.push(started.elapsed());
        db::sessions::insert(conn, &session(&user_id, n, now))?;
        marks.push(started.elapsed());
        db::audit_events::insert(conn, &event(n, now))?;
        marks.push(started.elapsed());
        Ok(())
    })
    .expect("the sign-in commits");
    marks.push(started.elapsed());
    marks
}

fn session(user_id: &str, n: usize, now: NaiveDateTime) -> SessionRow {
    SessionRow {
        id: db::new_id(),
        user_id: user_id.to_string(),
        token_hash: format!("{:064x}", n),
        provider_id: Some("op".into()),
        provider_sid: Some(db::new_id()),
        id_token_enc: Some("t".repeat(900)),
        created_at: now,
        expires_at: now,
        revoked_at: None,
        method: "sso:op".into(),
        ip: Some("127.0.0.1".into()),
        user_agent: Some("bench".into()),
        last_seen_at: now,
    }
}

fn event(n: usize, now: NaiveDateTime) -> AuditRow {
    AuditRow {
        id: db::new_id(),
        at: now,
        kind: "sign_in".into(),
        outcome: "success".into(),
        username: Some("dana".into()),
        actor: Some("dana".into()),
        ip: Some("127.0.0.1".into()),
        user_agent: Some("bench".into()),
        detail: format!("{{\"method\":\"sso:op\",\"n\":{n}}}"),
    }
}

/// What happens before each sign-in.
#[derive(Clone, Copy)]
enum Before {
    Nothing,
    Idle,
    OtherMemory,
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let rounds: usize = std::env::var("ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(600);
    let dir = tempfile::tempdir().unwrap();
    let db = Db::connect(&doorman::config::DatabaseUrl::Sqlite(dir.path().join("doorman.db")), 2).unwrap();
    let mut conn = db.get().unwrap();
    let now = chrono::Utc::now().naive_utc();
    diesel::sql_query(
        "INSERT INTO users (id, username, is_admin, is_external, channel, created_at, updated_at, status) \
         VALUES ('u1', 'dana', 0, 1, 'default', '2026-01-01 00:00:00', '2026-01-01 00:00:00', 'active')",
    )
    .execute(&mut **conn)
    .unwrap();
    diesel::sql_query(
        "INSERT INTO external_identities (id, user_id, provider_id, issuer, subject, valid_until, refresh_state, refresh_failures, created_at, updated_at) \
         VALUES ('i1', 'u1', 'op', 'https://op.example', 'sub-1', '2026-01-01 00:00:00', 'none', 0, '2026-01-01 00:00:00', '2026-01-01 00:00:00')",
    )
    .execute(&mut **conn)
    .unwrap();
    println!("{rounds} sign-in transactions each way, SQLite (WAL), medians in µs");
    println!();
    println!("| run | total | {} |", STEPS.join(" | "));
    println!("| --- | ---: |{}", " ---: |".repeat(STEPS.len()));
    let mut n = 0;
    let mut elsewhere = vec![0u8; 32 << 20];
    for (label, before) in [("warm", Before::Nothing), ("idle first", Before::Idle), ("caches cold", Before::OtherMemory)] {
        let samples: Vec<Vec<Duration>> = (0..rounds)
            .map(|_| {
                match before {
                    Before::Nothing => {}
                    Before::Idle => std::thread::sleep(Duration::from_millis(2)),
                    Before::OtherMemory => {
                        for line in elsewhere.chunks_mut(64) {
                            line[0] = line[0].wrapping_add(1);
                        }
                        std::hint::black_box(&elsewhere);
                    }
                }
                n += 1;
                sign_in(&mut conn, n, now)
            })
            .collect();
        let step = |k: usize| {
            median(samples.iter().map(|m| (m[k] - if k == 0 { Duration::ZERO } else { m[k - 1] }).as_secs_f64() * 1e6).collect())
        };
        let total = median(samples.iter().map(|m| m[STEPS.len() - 1].as_secs_f64() * 1e6).collect());
        let steps: Vec<String> = (0..STEPS.len()).map(|k| format!("{:.0}", step(k))).collect();
        println!("| {label} | {total:.0} | {} |", steps.join(" | "));
    }
}
