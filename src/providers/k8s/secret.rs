//! A Secret's data: values come from the SSM parameters its
//! `scopectl.io/sources` annotation names, read when planning. Plans and
//! observations only ever hold a digest of them.

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
