//! Masters and nodes. Booted from rendered user data; the digest of that user
//! data is tagged at launch, so a change shows in the plan without reading
//! the user data of every instance back.

use std::time::{Duration, Instant};

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{
    BlockDeviceMapping, EbsBlockDevice, HttpTokensState, IamInstanceProfileSpecification, Instance,
    InstanceMetadataEndpointState, InstanceMetadataOptionsRequest, ResourceType, VolumeType,
};
use base64::Engine as _;

use super::{classify, owned_id, read, read_existing, str_list_prop, str_prop, tag, Aws};
use crate::apply::{ErrorKind, ProviderError};
use crate::model::{Kind, Observed, Props, Resource, ResourceId, Value, TAG_ENV, TAG_PROJECT};

const TAG_USER_DATA: &str = "scopectl:user-data-sha256";

/// States in which an instance still counts (and still holds its subnet).
const LIVE: [&str; 4] = ["pending", "running", "stopping", "stopped"];

/// Metadata options in the words desired uses (`INSTANCE_METADATA`).
fn metadata(i: &Instance) -> String {
    let Some(m) = i.metadata_options() else {
        return "unknown".into();
    };
    if m.http_endpoint() == Some(&InstanceMetadataEndpointState::Disabled) {
        return "disabled".into();
    }
    let tokens = match m.http_tokens() {
        Some(HttpTokensState::Required) => "IMDSv2 required",
        _ => "IMDSv1 allowed",
    };
    format!(
        "{tokens}, hop limit {}",
        m.http_put_response_hop_limit().unwrap_or(1)
    )
}

/// The root volume of `i`, in the words desired uses (`ROOT_VOLUME`), from
/// the volumes read with the listing.
fn root_volume(i: &Instance, volumes: &BTreeMap<String, String>) -> String {
    root_volume_id(i)
        .and_then(|v| volumes.get(v).cloned())
        .unwrap_or_else(|| "unknown".into())
}

/// The EBS volume on the instance's root device.
fn root_volume_id(i: &Instance) -> Option<&str> {
    let root = i.root_device_name().unwrap_or("/dev/sda1");
    i.block_device_mappings()
        .iter()
        .find(|m| m.device_name() == Some(root))
        .and_then(|m| m.ebs())
        .and_then(|e| e.volume_id())
}

