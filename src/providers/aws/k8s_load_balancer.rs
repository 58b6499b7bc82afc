//! Classic ELBs that Kubernetes created for `type: LoadBalancer` Services.
//! scopectl never creates them, but `down` must remove them first: they hold
//! the cluster's subnets and security groups (kops #383, #1370). Found by the
//! tag the cloud provider sets, `kubernetes.io/cluster/<cluster>` = `owned`;
//! `shared` and anything carrying scopectl's own tags are left alone.

use super::{tag, Aws};
use crate::apply::ProviderError;
use crate::model::{Kind, Observed, Props, ResourceId, Value, TAG_PROJECT};

/// The Kubernetes load balancers of this env's cluster.
pub async fn observe(aws: &Aws) -> Result<Vec<Observed>, ProviderError> {
    let all = super::load_balancer::describe_all(aws).await?;
    let cluster_tag = aws.owner.cluster_tag();
    Ok(all
        .iter()
        .filter(|(_, tags)| {
            tag(tags, &cluster_tag) == Some("owned") && tag(tags, TAG_PROJECT).is_none()
        })
        .filter_map(|(lb, _)| {
            let name = lb.load_balancer_name()?;
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
    super::load_balancer::delete(aws, name).await
}

super::kind_ops! {
    async fn find(_: &Aws, _: &Resource) -> Result<Option<String>, ProviderError> {
        Ok(None)
    }
    async fn create(_: &Aws, _: &Resource) -> Result<String, ProviderError> {
        Err(ProviderError::fatal(
            "scopectl never creates a Kubernetes load balancer",
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
