//! Config: schema, env overlay merge, validation with source spans.
//!
//! The file is read twice over in spirit: serde (with `deny_unknown_fields`)
//! catches unknown keys and wrong types with a span; then the env overlay is
//! merged onto the base (deep merge, arrays replace) and the result is
//! validated, still carrying the span of whichever layer set each value.

mod error;
pub(crate) mod resolve;
mod schema;

pub use error::{ConfigError, Location};
pub use schema::*;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;
use toml::Spanned;

/// The config for one env, merged and validated.
#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    pub project: String,
    pub env: String,
    pub protected: bool,
    /// Where services' secrets may live in SSM: `/<project>/<env>/` unless
    /// set; never the state store's `/scopectl/`.
    pub secrets_prefix: String,
    pub provider: Provider,
    /// A local env's cluster: this context of the kubeconfig.
    pub kube_context: Option<String>,
    /// The kubeconfig file; None: `KUBECONFIG`, else `~/.kube/config`.
    pub kubeconfig: Option<PathBuf>,
    /// Where the services' secret values come from.
    pub secrets_from: SecretsFrom,
    pub aws: AwsConfig,
    pub cluster: ClusterConfig,
    pub network: NetworkConfig,
    pub database: DatabaseConfig,
    pub services: BTreeMap<String, ServiceConfig>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    Aws,
    Local,
}

/// Where the values of `services.*.secrets` are read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretsFrom {
    /// SSM parameters (AWS envs).
    Ssm,
    /// A file of `NAME=value` lines, by the names the services' `secrets` give.
    File(PathBuf),
    /// Environment variables: the prefix then the name, upper-cased, every
    /// character other than a letter or digit an underscore.
    Env { prefix: String },
    /// A local env that names no source (fine while no service has secrets).
    Unset,
}

impl SecretsFrom {
    /// The environment variable a parameter's value is read from.
    pub fn variable(prefix: &str, param: &str) -> String {
        let name: String = param
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .collect();
        format!("{prefix}{}", name.trim_start_matches('_'))
    }
}

/// The add-ons scopectl can install, by the names `cluster.addons` takes.
pub const ADDONS: [&str; 3] = ["pod-network", "cloud-controller-manager", "coredns"];

