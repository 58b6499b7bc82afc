//! The JSON that `up`, `down` and `pki status` print with `--output json`:
//! typed, versioned, and with schemas under `schemas/` (checked like the
//! others, `src/schemas.rs`).

use serde::Serialize;

/// The version of these three outputs.
pub const FORMAT_VERSION: &str = "1";

/// What `up` (and `pki rotate`) did.
#[derive(Debug, Serialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct Applied {
    pub format_version: String,
    pub project: String,
    pub env: String,
    pub created: usize,
    /// Made by an earlier, interrupted run and found instead of created.
    pub found: usize,
    pub updated: usize,
    pub deleted: usize,
    pub failed: usize,
    /// Not tried: they needed what failed.
    pub skipped: usize,
    pub elapsed_seconds: f64,
}

/// What `down` deleted.
#[derive(Debug, Serialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct TornDown {
    pub format_version: String,
    pub project: String,
    pub env: String,
    pub deleted: usize,
    /// Delete waves (each re-observes what is left).
    pub waves: usize,
    pub elapsed_seconds: f64,
}

/// Every certificate in the env's state store (`pki status`).
#[derive(Debug, Serialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct PkiStatus {
    pub format_version: String,
    pub project: String,
    pub env: String,
    pub certificates: Vec<Certificate>,
}

/// One certificate: a leaf, a CA, or a CA generation still trusted.
#[derive(Debug, Serialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct Certificate {
    /// The item (`ca`, `apiserver`, `etcd/peer`), with ` (also trusted)`
    /// for a CA's other generations.
    pub item: String,
    #[serde(flatten)]
    pub cert: crate::pki::CertInfo,
}

/// Seconds, to the millisecond.
pub fn seconds(elapsed: std::time::Duration) -> f64 {
    (elapsed.as_secs_f64() * 1000.0).round() / 1000.0
}
