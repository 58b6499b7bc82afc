//! AWS's dependency rules that moto does not enforce. Each check reads the
//! emulator's state (with the proxy's own unsigned Describe calls) before the
//! request is forwarded, and returns the refusal AWS would give.

use std::time::{Duration, Instant};

use super::{query, until, Control, Request, Upstream};

const EC2: &str = "2016-11-15";
const ELB: &str = "2012-06-01";

/// Something deleted that AWS keeps around for a while: a terminated
/// instance (`shutting-down`) or the interfaces of a deleted load balancer.
#[derive(Clone, Debug)]
pub(crate) struct Held {
    pub what: String,
    pub until: Instant,
    pub vpc: Option<String>,
    pub subnets: Vec<String>,
    pub groups: Vec<String>,
    pub public: bool,
}

#[derive(Debug, Default)]
struct Instance {
    id: String,
    state: String,
    vpc: String,
    subnet: String,
    public: bool,
    groups: Vec<String>,
}

#[derive(Debug, Default)]
struct Interface {
    id: String,
    /// The instance it is attached to, if any.
    instance: String,
    vpc: String,
    subnet: String,
    public: bool,
    groups: Vec<String>,
}

#[derive(Debug, Default)]
struct Group {
    id: String,
    name: String,
    vpc: String,
    /// Groups named by this group's ingress and egress rules.
    references: Vec<String>,
}

#[derive(Debug, Default)]
struct LoadBalancer {
    name: String,
    vpc: String,
    subnets: Vec<String>,
    groups: Vec<String>,
    internet_facing: bool,
}

fn child<'a>(n: roxmltree::Node<'a, 'a>, tag: &str) -> Option<roxmltree::Node<'a, 'a>> {
    n.children().find(|c| c.has_tag_name(tag))
}

fn text(n: roxmltree::Node, tag: &str) -> String {
    child(n, tag)
        .and_then(|c| c.text())
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// `<set><item|member>…` children of `n`'s child `set`.
fn items<'a>(n: roxmltree::Node<'a, 'a>, set: &str) -> Vec<roxmltree::Node<'a, 'a>> {
    child(n, set)
        .map(|s| {
            s.children()
                .filter(|c| c.has_tag_name("item") || c.has_tag_name("member"))
                .collect()
        })
        .unwrap_or_default()
}

/// Every `<item>` under any element named `set`, anywhere in the document.
fn all_items<'a>(doc: &'a roxmltree::Document<'a>, set: &str) -> Vec<roxmltree::Node<'a, 'a>> {
    doc.descendants()
        .filter(|n| n.has_tag_name(set))
        .flat_map(|s| {
            s.children()
                .filter(|c| c.has_tag_name("item") || c.has_tag_name("member"))
        })
        .collect()
}

async fn ec2(upstream: &Upstream, action: &str) -> Option<String> {
    ec2_with(upstream, action, &[]).await
}

async fn ec2_with(upstream: &Upstream, action: &str, extra: &[(&str, &str)]) -> Option<String> {
    let mut params = vec![("Action", action)];
    params.extend_from_slice(extra);
    match query(upstream, "ec2", EC2, &params).await {
        Ok(t) => Some(t),
        Err(e) => {
            eprintln!("proxy: {action}: {e}");
            None
        }
    }
}

/// Instances not yet terminated: terminated ones hold nothing (the `hold`
/// records stand in for AWS's `shutting-down`), and moto keeps every one it
/// ever ran, so an unfiltered describe grows with each test step.
async fn instances(upstream: &Upstream) -> Vec<Instance> {
    let live_states = [
        ("Filter.1.Name", "instance-state-name"),
        ("Filter.1.Value.1", "pending"),
        ("Filter.1.Value.2", "running"),
        ("Filter.1.Value.3", "shutting-down"),
        ("Filter.1.Value.4", "stopping"),
        ("Filter.1.Value.5", "stopped"),
    ];
    let Some(xml) = ec2_with(upstream, "DescribeInstances", &live_states).await else {
        return Vec::new();
    };
    let Ok(doc) = roxmltree::Document::parse(&xml) else {
        return Vec::new();
    };
    all_items(&doc, "instancesSet")
        .into_iter()
        .map(|i| Instance {
            id: text(i, "instanceId"),
            state: child(i, "instanceState")
                .map(|s| text(s, "name"))
                .unwrap_or_default(),
            vpc: text(i, "vpcId"),
            subnet: text(i, "subnetId"),
            public: !text(i, "ipAddress").is_empty(),
            groups: items(i, "groupSet")
                .into_iter()
                .map(|g| text(g, "groupId"))
                .collect(),
        })
        .collect()
}

