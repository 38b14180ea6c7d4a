//! doorman's integration tests: one binary, the app started for real.

mod helpers;

mod fake_op;
mod lifecycle;
mod oidc;

mod bad_input;
mod cli;
mod migrations;
mod service_jwt;
mod session;
mod tokens;
mod users;
