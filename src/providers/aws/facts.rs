//! Read-only look-ups of adopted resources: the RDS instance, its VPC, the
//! VPC's subnets, internet gateway and route tables, and the region's zones.

use super::{classify, owned_id, read, Aws};
use crate::apply::{ErrorKind, ProviderError};
use crate::desired::{
    choose_image, DatabaseFacts, Facts, ImageFacts, RouteTableFact, SubnetFact, VpcFacts,
};
use crate::model::Kind;

pub async fn gather(
    aws: &Aws,
    rds_instance: &str,
    route_tables: bool,
    image: ImageQuery<'_>,
) -> Result<Facts, ProviderError> {
    let (zones, database, image) =
        futures::try_join!(zones(aws), database(aws, rds_instance), images(aws, image))?;
    let (database, database_missing) = match database {
        Ok(db) => (Some(db), None),
        Err(answer) => (None, Some(answer)),
    };
    let database_vpc = match &database {
        Some(db) => Some(vpc(aws, &db.vpc_id, route_tables).await?),
        None => None,
    };
    Ok(Facts {
        zones,
        database,
        database_missing,
        database_vpc,
        image,
        ..Facts::default()
    })
}

/// Which machine image the config asks for.
#[derive(Clone, Copy, Debug)]
pub enum ImageQuery<'a> {
    /// The newest available image of `owner` named like `pattern`.
    Newest { owner: &'a str, pattern: &'a str },
    /// Exactly this AMI.
    Pinned(&'a str),
}

async fn images(aws: &Aws, query: ImageQuery<'_>) -> Result<Option<ImageFacts>, ProviderError> {
    let (owner, pattern, pinned) = match query {
        ImageQuery::Newest { owner, pattern } => (Some(owner), pattern, None),
        ImageQuery::Pinned(id) => (None, "", Some(id)),
    };
    let mut filters = vec![Aws::filter("state", ["available"])];
    if pinned.is_none() {
        filters.push(Aws::filter("name", [pattern]));
    }
    let filters = &filters;
    let out = read(|| async move {
        aws.ec2
            .describe_images()
            .set_owners(owner.map(|o| vec![o.to_string()]))
            .set_image_ids(pinned.map(|i| vec![i.to_string()]))
            .set_filters(Some(filters.clone()))
            .send()
            .await
            .map_err(|e| classify("DescribeImages", e))
    })
    .await;
    // A pinned id that does not exist is no image: `desired` says so.
    let out = match (out, pinned) {
        (Err(e), Some(_)) if e.kind == ErrorKind::NotFound => return Ok(None),
        (other, _) => other?,
    };
    let candidates: Vec<ImageFacts> = out
        .images()
        .iter()
        .filter_map(|i| {
            Some(ImageFacts {
                id: i.image_id()?.to_string(),
                name: i.name()?.to_string(),
                created: i.creation_date().unwrap_or_default().to_string(),
            })
        })
        .collect();
    Ok(choose_image(
        &candidates,
        pattern.starts_with("ubuntu/images/"),
    ))
}

async fn zones(aws: &Aws) -> Result<Vec<String>, ProviderError> {
    let out = read(|| async move {
        aws.ec2
            .describe_availability_zones()
            .send()
            .await
            .map_err(|e| classify("DescribeAvailabilityZones", e))
    })
    .await?;
    let mut zones: Vec<String> = out
        .availability_zones()
        .iter()
        .filter(|z| z.state().is_none_or(|s| s.as_str() == "available"))
        .filter(|z| z.zone_type().is_none_or(|t| t == "availability-zone"))
        .filter_map(|z| z.zone_name().map(str::to_string))
        .collect();
    zones.sort();
    Ok(zones)
}

/// What `scopectl init` reads about an existing database: the instance,
/// its VPC with every subnet, and the region's zones. Only Describe calls.
pub async fn survey(
    aws: &Aws,
    region: &str,
    identifier: &str,
) -> Result<Option<crate::init::Survey>, ProviderError> {
    let (zones, found) = futures::try_join!(zones(aws), describe_database(aws, identifier))?;
    let Ok(db) = found else {
        return Ok(None);
    };
    let database = database_facts(aws, identifier, &db).await?;
    let vpc = vpc(aws, &database.vpc_id, false).await?;
    Ok(Some(crate::init::Survey {
        region: region.to_string(),
        engine: db.engine().map(str::to_string),
        engine_version: db.engine_version().map(str::to_string),
        database,
        vpc,
        zones,
    }))
}

/// The database's facts; `Err` holds RDS's answer when it has no such
/// instance (`DBInstanceNotFound: …`), for the error `desired` gives.
async fn database(
    aws: &Aws,
    identifier: &str,
) -> Result<Result<DatabaseFacts, String>, ProviderError> {
    match describe_database(aws, identifier).await? {
        Ok(db) => Ok(Ok(database_facts(aws, identifier, &db).await?)),
        Err(answer) => Ok(Err(answer)),
    }
}

/// The instance, or RDS's answer when it has none by that name.
async fn describe_database(
    aws: &Aws,
    identifier: &str,
) -> Result<Result<aws_sdk_rds::types::DbInstance, String>, ProviderError> {
    let found = read(|| async move {
        match aws
            .rds
            .describe_db_instances()
            .db_instance_identifier(identifier)
            .send()
            .await
        {
            Ok(out) => Ok(Ok(out)),
            Err(e) => {
                let e = classify("DescribeDBInstances", e);
                if e.kind == ErrorKind::NotFound {
                    Ok(Err(e
                        .cause
                        .map(|c| c.0)
                        .unwrap_or_else(|| "DBInstanceNotFound".into())))
                } else {
                    Err(e)
                }
            }
        }
    })
    .await?;
    let out = match found {
        Ok(out) => out,
        Err(answer) => return Ok(Err(answer)),
    };
    Ok(out
        .db_instances()
        .first()
        .cloned()
        .ok_or_else(|| format!("DescribeDBInstances listed no instance `{identifier}`")))
}

