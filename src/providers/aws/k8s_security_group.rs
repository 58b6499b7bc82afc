//! The `k8s-elb-*` security groups Kubernetes creates beside its load
//! balancers, tagged `kubernetes.io/cluster/<cluster>` = `owned`. `down`
//! removes them after their load balancers; AWS refuses while the ELB's
//! interfaces linger, which the teardown waves wait out.

use super::{classify, read, tag, Aws};
use crate::apply::ProviderError;
use crate::model::{Kind, Observed, Props, ResourceId, Value, TAG_PROJECT};

pub async fn observe(aws: &Aws) -> Result<Vec<Observed>, ProviderError> {
    let cluster_tag = aws.owner.cluster_tag();
    let filters = vec![super::Aws::filter(&format!("tag:{cluster_tag}"), ["owned"])];
    let filters = &filters;
    let out = read(|| async move {
        aws.ec2
            .describe_security_groups()
            .set_filters(Some(filters.clone()))
            .send()
            .await
            .map_err(|e| classify("DescribeSecurityGroups", e))
    })
    .await?;
    Ok(out
        .security_groups()
        .iter()
        .filter(|g| {
            tag(g.tags(), &cluster_tag) == Some("owned")
                && tag(g.tags(), TAG_PROJECT).is_none()
                && g.group_name().is_some_and(|n| n.starts_with("k8s-elb-"))
        })
        .filter_map(|g| {
            Some(Observed {
                id: ResourceId::new(Kind::K8sSecurityGroup, g.group_name()?),
                physical_id: g.group_id()?.to_string(),
                props: Props::from([("vpc".into(), Value::str(g.vpc_id().unwrap_or_default()))]),
            })
        })
        .collect())
}

pub async fn delete(aws: &Aws, physical_id: &str) -> Result<(), ProviderError> {
    aws.ec2
        .delete_security_group()
        .group_id(physical_id)
        .send()
        .await
        .map_err(|e| classify("DeleteSecurityGroup", e))?;
    Ok(())
}

super::kind_ops! {
    async fn find(_: &Aws, _: &Resource) -> Result<Option<String>, ProviderError> {
        Ok(None)
    }
    async fn create(_: &Aws, _: &Resource) -> Result<String, ProviderError> {
        Err(ProviderError::fatal(
            "scopectl never creates a Kubernetes load balancer's group",
        ))
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
