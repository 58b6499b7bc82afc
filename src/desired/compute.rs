//! The compute layer: an IAM role and instance profile per role, masters and
//! nodes spread over the cluster's zones, the API load balancer and one per
//! exposed service, and each instance's registration with its balancers.

use sha2::{Digest, Sha256};

use super::network::{elb_group, MASTERS, NODES};
use super::{DesiredError, Facts};
use crate::config::{Config, Expose};
use crate::model::{Actual, Desired, Kind, Ownership, Props, ResourceId, Value};
use crate::render::{dns_service_ip, user_data, UserData};

fn props<const N: usize>(items: [(&str, Value); N]) -> Props {
    items.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

fn map<const N: usize>(items: [(&str, Value); N]) -> Value {
    Value::Map(items.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

/// The same JSON document whatever its key order and spacing: keys sorted.
pub fn canonical_json(text: &str) -> String {
    fn sort(v: serde_json::Value) -> serde_json::Value {
        match v {
            serde_json::Value::Object(m) => {
                let sorted: std::collections::BTreeMap<String, serde_json::Value> =
                    m.into_iter().map(|(k, v)| (k, sort(v))).collect();
                serde_json::Value::Object(sorted.into_iter().collect())
            }
            serde_json::Value::Array(a) => {
                serde_json::Value::Array(a.into_iter().map(sort).collect())
            }
            other => other,
        }
    }
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(v) => sort(v).to_string(),
        Err(_) => text.to_string(),
    }
}

/// A classic ELB name: at most 32 characters, letters, digits and hyphens.
pub fn load_balancer_name(cluster: &str, name: &str) -> String {
    let full = format!("{cluster}-{name}");
    if full.len() <= 32 {
        return full;
    }
    let hash = Sha256::digest(full.as_bytes());
    let short: String = hash.iter().take(4).map(|b| format!("{b:02x}")).collect();
    format!("{}-{short}", full[..23].trim_end_matches('-'))
}

/// A master's etcd data lives on its own volume in the master's zone: it
/// outlives the instance and is attached to its replacement.
fn etcd_volume(d: &mut Desired, master: &str, zone: &str, instance: &ResourceId) {
    let name = format!("etcd-{master}");
    let volume = d.add(
        ResourceId::new(Kind::Volume, &name),
        Ownership::Owned,
        props([
            ("zone", Value::str(zone)),
            ("size_gib", Value::Int(ETCD_VOLUME_GIB)),
            ("volume_type", Value::str("gp3")),
            ("encrypted", Value::Bool(true)),
        ]),
    );
    d.add(
        ResourceId::new(Kind::VolumeAttachment, &name),
        Ownership::Owned,
        props([
            ("volume", Value::reference(&volume)),
            ("instance", Value::reference(instance)),
            ("device", Value::str(ETCD_DEVICE)),
        ]),
    );
}

/// Instance metadata as every instance has it (`instance.rs` reads it back
/// in the same words).
pub const INSTANCE_METADATA: &str = "IMDSv2 required, hop limit 1";
/// Every instance's root volume (`instance.rs` reads it back in the same
/// words): gp3 for its baseline IOPS, encrypted with the account's EBS key,
/// room for images and logs.
pub const ROOT_VOLUME: &str = "gp3, 32 GiB, encrypted";
pub const ROOT_VOLUME_GIB: i32 = 32;

/// etcd's own guidance is a few GiB of data at most (8 GiB quota by default);
/// 20 GiB of gp3 gives its baseline 3000 IOPS with room to compact.
pub const ETCD_VOLUME_GIB: i64 = 20;
/// The device name the etcd volume is attached as (the user data finds it
/// by volume id on Nitro instances, where it shows as NVMe).
pub const ETCD_DEVICE: &str = "/dev/sdf";

/// Running instances keep the image they run: a newer image of the name
/// pattern replaces nothing unless asked (`up --upgrade-image`) or pinned
/// (`cluster.image_id`). Returns the notice for the plan when one is waiting.
pub fn keep_images(
    d: &mut Desired,
    actual: &Actual,
    facts: &Facts,
    pinned: bool,
    upgrade: bool,
) -> Option<String> {
    let image = facts.image.as_ref()?;
    if pinned {
        return None;
    }
    let mut behind = 0;
    for r in d.resources.values_mut() {
        if r.kind() != Kind::Instance {
            continue;
        }
        let Some(running) = actual.resources.get(&r.id).and_then(|o| o.props.get("ami")) else {
            continue;
        };
        if r.props.get("ami") == Some(running) {
            continue;
        }
        behind += 1;
        if !upgrade {
            r.props.insert("ami".into(), running.clone());
        }
    }
    (behind > 0 && !upgrade).then(|| {
        format!(
            "image update available: {} ({}, {}) for {behind} instance{}; `scopectl up --upgrade-image` replaces them one at a time",
            image.id,
            image.name,
            image.created,
            if behind == 1 { "" } else { "s" }
        )
    })
}

pub fn compute(
    config: &Config,
    facts: &Facts,
    zones: &[String],
    d: &mut Desired,
) -> Result<(), DesiredError> {
    let owned = Ownership::Owned;
    let cluster = format!("{}-{}", config.project, config.env);
    let image = facts.image.as_ref().ok_or_else(|| match &config.cluster.image_id {
        Some(id) => DesiredError::new(
            format!("the pinned image {id} does not exist in {} or is not available", config.aws.region),
            "set cluster.image_id to an AMI of this region, or remove it to follow cluster.image_name",
            None,
        ),
        None => DesiredError::new(
            format!(
                "no available image of owner {} is named like `{}`",
                config.cluster.image_owner, config.cluster.image_name
            ),
            "set cluster.image_owner and cluster.image_name to an image this region has",
            None,
        ),
    })?;
    let api_name = load_balancer_name(&cluster, "api");
    let state_prefix = format!("/scopectl/{}/{}/", config.project, config.env);
    let dns_ip = dns_service_ip(&config.cluster.service_cidr).map_err(|e| {
        DesiredError::new(
            e.to_string(),
            "give cluster.service_cidr a larger range, like 10.96.0.0/12",
            None,
        )
    })?;
    let subnet_refs: Vec<Value> = zones
        .iter()
        .map(|z| Value::reference(&ResourceId::new(Kind::Subnet, &format!("nodes-{z}"))))
        .collect();
    let ecr = if config
        .services
        .values()
        .any(|s| crate::render::addons::is_ecr(&s.image))
    {
        Some(
            crate::render::addons::ecr_credential_provider().map_err(|e| {
                DesiredError::new(e.to_string(), "this is a bug in versions.toml", None)
            })?,
        )
    } else {
        None
    };
    let pins = crate::render::addons::kubernetes_pins(&config.cluster.kubernetes_version).map_err(
        |e| {
            DesiredError::new(
                e.to_string(),
                "set cluster.kubernetes_version to a pinned minor",
                None,
            )
        },
    )?;

    for (role, group, sg) in [
        ("master", &config.cluster.masters, MASTERS),
        ("node", &config.cluster.nodes, NODES),
    ] {
        let profile = d.add(
            ResourceId::new(Kind::InstanceProfile, role),
            owned,
            props([
                ("name", Value::str(format!("{cluster}-{role}"))),
                ("path", Value::str(&state_prefix)),
                ("policy", Value::str(super::iam::policy(config, role))),
                // The instance profile exists and holds the role.
                ("profile", Value::Bool(true)),
            ]),
        );
        for i in 0..group.count {
            let name = format!("{role}-{i}");
            let text = user_data(&UserData {
                kubernetes: pins.clone(),
                ecr: ecr.clone(),
                role: role.into(),
                name: name.clone(),
                index: i,
                cluster_name: cluster.clone(),
                region: config.aws.region.clone(),
                state_prefix: state_prefix.clone(),
                api_load_balancer: api_name.clone(),
                kubernetes_version: config.cluster.kubernetes_version.clone(),
                service_cidr: config.cluster.service_cidr.to_string(),
                pod_cidr: config.cluster.pod_cidr.to_string(),
                dns_service_ip: dns_ip.to_string(),
                domain: config.cluster.domain.clone(),
                etcd_volume: if role == "master" {
                    ResourceId::new(Kind::Volume, &format!("etcd-{name}")).to_string()
                } else {
                    String::new()
                },
            })
            .map_err(|e| DesiredError::new(e.to_string(), "this is a bug in a template", None))?;
            let digest: String = Sha256::digest(text.as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            let zone = &zones[i as usize % zones.len()];
            let instance = d.add(
                ResourceId::new(Kind::Instance, &name),
                owned,
                props([
                    ("ami", Value::str(&image.id)),
                    ("instance_type", Value::str(&group.instance_type)),
                    (
                        "subnet",
                        subnet_refs[i as usize % subnet_refs.len()].clone(),
                    ),
                    (
                        "security_groups",
                        Value::list(vec![Value::reference(&ResourceId::new(
                            Kind::SecurityGroup,
                            sg,
                        ))]),
                    ),
                    ("profile", Value::reference(&profile)),
                    ("user_data", Value::str(digest)),
                    ("user_data_text", Value::str(text)),
                    // A pod cannot reach the instance role: IMDSv2's token
                    // PUT does not survive a second hop (the add-ons that use
                    // the role run on the host network).
                    ("metadata", Value::str(INSTANCE_METADATA)),
                    // A master's root disk holds the CA keys.
                    ("root_volume", Value::str(ROOT_VOLUME)),
                ]),
            );
            if role == "master" {
                etcd_volume(d, &name, zone, &instance);
            }
        }
    }

    // TCP to TCP (client certificates reach the API servers), a TCP health
    // check every 10 s (5 s timeout, 2/2 thresholds, as kops), cross-zone.
    let mut balancer = |name: &str, port: i64, target: i64, role: &str, count: u32, idle: i64| {
        let lb = d.add(
            ResourceId::new(Kind::LoadBalancer, name),
            owned,
            props([
                ("name", Value::str(load_balancer_name(&cluster, name))),
                (
                    "scheme",
                    Value::str(if name == "api" {
                        config.cluster.api_scheme.as_str()
                    } else {
                        "internet-facing"
                    }),
                ),
                ("subnets", Value::list(subnet_refs.clone())),
                (
                    "security_groups",
                    Value::list(vec![Value::reference(&ResourceId::new(
                        Kind::SecurityGroup,
                        &elb_group(name),
                    ))]),
                ),
                (
                    "listeners",
                    Value::list(vec![map([
                        ("protocol", Value::str("TCP")),
                        ("port", Value::Int(port)),
                        ("instance_protocol", Value::str("TCP")),
                        ("instance_port", Value::Int(target)),
                    ])]),
                ),
                (
                    "health_check",
                    map([
                        ("target", Value::str(format!("TCP:{target}"))),
                        ("interval", Value::Int(10)),
                        ("timeout", Value::Int(5)),
                        ("healthy", Value::Int(2)),
                        ("unhealthy", Value::Int(2)),
                    ]),
                ),
                (
                    "attributes",
                    map([
                        ("cross_zone", Value::Bool(true)),
                        ("draining_seconds", Value::Int(300)),
                        ("idle_timeout_seconds", Value::Int(idle)),
                    ]),
                ),
            ]),
        );
        for i in 0..count {
            let instance = ResourceId::new(Kind::Instance, &format!("{role}-{i}"));
            d.add(
                ResourceId::new(Kind::Registration, &format!("{name}.{role}-{i}")),
                owned,
                props([
                    ("load_balancer", Value::reference(&lb)),
                    ("instance", Value::reference(&instance)),
                ]),
            );
        }
    };
    // The API's: 300 s idle before the balancer cuts a connection (its
    // default 60 s cuts long watches, logs and exec sessions).
    balancer(
        "api",
        443,
        6443,
        "master",
        config.cluster.masters.count,
        300,
    );
    for (name, service) in &config.services {
        if service.expose != Expose::Elb {
            continue;
        }
        if name == "api" {
            return Err(DesiredError::new(
                "an exposed service may not be called `api`",
                "`api` is the API server's load balancer; rename the service",
                None,
            ));
        }
        let Some(node_port) = service.node_port else {
            continue;
        };
        balancer(
            name,
            80,
            i64::from(node_port),
            "node",
            config.cluster.nodes.count,
            60,
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config;
    use crate::desired::{desired, tests::sample_facts};
    use crate::model::{Kind, ResourceId, Value};

    fn example() -> crate::model::Desired {
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/scope.toml"))
                .unwrap();
        let config = config::parse(Path::new("examples/scope.toml"), &text, "staging").unwrap();
        desired(&config, &sample_facts()).unwrap()
    }

    fn policy(d: &crate::model::Desired, role: &str) -> String {
        let profile = &d.resources[&ResourceId::new(Kind::InstanceProfile, role)];
        profile.props["policy"].as_str().unwrap().to_string()
    }

    /// Issue 26: every statement passes the review; the CCM's calls that
    /// remain are all there; nothing of the old grant-everything list is.
    #[test]
    fn instance_roles_are_least_privilege() {
        let d = example();
        for role in ["master", "node"] {
            let p = policy(&d, role);
            assert_eq!(
                crate::desired::iam::review(&p, role, "scope-staging"),
                Vec::<String>::new(),
                "{role}: {p}"
            );
        }
        let master = policy(&d, "master");
        for needed in [
            "ec2:DescribeInstances",
            "ec2:DescribeAvailabilityZones",
            "ec2:DescribeVolumes",
            "elasticloadbalancing:DescribeLoadBalancers",
            "elasticloadbalancing:CreateLoadBalancer",
        ] {
            assert!(master.contains(needed), "master: no {needed}");
        }
        for gone in [
            "elasticloadbalancing:*",
            "ec2:CreateRoute",
            "ec2:DeleteRoute",
            "ec2:CreateVolume",
            "ec2:AttachVolume",
            "ec2:DetachVolume",
            "ec2:DeleteVolume",
            "ec2:ModifyInstanceAttribute",
            "autoscaling:",
            "kms:DescribeKey",
        ] {
            assert!(!master.contains(gone), "master still has {gone}");
        }
        // Nodes change nothing in EC2 or the balancers.
        let node = policy(&d, "node");
        assert!(!node.contains("ec2:"), "{node}");
    }

    /// The review itself: each rule fails the policy it is about.
    #[test]
    fn the_review_names_each_kind_of_excess() {
        use crate::desired::iam::review;
        let stmt = |s: serde_json::Value| {
            serde_json::json!({"Version": "2012-10-17", "Statement": [s]}).to_string()
        };
        let unconditioned = stmt(serde_json::json!({"Sid": "X", "Effect": "Allow",
            "Action": ["ec2:AuthorizeSecurityGroupIngress"], "Resource": ["*"]}));
        let p = review(&unconditioned, "master", "scope-staging");
        assert!(
            p.iter().any(|m| m.contains("without the cluster's tag")),
            "{p:?}"
        );
        let retag = stmt(serde_json::json!({"Sid": "X", "Effect": "Allow",
            "Action": ["ec2:CreateTags"], "Resource": ["*"],
            "Condition": {"StringEquals": {"aws:RequestTag/kubernetes.io/cluster/scope-staging": "owned"}}}));
        let p = review(&retag, "master", "scope-staging");
        assert!(
            p.iter().any(|m| m.contains("can tag an existing resource")),
            "{p:?}"
        );
        let unused = stmt(serde_json::json!({"Sid": "X", "Effect": "Allow",
            "Action": ["ec2:CreateRoute"], "Resource": ["*"],
            "Condition": {"StringEquals": {"aws:ResourceTag/kubernetes.io/cluster/scope-staging": "owned"}}}));
        let p = review(&unused, "master", "scope-staging");
        assert!(p.iter().any(|m| m.contains("not used")), "{p:?}");
        let wildcard = stmt(serde_json::json!({"Sid": "X", "Effect": "Allow",
            "Action": ["elasticloadbalancing:*"], "Resource": ["*"]}));
        assert!(!review(&wildcard, "master", "scope-staging").is_empty());
        // The policy before issue 26 fails it.
        let old = stmt(
            serde_json::json!({"Sid": "CloudProvider", "Effect": "Allow",
            "Action": ["ec2:CreateTags", "ec2:DeleteSecurityGroup"], "Resource": ["*"]}),
        );
        assert_eq!(review(&old, "master", "scope-staging").len(), 3);
    }

    /// KUBEADM-ON-EC2: TCP to TCP, a TCP health check on 6443 every 10 s
    /// (timeout 5 s, 2/2), cross-zone, idle timeout of at least 300 s.
    #[test]
    fn the_api_balancer_passes_tcp_through_and_keeps_long_connections() {
        let d = example();
        let lb = &d.resources[&ResourceId::new(Kind::LoadBalancer, "api")].props;
        let map = |v: &Value| v.as_map().unwrap().clone();
        let listeners = lb["listeners"].as_list();
        assert_eq!(listeners.len(), 1);
        let l = map(&listeners[0]);
        assert_eq!(l["protocol"].as_str(), Some("TCP"));
        assert_eq!(l["instance_protocol"].as_str(), Some("TCP"));
        assert_eq!(l["instance_port"].as_int(), Some(6443));
        let h = map(&lb["health_check"]);
        assert_eq!(h["target"].as_str(), Some("TCP:6443"));
        for (k, v) in [
            ("interval", 10),
            ("timeout", 5),
            ("healthy", 2),
            ("unhealthy", 2),
        ] {
            assert_eq!(h[k].as_int(), Some(v), "{k}");
        }
        let a = map(&lb["attributes"]);
        assert_eq!(a["cross_zone"].as_bool(), Some(true));
        assert!(a["idle_timeout_seconds"].as_int().unwrap() >= 300);
    }
}
