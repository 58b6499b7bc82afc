//! One instance registered with one load balancer. Its own kind so that a
//! rolling replacement registers the new instance before the old one is
//! deregistered and terminated. Read from DescribeLoadBalancers.

use std::collections::BTreeMap;

use aws_sdk_elasticloadbalancing::types::Instance;

use super::{classify, read, str_prop, Aws};
use crate::apply::{ErrorKind, ProviderError};
use crate::model::{Kind, Observed, Props, Resource, ResourceId, Value};

fn physical(load_balancer: &str, instance: &str) -> String {
    format!("{load_balancer}/{instance}")
}

/// Registrations of owned instances with owned balancers.
pub fn from_balancers(
    balancers: &[(Observed, Vec<String>)],
    instances: &BTreeMap<String, ResourceId>,
) -> Vec<Observed> {
    let mut out = Vec::new();
    for (lb, registered) in balancers {
        for instance in registered {
            let Some(iid) = instances.get(instance) else {
                continue;
            };
            out.push(Observed {
                id: ResourceId::new(
                    Kind::Registration,
                    &format!("{}.{}", lb.id.name(), iid.name()),
                ),
                physical_id: physical(&lb.physical_id, instance),
                props: Props::from([
                    ("load_balancer".into(), Value::str(&lb.physical_id)),
                    ("instance".into(), Value::str(instance)),
                ]),
            });
        }
    }
    out
}

pub async fn find(aws: &Aws, r: &Resource) -> Result<Option<String>, ProviderError> {
    let (lb, instance) = (
        str_prop(&r.props, "load_balancer")?,
        str_prop(&r.props, "instance")?,
    );
    let l = lb.as_str();
    let out = read(|| async move {
        aws.elb
            .describe_load_balancers()
            .load_balancer_names(l)
            .send()
            .await
            .map_err(|e| classify("DescribeLoadBalancers", e))
    })
    .await?;
    let registered = out
        .load_balancer_descriptions()
        .iter()
        .flat_map(|d| d.instances())
        .any(|i| i.instance_id() == Some(instance.as_str()));
    Ok(registered.then(|| physical(&lb, &instance)))
}

pub async fn create(aws: &Aws, r: &Resource) -> Result<String, ProviderError> {
    let (lb, instance) = (
        str_prop(&r.props, "load_balancer")?,
        str_prop(&r.props, "instance")?,
    );
    aws.elb
        .register_instances_with_load_balancer()
        .load_balancer_name(&lb)
        .instances(Instance::builder().instance_id(&instance).build())
        .send()
        .await
        .map_err(|e| classify("RegisterInstancesWithLoadBalancer", e))?;
    Ok(physical(&lb, &instance))
}

pub async fn delete(aws: &Aws, before: &Props) -> Result<(), ProviderError> {
    let (lb, instance) = (
        str_prop(before, "load_balancer")?,
        str_prop(before, "instance")?,
    );
    let result = aws
        .elb
        .deregister_instances_from_load_balancer()
        .load_balancer_name(&lb)
        .instances(Instance::builder().instance_id(&instance).build())
        .send()
        .await
        .map_err(|e| classify("DeregisterInstancesFromLoadBalancer", e));
    match result {
        // The balancer or the instance is gone already: nothing to undo.
        Err(e) if e.kind != ErrorKind::NotFound && e.code.as_deref() != Some("InvalidInstance") => {
            Err(e)
        }
        _ => Ok(()),
    }
}

super::kind_ops! {
    async fn find(aws: &Aws, r: &Resource) -> Result<Option<String>, ProviderError> {
        find(aws, r).await
    }
    async fn create(aws: &Aws, r: &Resource) -> Result<String, ProviderError> {
        create(aws, r).await
    }
    async fn delete(
        aws: &Aws,
        _: &ResourceId,
        _: &str,
        before: &Props,
    ) -> Result<(), ProviderError> {
        delete(aws, before).await
    }
}
