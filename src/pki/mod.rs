//! The cluster PKI as kubeadm lays it out under `/etc/kubernetes/pki`: which
//! items there are (pure), issuing them with rcgen, the stored format, reading
//! certificates back, and the admin kubeconfig.
//!
//! Each item is one SecureString parameter under `/scopectl/<p>/<e>/pki/`,
//! named after kubeadm's file stem (`pki/etcd/server` becomes
//! `etcd/server.crt` and `etcd/server.key` on a master). The parameter's
//! description holds the item's public facts (subject, SANs, issuer
//! generation, expiry) as JSON, so planning reads metadata only and never
//! decrypts a key.

mod issue;
mod kubeconfig;
mod store;

pub use issue::{
    new_ca, new_key_pair, new_leaf, new_secret_key, new_token, new_user_cert, CaMaterial, Issued,
};
pub use kubeconfig::{admin_kubeconfig, merge_kubeconfig, KubeconfigParts};
pub use store::{
    ca_value, parse_ca_value, pem_blocks, read_certificate, renewal, rfc3339, CertInfo, Renewal,
};

use ipnet::Ipv4Net;

/// kubeadm's validities: CAs ten years, leaves one year.
pub const CA_VALIDITY_DAYS: i64 = 3650;
pub const LEAF_VALIDITY_DAYS: i64 = 365;
/// A leaf this close to expiry is reissued by `up`.
pub const RENEW_WITHIN_DAYS: i64 = 30;
/// The `renewal` of a leaf that needs nothing.
pub const NOT_DUE: &str = "not due";
/// The `renewal` asked for by `pki rotate`.
pub const ROTATION_REQUESTED: &str = "rotation requested";

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("generating a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("reading a certificate: {0}")]
    Parse(String),
    #[error("no random numbers from the system: {0}")]
    Random(String),
}

/// What a leaf is for (its extended key usages).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Usage {
    Server,
    Client,
    Both,
}

impl Usage {
    pub fn as_str(self) -> &'static str {
        match self {
            Usage::Server => "server",
            Usage::Client => "client",
            Usage::Both => "server, client",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Usage::Server, Usage::Client, Usage::Both]
            .into_iter()
            .find(|u| u.as_str() == s)
    }
}

/// Which names a leaf carries beyond its static ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Names {
    None,
    /// The API server: the API load balancer's DNS name and the masters' addresses and DNS names.
    ApiServer,
    /// etcd server and peer: the masters' addresses and DNS names (kubeadm's node names).
    Etcd,
}

pub struct CaSpec {
    pub stem: &'static str,
    pub common_name: &'static str,
}

pub struct LeafSpec {
    pub stem: &'static str,
    pub common_name: &'static str,
    pub organization: Option<&'static str>,
    /// The stem of the CA that signs it.
    pub ca: &'static str,
    pub usage: Usage,
    pub names: Names,
}

pub const CAS: &[CaSpec] = &[
    CaSpec {
        stem: "ca",
        common_name: "kubernetes",
    },
    CaSpec {
        stem: "front-proxy-ca",
        common_name: "front-proxy-ca",
    },
    CaSpec {
        stem: "etcd/ca",
        common_name: "etcd-ca",
    },
];

const fn leaf(
    stem: &'static str,
    common_name: &'static str,
    organization: Option<&'static str>,
    ca: &'static str,
    usage: Usage,
    names: Names,
) -> LeafSpec {
    LeafSpec {
        stem,
        common_name,
        organization,
        ca,
        usage,
        names,
    }
}

/// Subjects and usages as kubeadm issues them (`kubeadm certs` and the
/// kubeconfig phase).
pub const LEAVES: &[LeafSpec] = &[
    leaf(
        "apiserver",
        "kube-apiserver",
        None,
        "ca",
        Usage::Server,
        Names::ApiServer,
    ),
    leaf(
        "apiserver-kubelet-client",
        "kube-apiserver-kubelet-client",
        Some("kubeadm:cluster-admins"),
        "ca",
        Usage::Client,
        Names::None,
    ),
    leaf(
        "front-proxy-client",
        "front-proxy-client",
        None,
        "front-proxy-ca",
        Usage::Client,
        Names::None,
    ),
    leaf(
        "apiserver-etcd-client",
        "kube-apiserver-etcd-client",
        None,
        "etcd/ca",
        Usage::Client,
        Names::None,
    ),
    leaf(
        "etcd/server",
        "kube-etcd",
        None,
        "etcd/ca",
        Usage::Both,
        Names::Etcd,
    ),
    leaf(
        "etcd/peer",
        "kube-etcd-peer",
        None,
        "etcd/ca",
        Usage::Both,
        Names::Etcd,
    ),
    leaf(
        "etcd/healthcheck-client",
        "kube-etcd-healthcheck-client",
        None,
        "etcd/ca",
        Usage::Client,
        Names::None,
    ),
    leaf(
        "admin",
        "kubernetes-admin",
        // kubeadm's admin group since 1.29 (bound to cluster-admin by
        // `kubeadm init`, revocable by deleting that binding), not
        // system:masters, which no RBAC change can take back.
        Some(ADMIN_GROUP),
        "ca",
        Usage::Client,
        Names::None,
    ),
    leaf(
        "controller-manager",
        "system:kube-controller-manager",
        None,
        "ca",
        Usage::Client,
        Names::None,
    ),
    leaf(
        "scheduler",
        "system:kube-scheduler",
        None,
        "ca",
        Usage::Client,
        Names::None,
    ),
];

