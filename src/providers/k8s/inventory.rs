//! The inventory: a ConfigMap listing every address scopectl applied for
//! this env (kapp's app record). Prune deletes only what it lists *and*
//! what carries the env's labels: a look-alike someone made with copied
//! labels is never in it.

use std::collections::BTreeSet;

use crate::model::k8s as mk;
use crate::model::{Owner, ResourceId};

/// Present on the inventory object only: tells it apart from the env's
/// other ConfigMaps in the same list call.
pub const INVENTORY_LABEL: &str = "scopectl.io/inventory";
pub const NAMESPACE: &str = "kube-system";

pub fn inventory_name(owner: &Owner) -> String {
    format!("scopectl-{}-{}", owner.project, owner.env)
}

pub fn is_inventory(obj: &serde_json::Value) -> bool {
    obj.pointer("/metadata/labels")
        .and_then(|l| l.get(INVENTORY_LABEL))
        .is_some()
}

pub fn entries(obj: &serde_json::Value) -> BTreeSet<ResourceId> {
    obj.pointer("/data/objects")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .lines()
        .filter_map(|l| ResourceId::parse(l.trim()))
        .collect()
}

pub fn object(owner: &Owner, entries: &BTreeSet<ResourceId>) -> serde_json::Value {
    let mut labels = serde_json::Map::new();
    for (k, v) in mk::owner_labels(&owner.project, &owner.env) {
        labels.insert(k, v.into());
    }
    labels.insert(INVENTORY_LABEL.into(), "true".into());
    let objects: String = entries.iter().map(|id| format!("{id}\n")).collect();
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": inventory_name(owner), "namespace": NAMESPACE, "labels": labels},
        "data": {"objects": objects},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip() {
        let owner = Owner {
            project: "scope".into(),
            env: "staging".into(),
        };
        let ids: BTreeSet<ResourceId> = [
            "k8s/apps/v1/Deployment/scope/users",
            "k8s/v1/Namespace/scope",
        ]
        .iter()
        .filter_map(|s| ResourceId::parse(s))
        .collect();
        let obj = object(&owner, &ids);
        assert!(is_inventory(&obj));
        assert_eq!(entries(&obj), ids);
    }
}
