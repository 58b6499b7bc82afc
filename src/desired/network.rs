//! The AWS network layer: subnets, routing and security groups, placed beside
//! the database (in its VPC) or in an own VPC peered with it.

use std::collections::BTreeMap;

use ipnet::Ipv4Net;

use super::{DatabaseFacts, DesiredError, Facts, VpcFacts};
use crate::config::{Config, Placement};
use crate::model::{Desired, Kind, Ownership, Props, ResourceId, Value};

/// Must match how `providers::aws::route` names observed routes.
pub fn to_database_name(table: &str, destination: &str) -> String {
    format!(
        "{table}-to-database-{}",
        destination.replace(['/', '.'], "-")
    )
}

pub const MASTERS: &str = "masters";
pub const NODES: &str = "nodes";
/// The API's balancer (and its group's suffix, `elb-api`).
pub const API: &str = "api";

/// The security group of a balancer: `elb-api`, `elb-<service>`.
pub fn elb_group(balancer: &str) -> String {
    format!("elb-{balancer}")
}

fn props<const N: usize>(items: [(&str, Value); N]) -> Props {
    items.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// One ingress rule and its description; `source` is a group reference or a
/// CIDR string. AWS identifies a rule by protocol, ports and source only.
fn rule(protocol: &str, from: i64, to: i64, source: Value, description: &str) -> (Value, Value) {
    let rule = Value::Map(
        [
            ("protocol", Value::str(protocol)),
            ("from", Value::Int(from)),
            ("to", Value::Int(to)),
            ("source", source),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect(),
    );
    let described = Value::Map(
        [
            ("rule".to_string(), rule.clone()),
            ("text".to_string(), Value::str(description)),
        ]
        .into(),
    );
    (rule, described)
}

fn rule_set(group: Value, rules: Vec<(Value, Value)>) -> Props {
    let (rules, descriptions): (Vec<Value>, Vec<Value>) = rules.into_iter().unzip();
    props([
        ("group", group),
        ("rules", Value::list(rules)),
        ("descriptions", Value::list(descriptions)),
    ])
}

/// Splits `cidr` into one subnet per zone. The split is fixed (4 slots, or 8
/// beyond four zones) so that dropping the last zone never renumbers the
/// others; a zone takes the slot of its position in the zone list, skipping
/// slots that collide with explicitly given subnets.
pub fn carve(
    cidr: Ipv4Net,
    zones: &[String],
    explicit: &BTreeMap<String, Ipv4Net>,
) -> Option<Vec<(String, Ipv4Net)>> {
    let bits = if zones.len() <= 4 { 2 } else { 3 };
    let mut slots = cidr
        .subnets(cidr.prefix_len().checked_add(bits)?)
        .ok()?
        .filter(|s| {
            !explicit
                .values()
                .any(|e| e.contains(&s.network()) || s.contains(&e.network()))
        });
    zones
        .iter()
        .map(|z| {
            let auto = slots.next();
            Some((
                z.clone(),
                match explicit.get(z) {
                    Some(e) => *e,
                    None => auto?,
                },
            ))
        })
        .collect()
}

/// Adds the network resources; returns the zones the cluster uses, in order.
pub fn network(
    config: &Config,
    facts: &Facts,
    d: &mut Desired,
) -> Result<Vec<String>, DesiredError> {
    let found = placement(config, facts)?;
    let (vpc_value, rt) = vpc_and_subnets(config, &found, d);
    let nodes = security_groups(config, vpc_value, d);
    database_access(config, &found, nodes, d)?;
    if config.network.placement == Placement::Peered {
        peering(config, &found, &rt, d);
    }
    Ok(found.zones)
}

/// What the placement found and checked: the database, its VPC, the zones
/// and each zone's range.
struct Found<'a> {
    db: &'a DatabaseFacts,
    vpc: &'a VpcFacts,
    zones: Vec<String>,
    subnets: Vec<(String, Ipv4Net)>,
}

/// Checks the config against the adopted database and its VPC: the zones
/// exist, the ranges fit (inside and free beside the database, disjoint
/// when peered), and a gateway is there to use.
fn placement<'a>(config: &Config, facts: &'a Facts) -> Result<Found<'a>, DesiredError> {
    let net = &config.network;
    let db_name = &config.database.rds_instance;
    let db = facts.database.as_ref().ok_or_else(|| {
        let region = &config.aws.region;
        let profile = config
            .aws
            .profile
            .as_deref()
            .map(|p| format!(" --profile {p}"))
            .unwrap_or_default();
        DesiredError {
            cause: facts
                .database_missing
                .clone()
                .map(|c| Box::new(crate::apply::ServiceError(c))),
            ..DesiredError::new(
                format!("RDS instance `{db_name}` was not found in {region}"),
                format!(
                    "list the instances there with `aws rds describe-db-instances --region {region}{profile} --query 'DBInstances[].DBInstanceIdentifier' --output text` and fix `database.rds_instance` at {}; scopectl adopts an existing database and never creates one",
                    config.database.rds_instance_at
                ),
                Some(&config.database.rds_instance_at),
            )
        }
    })?;
    let vpc = facts.database_vpc.as_ref().ok_or_else(|| {
        DesiredError::new(
            format!(
                "the VPC {} of RDS instance `{db_name}` could not be read",
                db.vpc_id
            ),
            "check that the credentials may call ec2:DescribeVpcs",
            None,
        )
    })?;
    let db_cidrs: Vec<Ipv4Net> = vpc.cidrs.iter().filter_map(|c| c.parse().ok()).collect();

    // Zones: configured ones must exist; default to the first three offered.
    let zones: Vec<String> = match &net.zones {
        Some(z) => {
            if let Some(bad) = z.iter().find(|z| !facts.zones.contains(z)) {
                return Err(DesiredError::new(
                    format!("zone `{bad}` is not offered in {}", config.aws.region),
                    format!("available zones: {}", facts.zones.join(", ")),
                    Some(&net.cidr_at),
                ));
            }
            z.clone()
        }
        None => facts.zones.iter().take(3).cloned().collect(),
    };
    if zones.len() < 2 {
        return Err(DesiredError::new(
            format!(
                "{} offers fewer than two availability zones",
                config.aws.region
            ),
            "the cluster needs subnets in at least two zones; pick another region",
            None,
        ));
    }
    let subnets = carve(net.cidr, &zones, &net.subnets).ok_or_else(|| {
        DesiredError::new(
            format!(
                "network.cidr {} is too small for {} zone subnets",
                net.cidr,
                zones.len()
            ),
            "use a larger range or fewer zones",
            Some(&net.cidr_at),
        )
    })?;

    match net.placement {
        Placement::BesideDatabase => {
            if !db_cidrs.iter().any(|c| c.contains(&net.cidr)) {
                return Err(DesiredError::new(
                    format!(
                        "network.cidr {} is outside the database VPC {} ({})",
                        net.cidr,
                        vpc.id,
                        vpc.cidrs.join(", ")
                    ),
                    "pick a free range inside the database VPC, or use placement = \"peered\"",
                    Some(&net.cidr_at),
                ));
            }
            check_free(vpc, &subnets, &net.cidr_at)?;
            if vpc.internet_gateway.is_none() {
                return Err(DesiredError::new(
                    format!("the database VPC {} has no internet gateway", vpc.id),
                    "attach one to the VPC (scopectl only reads it), or use placement = \"peered\"",
                    None,
                ));
            }
        }
        Placement::Peered => {
            if let Some(c) = db_cidrs
                .iter()
                .find(|c| c.contains(&net.cidr.network()) || net.cidr.contains(&c.network()))
            {
                return Err(DesiredError::new(
                    format!(
                        "network.cidr {} overlaps the database VPC range {c}",
                        net.cidr
                    ),
                    "peered VPCs need disjoint ranges; pick one outside the database VPC",
                    Some(&net.cidr_at),
                ));
            }
        }
    }

    Ok(Found {
        db,
        vpc,
        zones,
        subnets,
    })
}

