//! The reads behind `up`'s wait for a working cluster: the Nodes, each
//! workload that must roll out, and the pods of those that have not (for
//! their reason). `crate::health` judges them.

use kube::api::ListParams;

use super::rollout::POD;
use super::{error, retried, K8s};
use crate::apply::ProviderError;
use crate::health::{Snapshot, Workload};
use crate::model::k8s as mk;
use crate::model::ResourceId;

static NODE: mk::ApiKind = mk::ApiKind {
    group: "",
    version: "v1",
    kind: "Node",
    plural: "nodes",
    namespaced: false,
    rank: 3,
    sections: &[],
};

fn to_json(o: &impl serde::Serialize) -> serde_json::Value {
    serde_json::to_value(o).unwrap_or_default()
}

/// `app=x,tier=y` from a workload's `spec.selector.matchLabels`.
fn selector(obj: &serde_json::Value) -> Option<String> {
    let labels = obj.pointer("/spec/selector/matchLabels")?.as_object()?;
    let parts: Vec<String> = labels
        .iter()
        .filter_map(|(k, v)| v.as_str().map(|v| format!("{k}={v}")))
        .collect();
    (!parts.is_empty()).then(|| parts.join(","))
}

impl K8s {
    /// One read of the Nodes and of `workloads` (their pods only when not
    /// rolled out, for the reason): a list, a get per workload, a list of
    /// pods per workload still waiting.
    pub async fn health(&self, workloads: &[Workload]) -> Result<Snapshot, ProviderError> {
        let nodes_api = self.api(&NODE, None);
        let nodes = retried(|| async {
            nodes_api
                .list(&ListParams::default())
                .await
                .map_err(|e| error("listing nodes", e))
        })
        .await?;
        let mut snap = Snapshot {
            nodes: nodes.items.iter().map(to_json).collect(),
            workloads: Vec::new(),
        };
        let reads = workloads.iter().map(|w| async move {
            let kind = match w.kind {
                "DaemonSet" => &mk::DAEMON_SET,
                _ => &mk::DEPLOYMENT,
            };
            let api = self.api(kind, Some(&w.namespace));
            let obj = retried(|| async {
                api.get_opt(&w.name)
                    .await
                    .map_err(|e| error(&format!("reading {} {}", w.kind, w.name), e))
            })
            .await?
            .map(|o| to_json(&o));
            let done = obj.as_ref().is_some_and(|o| {
                let p = match w.kind {
                    "DaemonSet" => crate::health::daemon_set_progress(o),
                    _ => crate::rollout::progress(o),
                };
                p == crate::rollout::Progress::Complete
            });
            let mut pods = Vec::new();
            if let (false, Some(sel)) = (done, obj.as_ref().and_then(selector)) {
                let api = self.api(&POD, Some(&w.namespace));
                let lp = ListParams::default().labels(&sel);
                let list = retried(|| async {
                    api.list(&lp)
                        .await
                        .map_err(|e| error(&format!("listing the pods of {}", w.name), e))
                })
                .await?;
                pods = list.items.iter().map(to_json).collect();
            }
            Ok::<_, ProviderError>((w.clone(), obj, pods))
        });
        snap.workloads = futures::future::try_join_all(reads).await?;
        Ok(snap)
    }
}

impl K8s {
    /// Which of `targets` (address, uid) still exist, each with why it is
    /// not gone yet: a namespace's phase and its conditions that are True
    /// (what remains in it), an object's finalizers, or its deletion time.
    pub async fn lingering(
        &self,
        targets: &[(ResourceId, String)],
    ) -> Result<Vec<(ResourceId, String)>, ProviderError> {
        let reads = targets.iter().map(|(id, uid)| async move {
            let (_, a) = super::k8s_kind(id)?;
            let (ns, name) = mk::namespace_and_name(id);
            let api = self.api(a, ns);
            let got = retried(|| async {
                api.get_opt(name)
                    .await
                    .map_err(|e| error(&format!("reading {id}"), e))
            })
            .await?;
            // Gone, or the name now holds another object.
            let Some(o) = got.filter(|o| uid.is_empty() || o.metadata.uid.as_deref() == Some(uid))
            else {
                return Ok(None);
            };
            let v = to_json(&o);
            Ok::<_, ProviderError>(Some((id.clone(), why_not_gone(&v))))
        });
        Ok(futures::future::try_join_all(reads)
            .await?
            .into_iter()
            .flatten()
            .collect())
    }
}

/// Why an object that was deleted is still there, as its status says.
fn why_not_gone(v: &serde_json::Value) -> String {
    let mut why = Vec::new();
    if let Some(phase) = v.pointer("/status/phase").and_then(|p| p.as_str()) {
        if phase == "Terminating" {
            why.push("Terminating".to_string());
        }
    }
    // A namespace's controller says what remains: its conditions that hold.
    for c in v
        .pointer("/status/conditions")
        .and_then(|c| c.as_array())
        .into_iter()
        .flatten()
        .filter(|c| {
            c["status"] == "True"
                && c["type"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("Namespace"))
        })
    {
        if let Some(m) = c["message"].as_str() {
            why.push(m.to_string());
        }
    }
    let finalizers: Vec<&str> = v
        .pointer("/metadata/finalizers")
        .and_then(|f| f.as_array())
        .into_iter()
        .flatten()
        .filter_map(|f| f.as_str())
        .collect();
    if !finalizers.is_empty() {
        why.push(format!("finalizers: {}", finalizers.join(", ")));
    }
    if why.is_empty() {
        match v
            .pointer("/metadata/deletionTimestamp")
            .and_then(|t| t.as_str())
        {
            Some(t) => why.push(format!("being deleted (deletionTimestamp {t})")),
            None => why.push("not deleted yet".into()),
        }
    }
    why.join("; ")
}
