//! The compute layer: an IAM role and instance profile per role, masters and
//! nodes spread over the cluster's zones, the API load balancer and one per
//! exposed service, and each instance's registration with its balancers.

use sha2::{Digest, Sha256};

use super::network::{ELB, MASTERS, NODES};
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

/// The role's inline policy: read this env's state store only, plus what the
/// Kubernetes AWS cloud provider needs for the role.
fn policy(config: &Config, role: &str) -> String {
    let state = format!(
        "arn:aws:ssm:{}:*:parameter/scopectl/{}/{}/",
        config.aws.region, config.project, config.env
    );
    // Masters read the whole PKI; nodes only the CA certificates and the
    // join token, never a key.
    let readable: Vec<String> = if role == "master" {
        vec![format!("{state}pki/*")]
    } else {
        vec![
            format!("{state}pki/ca.crt"),
            format!("{state}pki/{}", crate::pki::BOOTSTRAP_TOKEN),
        ]
    };
    let mut statements = vec![
        serde_json::json!({
            "Sid": "StateStore",
            "Effect": "Allow",
            "Action": ["ssm:GetParameter", "ssm:GetParameters"],
            "Resource": readable,
        }),
        serde_json::json!({
            "Sid": "StateStoreDecrypt",
            "Effect": "Allow",
            "Action": ["kms:Decrypt"],
            "Resource": ["*"],
            "Condition": {"StringEquals": {"kms:ViaService": format!("ssm.{}.amazonaws.com", config.aws.region)}},
        }),
    ];
    let cloud_provider: &[&str] = if role == "master" {
        &[
            "ec2:DescribeInstances",
            "ec2:DescribeRegions",
            "ec2:DescribeRouteTables",
            "ec2:DescribeSecurityGroups",
            "ec2:DescribeSubnets",
            "ec2:DescribeVolumes",
            "ec2:DescribeVpcs",
            "ec2:CreateSecurityGroup",
            "ec2:CreateTags",
            "ec2:CreateVolume",
            "ec2:CreateRoute",
            "ec2:DeleteRoute",
            "ec2:DeleteSecurityGroup",
            "ec2:DeleteVolume",
            "ec2:AttachVolume",
            "ec2:DetachVolume",
            "ec2:ModifyInstanceAttribute",
            "ec2:ModifyVolume",
            "ec2:AuthorizeSecurityGroupIngress",
            "ec2:RevokeSecurityGroupIngress",
            "elasticloadbalancing:*",
            "iam:CreateServiceLinkedRole",
            "kms:DescribeKey",
        ]
    } else {
        &[
            "ec2:DescribeInstances",
            "ec2:DescribeRegions",
            "ecr:GetAuthorizationToken",
            "ecr:BatchCheckLayerAvailability",
            "ecr:GetDownloadUrlForLayer",
            "ecr:BatchGetImage",
            "elasticloadbalancing:DescribeLoadBalancers",
        ]
    };
    statements.push(serde_json::json!({
        "Sid": "CloudProvider",
        "Effect": "Allow",
        "Action": cloud_provider,
        "Resource": ["*"],
    }));
    canonical_json(
        &serde_json::json!({"Version": "2012-10-17", "Statement": statements}).to_string(),
    )
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
                ("policy", Value::str(policy(config, role))),
                // The instance profile exists and holds the role.
                ("profile", Value::Bool(true)),
            ]),
        );
        for i in 0..group.count {
            let name = format!("{role}-{i}");
            let text = user_data(&UserData {
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
                ]),
            );
            if role == "master" {
                etcd_volume(d, &name, zone, &instance);
            }
        }
    }

    let elb_group = Value::list(vec![Value::reference(&ResourceId::new(
        Kind::SecurityGroup,
        ELB,
    ))]);
    let mut balancer = |name: &str, port: i64, target: i64, role: &str, count: u32| {
        let lb = d.add(
            ResourceId::new(Kind::LoadBalancer, name),
            owned,
            props([
                ("name", Value::str(load_balancer_name(&cluster, name))),
                ("scheme", Value::str("internet-facing")),
                ("subnets", Value::list(subnet_refs.clone())),
                ("security_groups", elb_group.clone()),
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
    balancer("api", 443, 6443, "master", config.cluster.masters.count);
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
        );
    }
    Ok(())
}
