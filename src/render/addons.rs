//! Pure: the cluster add-ons scopectl owns (the pod network, the AWS cloud
//! controller manager, CoreDNS), rendered from `templates/addons/` with the
//! versions pinned in `templates/addons/versions.toml`, as the objects the
//! API server takes. Ownership labels are the caller's to add.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use ipnet::{IpNet, Ipv4Net};
use minijinja::{Environment, UndefinedBehavior};
use serde::{Deserialize, Serialize};

use super::RenderError;

const VERSIONS_FILE: &str = "addons/versions.toml";
const VERSIONS: &str = include_str!("../../templates/addons/versions.toml");

const FLANNEL: &str = "addons/flannel.yaml.j2";
const CCM: &str = "addons/aws-cloud-controller-manager.yaml.j2";
const COREDNS: &str = "addons/coredns.yaml.j2";
const TEMPLATES: &[(&str, &str)] = &[
    (
        FLANNEL,
        include_str!("../../templates/addons/flannel.yaml.j2"),
    ),
    (
        CCM,
        include_str!("../../templates/addons/aws-cloud-controller-manager.yaml.j2"),
    ),
    (
        COREDNS,
        include_str!("../../templates/addons/coredns.yaml.j2"),
    ),
];

/// What the add-ons are rendered from.
#[derive(Clone, Debug, serde::Serialize)]
pub struct AddonInputs {
    /// `1.31`: major.minor as in the config.
    pub kubernetes_version: String,
    /// `scope-staging`
    pub cluster_name: String,
    pub region: String,
    /// `10.244.0.0/16`: kubeadm's podSubnet, flannel's Network.
    pub pod_cidr: String,
    pub service_cidr: String,
    /// The tenth address of `service_cidr` (`10.96.0.10`): the kubelets'
    /// clusterDNS, the `kube-dns` Service's clusterIP. See [`dns_service_ip`].
    pub dns_service_ip: String,
    /// `cluster.local`
    pub domain: String,
    /// The database endpoint's zone (`c9akciq32.us-east-1.rds.amazonaws.com`),
    /// forwarded to `database_resolver`; both or neither.
    pub database_zone: Option<String>,
    /// The VPC resolver (`172.31.0.2`).
    pub database_resolver: Option<String>,
}

/// One add-on: its name ("pod-network", "cloud-controller-manager",
/// "coredns"), the version string shown to users, and its objects (each a
/// JSON object as the API takes it), in the order they apply: namespaces,
/// RBAC, config, workloads, services.
pub struct Addon {
    pub name: &'static str,
    pub version: String,
    pub objects: Vec<serde_json::Value>,
}

/// The pinned versions (`templates/addons/versions.toml`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Versions {
    pub flannel: Flannel,
    pub coredns: Pinned,
    /// By Kubernetes minor, `1.31`.
    pub cloud_controller_manager: BTreeMap<String, Pinned>,
    /// By Kubernetes minor: the release and packages every instance installs.
    pub kubernetes: BTreeMap<String, KubernetesPins>,
    pub ecr_credential_provider: EcrCredentialProvider,
    pub package_repository: PackageRepository,
}

/// pkgs.k8s.io's signing key: the one key of every minor's repository.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PackageRepository {
    pub key_fingerprint: String,
    /// When the key expires (upstream extends it in place; the pin must be
    /// looked at again before this day).
    pub key_expires: String,
}

/// The kubelet's ECR credential provider binary, pinned by its checksum.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct EcrCredentialProvider {
    pub version: String,
    pub url: String,
    pub sha256: String,
}

/// The pinned ECR credential provider.
pub fn ecr_credential_provider() -> Result<EcrCredentialProvider, RenderError> {
    Ok(versions()?.ecr_credential_provider)
}

/// Whether an image repository is in ECR (`<account>.dkr.ecr.<region>.amazonaws.com/...`,
/// the hosts the credential provider's matchImages name).
pub fn is_ecr(image: &str) -> bool {
    let host = image.split('/').next().unwrap_or_default();
    let parts: Vec<&str> = host.split('.').collect();
    matches!(
        parts.as_slice(),
        [_, "dkr", "ecr" | "ecr-fips", _, "amazonaws", "com"]
            | [_, "dkr", "ecr", _, "amazonaws", "com", "cn"]
    )
}