/// Interfaces that still exist in AWS: moto keeps a terminated instance's
/// primary interface, which AWS deletes with the instance (the `shutting-down`
/// hold covers the time it takes).
async fn interfaces(upstream: &Upstream) -> Vec<Interface> {
    let running: Vec<String> = instances(upstream)
        .await
        .into_iter()
        .filter(|i| live(&i.state))
        .map(|i| i.id)
        .collect();
    // Unattached interfaces block (a real orphan); attached ones only while
    // their instance lives.
    all_interfaces(upstream)
        .await
        .into_iter()
        .filter(|i| i.instance.is_empty() || running.contains(&i.instance))
        .collect()
}

async fn all_interfaces(upstream: &Upstream) -> Vec<Interface> {
    let Some(xml) = ec2(upstream, "DescribeNetworkInterfaces").await else {
        return Vec::new();
    };
    let Ok(doc) = roxmltree::Document::parse(&xml) else {
        return Vec::new();
    };
    all_items(&doc, "networkInterfaceSet")
        .into_iter()
        .map(|i| Interface {
            id: text(i, "networkInterfaceId"),
            instance: child(i, "attachment")
                .map(|a| text(a, "instanceId"))
                .unwrap_or_default(),
            vpc: text(i, "vpcId"),
            subnet: text(i, "subnetId"),
            public: child(i, "association").is_some_and(|a| !text(a, "publicIp").is_empty()),
            groups: items(i, "groupSet")
                .into_iter()
                .map(|g| text(g, "groupId"))
                .collect(),
        })
        .collect()
}

async fn groups(upstream: &Upstream) -> Vec<Group> {
    let Some(xml) = ec2(upstream, "DescribeSecurityGroups").await else {
        return Vec::new();
    };
    let Ok(doc) = roxmltree::Document::parse(&xml) else {
        return Vec::new();
    };
    all_items(&doc, "securityGroupInfo")
        .into_iter()
        .map(|g| {
            let mut references = Vec::new();
            for set in ["ipPermissions", "ipPermissionsEgress"] {
                for p in items(g, set) {
                    for pair in items(p, "groups") {
                        references.push(text(pair, "groupId"));
                    }
                }
            }
            Group {
                id: text(g, "groupId"),
                name: text(g, "groupName"),
                vpc: text(g, "vpcId"),
                references,
            }
        })
        .collect()
}

async fn load_balancers(upstream: &Upstream) -> Vec<LoadBalancer> {
    let xml = match query(
        upstream,
        "elasticloadbalancing",
        ELB,
        &[("Action", "DescribeLoadBalancers")],
    )
    .await
    {
        Ok(t) => t,
        Err(e) => {
            eprintln!("proxy: DescribeLoadBalancers: {e}");
            return Vec::new();
        }
    };
    let Ok(doc) = roxmltree::Document::parse(&xml) else {
        return Vec::new();
    };
    let members = |n, set| -> Vec<String> {
        items(n, set)
            .into_iter()
            .filter_map(|m| m.text().map(|t| t.trim().to_string()))
            .collect()
    };
    all_items(&doc, "LoadBalancerDescriptions")
        .into_iter()
        .map(|lb| LoadBalancer {
            name: text(lb, "LoadBalancerName"),
            vpc: text(lb, "VPCId"),
            subnets: members(lb, "Subnets"),
            groups: members(lb, "SecurityGroups"),
            internet_facing: text(lb, "Scheme") != "internal",
        })
        .collect()
}

/// Ids listed under `set/item/field` in a whole-account Describe.
async fn ids_in(
    upstream: &Upstream,
    action: &str,
    set: &str,
    pick: fn(roxmltree::Node) -> Option<(String, String)>,
) -> Vec<(String, String)> {
    let Some(xml) = ec2(upstream, action).await else {
        return Vec::new();
    };
    let Ok(doc) = roxmltree::Document::parse(&xml) else {
        return Vec::new();
    };
    all_items(&doc, set).into_iter().filter_map(pick).collect()
}

