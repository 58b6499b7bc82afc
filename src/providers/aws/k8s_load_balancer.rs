//! Classic ELBs that Kubernetes created for `type: LoadBalancer` Services.
//! scopectl never creates them, but `down` must remove them first: they hold
//! the cluster's subnets and security groups (kops #383, #1370). Found by the
//! tag the cloud provider sets, `kubernetes.io/cluster/<cluster>` = `owned`;
//! `shared` and anything carrying scopectl's own tags are left alone.

use super::{classify, read, tag, Aws};
use crate::apply::ProviderError;
use crate::model::{Kind, Observed, Props, ResourceId, Value, TAG_PROJECT};

/// The Kubernetes load balancers of this env's cluster.
pub async fn observe(aws: &Aws) -> Result<Vec<Observed>, ProviderError> {
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
    if all.is_empty() {
        return Ok(Vec::new());
    }
    let cluster_tag = aws.owner.cluster_tag();
    let mut owned = std::collections::BTreeSet::new();
    let names: Vec<String> = all
        .iter()
        .filter_map(|lb| lb.load_balancer_name().map(str::to_string))
        .collect();
    // DescribeTags takes at most 20 names per call.
    for chunk in names.chunks(20) {
        let out = read(|| async move {
            aws.elb
                .describe_tags()
                .set_load_balancer_names(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(|e| classify("DescribeTags", e))
        })
        .await?;
        for d in out.tag_descriptions() {
            let tags: Vec<aws_sdk_ec2::types::Tag> = d
                .tags()
                .iter()
                .map(|t| {
                    aws_sdk_ec2::types::Tag::builder()
                        .key(t.key())
                        .set_value(t.value().map(str::to_string))
                        .build()
                })
                .collect();
            if tag(&tags, &cluster_tag) == Some("owned") && tag(&tags, TAG_PROJECT).is_none() {
                if let Some(n) = d.load_balancer_name() {
                    owned.insert(n.to_string());
                }
            }
        }
    }
    Ok(all
        .iter()
        .filter_map(|lb| {
            let name = lb.load_balancer_name()?;
            if !owned.contains(name) {
                return None;
            }
            let strings = |v: &[String]| Value::list(v.iter().map(Value::str).collect());
            let props = Props::from([
                ("vpc".into(), Value::str(lb.vpc_id().unwrap_or_default())),
                ("subnets".into(), strings(lb.subnets())),
                ("security_groups".into(), strings(lb.security_groups())),
            ]);
            Some(Observed {
                id: ResourceId::new(Kind::K8sLoadBalancer, name),
                physical_id: name.to_string(),
                props,
            })
        })
        .collect())
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