/// What an instance installs for one Kubernetes minor, exactly (held at
/// these versions), and when upstream stops supporting it.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct KubernetesPins {
    /// `1.34.2`: kubeadm's `kubernetesVersion` (never `stable-1.x`, which
    /// kubeadm resolves over the network at boot).
    pub release: String,
    /// The pkgs.k8s.io package version of kubelet, kubeadm and kubectl.
    pub package: String,
    /// The sandbox image kubeadm of this release expects (containerd's
    /// `sandbox_image`).
    pub pause_image: String,
    /// The last day of upstream patch support (`YYYY-MM-DD`).
    pub end_of_support: String,
    /// The package repository key's fingerprint (from
    /// `[package_repository]`, the same for every minor).
    #[serde(default)]
    pub key_fingerprint: String,
}

/// The pins of a Kubernetes minor, or the error that names the minors with
/// every component pinned.
pub fn kubernetes_pins(minor: &str) -> Result<KubernetesPins, RenderError> {
    let versions = versions()?;
    match versions.kubernetes.get(minor) {
        Some(p) if versions.cloud_controller_manager.contains_key(minor) => Ok(KubernetesPins {
            key_fingerprint: versions.package_repository.key_fingerprint.clone(),
            ..p.clone()
        }),
        _ => Err(RenderError::invalid(
            VERSIONS_FILE,
            format!(
                "Kubernetes {minor} is not pinned (pinned: {})",
                supported_minors().join(", ")
            ),
        )),
    }
}

/// The minors whose every component is pinned, oldest first.
pub fn supported_minors() -> Vec<String> {
    let Ok(v) = versions() else {
        return Vec::new();
    };
    let mut minors: Vec<String> = v
        .kubernetes
        .keys()
        .filter(|m| v.cloud_controller_manager.contains_key(*m))
        .cloned()
        .collect();
    minors.sort_by_key(|m| minor_number(m));
    minors
}

