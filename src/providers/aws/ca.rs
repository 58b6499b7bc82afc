//! A certificate authority: one parameter with every generation still
//! trusted (the signing one first), and `<stem>.crt` beside it with the
//! certificates only, for nodes, which may not read a key.

use super::{pki_store, str_prop, Aws};
use crate::apply::ProviderError;
use crate::model::{Props, Resource, Value};
use crate::pki::{self, CaMaterial};

fn generations(props: &Props) -> (Vec<i64>, i64) {
    let gens = props
        .get("generations")
        .map(|v| v.as_list().iter().filter_map(Value::as_int).collect())
        .unwrap_or_default();
    let signing = props.get("signing").and_then(Value::as_int).unwrap_or(1);
    (gens, signing)
}

/// Stored order: the signing generation first, then the others ascending.
fn order(gens: &[i64], signing: i64) -> Vec<i64> {
    let mut o = vec![signing];
    o.extend(gens.iter().copied().filter(|g| *g != signing));
    o
}

fn common_name(r: &Resource) -> Result<String, ProviderError> {
    let subject = str_prop(&r.props, "subject")?;
    Ok(subject.trim_start_matches("CN=").to_string())
}

async fn write(
    aws: &Aws,
    r: &Resource,
    material: &[(i64, &CaMaterial)],
) -> Result<String, ProviderError> {
    let name = aws.pki_parameter(&r.id);
    let signing = material
        .first()
        .map(|(_, m)| pki::read_certificate(&m.cert_pem))
        .transpose()
        .map_err(|e| ProviderError::fatal(e.to_string()))?;
    let expires = signing.and_then(|c| {
        time::OffsetDateTime::parse(&c.not_after, &time::format_description::well_known::Rfc3339)
            .ok()
    });
    let facts = pki_store::facts(r, expires);
    let value = pki::ca_value(material);
    let certs: String = material.iter().map(|(_, m)| m.cert_pem.as_str()).collect();
    // The public copy first: a reader of both never sees keys without certs.
    pki_store::put(aws, &r.id, &format!("{name}.crt"), &certs, &facts).await?;
    pki_store::put(aws, &r.id, &name, &value, &facts).await?;
    Ok(name)
}

pub async fn create(aws: &Aws, r: &Resource) -> Result<String, ProviderError> {
    let (gens, signing) = generations(&r.props);
    let cn = common_name(r)?;
    let mut made = Vec::new();
    for g in order(&gens, signing) {
        made.push((
            g,
            pki::new_ca(&cn).map_err(|e| ProviderError::fatal(e.to_string()))?,
        ));
    }
    let material: Vec<(i64, CaMaterial)> = made
        .into_iter()
        .map(|(g, i)| {
            (
                g,
                CaMaterial {
                    cert_pem: i.cert_pem,
                    key_pem: i.key_pem,
                },
            )
        })
        .collect();
    let refs: Vec<(i64, &CaMaterial)> = material.iter().map(|(g, m)| (*g, m)).collect();
    write(aws, r, &refs).await
}

/// A rotation stage: generations are added (a new CA made), the signing one
/// switched, or old ones dropped; the material of the others is kept.
pub async fn update(
    aws: &Aws,
    r: &Resource,
    physical_id: &str,
    before: &Props,
) -> Result<(), ProviderError> {
    let (old_gens, old_signing) = generations(before);
    let current = pki_store::value(aws, physical_id).await?;
    let mut have = pki::parse_ca_value(&current, &order(&old_gens, old_signing)).map_err(|e| {
        ProviderError::fatal(format!("{} ({physical_id}): {e}", r.id))
            .with_hint(super::certificate::corrupt_ca_hint(physical_id))
    })?;
    let (gens, signing) = generations(&r.props);
    let cn = common_name(r)?;
    for g in &gens {
        if !have.iter().any(|(h, _)| h == g) {
            let i = pki::new_ca(&cn).map_err(|e| ProviderError::fatal(e.to_string()))?;
            have.push((
                *g,
                CaMaterial {
                    cert_pem: i.cert_pem,
                    key_pem: i.key_pem,
                },
            ));
        }
    }
    let mut refs = Vec::new();
    for g in order(&gens, signing) {
        let m = have
            .iter()
            .find(|(h, _)| *h == g)
            .map(|(_, m)| m)
            .ok_or_else(|| ProviderError::fatal(format!("{}: generation {g} is missing", r.id)))?;
        refs.push((g, m));
    }
    write(aws, r, &refs).await.map(|_| ())
}

pub async fn delete(aws: &Aws, physical_id: &str) -> Result<(), ProviderError> {
    match pki_store::delete(aws, &format!("{physical_id}.crt")).await {
        Err(e) if e.kind != crate::apply::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    pki_store::delete(aws, physical_id).await
}

super::kind_ops! {
    // The state store's items of all four PKI kinds, in one listing.
    async fn observe(aws: &Aws) -> Result<Vec<crate::model::Observed>, ProviderError> {
        super::pki_store::observe(aws, None).await
    }
    async fn find(aws: &Aws, r: &Resource) -> Result<Option<String>, ProviderError> {
        super::pki_store::find(aws, r).await
    }
    async fn create(aws: &Aws, r: &Resource) -> Result<String, ProviderError> {
        create(aws, r).await
    }
    async fn update(
        aws: &Aws,
        r: &Resource,
        pid: &str,
        before: &Props,
    ) -> Result<(), ProviderError> {
        update(aws, r, pid, before).await
    }
    // The state store's path is ours by convention only: a parameter there
    // without this env's tags is never deleted.
    async fn delete(
        aws: &Aws,
        id: &ResourceId,
        pid: &str,
        _: &Props,
    ) -> Result<(), ProviderError> {
        super::pki_store::ensure_ours(aws, id, pid).await?;
        delete(aws, pid).await
    }
}
