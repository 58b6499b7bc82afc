//! Pure: `(config, facts) -> Desired`. No clock, no network, no randomness.

mod cluster;
mod compute;
mod facts;
pub mod iam;
mod network;
mod pki;

pub use cluster::cluster;
pub use compute::{
    canonical_json, keep_images, load_balancer_name, ETCD_DEVICE, INSTANCE_METADATA, ROOT_VOLUME,
    ROOT_VOLUME_GIB,
};
pub use facts::*;
pub use network::to_database_name;
pub use pki::{join_token, next_stage, settle, Rotation};

use crate::config::{Config, Location, Provider};
use crate::model::Desired;

/// A mismatch between the config and adopted reality: nothing was touched.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct DesiredError {
    pub message: String,
    pub hint: Option<String>,
    /// Where in the config the conflicting value was written, if anywhere.
    pub at: Option<Box<Location>>,
    /// The service's answer behind it, when there was one.
    #[source]
    pub cause: Option<Box<crate::apply::ServiceError>>,
}

impl DesiredError {
    fn new(message: impl Into<String>, hint: impl Into<String>, at: Option<&Location>) -> Self {
        DesiredError {
            message: message.into(),
            hint: Some(hint.into()),
            at: at.cloned().map(Box::new),
            cause: None,
        }
    }
}

/// Computes everything the env should have.
pub fn desired(config: &Config, facts: &Facts) -> Result<Desired, DesiredError> {
    let mut d = Desired::default();
    if config.provider == Provider::Aws {
        let zones = network::network(config, facts, &mut d)?;
        compute::compute(config, facts, &zones, &mut d)?;
        pki::pki(config, &mut d);
    }
    Ok(d)
}

#[cfg(test)]
pub(crate) mod tests;
