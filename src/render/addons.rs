//! PLACEHOLDER until the add-ons branch lands.
use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
pub struct AddonInputs {
    pub kubernetes_version: String,
    pub cluster_name: String,
    pub region: String,
    pub pod_cidr: String,
    pub service_cidr: String,
    pub dns_service_ip: String,
    pub domain: String,
    pub database_zone: Option<String>,
    pub database_resolver: Option<String>,
}

pub struct Addon {
    pub name: &'static str,
    pub version: String,
    pub objects: Vec<serde_json::Value>,
}

pub fn addons(_inputs: &AddonInputs) -> Result<Vec<Addon>, super::RenderError> {
    Ok(Vec::new())
}
