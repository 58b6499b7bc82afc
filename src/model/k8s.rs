//! Kubernetes objects in the model's vocabulary. Each kind's object is cut
//! into a few declared sections (labels, annotations, the spec …), each one
//! prop; the planner compares a section on the fields scopectl sets (see
//! [`subset_diff`]), so defaults and `status` never show as changes.

use std::collections::BTreeMap;

use super::{Kind, Props, ResourceId, Value};

/// The label every object scopectl applies carries (with project and env).
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const LABEL_PROJECT: &str = "scopectl.io/project";
pub const LABEL_ENV: &str = "scopectl.io/env";
/// An object annotated `scopectl.io/prune: disabled` is never pruned.
pub const PRUNE_ANNOTATION: &str = "scopectl.io/prune";
/// The image tag of the running release, on a service's Deployment.
pub const TAG_ANNOTATION: &str = "scopectl.io/tag";
/// A Secret's data sources (variable -> SSM parameter), as JSON.
pub const SOURCES_ANNOTATION: &str = "scopectl.io/sources";
/// The server-side apply field manager.
pub const FIELD_MANAGER: &str = "scopectl";

/// One section of an object: a prop and where it lives in the object.
#[derive(Debug, Clone, Copy)]
pub struct Section {
    pub prop: &'static str,
    pub path: &'static [&'static str],
}

/// How the API serves a kind, and where it goes in apply order.
#[derive(Debug)]
pub struct ApiKind {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    pub namespaced: bool,
    /// kapp's order: namespaces (0), RBAC (1), service accounts, config and
    /// secrets (2), workloads and services (3). Deletes go in reverse.
    pub rank: u8,
    /// Sections, each a prop. A later section's path inside an earlier one
    /// is cut out of the earlier (a workload's `selector` out of its `spec`).
    pub sections: &'static [Section],
}

impl ApiKind {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

const META: [Section; 2] = [
    Section {
        prop: "labels",
        path: &["metadata", "labels"],
    },
    Section {
        prop: "annotations",
        path: &["metadata", "annotations"],
    },
];

macro_rules! api_kinds {
    ($($name:ident = $group:literal $version:literal $kind:literal $plural:literal $ns:literal $rank:literal [$($prop:literal => [$($p:literal),*]),*];)*) => {
        $(pub static $name: ApiKind = ApiKind {
            group: $group,
            version: $version,
            kind: $kind,
            plural: $plural,
            namespaced: $ns,
            rank: $rank,
            sections: &[META[0], META[1], $(Section { prop: $prop, path: &[$($p),*] }),*],
        };)*
    };
}

api_kinds! {
    NAMESPACE = "" "v1" "Namespace" "namespaces" false 0 [];
    CLUSTER_ROLE = "rbac.authorization.k8s.io" "v1" "ClusterRole" "clusterroles" false 1 ["rules" => ["rules"]];
    CLUSTER_ROLE_BINDING = "rbac.authorization.k8s.io" "v1" "ClusterRoleBinding" "clusterrolebindings" false 1
        ["role_ref" => ["roleRef"], "subjects" => ["subjects"]];
    ROLE = "rbac.authorization.k8s.io" "v1" "Role" "roles" true 1 ["rules" => ["rules"]];
    ROLE_BINDING = "rbac.authorization.k8s.io" "v1" "RoleBinding" "rolebindings" true 1
        ["role_ref" => ["roleRef"], "subjects" => ["subjects"]];
    SERVICE_ACCOUNT = "" "v1" "ServiceAccount" "serviceaccounts" true 2 [];
    CONFIG_MAP = "" "v1" "ConfigMap" "configmaps" true 2 ["data" => ["data"]];
    SECRET = "" "v1" "Secret" "secrets" true 2 ["type" => ["type"]];
    DEPLOYMENT = "apps" "v1" "Deployment" "deployments" true 3
        ["spec" => ["spec"], "selector" => ["spec", "selector"]];
    DAEMON_SET = "apps" "v1" "DaemonSet" "daemonsets" true 3
        ["spec" => ["spec"], "selector" => ["spec", "selector"]];
    SERVICE = "" "v1" "Service" "services" true 3
        ["spec" => ["spec"], "cluster_ip" => ["spec", "clusterIP"]];
    POD_DISRUPTION_BUDGET = "policy" "v1" "PodDisruptionBudget" "poddisruptionbudgets" true 3
        ["spec" => ["spec"]];
    NETWORK_POLICY = "networking.k8s.io" "v1" "NetworkPolicy" "networkpolicies" true 2
        ["spec" => ["spec"]];
}

/// The address of an object: `k8s/<apiVersion>/<Kind>/<ns>/<name>`, or
/// without the namespace for cluster-scoped kinds.
pub fn address(kind: Kind, namespace: Option<&str>, name: &str) -> ResourceId {
    match namespace {
        Some(ns) => ResourceId::new(kind, &format!("{ns}/{name}")),
        None => ResourceId::new(kind, name),
    }
}

/// The namespace and name in an address.
pub fn namespace_and_name(id: &ResourceId) -> (Option<&str>, &str) {
    let name = id.name();
    match id.kind().and_then(Kind::k8s) {
        Some(k) if k.namespaced => match name.split_once('/') {
            Some((ns, n)) => (Some(ns), n),
            None => (None, name),
        },
        _ => (None, name),
    }
}

/// JSON to a prop value, keeping list order (a container's args, env).
/// `null` is dropped by the caller; numbers that are not integers become
/// strings (no field scopectl sets has one).
pub fn from_json(v: &serde_json::Value) -> Option<Value> {
    Some(match v {
        serde_json::Value::Null => return None,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Str(n.to_string()),
        },
        serde_json::Value::String(s) => Value::Str(s.clone()),
        serde_json::Value::Array(a) => Value::List(a.iter().filter_map(from_json).collect()),
        serde_json::Value::Object(m) => Value::Map(
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), from_json(v)?)))
                .collect(),
        ),
    })
}

