//! EBS snapshots of a master's etcd volume, taken before the master or the
//! volume is replaced. `up` only creates them; `down` deletes them.

use aws_sdk_ec2::types::ResourceType;

use super::{classify, observed, owned_id, read, str_prop, Aws};
use crate::apply::{ErrorKind, ProviderError};
use crate::model::{Kind, Observed, Props, Resource, ResourceId, Value};

pub async fn observe(aws: &Aws, only: Option<&ResourceId>) -> Result<Vec<Observed>, ProviderError> {
    let filters = aws.owner_filters(only);
    let filters = &filters;
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let t = token.as_deref();
        let page = read(|| async move {
            aws.ec2
                .describe_snapshots()
                .owner_ids("self")
                .set_filters(Some(filters.clone()))
                .set_next_token(t.map(str::to_string))
                .send()
                .await
                .map_err(|e| classify("DescribeSnapshots", e))
        })
        .await?;
        for s in page.snapshots() {
            let (Some(id), Some(sid)) = (
                owned_id(&aws.owner, s.tags(), Kind::Snapshot),
                s.snapshot_id(),
            ) else {
                continue;
            };
            let props = Props::from([
                (
                    "volume".into(),
                    Value::str(s.volume_id().unwrap_or_default()),
                ),
                (
                    "description".into(),
                    Value::str(s.description().unwrap_or_default()),
                ),
            ]);
            out.push(observed(id, sid, props));
        }
        token = page.next_token().map(str::to_string);
        if token.is_none() {
            return Ok(out);
        }
    }
}

pub async fn find(aws: &Aws, r: &Resource) -> Result<Option<String>, ProviderError> {
    Ok(observe(aws, Some(&r.id))
        .await?
        .into_iter()
        .next()
        .map(|o| o.physical_id))
}

pub async fn create(aws: &Aws, r: &Resource) -> Result<String, ProviderError> {
    let out = aws
        .ec2
        .create_snapshot()
        .volume_id(str_prop(&r.props, "volume")?)
        .description(str_prop(&r.props, "description")?)
        .tag_specifications(aws.tag_spec(ResourceType::Snapshot, &r.id, &[]))
        .send()
        .await
        .map_err(|e| classify("CreateSnapshot", e))?;
    out.snapshot_id()
        .map(str::to_string)
        .ok_or_else(|| ProviderError::fatal("CreateSnapshot returned no id"))
}

pub async fn delete(aws: &Aws, physical_id: &str) -> Result<(), ProviderError> {
    match aws
        .ec2
        .delete_snapshot()
        .snapshot_id(physical_id)
        .send()
        .await
        .map_err(|e| classify("DeleteSnapshot", e))
    {
        Err(e) if e.kind == ErrorKind::NotFound => Ok(()),
        other => other.map(|_| ()),
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
    async fn delete(
        aws: &Aws,
        _: &ResourceId,
        pid: &str,
        _: &Props,
    ) -> Result<(), ProviderError> {
        delete(aws, pid).await
    }
}
