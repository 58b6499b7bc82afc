//! The resource types the server knows, and the discovery documents built
//! from them.

use serde_json::{json, Value};

#[derive(Debug)]
pub struct Kind {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    pub namespaced: bool,
    pub short: &'static [&'static str],
    pub categories: &'static [&'static str],
    /// Has a `status` subresource: writes to the object keep its status,
    /// writes to `/status` keep everything else.
    pub status: bool,
    /// Has a `scale` subresource (autoscaling/v1 Scale).
    pub scale: bool,
    /// `metadata.generation` is kept (it moves when the spec changes).
    pub generation: bool,
}

impl Kind {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `deployments.apps`, or `pods` for the core group: how errors name a
    /// resource.
    pub fn qualified_plural(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// `Deployment.apps`, or `Pod`: how validation errors name a kind.
    pub fn qualified_kind(&self) -> String {
        if self.group.is_empty() {
            self.kind.to_string()
        } else {
            format!("{}.{}", self.kind, self.group)
        }
    }
}

macro_rules! kind {
    ($g:expr, $v:expr, $k:expr, $p:expr, $s:expr, $ns:expr, [$($short:expr),*], [$($cat:expr),*], $status:expr, $scale:expr, $gen:expr) => {
        Kind {
            group: $g,
            version: $v,
            kind: $k,
            plural: $p,
            singular: $s,
            namespaced: $ns,
            short: &[$($short),*],
            categories: &[$($cat),*],
            status: $status,
            scale: $scale,
            generation: $gen,
        }
    };
}

pub static KINDS: &[Kind] = &[
    kind!(
        "",
        "v1",
        "Namespace",
        "namespaces",
        "namespace",
        false,
        ["ns"],
        [],
        true,
        false,
        false
    ),
    kind!(
        "",
        "v1",
        "ConfigMap",
        "configmaps",
        "configmap",
        true,
        ["cm"],
        [],
        false,
        false,
        false
    ),
    kind!(
        "",
        "v1",
        "Secret",
        "secrets",
        "secret",
        true,
        [],
        [],
        false,
        false,
        false
    ),
    kind!(
        "",
        "v1",
        "ServiceAccount",
        "serviceaccounts",
        "serviceaccount",
        true,
        ["sa"],
        [],
        false,
        false,
        false
    ),
    kind!(
        "",
        "v1",
        "Service",
        "services",
        "service",
        true,
        ["svc"],
        ["all"],
        true,
        false,
        false
    ),
    kind!(
        "",
        "v1",
        "Pod",
        "pods",
        "pod",
        true,
        ["po"],
        ["all"],
        true,
        false,
        false
    ),
    kind!(
        "",
        "v1",
        "Node",
        "nodes",
        "node",
        false,
        ["no"],
        [],
        true,
        false,
        false
    ),
    kind!(
        "apps",
        "v1",
        "Deployment",
        "deployments",
        "deployment",
        true,
        ["deploy"],
        ["all"],
        true,
        true,
        true
    ),
    kind!(
        "apps",
        "v1",
        "ReplicaSet",
        "replicasets",
        "replicaset",
        true,
        ["rs"],
        ["all"],
        true,
        true,
        true
    ),
    kind!(
        "apps",
        "v1",
        "DaemonSet",
        "daemonsets",
        "daemonset",
        true,
        ["ds"],
        ["all"],
        true,
        false,
        true
    ),
    kind!(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRole",
        "clusterroles",
        "clusterrole",
        false,
        [],
        [],
        false,
        false,
        false
    ),
    kind!(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        "clusterrolebinding",
        false,
        [],
        [],
        false,
        false,
        false
    ),
    kind!(
        "rbac.authorization.k8s.io",
        "v1",
        "Role",
        "roles",
        "role",
        true,
        [],
        [],
        false,
        false,
        false
    ),
    kind!(
        "rbac.authorization.k8s.io",
        "v1",
        "RoleBinding",
        "rolebindings",
        "rolebinding",
        true,
        [],
        [],
        false,
        false,
        false
    ),
    kind!(
        "policy",
        "v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        "poddisruptionbudget",
        true,
        ["pdb"],
        [],
        true,
        false,
        true
    ),
    kind!(
        "networking.k8s.io",
        "v1",
        "NetworkPolicy",
        "networkpolicies",
        "networkpolicy",
        true,
        ["netpol"],
        [],
        false,
        false,
        true
    ),
    kind!(
        "coordination.k8s.io",
        "v1",
        "Lease",
        "leases",
        "lease",
        true,
        [],
        [],
        false,
        false,
        false
    ),
];

pub const NAMESPACE: usize = 0;
pub const SERVICE_ACCOUNT: usize = 3;
pub const SERVICE: usize = 4;
pub const POD: usize = 5;
pub const NODE: usize = 6;
pub const DEPLOYMENT: usize = 7;
pub const REPLICA_SET: usize = 8;
pub const DAEMON_SET: usize = 9;

/// The kind served at `group`/`version` under `plural`.
pub fn find(group: &str, version: &str, plural: &str) -> Option<usize> {
    KINDS
        .iter()
        .position(|k| k.group == group && k.version == version && k.plural == plural)
}

/// The kind for an object's `apiVersion` and `kind`.
pub fn by_kind(api_version: &str, kind: &str) -> Option<usize> {
    KINDS
        .iter()
        .position(|k| k.api_version() == api_version && k.kind == kind)
}

/// The groups, in the order `/apis` lists them (the core group is `/api`).
fn groups() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for k in KINDS.iter().filter(|k| !k.group.is_empty()) {
        if !out.contains(&(k.group, k.version)) {
            out.push((k.group, k.version));
        }
    }
    // The Scale kind's group: kubectl's scale client looks it up.
    out.push(("autoscaling", "v1"));
    out
}

