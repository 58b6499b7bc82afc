//! scopectl: kube-up, rewritten declaratively.
//!
//! Data flows one way: config → desired → (observe) → plan → apply → providers.
//! `config`, `desired` and `plan` are pure; only `providers` (called from
//! `apply`, `teardown` and the commands' observe step) touch the network.

pub mod apply;
pub mod cli;
pub mod commands;
pub mod config;
pub mod desired;
pub mod envdiff;
pub mod error;
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