/// The root volumes of `instances` (one call per 200), described as
/// `root_volume` words.
async fn root_volumes(
    aws: &Aws,
    instances: &[Instance],
) -> Result<BTreeMap<String, String>, ProviderError> {
    let ids: Vec<String> = instances
        .iter()
        .filter_map(|i| root_volume_id(i).map(str::to_string))
        .collect();
    let mut out = BTreeMap::new();
    for chunk in ids.chunks(200) {
        let found = read(|| async move {
            aws.ec2
                .describe_volumes()
                .set_volume_ids(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(|e| classify("DescribeVolumes", e))
        })
        .await;
        // A root volume that went with its instance a moment ago.
        let found = match found {
            Err(e) if e.kind == ErrorKind::NotFound => continue,
            other => other?,
        };
        for v in found.volumes() {
            let Some(id) = v.volume_id() else { continue };
            let words = format!(
                "{}, {} GiB, {}",
                v.volume_type().map(|t| t.as_str()).unwrap_or("unknown"),
                v.size().unwrap_or_default(),
                if v.encrypted() == Some(true) {
                    "encrypted"
                } else {
                    "not encrypted"
                }
            );
            out.insert(id.to_string(), words);
        }
    }
    Ok(out)
}

fn props(i: &Instance, volumes: &BTreeMap<String, String>) -> Option<Props> {
    let profile = i
        .iam_instance_profile()
        .and_then(|p| p.arn())
        .and_then(|arn| arn.rsplit('/').next())
        .unwrap_or_default();
    let mut groups: Vec<Value> = i
        .security_groups()
        .iter()
        .filter_map(|g| g.group_id().map(Value::str))
        .collect();
    groups.sort();
    Some(Props::from([
        ("ami".into(), Value::str(i.image_id()?)),
        (
            "instance_type".into(),
            Value::str(i.instance_type()?.as_str()),
        ),
        ("subnet".into(), Value::str(i.subnet_id()?)),
        ("security_groups".into(), Value::list(groups)),
        ("profile".into(), Value::str(profile)),
        ("metadata".into(), Value::str(metadata(i))),
        ("root_volume".into(), Value::str(root_volume(i, volumes))),
        (
            "user_data".into(),
            Value::str(tag(i.tags(), TAG_USER_DATA).unwrap_or_default()),
        ),
        (
            "private_ip".into(),
            Value::str(i.private_ip_address().unwrap_or_default()),
        ),
        // The Node's name (what EC2 calls the instance): `up` waits for it.
        (
            "private_dns".into(),
            Value::str(i.private_dns_name().unwrap_or_default()),
        ),
    ]))
}

async fn describe(aws: &Aws, only: Option<&ResourceId>) -> Result<Vec<Instance>, ProviderError> {
    // The whole observation lists every instance of this cluster name, not
    // only this env's: another env whose `<project>-<env>` is the same name
    // would share Kubernetes' load balancers and groups (see `collision`).
    let mut filters = match only {
        Some(_) => aws.owner_filters(only),
        None => vec![Aws::filter("tag-key", [aws.owner.cluster_tag()])],
    };
    filters.push(Aws::filter("instance-state-name", LIVE));
    let filters = &filters;
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let t = token.as_deref();
        let page = read(|| async move {
            aws.ec2
                .describe_instances()
                .set_filters(Some(filters.clone()))
                .set_next_token(t.map(str::to_string))
                .send()
                .await
                .map_err(|e| classify("DescribeInstances", e))
        })
        .await?;
        for r in page.reservations() {
            out.extend(r.instances().iter().cloned());
        }
        token = page.next_token().map(str::to_string);
        if token.is_none() {
            return Ok(out);
        }
    }
}

/// An instance with this env's cluster tag that is not this env's: two envs
/// (`scope-a`/`b` and `scope`/`a-b`) or another tool use the same cluster
/// name, and one's `down` would delete the other's Kubernetes balancers.
fn collision(aws: &Aws, i: &Instance) -> Option<ProviderError> {
    let (project, env) = (tag(i.tags(), TAG_PROJECT), tag(i.tags(), TAG_ENV));
    if project == Some(aws.owner.project.as_str()) && env == Some(aws.owner.env.as_str()) {
        return None;
    }
    let user = match (project, env) {
        (Some(p), Some(e)) => format!("scopectl env {p}/{e}"),
        _ => "something other than scopectl".to_string(),
    };
    Some(
        ProviderError::new(
            ErrorKind::Fatal,
            Some("ClusterNameInUse".into()),
            format!(
                "the cluster name {} is already used by {user} (instance {})",
                aws.owner.cluster_name(),
                i.instance_id().unwrap_or_default()
            ),
        )
        .with_hint(format!(
            "two envs must not share a cluster name (`<project>-<env>`): Kubernetes tags its load balancers with it, and `down` of one would delete the other's; rename this env or project so that `{}-{}` is unique",
            aws.owner.project, aws.owner.env
        )),
    )
}

pub async fn observe(aws: &Aws, only: Option<&ResourceId>) -> Result<Vec<Observed>, ProviderError> {
    let found = describe(aws, only).await?;
    if let Some(e) = found.iter().find_map(|i| collision(aws, i)) {
        return Err(e);
    }
    let volumes = root_volumes(aws, &found).await?;
    Ok(found
        .iter()
        .filter_map(|i| {
            let id = owned_id(&aws.owner, i.tags(), Kind::Instance)?;
            Some(Observed {
                id,
                physical_id: i.instance_id()?.to_string(),
                props: props(i, &volumes)?,
            })
        })
        .collect())
}