/// The VPC (the database's, or an own one with its gateway when peered),
/// the cluster route table with its default route, and a subnet per zone.
/// Returns the VPC (an id or a reference) and the route table.
fn vpc_and_subnets(config: &Config, found: &Found, d: &mut Desired) -> (Value, ResourceId) {
    let (net, vpc, subnets) = (&config.network, found.vpc, &found.subnets);
    let owned = Ownership::Owned;
    let (vpc_value, igw_value) = match net.placement {
        Placement::BesideDatabase => (
            Value::str(&vpc.id),
            Value::str(vpc.internet_gateway.as_deref().unwrap_or_default()),
        ),
        Placement::Peered => {
            let vpc_id = d.add(
                ResourceId::new(Kind::Vpc, "cluster"),
                owned,
                props([
                    ("cidr", Value::str(net.cidr.to_string())),
                    // Private DNS names for instances; resolution across the
                    // peering needs them.
                    ("dns_hostnames", Value::Bool(true)),
                ]),
            );
            let igw = d.add(
                ResourceId::new(Kind::InternetGateway, "cluster"),
                owned,
                props([("vpc", Value::reference(&vpc_id))]),
            );
            (Value::reference(&vpc_id), Value::reference(&igw))
        }
    };

    let rt = d.add(
        ResourceId::new(Kind::RouteTable, "cluster"),
        owned,
        props([("vpc", vpc_value.clone())]),
    );
    d.add(
        ResourceId::new(Kind::Route, "cluster-default"),
        owned,
        props([
            ("route_table", Value::reference(&rt)),
            ("destination", Value::str("0.0.0.0/0")),
            ("gateway", igw_value),
        ]),
    );
    for (zone, cidr) in subnets {
        let subnet = d.add(
            ResourceId::new(Kind::Subnet, &format!("nodes-{zone}")),
            owned,
            props([
                ("vpc", vpc_value.clone()),
                ("cidr", Value::str(cidr.to_string())),
                ("zone", Value::str(zone)),
                ("public_ip", Value::Bool(true)),
            ]),
        );
        d.add(
            ResourceId::new(Kind::RouteTableAssociation, &format!("nodes-{zone}")),
            owned,
            props([
                ("subnet", Value::reference(&subnet)),
                ("route_table", Value::reference(&rt)),
            ]),
        );
    }

    (vpc_value, rt)
}

