//! The sign-in `state`s redeemed lately, kept in memory so that a replayed
//! callback is refused before its code reaches the provider without a trip
//! to the database.
//!
//! The database stays the authority: each sign-in records its state in its
//! own transaction, which refuses a state already there. This is only the
//! check made before the code is spent. On SQLite doorman is one instance,
//! so once the unexpired states the table held at start are loaded, every
//! redeemed state passes through here and a state not found was not
//! redeemed. On PostgreSQL other instances redeem states too, so a state
//! not found here is looked up in the table; the same happens on SQLite
//! until the load is done, or if the load failed, or once an entry was
//! evicted for room before it expired.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// At most this many states are kept (each about 200 bytes): room for 150
/// sign-ins a second over a state's whole lifetime.
const CAPACITY: u64 = 100_000;

/// What memory says of a state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// It was redeemed.
    Redeemed,
    /// It was not: memory holds every redeemed state.
    Fresh,
    /// Not found here, and memory may not hold them all: ask the database.
    Unknown,
}

pub struct Redeemed {
    /// Hashes of the states (as stored in `used_oidc_states`).
    states: moka::sync::Cache<String, ()>,
    /// Whether `states` holds every unexpired redeemed state.
    complete: Arc<AtomicBool>,
}

impl Redeemed {
    /// Keeps each state for `lifetime` (at least as long as its flow could
    /// still finish).
    pub fn new(lifetime: Duration) -> Self {
        let complete = Arc::new(AtomicBool::new(false));
        let evicted = complete.clone();
        let states = moka::sync::Cache::builder()
            .max_capacity(CAPACITY)
            .time_to_live(lifetime)
            .eviction_listener(move |_, _, cause| {
                if cause == moka::notification::RemovalCause::Size {
                    evicted.store(false, Ordering::Relaxed);
                }
            })
            .build();
        Self { states, complete }
    }

    /// Adds the states the database held and declares memory complete
    /// (SQLite: this instance redeems every state from now on).
    pub fn load_all(&self, hashes: Vec<String>) {
        for hash in hashes {
            self.states.insert(hash, ());
        }
        self.complete.store(true, Ordering::Relaxed);
    }

    /// Records a state its sign-in transaction redeemed (or found redeemed).
    pub fn insert(&self, hash: &str) {
        self.states.insert(hash.to_string(), ());
    }

    pub fn seen(&self, hash: &str) -> Seen {
        if self.states.contains_key(hash) {
            Seen::Redeemed
        } else if self.complete.load(Ordering::Relaxed) {
            Seen::Fresh
        } else {
            Seen::Unknown
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_until_loaded_then_fresh_or_redeemed() {
        let redeemed = Redeemed::new(Duration::from_secs(60));
        assert_eq!(redeemed.seen("a"), Seen::Unknown);
        redeemed.insert("a");
        assert_eq!(redeemed.seen("a"), Seen::Redeemed);
        redeemed.load_all(vec!["b".into()]);
        assert_eq!(redeemed.seen("b"), Seen::Redeemed);
        assert_eq!(redeemed.seen("c"), Seen::Fresh);
    }

    #[test]
    fn an_eviction_for_room_makes_memory_incomplete() {
        let redeemed = Redeemed::new(Duration::from_secs(60));
        redeemed.load_all(Vec::new());
        for i in 0..CAPACITY + 10_000 {
            redeemed.insert(&format!("{i:064x}"));
        }
        redeemed.states.run_pending_tasks();
        assert!(redeemed.states.entry_count() <= CAPACITY);
        assert_eq!(redeemed.seen("not-there"), Seen::Unknown);
    }
}
