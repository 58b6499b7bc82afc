//! scopectl: kube-up, rewritten declaratively.
//!
//! Data flows one way: config → desired → (observe) → plan → apply → providers.
//! `config`, `desired` and `plan` are pure; only `providers` (called from
//! `apply`, `teardown` and the commands' observe step) touch the network.

pub mod apply;
pub mod cancel;
pub mod cli;
pub mod commands;
pub mod config;
pub mod desired;
pub mod envdiff;
pub mod error;
pub mod health;
pub mod init;
pub mod model;
pub mod pki;
pub mod plan;
pub mod providers;
pub mod render;
pub mod rollout;
#[cfg(test)]
mod schemas;
pub mod teardown;
pub mod timing;
pub mod ui;

/// `--version`: the crate's version and the commit it was built from
/// (`build.rs`), e.g. `0.1.0 (f2a0196 2026-11-26)`.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("SCOPECTL_COMMIT"),
    ")"
);
