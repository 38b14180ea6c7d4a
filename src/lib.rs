//! doorman: the authentication backend of a web platform.

pub mod accounts;
pub mod auth;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod db;
pub mod error;
pub mod jwt;
pub mod oidc;
pub mod routes;
pub mod startup;
pub mod state;
pub mod templates;
