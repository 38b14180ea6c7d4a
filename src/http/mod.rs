//! The HTTP layer, on top of everything else: the route table and its thin
//! handlers, extractors and the scope guard, cookies, the pending sign-in
//! session, `next` checking, pages, the one place where errors become HTTP,
//! the shared state and start-up. The only layer that knows actix-web.

pub mod client;
pub mod cookies;
pub mod error;
pub mod extract;
pub mod guard;
pub mod hardening;
pub mod metrics;
pub mod next_path;
pub mod pending;
pub mod routes;
pub mod startup;
pub mod state;
pub mod templates;