/// The masters', nodes' and load balancers' groups and their rule sets;
/// returns the nodes' group.
fn security_groups(config: &Config, vpc_value: Value, d: &mut Desired) -> Value {
    let owned = Ownership::Owned;
    // Security groups first, then their rule sets: rules reference groups in
    // both directions, so they cannot live on the group resources themselves.
    let cluster = format!("{}-{}", config.project, config.env);
    let mut group = |role: &str, description: &str| {
        d.add(
            ResourceId::new(Kind::SecurityGroup, role),
            owned,
            props([
                ("vpc", vpc_value.clone()),
                ("group_name", Value::str(format!("{cluster}-{role}"))),
                ("description", Value::str(description)),
            ]),
        )
    };
    let masters = group(MASTERS, "scopectl: Kubernetes masters");
    let nodes = group(NODES, "scopectl: Kubernetes nodes");
    // One group per balancer: each admits only its own clients, and each
    // reaches only its own port on the instances.
    let api = group(
        &elb_group(API),
        "scopectl: the Kubernetes API's load balancer",
    );
    let exposed: Vec<(String, u16, ResourceId)> = config
        .services
        .iter()
        .filter(|(_, s)| s.expose == crate::config::Expose::Elb)
        .filter_map(|(name, s)| {
            let port = s.node_port?;
            let g = group(
                &elb_group(name),
                &format!("scopectl: the load balancer of service {name}"),
            );
            Some((name.clone(), port, g))
        })
        .collect();
    let (m, n) = (Value::reference(&masters), Value::reference(&nodes));
    let world = Value::str("0.0.0.0/0");
    let sources = |cidrs: &[String]| -> Vec<Value> {
        if cidrs.is_empty() {
            vec![world.clone()]
        } else {
            cidrs.iter().map(Value::str).collect()
        }
    };

    let mut ingress = |name: &str, group: &ResourceId, rules: Vec<(Value, Value)>| {
        d.add(
            ResourceId::new(Kind::SecurityGroupIngress, name),
            owned,
            rule_set(Value::reference(group), rules),
        );
    };
    // kops' layout: masters and nodes talk freely, except that only masters
    // reach etcd (kubeadm's: client 2379, peers 2380, metrics 2381). Flows
    // the cluster needs, all inside these: the pod network's VXLAN (UDP 8472)
    // between every two instances, nodes to the API servers (6443), masters
    // to the kubelets (10250), etcd between masters, each balancer to its
    // own port.
    ingress(
        MASTERS,
        &masters,
        vec![
            rule("-1", -1, -1, m.clone(), "masters to masters"),
            rule("tcp", 1, 2378, n.clone(), "nodes to masters (below etcd)"),
            rule(
                "tcp",
                2382,
                65535,
                n.clone(),
                "nodes to masters (above etcd)",
            ),
            rule("udp", 1, 65535, n.clone(), "nodes to masters"),
            rule(
                "tcp",
                6443,
                6443,
                Value::reference(&api),
                "API load balancer",
            ),
        ],
    );
    let mut node_rules = vec![
        rule("-1", -1, -1, m.clone(), "masters to nodes"),
        rule("-1", -1, -1, n.clone(), "nodes to nodes"),
    ];
    for (name, port, g) in &exposed {
        let port = i64::from(*port);
        node_rules.push(rule(
            "tcp",
            port,
            port,
            Value::reference(g),
            &format!("{name}'s load balancer"),
        ));
    }
    ingress(NODES, &nodes, node_rules);
    // Only the API's balancer listens on 443: its port admits the ranges
    // cluster.api_allowed_cidrs names (anyone when unset).
    ingress(
        &elb_group(API),
        &api,
        sources(&config.cluster.api_allowed_cidrs)
            .into_iter()
            .map(|c| rule("tcp", 443, 443, c, "the Kubernetes API"))
            .collect(),
    );
    for (name, _, g) in &exposed {
        let allowed = config
            .services
            .get(name)
            .map(|s| s.allowed_cidrs.clone())
            .unwrap_or_default();
        ingress(
            &elb_group(name),
            g,
            sources(&allowed)
                .into_iter()
                .map(|c| rule("tcp", 80, 80, c, "HTTP"))
                .collect(),
        );
    }

    n
}

