//! doorman's integration tests: one binary, the app started for real.

mod helpers;

mod fake_op;
mod oidc;

mod bad_input;
mod cli;
mod migrations;
mod session;
mod users;
