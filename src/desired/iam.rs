//! The instance roles' policies, least privilege, and the review every
//! policy must pass (the unit tests run it on the rendered policies, the
//! emulator test on what IAM holds).
//!
//! Sources: the cloud controller manager's calls (kubernetes/cloud-provider-aws
//! v1.35.2, pkg/providers/v1: `ensureLoadBalancer`, `ensureSecurityGroup`,
//! zones.go `populate`, instances_v2.go) and the way kops scopes them
//! (kubernetes/kops v1.36.2, pkg/model/iam/iam_builder.go `AddCCMPermissions`,
//! `AddEC2CreateAction`): reads on `*`; changes only to what carries the
//! cluster's tag; creates only with that tag in the request; tags only on
//! create. The CCM sets `kubernetes.io/cluster/<cluster>=owned` on what it
//! creates (in the create call itself since v1.32), and scopectl's own groups
//! and instances carry it too.

use crate::config::Config;

/// Why each action is granted: the policy is built from these tables, and a
/// reviewer reads them here.
pub const MASTER_READS: &[(&str, &str)] = &[
    ("ec2:DescribeInstances", "CCM node controller"),
    (
        "ec2:DescribeAvailabilityZones",
        "CCM node controller (zones)",
    ),
    (
        "ec2:DescribeInstanceTopology",
        "CCM node controller (topology labels)",
    ),
    (
        "ec2:DescribeRouteTables",
        "CCM service controller (public subnets)",
    ),
    ("ec2:DescribeSecurityGroups", "CCM service controller"),
    ("ec2:DescribeSubnets", "CCM service controller"),
    ("ec2:DescribeVolumes", "user data: the master's etcd volume"),
    (
        "elasticloadbalancing:DescribeLoadBalancers",
        "user data: the API balancer's name; CCM",
    ),
    (
        "elasticloadbalancing:DescribeLoadBalancerAttributes",
        "CCM service controller",
    ),
    (
        "elasticloadbalancing:DescribeLoadBalancerPolicies",
        "CCM service controller",
    ),
];

/// Changes the CCM makes to the balancers and groups of `type: LoadBalancer`
/// Services: only on resources tagged as the cluster's.
pub const MASTER_CHANGES: &[&str] = &[
    "ec2:AuthorizeSecurityGroupIngress",
    "ec2:RevokeSecurityGroupIngress",
    "ec2:DeleteSecurityGroup",
    "elasticloadbalancing:AddTags",
    "elasticloadbalancing:ApplySecurityGroupsToLoadBalancer",
    "elasticloadbalancing:AttachLoadBalancerToSubnets",
    "elasticloadbalancing:ConfigureHealthCheck",
    "elasticloadbalancing:CreateLoadBalancerListeners",
    "elasticloadbalancing:CreateLoadBalancerPolicy",
    "elasticloadbalancing:DeleteLoadBalancer",
    "elasticloadbalancing:DeleteLoadBalancerListeners",
    "elasticloadbalancing:DeregisterInstancesFromLoadBalancer",
    "elasticloadbalancing:DetachLoadBalancerFromSubnets",
    "elasticloadbalancing:ModifyLoadBalancerAttributes",
    "elasticloadbalancing:RegisterInstancesWithLoadBalancer",
    "elasticloadbalancing:SetLoadBalancerPoliciesForBackendServer",
    "elasticloadbalancing:SetLoadBalancerPoliciesOfListener",
];

/// Creates: only with the cluster's tag in the request.
pub const MASTER_CREATES: &[&str] = &[
    "ec2:CreateSecurityGroup",
    "elasticloadbalancing:CreateLoadBalancer",
];

/// What the kubelet's ECR credential provider calls (nodes).
pub const ECR_READS: &[&str] = &[
    "ecr:GetAuthorizationToken",
    "ecr:BatchCheckLayerAvailability",
    "ecr:GetDownloadUrlForLayer",
    "ecr:BatchGetImage",
];

fn strings(items: impl IntoIterator<Item = impl Into<String>>) -> serde_json::Value {
    let mut v: Vec<String> = items.into_iter().map(Into::into).collect();
    v.sort();
    v.dedup();
    serde_json::json!(v)
}

