//! The cluster's moving parts over simulated time: a scheduler and a kubelet
//! per node (pods' fate follows their image tag), the ReplicaSet,
//! Deployment and DaemonSet controllers, and the service-account
//! controller's `default` accounts.
//!
//! Image tags: one containing `crashloop` gives `CrashLoopBackOff`, one
//! containing `missing` gives `ErrImagePull` then `ImagePullBackOff`, one
//! containing `slow` becomes ready ten times later; any other becomes ready
//! after [`Sim::ready_ms`] of simulated time.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde_json::{json, Map, Value};

use crate::kinds::{self, KINDS};
use crate::selectors::LabelSelector;
use crate::state::{controlled_by, State, WriteOpts};
use crate::util;
use crate::validate::image_tag;

const CM: &str = "kube-controller-manager";
const REVISION: &str = "deployment.kubernetes.io/revision";
const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
const DESIRED: &str = "deployment.kubernetes.io/desired-replicas";
const MAX: &str = "deployment.kubernetes.io/max-replicas";
const HASH: &str = "pod-template-hash";

#[derive(Clone, Debug)]
pub struct NodeSpec {
    pub name: String,
    pub internal_ip: String,
    pub master: bool,
    pub zone: Option<String>,
    pub instance_id: Option<String>,
    pub instance_type: Option<String>,
}

/// What the simulation knows beside the objects.
#[derive(Debug, Default)]
pub struct Sim {
    /// Simulated time for a good image's container to become ready.
    pub ready_ms: i64,
    pub kubelet_version: String,
    /// Pod uid -> (created at, pod IP).
    pods: HashMap<String, (i64, String)>,
    next_ip: HashMap<String, u32>,
}

impl Sim {
    pub fn new(ready_ms: i64, kubelet_version: &str) -> Sim {
        Sim {
            ready_ms,
            kubelet_version: kubelet_version.into(),
            ..Sim::default()
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Fate {
    Ready(i64),
    Missing,
    CrashLoop,
}

fn fate(image: &str, ready_ms: i64) -> Fate {
    let tag = image_tag(image);
    if tag.contains("crashloop") {
        Fate::CrashLoop
    } else if tag.contains("missing") {
        Fate::Missing
    } else if tag.contains("slow") {
        Fate::Ready(ready_ms * 10)
    } else {
        Fate::Ready(ready_ms)
    }
}

fn node_object(n: &NodeSpec, i: usize, version: &str, now: &str) -> Value {
    let mut labels = json!({
        "beta.kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/hostname": n.name,
        "kubernetes.io/os": "linux",
    });
    if n.master {
        labels["node-role.kubernetes.io/control-plane"] = json!("");
        labels["node.kubernetes.io/exclude-from-external-load-balancers"] = json!("");
    }
    if let Some(z) = &n.zone {
        labels["topology.kubernetes.io/zone"] = json!(z);
        labels["topology.kubernetes.io/region"] =
            json!(z.trim_end_matches(|c: char| c.is_ascii_lowercase()));
    }
    if let Some(t) = &n.instance_type {
        labels["node.kubernetes.io/instance-type"] = json!(t);
    }
    let cidr = format!("10.244.{i}.0/24");
    let mut spec = json!({"podCIDR": cidr, "podCIDRs": [cidr]});
    if let (Some(z), Some(id)) = (&n.zone, &n.instance_id) {
        spec["providerID"] = json!(format!("aws:///{z}/{id}"));
    }
    if n.master {
        spec["taints"] =
            json!([{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]);
    }
    let cond = |ty: &str, status: &str, reason: &str, msg: &str| json!({"type": ty, "status": status, "lastHeartbeatTime": now, "lastTransitionTime": now, "reason": reason, "message": msg});
    let resources = json!({"cpu": "2", "ephemeral-storage": "20134592Ki", "memory": "7869672Ki", "pods": "110"});
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": n.name, "labels": labels, "annotations": {"node.alpha.kubernetes.io/ttl": "0", "volumes.kubernetes.io/controller-managed-attach-detach": "true"}},
        "spec": spec,
        "status": {
            "conditions": [
                cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                cond("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                cond("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
            ],
            "addresses": [{"type": "InternalIP", "address": n.internal_ip}, {"type": "Hostname", "address": n.name}],
            "capacity": resources,
            "allocatable": resources,
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "architecture": "amd64",
                "bootID": "",
                "containerRuntimeVersion": "containerd://1.7.24",
                "kernelVersion": "6.8.0-1021-aws",
                "kubeProxyVersion": version,
                "kubeletVersion": version,
                "machineID": "",
                "operatingSystem": "linux",
                "osImage": "Ubuntu 24.04.1 LTS",
                "systemUUID": "",
            },
        },
    })
}

/// The objects a fresh cluster has: its namespaces, the `kubernetes`
/// Service, and one Ready Node per instance.
pub fn bootstrap(st: &mut State, nodes: &[NodeSpec]) {
    let now = st.now();
    for ns in ["default", "kube-node-lease", "kube-public", "kube-system"] {
        let _ = st.create(
            kinds::NAMESPACE,
            "",
            json!({"metadata": {"name": ns}}),
            &WriteOpts::manager("kube-apiserver"),
        );
    }
    let ip = st.alloc.nth(1);
    let svc = json!({
        "metadata": {"name": "kubernetes", "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {"clusterIP": ip, "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}], "type": "ClusterIP"},
    });
    let _ = st.create(
        kinds::SERVICE,
        "default",
        svc,
        &WriteOpts::manager("kube-apiserver"),
    );
    let version = st.sim.kubelet_version.clone();
    for (i, n) in nodes.iter().enumerate() {
        let opts = WriteOpts {
            trusted: true,
            ..WriteOpts::manager("kubelet")
        };
        let _ = st.create(kinds::NODE, "", node_object(n, i, &version, &now), &opts);
    }
}

/// Runs every controller until nothing changes. Returns the simulated time
/// of the next change that time alone will bring (a pod becoming ready, a
/// progress deadline), if any.
pub fn reconcile(st: &mut State) -> Option<i64> {
    let mut wake = None;
    for _ in 0..20 {
        st.dirty = false;
        wake = None;
        service_accounts(st);
        schedule(st);
        for (_, rs) in all(st, kinds::REPLICA_SET) {
            replica_set(st, &rs);
        }
        wake = min(wake, kubelet(st));
        for (_, rs) in all(st, kinds::REPLICA_SET) {
            replica_set_status(st, &rs);
        }
        for (_, d) in all(st, kinds::DEPLOYMENT) {
            wake = min(wake, deployment(st, &d));
        }
        for (_, ds) in all(st, kinds::DAEMON_SET) {
            daemon_set(st, &ds);
        }
        wake = min(wake, terminated_pods(st));
        foreground(st);
        namespaces(st);
        if !st.dirty {
            break;
        }
    }
    wake
}

