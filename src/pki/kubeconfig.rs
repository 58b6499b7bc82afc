//! The admin kubeconfig: certificates embedded, so a CI job needs nothing but
//! the file (or only AWS credentials to make it).

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_norway::{Mapping, Value};

pub struct KubeconfigParts<'a> {
    /// `<project>-<env>`: the cluster, user and context name.
    pub name: &'a str,
    /// `https://host:port`.
    pub server: &'a str,
    pub ca_pem: &'a str,
    pub cert_pem: &'a str,
    pub key_pem: &'a str,
}

fn named(name: &str, key: &str, body: Value) -> Value {
    let mut m = Mapping::new();
    m.insert("name".into(), name.into());
    m.insert(key.into(), body);
    Value::Mapping(m)
}

fn entries(p: &KubeconfigParts) -> (Value, Value, Value) {
    let mut cluster = Mapping::new();
    cluster.insert("server".into(), p.server.into());
    cluster.insert(
        "certificate-authority-data".into(),
        STANDARD.encode(p.ca_pem).into(),
    );
    let mut user = Mapping::new();
    user.insert(
        "client-certificate-data".into(),
        STANDARD.encode(p.cert_pem).into(),
    );
    user.insert("client-key-data".into(), STANDARD.encode(p.key_pem).into());
    let mut context = Mapping::new();
    context.insert("cluster".into(), p.name.into());
    context.insert("user".into(), format!("{}-admin", p.name).into());
    (
        named(p.name, "cluster", Value::Mapping(cluster)),
        named(&format!("{}-admin", p.name), "user", Value::Mapping(user)),
        named(p.name, "context", Value::Mapping(context)),
    )
}

/// A kubeconfig holding only this cluster.
pub fn admin_kubeconfig(p: &KubeconfigParts) -> String {
    merge_kubeconfig("", p).unwrap_or_default()
}

/// `existing` with this cluster's entries added or replaced by name and made
/// the current context; everything else is kept.
pub fn merge_kubeconfig(existing: &str, p: &KubeconfigParts) -> Result<String, String> {
    let mut root = if existing.trim().is_empty() {
        Mapping::new()
    } else {
        match serde_norway::from_str::<Value>(existing) {
            Ok(Value::Mapping(m)) => m,
            Ok(_) => return Err("the existing kubeconfig is not a YAML mapping".into()),
            Err(e) => return Err(format!("the existing kubeconfig is not valid YAML: {e}")),
        }
    };
    root.entry("apiVersion".into()).or_insert("v1".into());
    root.entry("kind".into()).or_insert("Config".into());
    let (cluster, user, context) = entries(p);
    for (key, entry) in [
        ("clusters", cluster),
        ("users", user),
        ("contexts", context),
    ] {
        let list = root
            .entry(key.into())
            .or_insert(Value::Sequence(Vec::new()));
        if !list.is_sequence() {
            *list = Value::Sequence(Vec::new());
        }
        if let Value::Sequence(items) = list {
            let name = entry.get("name").cloned();
            items.retain(|i| i.get("name") != name.as_ref());
            items.push(entry);
        }
    }
    root.insert("current-context".into(), p.name.into());
    serde_norway::to_string(&Value::Mapping(root)).map_err(|e| e.to_string())
}
