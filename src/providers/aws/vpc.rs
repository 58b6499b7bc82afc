//! The cluster's own VPC (placement = "peered").

use aws_sdk_ec2::types::{AttributeBooleanValue, ResourceType, VpcAttributeName};

use super::{classify, observed, owned_id, read, read_existing, str_prop, Aws};
use crate::apply::{ErrorKind, ProviderError};
use crate::model::{Kind, Observed, Props, Resource, ResourceId, Value};

pub async fn observe(aws: &Aws, only: Option<&ResourceId>) -> Result<Vec<Observed>, ProviderError> {
    let out = read(|| async move {
        aws.ec2
            .describe_vpcs()
            .set_filters(Some(aws.owner_filters(only)))
            .send()
            .await
            .map_err(|e| classify("DescribeVpcs", e))
    })
    .await?;
    let mut found = Vec::new();
    for v in out.vpcs() {
        let (Some(id), Some(vpc_id), Some(cidr)) = (
            owned_id(&aws.owner, v.tags(), Kind::Vpc),
            v.vpc_id(),
            v.cidr_block(),
        ) else {
            continue;
        };
        // One call per owned VPC (there is one): the attribute is not in
        // DescribeVpcs, and an interrupted create can leave it unset.
        let attribute = || async move {
            aws.ec2
                .describe_vpc_attribute()
                .vpc_id(vpc_id)
                .attribute(VpcAttributeName::EnableDnsHostnames)
                .send()
                .await
                .map_err(|e| classify("DescribeVpcAttribute", e))
        };
        let attr = match read(attribute).await {
            Ok(a) => a,
            // Just created (not visible yet), or deleted since it was listed
            // (a delete in flight): only the first is worth waiting for.
            Err(e) if e.kind == ErrorKind::NotFound => {
                if !exists(aws, vpc_id).await? {
                    continue;
                }
                read_existing(attribute).await?
            }
            Err(e) => return Err(e),
        };
        let dns = attr
            .enable_dns_hostnames()
            .and_then(|a| a.value())
            .unwrap_or(false);
        let props = Props::from([
            ("cidr".into(), Value::str(cidr)),
            ("dns_hostnames".into(), Value::Bool(dns)),
        ]);
        found.push(observed(id, vpc_id, props));
    }
    Ok(found)
}

async fn exists(aws: &Aws, vpc_id: &str) -> Result<bool, ProviderError> {
    let filters = vec![Aws::filter("vpc-id", [vpc_id])];
    let filters = &filters;
    let out = read(|| async move {
        aws.ec2
            .describe_vpcs()
            .set_filters(Some(filters.clone()))
            .send()
            .await
            .map_err(|e| classify("DescribeVpcs", e))
    })
    .await?;
    Ok(!out.vpcs().is_empty())
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
    update(aws, r, id).await?;
    Ok(id.to_string())
}

/// Sets the DNS attribute; also finishes a create interrupted before it.
pub async fn update(aws: &Aws, r: &Resource, physical_id: &str) -> Result<(), ProviderError> {
    let want = super::bool_prop(&r.props, "dns_hostnames")?;
    super::on_new(|| async move {
        aws.ec2
            .modify_vpc_attribute()
            .vpc_id(physical_id)
            .enable_dns_hostnames(AttributeBooleanValue::builder().value(want).build())
            .send()
            .await
            .map_err(|e| classify("ModifyVpcAttribute", e).doing("setting enableDnsHostnames"))
    })
    .await?;
    Ok(())
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
