//! A rollout's calls: the release records (a ConfigMap each, like Helm's
//! release Secrets: in the cluster, so they work for every env and outlive
//! masters with etcd's volume), the image writes, and the watch.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::api::{
    Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams, WatchEvent,
    WatchParams,
};

use super::{error, retried, K8s};
use crate::apply::{ErrorKind, ProviderError};
use crate::model::k8s as mk;
use crate::rollout::{self, Failure, Progress, Release};

/// Releases live beside the inventory.
const NAMESPACE: &str = "kube-system";
/// On release records only. They deliberately lack
/// `app.kubernetes.io/managed-by`: they are records, not objects the plan
/// manages or prunes.
pub const RELEASE_LABEL: &str = "scopectl.io/release";

fn release_name(project: &str, env: &str, revision: u64) -> String {
    format!("scopectl-release-{project}-{env}-{revision}")
}

/// One service to move: its Deployment's name, the new image, the tag.
pub struct Target {
    pub service: String,
    pub image: String,
    pub tag: String,
}

impl K8s {
    fn config_maps(&self) -> Api<DynamicObject> {
        self.api(&mk::CONFIG_MAP, Some(NAMESPACE))
    }

    fn deployments(&self, namespace: &str) -> Api<DynamicObject> {
        self.api(&mk::DEPLOYMENT, Some(namespace))
    }

    fn release_selector(&self) -> String {
        format!(
            "{RELEASE_LABEL}=true,{}={},{}={}",
            mk::LABEL_PROJECT,
            self.owner.project,
            mk::LABEL_ENV,
            self.owner.env
        )
    }

    /// The env's releases, oldest first.
    pub async fn releases(&self) -> Result<Vec<Release>, ProviderError> {
        let api = self.config_maps();
        let lp = ListParams::default().labels(&self.release_selector());
        let list = retried(|| async {
            api.list(&lp)
                .await
                .map_err(|e| error("listing the releases", e))
        })
        .await?;
        let mut out: Vec<Release> = list
            .items
            .iter()
            .filter_map(|cm| {
                let text = cm.data.pointer("/data/release.json")?.as_str()?;
                serde_json::from_str(text).ok()
            })
            .collect();
        out.sort_by_key(|r| r.revision);
        Ok(out)
    }

    /// One release as recorded now; None when there is no such record.
    pub async fn release(&self, revision: u64) -> Result<Option<Release>, ProviderError> {
        let api = self.config_maps();
        let name = release_name(&self.owner.project, &self.owner.env, revision);
        let cm = retried(|| async {
            api.get_opt(&name)
                .await
                .map_err(|e| error("reading a release", e))
        })
        .await?;
        Ok(cm.and_then(|cm| {
            let text = cm.data.pointer("/data/release.json")?.as_str()?;
            serde_json::from_str(text).ok()
        }))
    }

