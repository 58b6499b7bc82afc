//! Routes: the cluster table's default route, and the routes both ways across
//! the peering. Routes are not taggable: a route is ours when it lives in an
//! owned table or points at an owned peering connection, and its id is
//! derived from that.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::RouteTable;

use super::{classify, observed, read, str_prop, Aws};
use crate::apply::{ErrorKind, ProviderError};
use crate::desired::to_database_name;
use crate::model::{Actual, Kind, Observed, Ownership, Props, Resource, ResourceId, Value};

fn physical(table: &str, destination: &str) -> String {
    format!("{table}:{destination}")
}

pub fn from_tables(
    _aws: &Aws,
    owned: &[RouteTable],
    foreign: &[RouteTable],
    actual: &Actual,
) -> Vec<Observed> {
    let of_kind = |k: Kind| -> BTreeMap<&str, &ResourceId> {
        actual
            .resources
            .values()
            .filter(|o| o.id.kind() == Some(k))
            .map(|o| (o.physical_id.as_str(), &o.id))
            .collect()
    };
    let tables = of_kind(Kind::RouteTable);
    let peerings = of_kind(Kind::VpcPeering);
    let mut out = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for t in owned.iter().chain(foreign) {
        let Some(rtb) = t.route_table_id() else {
            continue;
        };
        // An owned table with a route to the peering is in both lists.
        if !seen.insert(rtb) {
            continue;
        }
        let table_id = tables.get(rtb);
        for r in t.routes() {
            let Some(dest) = r.destination_cidr_block() else {
                continue;
            };
            let pcx = r
                .vpc_peering_connection_id()
                .filter(|p| peerings.contains_key(p));
            let (name, target) = match (table_id, pcx, r.gateway_id()) {
                (Some(tid), None, Some(igw)) if dest == "0.0.0.0/0" && igw.starts_with("igw-") => {
                    (format!("{}-default", tid.name()), ("gateway", igw))
                }
                (Some(tid), Some(p), _) => (to_database_name(tid.name(), dest), ("peering", p)),
                (None, Some(p), _) => (format!("database-{rtb}"), ("peering", p)),
                _ => continue,
            };
            let props = Props::from([
                ("route_table".into(), Value::str(rtb)),
                ("destination".into(), Value::str(dest)),
                (target.0.into(), Value::str(target.1)),
            ]);
            out.push(observed(
                ResourceId::new(Kind::Route, &name),
                physical(rtb, dest),
                props,
            ));
        }
    }
    out
}

fn target(r: &Resource) -> (Option<String>, Option<String>) {
    let get = |k: &str| r.props.get(k).and_then(Value::as_str).map(str::to_string);
    (get("gateway"), get("peering"))
}

pub async fn find(aws: &Aws, r: &Resource) -> Result<Option<String>, ProviderError> {
    let table = str_prop(&r.props, "route_table")?;
    let dest = str_prop(&r.props, "destination")?;
    let (gw, pcx) = target(r);
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
    let found = out.route_tables().iter().flat_map(|t| t.routes()).any(|x| {
        x.destination_cidr_block() == Some(dest.as_str())
            && (gw.is_none() || x.gateway_id() == gw.as_deref())
            && (pcx.is_none() || x.vpc_peering_connection_id() == pcx.as_deref())
    });
    Ok(found.then(|| physical(&table, &dest)))
}

pub async fn create(aws: &Aws, r: &Resource) -> Result<String, ProviderError> {
    let table = str_prop(&r.props, "route_table")?;
    let dest = str_prop(&r.props, "destination")?;
    let (gw, pcx) = target(r);
    let result = aws
        .ec2
        .create_route()
        .route_table_id(&table)
        .destination_cidr_block(&dest)
        .set_gateway_id(gw)
        .set_vpc_peering_connection_id(pcx)
        .send()
        .await
        .map_err(|e| classify("CreateRoute", e));
    match result {
        // In our own table, a route left by an earlier run (to a gateway or
        // peering since replaced): point it at the current one.
        Err(e)
            if e.code.as_deref() == Some("RouteAlreadyExists")
                && r.ownership == Ownership::Owned =>
        {
            update(aws, r).await?
        }
        // In a table that is not ours, the route is someone else's: never
        // changed, never deleted; the operator decides.
        Err(e) if e.code.as_deref() == Some("RouteAlreadyExists") => {
            let existing = existing_target(aws, &table, &dest).await?;
            return Err(ProviderError::new(
                ErrorKind::Fatal,
                e.code,
                format!(
                    "route table {table} (not scopectl's) already routes {dest} to {existing}"
                ),
            )
            .with_hint(format!(
                "scopectl does not change routes it does not own: remove that route from {table} if it is stale, or choose a network.cidr that does not overlap {dest}"
            )));
        }
        other => {
            other?;
        }
    }
    Ok(physical(&table, &dest))
}

/// What the route to `dest` in `table` points at, for an error message.
async fn existing_target(aws: &Aws, table: &str, dest: &str) -> Result<String, ProviderError> {
    let out = read(|| async move {
        aws.ec2
            .describe_route_tables()
            .route_table_ids(table)
            .send()
            .await
            .map_err(|e| classify("DescribeRouteTables", e))
    })
    .await?;
    let route = out
        .route_tables()
        .iter()
        .flat_map(|t| t.routes())
        .find(|x| x.destination_cidr_block() == Some(dest));
    Ok(route
        .and_then(|x| {
            x.vpc_peering_connection_id()
                .or(x.gateway_id())
                .or(x.nat_gateway_id())
                .or(x.transit_gateway_id())
                .or(x.network_interface_id())
                .or(x.instance_id())
                .map(str::to_string)
        })
        .unwrap_or_else(|| "another target".into()))
}

pub async fn update(aws: &Aws, r: &Resource) -> Result<(), ProviderError> {
    let (gw, pcx) = target(r);
    aws.ec2
        .replace_route()
        .route_table_id(str_prop(&r.props, "route_table")?)
        .destination_cidr_block(str_prop(&r.props, "destination")?)
        .set_gateway_id(gw)
        .set_vpc_peering_connection_id(pcx)
        .send()
        .await
        .map_err(|e| classify("ReplaceRoute", e))?;
    Ok(())
}

pub async fn delete(aws: &Aws, before: &Props) -> Result<(), ProviderError> {
    aws.ec2
        .delete_route()
        .route_table_id(str_prop(before, "route_table")?)
        .destination_cidr_block(str_prop(before, "destination")?)
        .send()
        .await
        .map_err(|e| classify("DeleteRoute", e))?;
    Ok(())
}

super::kind_ops! {
    async fn find(aws: &Aws, r: &Resource) -> Result<Option<String>, ProviderError> {
        find(aws, r).await
    }
    async fn create(aws: &Aws, r: &Resource) -> Result<String, ProviderError> {
        create(aws, r).await
    }
    async fn update(aws: &Aws, r: &Resource, _: &str, _: &Props) -> Result<(), ProviderError> {
        update(aws, r).await
    }
    async fn delete(
        aws: &Aws,
        _: &ResourceId,
        _: &str,
        before: &Props,
    ) -> Result<(), ProviderError> {
        delete(aws, before).await
    }
}
