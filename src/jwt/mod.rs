//! doorman's own signed JWTs for other services, and their public keys.

pub mod keys;