fn live(state: &str) -> bool {
    state != "terminated"
}

fn held(ctl: &Control) -> Vec<Held> {
    let mut h = ctl.held.lock().unwrap();
    let now = Instant::now();
    h.retain(|x| x.until > now);
    h.clone()
}

fn dependency(message: String) -> Option<(&'static str, String)> {
    Some(("DependencyViolation", message))
}

/// The refusal AWS would answer `req` with, if any.
pub(crate) async fn check(
    req: &Request,
    action: &str,
    upstream: &Upstream,
    ctl: &Control,
    _hold: Duration,
) -> Option<(&'static str, String)> {
    match action {
        "DeleteSubnet" => {
            let subnet = req.param("SubnetId")?;
            let blockers: Vec<String> = instances(upstream)
                .await
                .into_iter()
                .filter(|i| live(&i.state) && i.subnet == subnet)
                .map(|i| i.id)
                .chain(
                    interfaces(upstream)
                        .await
                        .into_iter()
                        .filter(|i| i.subnet == subnet)
                        .map(|i| i.id),
                )
                .chain(
                    load_balancers(upstream)
                        .await
                        .into_iter()
                        .filter(|lb| lb.subnets.contains(&subnet))
                        .map(|lb| lb.name),
                )
                .chain(
                    held(ctl)
                        .into_iter()
                        .filter(|h| h.subnets.contains(&subnet))
                        .map(|h| h.what),
                )
                .collect();
            if blockers.is_empty() {
                return None;
            }
            dependency(format!(
                "The subnet '{subnet}' has dependencies and cannot be deleted."
            ))
        }
        "DeleteSecurityGroup" => {
            let all = groups(upstream).await;
            let group = match req.param("GroupId") {
                Some(g) => g,
                None => {
                    let name = req.param("GroupName")?;
                    all.iter().find(|g| g.name == name)?.id.clone()
                }
            };
            let referenced = all
                .iter()
                .any(|g| g.id != group && g.references.contains(&group));
            let used = instances(upstream)
                .await
                .iter()
                .any(|i| live(&i.state) && i.groups.contains(&group))
                || interfaces(upstream)
                    .await
                    .iter()
                    .any(|i| i.groups.contains(&group))
                || load_balancers(upstream)
                    .await
                    .iter()
                    .any(|lb| lb.groups.contains(&group))
                || held(ctl).iter().any(|h| h.groups.contains(&group));
            if !(referenced || used) {
                return None;
            }
            dependency(format!("resource {group} has a dependent object"))
        }
        "DetachInternetGateway" => {
            let vpc = req.param("VpcId")?;
            let public = instances(upstream)
                .await
                .iter()
                .any(|i| live(&i.state) && i.vpc == vpc && i.public)
                || interfaces(upstream)
                    .await
                    .iter()
                    .any(|i| i.vpc == vpc && i.public)
                || load_balancers(upstream)
                    .await
                    .iter()
                    .any(|lb| lb.vpc == vpc && lb.internet_facing)
                || held(ctl)
                    .iter()
                    .any(|h| h.public && h.vpc.as_deref() == Some(vpc.as_str()));
            if !public {
                return None;
            }
            dependency(format!("Network {vpc} has some mapped public address(es). Please unmap those public address(es) before detaching the gateway."))
        }
        "DeleteInternetGateway" => {
            let igw = req.param("InternetGatewayId")?;
            let attached = ids_in(
                upstream,
                "DescribeInternetGateways",
                "internetGatewaySet",
                |g| {
                    let vpc = items(g, "attachmentSet")
                        .first()
                        .map(|a| text(*a, "vpcId"))?;
                    Some((text(g, "internetGatewayId"), vpc))
                },
            )
            .await
            .into_iter()
            .any(|(id, vpc)| id == igw && !vpc.is_empty());
            if !attached {
                return None;
            }
            dependency(format!(
                "The internetGateway '{igw}' has dependencies and cannot be deleted."
            ))
        }
        "DeleteRouteTable" => {
            let table = req.param("RouteTableId")?;
            let associated = ids_in(upstream, "DescribeRouteTables", "routeTableSet", |t| {
                let n = items(t, "associationSet")
                    .iter()
                    .filter(|a| !text(**a, "subnetId").is_empty())
                    .count();
                Some((text(t, "routeTableId"), n.to_string()))
            })
            .await
            .into_iter()
            .any(|(id, n)| id == table && n != "0");
            if !associated {
                return None;
            }
            dependency(format!(
                "The routeTable '{table}' has dependencies and cannot be deleted."
            ))
        }
        "DeleteVpc" => {
            let vpc = req.param("VpcId")?;
            let inside = |list: Vec<(String, String)>| list.into_iter().any(|(_, v)| v == vpc);
            let subnets = ids_in(upstream, "DescribeSubnets", "subnetSet", |s| {
                Some((text(s, "subnetId"), text(s, "vpcId")))
            })
            .await;
            let gateways = ids_in(
                upstream,
                "DescribeInternetGateways",
                "internetGatewaySet",
                |g| {
                    let vpc = items(g, "attachmentSet")
                        .first()
                        .map(|a| text(*a, "vpcId"))?;
                    Some((text(g, "internetGatewayId"), vpc))
                },
            )
            .await;
            let tables = ids_in(upstream, "DescribeRouteTables", "routeTableSet", |t| {
                let main = items(t, "associationSet")
                    .iter()
                    .any(|a| text(*a, "main") == "true");
                (!main).then(|| (text(t, "routeTableId"), text(t, "vpcId")))
            })
            .await;
            let extra_groups = groups(upstream)
                .await
                .into_iter()
                .any(|g| g.vpc == vpc && g.name != "default");
            let machines = instances(upstream)
                .await
                .iter()
                .any(|i| live(&i.state) && i.vpc == vpc)
                || held(ctl)
                    .iter()
                    .any(|h| h.vpc.as_deref() == Some(vpc.as_str()));
            if !(inside(subnets) || inside(gateways) || inside(tables) || extra_groups || machines)
            {
                return None;
            }
            dependency(format!(
                "The vpc '{vpc}' has dependencies and cannot be deleted."
            ))
        }
        "AssociateRouteTable" => {
            // AWS refuses a second explicit association; moto moves it.
            let subnet = req.param("SubnetId")?;
            let taken = ids_in(upstream, "DescribeRouteTables", "routeTableSet", |t| {
                let subnets: Vec<String> = items(t, "associationSet")
                    .iter()
                    .map(|a| text(*a, "subnetId"))
                    .filter(|s| !s.is_empty())
                    .collect();
                Some((text(t, "routeTableId"), subnets.join(",")))
            })
            .await
            .into_iter()
            .find(|(_, s)| s.split(',').any(|x| x == subnet));
            let (table, _) = taken?;
            Some((
                "Resource.AlreadyAssociated",
                format!("the specified association for route table {table} conflicts with an existing association"),
            ))
        }
        _ => None,
    }
}