pub fn api_versions(server: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server}],
    })
}

pub fn api_group_list() -> Value {
    let groups: Vec<Value> = groups()
        .into_iter()
        .map(|(g, v)| {
            let gv = json!({"groupVersion": format!("{g}/{v}"), "version": v});
            json!({"name": g, "versions": [gv.clone()], "preferredVersion": gv})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

pub fn api_group(group: &str) -> Option<Value> {
    let (g, v) = groups().into_iter().find(|(g, _)| *g == group)?;
    let gv = json!({"groupVersion": format!("{g}/{v}"), "version": v});
    Some(
        json!({"kind": "APIGroup", "apiVersion": "v1", "name": g, "versions": [gv.clone()], "preferredVersion": gv}),
    )
}

const VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// The resource list of one group-version, subresources included.
pub fn api_resource_list(group: &str, version: &str) -> Option<Value> {
    if !(groups().contains(&(group, version)) || group.is_empty() && version == "v1") {
        return None;
    }
    let mut resources = Vec::new();
    for k in KINDS
        .iter()
        .filter(|k| k.group == group && k.version == version)
    {
        let mut r = json!({
            "name": k.plural,
            "singularName": k.singular,
            "namespaced": k.namespaced,
            "kind": k.kind,
            "verbs": VERBS,
            "storageVersionHash": crate::util::safe_encode(&format!("{}", crate::util::fnv32(k.plural))),
        });
        if !k.short.is_empty() {
            r["shortNames"] = json!(k.short);
        }
        if !k.categories.is_empty() {
            r["categories"] = json!(k.categories);
        }
        resources.push(r);
        if k.status {
            resources.push(json!({
                "name": format!("{}/status", k.plural),
                "singularName": "",
                "namespaced": k.namespaced,
                "kind": k.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
        if k.scale {
            resources.push(json!({
                "name": format!("{}/scale", k.plural),
                "singularName": "",
                "namespaced": k.namespaced,
                "group": "autoscaling",
                "version": "v1",
                "kind": "Scale",
                "verbs": ["get", "patch", "update"],
            }));
        }
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
    )
}

/// `/openapi/v3`: where each group-version's document is.
pub fn openapi_v3_root() -> Value {
    let mut paths = serde_json::Map::new();
    let mut gvs: Vec<(&str, &str)> = vec![("", "v1")];
    gvs.extend(groups());
    for (g, v) in gvs {
        let p = if g.is_empty() {
            format!("api/{v}")
        } else {
            format!("apis/{g}/{v}")
        };
        let hash = format!("{:016X}", crate::util::fnv32(&p) as u64 * 2_654_435_761);
        paths.insert(
            p.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={hash}")}),
        );
    }
    json!({"paths": paths})
}

/// One group-version's OpenAPI v3 document: the operations with their
/// kinds and the `fieldValidation` parameter (kubectl checks that the server
/// validates fields itself before it sends `fieldValidation=Strict`), and
/// object schemas that preserve unknown fields (no client-side schema).
pub fn openapi_v3(group: &str, version: &str) -> Option<Value> {
    if !(groups().contains(&(group, version)) || group.is_empty() && version == "v1") {
        return None;
    }
    let prefix = if group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{group}/{version}")
    };
    let params = json!([
        {"name": "dryRun", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
        {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
        {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
        {"name": "force", "in": "query", "schema": {"type": "boolean", "uniqueItems": true}},
    ]);
    let mut paths = serde_json::Map::new();
    let mut schemas = serde_json::Map::new();
    for k in KINDS
        .iter()
        .filter(|k| k.group == group && k.version == version)
    {
        let gvk = json!({"group": k.group, "version": k.version, "kind": k.kind});
        let item = if k.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}/{{name}}", k.plural)
        } else {
            format!("{prefix}/{}/{{name}}", k.plural)
        };
        let op = |id: &str| json!({"operationId": id, "x-kubernetes-group-version-kind": gvk, "parameters": params, "responses": {"200": {"description": "OK"}}});
        paths.insert(
            item.clone(),
            json!({
                "get": op(&format!("read{}", k.kind)),
                "put": op(&format!("replace{}", k.kind)),
                "patch": op(&format!("patch{}", k.kind)),
                "delete": op(&format!("delete{}", k.kind)),
            }),
        );
        let list = item.trim_end_matches("/{name}").to_string();
        paths.insert(list, json!({"get": op(&format!("list{}", k.kind)), "post": op(&format!("create{}", k.kind))}));
        let id = if k.group.is_empty() {
            format!("io.k8s.api.core.{}.{}", k.version, k.kind)
        } else {
            format!(
                "io.k8s.api.{}.{}.{}",
                k.group.split('.').next().unwrap_or_default(),
                k.version,
                k.kind
            )
        };
        schemas.insert(id, json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true, "x-kubernetes-group-version-kind": [gvk]}));
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.31.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}