#[derive(Debug, Clone)]
pub struct AwsConfig {
    pub region: String,
    /// Where `region` was written: errors about the region point there.
    pub region_at: Location,
    pub profile: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Group {
    pub count: u32,
    pub instance_type: String,
}

#[derive(Debug, Clone)]
pub struct ClusterConfig {
    pub kubernetes_version: String,
    pub service_cidr: Ipv4Net,
    pub pod_cidr: Ipv4Net,
    pub domain: String,
    pub masters: Group,
    pub nodes: Group,
    /// The AMI: the newest image of this owner whose name matches (an EC2
    /// filter pattern). The default names one Ubuntu LTS release
    /// (`cluster.ubuntu`, [`ubuntu_images`]): a new release never replaces a
    /// running env's instances.
    pub image_owner: String,
    pub image_name: String,
    /// A pinned AMI: used as is, and a change replaces the instances. Without
    /// it, running instances keep their image until `up --upgrade-image`.
    pub image_id: Option<String>,
    /// The API server's address for kubeconfigs, when not the API load
    /// balancer's DNS name (a DNS alias); also a SAN of its certificate.
    pub api_endpoint: Option<String>,
    /// More names and addresses for the API server certificate.
    pub extra_sans: Vec<String>,
    /// Who may reach the API's load balancer (IPv4 ranges); empty when not
    /// set, which admits anyone (refused for a protected env).
    pub api_allowed_cidrs: Vec<String>,
    /// The API balancer's scheme: `internet-facing` (the default) or
    /// `internal` (reachable from the VPC and what is peered or connected).
    pub api_scheme: String,
    /// The add-ons scopectl installs (names of [`ADDONS`]): all of them on
    /// AWS, none on a local env (a laptop cluster has its own).
    pub addons: BTreeSet<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Placement {
    BesideDatabase,
    Peered,
}

#[derive(Debug, Clone)]
pub struct NetworkConfig {
    pub placement: Placement,
    pub cidr: Ipv4Net,
    /// Where `cidr` was written, so checks against looked-up facts can still
    /// point at the file.
    pub cidr_at: Location,
    /// Availability zones to use; `None` means the first three the region offers.
    pub zones: Option<Vec<String>>,
    /// Explicit subnet CIDRs by zone; others are carved from `cidr`.
    pub subnets: BTreeMap<String, Ipv4Net>,
}

#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    /// A local env's database: a DNS name the `database` Service names.
    pub host: Option<String>,
    pub rds_instance: String,
    pub rds_instance_at: Location,
    /// Overrides the port the RDS endpoint reports.
    pub port: Option<u16>,
    /// The services that use the database: when set, NetworkPolicies admit
    /// only their pods to it (enforced by a pod network that implements
    /// NetworkPolicy; flannel does not).
    pub clients: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct ServiceConfig {
    pub image: String,
    pub replicas: u32,
    pub port: u16,
    pub expose: Expose,
    /// The NodePort behind the service's load balancer (exposed services only).
    pub node_port: Option<u16>,
    pub initial_tag: Option<String>,
    /// TCP on `port` unless an HTTP path is given.
    pub readiness: Readiness,
    pub resources: Resources,
    /// Plain environment variables, by name.
    pub env: BTreeMap<String, String>,
    /// Environment variables from SSM parameters (variable -> parameter
    /// name): a Kubernetes Secret, never shown.
    pub secrets: BTreeMap<String, String>,
    /// The image must run as root (the pod's `runAsNonRoot` is dropped).
    pub run_as_root: bool,
    /// The container's root filesystem is read-only.
    pub read_only_root: bool,
    /// Who may reach its load balancer (exposed services); anyone when empty.
    pub allowed_cidrs: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    Tcp,
    Http(String),
}

/// Requests and limits, as Kubernetes quantities.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resources {
    pub cpu: String,
    pub memory: String,
    /// None: no CPU limit (throttling hurts latency more than it protects).
    pub cpu_limit: Option<String>,
    /// Defaults to the memory request: memory is not compressible.
    pub memory_limit: String,
}

/// The Kubernetes minor of a config that names none: the newest whose every
/// component is pinned (templates/addons/versions.toml) and in upstream
/// support when this release was made. A constant, not "the newest today":
/// a default that moved by itself would replace a running env's instances.
pub const DEFAULT_KUBERNETES_VERSION: &str = "1.35";

/// Canonical's account, which publishes the official Ubuntu images.
pub const CANONICAL: &str = "099720109477";
/// The Ubuntu LTS release of a config that names none (`cluster.ubuntu`).
pub const DEFAULT_UBUNTU: &str = "24.04";

/// Canonical's amd64 server images of one Ubuntu release (`24.04`): gp2 and
/// gp3 builds alike (`hvm-ssd/`, `hvm-ssd-gp3/`), any code name.
pub fn ubuntu_images(release: &str) -> String {
    format!("ubuntu/images/hvm-ssd*/ubuntu-*-{release}-amd64-server-*")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expose {
    None,
    Elb,
}

/// Gives each exposed service without an explicit `node_port` a stable one:
/// from a hash of its name, so adding or removing a service moves no other.
fn assign_node_ports(services: &mut BTreeMap<String, ServiceConfig>) {
    use sha2::{Digest, Sha256};
    let mut taken: Vec<u16> = services.values().filter_map(|s| s.node_port).collect();
    for (name, s) in services.iter_mut() {
        if s.expose != Expose::Elb || s.node_port.is_some() {
            continue;
        }
        let h = Sha256::digest(name.as_bytes());
        let mut port = 30000 + (u16::from_be_bytes([h[0], h[1]]) % 2768);
        while taken.contains(&port) {
            port = if port == 32767 { 30000 } else { port + 1 };
        }
        taken.push(port);
        s.node_port = Some(port);
    }
}

/// A DNS name (letters, digits, `-`, `.`, an optional leading `*.`) or an IP address.
fn valid_san(s: &str) -> bool {
    if s.parse::<std::net::IpAddr>().is_ok() {
        return true;
    }
    let name = s.strip_prefix("*.").unwrap_or(s);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// Reads `path` and resolves `env` into a validated [`Config`].
pub fn load(path: &Path, env: &str) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(path, &text, env)
}

/// Parses config text; `path` is only used in messages.
pub fn parse(path: &Path, text: &str, env: &str) -> Result<Config, ConfigError> {
    let src = Source { path, text };
    let file: FileLayer = toml::from_str(text).map_err(|e| {
        let (msg, hint) = toml_hint(e.message());
        src.error(e.span(), msg, hint)
    })?;
    file.resolve(&src, env)
}

/// Lists the env names the file defines (for messages and completion).
pub fn env_names(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| toml::from_str::<FileLayer>(&t).ok())
        .map(|f| f.env.keys().cloned().collect())
        .unwrap_or_default()
}

pub(crate) struct Source<'a> {
    pub path: &'a Path,
    pub text: &'a str,
}

