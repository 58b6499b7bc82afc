//! A cluster subnet's association with the cluster route table. Not taggable:
//! owned because both ends are owned; its id follows the subnet's.

use aws_sdk_ec2::types::RouteTable;

use super::{classify, observed, read, str_prop, Aws};
use crate::apply::ProviderError;
use crate::model::{Actual, Kind, Observed, Props, Resource, ResourceId, Value};

/// Associations of owned tables with owned subnets.
pub fn from_tables(tables: &[RouteTable], actual: &Actual) -> Vec<Observed> {
    let subnet_ids: std::collections::BTreeMap<&str, &ResourceId> = actual
        .resources
        .values()
        .filter(|o| o.id.kind() == Some(Kind::Subnet))
        .map(|o| (o.physical_id.as_str(), &o.id))
        .collect();
    let owned_tables: Vec<&str> = actual
        .resources
        .values()
        .filter(|o| o.id.kind() == Some(Kind::RouteTable))
        .map(|o| o.physical_id.as_str())
        .collect();
    tables
        .iter()
        .filter(|t| {
            t.route_table_id()
                .is_some_and(|id| owned_tables.contains(&id))
        })
        .flat_map(|t| t.associations().iter().map(move |a| (t, a)))
        .filter_map(|(t, a)| {
            let subnet = a.subnet_id()?;
            let sid = subnet_ids.get(subnet)?;
            let id = ResourceId::new(Kind::RouteTableAssociation, sid.name());
            let props = Props::from([
                ("subnet".into(), Value::str(subnet)),
                ("route_table".into(), Value::str(t.route_table_id()?)),
            ]);
            Some(observed(id, a.route_table_association_id()?, props))
        })
        .collect()
}

pub async fn find(aws: &Aws, r: &Resource) -> Result<Option<String>, ProviderError> {
    let subnet = str_prop(&r.props, "subnet")?;
    let table = str_prop(&r.props, "route_table")?;
    let t = table.as_str();
    let out = read(|| async move {
        aws.ec2
            .describe_route_tables()
            .route_table_ids(t)
            .send()
            .await
            .map_err(|e| classify("DescribeRouteTables", e))
    })
    .await?;
    Ok(out
        .route_tables()
        .iter()
        .flat_map(|t| t.associations())
        .find(|a| a.subnet_id() == Some(subnet.as_str()))
        .and_then(|a| a.route_table_association_id())
        .map(str::to_string))
}

pub async fn create(aws: &Aws, r: &Resource) -> Result<String, ProviderError> {
    let out = aws
        .ec2
        .associate_route_table()
        .subnet_id(str_prop(&r.props, "subnet")?)
        .route_table_id(str_prop(&r.props, "route_table")?)
        .send()
        .await
        .map_err(|e| classify("AssociateRouteTable", e))?;
    out.association_id()
        .map(str::to_string)
        .ok_or_else(|| ProviderError::fatal("AssociateRouteTable returned no id"))
}

pub async fn delete(aws: &Aws, physical_id: &str) -> Result<(), ProviderError> {
    aws.ec2
        .disassociate_route_table()
        .association_id(physical_id)
        .send()
        .await
        .map_err(|e| classify("DisassociateRouteTable", e))?;
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
