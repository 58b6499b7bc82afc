//! The peering between the cluster VPC and the database VPC, accepted by
//! scopectl (same account), with private DNS resolution both ways.

use std::time::{Duration, Instant};

use aws_sdk_ec2::types::{
    PeeringConnectionOptionsRequest, ResourceType, VpcPeeringConnection,
    VpcPeeringConnectionStateReasonCode as State,
};

use super::{classify, observed, owned_id, read, read_existing, str_prop, Aws};
use crate::apply::{ErrorKind, ProviderError};
use crate::model::{Kind, Observed, Props, Resource, ResourceId, Value};

fn live(p: &VpcPeeringConnection) -> bool {
    !matches!(
        p.status().and_then(|s| s.code()),
        Some(State::Deleted | State::Deleting | State::Rejected | State::Failed | State::Expired)
    )
}

fn dns(p: &VpcPeeringConnection) -> bool {
    let allow = |o: Option<&aws_sdk_ec2::types::VpcPeeringConnectionOptionsDescription>| {
        o.and_then(|o| o.allow_dns_resolution_from_remote_vpc())
            .unwrap_or(false)
    };
    allow(p.requester_vpc_info().and_then(|i| i.peering_options()))
        && allow(p.accepter_vpc_info().and_then(|i| i.peering_options()))
}

pub async fn observe(aws: &Aws, only: Option<&ResourceId>) -> Result<Vec<Observed>, ProviderError> {
    let out = read(|| async move {
        aws.ec2
            .describe_vpc_peering_connections()
            .set_filters(Some(aws.owner_filters(only)))
            .send()
            .await
            .map_err(|e| classify("DescribeVpcPeeringConnections", e))
    })
    .await?;
    Ok(out
        .vpc_peering_connections()
        .iter()
        .filter(|p| live(p))
        .filter_map(|p| {
            let id = owned_id(&aws.owner, p.tags(), Kind::VpcPeering)?;
            let props = Props::from([
                ("vpc".into(), Value::str(p.requester_vpc_info()?.vpc_id()?)),
                (
                    "peer_vpc".into(),
                    Value::str(p.accepter_vpc_info()?.vpc_id()?),
                ),
                ("dns_resolution".into(), Value::Bool(dns(p))),
            ]);
            Some(observed(id, p.vpc_peering_connection_id()?, props))
        })
        .collect())
}

pub async fn create(aws: &Aws, r: &Resource) -> Result<String, ProviderError> {
    let out = aws
        .ec2
        .create_vpc_peering_connection()
        .vpc_id(str_prop(&r.props, "vpc")?)
        .peer_vpc_id(str_prop(&r.props, "peer_vpc")?)
        .tag_specifications(aws.tag_spec(ResourceType::VpcPeeringConnection, &r.id, &[]))
        .send()
        .await
        .map_err(|e| classify("CreateVpcPeeringConnection", e))?;
    let id = out
        .vpc_peering_connection()
        .and_then(|p| p.vpc_peering_connection_id())
        .ok_or_else(|| ProviderError::fatal("CreateVpcPeeringConnection returned no id"))?
        .to_string();
    converge(aws, r, &id).await?;
    Ok(id)
}

pub async fn update(
    aws: &Aws,
    r: &Resource,
    physical_id: &str,
    _before: &Props,
) -> Result<(), ProviderError> {
    converge(aws, r, physical_id).await
}

/// Accepts the peering if still pending, waits for it to be active, then sets
/// DNS resolution on both sides (AWS refuses the options before that).
pub async fn converge(aws: &Aws, r: &Resource, id: &str) -> Result<(), ProviderError> {
    let deadline = Instant::now() + Duration::from_secs(120);
    let timing = crate::timing::Timing::current();
    let mut delay = timing.min_delay;
    loop {
        let out = read_existing(|| async move {
            aws.ec2
                .describe_vpc_peering_connections()
                .vpc_peering_connection_ids(id)
                .send()
                .await
                .map_err(|e| classify("DescribeVpcPeeringConnections", e))
        })
        .await?;
        let state = out
            .vpc_peering_connections()
            .first()
            .and_then(|p| p.status())
            .and_then(|s| s.code())
            .cloned();
        match state {
            Some(State::Active) => break,
            Some(State::PendingAcceptance) => {
                let accepted = super::on_new(|| async move {
                    aws.ec2
                        .accept_vpc_peering_connection()
                        .vpc_peering_connection_id(id)
                        .send()
                        .await
                        .map_err(|e| {
                            classify("AcceptVpcPeeringConnection", e).doing("accepting it")
                        })
                })
                .await;
                match accepted {
                    // Accepted already (a repeat after a lost answer): look again.
                    Err(e) if e.code.as_deref() == Some("InvalidStateTransition") => {}
                    other => {
                        other?;
                    }
                }
                // Accepting usually activates at once: look again before waiting.
                continue;
            }
            Some(State::Provisioning | State::InitiatingRequest) | None => {}
            Some(other) => {
                return Err(ProviderError::fatal(format!(
                    "peering {id} is {}",
                    other.as_str()
                )));
            }
        }
        if Instant::now() > deadline {
            return Err(ProviderError::new(
                ErrorKind::Transient,
                None,
                format!("peering {id} is not active after 120 s"),
            ));
        }
        tokio::time::sleep(delay).await;
        delay = timing.next(delay);
    }
    let want = super::bool_prop(&r.props, "dns_resolution")?;
    let opts = PeeringConnectionOptionsRequest::builder()
        .allow_dns_resolution_from_remote_vpc(want)
        .build();
    let opts = &opts;
    super::on_new(|| async move {
        aws.ec2
            .modify_vpc_peering_connection_options()
            .vpc_peering_connection_id(id)
            .accepter_peering_connection_options(opts.clone())
            .requester_peering_connection_options(opts.clone())
            .send()
            .await
            .map_err(|e| {
                classify("ModifyVpcPeeringConnectionOptions", e)
                    .doing("allowing DNS resolution from the remote VPC")
            })
    })
    .await?;
    Ok(())
}

pub async fn delete(aws: &Aws, physical_id: &str) -> Result<(), ProviderError> {
    aws.ec2
        .delete_vpc_peering_connection()
        .vpc_peering_connection_id(physical_id)
        .send()
        .await
        .map_err(|e| classify("DeleteVpcPeeringConnection", e))?;
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
        converge(aws, r, pid).await
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
        _: &Props,
    ) -> Result<(), ProviderError> {
        delete(aws, pid).await
    }
}
