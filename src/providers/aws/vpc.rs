//! The cluster's own VPC (placement = "peered").

use aws_sdk_ec2::types::{AttributeBooleanValue, ResourceType};

use super::{classify, observed, owned_id, str_prop, Aws};
use crate::apply::ProviderError;
use crate::model::{Kind, Observed, Props, Resource, ResourceId, Value};

pub async fn observe(aws: &Aws, only: Option<&ResourceId>) -> Result<Vec<Observed>, ProviderError> {
    let out = aws
        .ec2
        .describe_vpcs()
        .set_filters(Some(aws.owner_filters(only)))
        .send()
        .await
        .map_err(|e| classify("DescribeVpcs", e))?;
    Ok(out
        .vpcs()
        .iter()
        .filter_map(|v| {
            let id = owned_id(&aws.owner, v.tags(), Kind::Vpc)?;
            let mut props = Props::new();
            props.insert("cidr".into(), Value::str(v.cidr_block()?));
            Some(observed(id, v.vpc_id()?, props))
        })
        .collect())
}

pub async fn create(aws: &Aws, r: &Resource) -> Result<String, ProviderError> {
    let out = aws
        .ec2
        .create_vpc()
        .cidr_block(str_prop(&r.props, "cidr")?)
        .tag_specifications(aws.tag_spec(ResourceType::Vpc, &r.id, &[]))
        .send()
        .await
        .map_err(|e| classify("CreateVpc", e))?;
    let id = out
        .vpc()
        .and_then(|v| v.vpc_id())
        .ok_or_else(|| ProviderError::fatal("CreateVpc returned no id"))?;
    // Private DNS names for instances; resolution across the peering needs them.
    aws.ec2
        .modify_vpc_attribute()
        .vpc_id(id)
        .enable_dns_hostnames(AttributeBooleanValue::builder().value(true).build())
        .send()
        .await
        .map_err(|e| classify("ModifyVpcAttribute", e))?;
    Ok(id.to_string())
}

pub async fn delete(aws: &Aws, physical_id: &str) -> Result<(), ProviderError> {
    aws.ec2
        .delete_vpc()
        .vpc_id(physical_id)
        .send()
        .await
        .map_err(|e| classify("DeleteVpc", e))?;
    Ok(())
}