/// The one change to an adopted resource: the database's group admits the
/// nodes (by group beside the database; by range across a peering, where
/// group references are not guaranteed).
fn database_access(
    config: &Config,
    found: &Found,
    n: Value,
    d: &mut Desired,
) -> Result<(), DesiredError> {
    let (net, db) = (&config.network, found.db);
    let db_name = &config.database.rds_instance;
    let cluster = format!("{}-{}", config.project, config.env);
    let db_sg = db.security_groups.first().ok_or_else(|| {
        DesiredError::new(
            format!("RDS instance `{db_name}` has no VPC security group"),
            "give the database a VPC security group; scopectl adds one ingress rule to it",
            Some(&config.database.rds_instance_at),
        )
    })?;
    let port = i64::from(config.database.port.unwrap_or(db.port));
    let source = match net.placement {
        Placement::BesideDatabase => n.clone(),
        Placement::Peered => Value::str(net.cidr.to_string()),
    };
    d.add(
        ResourceId::new(Kind::SecurityGroupIngress, "database"),
        Ownership::OnAdopted,
        rule_set(
            Value::str(db_sg),
            vec![rule(
                "tcp",
                port,
                port,
                source,
                &format!("{cluster} nodes to the database"),
            )],
        ),
    );

    Ok(())
}

/// The peering with the database's VPC and the routes both ways across it.
fn peering(config: &Config, found: &Found, rt: &ResourceId, d: &mut Desired) {
    let (net, vpc, db, owned) = (&config.network, found.vpc, found.db, Ownership::Owned);
    if net.placement == Placement::Peered {
        let vpc_id = ResourceId::new(Kind::Vpc, "cluster");
        let pcx = d.add(
            ResourceId::new(Kind::VpcPeering, "database"),
            owned,
            props([
                ("vpc", Value::reference(&vpc_id)),
                ("peer_vpc", Value::str(&vpc.id)),
                ("dns_resolution", Value::Bool(true)),
            ]),
        );
        for c in &vpc.cidrs {
            d.add(
                ResourceId::new(Kind::Route, &to_database_name("cluster", c)),
                owned,
                props([
                    ("route_table", Value::reference(rt)),
                    ("destination", Value::str(c)),
                    ("peering", Value::reference(&pcx)),
                ]),
            );
        }
        for table in database_route_tables(vpc, &db.subnets) {
            d.add(
                ResourceId::new(Kind::Route, &format!("database-{table}")),
                Ownership::OnAdopted,
                props([
                    ("route_table", Value::str(table)),
                    ("destination", Value::str(net.cidr.to_string())),
                    ("peering", Value::reference(&pcx)),
                ]),
            );
        }
    }
}

/// Route tables that serve the database's subnets: each subnet's explicit
/// table, or the main table when it has none. No subnet group: the main table.
fn database_route_tables(vpc: &VpcFacts, db_subnets: &[String]) -> Vec<String> {
    let main = vpc
        .route_tables
        .iter()
        .find(|t| t.main)
        .map(|t| t.id.clone());
    let mut out: Vec<String> = Vec::new();
    let mut push = |id: Option<String>| {
        if let Some(id) = id {
            if !out.contains(&id) {
                out.push(id);
            }
        }
    };
    if db_subnets.is_empty() {
        push(main.clone());
    }
    for s in db_subnets {
        let explicit = vpc
            .route_tables
            .iter()
            .find(|t| !t.owned && t.subnets.contains(s))
            .map(|t| t.id.clone());
        push(explicit.or_else(|| main.clone()));
    }
    out.sort();
    out
}

/// The new subnets must not overlap any subnet that is not ours.
fn check_free(
    vpc: &VpcFacts,
    subnets: &[(String, Ipv4Net)],
    at: &crate::config::Location,
) -> Result<(), DesiredError> {
    for existing in vpc.subnets.iter().filter(|s| !s.owned) {
        let Ok(e) = existing.cidr.parse::<Ipv4Net>() else {
            continue;
        };
        for (zone, s) in subnets {
            if e.contains(&s.network()) || s.contains(&e.network()) {
                return Err(DesiredError::new(
                    format!("the subnet {s} planned for {zone} overlaps the existing subnet {} ({e}) in {}", existing.id, vpc.id),
                    "move network.cidr to a free range of the database VPC, or set network.subnets explicitly",
                    Some(at),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "network_tests.rs"]
mod tests;
