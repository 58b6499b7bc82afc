//! Pure: whether a cluster works, as `up` waits for it (kapp and `helm
//! --wait` wait the same way): every instance a Ready Node under the name
//! EC2 gives it, every add-on and service rolled out by the rule `rollout`
//! uses. The reads are `providers::k8s::health`'s; this only judges them.

use serde_json::Value;

use crate::rollout::{self, Progress};

/// An instance that must become a Node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpectedNode {
    /// `node-2`
    pub instance: String,
    /// `i-0abc…`
    pub instance_id: String,
    /// The Node's name: the instance's private DNS name.
    pub node_name: String,
}

/// A Deployment or DaemonSet that must be rolled out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workload {
    /// `Deployment` or `DaemonSet`.
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
    /// How users know it: `add-on coredns`, `service users`.
    pub label: String,
}

/// One read of the cluster.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub nodes: Vec<Value>,
    /// Each workload as read (None: it does not exist) and, when it is not
    /// rolled out, its pods.
    pub workloads: Vec<(Workload, Option<Value>, Vec<Value>)>,
}

/// What is not there yet, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Missing {
    /// `instance node-1 (i-0abc…, ip-10-0-1-5.ec2.internal)`, `service users`.
    pub what: String,
    pub why: String,
    /// The pods' reason when it will not come by itself (CrashLoopBackOff,
    /// ImagePullBackOff, ProgressDeadlineExceeded).
    pub failing: bool,
    /// The instance, when an instance never became a Ready Node.
    pub instance_id: Option<String>,
}

/// The verdict on one snapshot.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    pub nodes_ready: usize,
    pub nodes_expected: usize,
    pub workloads_ready: usize,
    pub workloads_expected: usize,
    pub missing: Vec<Missing>,
}

impl Verdict {
    pub fn working(&self) -> bool {
        self.missing.is_empty()
    }

    /// One progress line: `3 of 4 nodes Ready, 5 of 8 workloads ready`.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        if self.nodes_expected > 0 {
            parts.push(format!(
                "{} of {} nodes Ready",
                self.nodes_ready, self.nodes_expected
            ));
        }
        parts.push(format!(
            "{} of {} add-ons and services ready",
            self.workloads_ready, self.workloads_expected
        ));
        parts.join(", ")
    }
}

fn condition<'a>(obj: &'a Value, ty: &str) -> Option<&'a Value> {
    obj.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == ty)
}

fn int(v: &Value, path: &str) -> i64 {
    v.pointer(path).and_then(Value::as_i64).unwrap_or(0)
}

/// kubectl's `DaemonSetStatusViewer`: the observed generation caught up,
/// every scheduled pod updated and available.
pub fn daemon_set_progress(ds: &Value) -> Progress {
    let desired = int(ds, "/status/desiredNumberScheduled");
    let updated = int(ds, "/status/updatedNumberScheduled");
    let available = int(ds, "/status/numberAvailable");
    let waiting = Progress::Waiting {
        updated,
        available,
        desired,
    };
    if int(ds, "/metadata/generation") > int(ds, "/status/observedGeneration")
        || updated < desired
        || available < desired
    {
        return waiting;
    }
    Progress::Complete
}

/// The first failing reason among `pods` (any container image).
fn failing_pod(pods: &[Value]) -> Option<(String, String)> {
    pods.iter().find_map(|p| {
        let images: Vec<&str> = p
            .pointer("/spec/containers")
            .and_then(Value::as_array)
            .map(|c| c.iter().filter_map(|c| c["image"].as_str()).collect())
            .unwrap_or_default();
        images.iter().find_map(|i| rollout::failing(p, i))
    })
}

/// Why the first pending pod is not scheduled (`PodScheduled` False: the
/// scheduler's message).
fn unscheduled(pods: &[Value]) -> Option<String> {
    pods.iter().find_map(|p| {
        let c = condition(p, "PodScheduled")?;
        (c["status"] == "False").then(|| {
            format!(
                "Pending: {}",
                c["message"].as_str().unwrap_or("not scheduled")
            )
        })
    })
}