pub fn to_json(v: &Value) -> serde_json::Value {
    match v {
        Value::Bool(b) => serde_json::Value::Bool(*b),
        Value::Int(i) => serde_json::Value::from(*i),
        Value::Str(s) => serde_json::Value::String(s.clone()),
        Value::List(l) => serde_json::Value::Array(l.iter().map(to_json).collect()),
        Value::Ref(r) => serde_json::Value::String(r.target.to_string()),
        Value::Map(m) => {
            serde_json::Value::Object(m.iter().map(|(k, v)| (k.clone(), to_json(v))).collect())
        }
    }
}

fn get<'a>(obj: &'a serde_json::Value, path: &[&str]) -> Option<&'a serde_json::Value> {
    path.iter().try_fold(obj, |v, k| v.get(k))
}

fn remove(obj: &mut serde_json::Value, path: &[&str]) {
    if let Some((last, parent)) = path.split_last() {
        let mut v = obj;
        for k in parent {
            match v.get_mut(k) {
                Some(next) => v = next,
                None => return,
            }
        }
        if let Some(m) = v.as_object_mut() {
            m.remove(*last);
        }
    }
}

fn set(obj: &mut serde_json::Value, path: &[&str], value: serde_json::Value) {
    let Some((last, parent)) = path.split_last() else {
        return;
    };
    let mut v = obj;
    for k in parent {
        if !v.is_object() {
            *v = serde_json::Value::Object(Default::default());
        }
        v = v
            .as_object_mut()
            .expect("made an object")
            .entry(k.to_string())
            .or_insert_with(|| serde_json::Value::Object(Default::default()));
    }
    if !v.is_object() {
        *v = serde_json::Value::Object(Default::default());
    }
    v.as_object_mut()
        .expect("made an object")
        .insert(last.to_string(), value);
}