/// The role's inline policy: read this env's state store only, plus what the
/// cloud controller manager and the user data call.
pub fn policy(config: &Config, role: &str) -> String {
    let cluster = format!("{}-{}", config.project, config.env);
    let cluster_tag = format!("kubernetes.io/cluster/{cluster}");
    let state = format!(
        "arn:aws:ssm:{}:*:parameter/scopectl/{}/{}/",
        config.aws.region, config.project, config.env
    );
    // Masters read the whole PKI (and the encryption key beside it); nodes
    // only the CA certificates and the join token, never a key.
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
    if role == "master" {
        let owned = serde_json::json!({ format!("aws:ResourceTag/{cluster_tag}"): "owned" });
        let requested = |extra: Option<(&str, &str)>| {
            let mut m = serde_json::Map::new();
            m.insert(format!("aws:RequestTag/{cluster_tag}"), "owned".into());
            if let Some((k, v)) = extra {
                m.insert(k.into(), serde_json::json!([v]));
            }
            serde_json::json!({ "StringEquals": m })
        };
        statements.extend([
            serde_json::json!({
                "Sid": "Read",
                "Effect": "Allow",
                "Action": strings(MASTER_READS.iter().map(|(a, _)| *a)),
                "Resource": ["*"],
            }),
            serde_json::json!({
                "Sid": "ClusterOwned",
                "Effect": "Allow",
                "Action": strings(MASTER_CHANGES.iter().copied()),
                "Resource": ["*"],
                "Condition": {"StringEquals": owned},
            }),
            serde_json::json!({
                "Sid": "CreateClusterOwned",
                "Effect": "Allow",
                "Action": strings(MASTER_CREATES.iter().copied()),
                "Resource": ["*"],
                "Condition": requested(None),
            }),
            // CreateSecurityGroup also authorizes against the VPC, which
            // carries no request tag (kops grants it on `vpc/*` likewise).
            serde_json::json!({
                "Sid": "CreateSecurityGroupInVpc",
                "Effect": "Allow",
                "Action": ["ec2:CreateSecurityGroup"],
                "Resource": [format!("arn:aws:ec2:{}:*:vpc/*", config.aws.region)],
            }),
            // Tags only as part of a create: no instance can tag an
            // existing (foreign) resource into the cluster's set.
            serde_json::json!({
                "Sid": "TagOnCreate",
                "Effect": "Allow",
                "Action": ["ec2:CreateTags"],
                "Resource": [format!("arn:aws:ec2:{}:*:security-group/*", config.aws.region)],
                "Condition": requested(Some(("ec2:CreateAction", "CreateSecurityGroup"))),
            }),
            serde_json::json!({
                "Sid": "TagBalancerOnCreate",
                "Effect": "Allow",
                "Action": ["elasticloadbalancing:AddTags"],
                "Resource": ["*"],
                "Condition": requested(Some(("elasticloadbalancing:CreateAction", "CreateLoadBalancer"))),
            }),
        ]);
    } else {
        statements.push(serde_json::json!({
            "Sid": "Read",
            "Effect": "Allow",
            // The user data reads the API balancer's DNS name.
            "Action": ["elasticloadbalancing:DescribeLoadBalancers"],
            "Resource": ["*"],
        }));
        statements.push(serde_json::json!({
            "Sid": "Ecr",
            "Effect": "Allow",
            "Action": strings(ECR_READS.iter().copied()),
            "Resource": ["*"],
        }));
    }
    super::canonical_json(
        &serde_json::json!({"Version": "2012-10-17", "Statement": statements}).to_string(),
    )
}

/// Whether an action only reads.
fn reads(action: &str) -> bool {
    let verb = action.split_once(':').map_or(action, |(_, v)| v);
    ["Describe", "Get", "List", "BatchGet", "BatchCheck"]
        .iter()
        .any(|p| verb.starts_with(p))
        || action == "kms:Decrypt"
}

/// What is wrong with a role policy, as a reviewer would say it (empty when
/// nothing): an action nobody uses, a change to `*` without the cluster's
/// tag as its condition, tagging outside a create.
pub fn review(policy: &str, role: &str, cluster: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let doc: serde_json::Value = match serde_json::from_str(policy) {
        Ok(v) => v,
        Err(e) => return vec![format!("not JSON: {e}")],
    };
    let cluster_tag = format!("kubernetes.io/cluster/{cluster}");
    let used: Vec<&str> = if role == "master" {
        MASTER_READS
            .iter()
            .map(|(a, _)| *a)
            .chain(MASTER_CHANGES.iter().copied())
            .chain(MASTER_CREATES.iter().copied())
            .chain(["ec2:CreateTags"])
            .collect()
    } else {
        ECR_READS
            .iter()
            .copied()
            .chain(["elasticloadbalancing:DescribeLoadBalancers"])
            .collect()
    };
    let as_list = |v: &serde_json::Value| -> Vec<String> {
        match v {
            serde_json::Value::String(s) => vec![s.clone()],
            serde_json::Value::Array(a) => a
                .iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        }
    };
    for s in doc["Statement"].as_array().into_iter().flatten() {
        let sid = s["Sid"].as_str().unwrap_or("(no Sid)");
        if s["Effect"] != "Allow" {
            continue;
        }
        let resources = as_list(&s["Resource"]);
        let everything = resources.iter().any(|r| r == "*");
        let condition = s["Condition"].to_string();
        let tagged = condition.contains(&format!("aws:ResourceTag/{cluster_tag}"))
            || condition.contains(&format!("aws:RequestTag/{cluster_tag}"));
        for action in as_list(&s["Action"]) {
            if action.contains('*') {
                problems.push(format!("{sid}: {action} grants every action it matches"));
                continue;
            }
            let state_store = action.starts_with("ssm:") || action == "kms:Decrypt";
            if !state_store && !used.contains(&action.as_str()) {
                problems.push(format!("{sid}: {action} is not used by a {role}"));
            }
            if action == "ec2:CreateTags" || action == "elasticloadbalancing:AddTags" {
                let create_only = condition.contains("ec2:CreateAction")
                    || condition.contains("elasticloadbalancing:CreateAction");
                let owned_only = condition.contains(&format!("aws:ResourceTag/{cluster_tag}"));
                if !create_only && !owned_only {
                    problems.push(format!(
                        "{sid}: {action} can tag an existing resource that is not the cluster's"
                    ));
                }
            }
            if !reads(&action) && everything && !tagged {
                problems.push(format!(
                    "{sid}: {action} changes any resource (`*`) without the cluster's tag as a condition"
                ));
            }
        }
    }
    problems
}
