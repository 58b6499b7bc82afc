//! Classic ELBs: the API server's (TCP 443 → 6443 on the masters) and one per
//! exposed service (TCP 80 → its NodePort on every node). Registrations of
//! instances are their own kind (`registration`), read from the same answer.

use std::collections::BTreeMap;

use aws_sdk_elasticloadbalancing::types::{
    ConnectionDraining, ConnectionSettings, CrossZoneLoadBalancing, HealthCheck, Listener,
    LoadBalancerAttributes, LoadBalancerDescription, Tag,
};

use super::{classify, idempotent, owned_id, read, str_list_prop, str_prop, Aws};
use crate::apply::ProviderError;
use crate::model::{Kind, Observed, Props, Resource, Value};

/// Every classic ELB in the region, with its tags: one DescribeLoadBalancers
/// (paged) and one DescribeTags per 20 balancers.
pub async fn describe_all(
    aws: &Aws,
) -> Result<Vec<(LoadBalancerDescription, Vec<aws_sdk_ec2::types::Tag>)>, ProviderError> {
    let mut all = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let m = marker.as_deref();
        let page = read(|| async move {
            aws.elb
                .describe_load_balancers()
                .set_marker(m.map(str::to_string))
                .send()
                .await
                .map_err(|e| classify("DescribeLoadBalancers", e))
        })
        .await?;
        all.extend(page.load_balancer_descriptions().iter().cloned());
        marker = page.next_marker().map(str::to_string);
        if marker.is_none() {
            break;
        }
    }
    let names: Vec<String> = all
        .iter()
        .filter_map(|lb| lb.load_balancer_name().map(str::to_string))
        .collect();
    let mut tags: BTreeMap<String, Vec<aws_sdk_ec2::types::Tag>> = BTreeMap::new();
    for chunk in names.chunks(20) {
        let descriptions = match describe_tags(aws, chunk).await {
            Ok(d) => d,
            // One of them went away since it was listed (a delete in flight):
            // ask one by one and skip the missing.
            Err(e) if e.kind == crate::apply::ErrorKind::NotFound => {
                let mut all = Vec::new();
                for name in chunk {
                    match describe_tags(aws, std::slice::from_ref(name)).await {
                        Ok(d) => all.extend(d),
                        Err(e) if e.kind == crate::apply::ErrorKind::NotFound => {}
                        Err(e) => return Err(e),
                    }
                }
                all
            }
            Err(e) => return Err(e),
        };
        for d in &descriptions {
            if let Some(n) = d.load_balancer_name() {
                tags.insert(n.to_string(), ec2_tags(d));
            }
        }
    }
    Ok(all
        .into_iter()
        .map(|lb| {
            let t = tags
                .remove(lb.load_balancer_name().unwrap_or_default())
                .unwrap_or_default();
            (lb, t)
        })
        .collect())
}

/// A balancer's tags in EC2's shape, so `owned_id` reads them like any other.
fn ec2_tags(
    d: &aws_sdk_elasticloadbalancing::types::TagDescription,
) -> Vec<aws_sdk_ec2::types::Tag> {
    d.tags()
        .iter()
        .map(|t| {
            aws_sdk_ec2::types::Tag::builder()
                .key(t.key())
                .set_value(t.value().map(str::to_string))
                .build()
        })
        .collect()
}

async fn describe_tags(
    aws: &Aws,
    names: &[String],
) -> Result<Vec<aws_sdk_elasticloadbalancing::types::TagDescription>, ProviderError> {
    let out = read(|| async move {
        aws.elb
            .describe_tags()
            .set_load_balancer_names(Some(names.to_vec()))
            .send()
            .await
            .map_err(|e| classify("DescribeTags", e))
    })
    .await?;
    Ok(out.tag_descriptions().to_vec())
}

fn strings(v: &[String]) -> Value {
    let mut items: Vec<Value> = v.iter().map(Value::str).collect();
    items.sort();
    Value::list(items)
}

fn props(lb: &LoadBalancerDescription) -> Props {
    let listeners = lb
        .listener_descriptions()
        .iter()
        .filter_map(|d| d.listener())
        .map(|l| {
            Value::Map(BTreeMap::from([
                ("protocol".into(), Value::str(l.protocol())),
                ("port".into(), Value::Int(l.load_balancer_port().into())),
                (
                    "instance_protocol".into(),
                    Value::str(l.instance_protocol().unwrap_or(l.protocol())),
                ),
                ("instance_port".into(), Value::Int(l.instance_port().into())),
            ]))
        })
        .collect();
    let mut props = Props::from([
        (
            "name".into(),
            Value::str(lb.load_balancer_name().unwrap_or_default()),
        ),
        (
            "scheme".into(),
            Value::str(lb.scheme().unwrap_or("internet-facing")),
        ),
        ("subnets".into(), strings(lb.subnets())),
        ("security_groups".into(), strings(lb.security_groups())),
        ("listeners".into(), Value::list(listeners)),
        (
            "dns_name".into(),
            Value::str(lb.dns_name().unwrap_or_default()),
        ),
    ]);
    if let Some(h) = lb.health_check() {
        props.insert(
            "health_check".into(),
            Value::Map(BTreeMap::from([
                ("target".into(), Value::str(h.target())),
                ("interval".into(), Value::Int(h.interval().into())),
                ("timeout".into(), Value::Int(h.timeout().into())),
                ("healthy".into(), Value::Int(h.healthy_threshold().into())),
                (
                    "unhealthy".into(),
                    Value::Int(h.unhealthy_threshold().into()),
                ),
            ])),
        );
    }
    props
}