/// An object's sections as props (empty sections are left out).
pub fn to_props(kind: &ApiKind, obj: &serde_json::Value) -> Props {
    let mut props = Props::new();
    for (i, s) in kind.sections.iter().enumerate() {
        let Some(v) = get(obj, s.path) else { continue };
        let mut v = v.clone();
        // Cut out later sections that live inside this one.
        for inner in &kind.sections[i + 1..] {
            if let Some(rest) = inner.path.strip_prefix(s.path) {
                remove(&mut v, rest);
            }
        }
        if let Some(value) = from_json(&v) {
            let empty = matches!(&value, Value::Map(m) if m.is_empty());
            if !empty {
                props.insert(s.prop.to_string(), value);
            }
        }
    }
    props
}

/// The object to apply for `id` with these props.
pub fn to_object(id: &ResourceId, props: &Props) -> Option<serde_json::Value> {
    let kind = id.kind()?.k8s()?;
    let (namespace, name) = namespace_and_name(id);
    let mut obj = serde_json::json!({
        "apiVersion": kind.api_version(),
        "kind": kind.kind,
        "metadata": {"name": name},
    });
    if let Some(ns) = namespace {
        set(&mut obj, &["metadata", "namespace"], ns.into());
    }
    for s in kind.sections {
        // A section inside an earlier one (a selector in its spec) comes
        // later, so it is set into what the earlier one made.
        if let Some(v) = props.get(s.prop) {
            set(&mut obj, s.path, to_json(v));
        }
    }
    Some(obj)
}

/// The key that identifies an element of a list that the API merges by
/// key (containers and env by name, ports by number), if the list is one.
fn merge_key(items: &[Value]) -> Option<&'static str> {
    const KEYS: [&str; 4] = ["name", "containerPort", "port", "mountPath"];
    let first = items.first()?.as_map()?;
    let key = KEYS.iter().find(|k| first.contains_key(**k))?;
    items
        .iter()
        .all(|i| i.as_map().is_some_and(|m| m.contains_key(*key)))
        .then_some(*key)
}

/// One leaf that differs: its path from the section, what is there, what
/// scopectl wants.
#[derive(Clone, Debug, PartialEq)]
pub struct Leaf {
    pub path: String,
    pub have: Option<Value>,
    pub want: Value,
}

/// Compares `want` with `have` on the fields `want` sets: maps by key, lists
/// merged by key element by element (extra elements another manager added
/// are not scopectl's), other lists as a whole, scalars by value.
pub fn subset_diff(path: &str, want: &Value, have: Option<&Value>, out: &mut Vec<Leaf>) {
    let leaf = |out: &mut Vec<Leaf>| {
        out.push(Leaf {
            path: path.to_string(),
            have: have.cloned(),
            want: want.clone(),
        })
    };
    match (want, have) {
        (Value::Map(w), Some(Value::Map(h))) => {
            for (k, wv) in w {
                subset_diff(&join(path, k), wv, h.get(k), out);
            }
        }
        (Value::List(w), Some(Value::List(h))) => match merge_key(w) {
            Some(key) => {
                for wi in w {
                    let id = wi.as_map().and_then(|m| m.get(key)).cloned();
                    let found = h
                        .iter()
                        .find(|hi| hi.as_map().and_then(|m| m.get(key)) == id.as_ref());
                    let at = format!(
                        "{path}[{}]",
                        id.map(|v| match v {
                            Value::Str(s) => s,
                            other => other.to_string(),
                        })
                        .unwrap_or_default()
                    );
                    subset_diff(&at, wi, found, out);
                }
            }
            None => {
                let same = w.len() == h.len() && {
                    let mut inner = Vec::new();
                    for (wi, hi) in w.iter().zip(h) {
                        subset_diff(path, wi, Some(hi), &mut inner);
                    }
                    inner.is_empty()
                };
                if !same {
                    leaf(out);
                }
            }
        },
        (w, Some(h)) if w == h => {}
        // A port or count written as a number and read back as one in a
        // string (or the reverse) is the same value.
        (Value::Int(i), Some(Value::Str(s))) | (Value::Str(s), Some(Value::Int(i)))
            if s == &i.to_string() => {}
        _ => leaf(out),
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// sha256 of one secret value, in hex: what facts and plans hold instead.
pub fn value_digest(value: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    format!("{:x}", Sha256::digest(value))
}

/// The digest of a Secret's data: sha256 over `KEY=<value digest>` lines in
/// key order. The same for desired (from the parameters) and observed (from
/// the Secret), so an edit with kubectl shows as a change.
pub fn data_digest<'a>(data: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    use sha2::{Digest, Sha256};
    let mut sorted: Vec<(&str, &str)> = data.into_iter().collect();
    sorted.sort();
    let mut h = Sha256::new();
    for (k, v) in sorted {
        h.update(format!("{k}={v}\n"));
    }
    format!("sha256:{:x}", h.finalize())
}

/// The labels every object of this env carries.
pub fn owner_labels(project: &str, env: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY.to_string(), "scopectl".to_string()),
        (LABEL_PROJECT.to_string(), project.to_string()),
        (LABEL_ENV.to_string(), env.to_string()),
    ])
}

