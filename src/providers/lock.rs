//! The env lock, wherever it lives: an SSM parameter for AWS envs
//! (`aws/state.rs`), a `coordination.k8s.io` Lease in the cluster for local
//! ones (`k8s/lease.rs`). Both are taken atomically (a create that fails on
//! an existing one) and hold the same record.

use serde::{Deserialize, Serialize};

use crate::apply::ProviderError;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct LockInfo {
    pub id: String,
    pub holder: String,
    pub host: String,
    pub pid: u32,
    pub command: String,
    pub started: String,
    /// Which process this is, beyond its pid (Linux; absent elsewhere and in
    /// locks older than these fields): the kernel's boot id, the pid
    /// namespace, and the process's start time in clock ticks since boot.
    /// A lock is taken over only when all three say its holder is gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid_namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("env is locked by {} ({} since {}, lock id {})", .0.holder, .0.command, .0.started, .0.id)]
    Held(Box<LockInfo>),
    #[error("no lock with id {wanted} is held (the current lock is {current})")]
    Mismatch { wanted: String, current: String },
    #[error("the env is not locked")]
    NotLocked,
    #[error("the env lock {name} holds a value scopectl cannot read: {reason}")]
    Unreadable { name: String, reason: String },
    #[error(transparent)]
    Provider(#[from] ProviderError),
}