/// Judges one snapshot against the instances that must be Nodes.
pub fn judge(expected: &[ExpectedNode], snap: &Snapshot) -> Verdict {
    let mut v = Verdict {
        nodes_expected: expected.len(),
        workloads_expected: snap.workloads.len(),
        ..Verdict::default()
    };
    for e in expected {
        let node = snap
            .nodes
            .iter()
            .find(|n| n.pointer("/metadata/name").and_then(Value::as_str) == Some(&e.node_name));
        let why = match node.map(|n| condition(n, "Ready")) {
            None => Some("never registered as a Node".to_string()),
            Some(Some(c)) if c["status"] == "True" => None,
            Some(Some(c)) => Some(format!(
                "Node NotReady: {}",
                c["message"].as_str().unwrap_or("no message")
            )),
            Some(None) => Some("Node has no Ready condition yet".to_string()),
        };
        match why {
            None => v.nodes_ready += 1,
            Some(why) => v.missing.push(Missing {
                what: format!(
                    "instance {} ({}, {})",
                    e.instance, e.instance_id, e.node_name
                ),
                why,
                failing: false,
                instance_id: Some(e.instance_id.clone()),
            }),
        }
    }
    for (w, obj, pods) in &snap.workloads {
        let Some(obj) = obj else {
            v.missing.push(Missing {
                what: w.label.clone(),
                why: format!("{} {}/{} does not exist", w.kind, w.namespace, w.name),
                failing: false,
                instance_id: None,
            });
            continue;
        };
        let progress = match w.kind {
            "DaemonSet" => daemon_set_progress(obj),
            _ => rollout::progress(obj),
        };
        let (why, failing) = match progress {
            Progress::Complete => {
                v.workloads_ready += 1;
                continue;
            }
            Progress::Failed { reason, message } => (format!("{reason}: {message}"), true),
            Progress::Waiting {
                updated,
                available,
                desired,
            } => match failing_pod(pods) {
                Some((reason, message)) => (format!("{reason}: {message}"), true),
                None => (
                    unscheduled(pods).unwrap_or_else(|| {
                        format!("{available} of {desired} available ({updated} updated)")
                    }),
                    false,
                ),
            },
        };
        v.missing.push(Missing {
            what: w.label.clone(),
            why,
            failing,
            instance_id: None,
        });
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str, ready: &str) -> Value {
        json!({"metadata": {"name": name}, "status": {"conditions": [
            {"type": "Ready", "status": ready, "message": "container runtime network not ready"}]}})
    }

    fn expected(n: &str) -> ExpectedNode {
        ExpectedNode {
            instance: "node-0".into(),
            instance_id: "i-1".into(),
            node_name: n.into(),
        }
    }

    fn workload(kind: &'static str) -> Workload {
        Workload {
            kind,
            namespace: "scope".into(),
            name: "users".into(),
            label: "service users".into(),
        }
    }

    fn deployment(available: i64) -> Value {
        json!({"metadata": {"generation": 1}, "spec": {"replicas": 2},
               "status": {"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2,
                          "availableReplicas": available}})
    }

    #[test]
    fn a_node_missing_or_not_ready_is_named_with_its_instance() {
        let snap = Snapshot {
            nodes: vec![node("ip-a", "False")],
            workloads: vec![],
        };
        let v = judge(&[expected("ip-a"), expected("ip-b")], &snap);
        assert_eq!(v.nodes_ready, 0);
        assert_eq!(v.missing.len(), 2);
        assert!(v.missing[0].why.starts_with("Node NotReady"), "{v:?}");
        assert_eq!(v.missing[1].why, "never registered as a Node");
        assert_eq!(v.missing[1].instance_id.as_deref(), Some("i-1"));
        let ok = Snapshot {
            nodes: vec![node("ip-a", "True")],
            workloads: vec![],
        };
        assert!(judge(&[expected("ip-a")], &ok).working());
    }

    #[test]
    fn a_workload_waits_fails_on_its_pods_reason_or_is_ready() {
        let crash = json!({"spec": {"containers": [{"image": "r/users:v1-crashloop"}]},
            "status": {"containerStatuses": [{"state": {"waiting": {
                "reason": "CrashLoopBackOff", "message": "back-off 10s"}}}]}});
        let snap = Snapshot {
            nodes: vec![],
            workloads: vec![(workload("Deployment"), Some(deployment(1)), vec![crash])],
        };
        let v = judge(&[], &snap);
        assert_eq!(v.missing[0].why, "CrashLoopBackOff: back-off 10s");
        assert!(v.missing[0].failing);

        let pending = json!({"status": {"conditions": [{"type": "PodScheduled", "status": "False",
            "message": "0/3 nodes are available: 3 Insufficient cpu."}]}});
        let snap = Snapshot {
            nodes: vec![],
            workloads: vec![(workload("Deployment"), Some(deployment(1)), vec![pending])],
        };
        let v = judge(&[], &snap);
        assert_eq!(
            v.missing[0].why,
            "Pending: 0/3 nodes are available: 3 Insufficient cpu."
        );
        assert!(!v.missing[0].failing);

        let snap = Snapshot {
            nodes: vec![],
            workloads: vec![(workload("Deployment"), Some(deployment(2)), vec![])],
        };
        assert!(judge(&[], &snap).working());

        let snap = Snapshot {
            nodes: vec![],
            workloads: vec![(workload("Deployment"), None, vec![])],
        };
        assert!(judge(&[], &snap).missing[0].why.contains("does not exist"));
    }

    #[test]
    fn a_daemon_set_is_ready_when_every_scheduled_pod_is_updated_and_available() {
        let ds = |available: i64| {
            json!({"metadata": {"generation": 2}, "status": {"observedGeneration": 2,
                "desiredNumberScheduled": 3, "updatedNumberScheduled": 3, "numberAvailable": available}})
        };
        assert_eq!(daemon_set_progress(&ds(3)), Progress::Complete);
        assert!(matches!(
            daemon_set_progress(&ds(2)),
            Progress::Waiting { .. }
        ));
        let stale = json!({"metadata": {"generation": 3}, "status": {"observedGeneration": 2,
            "desiredNumberScheduled": 3, "updatedNumberScheduled": 3, "numberAvailable": 3}});
        assert!(matches!(
            daemon_set_progress(&stale),
            Progress::Waiting { .. }
        ));
    }
}
