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
    let out = aws
        .ec2
        .create_security_group()
        .vpc_id(str_prop(&r.props, "vpc")?)
        .group_name(str_prop(&r.props, "group_name")?)
        .description(str_prop(&r.props, "description")?)
        .tag_specifications(aws.tag_spec(ResourceType::SecurityGroup, &r.id, &[]))
        .send()
        .await
        .map_err(|e| classify("CreateSecurityGroup", e))?;
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
