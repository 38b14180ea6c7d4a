//! Slows down guessing: after a few failures for one name (a username or a
//! client id), further attempts are refused for a while.

use std::time::Duration;

use moka::sync::Cache;

/// Failures allowed per name inside the window before refusing.
const MAX_FAILURES: u32 = 5;
const WINDOW: Duration = Duration::from_secs(60);

/// Per-instance failure counter.
#[derive(Clone)]
pub struct Throttle {
    failures: Cache<String, u32>,
}

impl Default for Throttle {
    fn default() -> Self {
        Self { failures: Cache::builder().max_capacity(100_000).time_to_live(WINDOW).build() }
    }
}

impl Throttle {
    /// `Err(seconds)` when `name` must wait.
    pub fn check(&self, name: &str) -> Result<(), u64> {
        match self.failures.get(&name.to_lowercase()) {
            Some(n) if n >= MAX_FAILURES => Err(WINDOW.as_secs()),
            _ => Ok(()),
        }
    }

    pub fn fail(&self, name: &str) {
        let key = name.to_lowercase();
        let n = self.failures.get(&key).unwrap_or(0);
        self.failures.insert(key, n + 1);
    }

    pub fn succeed(&self, name: &str) {
        self.failures.invalidate(&name.to_lowercase());
    }
}
