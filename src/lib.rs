//! doorman: the authentication backend of a web platform.
//!
//! Layers, each depending only on those listed before it:
//! - primitives: [`config`], [`clock`], [`crypto`], [`report`], [`db`];
//! - [`identity`]: users, passwords, sessions, API tokens, scopes, the caller;
//! - [`sso`] (single sign-on) and [`service_tokens`] (JWTs for other services);
//! - [`http`]: routes, extractors, cookies, pages, errors as HTTP, start-up;
//! - [`cli`]: the command line.

pub mod cli;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod db;
pub mod http;
pub mod identity;
pub mod report;
pub mod service_tokens;
pub mod sso;
