//! Password hashing with argon2id, always on the blocking pool.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::LazyLock;
use std::time::Duration;

use tokio::sync::Semaphore;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

use super::IdentityError;

/// Passwords shorter than this are refused.
pub const MIN_LENGTH: usize = 8;
/// Longer inputs are refused before hashing, so they cannot cost much.
pub const MAX_LENGTH: usize = 1024;

/// Hashed when a user is unknown or has no password, so the answer takes as
/// long as for a real user.
static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| hash("dummy password for timing").unwrap_or_default());

/// Checks the password policy.
pub fn check_policy(password: &str) -> Result<(), IdentityError> {
    let length = password.chars().count();
    if length < MIN_LENGTH {
        return Err(IdentityError::InvalidInput(format!("the password must have at least {MIN_LENGTH} characters")));
    }
    if password.len() > MAX_LENGTH {
        return Err(IdentityError::InvalidInput(format!("the password must have at most {MAX_LENGTH} bytes")));
    }
    Ok(())
}

/// An argon2id PHC string of `password` with a fresh salt.
pub fn hash(password: &str) -> Result<String, IdentityError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| IdentityError::Internal(e.to_string().into()))
}

/// Whether `password` matches `stored`; with no stored hash, spends the same
/// time and answers no.
pub fn verify(stored: Option<&str>, password: &str) -> bool {
    if password.len() > MAX_LENGTH {
        return false;
    }
    let (hash_text, real) = match stored {
        Some(h) => (h, true),
        None => (DUMMY_HASH.as_str(), false),
    };
    let Ok(parsed) = PasswordHash::new(hash_text) else {
        return false;
    };
    let matches = Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok();
    real && matches
}

/// Longest a password check waits for a free slot before the caller is
/// told to come back (503 with `Retry-After`).
pub const SLOT_WAIT: Duration = Duration::from_secs(2);

/// Argon2 runs at once: one per core. Each takes about 19 MiB and a core
/// for ~20 ms, so this bounds both memory and the CPU anonymous callers can
/// take; the rest wait at most [`SLOT_WAIT`].
static SLOTS: LazyLock<Semaphore> = LazyLock::new(|| Semaphore::new(slot_count()));

fn slot_count() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)
}

/// How many argon2 runs may be under way at once.
pub fn slots() -> usize {
    slot_count()
}

static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static RUNS: AtomicUsize = AtomicUsize::new(0);

/// The most argon2 runs this process has had under way at once.
pub fn peak_in_flight() -> usize {
    PEAK.load(Ordering::Relaxed)
}

/// How many argon2 runs (hash or verify) this process has made.
pub fn runs() -> usize {
    RUNS.load(Ordering::Relaxed)
}

/// [`hash`] on the blocking pool, within the argon2 slots.
pub async fn hash_blocking(password: String) -> Result<String, IdentityError> {
    blocking(move || hash(&password)).await?
}

/// [`verify`] on the blocking pool, within the argon2 slots.
pub async fn verify_blocking(stored: Option<String>, password: String) -> Result<bool, IdentityError> {
    blocking(move || verify(stored.as_deref(), &password)).await
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, IdentityError> {
    let _permit = match tokio::time::timeout(SLOT_WAIT, SLOTS.acquire()).await {
        Ok(Ok(permit)) => permit,
        // The semaphore is never closed; a timeout means every slot stayed busy.
        _ => return Err(IdentityError::Busy(1)),
    };
    let counted = move || {
        let now = IN_FLIGHT.fetch_add(1, Ordering::Relaxed) + 1;
        PEAK.fetch_max(now, Ordering::Relaxed);
        RUNS.fetch_add(1, Ordering::Relaxed);
        let value = f();
        IN_FLIGHT.fetch_sub(1, Ordering::Relaxed);
        value
    };
    match tokio::task::spawn_blocking(counted).await {
        Ok(value) => Ok(value),
        Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
        Err(err) => Err(IdentityError::Internal(err.into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_verify() {
        let h = hash("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify(Some(&h), "correct horse"));
        assert!(!verify(Some(&h), "wrong horse"));
        assert!(!verify(None, "dummy password for timing"));
        assert!(!verify(Some("not a hash"), "x"));
    }

    #[test]
    fn policy() {
        assert!(check_policy("short").is_err());
        assert!(check_policy("long enough").is_ok());
        assert!(check_policy(&"x".repeat(2000)).is_err());
    }
}
