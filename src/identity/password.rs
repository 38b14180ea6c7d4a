//! Password hashing with argon2id: for requests on the blocking pool,
//! behind a cap, in reused working memory ([`Hasher`]).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{Output, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};

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

/// An argon2id PHC string of `password` with a fresh salt (working memory
/// of its own: for the command line and tests; requests use [`Hasher`]).
pub fn hash(password: &str) -> Result<String, IdentityError> {
    hash_in(password, &mut Vec::new())
}

fn hash_in(password: &str, memory: &mut Vec<Block>) -> Result<String, IdentityError> {
    let internal = |e: argon2::password_hash::Error| IdentityError::Internal(e.to_string().into());
    let salt = SaltString::generate(&mut OsRng);
    let params = Params::default();
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    run(Algorithm::Argon2id, Version::V0x13, &params, password.as_bytes(), &salt.as_salt(), &mut out, memory)
        .map_err(internal)?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: (&params).try_into().map_err(internal)?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out).map_err(internal)?),
    };
    Ok(phc.to_string())
}

fn verify_in(stored: Option<&str>, password: &str, memory: &mut Vec<Block>) -> bool {
    if password.len() > MAX_LENGTH {
        return false;
    }
    let (hash_text, real) = match stored {
        Some(h) => (h, true),
        None => (DUMMY_HASH.as_str(), false),
    };
    let matches = PasswordHash::new(hash_text).is_ok_and(|parsed| matches(&parsed, password.as_bytes(), memory));
    real && matches
}

/// argon2's own check of a PHC string (algorithm, version, parameters and
/// salt from the string; outputs compared in constant time by `Output`).
fn matches(parsed: &PasswordHash<'_>, password: &[u8], memory: &mut Vec<Block>) -> bool {
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return false;
    };
    let (Ok(algorithm), Ok(version), Ok(params)) = (
        Algorithm::try_from(parsed.algorithm),
        parsed.version.map_or(Ok(Version::default()), Version::try_from),
        Params::try_from(parsed),
    ) else {
        return false;
    };
    let mut out = vec![0u8; expected.len()];
    run(algorithm, version, &params, password, &salt, &mut out, memory).is_ok() && Output::new(&out).is_ok_and(|o| o == expected)
}

/// One argon2 run in `memory` (grown to the parameters' size, kept by the caller).
fn run(
    algorithm: Algorithm,
    version: Version,
    params: &Params,
    password: &[u8],
    salt: &argon2::password_hash::Salt<'_>,
    out: &mut [u8],
    memory: &mut Vec<Block>,
) -> argon2::password_hash::Result<()> {
    let mut salt_bytes = [0u8; argon2::password_hash::Salt::MAX_LENGTH];
    let salt = salt.decode_b64(&mut salt_bytes)?;
    memory.resize(params.block_count(), Block::default());
    Ok(Argon2::new(algorithm, version, params.clone()).hash_password_into_with_memory(password, salt, out, memory)?)
}

/// Longest a password check waits for a free slot before the caller is
/// told to come back (503 with `Retry-After`).
pub const SLOT_WAIT: Duration = Duration::from_secs(2);

/// The password hashing of one instance: argon2 on the blocking pool,
/// at most one run per core at once (each takes about 19 MiB and a core
/// for ~20 ms, so this bounds both the memory and the CPU anonymous callers
/// can take; the rest wait at most [`SLOT_WAIT`]), each run in working
/// memory kept from the runs before. Allocated afresh each time, freed
/// blocks would stay with whichever blocking thread's malloc arena they
/// came from, and memory would grow with the number of threads.
#[derive(Clone)]
pub struct Hasher {
    inner: Arc<HasherInner>,
}

struct HasherInner {
    slots: Semaphore,
    slot_count: usize,
    /// At most `slot_count` buffers: one per run under way.
    memory: Mutex<Vec<Vec<Block>>>,
    in_flight: AtomicUsize,
    peak: AtomicUsize,
}

impl Default for Hasher {
    fn default() -> Self {
        let slot_count = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        Self {
            inner: Arc::new(HasherInner {
                slots: Semaphore::new(slot_count),
                slot_count,
                memory: Mutex::new(Vec::new()),
                in_flight: AtomicUsize::new(0),
                peak: AtomicUsize::new(0),
            }),
        }
    }
}

impl Hasher {
    /// How many argon2 runs may be under way at once.
    pub fn slots(&self) -> usize {
        self.inner.slot_count
    }

    /// The most argon2 runs this instance has had under way at once.
    pub fn peak_in_flight(&self) -> usize {
        self.inner.peak.load(Ordering::Relaxed)
    }

    /// [`hash`], within the slots.
    pub async fn hash(&self, password: String) -> Result<String, IdentityError> {
        self.blocking(move |memory| hash_in(&password, memory)).await?
    }

    /// Whether `password` matches `stored`, within the slots; with no stored
    /// hash, spends the same time and answers no.
    pub async fn verify(&self, stored: Option<String>, password: String) -> Result<bool, IdentityError> {
        self.blocking(move |memory| verify_in(stored.as_deref(), &password, memory)).await
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Vec<Block>) -> T + Send + 'static,
    ) -> Result<T, IdentityError> {
        let _permit = match tokio::time::timeout(SLOT_WAIT, self.inner.slots.acquire()).await {
            Ok(Ok(permit)) => permit,
            // The semaphore is never closed; a timeout means every slot stayed busy.
            _ => return Err(IdentityError::Busy(1)),
        };
        let inner = self.inner.clone();
        let counted = move || {
            let now = inner.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
            inner.peak.fetch_max(now, Ordering::Relaxed);
            let mut memory = inner.memory.lock().unwrap_or_else(|e| e.into_inner()).pop().unwrap_or_default();
            let value = f(&mut memory);
            inner.memory.lock().unwrap_or_else(|e| e.into_inner()).push(memory);
            inner.in_flight.fetch_sub(1, Ordering::Relaxed);
            value
        };
        match tokio::task::spawn_blocking(counted).await {
            Ok(value) => Ok(value),
            Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
            Err(err) => Err(IdentityError::Internal(err.into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verify(stored: Option<&str>, password: &str) -> bool {
        verify_in(stored, password, &mut Vec::new())
    }

    #[test]
    fn hash_and_verify() {
        let h = hash("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify(Some(&h), "correct horse"));
        assert!(!verify(Some(&h), "wrong horse"));
        assert!(!verify(None, "dummy password for timing"));
        assert!(!verify(Some("not a hash"), "x"));
    }

    /// Hashes made by argon2's own `PasswordHasher` (as stored before) still verify.
    #[test]
    fn verifies_hashes_of_the_standard_hasher() {
        use argon2::password_hash::PasswordHasher;
        let salt = SaltString::generate(&mut OsRng);
        let stored = Argon2::default().hash_password(b"correct horse", &salt).unwrap().to_string();
        assert!(verify(Some(&stored), "correct horse"));
        assert!(!verify(Some(&stored), "correct horsE"));
        // And ours verify with argon2's own verifier.
        use argon2::password_hash::PasswordVerifier;
        let ours = hash("correct horse").unwrap();
        assert!(Argon2::default().verify_password(b"correct horse", &PasswordHash::new(&ours).unwrap()).is_ok());
    }

    #[test]
    fn policy() {
        assert!(check_policy("short").is_err());
        assert!(check_policy("long enough").is_ok());
        assert!(check_policy(&"x".repeat(2000)).is_err());
    }
}
