//! From the merged layers of one env to a checked `Config`, one function per
//! section of the file: each error points at the value it is about.

use super::*;

impl FileLayer {
    pub(super) fn resolve(self, src: &Source, env: &str) -> Result<Config, ConfigError> {
        let Some(overlay) = self.env.get(env).cloned() else {
            let known: Vec<&str> = self.env.keys().map(String::as_str).collect();
            return Err(ConfigError::UnknownEnv {
                env: env.to_string(),
                at: src.location(None),
                known: known.join(", "),
            });
        };
        let project = overlay
            .project
            .clone()
            .or(self.project.clone())
            .ok_or_else(|| {
                src.error(
                    None,
                    "the config has no `project` name",
                    Some("add `project = \"name\"` at the top of the file; it names and tags everything scopectl creates".into()),
                )
            })?;
        check_name(src, &project, "project")?;
        check_name_str(src, env, "env name", None)?;

        let provider = match overlay.provider.as_ref().map(|p| p.get_ref().as_str()) {
            None | Some("aws") => Provider::Aws,
            Some("local") => Provider::Local,
            Some(other) => {
                return Err(src.at(
                    overlay.provider.as_ref().expect("checked"),
                    format!("unknown provider `{other}`"),
                    "use \"aws\" (the default) or \"local\"",
                ))
            }
        };

        let (kube_context, kubeconfig, secrets_from) = local_access(src, env, &overlay, provider)?;
        let aws = merge_opt(self.aws, overlay.aws, AwsLayer::merge).unwrap_or_default();
        let cluster =
            merge_opt(self.cluster, overlay.cluster, ClusterLayer::merge).unwrap_or_default();
        let network =
            merge_opt(self.network, overlay.network, NetworkLayer::merge).unwrap_or_default();
        let database =
            merge_opt(self.database, overlay.database, DatabaseLayer::merge).unwrap_or_default();
        let mut services = self.services;
        for (name, layer) in overlay.services {
            let merged = match services.remove(&name) {
                Some(base) => ServiceLayer::merge(base, layer),
                None => layer,
            };
            services.insert(name, merged);
        }

        let missing = |key: &str, example: &str| {
            src.error(
                None,
                format!("`{key}` is not set for env `{env}`"),
                Some(format!(
                    "add `{example}` to the base config or to [env.{env}]"
                )),
            )
        };

        let region = aws
            .region
            .ok_or_else(|| missing("aws.region", "[aws] region = \"us-east-1\""))?;
        if !region_shaped(region.get_ref()) {
            return Err(src.error(
                Some(region.span()),
                format!("`{}` is not an AWS region name", region.get_ref()),
                Some(format!(
                    "a region is written like `us-east-1` or `eu-central-2`; list the account's with `{}`",
                    crate::error::DESCRIBE_REGIONS
                )),
            ));
        }
        let aws = AwsConfig {
            region_at: src.location(Some(region.span())),
            region: region.into_inner(),
            profile: aws.profile.map(Spanned::into_inner),
        };

        let cluster = cluster_config(src, cluster, provider)?;
        let protected = overlay.protected.as_ref().is_some_and(|p| *p.get_ref());
        if protected && provider == Provider::Aws && cluster.api_allowed_cidrs.is_empty() {
            return Err(src.at(
                overlay.protected.as_ref().expect("protected is set"),
                format!("env `{env}` is protected but its cluster.api_allowed_cidrs is not set: its API would be open to the internet"),
                format!("set [env.{env}.cluster] api_allowed_cidrs = [\"<your office or VPN range>/32\"], the ranges that may reach the Kubernetes API"),
            ));
        }

        let clients = database.clients.clone();
        let (network, mut database) = if provider == Provider::Aws {
            let network = network_config(src, network, &cluster, &missing)?;
            let database = database_config(src, database, &missing)?;
            (network, database)
        } else {
            let database = local_database(src, env, database)?;
            // Airplane mode: no AWS network; keep inert values so later layers need no Options.
            (
                NetworkConfig {
                    placement: Placement::BesideDatabase,
                    cidr: "172.31.128.0/20".parse().expect("constant"),
                    cidr_at: src.location(None),
                    zones: None,
                    subnets: BTreeMap::new(),
                },
                database,
            )
        };

        // Services read secrets only from under the env's own prefix: never
        // another env's, never the state store (a service naming
        // `/scopectl/<project>/prod/pki/ca` would copy the CA key into a
        // Secret).
        let prefix_at = overlay
            .secrets_prefix
            .clone()
            .or(self.secrets_prefix.clone());
        let secrets_prefix = match &prefix_at {
            None => format!("/{}/{env}/", project.get_ref()),
            Some(p) => {
                let v = p.get_ref();
                if !v.starts_with('/') || !v.ends_with('/') || v.len() < 3 {
                    return Err(src.at(
                        p,
                        format!("secrets_prefix `{v}` is not an SSM path"),
                        format!(
                            "write a path that starts and ends with `/`, like \"/{}/{env}/\"",
                            project.get_ref()
                        ),
                    ));
                }
                if v.starts_with("/scopectl/") {
                    return Err(src.at(
                        p,
                        format!("secrets_prefix `{v}` is under the state store (`/scopectl/`)"),
                        "the state store holds the cluster's keys; keep the services' secrets elsewhere, like \"/<project>/<env>/\"",
                    ));
                }
                v.clone()
            }
        };
        // A local env reads no SSM (its values come from secrets_from).
        let out = services_config(
            src,
            services,
            &missing,
            (provider == Provider::Aws).then_some(secrets_prefix.as_str()),
        )?;
        for c in clients.iter().flat_map(|v| v.get_ref().iter()) {
            if !out.contains_key(c.get_ref()) {
                return Err(src.at(
                    c,
                    format!(
                        "database.clients names `{}`, which is not a service",
                        c.get_ref()
                    ),
                    format!(
                        "services are: {}",
                        out.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
            database.clients.push(c.get_ref().clone());
        }
        if secrets_from == SecretsFrom::Unset {
            if let Some((name, _)) = out.iter().find(|(_, s)| !s.secrets.is_empty()) {
                return Err(src.error(
                    None,
                    format!("services.{name} has secrets, but env `{env}` names no secrets_from"),
                    Some(format!(
                        "a local env never reads SSM: add `secrets_from = {{ file = \"{env}.secrets\" }}` (NAME=value lines, by the parameter names) or `secrets_from = {{ env_prefix = \"\" }}` to [env.{env}]"
                    )),
                ));
            }
        }

        Ok(Config {
            path: src.path.to_path_buf(),
            project: project.into_inner(),
            env: env.to_string(),
            protected: overlay.protected.map(Spanned::into_inner).unwrap_or(false),
            secrets_prefix,
            provider,
            kube_context,
            kubeconfig,
            secrets_from,
            aws,
            cluster,
            network,
            database,
            services: out,
        })
    }
}

/// Whether `name` is shaped like an AWS region: `us-east-1`, `us-gov-west-1`,
/// `ap-southeast-4`. Checked before any call: a typo (`us-east`,
/// `useast-1`) would otherwise reach the SDK, which sends it to a host name
/// that does not exist. A well-shaped name AWS does not know is found out
/// at the first call (see `providers::aws::error`); no list of regions is
/// kept here, so a new region needs no new scopectl.
fn region_shaped(name: &str) -> bool {
    let parts: Vec<&str> = name.split('-').collect();
    parts.len() >= 3
        && parts[0].len() == 2
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts[parts.len() - 1]
            .parse::<u8>()
            .is_ok_and(|n| n > 0 && parts[parts.len() - 1].len() <= 2)
}

/// The `[cluster]` section: ranges, groups, version, names and image.
fn cluster_config(
    src: &Source,
    cluster: ClusterLayer,
    provider: Provider,
) -> Result<ClusterConfig, ConfigError> {
    let addons = match &cluster.addons {
        // A laptop cluster (kind, k3d, minikube, Docker Desktop) comes with
        // its own pod network and DNS, and has no AWS to control.
        None if provider == Provider::Local => BTreeSet::new(),
        None => ADDONS.iter().map(|a| a.to_string()).collect(),
        Some(list) => {
            let mut out = BTreeSet::new();
            for a in list.get_ref() {
                if !ADDONS.contains(&a.get_ref().as_str()) {
                    return Err(src.at(
                        a,
                        format!("unknown add-on `{}`", a.get_ref()),
                        format!("cluster.addons takes: {}", ADDONS.join(", ")),
                    ));
                }
                if provider == Provider::Local && a.get_ref() == "cloud-controller-manager" {
                    return Err(src.at(
                        a,
                        "the AWS cloud controller manager needs an AWS env",
                        "remove it from cluster.addons of this provider = \"local\" env",
                    ));
                }
                out.insert(a.get_ref().clone());
            }
            out
        }
    };
    let service_cidr = match &cluster.service_cidr {
        Some(v) => cidr(src, v, "cluster.service_cidr")?,
        None => "10.96.0.0/12".parse().expect("constant"),
    };
    let pod_cidr = match &cluster.pod_cidr {
        Some(v) => cidr(src, v, "cluster.pod_cidr")?,
        None => "10.244.0.0/16".parse().expect("constant"),
    };
    if overlaps(&service_cidr, &pod_cidr) {
        let at = cluster.pod_cidr.as_ref().or(cluster.service_cidr.as_ref());
        return Err(src.error(
            at.map(|s| s.span()),
            format!("cluster.pod_cidr {pod_cidr} overlaps cluster.service_cidr {service_cidr}"),
            Some("give pods and services disjoint ranges, for example 10.244.0.0/16 and 10.96.0.0/12".into()),
        ));
    }
    let group =
        |g: Option<GroupLayer>, default_count: u32, what: &str| -> Result<Group, ConfigError> {
            let g = g.unwrap_or_default();
            let count = g
                .count
                .map(|c| (c.span(), *c.get_ref()))
                .unwrap_or((0..0, default_count.into()));
            if !(0..=500).contains(&count.1) || (what == "masters" && count.1 < 1) {
                return Err(src.error(
                    Some(count.0),
                    format!("cluster.{what}.count {} is out of range", count.1),
                    Some(if what == "masters" {
                        "use 1, 3 or 5 masters".into()
                    } else {
                        "use a count between 0 and 500".into()
                    }),
                ));
            }
            Ok(Group {
                count: count.1 as u32,
                instance_type: g
                    .instance_type
                    .map(Spanned::into_inner)
                    .unwrap_or_else(|| "m5.large".into()),
            })
        };
    // It lands in kubeadm's YAML, the kubelets' config and the API server
    // certificate's names: a DNS name, nothing else (RFC 1123, as the API
    // validates `clusterDomain`).
    if let Some(d) = &cluster.domain {
        if !is_dns_subdomain(d.get_ref()) {
            return Err(src.at(
                d,
                format!("cluster.domain `{}` is not a DNS name", d.get_ref()),
                "use lowercase letters, digits, `-` and `.`, like `cluster.local`",
            ));
        }
    }
    let domain = cluster
        .domain
        .map(Spanned::into_inner)
        .unwrap_or_else(|| "cluster.local".into());
    let kubernetes_version = match &cluster.kubernetes_version {
        None => DEFAULT_KUBERNETES_VERSION.to_string(),
        Some(v) => {
            // Only a minor whose every component (packages, pause image,
            // cloud controller manager) is pinned in versions.toml.
            let supported = crate::render::addons::supported_minors();
            if !supported.contains(v.get_ref()) {
                return Err(src.at(
                    v,
                    format!("cluster.kubernetes_version `{}` is not supported", v.get_ref()),
                    format!(
                        "use one of the minors scopectl pins every component of: {} (the default is {DEFAULT_KUBERNETES_VERSION})",
                        supported.iter().map(|m| format!("\"{m}\"")).collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
            v.get_ref().clone()
        }
    };
    let mut extra_sans = Vec::new();
    for san in cluster
        .extra_sans
        .as_ref()
        .map(|v| v.get_ref().as_slice())
        .unwrap_or_default()
    {
        if !valid_san(san.get_ref()) {
            return Err(src.at(
                san,
                format!(
                    "cluster.extra_sans entry `{}` is neither a DNS name nor an IP address",
                    san.get_ref()
                ),
                "write a host name like \"api.example.com\" or an address like \"10.0.0.10\"",
            ));
        }
        extra_sans.push(san.get_ref().clone());
    }
    let api_allowed_cidrs = ranges(
        src,
        cluster.api_allowed_cidrs.as_ref(),
        "cluster.api_allowed_cidrs",
    )?;
    let api_scheme = match &cluster.api_scheme {
        None => "internet-facing".to_string(),
        Some(s) if ["internet-facing", "internal"].contains(&s.get_ref().as_str()) => {
            s.get_ref().clone()
        }
        Some(s) => {
            return Err(src.at(
                s,
                format!("unknown cluster.api_scheme `{}`", s.get_ref()),
                "use \"internet-facing\" (the default) or \"internal\"",
            ))
        }
    };
    let api_endpoint = match &cluster.api_endpoint {
        None => None,
        Some(e) if valid_san(e.get_ref()) => Some(e.get_ref().clone()),
        Some(e) => {
            return Err(src.at(
                e,
                format!(
                    "cluster.api_endpoint `{}` is not a host name or IP address",
                    e.get_ref()
                ),
                "write the host only, like \"api.staging.example.com\" (port 443 is implied)",
            ))
        }
    };
    let image_name = match (&cluster.image_name, &cluster.ubuntu) {
        (Some(name), Some(_)) => {
            return Err(src.at(
                name,
                "cluster.image_name and cluster.ubuntu both choose the image",
                "keep one: cluster.ubuntu = \"24.04\" for Canonical's images of that release, or cluster.image_name for your own",
            ))
        }
        (Some(name), None) => name.get_ref().clone(),
        (None, release) => {
            let release = release
                .as_ref()
                .map(|r| r.get_ref().as_str())
                .unwrap_or(DEFAULT_UBUNTU);
            // An LTS release: YY.04 with an even YY.
            let lts = release
                .strip_suffix(".04")
                .and_then(|yy| yy.parse::<u32>().ok())
                .is_some_and(|yy| yy % 2 == 0 && release.len() == 5);
            if let (false, Some(r)) = (lts, &cluster.ubuntu) {
                return Err(src.at(
                    r,
                    format!("cluster.ubuntu `{release}` is not an Ubuntu LTS release"),
                    "name one like \"24.04\" or \"22.04\"",
                ));
            }
            ubuntu_images(release)
        }
    };
    let image_id = match &cluster.image_id {
        None => None,
        Some(id)
            if id.get_ref().strip_prefix("ami-").is_some_and(|h| {
                (8..=17).contains(&h.len()) && h.chars().all(|c| c.is_ascii_hexdigit())
            }) =>
        {
            Some(id.get_ref().clone())
        }
        Some(id) => return Err(src.at(
            id,
            format!("cluster.image_id `{}` is not an AMI id", id.get_ref()),
            "write an id like \"ami-0abcdef1234567890\", or remove it to follow cluster.image_name",
        )),
    };
    Ok(ClusterConfig {
        addons,
        image_id,
        kubernetes_version,
        api_endpoint,
        extra_sans,
        api_allowed_cidrs,
        api_scheme,
        service_cidr,
        pod_cidr,
        domain,
        masters: group(cluster.masters, 1, "masters")?,
        nodes: group(cluster.nodes, 3, "nodes")?,
        image_owner: cluster
            .image_owner
            .map(Spanned::into_inner)
            .unwrap_or_else(|| CANONICAL.into()),
        image_name,
    })
}

/// The `[network]` section of an AWS env.
fn network_config(
    src: &Source,
    network: NetworkLayer,
    cluster: &ClusterConfig,
    missing: &dyn Fn(&str, &str) -> ConfigError,
) -> Result<NetworkConfig, ConfigError> {
    let (service_cidr, pod_cidr) = (cluster.service_cidr, cluster.pod_cidr);
    let placement = match network.placement.as_ref().map(|p| p.get_ref().as_str()) {
        None | Some("beside-database") => Placement::BesideDatabase,
        Some("peered") => Placement::Peered,
        Some(other) => {
            return Err(src.at(
                network.placement.as_ref().expect("checked"),
                format!("unknown network.placement `{other}`"),
                "use \"beside-database\" or \"peered\"",
            ))
        }
    };
    let cidr_v = network
        .cidr
        .ok_or_else(|| missing("network.cidr", "[network] cidr = \"172.31.128.0/20\""))?;
    let net = cidr(src, &cidr_v, "network.cidr")?;
    if net.prefix_len() > 26 || net.prefix_len() < 16 {
        return Err(src.at(
            &cidr_v,
            format!("network.cidr {net} has a /{} prefix", net.prefix_len()),
            "use a prefix between /16 and /26 so each zone gets a subnet of /28 or larger",
        ));
    }
    for (what, other) in [
        ("cluster.service_cidr", service_cidr),
        ("cluster.pod_cidr", pod_cidr),
    ] {
        if overlaps(&net, &other) {
            return Err(src.at(
                &cidr_v,
                format!("network.cidr {net} overlaps {what} {other}"),
                "the VPC range and the cluster's pod and service ranges must be disjoint",
            ));
        }
    }
    let zones = match network.zones {
        None => None,
        Some(z) => {
            let list: Vec<String> = z.get_ref().iter().map(|s| s.get_ref().clone()).collect();
            if list.len() < 2 {
                return Err(src.at(
                    &z,
                    "network.zones names fewer than two zones",
                    "name at least two availability zones",
                ));
            }
            let mut seen = std::collections::BTreeSet::new();
            for item in z.get_ref() {
                if !seen.insert(item.get_ref()) {
                    return Err(src.at(
                        item,
                        format!("zone `{}` is listed twice", item.get_ref()),
                        "list each zone once",
                    ));
                }
            }
            Some(list)
        }
    };
    let mut subnets = BTreeMap::new();
    let mut seen: Vec<(Ipv4Net, String)> = Vec::new();
    for (zone, v) in network.subnets.map(Spanned::into_inner).unwrap_or_default() {
        let s = cidr(src, &v, &format!("network.subnets.{zone}"))?;
        if !net.contains(&s) {
            return Err(src.at(
                &v,
                format!("subnet {s} for {zone} is outside network.cidr {net}"),
                format!("pick a range inside {net}"),
            ));
        }
        if let Some((o, oz)) = seen.iter().find(|(o, _)| overlaps(o, &s)) {
            return Err(src.at(
                &v,
                format!("subnet {s} for {zone} overlaps the subnet {o} for {oz}"),
                "give each zone its own range",
            ));
        }
        if let Some(zs) = &zones {
            if !zs.contains(&zone) {
                return Err(src.at(
                    &v,
                    format!("zone `{zone}` has a subnet but is not in network.zones"),
                    "add it to network.zones or remove the subnet",
                ));
            }
        }
        seen.push((s, zone.clone()));
        subnets.insert(zone, s);
    }
    Ok(NetworkConfig {
        placement,
        cidr: net,
        cidr_at: src.location(Some(cidr_v.span())),
        zones,
        subnets,
    })
}

/// The `[database]` section of an AWS env.
fn database_config(
    src: &Source,
    database: DatabaseLayer,
    missing: &dyn Fn(&str, &str) -> ConfigError,
) -> Result<DatabaseConfig, ConfigError> {
    let rds = database.rds_instance.ok_or_else(|| {
        missing(
            "database.rds_instance",
            "[database] rds_instance = \"my-db\"",
        )
    })?;
    if !valid_rds_identifier(rds.get_ref()) {
        return Err(src.at(
            &rds,
            format!("`{}` is not a valid RDS instance identifier", rds.get_ref()),
            "identifiers are 1-63 letters, digits or hyphens, start with a letter, and do not end with a hyphen",
        ));
    }
    let port = match database.port {
        Some(p) if *p.get_ref() < 1 || *p.get_ref() > 65535 => {
            return Err(src.at(
                &p,
                "database.port is out of range",
                "use a port between 1 and 65535",
            ))
        }
        Some(p) => Some(*p.get_ref() as u16),
        None => None,
    };
    if let Some(host) = &database.host {
        return Err(src.at(
            host,
            "database.host is for envs with provider = \"local\"",
            "an AWS env's database is its RDS instance (database.rds_instance); remove database.host here",
        ));
    }
    Ok(DatabaseConfig {
        host: None,
        rds_instance_at: src.location(Some(rds.span())),
        rds_instance: rds.into_inner(),
        port,
        clients: Vec::new(),
    })
}

/// A port, checked.
fn port(src: &Source, p: &Spanned<i64>, key: &str) -> Result<u16, ConfigError> {
    u16::try_from(*p.get_ref())
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| {
            src.at(
                p,
                format!("{key} is out of range"),
                "use a port between 1 and 65535",
            )
        })
}

/// The `[database]` of a local env: a host name the `database` Service
/// names (an ExternalName, as the RDS endpoint in AWS envs).
fn local_database(
    src: &Source,
    env: &str,
    database: DatabaseLayer,
) -> Result<DatabaseConfig, ConfigError> {
    let host = database.host.ok_or_else(|| {
        src.error(
            None,
            format!("env `{env}` uses provider \"local\" but sets no database.host"),
            Some(format!(
                "add `database.host = \"host.docker.internal\"` (a database on the laptop) or the DNS name of one in the cluster to [env.{env}]"
            )),
        )
    })?;
    if host.get_ref().parse::<std::net::IpAddr>().is_ok() || !is_dns_name(host.get_ref()) {
        return Err(src.at(
            &host,
            format!("database.host `{}` is not a DNS name", host.get_ref()),
            "the `database` Service is an ExternalName, which takes a DNS name (not an address): e.g. host.docker.internal, or postgres.db.svc.cluster.local for a database in the cluster",
        ));
    }
    let port = match &database.port {
        Some(p) => port(src, p, "database.port")?,
        None => 5432,
    };
    Ok(DatabaseConfig {
        rds_instance: String::new(),
        rds_instance_at: src.location(Some(host.span())),
        host: Some(host.into_inner()),
        port: Some(port),
        clients: Vec::new(),
    })
}

fn is_dns_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

/// How a local env reaches its cluster and its secrets; AWS envs take
/// neither from here.
fn local_access(
    src: &Source,
    env: &str,
    overlay: &EnvLayer,
    provider: Provider,
) -> Result<(Option<String>, Option<PathBuf>, SecretsFrom), ConfigError> {
    let relative = |p: &Spanned<String>| -> PathBuf {
        let text = p.get_ref();
        match (text.strip_prefix("~/"), std::env::var_os("HOME")) {
            (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
            // Relative to the config file, as every path in it.
            _ => src
                .path
                .parent()
                .unwrap_or_else(|| std::path::Path::new("."))
                .join(text),
        }
    };
    if provider == Provider::Aws {
        let not_here = overlay
            .kube_context
            .as_ref()
            .or(overlay.kubeconfig.as_ref())
            .map(|v| (v, "kube_context and kubeconfig"))
            .or_else(|| {
                let s = overlay.secrets_from.as_ref()?;
                s.file
                    .as_ref()
                    .or(s.env_prefix.as_ref())
                    .map(|v| (v, "secrets_from"))
            });
        if let Some((at, what)) = not_here {
            return Err(src.at(
                at,
                format!("{what} are for envs with provider = \"local\""),
                "an AWS env's cluster and secrets are scopectl's own (its state store and SSM); remove it, or add provider = \"local\"",
            ));
        }
        return Ok((None, None, SecretsFrom::Ssm));
    }
    let context = overlay.kube_context.as_ref().ok_or_else(|| {
        src.error(
            None,
            format!("env `{env}` uses provider \"local\" but names no kube_context"),
            Some(format!(
                "add `kube_context = \"kind-NAME\"` to [env.{env}] (`kubectl config get-contexts` lists them); scopectl never guesses the cluster from the current context"
            )),
        )
    })?;
    let secrets = match &overlay.secrets_from {
        None => SecretsFrom::Unset,
        Some(SecretsFromLayer {
            file: Some(f),
            env_prefix: None,
        }) => SecretsFrom::File(relative(f)),
        Some(SecretsFromLayer {
            file: None,
            env_prefix: Some(p),
        }) => SecretsFrom::Env {
            prefix: p.get_ref().clone(),
        },
        Some(SecretsFromLayer {
            file: Some(f),
            env_prefix: Some(_),
        }) => {
            return Err(src.at(
                f,
                "secrets_from takes a file or an env_prefix, not both",
                "keep one of them",
            ))
        }
        Some(_) => {
            return Err(src.error(
                None,
                format!("secrets_from of env `{env}` names no source"),
                Some("write `secrets_from = { file = \"local.secrets\" }` or `secrets_from = { env_prefix = \"SCOPE_\" }`".into()),
            ))
        }
    };
    Ok((
        Some(context.get_ref().clone()),
        overlay.kubeconfig.as_ref().map(relative),
        secrets,
    ))
}

/// The `[services.*]` tables.
fn services_config(
    src: &Source,
    services: BTreeMap<String, ServiceLayer>,
    missing: &dyn Fn(&str, &str) -> ConfigError,
    secrets_prefix: Option<&str>,
) -> Result<BTreeMap<String, ServiceConfig>, ConfigError> {
    let mut out = BTreeMap::new();
    let mut explicit_ports: Vec<(String, u16)> = Vec::new();
    for (name, s) in services {
        check_name_str(src, &name, "service name", None)?;
        let image = s.image.ok_or_else(|| {
            missing(
                &format!("services.{name}.image"),
                "image = \"registry/repo\"",
            )
        })?;
        if image.get_ref().contains('@')
            || image
                .get_ref()
                .rsplit('/')
                .next()
                .is_some_and(|last| last.contains(':'))
        {
            return Err(src.at(
                &image,
                format!("services.{name}.image `{}` carries a tag", image.get_ref()),
                "give the repository only; tags belong to `scopectl rollout` (or `initial_tag` for the first up)",
            ));
        }
        let port = match s.port {
            Some(p) if !(1..=65535).contains(p.get_ref()) => {
                return Err(src.at(
                    &p,
                    format!("services.{name}.port is out of range"),
                    "use a port between 1 and 65535",
                ))
            }
            Some(p) => *p.get_ref() as u16,
            None => 8080,
        };
        let replicas = match s.replicas {
            Some(r) if !(0..=1000).contains(r.get_ref()) => {
                return Err(src.at(
                    &r,
                    format!("services.{name}.replicas is out of range"),
                    "use 0 to 1000 replicas",
                ))
            }
            Some(r) => *r.get_ref() as u32,
            None => 1,
        };
        let expose = match s.expose.as_ref().map(|e| e.get_ref().as_str()) {
            None | Some("none") => Expose::None,
            Some("elb") => Expose::Elb,
            Some(other) => {
                return Err(src.at(
                    s.expose.as_ref().expect("checked"),
                    format!("unknown expose `{other}`"),
                    "use \"elb\" or \"none\"",
                ))
            }
        };
        let node_port = match s.node_port {
            Some(p) if !(30000..=32767).contains(p.get_ref()) => {
                return Err(src.at(
                    &p,
                    format!("services.{name}.node_port is outside the NodePort range"),
                    "use a port between 30000 and 32767, or leave it out",
                ))
            }
            Some(p) if expose == Expose::None => {
                return Err(src.at(
                    &p,
                    format!("services.{name}.node_port is set but the service is not exposed"),
                    "add expose = \"elb\", or remove node_port",
                ))
            }
            Some(p) => {
                if let Some((other, _)) = explicit_ports
                    .iter()
                    .find(|(_, q)| *q == *p.get_ref() as u16)
                {
                    return Err(src.at(
                        &p,
                        format!("services.{name}.node_port is also services.{other}.node_port"),
                        "give each exposed service its own NodePort",
                    ));
                }
                explicit_ports.push((name.clone(), *p.get_ref() as u16));
                Some(*p.get_ref() as u16)
            }
            None => None,
        };
        let readiness = match &s.readiness {
            None => Readiness::Tcp,
            Some(r) => match (&r.http, &r.tcp) {
                (Some(path), None) if path.get_ref().starts_with('/') => {
                    Readiness::Http(path.get_ref().clone())
                }
                (Some(path), None) => {
                    return Err(src.at(
                        path,
                        format!(
                            "services.{name}.readiness.http `{}` is not a path",
                            path.get_ref()
                        ),
                        "give the path the service answers on, e.g. http = \"/healthz\"",
                    ))
                }
                (None, Some(_)) | (None, None) => Readiness::Tcp,
                (Some(path), Some(_)) => {
                    return Err(src.at(
                        path,
                        format!("services.{name}.readiness has both http and tcp"),
                        "keep one: http = \"/path\" or tcp = true",
                    ))
                }
            },
        };
        let resources = service_resources(src, &name, s.resources.as_ref())?;
        let secrets_at = s.secrets.as_ref().map(|m| m.span());
        let env = plain_map(src, &name, "env", s.env)?;
        let secrets = plain_map(src, &name, "secrets", s.secrets)?;
        for (var, param) in &secrets {
            if env.contains_key(var) {
                return Err(src.error(
                    secrets_at.clone(),
                    format!("services.{name}: `{var}` is in both env and secrets"),
                    Some("keep it in one of them".into()),
                ));
            }
            if !param.starts_with('/') {
                return Err(src.error(
                    secrets_at.clone(),
                    format!("services.{name}.secrets.{var} `{param}` is not an SSM parameter name"),
                    Some(
                        "give the parameter's full name, e.g. \"/scope/staging/db-password\""
                            .into(),
                    ),
                ));
            }
            if let Some(secrets_prefix) = secrets_prefix.filter(|p| !param.starts_with(p)) {
                return Err(src.error(
                    secrets_at.clone(),
                    format!(
                        "services.{name}.secrets.{var} `{param}` is outside this env's secrets prefix `{secrets_prefix}`"
                    ),
                    Some(format!(
                        "keep the env's secrets under {secrets_prefix} (or set `secrets_prefix` for the env; never under /scopectl/, the state store)"
                    )),
                ));
            }
        }
        let allowed_cidrs = ranges(
            src,
            s.allowed_cidrs.as_ref(),
            &format!("services.{name}.allowed_cidrs"),
        )?;
        out.insert(
            name,
            ServiceConfig {
                image: image.into_inner(),
                replicas,
                port,
                expose,
                node_port,
                initial_tag: s.initial_tag.map(Spanned::into_inner),
                readiness,
                resources,
                env,
                secrets,
                allowed_cidrs,
                run_as_root: s.run_as_root.map(Spanned::into_inner).unwrap_or(false),
                read_only_root: s.read_only_root.map(Spanned::into_inner).unwrap_or(false),
            },
        );
    }
    assign_node_ports(&mut out);
    Ok(out)
}

/// A Kubernetes quantity as scopectl accepts it: digits with an optional
/// fraction and one of the suffixes the API takes.
fn valid_quantity(q: &str) -> bool {
    const SUFFIXES: [&str; 14] = [
        "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "m", "k", "M", "G", "T", "P", "E", "",
    ];
    SUFFIXES.iter().any(|s| {
        q.strip_suffix(s).is_some_and(|n| {
            let mut parts = n.splitn(2, '.');
            let whole = parts.next().unwrap_or("");
            let frac = parts.next();
            !whole.is_empty()
                && whole.chars().all(|c| c.is_ascii_digit())
                && frac.is_none_or(|f| !f.is_empty() && f.chars().all(|c| c.is_ascii_digit()))
        })
    })
}

/// A quantity as the API server writes it back (`1000m` is `1`, `0.5` is
/// `500m`, `1024Mi` is `1Gi`), so that the plan never shows a change the
/// server would undo. Assumes `valid_quantity`.
pub(crate) fn canonical_quantity(q: &str) -> String {
    const BINARY: [&str; 6] = ["Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];
    const DECIMAL: [&str; 8] = ["m", "", "k", "M", "G", "T", "P", "E"];
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(q.len());
    let (number, suffix) = q.split_at(split);
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
    // The value as an integer of `scale` units of the suffix.
    let digits = format!("{whole}{frac}");
    let Ok(mantissa) = digits.parse::<u128>() else {
        return q.to_string();
    };
    let scale = 10u128.pow(frac.len() as u32);
    if let Some(k) = BINARY.iter().position(|b| *b == suffix) {
        let bytes = mantissa * 1024u128.pow(k as u32 + 1);
        if !bytes.is_multiple_of(scale) {
            return q.to_string();
        }
        let bytes = bytes / scale;
        for (i, b) in BINARY.iter().enumerate().rev() {
            let unit = 1024u128.pow(i as u32 + 1);
            if bytes.is_multiple_of(unit) {
                return format!("{}{b}", bytes / unit);
            }
        }
        return bytes.to_string();
    }
    let Some(k) = DECIMAL.iter().position(|d| *d == suffix) else {
        return q.to_string();
    };
    // In thousandths of a unit; finer than that rounds up, as the API does.
    let milli = (mantissa * 1000u128.pow(k as u32)).div_ceil(scale);
    for (i, d) in DECIMAL.iter().enumerate().rev() {
        let unit = 1000u128.pow(i as u32);
        if milli.is_multiple_of(unit) {
            return format!("{}{d}", milli / unit);
        }
    }
    q.to_string()
}

fn service_resources(
    src: &Source,
    name: &str,
    layer: Option<&ResourcesLayer>,
) -> Result<Resources, ConfigError> {
    let pick = |v: Option<&Spanned<String>>, key: &str| -> Result<Option<String>, ConfigError> {
        match v {
            None => Ok(None),
            Some(q) if valid_quantity(q.get_ref()) => Ok(Some(canonical_quantity(q.get_ref()))),
            Some(q) => Err(src.at(
                q,
                format!(
                    "services.{name}.resources.{key} `{}` is not a quantity",
                    q.get_ref()
                ),
                "write CPU as \"250m\" or \"1\" and memory as \"256Mi\" or \"1Gi\"",
            )),
        }
    };
    let empty = ResourcesLayer::default();
    let l = layer.unwrap_or(&empty);
    let memory = pick(l.memory.as_ref(), "memory")?.unwrap_or_else(|| "128Mi".into());
    Ok(Resources {
        cpu: pick(l.cpu.as_ref(), "cpu")?.unwrap_or_else(|| "100m".into()),
        memory_limit: pick(l.memory_limit.as_ref(), "memory_limit")?
            .unwrap_or_else(|| memory.clone()),
        memory,
        cpu_limit: pick(l.cpu_limit.as_ref(), "cpu_limit")?,
    })
}

/// `env` and `secrets`: names a container accepts, string values.
fn plain_map(
    src: &Source,
    name: &str,
    what: &str,
    map: Option<Spanned<BTreeMap<String, Spanned<String>>>>,
) -> Result<BTreeMap<String, String>, ConfigError> {
    let Some(map) = map else {
        return Ok(BTreeMap::new());
    };
    let at = map.clone();
    let mut out = BTreeMap::new();
    for (k, v) in map.into_inner() {
        let ok = k
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !ok {
            return Err(src.at(
                &at,
                format!("services.{name}.{what}: `{k}` is not an environment variable name"),
                "use letters, digits and `_`, not starting with a digit",
            ));
        }
        out.insert(k, v.into_inner());
    }
    Ok(out)
}

/// IPv4 ranges, each checked and normalised (`what` names the key).
fn ranges(
    src: &Source,
    list: Option<&Spanned<Vec<Spanned<String>>>>,
    what: &str,
) -> Result<Vec<String>, ConfigError> {
    let mut out = Vec::new();
    for c in list.map(|v| v.get_ref().as_slice()).unwrap_or_default() {
        let net: ipnet::Ipv4Net = c.get_ref().parse().map_err(|_| {
            src.at(
                c,
                format!("{what} entry `{}` is not an IPv4 range", c.get_ref()),
                "write a range like \"203.0.113.0/24\" (a single address is \"203.0.113.7/32\")",
            )
        })?;
        out.push(net.trunc().to_string());
    }
    Ok(out)
}

/// An RFC 1123 subdomain: dot-separated labels of lowercase letters, digits
/// and inner `-`, at most 63 characters each and 253 in all.
pub fn is_dns_subdomain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

#[cfg(test)]
mod region_tests {
    use super::region_shaped;

    #[test]
    fn region_names_are_checked_for_shape_only() {
        for ok in [
            "us-east-1",
            "eu-central-2",
            "us-gov-west-1",
            "ap-southeast-4",
            "il-central-1",
            // Shaped like one: whether AWS has it is for AWS to say.
            "us-east-7",
        ] {
            assert!(region_shaped(ok), "{ok}");
        }
        for bad in [
            "",
            "us-east",
            "useast1",
            "us-east-1a",
            "US-EAST-1",
            "us--1",
            "us-east-0",
            "u-east-1",
            "us-east-100",
            "us east 1",
        ] {
            assert!(!region_shaped(bad), "{bad}");
        }
    }
}
