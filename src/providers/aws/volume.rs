//! EBS volumes (a master's etcd data) and their attachments. One
//! DescribeVolumes call observes both: an attachment is part of its volume.

use aws_sdk_ec2::types::{ResourceType, Volume, VolumeType};

use super::{classify, observed, owned_id, read, str_prop, Aws};
use crate::apply::{ErrorKind, ProviderError};
use crate::model::{Kind, Observed, Props, Resource, ResourceId, Value};

pub(crate) async fn describe(
    aws: &Aws,
    only: Option<&ResourceId>,
) -> Result<Vec<Volume>, ProviderError> {
    let filters = aws.owner_filters(only);
    let filters = &filters;
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let t = token.as_deref();
        let page = read(|| async move {
            aws.ec2
                .describe_volumes()
                .set_filters(Some(filters.clone()))
                .set_next_token(t.map(str::to_string))
                .send()
                .await
                .map_err(|e| classify("DescribeVolumes", e))
        })
        .await?;
        out.extend(page.volumes().iter().cloned());
        token = page.next_token().map(str::to_string);
        if token.is_none() {
            return Ok(out);
        }
    }
}

/// A volume's attachment to an instance, as one physical id.
pub(crate) fn attachment_id(volume: &str, instance: &str) -> String {
    format!("{volume}:{instance}")
}

/// Volumes, and the attachments of those attached (or attaching).
pub async fn observe(aws: &Aws) -> Result<Vec<Observed>, ProviderError> {
    let mut out = Vec::new();
    for v in describe(aws, None).await? {
        if matches!(v.state().map(|s| s.as_str()), Some("deleting" | "deleted")) {
            continue;
        }
        let (Some(id), Some(vid)) = (owned_id(&aws.owner, v.tags(), Kind::Volume), v.volume_id())
        else {
            continue;
        };
        let props = Props::from([
            (
                "zone".into(),
                Value::str(v.availability_zone().unwrap_or_default()),
            ),
            (
                "size_gib".into(),
                Value::Int(i64::from(v.size().unwrap_or(0))),
            ),
            (
                "volume_type".into(),
                Value::str(v.volume_type().map(|t| t.as_str()).unwrap_or_default()),
            ),
            (
                "encrypted".into(),
                Value::Bool(v.encrypted().unwrap_or(false)),
            ),
        ]);
        for a in v.attachments() {
            let live = matches!(
                a.state().map(|s| s.as_str()),
                Some("attaching" | "attached" | "busy")
            );
            let Some(instance) = a.instance_id().filter(|_| live) else {
                continue;
            };
            out.push(observed(
                ResourceId::new(Kind::VolumeAttachment, id.name()),
                attachment_id(vid, instance),
                Props::from([
                    ("volume".into(), Value::str(vid)),
                    ("instance".into(), Value::str(instance)),
                    ("device".into(), Value::str(a.device().unwrap_or_default())),
                ]),
            ));
        }
        out.push(observed(id, vid, props));
    }
    Ok(out)
}

pub async fn find(aws: &Aws, r: &Resource) -> Result<Option<String>, ProviderError> {
    Ok(observe(aws)
        .await?
        .into_iter()
        .find(|o| o.id == r.id)
        .map(|o| o.physical_id))
}

pub async fn create(aws: &Aws, r: &Resource) -> Result<String, ProviderError> {
    let size = super::int_prop(&r.props, "size_gib")?;
    let out = aws
        .ec2
        .create_volume()
        .availability_zone(str_prop(&r.props, "zone")?)
        .size(
            i32::try_from(size)
                .map_err(|_| ProviderError::fatal(format!("size_gib {size} is out of range")))?,
        )
        .volume_type(VolumeType::from(
            str_prop(&r.props, "volume_type")?.as_str(),
        ))
        .encrypted(super::bool_prop(&r.props, "encrypted")?)
        .client_token(aws.client_token(&r.id))
        .tag_specifications(aws.tag_spec(ResourceType::Volume, &r.id, &[]))
        .send()
        .await
        .map_err(|e| classify("CreateVolume", e))?;
    out.volume_id()
        .map(str::to_string)
        .ok_or_else(|| ProviderError::fatal("CreateVolume returned no id"))
}

/// Size and type change in place (a volume can grow, never shrink: AWS
/// refuses a smaller size, and that error is shown as is).
pub async fn update(aws: &Aws, r: &Resource, physical_id: &str) -> Result<(), ProviderError> {
    let size = r.props.get("size_gib").and_then(Value::as_int);
    aws.ec2
        .modify_volume()
        .volume_id(physical_id)
        .set_size(size.and_then(|s| i32::try_from(s).ok()))
        .volume_type(VolumeType::from(
            str_prop(&r.props, "volume_type")?.as_str(),
        ))
        .send()
        .await
        .map_err(|e| classify("ModifyVolume", e))?;
    Ok(())
}

pub async fn delete(aws: &Aws, physical_id: &str) -> Result<(), ProviderError> {
    match aws
        .ec2
        .delete_volume()
        .volume_id(physical_id)
        .send()
        .await
        .map_err(|e| classify("DeleteVolume", e))
    {
        Err(e) if e.kind == ErrorKind::NotFound => Ok(()),
        other => other.map(|_| ()),
    }
}

super::kind_ops! {
    // Volumes and their attachments, in one listing.
    async fn observe(aws: &Aws) -> Result<Vec<crate::model::Observed>, ProviderError> {
        observe(aws).await
    }
    async fn find(aws: &Aws, r: &Resource) -> Result<Option<String>, ProviderError> {
        find(aws, r).await
    }
    async fn create(aws: &Aws, r: &Resource) -> Result<String, ProviderError> {
        create(aws, r).await
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
