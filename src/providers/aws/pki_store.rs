//! PKI items in SSM Parameter Store: one SecureString parameter per item
//! under `<state prefix>pki/`, its public facts as JSON in the description.
//! Observation lists descriptions only (DescribeParameters): planning never
//! decrypts a key. Shared by the CA, certificate, key pair and token kinds.

use aws_sdk_ssm::types::{ParameterStringFilter, ParameterType, Tag};

use super::{classify, read, read_existing, Aws};
use crate::apply::{ErrorKind, ProviderError};
use crate::model::{Kind, Observed, Props, Resource, ResourceId, Value, TAG_ENV, TAG_PROJECT};
use crate::pki;

/// SSM's limit on a parameter description.
const DESCRIPTION_MAX: usize = 1024;

impl Aws {
    pub fn pki_prefix(&self) -> String {
        format!("{}pki/", self.state_prefix())
    }

    /// The parameter that holds `id`.
    pub fn pki_parameter(&self, id: &ResourceId) -> String {
        format!("{}{}", self.pki_prefix(), id.name())
    }
}

/// The item a parameter name holds, if it is one of ours.
fn id_for(stem: &str) -> Option<ResourceId> {
    let kind = if pki::ca_spec(stem).is_some() {
        Kind::Ca
    } else if pki::leaf_spec(stem).is_some() {
        Kind::Certificate
    } else if stem == pki::SERVICE_ACCOUNT || stem == pki::ENCRYPTION_KEY {
        Kind::KeyPair
    } else if stem == pki::BOOTSTRAP_TOKEN {
        Kind::Token
    } else {
        return None;
    };
    Some(ResourceId::new(kind, stem))
}

/// The observed props of an item from its description; a leaf's `renewal`
/// is worked out from its recorded expiry against the clock now. A
/// description that is not scopectl's facts is an error: read as "nothing
/// known", it would plan a new CA and break every certificate and token.
fn props_from(id: &ResourceId, name: &str, description: &str) -> Result<Props, ProviderError> {
    let mut props: Props = serde_json::from_str(description).map_err(|e| {
        ProviderError::fatal(format!(
            "the state store's {name} ({id}) has a description scopectl cannot read: {e}"
        ))
        .with_hint(format!(
            "scopectl keeps each PKI item's public facts as JSON in its parameter's description; restore it (`aws ssm describe-parameters` shows it), or, to issue that item anew, delete the parameter {name} on purpose"
        ))
    })?;
    let now = time::OffsetDateTime::now_utc();
    if id.kind() == Some(Kind::Certificate) {
        let expires = props.get("expires").and_then(Value::as_str);
        props.insert("renewal".into(), Value::str(pki::renewal(expires, now).0));
    }
    if id.kind() == Some(Kind::Token) {
        let expires = props.get("expires").and_then(Value::as_str);
        props.insert("state".into(), Value::str(pki::token_state(expires, now)));
    }
    Ok(props)
}

/// The metadata of every parameter `filter` matches, page by page (never a
/// value).
async fn describe(
    aws: &Aws,
    filter: &ParameterStringFilter,
) -> Result<Vec<aws_sdk_ssm::types::ParameterMetadata>, ProviderError> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let t = &token;
        let page = read(|| async move {
            aws.ssm
                .describe_parameters()
                .parameter_filters(filter.clone())
                .max_results(50)
                .set_next_token(t.clone())
                .send()
                .await
                .map_err(|e| classify("DescribeParameters", e))
        })
        .await?;
        out.extend(page.parameters().iter().cloned());
        token = page.next_token().map(str::to_string);
        if token.is_none() {
            return Ok(out);
        }
    }
}

/// Every PKI item of the env, or only the one named `only`.
pub async fn observe(aws: &Aws, only: Option<&str>) -> Result<Vec<Observed>, ProviderError> {
    let prefix = aws.pki_prefix();
    let filter = match only {
        Some(name) => ParameterStringFilter::builder()
            .key("Name")
            .option("Equals")
            .values(name)
            .build(),
        None => ParameterStringFilter::builder()
            .key("Path")
            .option("Recursive")
            .values(prefix.trim_end_matches('/'))
            .build(),
    }
    .map_err(|e| ProviderError::fatal(e.to_string()))?;
    let mut out = Vec::new();
    for p in describe(aws, &filter).await? {
        let Some(name) = p.name() else { continue };
        let Some(id) = name.strip_prefix(&prefix).and_then(id_for) else {
            continue;
        };
        let props = props_from(&id, name, p.description().unwrap_or_default())?;
        out.push(Observed {
            id,
            physical_id: name.to_string(),
            props,
        });
    }
    Ok(out)
}

/// The item as it is now, if it satisfies `r` (an interrupted run may have
/// issued it already; a stale one is not a find).
pub async fn find(aws: &Aws, r: &Resource) -> Result<Option<String>, ProviderError> {
    let name = aws.pki_parameter(&r.id);
    let found = observe(aws, Some(&name)).await?.into_iter().next();
    Ok(found.and_then(|o| {
        let same = r
            .kind()
            .schema()
            .replacing()
            .all(|f| r.props.get(f) == o.props.get(f));
        same.then_some(o.physical_id)
    }))
}

/// The current version of each of `names` (missing ones are left out), from
/// their metadata: nothing is decrypted.
pub async fn versions(
    aws: &Aws,
    names: &[String],
) -> Result<std::collections::BTreeMap<String, String>, ProviderError> {
    let mut out = std::collections::BTreeMap::new();
    for chunk in names.chunks(50) {
        let filter = ParameterStringFilter::builder()
            .key("Name")
            .option("Equals")
            .set_values(Some(chunk.to_vec()))
            .build()
            .map_err(|e| ProviderError::fatal(e.to_string()))?;
        for p in describe(aws, &filter).await? {
            if let Some(n) = p.name() {
                out.insert(n.to_string(), format!("version {}", p.version()));
            }
        }
    }
    Ok(out)
}

