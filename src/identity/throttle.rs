//! Slows down guessing, across every instance: attempts are counted in the
//! database (`login_attempts`), one atomic statement per counter, BEFORE the
//! secret is checked, so a burst of concurrent guesses cannot slip past the
//! limit and two instances behind a load balancer share one allowance.
//!
//! Password sign-in counts per (username, client address) and per client
//! address: someone elsewhere cannot lock a user out, and one address cannot
//! spray many names. Machine clients count per (client id, client address).
//! User codes typed on the device page count per browser session and per
//! client address.
//! A success gives its attempt back (unless the window is already past its
//! limit: a burst holding the right secret does not reopen it). IPv6
//! clients are counted per /64, the block one subscriber usually holds.

use std::net::IpAddr;

use crate::clock::Clock;
use crate::db::{self, Db, DbError};

/// The counting window.
pub const WINDOW_SECS: i64 = 60;
/// Password attempts per (username, address) in a window.
pub const PER_NAME_AND_ADDRESS: i32 = 5;
/// Password attempts per address in a window, whatever the names.
pub const PER_ADDRESS: i32 = 30;
/// Client-credentials attempts per (client id, address) in a window.
pub const PER_CLIENT_AND_ADDRESS: i32 = 5;
/// User codes tried on the device page per browser session, and per
/// address, in a window.
pub const PER_DEVICE_CODE_KEY: i32 = 5;

/// The shared attempt counters.
#[derive(Clone)]
pub struct Throttle {
    db: Db,
    clock: Clock,
}

/// An attempt refused unchecked: past a limit in the current window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled {
    /// Seconds until the window that refused it is over.
    pub wait: u64,
    /// Whether it is the window's first refusal (a counter just went past its
    /// limit): the one worth recording, so a flood of refused attempts writes
    /// one audit event a window, not one each.
    pub first: bool,
}

/// An attempt that was let through; give it back to [`Throttle::succeeded`].
#[derive(Debug)]
pub struct Attempt {
    /// The counters it was counted in, with their limits.
    keys: Vec<(String, i32)>,
}

impl Throttle {
    pub fn new(db: Db, clock: Clock) -> Self {
        Self { db, clock }
    }

    /// Counts a password attempt for `username` from `ip`: `Ok(Err(_))`
    /// when it must wait (the attempt is refused unchecked).
    pub async fn password(&self, username: &str, ip: IpAddr) -> Result<Result<Attempt, Throttled>, DbError> {
        let address = address_key(ip);
        let own = format!("pw:{}|{address}", username.to_lowercase());
        let by_address = format!("ip:{address}");
        self.count(vec![(own, PER_NAME_AND_ADDRESS), (by_address, PER_ADDRESS)]).await
    }

    /// Counts a client-credentials attempt for `client_id` from `ip`.
    pub async fn client(&self, client_id: &str, ip: IpAddr) -> Result<Result<Attempt, Throttled>, DbError> {
        let own = format!("cc:{client_id}|{}", address_key(ip));
        self.count(vec![(own, PER_CLIENT_AND_ADDRESS)]).await
    }

    /// Counts a user code tried on the device page by browser session
    /// `session_id` from `ip` (a right code is given back).
    pub async fn device_code(&self, session_id: &str, ip: IpAddr) -> Result<Result<Attempt, Throttled>, DbError> {
        let own = format!("dc:{session_id}");
        let by_address = format!("dc-ip:{}", address_key(ip));
        self.count(vec![(own, PER_DEVICE_CODE_KEY), (by_address, PER_DEVICE_CODE_KEY)]).await
    }

    /// The attempt was right: it is taken back from its counters.
    pub async fn succeeded(&self, attempt: Attempt) -> Result<(), DbError> {
        self.db
            .run(move |conn| {
                for (key, limit) in &attempt.keys {
                    db::attempts::refund(conn, key, *limit)?;
                }
                Ok(())
            })
            .await
    }

    async fn count(&self, keys: Vec<(String, i32)>) -> Result<Result<Attempt, Throttled>, DbError> {
        let now = self.clock.timestamp();
        let prune = rand::random::<u8>() < 4;
        let counts = self
            .db
            .run(move |conn| {
                if prune {
                    db::attempts::prune(conn, now - WINDOW_SECS)?;
                }
                let mut counts = Vec::with_capacity(keys.len());
                for (key, limit) in keys {
                    let count = db::attempts::count(conn, &key, now, WINDOW_SECS)?;
                    counts.push((key, limit, count));
                }
                Ok(counts)
            })
            .await?;
        let over = || counts.iter().filter(|(_, limit, count)| count.attempts > *limit);
        let wait = over().map(|(_, _, count)| (count.window_start + WINDOW_SECS - now).max(1) as u64).max();
        if let Some(wait) = wait {
            let first = over().any(|(_, limit, count)| count.attempts == limit + 1);
            return Ok(Err(Throttled { wait, first }));
        }
        Ok(Ok(Attempt { keys: counts.into_iter().map(|(key, limit, _)| (key, limit)).collect() }))
    }
}

/// The address as counted: IPv4 as is, IPv6 by its /64.
fn address_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_counted_by_subscriber() {
        assert_eq!(address_key("192.0.2.7".parse().unwrap()), "192.0.2.7");
        assert_eq!(address_key("2001:db8:1:2:aaaa::1".parse().unwrap()), "2001:db8:1:2::/64");
        assert_eq!(address_key("2001:db8:1:2:bbbb::9".parse().unwrap()), "2001:db8:1:2::/64");
        assert_eq!(address_key("::ffff:192.0.2.7".parse().unwrap()), "192.0.2.7");
    }
}
