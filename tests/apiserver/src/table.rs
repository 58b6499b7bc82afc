//! `kubectl get`'s server-side printing: objects as `meta.k8s.io/v1`
//! Tables, with the columns kubectl shows for each kind.

use serde_json::{json, Value};

use crate::kinds::Kind;
use crate::util;

fn col(name: &str, ty: &str, priority: u8, description: &str) -> Value {
    let format = if name == "Name" { "name" } else { "" };
    json!({"name": name, "type": ty, "format": format, "description": description, "priority": priority})
}

pub fn columns(kind: &Kind) -> Vec<Value> {
    let name = col(
        "Name",
        "string",
        0,
        "Name must be unique within a namespace.",
    );
    let age = col("Age", "string", 0, "CreationTimestamp is a timestamp representing the server time when this object was created.");
    let s = |n: &str| col(n, "string", 0, "");
    let i = |n: &str| col(n, "integer", 0, "");
    let wide = |n: &str| col(n, "string", 1, "");
    match kind.kind {
        "Node" => vec![
            name,
            s("Status"),
            s("Roles"),
            age,
            s("Version"),
            wide("Internal-IP"),
            wide("External-IP"),
            wide("OS-Image"),
            wide("Kernel-Version"),
            wide("Container-Runtime"),
        ],
        "Namespace" => vec![name, s("Status"), age],
        "Pod" => vec![
            name,
            s("Ready"),
            s("Status"),
            s("Restarts"),
            age,
            wide("IP"),
            wide("Node"),
            wide("Nominated Node"),
            wide("Readiness Gates"),
        ],
        "Deployment" => vec![
            name,
            s("Ready"),
            i("Up-to-date"),
            i("Available"),
            age,
            wide("Containers"),
            wide("Images"),
            wide("Selector"),
        ],
        "ReplicaSet" => vec![
            name,
            i("Desired"),
            i("Current"),
            i("Ready"),
            age,
            wide("Containers"),
            wide("Images"),
            wide("Selector"),
        ],
        "DaemonSet" => vec![
            name,
            i("Desired"),
            i("Current"),
            i("Ready"),
            i("Up-to-date"),
            i("Available"),
            s("Node Selector"),
            age,
            wide("Containers"),
            wide("Images"),
            wide("Selector"),
        ],
        "Service" => vec![
            name,
            s("Type"),
            s("Cluster-IP"),
            s("External-IP"),
            s("Port(s)"),
            age,
            wide("Selector"),
        ],
        "ConfigMap" => vec![name, i("Data"), age],
        "Secret" => vec![name, s("Type"), i("Data"), age],
        "ServiceAccount" => vec![name, i("Secrets"), age],
        "Lease" => vec![name, s("Holder"), age],
        "PodDisruptionBudget" => vec![
            name,
            s("Min Available"),
            s("Max Unavailable"),
            i("Allowed Disruptions"),
            age,
        ],
        "ClusterRole" | "Role" => vec![name, s("Created At")],
        "ClusterRoleBinding" | "RoleBinding" => vec![
            name,
            s("Role"),
            age,
            wide("Users"),
            wide("Groups"),
            wide("ServiceAccounts"),
        ],
        _ => vec![name, age],
    }
}

fn n(v: &Value, path: &[&str]) -> i64 {
    util::i64_at(v, path).unwrap_or(0)
}

fn or_none(s: String) -> String {
    if s.is_empty() {
        "<none>".into()
    } else {
        s
    }
}

fn containers(o: &Value, path: &[&str]) -> (String, String) {
    let list = util::at(o, path)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let names: Vec<&str> = list.iter().filter_map(|c| c["name"].as_str()).collect();
    let images: Vec<&str> = list.iter().filter_map(|c| c["image"].as_str()).collect();
    (names.join(","), images.join(","))
}

fn selector(o: &Value) -> String {
    or_none(crate::selectors::LabelSelector::from_object(&o["spec"]["selector"]).to_query())
}

pub fn pod_status_reason(p: &Value) -> String {
    let mut reason = util::str_at(p, &["status", "phase"])
        .unwrap_or("Pending")
        .to_string();
    for c in p["status"]["containerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if let Some(r) = c["state"]["waiting"]["reason"].as_str() {
            reason = r.to_string();
        } else if let Some(r) = c["state"]["terminated"]["reason"].as_str() {
            reason = r.to_string();
        }
    }
    if util::at(p, &["metadata", "deletionTimestamp"]).is_some() {
        reason = "Terminating".into();
    }
    reason
}