/// Decrypted values of `names` (missing ones are left out).
pub async fn values(
    aws: &Aws,
    names: &[String],
) -> Result<std::collections::BTreeMap<String, String>, ProviderError> {
    let mut out = std::collections::BTreeMap::new();
    for chunk in names.chunks(10) {
        let res = read(|| async move {
            aws.ssm
                .get_parameters()
                .set_names(Some(chunk.to_vec()))
                .with_decryption(true)
                .send()
                .await
                .map_err(|e| classify("GetParameters", e))
        })
        .await?;
        for p in res.parameters() {
            if let (Some(n), Some(v)) = (p.name(), p.value()) {
                out.insert(n.to_string(), v.to_string());
            }
        }
    }
    Ok(out)
}

/// One decrypted value that must exist (a CA a leaf is signed by).
pub async fn value(aws: &Aws, name: &str) -> Result<String, ProviderError> {
    read_existing(|| async move {
        values(aws, &[name.to_string()])
            .await?
            .remove(name)
            .ok_or_else(|| {
                ProviderError::new(
                    ErrorKind::NotFound,
                    None,
                    format!("{name} is not in the state store"),
                )
            })
    })
    .await
}

/// Writes an item: created with the owner's tags, or overwritten when it
/// exists (a reissue). `facts` become the description.
pub async fn put(
    aws: &Aws,
    id: &ResourceId,
    name: &str,
    value: &str,
    facts: &Props,
) -> Result<(), ProviderError> {
    let description =
        serde_json::to_string(facts).map_err(|e| ProviderError::fatal(e.to_string()))?;
    if description.len() > DESCRIPTION_MAX {
        return Err(ProviderError::fatal(format!(
            "{id}: its facts take {} characters, more than a parameter description holds ({DESCRIPTION_MAX}); use fewer cluster.extra_sans",
            description.len()
        )));
    }
    let tags: Vec<Tag> = aws
        .owner
        .tags_for(id)
        .into_iter()
        .filter_map(|(k, v)| Tag::builder().key(k).value(v).build().ok())
        .collect();
    // Both writes are safe to repeat within the step: a repeated create
    // whose first answer was lost meets ParameterAlreadyExists, and then
    // overwrites its own parameter.
    let (description, tags) = (&description, &tags);
    let created = super::idempotent(|| async move {
        aws.ssm
            .put_parameter()
            .name(name)
            .value(value)
            .r#type(ParameterType::SecureString)
            .description(description)
            .set_tags(Some(tags.clone()))
            .send()
            .await
            .map_err(|e| classify("PutParameter", e))
    })
    .await;
    match created {
        Ok(_) => Ok(()),
        // Tags cannot go with an overwrite; the existing parameter has them
        // (and one without them is not ours to overwrite).
        Err(e) if e.code.as_deref() == Some("ParameterAlreadyExists") => {
            ensure_ours(aws, id, name).await?;
            super::idempotent(|| async move {
                aws.ssm
                    .put_parameter()
                    .name(name)
                    .value(value)
                    .r#type(ParameterType::SecureString)
                    .description(description)
                    .overwrite(true)
                    .send()
                    .await
                    .map_err(|e| classify("PutParameter", e).doing("overwriting it"))
            })
            .await?;
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// A parameter under this env's path is written by scopectl with this env's
/// tags; one without them was put there by someone else: never overwritten
/// or deleted.
pub(crate) async fn ensure_ours(
    aws: &Aws,
    id: &ResourceId,
    name: &str,
) -> Result<(), ProviderError> {
    let out = read(|| async move {
        aws.ssm
            .list_tags_for_resource()
            .resource_type(aws_sdk_ssm::types::ResourceTypeForTagging::Parameter)
            .resource_id(name)
            .send()
            .await
            .map_err(|e| classify("ListTagsForResource", e))
    })
    .await;
    let tags = match out {
        // Gone already (a delete whose answer was lost): nothing to guard.
        Err(e)
            if e.kind == ErrorKind::NotFound || e.code.as_deref() == Some("InvalidResourceId") =>
        {
            return Ok(())
        }
        other => other?,
    };
    let get = |k: &str| {
        tags.tag_list()
            .iter()
            .find(|t| t.key() == k)
            .map(|t| t.value())
    };
    if get(TAG_PROJECT) == Some(aws.owner.project.as_str())
        && get(TAG_ENV) == Some(aws.owner.env.as_str())
    {
        Ok(())
    } else {
        Err(super::not_ours(aws, "SSM parameter", name, id))
    }
}

pub async fn delete(aws: &Aws, name: &str) -> Result<(), ProviderError> {
    aws.ssm
        .delete_parameter()
        .name(name)
        .send()
        .await
        .map_err(|e| classify("DeleteParameter", e))?;
    Ok(())
}

/// The facts stored beside an item: its desired props (references resolved)
/// without `renewal`, which observation derives, plus `expires`.
pub fn facts(r: &Resource, expires: Option<time::OffsetDateTime>) -> Props {
    let mut p = r.props.clone();
    p.remove("renewal");
    // Observation derives a token's state from its expiry.
    p.remove("state");
    if let Some(t) = expires {
        p.insert("expires".into(), Value::str(pki::rfc3339(t)));
    }
    p
}