/// This env's balancers, and for each the instances registered with it.
pub fn from_descriptions(
    aws: &Aws,
    all: &[(LoadBalancerDescription, Vec<aws_sdk_ec2::types::Tag>)],
) -> Vec<(Observed, Vec<String>)> {
    all.iter()
        .filter_map(|(lb, tags)| {
            let id = owned_id(&aws.owner, tags, Kind::LoadBalancer)?;
            let instances = lb
                .instances()
                .iter()
                .filter_map(|i| i.instance_id().map(str::to_string))
                .collect();
            Some((
                Observed {
                    id,
                    physical_id: lb.load_balancer_name()?.to_string(),
                    props: props(lb),
                },
                instances,
            ))
        })
        .collect()
}

pub async fn find(aws: &Aws, r: &Resource) -> Result<Option<String>, ProviderError> {
    let name = str_prop(&r.props, "name")?;
    let n = name.as_str();
    let found = read(|| async move {
        match aws
            .elb
            .describe_load_balancers()
            .load_balancer_names(n)
            .send()
            .await
        {
            Ok(out) => Ok(!out.load_balancer_descriptions().is_empty()),
            Err(e) => {
                let e = classify("DescribeLoadBalancers", e);
                if e.kind == crate::apply::ErrorKind::NotFound {
                    Ok(false)
                } else {
                    Err(e)
                }
            }
        }
    })
    .await?;
    if !found {
        return Ok(None);
    }
    // A balancer by our name that is not tagged as this one is someone
    // else's: never reconfigured, registered into or deleted.
    let tags = describe_tags(aws, std::slice::from_ref(&name)).await?;
    let ours = tags
        .iter()
        .any(|d| owned_id(&aws.owner, &ec2_tags(d), Kind::LoadBalancer).as_ref() == Some(&r.id));
    if !ours {
        return Err(super::not_ours(aws, "classic load balancer", &name, &r.id));
    }
    Ok(Some(name))
}

fn int(m: &BTreeMap<String, Value>, key: &str) -> i32 {
    m.get(key).and_then(Value::as_int).unwrap_or_default() as i32
}

