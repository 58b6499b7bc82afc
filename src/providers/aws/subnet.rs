//! Cluster subnets, one per zone. Tagged for ELB placement at creation.

use aws_sdk_ec2::types::{AttributeBooleanValue, ResourceType};

use super::{classify, observed, owned_id, read, str_prop, Aws};
use crate::apply::ProviderError;
use crate::model::{Kind, Observed, Props, Resource, ResourceId, Value};

pub async fn observe(aws: &Aws, only: Option<&ResourceId>) -> Result<Vec<Observed>, ProviderError> {
    let out = read(|| async move {
        aws.ec2
            .describe_subnets()
            .set_filters(Some(aws.owner_filters(only)))
            .send()
            .await
            .map_err(|e| classify("DescribeSubnets", e))
    })
    .await?;
    Ok(out
        .subnets()
        .iter()
        .filter_map(|s| {
            let id = owned_id(&aws.owner, s.tags(), Kind::Subnet)?;
            let props = Props::from([
                ("vpc".into(), Value::str(s.vpc_id()?)),
                ("cidr".into(), Value::str(s.cidr_block()?)),
                ("zone".into(), Value::str(s.availability_zone()?)),
                (
                    "public_ip".into(),
                    Value::Bool(s.map_public_ip_on_launch().unwrap_or(false)),
                ),
            ]);
            Some(observed(id, s.subnet_id()?, props))
        })
        .collect())
}

pub async fn create(aws: &Aws, r: &Resource) -> Result<String, ProviderError> {
    let out = aws
        .ec2
        .create_subnet()
        .vpc_id(str_prop(&r.props, "vpc")?)
        .cidr_block(str_prop(&r.props, "cidr")?)
        .availability_zone(str_prop(&r.props, "zone")?)
        .tag_specifications(aws.tag_spec(
            ResourceType::Subnet,
            &r.id,
            &[("kubernetes.io/role/elb", "1")],
        ))
        .send()
        .await
        .map_err(|e| classify("CreateSubnet", e))?;
    let id = out
        .subnet()
        .and_then(|s| s.subnet_id())
        .ok_or_else(|| ProviderError::fatal("CreateSubnet returned no id"))?
        .to_string();
    update(aws, r, &id).await?;
    Ok(id)
}

pub async fn update(aws: &Aws, r: &Resource, physical_id: &str) -> Result<(), ProviderError> {
    let public = super::bool_prop(&r.props, "public_ip")?;
    // Setting a value is safe to repeat; the id was just created or
    // observed, so NotFound is eventual consistency.
    super::on_new(|| async move {
        aws.ec2
            .modify_subnet_attribute()
            .subnet_id(physical_id)
            .map_public_ip_on_launch(AttributeBooleanValue::builder().value(public).build())
            .send()
            .await
            .map_err(|e| classify("ModifySubnetAttribute", e).doing("setting MapPublicIpOnLaunch"))
    })
    .await?;
    Ok(())
}

pub async fn delete(aws: &Aws, physical_id: &str) -> Result<(), ProviderError> {
    aws.ec2
        .delete_subnet()
        .subnet_id(physical_id)
        .send()
        .await
        .map_err(|e| classify("DeleteSubnet", e))?;
    Ok(())
}

super::kind_ops! {
    async fn observe(aws: &Aws) -> Result<Vec<crate::model::Observed>, ProviderError> {
        observe(aws, None).await
    }
    async fn find(aws: &Aws, r: &Resource) -> Result<Option<String>, ProviderError> {
        first(observe(aws, Some(&r.id)).await?)
    }
    async fn create(aws: &Aws, r: &Resource) -> Result<String, ProviderError> {
        create(aws, r).await
    }
    async fn finish(aws: &Aws, r: &Resource, pid: &str) -> Result<(), ProviderError> {
        update(aws, r, pid).await
    }
    async fn update(
        aws: &Aws,
        r: &Resource,
        pid: &str,
        _: &Props,
    ) -> Result<(), ProviderError> {
        update(aws, r, pid).await
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
