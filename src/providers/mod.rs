//! The only code that talks to clouds and clusters.

pub mod aws;
pub mod k8s;
pub mod local;
pub mod lock;