pub async fn create(aws: &Aws, r: &Resource) -> Result<String, ProviderError> {
    let name = str_prop(&r.props, "name")?;
    let listeners = r
        .props
        .get("listeners")
        .map(Value::as_list)
        .unwrap_or_default()
        .iter()
        .filter_map(Value::as_map)
        .map(|l| {
            Listener::builder()
                .protocol(l.get("protocol").and_then(Value::as_str).unwrap_or("TCP"))
                .load_balancer_port(int(l, "port"))
                .instance_protocol(
                    l.get("instance_protocol")
                        .and_then(Value::as_str)
                        .unwrap_or("TCP"),
                )
                .instance_port(int(l, "instance_port"))
                .build()
                .map_err(|e| ProviderError::fatal(e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let tags = aws
        .owner
        .tags_for(&r.id)
        .into_iter()
        .filter_map(|(k, v)| Tag::builder().key(k).value(v).build().ok())
        .collect();
    let mut call = aws
        .elb
        .create_load_balancer()
        .load_balancer_name(&name)
        .set_listeners(Some(listeners))
        .set_subnets(Some(str_list_prop(&r.props, "subnets")))
        .set_security_groups(Some(str_list_prop(&r.props, "security_groups")))
        .set_tags(Some(tags));
    if str_prop(&r.props, "scheme")? == "internal" {
        call = call.scheme("internal");
    }
    call.send()
        .await
        .map_err(|e| classify("CreateLoadBalancer", e))?;
    finish(aws, r, &name).await?;
    Ok(name)
}

/// The health check and the attributes (cross-zone balancing, connection
/// draining, the idle timeout: long watches and exec streams through the
/// API's balancer outlive the 60 s default); both idempotent.
pub async fn finish(aws: &Aws, r: &Resource, name: &str) -> Result<(), ProviderError> {
    // Independent settings of one balancer: both at once.
    futures::try_join!(
        configure_health_check(aws, r, name),
        modify_attributes(aws, r, name)
    )?;
    Ok(())
}

async fn modify_attributes(aws: &Aws, r: &Resource, name: &str) -> Result<(), ProviderError> {
    let attrs = r
        .props
        .get("attributes")
        .and_then(Value::as_map)
        .cloned()
        .unwrap_or_default();
    let draining = int(&attrs, "draining_seconds");
    let attributes = LoadBalancerAttributes::builder()
        .cross_zone_load_balancing(
            CrossZoneLoadBalancing::builder()
                .enabled(
                    attrs
                        .get("cross_zone")
                        .and_then(Value::as_bool)
                        .unwrap_or(true),
                )
                .build(),
        )
        .connection_draining(
            ConnectionDraining::builder()
                .enabled(draining > 0)
                .timeout(draining)
                .build(),
        )
        .connection_settings(
            ConnectionSettings::builder()
                .idle_timeout(match int(&attrs, "idle_timeout_seconds") {
                    0 => 60,
                    n => n,
                })
                .build()
                .map_err(|e| ProviderError::fatal("the idle timeout").caused_by(e.to_string()))?,
        )
        .build();
    let attributes = &attributes;
    idempotent(|| async move {
        aws.elb
            .modify_load_balancer_attributes()
            .load_balancer_name(name)
            .load_balancer_attributes(attributes.clone())
            .send()
            .await
            .map_err(|e| classify("ModifyLoadBalancerAttributes", e))
    })
    .await?;
    Ok(())
}

async fn configure_health_check(aws: &Aws, r: &Resource, name: &str) -> Result<(), ProviderError> {
    let h = r
        .props
        .get("health_check")
        .and_then(Value::as_map)
        .cloned()
        .unwrap_or_default();
    let check = HealthCheck::builder()
        .target(h.get("target").and_then(Value::as_str).unwrap_or("TCP:80"))
        .interval(int(&h, "interval"))
        .timeout(int(&h, "timeout"))
        .healthy_threshold(int(&h, "healthy"))
        .unhealthy_threshold(int(&h, "unhealthy"))
        .build()
        .map_err(|e| ProviderError::fatal(e.to_string()))?;
    let check = &check;
    idempotent(|| async move {
        aws.elb
            .configure_health_check()
            .load_balancer_name(name)
            .health_check(check.clone())
            .send()
            .await
            .map_err(|e| classify("ConfigureHealthCheck", e))
    })
    .await?;
    Ok(())
}

/// In place: the health check, the security groups and the subnets (the
/// balancer keeps its DNS name).
pub async fn update(
    aws: &Aws,
    r: &Resource,
    name: &str,
    before: &Props,
) -> Result<(), ProviderError> {
    let had = str_list_prop(before, "subnets");
    let want = str_list_prop(&r.props, "subnets");
    let attach: Vec<String> = want.iter().filter(|s| !had.contains(s)).cloned().collect();
    let detach: Vec<String> = had.iter().filter(|s| !want.contains(s)).cloned().collect();
    if !attach.is_empty() {
        aws.elb
            .attach_load_balancer_to_subnets()
            .load_balancer_name(name)
            .set_subnets(Some(attach))
            .send()
            .await
            .map_err(|e| classify("AttachLoadBalancerToSubnets", e))?;
    }
    if !detach.is_empty() {
        aws.elb
            .detach_load_balancer_from_subnets()
            .load_balancer_name(name)
            .set_subnets(Some(detach))
            .send()
            .await
            .map_err(|e| classify("DetachLoadBalancerFromSubnets", e))?;
    }
    if before.get("health_check") != r.props.get("health_check") {
        configure_health_check(aws, r, name).await?;
    }
    if before.get("security_groups") != r.props.get("security_groups") {
        aws.elb
            .apply_security_groups_to_load_balancer()
            .load_balancer_name(name)
            .set_security_groups(Some(str_list_prop(&r.props, "security_groups")))
            .send()
            .await
            .map_err(|e| classify("ApplySecurityGroupsToLoadBalancer", e))?;
    }
    Ok(())
}

pub async fn delete(aws: &Aws, name: &str) -> Result<(), ProviderError> {
    // Idempotent in AWS: deleting a missing load balancer succeeds.
    aws.elb
        .delete_load_balancer()
        .load_balancer_name(name)
        .send()
        .await
        .map_err(|e| classify("DeleteLoadBalancer", e))?;
    Ok(())
}

super::kind_ops! {
    async fn find(aws: &Aws, r: &Resource) -> Result<Option<String>, ProviderError> {
        find(aws, r).await
    }
    async fn create(aws: &Aws, r: &Resource) -> Result<String, ProviderError> {
        create(aws, r).await
    }
    async fn finish(aws: &Aws, r: &Resource, pid: &str) -> Result<(), ProviderError> {
        finish(aws, r, pid).await
    }
    async fn update(
        aws: &Aws,
        r: &Resource,
        pid: &str,
        before: &Props,
    ) -> Result<(), ProviderError> {
        update(aws, r, pid, before).await
    }
    async fn delete(
        aws: &Aws,
        _: &ResourceId,
        pid: &str,
        _: &Props,
    ) -> Result<(), ProviderError> {
        delete(aws, pid).await
    }
}
