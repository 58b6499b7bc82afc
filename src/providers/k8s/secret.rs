//! A Secret's data: values come from the SSM parameters its
//! `scopectl.io/sources` annotation names, read only by `up`. Plans compare
//! the parameters' versions: applying records them (`scopectl.io/digest`)
//! with a digest of the data written (`scopectl.io/data-digest`), so an
//! observation reads what was applied without a value, and a Secret edited
//! since (kubectl) shows as a change.

use std::collections::BTreeMap;

use base64::Engine as _;

use crate::apply::ProviderError;
use crate::model::k8s::{data_digest, value_digest, SOURCES_ANNOTATION};

pub fn observed_digest(obj: &serde_json::Value) -> String {
    let decoded: Vec<(String, String)> = obj
        .get("data")
        .and_then(|d| d.as_object())
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    let bytes = v
                        .as_str()
                        .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
                        .unwrap_or_default();
                    (k.clone(), value_digest(&bytes))
                })
                .collect()
        })
        .unwrap_or_default();
    data_digest(decoded.iter().map(|(k, v)| (k.as_str(), v.as_str())))
}

/// One data value from its source: `=text` is the text itself (a public
/// field beside the secret ones); `PARAM#id` and `PARAM#secret` are the
/// halves of a bootstrap token (`id.secret`) held in PARAM; otherwise the
/// whole value of PARAM.
pub fn source_value<'a>(source: &'a str, values: &'a BTreeMap<String, String>) -> Option<&'a str> {
    if let Some(text) = source.strip_prefix('=') {
        return Some(text);
    }
    if let Some((param, part)) = source.rsplit_once('#') {
        let (id, secret) = values.get(param)?.trim().split_once('.')?;
        return match part {
            "id" => Some(id),
            "secret" => Some(secret),
            _ => None,
        };
    }
    values.get(source).map(String::as_str)
}

/// Puts the values into `obj.data` (base64), from `values` by parameter.
pub fn fill(
    obj: &mut serde_json::Value,
    values: &BTreeMap<String, String>,
) -> Result<(), ProviderError> {
    let sources: BTreeMap<String, String> = obj
        .pointer(&format!(
            "/metadata/annotations/{}",
            SOURCES_ANNOTATION.replace('/', "~1")
        ))
        .and_then(|v| v.as_str())
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_default();
    let mut data = serde_json::Map::new();
    for (key, param) in sources {
        let value = source_value(&param, values).ok_or_else(|| {
            ProviderError::fatal(format!("the value of SSM parameter {param} was not read"))
        })?;
        data.insert(
            key,
            base64::engine::general_purpose::STANDARD
                .encode(value)
                .into(),
        );
    }
    if let Some(m) = obj.as_object_mut() {
        m.insert("data".into(), serde_json::Value::Object(data));
    }
    Ok(())
}

/// The annotation holding the desired digest (of the sources' versions) a
/// Secret was applied with.
pub const DIGEST_ANNOTATION: &str = "scopectl.io/digest";
/// The annotation holding the digest of the data as applied.
pub const DATA_DIGEST_ANNOTATION: &str = "scopectl.io/data-digest";

/// Records on `obj` (its data filled) what it is applied as.
pub fn record(obj: &mut serde_json::Value, digest: &str) {
    let data = observed_digest(obj);
    if let Some(m) = obj.as_object_mut() {
        let meta = m.entry("metadata").or_insert_with(|| serde_json::json!({}));
        if let Some(meta) = meta.as_object_mut() {
            let ann = meta
                .entry("annotations")
                .or_insert_with(|| serde_json::json!({}));
            if let Some(ann) = ann.as_object_mut() {
                ann.insert(DIGEST_ANNOTATION.into(), digest.into());
                ann.insert(DATA_DIGEST_ANNOTATION.into(), data.into());
            }
        }
    }
}

/// The digest a Secret was applied with when its data is still what was
/// applied; otherwise (edited, or applied before versions were recorded)
/// a value no desired digest equals.
pub fn recorded_digest(obj: &serde_json::Value) -> String {
    let ann = |k: &str| {
        obj.pointer(&format!("/metadata/annotations/{}", k.replace('/', "~1")))
            .and_then(|v| v.as_str())
    };
    let data = observed_digest(obj);
    match (ann(DIGEST_ANNOTATION), ann(DATA_DIGEST_ANNOTATION)) {
        (Some(d), Some(recorded)) if recorded == data => d.to_string(),
        _ => format!("edited or unrecorded ({data})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_reads_back_as_applied_until_its_data_is_edited() {
        let mut values = BTreeMap::new();
        values.insert("/scope/staging/pw".to_string(), "s3cret".to_string());
        values.insert(
            "/scopectl/scope/staging/pki/bootstrap-token".to_string(),
            "abcdef.0123456789abcdef".to_string(),
        );
        let mut obj = serde_json::json!({"metadata": {"annotations": {SOURCES_ANNOTATION:
            r#"{"PW":"/scope/staging/pw","token-id":"/scopectl/scope/staging/pki/bootstrap-token#id","usage":"=true"}"#}}});
        fill(&mut obj, &values).unwrap();
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        assert_eq!(obj["data"]["PW"], b64("s3cret"));
        assert_eq!(obj["data"]["token-id"], b64("abcdef"));
        assert_eq!(obj["data"]["usage"], b64("true"));
        record(&mut obj, "sha256:versions");
        assert_eq!(recorded_digest(&obj), "sha256:versions");
        obj["data"]["PW"] = b64("changed by kubectl").into();
        assert!(recorded_digest(&obj).starts_with("edited"));
    }
}