/// `1.34` → 34 (0 when it is not of that shape).
pub fn minor_number(version: &str) -> u32 {
    version
        .strip_prefix("1.")
        .and_then(|m| m.parse().ok())
        .unwrap_or(0)
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Flannel {
    pub version: String,
    pub image: String,
    pub cni_plugin_image: String,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Pinned {
    pub version: String,
    pub image: String,
}

pub(crate) fn versions() -> Result<Versions, RenderError> {
    toml::from_str(VERSIONS).map_err(|e| RenderError::invalid(VERSIONS_FILE, e.to_string()))
}

/// The cluster DNS address: the tenth address of the service range, as
/// kubeadm computes the kubelets' default `clusterDNS`.
pub fn dns_service_ip(service_cidr: &Ipv4Net) -> Result<Ipv4Addr, RenderError> {
    let tenth = u32::from(service_cidr.network())
        .checked_add(10)
        .map(Ipv4Addr::from);
    match tenth {
        Some(ip) if service_cidr.contains(&ip) && ip != service_cidr.broadcast() => Ok(ip),
        _ => Err(RenderError::invalid(
            "the cluster DNS address",
            format!("the service range {service_cidr} has no tenth address for the cluster DNS"),
        )),
    }
}

/// Everything the templates see: the inputs and the pinned images.
#[derive(Serialize)]
struct Context<'a> {
    #[serde(flatten)]
    inputs: &'a AddonInputs,
    flannel: &'a Flannel,
    coredns: &'a Pinned,
    ccm: &'a Pinned,
}

/// The add-ons for `inputs`, each with its objects.
pub fn addons(inputs: &AddonInputs) -> Result<Vec<Addon>, RenderError> {
    check(inputs)?;
    let versions = versions()?;
    let ccm = versions
        .cloud_controller_manager
        .get(&inputs.kubernetes_version)
        .ok_or_else(|| {
            RenderError::invalid(
                VERSIONS_FILE,
                format!(
                    "Kubernetes {} has no pinned AWS cloud controller manager (pinned: {}); \
                     set cluster.kubernetes_version to one of those",
                    inputs.kubernetes_version,
                    versions
                        .cloud_controller_manager
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })?;
    let context = Context {
        inputs,
        flannel: &versions.flannel,
        coredns: &versions.coredns,
        ccm,
    };
    let env = environment()?;
    let render = |template: &'static str| -> Result<Vec<serde_json::Value>, RenderError> {
        let text = env
            .get_template(template)
            .and_then(|t| t.render(&context))
            .map_err(|e| RenderError::template(template, e))?;
        documents(template, &text)
    };
    Ok(vec![
        Addon {
            name: "pod-network",
            version: format!("flannel {}", versions.flannel.version),
            objects: render(FLANNEL)?,
        },
        Addon {
            name: "cloud-controller-manager",
            version: ccm.version.clone(),
            objects: render(CCM)?,
        },
        Addon {
            name: "coredns",
            version: versions.coredns.version.clone(),
            objects: render(COREDNS)?,
        },
    ])
}

fn environment() -> Result<Environment<'static>, RenderError> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    // `.yaml` names would otherwise get JSON auto-escaping (minijinja's
    // `json` feature).
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    env.set_keep_trailing_newline(true);
    for (name, text) in TEMPLATES {
        env.add_template(name, text)
            .map_err(|e| RenderError::template(name, e))?;
    }
    Ok(env)
}

/// The objects of a multi-document YAML text; empty documents are skipped.
pub(crate) fn documents(
    template: &'static str,
    text: &str,
) -> Result<Vec<serde_json::Value>, RenderError> {
    let mut objects = Vec::new();
    for (i, doc) in serde_norway::Deserializer::from_str(text).enumerate() {
        let value = serde_json::Value::deserialize(doc)
            .map_err(|e| RenderError::invalid(template, format!("document {}: {e}", i + 1)))?;
        match value {
            serde_json::Value::Null => {}
            serde_json::Value::Object(_) => objects.push(value),
            other => {
                return Err(RenderError::invalid(
                    template,
                    format!("document {} is not an object: {other}", i + 1),
                ))
            }
        }
    }
    Ok(objects)
}

/// The inputs go into YAML unquoted: each must be what it says, so that
/// none can change the documents' shape.
fn check(inputs: &AddonInputs) -> Result<(), RenderError> {
    let what = "the add-ons";
    let bad = |field: &str, value: &str, expected: &str| {
        Err(RenderError::invalid(
            what,
            format!("{field} `{value}` is not {expected}"),
        ))
    };
    if inputs.pod_cidr.parse::<IpNet>().is_err() {
        return bad("pod_cidr", &inputs.pod_cidr, "an address range");
    }
    let Ok(services) = inputs.service_cidr.parse::<IpNet>() else {
        return bad("service_cidr", &inputs.service_cidr, "an address range");
    };
    match inputs.dns_service_ip.parse::<IpAddr>() {
        Ok(ip) if services.contains(&ip) => {}
        _ => {
            return bad(
                "dns_service_ip",
                &inputs.dns_service_ip,
                &format!("an address of the service range {services}"),
            )
        }
    }
    if !is_dns_name(&inputs.domain) {
        return bad("domain", &inputs.domain, "a DNS name");
    }
    match (&inputs.database_zone, &inputs.database_resolver) {
        (None, None) => {}
        (Some(zone), Some(resolver)) => {
            if !is_dns_name(zone) {
                return bad("database_zone", zone, "a DNS name");
            }
            if resolver.parse::<IpAddr>().is_err() {
                return bad("database_resolver", resolver, "an IP address");
            }
        }
        _ => {
            return Err(RenderError::invalid(
                what,
                "database_zone and database_resolver go together: give both or neither",
            ))
        }
    }
    Ok(())
}

/// Lower-case letters, digits and hyphens in dot-separated labels of 1 to 63
/// characters, no label starting or ending with a hyphen.
fn is_dns_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

#[cfg(test)]
mod tests;