/// The label selector for this env's objects.
pub fn selector(project: &str, env: &str) -> String {
    owner_labels(project, env)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(j: serde_json::Value) -> Value {
        from_json(&j).unwrap()
    }

    #[test]
    fn sections_round_trip_and_nest() {
        let obj = serde_json::json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "users", "namespace": "scope", "labels": {"a": "b"}},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "users"}},
                     "template": {"spec": {"containers": [{"name": "c", "args": ["b", "a"]}]}}},
        });
        let props = to_props(&DEPLOYMENT, &obj);
        assert_eq!(
            props["selector"],
            v(serde_json::json!({"matchLabels": {"app": "users"}}))
        );
        assert!(props["spec"].as_map().unwrap().get("selector").is_none());
        let id = address(Kind::Deployment, Some("scope"), "users");
        assert_eq!(id.as_str(), "k8s/apps/v1/Deployment/scope/users");
        assert_eq!(namespace_and_name(&id), (Some("scope"), "users"));
        let back = to_object(&id, &props).unwrap();
        assert_eq!(back, obj);
    }

    #[test]
    fn defaults_and_extra_elements_are_not_differences() {
        let want = v(
            serde_json::json!({"replicas": 2, "template": {"spec": {"containers": [
            {"name": "users", "image": "r/users:v1", "ports": [{"containerPort": 8080}]}]}}}),
        );
        let have = v(
            serde_json::json!({"replicas": 2, "progressDeadlineSeconds": 600,
            "template": {"spec": {"containers": [
                {"name": "users", "image": "r/users:v1", "imagePullPolicy": "IfNotPresent",
                 "ports": [{"containerPort": 8080, "protocol": "TCP"}]},
                {"name": "sidecar", "image": "x"}]}}}),
        );
        let mut out = Vec::new();
        subset_diff("spec", &want, Some(&have), &mut out);
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn drift_is_reported_at_its_path() {
        let want = v(
            serde_json::json!({"replicas": 2, "template": {"spec": {"containers": [
            {"name": "users", "image": "r/users:v1", "args": ["a", "b"]}]}}}),
        );
        let have = v(
            serde_json::json!({"replicas": 5, "template": {"spec": {"containers": [
            {"name": "users", "image": "r/users:v2", "args": ["a", "b", "c"]}]}}}),
        );
        let mut out = Vec::new();
        subset_diff("spec", &want, Some(&have), &mut out);
        let paths: Vec<&str> = out.iter().map(|l| l.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "spec.replicas",
                "spec.template.spec.containers[users].args",
                "spec.template.spec.containers[users].image",
            ]
        );
        assert_eq!(out[0].have, Some(Value::Int(5)));
    }
}
