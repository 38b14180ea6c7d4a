//! doorman's integration tests: one binary, the app started for real.
//! Every helper lives in `helpers/`; test modules import only from there.

mod helpers;

mod access;
mod admin;
mod audit;
mod bad_input;
mod browser;
mod cli;
mod device;
mod faults;
mod hostile;
mod lifecycle;
mod migrations;
mod oidc;
mod openapi;
mod processes;
mod python_client;
mod real_sso;
mod revocation;
mod schemathesis;
mod service_jwt;
mod session;
mod session_list;
mod tokens;
mod users;
mod whole_run;