    fn release_object(&self, r: &Release) -> Result<serde_json::Value, ProviderError> {
        let text = serde_json::to_string_pretty(r)
            .map_err(|e| ProviderError::fatal("encoding the release").caused_by(e.to_string()))?;
        Ok(serde_json::json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": release_name(&r.project, &r.env, r.revision),
                "namespace": NAMESPACE,
                "labels": {
                    RELEASE_LABEL: "true",
                    mk::LABEL_PROJECT: r.project,
                    mk::LABEL_ENV: r.env,
                    "scopectl.io/revision": r.revision.to_string(),
                },
            },
            "data": {"release.json": text},
        }))
    }

    /// Records a new release; Ok(false) when its revision is taken already
    /// by another release. A record of the same lock is this one, created by
    /// an attempt whose answer was lost: not a reason to take the next
    /// revision (and leave this one in progress for ever).
    pub async fn create_release(&self, r: &Release) -> Result<bool, ProviderError> {
        let obj: DynamicObject = serde_json::from_value(self.release_object(r)?)
            .map_err(|e| ProviderError::fatal("encoding the release").caused_by(e.to_string()))?;
        let api = self.config_maps();
        let created = retried(|| async {
            match api.create(&PostParams::default(), &obj).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(s)) if s.code == 409 && s.reason == "AlreadyExists" => {
                    Ok(false)
                }
                Err(e) => Err(error("recording the release", e)),
            }
        })
        .await?;
        if created {
            return Ok(true);
        }
        Ok(self
            .release(r.revision)
            .await?
            .is_some_and(|there| there.lock_id == r.lock_id))
    }

    /// Writes a release's outcome.
    pub async fn update_release(&self, r: &Release) -> Result<(), ProviderError> {
        let obj = self.release_object(r)?;
        let api = self.config_maps();
        let name = release_name(&r.project, &r.env, r.revision);
        let pp = PatchParams::apply(rollout::FIELD_MANAGER).force();
        retried(|| async {
            api.patch(&name, &pp, &Patch::Apply(&obj))
                .await
                .map_err(|e| error("recording the release", e))
        })
        .await?;
        Ok(())
    }

    /// Keeps the newest `keep` releases.
    pub async fn prune_releases(
        &self,
        history: &[Release],
        keep: usize,
    ) -> Result<(), ProviderError> {
        let api = self.config_maps();
        let old = history.len().saturating_sub(keep);
        for r in &history[..old] {
            let name = release_name(&r.project, &r.env, r.revision);
            retried(|| async {
                match api.delete(&name, &DeleteParams::default()).await {
                    Ok(_) => Ok(()),
                    Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
                    Err(e) => Err(error("deleting an old release", e)),
                }
            })
            .await?;
        }
        Ok(())
    }

    /// The env's service Deployments in `namespace`, by name.
    pub async fn service_deployments(
        &self,
        namespace: &str,
    ) -> Result<BTreeMap<String, serde_json::Value>, ProviderError> {
        let api = self.deployments(namespace);
        let lp = ListParams::default().labels(&mk::selector(&self.owner.project, &self.owner.env));
        let list = retried(|| async {
            api.list(&lp)
                .await
                .map_err(|e| error("listing deployments", e))
        })
        .await?;
        Ok(list
            .items
            .iter()
            .filter_map(|d| Some((d.metadata.name.clone()?, serde_json::to_value(d).ok()?)))
            .collect())
    }

    /// Moves every target at once: the image field and the release's
    /// annotations only, under the rollout's field manager.
    pub async fn set_images(
        &self,
        namespace: &str,
        targets: &[Target],
        cause: &str,
    ) -> Result<(), ProviderError> {
        let api = self.deployments(namespace);
        let pp = PatchParams::apply(rollout::FIELD_MANAGER).force();
        let writes = targets.iter().map(|t| {
            let obj = serde_json::json!({
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {
                    "name": t.service,
                    "namespace": namespace,
                    "annotations": {mk::TAG_ANNOTATION: t.tag, rollout::CHANGE_CAUSE: cause},
                },
                "spec": {"template": {"spec": {"containers": [{"name": t.service, "image": t.image}]}}},
            });
            let (api, pp) = (&api, &pp);
            async move {
                retried(|| async {
                    api.patch(&t.service, pp, &Patch::Apply(&obj))
                        .await
                        .map_err(|e| error(&format!("setting the image of {}", t.service), e))
                })
                .await
            }
        });
        futures::future::try_join_all(writes).await?;
        Ok(())
    }

    /// Moves `targets` to their images and waits for them (`budget`: how
    /// long, and the flag that set it): a release and its rollback alike.
    pub async fn roll(
        &self,
        namespace: &str,
        targets: &[Target],
        cause: &str,
        budget: (Duration, &str),
        grace: Duration,
        report: &(dyn Fn(&str, &Progress) + Sync),
    ) -> Result<Result<(), Failure>, ProviderError> {
        self.set_images(namespace, targets, cause).await?;
        let deadline = Instant::now() + budget.0;
        self.watch_rollout(namespace, targets, deadline, budget.1, grace, report)
            .await
    }

    /// Waits, by watching the Deployments and their pods, until every
    /// target is complete (Ok), one fails (a failing pod past `grace`, or
    /// its progress deadline), or `deadline` (set by the flag `budget`)
    /// passes. `report` hears each service's progress as it changes.
    pub async fn watch_rollout(
        &self,
        namespace: &str,
        targets: &[Target],
        deadline: Instant,
        budget: &str,
        grace: Duration,
        report: &(dyn Fn(&str, &Progress) + Sync),
    ) -> Result<Result<(), Failure>, ProviderError> {
        let images: BTreeMap<&str, &str> = targets
            .iter()
            .map(|t| (t.service.as_str(), t.image.as_str()))
            .collect();
        let deployments = self.deployments(namespace);
        let pods = self.api(&POD, Some(namespace));
        let dsel = mk::selector(&self.owner.project, &self.owner.env);
        let psel = format!("app.kubernetes.io/part-of={}", self.owner.project);
        let mut state: BTreeMap<String, Progress> = BTreeMap::new();
        // Pods in a failing state: since when, why.
        let mut failing: BTreeMap<String, (Instant, String, String, String)> = BTreeMap::new();

        let evaluate = |deploys: &mut dyn Iterator<Item = &serde_json::Value>,
                        state: &mut BTreeMap<String, Progress>|
         -> Option<Failure> {
            for d in deploys {
                let name = d
                    .pointer("/metadata/name")
                    .and_then(|n| n.as_str())
                    .unwrap_or("");
                if !images.contains_key(name) {
                    continue;
                }
                let p = rollout::progress(d);
                if state.get(name) != Some(&p) {
                    report(name, &p);
                    state.insert(name.to_string(), p.clone());
                }
                if let Progress::Failed { reason, message } = p {
                    return Some(Failure {
                        service: name.to_string(),
                        reason,
                        message,
                    });
                }
            }
            None
        };

        loop {
            // A fresh list, then watch from its version; a cut watch or a
            // version too old (410) lists again.
            let dlist = retried(|| async {
                deployments
                    .list(&ListParams::default().labels(&dsel))
                    .await
                    .map_err(|e| error("listing deployments", e))
            })
            .await?;
            let plist = retried(|| async {
                pods.list(&ListParams::default().labels(&psel))
                    .await
                    .map_err(|e| error("listing pods", e))
            })
            .await?;
            let djson: Vec<serde_json::Value> = dlist
                .items
                .iter()
                .filter_map(|d| serde_json::to_value(d).ok())
                .collect();
            if let Some(f) = evaluate(&mut djson.iter(), &mut state) {
                return Ok(Err(f));
            }
            // The pods listed, each still failing since it was first seen
            // failing: a cut watch must not restart a pod's grace.
            let seen = std::mem::take(&mut failing);
            for p in &plist.items {
                if let Ok(v) = serde_json::to_value(p) {
                    let name = v.pointer("/metadata/name").and_then(|n| n.as_str());
                    if let Some((name, was)) = name.and_then(|n| Some((n, seen.get(n)?))) {
                        failing.insert(name.to_string(), was.clone());
                    }
                    note_pod(&v, &images, &mut failing);
                }
            }
            if images
                .keys()
                .all(|s| state.get(*s) == Some(&Progress::Complete))
            {
                return Ok(Ok(()));
            }
            // Also here: watches that fail again and again never reach the
            // deadline's timer below.
            if let Some(f) = expired(&failing, grace) {
                return Ok(Err(f));
            }
            if Instant::now() >= deadline {
                return Ok(Err(timed_out(&images, &state, budget)));
            }
            let drv = dlist.metadata.resource_version.clone().unwrap_or_default();
            let prv = plist.metadata.resource_version.clone().unwrap_or_default();
            let wp = WatchParams::default().timeout(290);
            let dwatch = deployments
                .watch(&wp.clone().labels(&dsel), &drv)
                .await
                .map_err(|e| error("watching deployments", e));
            let pwatch = pods
                .watch(&wp.labels(&psel), &prv)
                .await
                .map_err(|e| error("watching pods", e));
            let (dwatch, pwatch) = match (dwatch, pwatch) {
                (Ok(d), Ok(p)) => (d, p),
                (Err(e), _) | (_, Err(e)) if e.kind == ErrorKind::Transient => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
                (Err(e), _) | (_, Err(e)) => return Err(e),
            };
            // Each stream says when it ends (`None`): `select` alone goes on
            // with the other, blind to the kind whose watch the server (or a
            // load balancer) cut.
            let ended = || futures::stream::once(async { None });
            let mut events = futures::stream::select(
                dwatch.map(|e| Some((true, e))).chain(ended()).boxed(),
                pwatch.map(|e| Some((false, e))).chain(ended()).boxed(),
            );
            loop {
                // Wake at the deadline, or when a failing pod's grace ends.
                let wake = failing
                    .values()
                    .map(|(since, ..)| *since + grace)
                    .min()
                    .map_or(deadline, |g| g.min(deadline));
                if let Some(f) = expired(&failing, grace) {
                    return Ok(Err(f));
                }
                let next = tokio::time::timeout_at(wake.into(), events.next()).await;
                let Ok(next) = next else {
                    if Instant::now() >= deadline {
                        return Ok(Err(timed_out(&images, &state, budget)));
                    }
                    continue;
                };
                let Some(Some((is_deploy, event))) = next else {
                    break; // the server ended a watch: list again
                };
                let obj = match event {
                    Ok(WatchEvent::Added(o)) | Ok(WatchEvent::Modified(o)) => o,
                    Ok(WatchEvent::Deleted(o)) => {
                        if !is_deploy {
                            if let Some(n) = o.metadata.name.as_deref() {
                                failing.remove(n);
                            }
                        }
                        continue;
                    }
                    Ok(WatchEvent::Bookmark(_)) => continue,
                    // 410 Gone and other errors in the stream: list again.
                    Ok(WatchEvent::Error(_)) | Err(_) => break,
                };
                let Ok(v) = serde_json::to_value(&obj) else {
                    continue;
                };
                if is_deploy {
                    if let Some(f) = evaluate(&mut std::iter::once(&v), &mut state) {
                        return Ok(Err(f));
                    }
                    if images
                        .keys()
                        .all(|s| state.get(*s) == Some(&Progress::Complete))
                    {
                        return Ok(Ok(()));
                    }
                } else {
                    note_pod(&v, &images, &mut failing);
                }
            }
        }
    }
}

