//! The cluster's route table. Its routes and subnet associations are kinds of
//! their own, read from the same DescribeRouteTables answer.

use aws_sdk_ec2::types::{Filter, ResourceType, RouteTable};

use super::{classify, observed, owned_id, read, str_prop, Aws};
use crate::apply::ProviderError;
use crate::model::{Kind, Observed, Props, Resource, Value};

pub async fn describe(aws: &Aws, filters: Vec<Filter>) -> Result<Vec<RouteTable>, ProviderError> {
    let filters = &filters;
    let out = read(|| async move {
        aws.ec2
            .describe_route_tables()
            .set_filters(Some(filters.clone()))
            .send()
            .await
            .map_err(|e| classify("DescribeRouteTables", e))
    })
    .await?;
    Ok(out.route_tables().to_vec())
}

pub fn from_tables(aws: &Aws, tables: &[RouteTable]) -> Vec<Observed> {
    tables
        .iter()
        .filter_map(|t| {
            let id = owned_id(&aws.owner, t.tags(), Kind::RouteTable)?;
            Some(observed(
                id,
                t.route_table_id()?,
                Props::from([("vpc".into(), Value::str(t.vpc_id()?))]),
            ))
        })
        .collect()
}

pub async fn find(aws: &Aws, r: &Resource) -> Result<Option<String>, ProviderError> {
    let tables = describe(aws, aws.owner_filters(Some(&r.id))).await?;
    Ok(from_tables(aws, &tables)
        .into_iter()
        .next()
        .map(|o| o.physical_id))
}

pub async fn create(aws: &Aws, r: &Resource) -> Result<String, ProviderError> {
    let out = aws
        .ec2
        .create_route_table()
        .vpc_id(str_prop(&r.props, "vpc")?)
        .client_token(aws.client_token(&r.id))
        .tag_specifications(aws.tag_spec(ResourceType::RouteTable, &r.id, &[]))
        .send()
        .await
        .map_err(|e| classify("CreateRouteTable", e))?;
    out.route_table()
        .and_then(|t| t.route_table_id())
        .map(str::to_string)
        .ok_or_else(|| ProviderError::fatal("CreateRouteTable returned no id"))
}

pub async fn delete(aws: &Aws, physical_id: &str) -> Result<(), ProviderError> {
    aws.ec2
        .delete_route_table()
        .route_table_id(physical_id)
        .send()
        .await
        .map_err(|e| classify("DeleteRouteTable", e))?;
    Ok(())
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
        pid: &str,
        _: &Props,
    ) -> Result<(), ProviderError> {
        delete(aws, pid).await
    }
}