/// Remembers what a termination or an ELB deletion keeps holding.
pub(crate) async fn before_forward(
    req: &Request,
    action: &str,
    upstream: &Upstream,
    ctl: &Control,
    hold: Duration,
) {
    if hold.is_zero() {
        return;
    }
    let records: Vec<Held> = match action {
        "TerminateInstances" => {
            let ids = req.list_param("InstanceId");
            instances(upstream)
                .await
                .into_iter()
                .filter(|i| ids.contains(&i.id) && live(&i.state))
                .map(|i| Held {
                    what: i.id,
                    until: until(hold),
                    vpc: Some(i.vpc),
                    subnets: vec![i.subnet],
                    groups: i.groups,
                    public: i.public,
                })
                .collect()
        }
        "DeleteLoadBalancer" => {
            let Some(name) = req.param("LoadBalancerName") else {
                return;
            };
            load_balancers(upstream)
                .await
                .into_iter()
                .filter(|lb| lb.name == name)
                .map(|lb| Held {
                    what: format!("ELB {} interfaces", lb.name),
                    until: until(hold),
                    vpc: Some(lb.vpc),
                    subnets: lb.subnets,
                    groups: lb.groups,
                    public: lb.internet_facing,
                })
                .collect()
        }
        _ => return,
    };
    ctl.held.lock().unwrap().extend(records);
}