/// The deadline passed: the first target not complete.
fn timed_out(
    images: &BTreeMap<&str, &str>,
    state: &BTreeMap<String, Progress>,
    budget: &str,
) -> Failure {
    Failure {
        service: images
            .keys()
            .find(|s| state.get(**s) != Some(&Progress::Complete))
            .map(|s| s.to_string())
            .unwrap_or_default(),
        reason: "Timeout".into(),
        message: format!("not complete within {budget}"),
    }
}

pub(super) static POD: mk::ApiKind = mk::ApiKind {
    group: "",
    version: "v1",
    kind: "Pod",
    plural: "pods",
    namespaced: true,
    rank: 3,
    sections: &[],
};

/// Tracks a pod of a target that waits in a failing state (since when).
fn note_pod(
    v: &serde_json::Value,
    images: &BTreeMap<&str, &str>,
    failing: &mut BTreeMap<String, (Instant, String, String, String)>,
) {
    let name = v
        .pointer("/metadata/name")
        .and_then(|n| n.as_str())
        .unwrap_or("")
        .to_string();
    let service = v
        .pointer("/metadata/labels/app.kubernetes.io~1name")
        .and_then(|n| n.as_str())
        .unwrap_or("");
    let Some(image) = images.get(service) else {
        return;
    };
    match rollout::failing(v, image) {
        Some((reason, message)) => {
            let since = failing
                .get(&name)
                .map(|(s, ..)| *s)
                .unwrap_or_else(Instant::now);
            failing.insert(name, (since, service.to_string(), reason, message));
        }
        None => {
            failing.remove(&name);
        }
    }
}

fn expired(
    failing: &BTreeMap<String, (Instant, String, String, String)>,
    grace: Duration,
) -> Option<Failure> {
    failing
        .values()
        .filter(|(since, ..)| since.elapsed() >= grace)
        .min_by_key(|(since, ..)| *since)
        .map(|(_, service, reason, message)| Failure {
            service: service.clone(),
            reason: reason.clone(),
            message: message.clone(),
        })
}
