//! Security groups for masters, nodes and load balancers. Their rules are a
//! separate kind (`security_group_ingress`), since rules reference groups both ways.

use aws_sdk_ec2::types::ResourceType;

use super::{classify, observed, owned_id, read, str_prop, Aws};
use crate::apply::ProviderError;
use crate::model::{Kind, Observed, Props, Resource, ResourceId, Value};

pub async fn observe(aws: &Aws, only: Option<&ResourceId>) -> Result<Vec<Observed>, ProviderError> {
    let out = read(|| async move {
        aws.ec2
            .describe_security_groups()
            .set_filters(Some(aws.owner_filters(only)))
            .send()
            .await
            .map_err(|e| classify("DescribeSecurityGroups", e))
    })
    .await?;
    Ok(out
        .security_groups()
        .iter()
        .filter_map(|g| {
            let id = owned_id(&aws.owner, g.tags(), Kind::SecurityGroup)?;
            let props = Props::from([
                ("vpc".into(), Value::str(g.vpc_id()?)),
                ("group_name".into(), Value::str(g.group_name()?)),
                ("description".into(), Value::str(g.description()?)),
            ]);
            Some(observed(id, g.group_id()?, props))
        })
        .collect())
}

pub async fn create(aws: &Aws, r: &Resource) -> Result<String, ProviderError> {
    let vpc = str_prop(&r.props, "vpc")?;
    let name = str_prop(&r.props, "group_name")?;
    let result = aws
        .ec2
        .create_security_group()
        .vpc_id(&vpc)
        .group_name(&name)
        .description(str_prop(&r.props, "description")?)
        .tag_specifications(aws.tag_spec(ResourceType::SecurityGroup, &r.id, &[]))
        .send()
        .await
        .map_err(|e| classify("CreateSecurityGroup", e));
    let out = match result {
        // A group by our name in the VPC: ours if tagged so (an earlier
        // answer lost), else someone else's, never adopted.
        Err(e) if e.code.as_deref() == Some("InvalidGroup.Duplicate") => {
            let filters = vec![
                Aws::filter("vpc-id", [vpc.as_str()]),
                Aws::filter("group-name", [name.as_str()]),
            ];
            let filters = &filters;
            let found = read(|| async move {
                aws.ec2
                    .describe_security_groups()
                    .set_filters(Some(filters.clone()))
                    .send()
                    .await
                    .map_err(|e| classify("DescribeSecurityGroups", e))
            })
            .await?;
            let group = found.security_groups().first();
            return match group {
                Some(g)
                    if owned_id(&aws.owner, g.tags(), Kind::SecurityGroup).as_ref()
                        == Some(&r.id) =>
                {
                    g.group_id()
                        .map(str::to_string)
                        .ok_or_else(|| ProviderError::fatal("a security group without an id"))
                }
                _ => Err(super::not_ours(aws, "security group", &name, &r.id)),
            };
        }
        other => other?,
    };
    out.group_id()
        .map(str::to_string)
        .ok_or_else(|| ProviderError::fatal("CreateSecurityGroup returned no id"))
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
    async fn observe(aws: &Aws) -> Result<Vec<crate::model::Observed>, ProviderError> {
        observe(aws, None).await
    }
    async fn find(aws: &Aws, r: &Resource) -> Result<Option<String>, ProviderError> {
        first(observe(aws, Some(&r.id)).await?)
    }
    async fn create(aws: &Aws, r: &Resource) -> Result<String, ProviderError> {
        create(aws, r).await
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
