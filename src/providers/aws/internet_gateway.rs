//! The cluster VPC's internet gateway (placement = "peered"). Beside the
//! database, the VPC's own gateway is only read (see `facts`).

use aws_sdk_ec2::types::ResourceType;

use super::{classify, observed, owned_id, read, str_prop, Aws};
use crate::apply::ProviderError;
use crate::model::{Kind, Observed, Props, Resource, ResourceId, Value};

pub async fn observe(aws: &Aws, only: Option<&ResourceId>) -> Result<Vec<Observed>, ProviderError> {
    let out = read(|| async move {
        aws.ec2
            .describe_internet_gateways()
            .set_filters(Some(aws.owner_filters(only)))
            .send()
            .await
            .map_err(|e| classify("DescribeInternetGateways", e))
    })
    .await?;
    Ok(out
        .internet_gateways()
        .iter()
        .filter_map(|g| {
            let id = owned_id(&aws.owner, g.tags(), Kind::InternetGateway)?;
            let vpc = g
                .attachments()
                .iter()
                .find_map(|a| a.vpc_id())
                .unwrap_or_default();
            Some(observed(
                id,
                g.internet_gateway_id()?,
                Props::from([("vpc".into(), Value::str(vpc))]),
            ))
        })
        .collect())
}

pub async fn create(aws: &Aws, r: &Resource) -> Result<String, ProviderError> {
    let out = aws
        .ec2
        .create_internet_gateway()
        .tag_specifications(aws.tag_spec(ResourceType::InternetGateway, &r.id, &[]))
        .send()
        .await
        .map_err(|e| classify("CreateInternetGateway", e))?;
    let id = out
        .internet_gateway()
        .and_then(|g| g.internet_gateway_id())
        .ok_or_else(|| ProviderError::fatal("CreateInternetGateway returned no id"))?
        .to_string();
    attach(aws, &id, &str_prop(&r.props, "vpc")?).await?;
    Ok(id)
}

async fn attach(aws: &Aws, id: &str, vpc: &str) -> Result<(), ProviderError> {
    let result = super::on_new(|| async move {
        aws.ec2
            .attach_internet_gateway()
            .internet_gateway_id(id)
            .vpc_id(vpc)
            .send()
            .await
            .map_err(|e| {
                classify("AttachInternetGateway", e).doing(format!("attaching it to {vpc}"))
            })
    })
    .await;
    match result {
        // An earlier attempt attached it and its answer was lost.
        Err(e) if e.code.as_deref() == Some("Resource.AlreadyAssociated") => Ok(()),
        other => other.map(|_| ()),
    }
}

/// Attaches a gateway whose create was interrupted before the attachment.
pub async fn finish(aws: &Aws, r: &Resource, physical_id: &str) -> Result<(), ProviderError> {
    attach(aws, physical_id, &str_prop(&r.props, "vpc")?).await
}

/// Safe to repeat within the step: a repeat after a lost answer meets
/// `Gateway.NotAttached`, which means done.
async fn detach(aws: &Aws, id: &str, vpc: &str) -> Result<(), ProviderError> {
    let result = super::idempotent(|| async move {
        aws.ec2
            .detach_internet_gateway()
            .internet_gateway_id(id)
            .vpc_id(vpc)
            .send()
            .await
            .map_err(|e| classify("DetachInternetGateway", e))
    })
    .await;
    match result {
        Err(e) if e.code.as_deref() == Some("Gateway.NotAttached") => Ok(()),
        other => other.map(|_| ()),
    }
}

/// A gateway left unattached by an interrupted create is attached here.
pub async fn update(
    aws: &Aws,
    r: &Resource,
    physical_id: &str,
    before: &Props,
) -> Result<(), ProviderError> {
    let old = before
        .get("vpc")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !old.is_empty() {
        detach(aws, physical_id, old).await?;
    }
    attach(aws, physical_id, &str_prop(&r.props, "vpc")?).await
}

pub async fn delete(aws: &Aws, physical_id: &str, before: &Props) -> Result<(), ProviderError> {
    let vpc = before
        .get("vpc")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !vpc.is_empty() {
        match detach(aws, physical_id, vpc).await {
            Err(e) if e.code.as_deref() != Some("Gateway.NotAttached") => return Err(e),
            _ => {}
        }
    }
    // A repeat after a lost answer is NotFound: done.
    super::idempotent(|| async move {
        aws.ec2
            .delete_internet_gateway()
            .internet_gateway_id(physical_id)
            .send()
            .await
            .map_err(|e| classify("DeleteInternetGateway", e))
    })
    .await?;
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
        before: &Props,
    ) -> Result<(), ProviderError> {
        delete(aws, pid, before).await
    }
}
