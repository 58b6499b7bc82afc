//! Pure: cloud-init user data and the cluster add-ons from the templates in
//! `templates/`, embedded in the binary. Undefined variables are errors, never
//! empty strings.

pub mod addons;

pub use addons::dns_service_ip;

pub mod workloads;

use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;

const TEMPLATES: &[(&str, &str)] = &[
    (
        "cloud-init.yaml.j2",
        include_str!("../../templates/cloud-init.yaml.j2"),
    ),
    (
        "install.sh.j2",
        include_str!("../../templates/install.sh.j2"),
    ),
    ("state.sh.j2", include_str!("../../templates/state.sh.j2")),
    ("aws-cli.txt", include_str!("../../templates/aws-cli.txt")),
    (
        "audit-policy.yaml",
        include_str!("../../templates/audit-policy.yaml"),
    ),
    ("etcd.sh.j2", include_str!("../../templates/etcd.sh.j2")),
    (
        "kubeadm-init.yaml.j2",
        include_str!("../../templates/kubeadm-init.yaml.j2"),
    ),
    (
        "kubeadm-join.yaml.j2",
        include_str!("../../templates/kubeadm-join.yaml.j2"),
    ),
];

/// Everything the templates may use. Nothing secret: keys and the join token
/// are fetched at boot from the state store.
#[derive(Clone, Debug, Serialize)]
pub struct UserData {
    /// `master` or `node`.
    pub role: String,
    /// The instance's name in its env, e.g. `node-2`.
    pub name: String,
    pub index: u32,
    pub cluster_name: String,
    pub region: String,
    /// `/scopectl/<project>/<env>/`
    pub state_prefix: String,
    /// The API load balancer's name; its DNS name is looked up at boot.
    pub api_load_balancer: String,
    /// The minor, `1.34` (the package repository is per minor).
    pub kubernetes_version: String,
    /// The exact release, packages and pause image of that minor.
    pub kubernetes: addons::KubernetesPins,
    /// The kubelet's ECR credential provider, when a service's image is in
    /// ECR (the kubelet has no built-in ECR credentials since 1.27).
    pub ecr: Option<addons::EcrCredentialProvider>,
    pub service_cidr: String,
    pub pod_cidr: String,
    pub domain: String,
    /// The kubelets' clusterDNS: the tenth address of `service_cidr`, where
    /// the `kube-dns` Service is (`addons::dns_service_ip`).
    pub dns_service_ip: String,
    /// The `scopectl:id` of a master's etcd volume (`ec2/volume/etcd-master-N`),
    /// which its user data finds, mounts and keeps etcd on; empty for nodes.
    pub etcd_volume: String,
}

#[derive(Debug, thiserror::Error)]
#[error("rendering {template}: {source}")]
pub struct RenderError {
    /// The template, or what was being rendered.
    pub template: &'static str,
    #[source]
    pub source: RenderCause,
}

#[derive(Debug, thiserror::Error)]
pub enum RenderCause {
    #[error(transparent)]
    Template(#[from] minijinja::Error),
    /// An input or a rendered document that is not what it must be.
    #[error("{0}")]
    Invalid(String),
}

impl RenderError {
    pub fn template(template: &'static str, source: minijinja::Error) -> Self {
        RenderError {
            template,
            source: source.into(),
        }
    }

    pub fn invalid(template: &'static str, message: impl Into<String>) -> Self {
        RenderError {
            template,
            source: RenderCause::Invalid(message.into()),
        }
    }
}

/// The text without its comment lines (`# ...` and `#` alone, in scripts
/// and YAML alike); shebangs and ShellCheck directives stay. The templates
/// keep their comments; the user data must fit EC2's 16 KiB.
fn strip_comments(text: String) -> String {
    text.split_inclusive('\n')
        .filter(|line| {
            let t = line.trim_start();
            let comment = t.starts_with("# ") || t.trim_end() == "#";
            !comment || t.starts_with("# shellcheck ")
        })
        .collect()
}

fn environment() -> Result<Environment<'static>, RenderError> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    // `.yaml` names would otherwise get JSON auto-escaping (minijinja's
    // `json` feature): values are quoted explicitly with `tojson`.
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    env.set_keep_trailing_newline(true);
    env.add_filter("strip_comments", strip_comments);
    for (name, text) in TEMPLATES {
        env.add_template(name, text)
            .map_err(|source| RenderError::template(name, source))?;
    }
    Ok(env)
}

/// EC2's limit on an instance's user data, in bytes before base64.
pub const USER_DATA_LIMIT: usize = 16 * 1024;

/// The `#cloud-config` user data of one instance.
pub fn user_data(input: &UserData) -> Result<String, RenderError> {
    let template = "cloud-init.yaml.j2";
    let env = environment()?;
    let text = env
        .get_template(template)
        .and_then(|t| t.render(input))
        .map_err(|source| RenderError::template(template, source))?;
    let sent = compress(&text).len();
    if sent > USER_DATA_LIMIT {
        return Err(RenderError::invalid(
            template,
            format!(
                "the user data of {} is {sent} bytes gzipped; EC2 takes at most {USER_DATA_LIMIT}",
                input.name,
            ),
        ));
    }
    Ok(text)
}

/// The user data as sent: gzipped, which cloud-init recognises by its
/// magic bytes and unpacks (cloud-init `util.decomp_gzip`), so the scripts
/// fit EC2's 16 KiB with room to grow. Deterministic (no name, no time in
/// the header).
pub fn compress(text: &str) -> Vec<u8> {
    use std::io::Write as _;
    let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    // Writing to a Vec cannot fail.
    let _ = z.write_all(text.as_bytes());
    z.finish().unwrap_or_default()
}

#[cfg(test)]
mod tests;
#[cfg(test)]
pub(crate) mod validate_tests;
