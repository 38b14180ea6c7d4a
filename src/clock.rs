//! The time doorman runs on: the system clock, plus an offset that tests
//! move forward to drive expiry and the refresh lifecycle without sleeping.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, NaiveDateTime, TimeDelta, Timelike, Utc};

/// A clock shared by every service of one instance; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    /// Milliseconds added to the system time (0 outside tests).
    offset_ms: Arc<AtomicI64>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self::default()
    }

    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + TimeDelta::milliseconds(self.offset_ms.load(Ordering::Relaxed))
    }

    /// The current time as stored: UTC, microsecond precision (PostgreSQL
    /// keeps microseconds, so values compare equal after a round trip).
    pub fn now_naive(&self) -> NaiveDateTime {
        let now = self.now().naive_utc();
        now.with_nanosecond(now.nanosecond() / 1000 * 1000).unwrap_or(now)
    }

    /// Seconds since the epoch.
    pub fn timestamp(&self) -> i64 {
        self.now().timestamp()
    }

    /// Moves this clock (and every clone of it) forward.
    pub fn advance(&self, by: std::time::Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.offset_ms.fetch_add(ms, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advancing_moves_every_clone() {
        let clock = Clock::system();
        let other = clock.clone();
        let before = other.now();
        clock.advance(std::time::Duration::from_secs(3600));
        assert!(other.now() - before >= TimeDelta::seconds(3600));
        assert_eq!(clock.now_naive().nanosecond() % 1000, 0);
    }
}
