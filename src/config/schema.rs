//! The file as written: every key optional, so base and env layers share shapes.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileLayer {
    pub project: Option<Spanned<String>>,
    pub secrets_prefix: Option<Spanned<String>>,
    pub aws: Option<AwsLayer>,
    pub cluster: Option<ClusterLayer>,
    pub network: Option<NetworkLayer>,
    pub database: Option<DatabaseLayer>,
    #[serde(default)]
    pub services: BTreeMap<String, ServiceLayer>,
    #[serde(default)]
    pub env: BTreeMap<String, EnvLayer>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvLayer {
    pub project: Option<Spanned<String>>,
    pub protected: Option<Spanned<bool>>,
    pub secrets_prefix: Option<Spanned<String>>,
    pub provider: Option<Spanned<String>>,
    pub kube_context: Option<Spanned<String>>,
    pub kubeconfig: Option<Spanned<String>>,
    pub secrets_from: Option<SecretsFromLayer>,
    pub aws: Option<AwsLayer>,
    pub cluster: Option<ClusterLayer>,
    pub network: Option<NetworkLayer>,
    pub database: Option<DatabaseLayer>,
    #[serde(default)]
    pub services: BTreeMap<String, ServiceLayer>,
}

/// Overlay wins field by field; nested tables merge, arrays and scalars replace.
macro_rules! layer {
    ($name:ident { $($field:ident : $ty:ty),* $(,)? } $(nested { $($n:ident : $nty:ty),* })?) => {
        #[derive(Debug, Default, Clone, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            $(pub $field: Option<Spanned<$ty>>,)*
            $($(pub $n: Option<$nty>,)*)?
        }
        impl $name {
            pub fn merge(base: Self, over: Self) -> Self {
                Self {
                    $($field: over.$field.or(base.$field),)*
                    $($($n: match (base.$n, over.$n) {
                        (Some(b), Some(o)) => Some(<$nty>::merge(b, o)),
                        (b, o) => o.or(b),
                    },)*)?
                }
            }
        }
    };
}

layer!(AwsLayer {
    region: String,
    profile: String
});
layer!(GroupLayer {
    count: i64,
    instance_type: String
});
layer!(ClusterLayer {
    kubernetes_version: String,
    service_cidr: String,
    pod_cidr: String,
    domain: String,
    image_owner: String,
    image_name: String,
    image_id: String,
    ubuntu: String,
    api_endpoint: String,
    extra_sans: Vec<Spanned<String>>,
    api_allowed_cidrs: Vec<Spanned<String>>,
    api_scheme: String,
    addons: Vec<Spanned<String>>,
} nested { masters: GroupLayer, nodes: GroupLayer });
layer!(NetworkLayer {
    placement: String,
    cidr: String,
    zones: Vec<Spanned<String>>,
    subnets: BTreeMap<String, Spanned<String>>,
});
layer!(DatabaseLayer {
    rds_instance: String,
    host: String,
    port: i64,
    clients: Vec<Spanned<String>>,
});
layer!(SecretsFromLayer {
    file: String,
    env_prefix: String
});
layer!(ServiceLayer {
    image: String,
    replicas: i64,
    port: i64,
    expose: String,
    node_port: i64,
    initial_tag: String,
    env: BTreeMap<String, Spanned<String>>,
    secrets: BTreeMap<String, Spanned<String>>,
    run_as_root: bool,
    read_only_root: bool,
    allowed_cidrs: Vec<Spanned<String>>,
} nested { readiness: ReadinessLayer, resources: ResourcesLayer });
layer!(ReadinessLayer {
    http: String,
    tcp: bool
});
layer!(ResourcesLayer {
    cpu: String,
    memory: String,
    cpu_limit: String,
    memory_limit: String,
});
