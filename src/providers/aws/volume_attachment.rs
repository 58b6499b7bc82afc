//! A volume attached to an instance (a master's etcd volume). Created after
//! the instance; deleted after it (the volume comes off when the instance is
//! gone, never from under a running etcd), so a detach finds it free.

use std::time::{Duration, Instant};

use super::volume::attachment_id;
use super::{classify, read_existing, str_prop, Aws};
use crate::apply::{ErrorKind, ProviderError};
use crate::model::Resource;

/// The instance a volume is attached (or attaching) to now, if any.
async fn attached_to(aws: &Aws, volume: &str) -> Result<Option<String>, ProviderError> {
    let out = read_existing(|| async move {
        aws.ec2
            .describe_volumes()
            .volume_ids(volume)
            .send()
            .await
            .map_err(|e| classify("DescribeVolumes", e))
    })
    .await;
    let out = match out {
        Err(e) if e.kind == ErrorKind::NotFound => return Ok(None),
        other => other?,
    };
    Ok(out
        .volumes()
        .iter()
        .flat_map(|v| v.attachments())
        .filter(|a| {
            matches!(
                a.state().map(|s| s.as_str()),
                Some("attaching" | "attached" | "busy")
            )
        })
        .find_map(|a| a.instance_id().map(str::to_string)))
}

pub async fn find(aws: &Aws, r: &Resource) -> Result<Option<String>, ProviderError> {
    let volume = str_prop(&r.props, "volume")?;
    let instance = str_prop(&r.props, "instance")?;
    Ok(match attached_to(aws, &volume).await? {
        Some(i) if i == instance => Some(attachment_id(&volume, &instance)),
        _ => None,
    })
}

pub async fn create(aws: &Aws, r: &Resource) -> Result<String, ProviderError> {
    let volume = str_prop(&r.props, "volume")?;
    let instance = str_prop(&r.props, "instance")?;
    aws.ec2
        .attach_volume()
        .volume_id(&volume)
        .instance_id(&instance)
        .device(str_prop(&r.props, "device")?)
        .send()
        .await
        .map_err(|e| {
            let mut e = classify("AttachVolume", e);
            // The old attachment is still letting go: wait, like a NotFound.
            if e.kind == ErrorKind::DependencyViolation {
                e.kind = ErrorKind::NotFound;
            }
            e
        })?;
    Ok(attachment_id(&volume, &instance))
}

/// Detaches unless already free, then waits until the volume is free (the
/// next step attaches it elsewhere or deletes it).
pub async fn delete(aws: &Aws, physical_id: &str) -> Result<(), ProviderError> {
    let Some((volume, instance)) = physical_id.split_once(':') else {
        return Err(ProviderError::fatal(format!(
            "`{physical_id}` is not a volume attachment"
        )));
    };
    if attached_to(aws, volume).await?.as_deref() != Some(instance) {
        return Ok(());
    }
    match aws
        .ec2
        .detach_volume()
        .volume_id(volume)
        .instance_id(instance)
        .send()
        .await
        .map_err(|e| classify("DetachVolume", e))
    {
        // Detached meanwhile (its instance terminated).
        Err(e) if e.code.as_deref() == Some("IncorrectState") => {}
        Err(e) if e.kind == ErrorKind::NotFound => return Ok(()),
        other => {
            other?;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(300);
    let timing = crate::timing::Timing::current();
    let mut delay = timing.next(timing.min_delay);
    while attached_to(aws, volume).await?.as_deref() == Some(instance) {
        if Instant::now() > deadline {
            return Err(ProviderError::new(
                ErrorKind::Transient,
                None,
                format!("{volume} is still attached to {instance} after 5 minutes"),
            ));
        }
        tokio::time::sleep(delay).await;
        delay = timing.next(delay);
    }
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