async fn database_facts(
    aws: &Aws,
    identifier: &str,
    db: &aws_sdk_rds::types::DbInstance,
) -> Result<DatabaseFacts, ProviderError> {
    let security_groups: Vec<String> = db
        .vpc_security_groups()
        .iter()
        .filter_map(|g| g.vpc_security_group_id().map(str::to_string))
        .collect();
    let group = db.db_subnet_group();
    let subnets: Vec<String> = group
        .map(|g| {
            g.subnets()
                .iter()
                .filter_map(|s| s.subnet_identifier().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let vpc_id = match group.and_then(|g| g.vpc_id()).filter(|v| !v.is_empty()) {
        Some(v) => v.to_string(),
        // No subnet group: the VPC of its security groups.
        None => {
            let groups = &security_groups;
            let out = read(|| async move {
                aws.ec2
                    .describe_security_groups()
                    .set_group_ids(Some(groups.clone()))
                    .send()
                    .await
                    .map_err(|e| classify("DescribeSecurityGroups", e))
            })
            .await?;
            out.security_groups()
                .iter()
                .find_map(|g| g.vpc_id())
                .map(str::to_string)
                .ok_or_else(|| {
                    ProviderError::fatal(format!("RDS instance `{identifier}` is in no VPC"))
                })?
        }
    };
    let endpoint = db.endpoint();
    Ok(DatabaseFacts {
        identifier: identifier.to_string(),
        status: db.db_instance_status().unwrap_or_default().to_string(),
        vpc_id,
        port: endpoint
            .and_then(|e| e.port())
            .or(db.db_instance_port())
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or(5432),
        endpoint: endpoint.and_then(|e| e.address()).map(str::to_string),
        security_groups,
        subnets,
    })
}

async fn vpc(aws: &Aws, id: &str, with_tables: bool) -> Result<VpcFacts, ProviderError> {
    let by_vpc = || vec![Aws::filter("vpc-id", [id])];
    let tables = async {
        if !with_tables {
            return Ok(Vec::new());
        }
        super::route_table::describe(aws, by_vpc()).await
    };
    let (vpcs, subnets, gateways, tables) = futures::try_join!(
        async {
            read(|| async move {
                aws.ec2
                    .describe_vpcs()
                    .vpc_ids(id)
                    .send()
                    .await
                    .map_err(|e| classify("DescribeVpcs", e))
            })
            .await
        },
        async {
            read(|| async move {
                aws.ec2
                    .describe_subnets()
                    .set_filters(Some(by_vpc()))
                    .send()
                    .await
                    .map_err(|e| classify("DescribeSubnets", e))
            })
            .await
        },
        async {
            read(|| async move {
                aws.ec2
                    .describe_internet_gateways()
                    .filters(Aws::filter("attachment.vpc-id", [id]))
                    .send()
                    .await
                    .map_err(|e| classify("DescribeInternetGateways", e))
            })
            .await
        },
        tables,
    )?;
    let v = vpcs
        .vpcs()
        .first()
        .ok_or_else(|| ProviderError::fatal(format!("VPC {id} not found")))?;
    let mut cidrs: Vec<String> = v
        .cidr_block_association_set()
        .iter()
        .filter(|a| {
            a.cidr_block_state()
                .and_then(|s| s.state())
                .is_none_or(|s| s.as_str() == "associated")
        })
        .filter_map(|a| a.cidr_block().map(str::to_string))
        .collect();
    if cidrs.is_empty() {
        cidrs.extend(v.cidr_block().map(str::to_string));
    }
    let mut subnets: Vec<SubnetFact> = subnets
        .subnets()
        .iter()
        .filter_map(|s| {
            Some(SubnetFact {
                id: s.subnet_id()?.to_string(),
                cidr: s.cidr_block()?.to_string(),
                zone: s.availability_zone()?.to_string(),
                owned: owned_id(&aws.owner, s.tags(), Kind::Subnet).is_some(),
            })
        })
        .collect();
    subnets.sort_by(|a, b| a.id.cmp(&b.id));
    let mut route_tables: Vec<RouteTableFact> = tables
        .iter()
        .filter_map(|t| {
            Some(RouteTableFact {
                id: t.route_table_id()?.to_string(),
                main: t.associations().iter().any(|a| a.main() == Some(true)),
                subnets: t
                    .associations()
                    .iter()
                    .filter_map(|a| a.subnet_id().map(str::to_string))
                    .collect(),
                owned: owned_id(&aws.owner, t.tags(), Kind::RouteTable).is_some(),
            })
        })
        .collect();
    route_tables.sort_by(|a, b| a.id.cmp(&b.id));
    let mut gateways: Vec<String> = gateways
        .internet_gateways()
        .iter()
        .filter_map(|g| g.internet_gateway_id().map(str::to_string))
        .collect();
    gateways.sort();
    Ok(VpcFacts {
        id: id.to_string(),
        cidrs,
        internet_gateway: gateways.into_iter().next(),
        subnets,
        route_tables,
    })
}