fn cells(kind: &Kind, o: &Value, now_ms: i64) -> Vec<Value> {
    let name = json!(util::name(o));
    let age = json!(util::str_at(o, &["metadata", "creationTimestamp"])
        .and_then(util::parse_rfc3339)
        .map(|t| util::human_duration(now_ms - t))
        .unwrap_or_else(|| "<unknown>".into()));
    match kind.kind {
        "Node" => {
            let ready = crate::controllers::is_ready_node(o);
            let mut status = if ready {
                "Ready".to_string()
            } else {
                "NotReady".to_string()
            };
            if o["spec"]["unschedulable"] == true {
                status.push_str(",SchedulingDisabled");
            }
            let roles: Vec<String> = util::labels(o)
                .into_iter()
                .flatten()
                .filter_map(|(k, _)| {
                    k.strip_prefix("node-role.kubernetes.io/")
                        .map(str::to_string)
                })
                .collect();
            let addr = |t: &str| {
                o["status"]["addresses"]
                    .as_array()
                    .and_then(|a| a.iter().find(|a| a["type"] == t))
                    .and_then(|a| a["address"].as_str())
                    .unwrap_or("<none>")
                    .to_string()
            };
            let info = &o["status"]["nodeInfo"];
            vec![
                name,
                json!(status),
                json!(or_none(roles.join(","))),
                age,
                info["kubeletVersion"].clone(),
                json!(addr("InternalIP")),
                json!(addr("ExternalIP")),
                info["osImage"].clone(),
                info["kernelVersion"].clone(),
                info["containerRuntimeVersion"].clone(),
            ]
        }
        "Namespace" => vec![name, o["status"]["phase"].clone(), age],
        "Pod" => {
            let cs = o["status"]["containerStatuses"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let total = o["spec"]["containers"].as_array().map_or(0, Vec::len);
            let ready = cs.iter().filter(|c| c["ready"] == true).count();
            let restarts: i64 = cs
                .iter()
                .map(|c| c["restartCount"].as_i64().unwrap_or(0))
                .sum();
            let ip = util::str_at(o, &["status", "podIP"]).unwrap_or("<none>");
            let node = util::str_at(o, &["spec", "nodeName"]).unwrap_or("<none>");
            vec![
                name,
                json!(format!("{ready}/{total}")),
                json!(pod_status_reason(o)),
                json!(restarts.to_string()),
                age,
                json!(ip),
                json!(node),
                json!("<none>"),
                json!("<none>"),
            ]
        }
        "Deployment" => {
            let (c, i) = containers(o, &["spec", "template", "spec", "containers"]);
            vec![
                name,
                json!(format!(
                    "{}/{}",
                    n(o, &["status", "readyReplicas"]),
                    n(o, &["spec", "replicas"])
                )),
                json!(n(o, &["status", "updatedReplicas"])),
                json!(n(o, &["status", "availableReplicas"])),
                age,
                json!(c),
                json!(i),
                json!(selector(o)),
            ]
        }
        "ReplicaSet" => {
            let (c, i) = containers(o, &["spec", "template", "spec", "containers"]);
            vec![
                name,
                json!(n(o, &["spec", "replicas"])),
                json!(n(o, &["status", "replicas"])),
                json!(n(o, &["status", "readyReplicas"])),
                age,
                json!(c),
                json!(i),
                json!(selector(o)),
            ]
        }
        "DaemonSet" => {
            let (c, i) = containers(o, &["spec", "template", "spec", "containers"]);
            let sel = o["spec"]["template"]["spec"]["nodeSelector"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default();
            vec![
                name,
                json!(n(o, &["status", "desiredNumberScheduled"])),
                json!(n(o, &["status", "currentNumberScheduled"])),
                json!(n(o, &["status", "numberReady"])),
                json!(n(o, &["status", "updatedNumberScheduled"])),
                json!(n(o, &["status", "numberAvailable"])),
                json!(or_none(sel)),
                age,
                json!(c),
                json!(i),
                json!(selector(o)),
            ]
        }
        "Service" => {
            let ty = util::str_at(o, &["spec", "type"]).unwrap_or("ClusterIP");
            let ip = util::str_at(o, &["spec", "clusterIP"]).unwrap_or("<none>");
            let external = match ty {
                "ExternalName" => util::str_at(o, &["spec", "externalName"])
                    .unwrap_or("<none>")
                    .to_string(),
                "LoadBalancer" => {
                    let ing: Vec<String> = o["status"]["loadBalancer"]["ingress"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|i| {
                            i["hostname"]
                                .as_str()
                                .or(i["ip"].as_str())
                                .map(str::to_string)
                        })
                        .collect();
                    if ing.is_empty() {
                        "<pending>".into()
                    } else {
                        ing.join(",")
                    }
                }
                _ => "<none>".into(),
            };
            let ports: Vec<String> = o["spec"]["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| {
                    let proto = p["protocol"].as_str().unwrap_or("TCP");
                    match p["nodePort"].as_i64() {
                        Some(np) => format!("{}:{np}/{proto}", p["port"]),
                        None => format!("{}/{proto}", p["port"]),
                    }
                })
                .collect();
            let sel = o["spec"]["selector"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default();
            vec![
                name,
                json!(ty),
                json!(ip),
                json!(external),
                json!(or_none(ports.join(","))),
                age,
                json!(or_none(sel)),
            ]
        }
        "ConfigMap" => {
            let count = ["data", "binaryData"]
                .iter()
                .map(|f| o[f].as_object().map_or(0, |m| m.len()))
                .sum::<usize>();
            vec![name, json!(count), age]
        }
        "Secret" => vec![
            name,
            o["type"].clone(),
            json!(o["data"].as_object().map_or(0, |m| m.len())),
            age,
        ],
        "ServiceAccount" => vec![
            name,
            json!(o["secrets"].as_array().map_or(0, Vec::len)),
            age,
        ],
        "Lease" => vec![
            name,
            json!(util::str_at(o, &["spec", "holderIdentity"]).unwrap_or("")),
            age,
        ],
        "PodDisruptionBudget" => {
            let v = |f: &str| {
                o["spec"][f]
                    .as_i64()
                    .map(|n| n.to_string())
                    .or(o["spec"][f].as_str().map(str::to_string))
                    .unwrap_or("N/A".into())
            };
            vec![
                name,
                json!(v("minAvailable")),
                json!(v("maxUnavailable")),
                json!(n(o, &["status", "disruptionsAllowed"])),
                age,
            ]
        }
        "ClusterRole" | "Role" => vec![name, o["metadata"]["creationTimestamp"].clone()],
        "ClusterRoleBinding" | "RoleBinding" => {
            let subjects = o["subjects"].as_array().cloned().unwrap_or_default();
            let of = |k: &str| {
                subjects
                    .iter()
                    .filter(|s| s["kind"] == k)
                    .filter_map(|s| s["name"].as_str().map(str::to_string))
                    .collect::<Vec<_>>()
                    .join(",")
            };
            vec![
                name,
                json!(format!(
                    "{}/{}",
                    o["roleRef"]["kind"].as_str().unwrap_or_default(),
                    o["roleRef"]["name"].as_str().unwrap_or_default()
                )),
                age,
                json!(of("User")),
                json!(of("Group")),
                json!(of("ServiceAccount")),
            ]
        }
        _ => vec![name, age],
    }
}

/// What a row carries of its object: `None`, `Metadata` (the default) or `Object`.
pub fn row(kind: &Kind, o: &Value, now_ms: i64, include: &str) -> Value {
    let mut r = json!({"cells": cells(kind, o, now_ms)});
    match include {
        "None" => {}
        "Object" => r["object"] = o.clone(),
        _ => {
            r["object"] = json!({
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": o["metadata"],
            })
        }
    }
    r
}

pub fn table(
    kind: &Kind,
    objs: &[&Value],
    now_ms: i64,
    include: &str,
    list_meta: Value,
    with_columns: bool,
) -> Value {
    let mut t = json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta});
    t["columnDefinitions"] = if with_columns {
        json!(columns(kind))
    } else {
        json!(null)
    };
    t["rows"] = objs.iter().map(|o| row(kind, o, now_ms, include)).collect();
    t
}
