//! The integration tests, in one binary: one build and one link for all of
//! them, one emulator they share (each test in its own account, see
//! `support`), and the test harness's threads kept busy across every file.
//! `cargo test --test it network::` runs one file's tests.

mod support;

mod boot;
mod cancel;
mod cluster;
mod cluster_faults;
mod compute;
mod config_errors;
mod errors;
mod init;
mod local;
mod network;
mod ownership;
mod pki;
mod proving_ground;
mod rollout;
mod security;
mod version;