/// The service-account signing key pair (`sa.key`, `sa.pub`).
pub const SERVICE_ACCOUNT: &str = "sa";
/// The group of scopectl's admin certificate and of `kubeconfig`'s
/// short-lived ones (kubeadm `constants.ClusterAdminsGroupAndClusterRoleBinding`).
pub const ADMIN_GROUP: &str = "kubeadm:cluster-admins";
/// The key Secrets are encrypted with in etcd (aescbc, 32 bytes, base64):
/// masters read it, nodes cannot.
pub const ENCRYPTION_KEY: &str = "encryption";
/// The token nodes join with.
pub const BOOTSTRAP_TOKEN: &str = "bootstrap-token";
/// A join token's life: kubeadm's default, so a token leaked from a node's
/// disk or a log is worth a day at most.
pub const TOKEN_TTL: ::time::Duration = ::time::Duration::hours(24);
/// As `ttl` reads in the plan.
pub const TOKEN_TTL_WORDS: &str = "24h";
/// Less than this left and a launch makes a new token: a boot and its join
/// (discovery waits up to 30 minutes) fit well within it.
pub const TOKEN_LAUNCH_MARGIN: ::time::Duration = ::time::Duration::hours(2);

/// A token's state at `now` from its recorded expiry: `usable` (a launch may
/// use it), `expiring` (valid, too short for a launch) or `expired` (or no
/// expiry recorded: a token from before expiries, which never expires).
pub fn token_state(expires: Option<&str>, now: ::time::OffsetDateTime) -> &'static str {
    let f = ::time::format_description::well_known::Rfc3339;
    match expires.and_then(|e| ::time::OffsetDateTime::parse(e, &f).ok()) {
        Some(t) if t - now >= TOKEN_LAUNCH_MARGIN => "usable",
        Some(t) if t > now => "expiring",
        _ => "expired",
    }
}

pub fn leaf_spec(stem: &str) -> Option<&'static LeafSpec> {
    LEAVES.iter().find(|l| l.stem == stem)
}

pub fn ca_spec(stem: &str) -> Option<&'static CaSpec> {
    CAS.iter().find(|c| c.stem == stem)
}

/// `CN=..., O=...` as the plan and `pki status` show it.
pub fn subject(common_name: &str, organization: Option<&str>) -> String {
    match organization {
        Some(o) => format!("CN={common_name}, O={o}"),
        None => format!("CN={common_name}"),
    }
}

/// The API server certificate's names known before anything exists; the
/// load balancer's DNS name and the masters' addresses and DNS names are added at issue.
pub fn api_server_sans(
    service_cidr: Ipv4Net,
    domain: &str,
    api_endpoint: Option<&str>,
    extra: &[String],
) -> Vec<String> {
    let first_service_ip = u32::from(service_cidr.network()).saturating_add(1);
    let mut sans = vec![
        "kubernetes".to_string(),
        "kubernetes.default".into(),
        "kubernetes.default.svc".into(),
        format!("kubernetes.default.svc.{domain}"),
        std::net::Ipv4Addr::from(first_service_ip).to_string(),
        "127.0.0.1".into(),
    ];
    sans.extend(api_endpoint.map(str::to_string));
    sans.extend(extra.iter().cloned());
    sans.sort();
    sans.dedup();
    sans
}

/// etcd serves on localhost and on each master's address.
pub fn etcd_sans() -> Vec<String> {
    vec!["127.0.0.1".into(), "::1".into(), "localhost".into()]
}

#[cfg(test)]
mod tests;
