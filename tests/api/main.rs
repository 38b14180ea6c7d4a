//! doorman's integration tests: one binary, the app started for real.
//! Every helper lives in `helpers/`; test modules import only from there.

mod helpers;

mod bad_input;
mod browser;
mod cli;
mod lifecycle;
mod migrations;
mod oidc;
mod openapi;
mod processes;
mod real_sso;
mod service_jwt;
mod session;
mod tokens;
mod users;