/// An instance with this id that already matches what is wanted (during a
/// replacement the old one carries the same id, and must not count).
pub async fn find(aws: &Aws, r: &Resource) -> Result<Option<String>, ProviderError> {
    Ok(observe(aws, Some(&r.id)).await?.into_iter().find_map(|o| {
        let matches = Kind::Instance.schema().replacing().all(|k| {
            let (want, have) = (r.props.get(k), o.props.get(k));
            match (want, have) {
                (Some(Value::List(a)), Some(Value::List(b))) => {
                    let (mut a, mut b) = (a.clone(), b.clone());
                    a.sort();
                    b.sort();
                    a == b
                }
                (w, h) => w == h,
            }
        });
        matches.then_some(o.physical_id)
    }))
}

pub async fn create(aws: &Aws, r: &Resource) -> Result<String, ProviderError> {
    let text = str_prop(&r.props, "user_data_text")?;
    let digest = str_prop(&r.props, "user_data")?;
    let groups = str_list_prop(&r.props, "security_groups");
    let instance_type = str_prop(&r.props, "instance_type")?;
    let ami = str_prop(&r.props, "ami")?;
    let root_device = root_device_name(aws, &ami).await?;
    let result = aws
        .ec2
        .run_instances()
        .image_id(&ami)
        .metadata_options(metadata_request())
        .block_device_mappings(
            BlockDeviceMapping::builder()
                .device_name(root_device)
                .ebs(
                    EbsBlockDevice::builder()
                        .volume_type(VolumeType::Gp3)
                        .volume_size(crate::desired::ROOT_VOLUME_GIB)
                        .encrypted(true)
                        .delete_on_termination(true)
                        .build(),
                )
                .build(),
        )
        .instance_type(instance_type.as_str().into())
        .min_count(1)
        .max_count(1)
        .subnet_id(str_prop(&r.props, "subnet")?)
        .set_security_group_ids(Some(groups))
        .iam_instance_profile(
            IamInstanceProfileSpecification::builder()
                .name(str_prop(&r.props, "profile")?)
                .build(),
        )
        .user_data(base64::engine::general_purpose::STANDARD.encode(crate::render::compress(&text)))
        .client_token(aws.client_token(&r.id))
        .tag_specifications(aws.tag_spec(
            ResourceType::Instance,
            &r.id,
            &[(TAG_USER_DATA, digest.as_str())],
        ))
        .tag_specifications(aws.tag_spec(ResourceType::Volume, &r.id, &[]))
        .send()
        .await
        .map_err(|e| {
            let mut e = classify("RunInstances", e);
            // IAM is eventually consistent: a profile made a moment ago is
            // "invalid" for a few seconds.
            if e.code.as_deref() == Some("InvalidParameterValue")
                && e.detail()
                    .to_ascii_lowercase()
                    .contains("iaminstanceprofile")
            {
                e.kind = ErrorKind::NotFound;
            }
            e
        })?;
    result
        .instances()
        .first()
        .and_then(|i| i.instance_id())
        .map(str::to_string)
        .ok_or_else(|| ProviderError::fatal("RunInstances returned no instance"))
}

/// IMDSv2 only, one hop (`INSTANCE_METADATA`).
fn metadata_request() -> InstanceMetadataOptionsRequest {
    InstanceMetadataOptionsRequest::builder()
        .http_endpoint(InstanceMetadataEndpointState::Enabled)
        .http_tokens(HttpTokensState::Required)
        .http_put_response_hop_limit(1)
        .build()
}

/// The image's root device: the encrypted gp3 mapping replaces the image's
/// own there (another name would add a second disk).
async fn root_device_name(aws: &Aws, ami: &str) -> Result<String, ProviderError> {
    let out = read(|| async move {
        aws.ec2
            .describe_images()
            .image_ids(ami)
            .send()
            .await
            .map_err(|e| classify("DescribeImages", e))
    })
    .await?;
    Ok(out
        .images()
        .first()
        .and_then(|i| i.root_device_name())
        .unwrap_or("/dev/sda1")
        .to_string())
}