fn min(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn all(st: &State, kind: usize) -> Vec<(String, Arc<Value>)> {
    st.list(kind, None)
        .into_iter()
        .map(|o| (util::namespace(&o).to_string(), o))
        .collect()
}

fn service_accounts(st: &mut State) {
    for ns in st.list(kinds::NAMESPACE, None) {
        let name = util::name(&ns).to_string();
        if util::at(&ns, &["metadata", "deletionTimestamp"]).is_none()
            && st.get(kinds::SERVICE_ACCOUNT, &name, "default").is_none()
        {
            let _ = st.create(
                kinds::SERVICE_ACCOUNT,
                &name,
                json!({"metadata": {"name": "default"}}),
                &WriteOpts::manager(CM),
            );
        }
    }
}

fn tolerates(pod_spec: &Value, taints: Option<&Value>) -> bool {
    let tolerations = pod_spec.get("tolerations").and_then(Value::as_array);
    taints
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .all(|t| {
            let effect = t["effect"].as_str().unwrap_or_default();
            if effect == "PreferNoSchedule" {
                return true;
            }
            tolerations.into_iter().flatten().any(|tol| {
                let op = tol["operator"].as_str().unwrap_or("Equal");
                let key_ok = match tol["key"].as_str() {
                    None | Some("") => op == "Exists",
                    Some(k) => k == t["key"].as_str().unwrap_or_default(),
                };
                let value_ok = op == "Exists"
                    || tol["value"].as_str().unwrap_or_default()
                        == t["value"].as_str().unwrap_or_default();
                let effect_ok = tol["effect"]
                    .as_str()
                    .is_none_or(|e| e.is_empty() || e == effect);
                key_ok && value_ok && effect_ok
            })
        })
}

fn fits(pod_spec: &Value, node: &Value) -> bool {
    let sel_ok = pod_spec
        .get("nodeSelector")
        .and_then(Value::as_object)
        .is_none_or(|sel| {
            let labels = util::labels(node);
            sel.iter()
                .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
        });
    sel_ok && tolerates(pod_spec, util::at(node, &["spec", "taints"]))
}

fn schedule(st: &mut State) {
    let nodes = st.list(kinds::NODE, None);
    let pods = st.list(kinds::POD, None);
    let mut load: HashMap<String, usize> = HashMap::new();
    for p in &pods {
        if let Some(n) = util::str_at(p, &["spec", "nodeName"]) {
            *load.entry(n.to_string()).or_default() += 1;
        }
    }
    for p in pods {
        if util::str_at(&p, &["spec", "nodeName"]).is_some() {
            continue;
        }
        let spec = p.get("spec").cloned().unwrap_or(json!({}));
        let best = nodes.iter().filter(|n| fits(&spec, n)).min_by_key(|n| {
            (
                load.get(util::name(n)).copied().unwrap_or(0),
                util::name(n).to_string(),
            )
        });
        let Some(node) = best else { continue };
        let node = util::name(node).to_string();
        *load.entry(node.clone()).or_default() += 1;
        let mut bound = (*p).clone();
        util::set(&mut bound, &["spec", "nodeName"], json!(node));
        let opts = WriteOpts {
            trusted: true,
            ..WriteOpts::manager("kube-scheduler")
        };
        let _ = st.update(
            kinds::POD,
            util::namespace(&p),
            util::name(&p),
            bound,
            &opts,
        );
    }
}

fn node_ip(st: &State, node: &str) -> String {
    st.get(kinds::NODE, "", node)
        .and_then(|n| {
            n["status"]["addresses"]
                .as_array()
                .and_then(|a| a.iter().find(|a| a["type"] == "InternalIP"))
                .and_then(|a| a["address"].as_str().map(str::to_string))
        })
        .unwrap_or_default()
}

fn pod_ip(st: &mut State, node: &str) -> String {
    let cidr = st
        .get(kinds::NODE, "", node)
        .and_then(|n| util::str_at(n, &["spec", "podCIDR"]).map(str::to_string))
        .unwrap_or_else(|| "10.244.0.0/24".into());
    let next = st.sim.next_ip.entry(node.to_string()).or_insert(1);
    *next = next.wrapping_add(1);
    let n = (*next % 253) + 1;
    let base = cidr.split('/').next().unwrap_or("10.244.0.0");
    let mut parts: Vec<&str> = base.split('.').collect();
    let last = n.to_string();
    parts[3] = &last;
    parts.join(".")
}

/// The kubelets: each scheduled pod's status from its images' fate and its
/// age in simulated time.
fn kubelet(st: &mut State) -> Option<i64> {
    let now = st.clock.now_ms();
    let ready_ms = st.sim.ready_ms;
    let mut wake = None;
    for p in st.list(kinds::POD, None) {
        let Some(node) = util::str_at(&p, &["spec", "nodeName"]).map(str::to_string) else {
            continue;
        };
        let uid = util::uid(&p).to_string();
        let (created, ip) = match st.sim.pods.get(&uid) {
            Some(x) => x.clone(),
            None => {
                let ip = pod_ip(st, &node);
                st.sim.pods.insert(uid.clone(), (now, ip.clone()));
                (now, ip)
            }
        };
        let hip = node_ip(st, &node);
        let (status, next) = pod_status(&p, created, now, ready_ms, &ip, &hip);
        wake = min(wake, next);
        if p.get("status") != Some(&status) {
            let mut np = (*p).clone();
            util::set(&mut np, &["status"], status);
            let _ = st.update(
                kinds::POD,
                util::namespace(&p),
                util::name(&p),
                np,
                &WriteOpts::status("kubelet"),
            );
        }
    }
    let live: std::collections::HashSet<String> = st
        .list(kinds::POD, None)
        .iter()
        .map(|p| util::uid(p).to_string())
        .collect();
    st.sim.pods.retain(|uid, _| live.contains(uid));
    wake
}

fn pod_status(
    pod: &Value,
    created: i64,
    now: i64,
    base: i64,
    ip: &str,
    host_ip: &str,
) -> (Value, Option<i64>) {
    let t = |ms: i64| util::rfc3339(ms);
    let start = created + base / 2;
    let mut next: Option<i64> = None;
    let mut wake = |at: i64| {
        if at > now {
            next = Some(next.map_or(at, |n: i64| n.min(at)));
        }
    };
    let mut statuses = Vec::new();
    let mut all_ready = true;
    let mut ready_since = created;
    let mut pending = false;
    let mut unready = Vec::new();
    for c in pod["spec"]["containers"].as_array().into_iter().flatten() {
        let name = c["name"].as_str().unwrap_or_default();
        let image = c["image"].as_str().unwrap_or_default();
        let id = format!(
            "containerd://{:08x}{:08x}",
            util::fnv32(&format!("{}{name}", util::uid(pod))),
            util::fnv32(name)
        );
        let mut s = json!({"name": name, "image": image, "imageID": "", "lastState": {}, "ready": false, "restartCount": 0, "started": false});
        let waiting = |reason: &str, msg: Option<String>| {
            let mut w = json!({"reason": reason});
            if let Some(m) = msg {
                w["message"] = json!(m);
            }
            json!({"waiting": w})
        };
        if now < start {
            wake(start);
            s["state"] = waiting("ContainerCreating", None);
            pending = true;
        } else {
            match fate(image, base) {
                Fate::Ready(delay) => {
                    s["containerID"] = json!(id);
                    s["state"] = json!({"running": {"startedAt": t(start)}});
                    s["started"] = json!(true);
                    let at = created + delay;
                    if now >= at {
                        s["ready"] = json!(true);
                        ready_since = ready_since.max(at);
                    } else {
                        wake(at);
                    }
                }
                Fate::Missing => {
                    pending = true;
                    if now < created + base {
                        wake(created + base);
                        s["state"] = waiting(
                            "ErrImagePull",
                            Some(format!(
                                "failed to pull and unpack image \"{image}\": not found"
                            )),
                        );
                    } else {
                        s["state"] = waiting(
                            "ImagePullBackOff",
                            Some(format!("Back-off pulling image \"{image}\"")),
                        );
                    }
                }
                Fate::CrashLoop => {
                    s["containerID"] = json!(id);
                    // Crashes at `base`, then after back-offs of 10 s, 20 s, … 5 min.
                    let mut crashes = 0;
                    let mut at = created + base;
                    let mut backoff = 10_000;
                    let mut last = at;
                    while at <= now {
                        crashes += 1;
                        last = at;
                        at += backoff;
                        backoff = (backoff * 2).min(300_000);
                    }
                    wake(at);
                    if crashes == 0 {
                        s["state"] = json!({"running": {"startedAt": t(start)}});
                        s["started"] = json!(true);
                    } else {
                        s["restartCount"] = json!(crashes);
                        s["lastState"] = json!({"terminated": {"exitCode": 1, "reason": "Error", "startedAt": t(start), "finishedAt": t(last), "containerID": id}});
                        let delay = (10_000i64 << (crashes - 1).min(5)).min(300_000) / 1000;
                        s["state"] = waiting(
                            "CrashLoopBackOff",
                            Some(format!("back-off {delay}s restarting failed container={name} pod={}_{}({})", util::name(pod), util::namespace(pod), util::uid(pod))),
                        );
                    }
                }
            }
        }
        if s["ready"] != true {
            all_ready = false;
            unready.push(name.to_string());
        }
        statuses.push(s);
    }
    let cond = |ty: &str, ok: bool, at: i64, reason: Option<&str>, msg: Option<String>| {
        let mut c = json!({"type": ty, "status": if ok { "True" } else { "False" }, "lastTransitionTime": t(at)});
        if let Some(r) = reason {
            c["reason"] = json!(r);
        }
        if let Some(m) = msg {
            c["message"] = json!(m);
        }
        c
    };
    let msg = format!("containers with unready status: [{}]", unready.join(" "));
    let (ready_reason, ready_msg) = if all_ready {
        (None, None)
    } else {
        (Some("ContainersNotReady"), Some(msg))
    };
    let started = now >= start;
    let mut status = json!({
        "phase": if pending || !started { "Pending" } else { "Running" },
        "conditions": [
            cond("PodReadyToStartContainers", started, if started { start } else { created }, None, None),
            cond("Initialized", true, created, None, None),
            cond("Ready", all_ready, if all_ready { ready_since } else { created }, ready_reason, ready_msg.clone()),
            cond("ContainersReady", all_ready, if all_ready { ready_since } else { created }, ready_reason, ready_msg),
            cond("PodScheduled", true, created, None, None),
        ],
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "startTime": t(created),
        "containerStatuses": statuses,
        "qosClass": "BestEffort",
    });
    if started {
        status["podIP"] = json!(ip);
        status["podIPs"] = json!([{"ip": ip}]);
    }
    (status, next)
}

fn pod_ready(p: &Value) -> bool {
    p["status"]["conditions"].as_array().is_some_and(|c| {
        c.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

fn owned_pods(st: &State, ns: &str, uid: &str) -> Vec<Arc<Value>> {
    st.list(kinds::POD, Some(ns))
        .into_iter()
        .filter(|p| {
            controlled_by(p, uid) && util::at(p, &["metadata", "deletionTimestamp"]).is_none()
        })
        .collect()
}

fn owner_ref(owner: &Value, kind: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": kind, "name": util::name(owner), "uid": util::uid(owner), "controller": true, "blockOwnerDeletion": true})
}

fn pod_from_template(owner: &Value, kind: &str, template: &Value) -> Value {
    let mut meta = template.get("metadata").cloned().unwrap_or(json!({}));
    if let Some(m) = meta.as_object_mut() {
        m.remove("creationTimestamp");
        m.remove("name");
        m.insert(
            "generateName".into(),
            json!(format!("{}-", util::name(owner))),
        );
        m.insert("ownerReferences".into(), json!([owner_ref(owner, kind)]));
    }
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": template.get("spec").cloned().unwrap_or(json!({}))})
}

fn replica_set(st: &mut State, rs: &Value) {
    if util::at(rs, &["metadata", "deletionTimestamp"]).is_some() {
        return;
    }
    let ns = util::namespace(rs).to_string();
    let want = util::i64_at(rs, &["spec", "replicas"]).unwrap_or(1).max(0) as usize;
    let mut pods = owned_pods(st, &ns, util::uid(rs));
    if pods.len() < want {
        let template = rs["spec"]["template"].clone();
        for _ in pods.len()..want {
            let pod = pod_from_template(rs, "ReplicaSet", &template);
            let _ = st.create(
                kinds::POD,
                &ns,
                pod,
                &WriteOpts {
                    trusted: true,
                    ..WriteOpts::manager(CM)
                },
            );
        }
    } else if pods.len() > want {
        // Unscheduled first, then not ready, then the newest.
        pods.sort_by_key(|p| {
            (
                util::str_at(p, &["spec", "nodeName"]).is_some(),
                pod_ready(p),
                std::cmp::Reverse(
                    util::str_at(p, &["metadata", "creationTimestamp"])
                        .unwrap_or_default()
                        .to_string(),
                ),
            )
        });
        for p in pods.iter().take(pods.len() - want) {
            let _ = st.delete(
                kinds::POD,
                &ns,
                util::name(p),
                crate::state::Propagation::Background,
                &json!({}),
                false,
            );
        }
    }
}

fn replica_set_status(st: &mut State, rs: &Value) {
    let ns = util::namespace(rs).to_string();
    let Some(rs) = st.get(kinds::REPLICA_SET, &ns, util::name(rs)).cloned() else {
        return;
    };
    let pods = owned_pods(st, &ns, util::uid(&rs));
    let ready = pods.iter().filter(|p| pod_ready(p)).count();
    let mut status = json!({"replicas": pods.len()});
    if !pods.is_empty() {
        status["fullyLabeledReplicas"] = json!(pods.len());
    }
    if ready > 0 {
        status["readyReplicas"] = json!(ready);
        status["availableReplicas"] = json!(ready);
    }
    status["observedGeneration"] = rs["metadata"]["generation"].clone();
    if rs.get("status") != Some(&status) {
        let mut n = (*rs).clone();
        n["status"] = status;
        let _ = st.update(
            kinds::REPLICA_SET,
            &ns,
            util::name(&rs),
            n,
            &WriteOpts::status(CM),
        );
    }
}

/// An int-or-percent against `total`, rounded up or down.
fn scaled(v: &Value, total: i64, round_up: bool) -> i64 {
    match v {
        Value::Number(n) => n.as_i64().unwrap_or(0),
        Value::String(s) => {
            let pct: i64 = s.trim_end_matches('%').parse().unwrap_or(0);
            if round_up {
                (pct * total + 99) / 100
            } else {
                pct * total / 100
            }
        }
        _ => 0,
    }
}

fn surge_unavailable(d: &Value, replicas: i64) -> (i64, i64) {
    if d["spec"]["strategy"]["type"] != "RollingUpdate" {
        return (0, 0);
    }
    let ru = &d["spec"]["strategy"]["rollingUpdate"];
    let surge = scaled(&ru["maxSurge"], replicas, true);
    let mut unavailable = scaled(&ru["maxUnavailable"], replicas, false);
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    (surge, unavailable.min(replicas))
}

fn template_without_hash(t: &Value) -> Value {
    let mut t = t.clone();
    if let Some(l) = t["metadata"]["labels"].as_object_mut() {
        l.remove(HASH);
    }
    t
}

fn revision(rs: &Value) -> i64 {
    util::str_at(rs, &["metadata", "annotations", REVISION])
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn replicas(o: &Value) -> i64 {
    util::i64_at(o, &["spec", "replicas"]).unwrap_or(0)
}

fn st_count(o: &Value, f: &str) -> i64 {
    util::i64_at(o, &["status", f]).unwrap_or(0)
}

/// The annotations a Deployment passes to its ReplicaSets (all but the
/// controller's own and kubectl's last-applied record).
fn copied_annotations(d: &Value) -> Map<String, Value> {
    let mut out = Map::new();
    for (k, v) in d["metadata"]["annotations"]
        .as_object()
        .into_iter()
        .flatten()
    {
        if ![
            REVISION,
            REVISION_HISTORY,
            DESIRED,
            MAX,
            "kubectl.kubernetes.io/last-applied-configuration",
        ]
        .contains(&k.as_str())
        {
            out.insert(k.clone(), v.clone());
        }
    }
    out
}

fn scale_rs(st: &mut State, rs: &Value, to: i64, d: &Value, surge: i64) {
    let mut n = rs.clone();
    n["spec"]["replicas"] = json!(to);
    let ann = util::obj_mut(&mut n, &["metadata", "annotations"]);
    ann.insert(DESIRED.into(), json!(replicas(d).to_string()));
    ann.insert(MAX.into(), json!((replicas(d) + surge).to_string()));
    if *rs != n {
        let _ = st.update(
            kinds::REPLICA_SET,
            util::namespace(rs),
            util::name(rs),
            n,
            &WriteOpts {
                trusted: true,
                ..WriteOpts::manager(CM)
            },
        );
    }
}

fn cond<'a>(status: &'a Value, ty: &str) -> Option<&'a Value> {
    status["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == ty))
}

fn set_cond(status: &mut Value, c: Value, keep_transition: bool) {
    let list = util::obj_mut(status, &[])
        .entry("conditions")
        .or_insert(json!([]));
    let arr = list.as_array_mut().expect("array");
    if let Some(i) = arr.iter().position(|x| x["type"] == c["type"]) {
        let cur = arr[i].clone();
        if cur["status"] == c["status"] && cur["reason"] == c["reason"] && !keep_transition {
            return;
        }
        let mut c = c;
        if cur["status"] == c["status"] {
            c["lastTransitionTime"] = cur["lastTransitionTime"].clone();
        }
        arr.remove(i);
        arr.push(c);
    } else {
        arr.push(c);
    }
}

fn new_cond(ty: &str, ok: bool, reason: &str, msg: String, now: &str) -> Value {
    json!({"type": ty, "status": if ok { "True" } else { "False" }, "lastUpdateTime": now, "lastTransitionTime": now, "reason": reason, "message": msg})
}

/// One pass of the Deployment controller over `d`; returns when its
/// progress deadline falls, if it is still progressing.
fn deployment(st: &mut State, d: &Value) -> Option<i64> {
    if util::at(d, &["metadata", "deletionTimestamp"]).is_some() {
        return None;
    }
    let ns = util::namespace(d).to_string();
    let name = util::name(d).to_string();
    let uid = util::uid(d).to_string();
    let now = st.now();
    let want = replicas(d);
    let (surge, max_unavailable) = surge_unavailable(d, want);
    let template = d["spec"]["template"].clone();
    let rss: Vec<Arc<Value>> = st
        .list(kinds::REPLICA_SET, Some(&ns))
        .into_iter()
        .filter(|rs| controlled_by(rs, &uid))
        .collect();
    let new_ix = rss
        .iter()
        .position(|rs| template_without_hash(&rs["spec"]["template"]) == template);
    let max_old_rev = rss
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != new_ix)
        .map(|(_, rs)| revision(rs))
        .max()
        .unwrap_or(0);
    let mut status = d.get("status").cloned().unwrap_or(json!({}));
    if !status.is_object() {
        status = json!({});
    }
    let paused = d["spec"]["paused"] == true;

    // The new ReplicaSet: found (its revision moved past the old ones) or made.
    let new_rs: Option<Value> = match new_ix {
        Some(i) if paused => Some((*rss[i]).clone()),
        Some(i) => {
            let rs = (*rss[i]).clone();
            let mut n = rs.clone();
            let rev = revision(&rs);
            let ann = util::obj_mut(&mut n, &["metadata", "annotations"]);
            for (k, v) in copied_annotations(d) {
                ann.insert(k, v);
            }
            if rev <= max_old_rev {
                ann.insert(REVISION.into(), json!((max_old_rev + 1).to_string()));
                if rev > 0 {
                    let hist = ann
                        .get(REVISION_HISTORY)
                        .and_then(Value::as_str)
                        .map(|h| format!("{h},{rev}"))
                        .unwrap_or(rev.to_string());
                    ann.insert(REVISION_HISTORY.into(), json!(hist));
                }
            }
            if cond(&status, "Progressing").is_none() {
                set_cond(
                    &mut status,
                    new_cond(
                        "Progressing",
                        true,
                        "FoundNewReplicaSet",
                        format!("Found new replica set \"{}\"", util::name(&rs)),
                        &now,
                    ),
                    false,
                );
            }
            if n != rs {
                match st.update(
                    kinds::REPLICA_SET,
                    &ns,
                    util::name(&rs),
                    n,
                    &WriteOpts {
                        trusted: true,
                        ..WriteOpts::manager(CM)
                    },
                ) {
                    Ok(v) => Some((*v).clone()),
                    Err(_) => Some(rs),
                }
            } else {
                Some(rs)
            }
        }
        None if paused => None,
        None => {
            let collisions = util::i64_at(d, &["status", "collisionCount"]).unwrap_or(0);
            let mut key = util::canonical(&template);
            if collisions > 0 {
                key.push_str(&collisions.to_string());
            }
            let hash = util::safe_encode(&util::fnv32(&key).to_string());
            let rs_name = format!("{name}-{hash}");
            let old_pods: i64 = rss.iter().map(|rs| replicas(rs)).sum();
            let initial = if d["spec"]["strategy"]["type"] == "RollingUpdate" {
                let max_total = want + surge;
                if old_pods >= max_total {
                    0
                } else {
                    (max_total - old_pods).min(want)
                }
            } else if rss
                .iter()
                .all(|rs| replicas(rs) == 0 && st_count(rs, "replicas") == 0)
            {
                want
            } else {
                0
            };
            let mut t = template.clone();
            util::obj_mut(&mut t, &["metadata", "labels"]).insert(HASH.into(), json!(hash));
            let mut selector = d["spec"]["selector"].clone();
            util::obj_mut(&mut selector, &["matchLabels"]).insert(HASH.into(), json!(hash));
            let mut labels = template["metadata"]["labels"].clone();
            util::obj_mut(&mut labels, &[]).insert(HASH.into(), json!(hash));
            let mut ann = copied_annotations(d);
            ann.insert(REVISION.into(), json!((max_old_rev + 1).to_string()));
            ann.insert(DESIRED.into(), json!(want.to_string()));
            ann.insert(MAX.into(), json!((want + surge).to_string()));
            let rs = json!({
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "metadata": {"name": rs_name, "namespace": ns, "labels": labels, "annotations": ann, "ownerReferences": [owner_ref(d, "Deployment")]},
                "spec": {"replicas": initial, "minReadySeconds": d["spec"]["minReadySeconds"].as_i64().unwrap_or(0), "selector": selector, "template": t},
            });
            match st.create(
                kinds::REPLICA_SET,
                &ns,
                rs,
                &WriteOpts {
                    trusted: true,
                    ..WriteOpts::manager(CM)
                },
            ) {
                Ok(v) => {
                    set_cond(
                        &mut status,
                        new_cond(
                            "Progressing",
                            true,
                            "NewReplicaSetCreated",
                            format!("Created new replica set \"{rs_name}\""),
                            &now,
                        ),
                        true,
                    );
                    Some((*v).clone())
                }
                Err(e) if e.code == 409 => {
                    // A hash collision: count it, the next pass hashes anew.
                    status["collisionCount"] = json!(collisions + 1);
                    None
                }
                Err(_) => None,
            }
        }
    };
    let new_name = new_rs.as_ref().map(|rs| util::name(rs).to_string());
    let olds = |st: &State| -> Vec<Value> {
        st.list(kinds::REPLICA_SET, Some(&ns))
            .into_iter()
            .filter(|rs| controlled_by(rs, &uid) && Some(util::name(rs).to_string()) != new_name)
            .map(|rs| (*rs).clone())
            .collect()
    };

    if !paused {
        if let Some(new) = &new_rs {
            if d["spec"]["strategy"]["type"] == "RollingUpdate" {
                // Scale the new ReplicaSet up within maxSurge.
                let cur_new = replicas(new);
                let all: i64 = olds(st).iter().map(replicas).sum::<i64>() + cur_new;
                let target = if cur_new > want {
                    want
                } else {
                    let max_total = want + surge;
                    if all >= max_total {
                        cur_new
                    } else {
                        cur_new + (max_total - all).min(want - cur_new)
                    }
                };
                scale_rs(st, new, target, d, surge);
                // Scale the old ones down within maxUnavailable.
                let new = st
                    .get(kinds::REPLICA_SET, &ns, util::name(new))
                    .cloned()
                    .map(|v| (*v).clone())
                    .unwrap_or(new.clone());
                let mut old = olds(st);
                old.sort_by_key(|rs| {
                    util::str_at(rs, &["metadata", "creationTimestamp"])
                        .unwrap_or_default()
                        .to_string()
                });
                let old_count: i64 = old.iter().map(replicas).sum();
                if old_count > 0 {
                    let all: i64 = old_count + replicas(&new);
                    let min_available = want - max_unavailable;
                    let new_unavailable = replicas(&new) - st_count(&new, "availableReplicas");
                    let max_down = all - min_available - new_unavailable;
                    if max_down > 0 {
                        // Unhealthy old replicas go first.
                        let mut cleaned = 0;
                        for rs in old.iter_mut() {
                            if cleaned >= max_down {
                                break;
                            }
                            let unhealthy = replicas(rs) - st_count(rs, "availableReplicas");
                            if unhealthy <= 0 {
                                continue;
                            }
                            let down = unhealthy.min(max_down - cleaned);
                            let to = replicas(rs) - down;
                            scale_rs(st, rs, to, d, surge);
                            rs["spec"]["replicas"] = json!(to);
                            cleaned += down;
                        }
                        // Then healthy ones, as far as availability allows.
                        let all_available: i64 = old
                            .iter()
                            .map(|rs| st_count(rs, "availableReplicas").min(replicas(rs)))
                            .sum::<i64>()
                            + st_count(&new, "availableReplicas");
                        let mut budget = all_available - min_available;
                        for rs in old.iter() {
                            if budget <= 0 {
                                break;
                            }
                            let down = replicas(rs).min(budget);
                            if down > 0 {
                                scale_rs(st, rs, replicas(rs) - down, d, surge);
                                budget -= down;
                            }
                        }
                    }
                }
            } else {
                // Recreate: every old pod gone before the new ones start.
                let old = olds(st);
                for rs in &old {
                    scale_rs(st, rs, 0, d, 0);
                }
                let old_pods: i64 = old.iter().map(|rs| st_count(rs, "replicas")).sum();
                if old_pods == 0 {
                    scale_rs(st, new, want, d, 0);
                }
            }
        }
        // Revision history: the oldest fully scaled-down ReplicaSets beyond the limit.
        let limit = util::i64_at(d, &["spec", "revisionHistoryLimit"])
            .unwrap_or(10)
            .max(0) as usize;
        let mut dead: Vec<Value> = olds(st)
            .into_iter()
            .filter(|rs| replicas(rs) == 0 && st_count(rs, "replicas") == 0)
            .collect();
        if dead.len() > limit {
            dead.sort_by_key(revision);
            for rs in dead.iter().take(dead.len() - limit) {
                let _ = st.delete(
                    kinds::REPLICA_SET,
                    &ns,
                    util::name(rs),
                    crate::state::Propagation::Background,
                    &json!({}),
                    false,
                );
            }
        }
    }

    // The Deployment's revision annotation follows the new ReplicaSet's.
    if let Some(new) = new_rs
        .as_ref()
        .and_then(|rs| st.get(kinds::REPLICA_SET, &ns, util::name(rs)).cloned())
    {
        let rev = util::str_at(&new, &["metadata", "annotations", REVISION])
            .unwrap_or("1")
            .to_string();
        let cur = st.get(kinds::DEPLOYMENT, &ns, &name).cloned();
        if let Some(cur) = cur {
            if util::str_at(&cur, &["metadata", "annotations", REVISION]) != Some(rev.as_str()) {
                let mut n = (*cur).clone();
                util::obj_mut(&mut n, &["metadata", "annotations"])
                    .insert(REVISION.into(), json!(rev));
                let _ = st.update(
                    kinds::DEPLOYMENT,
                    &ns,
                    &name,
                    n,
                    &WriteOpts {
                        trusted: true,
                        ..WriteOpts::manager(CM)
                    },
                );
            }
        }
    }

    // Status.
    let d = st.get(kinds::DEPLOYMENT, &ns, &name).cloned()?;
    let all: Vec<Arc<Value>> = st
        .list(kinds::REPLICA_SET, Some(&ns))
        .into_iter()
        .filter(|rs| controlled_by(rs, &uid))
        .collect();
    let new = new_name
        .as_ref()
        .and_then(|n| all.iter().find(|rs| util::name(rs) == n).cloned());
    let sum = |f: &dyn Fn(&Value) -> i64| all.iter().map(|rs| f(rs)).sum::<i64>();
    let total_spec = sum(&replicas);
    let actual = sum(&|rs| st_count(rs, "replicas"));
    let updated = new.as_ref().map(|rs| st_count(rs, "replicas")).unwrap_or(0);
    let ready = sum(&|rs| st_count(rs, "readyReplicas"));
    let available = sum(&|rs| st_count(rs, "availableReplicas"));
    let unavailable = (total_spec - available).max(0);
    let old_status = d.get("status").cloned().unwrap_or(json!({}));
    let mut s = json!({"observedGeneration": d["metadata"]["generation"]});
    for (k, v) in [
        ("replicas", actual),
        ("updatedReplicas", updated),
        ("readyReplicas", ready),
        ("availableReplicas", available),
        ("unavailableReplicas", unavailable),
    ] {
        if v != 0 {
            s[k] = json!(v);
        }
    }
    if let Some(c) = status.get("collisionCount") {
        s["collisionCount"] = c.clone();
    }
    s["conditions"] = status.get("conditions").cloned().unwrap_or(json!([]));
    let min_available = want - max_unavailable;
    if available >= min_available {
        set_cond(
            &mut s,
            new_cond(
                "Available",
                true,
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.".into(),
                &now,
            ),
            false,
        );
    } else {
        set_cond(
            &mut s,
            new_cond(
                "Available",
                false,
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.".into(),
                &now,
            ),
            false,
        );
    }
    let mut wake = None;
    let rs_name = new_name.clone().unwrap_or_default();
    if let Some(deadline) =
        util::i64_at(&d, &["spec", "progressDeadlineSeconds"]).filter(|_| !paused)
    {
        let complete = updated == want && actual == want && available == want;
        let old_old = st_count(&d, "replicas") - st_count(&d, "updatedReplicas");
        let new_old = actual - updated;
        let progressing = updated > st_count(&d, "updatedReplicas")
            || new_old < old_old
            || ready > st_count(&d, "readyReplicas")
            || available > st_count(&d, "availableReplicas");
        let cur = cond(&s, "Progressing").cloned();
        if complete && new.is_some() {
            set_cond(
                &mut s,
                new_cond(
                    "Progressing",
                    true,
                    "NewReplicaSetAvailable",
                    format!("ReplicaSet \"{rs_name}\" has successfully progressed."),
                    &now,
                ),
                false,
            );
        } else if progressing && new.is_some() {
            set_cond(
                &mut s,
                new_cond(
                    "Progressing",
                    true,
                    "ReplicaSetUpdated",
                    format!("ReplicaSet \"{rs_name}\" is progressing."),
                    &now,
                ),
                true,
            );
        } else if let Some(c) = cur {
            let reason = c["reason"].as_str().unwrap_or_default();
            if reason != "NewReplicaSetAvailable" && reason != "ProgressDeadlineExceeded" {
                let from = c["lastUpdateTime"]
                    .as_str()
                    .and_then(util::parse_rfc3339)
                    .unwrap_or(0);
                let due = from + deadline * 1000;
                if st.clock.now_ms() > due {
                    set_cond(
                        &mut s,
                        new_cond(
                            "Progressing",
                            false,
                            "ProgressDeadlineExceeded",
                            format!("ReplicaSet \"{rs_name}\" has timed out progressing."),
                            &now,
                        ),
                        false,
                    );
                } else {
                    wake = Some(due + 1);
                }
            }
        }
    }
    if s["conditions"].as_array().is_some_and(Vec::is_empty) {
        util::remove(&mut s, &["conditions"]);
    }
    if old_status != s {
        let mut n = (*d).clone();
        n["status"] = s;
        let _ = st.update(kinds::DEPLOYMENT, &ns, &name, n, &WriteOpts::status(CM));
    }
    wake
}

fn daemon_set(st: &mut State, ds: &Value) {
    if util::at(ds, &["metadata", "deletionTimestamp"]).is_some() {
        return;
    }
    let ns = util::namespace(ds).to_string();
    let uid = util::uid(ds).to_string();
    let template = ds["spec"]["template"].clone();
    let hash = util::safe_encode(&util::fnv32(&util::canonical(&template)).to_string());
    let nodes: Vec<String> = st
        .list(kinds::NODE, None)
        .iter()
        .filter(|n| fits(&template["spec"], n))
        .map(|n| util::name(n).to_string())
        .collect();
    let pods = owned_pods(st, &ns, &uid);
    let max_unavailable = scaled(
        &ds["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"],
        nodes.len() as i64,
        false,
    )
    .max(1);
    let mut unavailable = 0;
    for node in &nodes {
        let on: Vec<&Arc<Value>> = pods
            .iter()
            .filter(|p| util::str_at(p, &["spec", "nodeName"]) == Some(node))
            .collect();
        if on.is_empty() || !on.iter().any(|p| pod_ready(p)) {
            unavailable += 1;
        }
    }
    for p in &pods {
        let node = util::str_at(p, &["spec", "nodeName"]).unwrap_or_default();
        let stale = util::str_at(p, &["metadata", "labels", "controller-revision-hash"])
            != Some(hash.as_str());
        let misplaced = !nodes.iter().any(|n| n == node);
        let rolling = ds["spec"]["updateStrategy"]["type"] == "RollingUpdate";
        let go =
            misplaced || (stale && rolling && (!pod_ready(p) || unavailable < max_unavailable));
        if go {
            if stale && pod_ready(p) && !misplaced {
                unavailable += 1;
            }
            let _ = st.delete(
                kinds::POD,
                &ns,
                util::name(p),
                crate::state::Propagation::Background,
                &json!({}),
                false,
            );
        }
    }
    let pods = owned_pods(st, &ns, &uid);
    for node in &nodes {
        if pods
            .iter()
            .any(|p| util::str_at(p, &["spec", "nodeName"]) == Some(node))
        {
            continue;
        }
        let mut pod = pod_from_template(ds, "DaemonSet", &template);
        util::obj_mut(&mut pod, &["metadata", "labels"])
            .insert("controller-revision-hash".into(), json!(hash));
        util::set(&mut pod, &["spec", "nodeName"], json!(node));
        let _ = st.create(
            kinds::POD,
            &ns,
            pod,
            &WriteOpts {
                trusted: true,
                ..WriteOpts::manager(CM)
            },
        );
    }
    let Some(ds) = st.get(kinds::DAEMON_SET, &ns, util::name(ds)).cloned() else {
        return;
    };
    let pods = owned_pods(st, &ns, &uid);
    let scheduled = nodes
        .iter()
        .filter(|n| {
            pods.iter()
                .any(|p| util::str_at(p, &["spec", "nodeName"]) == Some(n))
        })
        .count();
    let ready = pods.iter().filter(|p| pod_ready(p)).count();
    let updated = pods
        .iter()
        .filter(|p| {
            util::str_at(p, &["metadata", "labels", "controller-revision-hash"])
                == Some(hash.as_str())
        })
        .count();
    let mut s = json!({
        "currentNumberScheduled": scheduled,
        "desiredNumberScheduled": nodes.len(),
        "numberMisscheduled": 0,
        "numberReady": ready,
        "observedGeneration": ds["metadata"]["generation"],
    });
    if ready > 0 {
        s["numberAvailable"] = json!(ready);
    }
    if nodes.len() > ready {
        s["numberUnavailable"] = json!(nodes.len() - ready);
    }
    if updated > 0 {
        s["updatedNumberScheduled"] = json!(updated);
    }
    if ds.get("status") != Some(&s) {
        let mut n = (*ds).clone();
        n["status"] = s;
        let _ = st.update(
            kinds::DAEMON_SET,
            &ns,
            util::name(&ds),
            n,
            &WriteOpts::status(CM),
        );
    }
}

/// `LabelSelector` of a workload in query form (Scale's `status.selector`).
pub fn selector_query(o: &Value) -> String {
    LabelSelector::from_object(&o["spec"]["selector"]).to_query()
}

pub fn is_ready_node(n: &Value) -> bool {
    n["status"]["conditions"].as_array().is_some_and(|c| {
        c.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

/// The kubelet's last word on a terminating pod: once its grace period has
/// passed (its deletionTimestamp), it deletes the pod with grace 0
/// (kubernetes `pkg/kubelet/status/status_manager.go`, `syncPod`); a pod
/// with finalizers stays until they are removed. Returns when the next
/// terminating pod goes.
fn terminated_pods(st: &mut State) -> Option<i64> {
    let now = st.clock.now_ms();
    let mut wake = None;
    for p in st.list(kinds::POD, None) {
        let Some(at) =
            util::str_at(&p, &["metadata", "deletionTimestamp"]).and_then(util::parse_rfc3339)
        else {
            continue;
        };
        let grace = util::i64_at(&p, &["metadata", "deletionGracePeriodSeconds"]).unwrap_or(0);
        let held = util::at(&p, &["metadata", "finalizers"])
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty());
        if grace == 0 || held {
            continue;
        }
        if at <= now {
            let (ns, name) = (util::namespace(&p).to_string(), util::name(&p).to_string());
            st.remove(kinds::POD, &ns, &name);
            st.dirty = true;
        } else {
            wake = min(wake, Some(at));
        }
    }
    wake
}

/// The garbage collector's foreground deletion: an owner marked with the
/// `foregroundDeletion` finalizer goes once it has no dependents left
/// (kubernetes `pkg/controller/garbagecollector/garbagecollector.go`,
/// `processDeletingDependentsItem`).
fn foreground(st: &mut State) {
    let waiting: Vec<(crate::state::Key, Arc<Value>)> = st
        .objects
        .iter()
        .filter(|(_, v)| {
            util::at(v, &["metadata", "finalizers"])
                .and_then(Value::as_array)
                .is_some_and(|f| f.iter().any(|x| x == "foregroundDeletion"))
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for ((k, ns, name), owner) in waiting {
        let uid = util::uid(&owner).to_string();
        if st.objects.values().any(|v| crate::state::owned_by(v, &uid)) {
            continue;
        }
        let mut o = (*owner).clone();
        if let Some(f) = o["metadata"]["finalizers"].as_array_mut() {
            f.retain(|x| x != "foregroundDeletion");
        }
        let _ = st.update(k, &ns, &name, o, &WriteOpts::manager("garbage-collector"));
        st.dirty = true;
    }
}

/// The five conditions the namespace controller writes while it empties a
/// namespace, each with its failing or its ok reason (kubernetes
/// `pkg/controller/namespace/deletion/status_condition_utils.go`).
fn namespace_conditions(remaining: &[String], finalizers: &[String], now: &str) -> Value {
    let cond = |ty: &str, failing: bool, reason: &str, message: String| {
        json!({"type": ty, "status": if failing { "True" } else { "False" },
               "lastTransitionTime": now, "reason": reason, "message": message})
    };
    json!([
        cond(
            "NamespaceDeletionDiscoveryFailure",
            false,
            "ResourcesDiscovered",
            "All resources successfully discovered".into()
        ),
        cond(
            "NamespaceDeletionGroupVersionParsingFailure",
            false,
            "ParsedGroupVersions",
            "All legacy kube types successfully parsed".into()
        ),
        cond(
            "NamespaceDeletionContentFailure",
            false,
            "ContentDeleted",
            "All content successfully deleted, may be waiting on finalization".into()
        ),
        if remaining.is_empty() {
            cond(
                "NamespaceContentRemaining",
                false,
                "ContentRemoved",
                "All content successfully removed".into(),
            )
        } else {
            cond(
                "NamespaceContentRemaining",
                true,
                "SomeResourcesRemain",
                format!("Some resources are remaining: {}", remaining.join(", ")),
            )
        },
        if finalizers.is_empty() {
            cond(
                "NamespaceFinalizersRemaining",
                false,
                "ContentRemoved",
                "All content successfully removed".into(),
            )
        } else {
            cond(
                "NamespaceFinalizersRemaining",
                true,
                "SomeFinalizersRemain",
                format!(
                    "Some content in the namespace has finalizers remaining: {}",
                    finalizers.join(", ")
                ),
            )
        },
    ])
}

/// The namespace controller (kubernetes
/// `pkg/controller/namespace/deletion/namespaced_resources_deleter.go`,
/// `Delete`): for a namespace with a deletionTimestamp, delete everything in
/// it (Background, pods gracefully), record what remains in its
/// conditions (`<resource>.<group> has N resource instances`, finalizers
/// `<finalizer> in N resource instances`), and once nothing remains remove
/// the `kubernetes` finalizer, which removes the namespace.
fn namespaces(st: &mut State) {
    for (_, n) in all(st, kinds::NAMESPACE) {
        if util::at(&n, &["metadata", "deletionTimestamp"]).is_none() {
            continue;
        }
        let name = util::name(&n).to_string();
        let inside: Vec<crate::state::Key> = st
            .objects
            .keys()
            .filter(|(k, ns, _)| KINDS[*k].namespaced && *ns == name)
            .cloned()
            .collect();
        for (k, ns, o) in &inside {
            let deleting = st
                .get(*k, ns, o)
                .is_some_and(|v| util::at(v, &["metadata", "deletionTimestamp"]).is_some());
            if !deleting {
                let _ = st.delete(
                    *k,
                    ns,
                    o,
                    crate::state::Propagation::Background,
                    &json!({}),
                    false,
                );
            }
        }
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        let mut fins: BTreeMap<String, usize> = BTreeMap::new();
        for ((k, ns, _), v) in st.objects.iter() {
            if !KINDS[*k].namespaced || *ns != name {
                continue;
            }
            *counts
                .entry(format!("{}.{}", KINDS[*k].plural, KINDS[*k].group))
                .or_default() += 1;
            for f in util::at(v, &["metadata", "finalizers"])
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                *fins.entry(f.to_string()).or_default() += 1;
            }
        }
        if counts.is_empty() {
            st.remove(kinds::NAMESPACE, "", &name);
            st.dirty = true;
            continue;
        }
        let remaining: Vec<String> = counts
            .iter()
            .map(|(r, c)| format!("{r} has {c} resource instances"))
            .collect();
        let finalizers: Vec<String> = fins
            .iter()
            .map(|(f, c)| format!("{f} in {c} resource instances"))
            .collect();
        let now = st.now();
        let conditions = namespace_conditions(&remaining, &finalizers, &now);
        // Only a change of the conditions is written (no new version, no
        // event otherwise), as the controller compares before it updates.
        let same = n["status"]["conditions"].as_array().is_some_and(|old| {
            old.len() == 5
                && old
                    .iter()
                    .zip(conditions.as_array().into_iter().flatten())
                    .all(|(a, b)| {
                        a["status"] == b["status"]
                            && a["reason"] == b["reason"]
                            && a["message"] == b["message"]
                    })
        });
        if !same {
            let mut nn = (*n).clone();
            util::set(&mut nn, &["status", "conditions"], conditions);
            let _ = st.update(
                kinds::NAMESPACE,
                "",
                &name,
                nn,
                &WriteOpts::status("namespace-controller"),
            );
        }
    }
}