impl Source<'_> {
    pub fn location(&self, span: Option<std::ops::Range<usize>>) -> Location {
        Location::from_span(self.path, self.text, span)
    }

    pub fn error(
        &self,
        span: Option<std::ops::Range<usize>>,
        message: impl Into<String>,
        hint: Option<String>,
    ) -> ConfigError {
        ConfigError::Invalid {
            at: self.location(span),
            message: message.into(),
            hint,
        }
    }

    fn at<T>(
        &self,
        v: &Spanned<T>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> ConfigError {
        self.error(Some(v.span()), message, Some(hint.into()))
    }
}

/// Adds a hint to serde's own messages where we can say more.
fn toml_hint(msg: &str) -> (String, Option<String>) {
    let msg = msg.trim().to_string();
    let hint = if msg.starts_with("unknown field") {
        Some("remove the key or fix its spelling; the config reference is in README.md".to_string())
    } else if msg.starts_with("invalid type") {
        Some("check the value's type against the config reference in README.md".to_string())
    } else if msg.starts_with("unknown variant") {
        Some("use one of the values listed above".to_string())
    } else if msg.starts_with("missing field") {
        Some("add the key; the config reference is in README.md".to_string())
    } else if msg.starts_with("duplicate key") {
        Some("each key may appear once per table; remove one of them".to_string())
    } else {
        Some("this is not valid TOML here: tables are `[name]`, values `key = value`".to_string())
    };
    (msg, hint)
}

fn cidr(src: &Source, v: &Spanned<String>, what: &str) -> Result<Ipv4Net, ConfigError> {
    let net: Ipv4Net = v.get_ref().parse().map_err(|_| {
        src.at(
            v,
            format!("{what} `{}` is not an IPv4 CIDR", v.get_ref()),
            "write it as address/prefix, for example \"172.31.128.0/20\"",
        )
    })?;
    if net.trunc() != net {
        return Err(src.at(
            v,
            format!("{what} `{}` has host bits set", v.get_ref()),
            format!("did you mean \"{}\"?", net.trunc()),
        ));
    }
    Ok(net)
}

fn overlaps(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

fn merge_opt<T>(base: Option<T>, over: Option<T>, f: fn(T, T) -> T) -> Option<T> {
    match (base, over) {
        (Some(b), Some(o)) => Some(f(b, o)),
        (b, o) => o.or(b),
    }
}

fn check_name(src: &Source, v: &Spanned<String>, what: &str) -> Result<(), ConfigError> {
    check_name_str(src, v.get_ref(), what, Some(v.span()))
}

/// Names end up in AWS names, tags and DNS labels: keep them to a safe alphabet.
fn check_name_str(
    src: &Source,
    name: &str,
    what: &str,
    span: Option<std::ops::Range<usize>>,
) -> Result<(), ConfigError> {
    let ok = !name.is_empty()
        && name.len() <= 32
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(src.error(
            span,
            format!("{what} `{name}` is not a valid name"),
            Some("use 1-32 lowercase letters, digits and hyphens, starting with a letter".into()),
        ))
    }
}

fn valid_rds_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.starts_with(|c: char| c.is_ascii_alphabetic())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !s.ends_with('-')
        && !s.contains("--")
}

#[cfg(test)]
mod tests;