/// Metadata options are the one thing that changes in place.
pub async fn update(aws: &Aws, physical_id: &str) -> Result<(), ProviderError> {
    let m = metadata_request();
    aws.ec2
        .modify_instance_metadata_options()
        .instance_id(physical_id)
        .set_http_endpoint(m.http_endpoint().cloned())
        .set_http_tokens(m.http_tokens().cloned())
        .set_http_put_response_hop_limit(m.http_put_response_hop_limit())
        .send()
        .await
        .map_err(|e| classify("ModifyInstanceMetadataOptions", e))?;
    Ok(())
}

/// Terminates and waits until AWS says `terminated` (its interfaces may hold
/// the subnet a little longer; teardown waves wait that out).
pub async fn delete(aws: &Aws, physical_id: &str) -> Result<(), ProviderError> {
    delete_all(aws, &[physical_id.to_string()]).await
}

/// Terminates all of `ids` in one call and waits for all of them in one
/// poll: `down` of 30 nodes is one request and one wait, not 30.
pub async fn delete_all(aws: &Aws, ids: &[String]) -> Result<(), ProviderError> {
    aws.ec2
        .terminate_instances()
        .set_instance_ids(Some(ids.to_vec()))
        .send()
        .await
        .map_err(|e| classify("TerminateInstances", e))?;
    let deadline = Instant::now() + Duration::from_secs(600);
    let timing = crate::timing::Timing::current();
    let mut delay = timing.next(timing.min_delay);
    loop {
        let mut states = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let t = token.as_deref();
            let out = read_existing(|| async move {
                aws.ec2
                    .describe_instances()
                    .set_instance_ids(Some(ids.to_vec()))
                    .set_next_token(t.map(str::to_string))
                    .send()
                    .await
                    .map_err(|e| classify("DescribeInstances", e))
            })
            .await?;
            states.extend(
                out.reservations()
                    .iter()
                    .flat_map(|r| r.instances())
                    .map(|i| {
                        (
                            i.instance_id().unwrap_or_default().to_string(),
                            i.state()
                                .and_then(|s| s.name())
                                .map(|n| n.as_str().to_string())
                                .unwrap_or_default(),
                        )
                    }),
            );
            token = out.next_token().map(str::to_string);
            if token.is_none() {
                break;
            }
        }
        // Gone from the listing counts as terminated.
        let pending: Vec<(String, String)> = states
            .into_iter()
            .filter(|(_, s)| s != "terminated")
            .collect();
        if pending.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            let list: Vec<String> = pending.iter().map(|(i, s)| format!("{i} ({s})")).collect();
            return Err(ProviderError::new(
                ErrorKind::Transient,
                None,
                format!("still not terminated after 10 minutes: {}", list.join(", ")),
            ));
        }
        tokio::time::sleep(delay).await;
        delay = timing.next(delay);
    }
}

super::kind_ops! {
    async fn observe(aws: &Aws) -> Result<Vec<crate::model::Observed>, ProviderError> {
        observe(aws, None).await
    }
    async fn find(aws: &Aws, r: &Resource) -> Result<Option<String>, ProviderError> {
        find(aws, r).await
    }
    async fn create(aws: &Aws, r: &Resource) -> Result<String, ProviderError> {
        create(aws, r).await
    }
    async fn update(
        aws: &Aws,
        _: &Resource,
        pid: &str,
        _: &Props,
    ) -> Result<(), ProviderError> {
        update(aws, pid).await
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

/// The last `lines` lines of an instance's console output (cloud-init's
/// and the scripts' messages), or why there are none.
pub async fn console_tail(aws: &Aws, instance_id: &str, lines: usize) -> String {
    use base64::Engine as _;
    let out = aws
        .ec2
        .get_console_output()
        .instance_id(instance_id)
        .latest(true)
        .send()
        .await;
    let text = match out {
        Ok(o) => o
            .output()
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .map(|b| String::from_utf8_lossy(&b).to_string())
            .unwrap_or_default(),
        Err(e) => return format!("(no console output: {})", classify("GetConsoleOutput", e)),
    };
    if text.trim().is_empty() {
        return "(the console output is empty so far)".into();
    }
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
