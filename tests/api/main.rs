//! doorman's integration tests: one binary, the app started for real.

mod helpers;

mod fake_op;
mod lifecycle;
mod oidc;
mod processes;
mod real_op;
mod real_sso;

mod bad_input;
mod browser;
mod cli;
mod migrations;
mod service_jwt;
mod session;
mod tokens;
mod users;
