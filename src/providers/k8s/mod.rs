//! Kubernetes: the only module that touches `kube`. Every object is applied
//! the same way (server-side apply under the field manager `scopectl`,
//! forced: scopectl owns what it sets); what differs per kind is declared in
//! `model::k8s` (its API, its sections). Secrets get their data here
//! (`secret.rs`); the inventory of what scopectl applied is `inventory.rs`.

mod health;
mod inventory;
mod lease;
pub mod rollout;
mod secret;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use backon::Retryable;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::Client;

pub use inventory::{inventory_name, INVENTORY_LABEL};

use crate::apply::{ErrorKind, Provider, ProviderError};
use crate::model::k8s::{self as mk, ApiKind, FIELD_MANAGER};
use crate::model::{ClusterState, Kind, Observed, Owner, Props, Resource, ResourceId};

/// How to reach the API: its URL, the name its certificate carries (the
/// load balancer's, when the URL is a tunnel), and the admin credentials.
#[derive(Clone)]
pub struct Access {
    pub url: String,
    pub server_name: Option<String>,
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

/// What observation found in the cluster.
#[derive(Clone, Debug, Default)]
pub struct Observation {
    pub objects: Vec<Observed>,
    pub state: ClusterState,
    /// The running release's tag per service (the Deployment's annotation).
    pub tags: BTreeMap<String, String>,
}

/// How long a delete waits for its object to be gone before it fails.
const GONE_WITHIN: std::time::Duration = std::time::Duration::from_secs(300);

#[derive(Clone)]
pub struct K8s {
    client: Client,
    /// The API's URL, for messages.
    url: String,
    pub owner: Owner,
    /// Secret values by SSM parameter name, read when planning; never
    /// written anywhere but into the Secrets.
    secrets: BTreeMap<String, String>,
}

fn error(op: &str, e: kube::Error) -> ProviderError {
    match e {
        kube::Error::Api(s) => {
            let kind = match s.code {
                404 => ErrorKind::NotFound,
                // A conflict under forced apply is a concurrent write.
                409 | 429 => ErrorKind::Transient,
                c if c >= 500 => ErrorKind::Transient,
                _ => ErrorKind::Fatal,
            };
            let code = (!s.reason.is_empty()).then(|| s.reason.clone());
            ProviderError::new(kind, code, op.to_string())
                .caused_by(format!("{} {}: {}", s.code, s.reason, s.message))
        }
        other => ProviderError::new(ErrorKind::Transient, None, op.to_string())
            .caused_by(crate::error::messages(&other)),
    }
}

/// Retries a call that is safe to repeat (every call here: reads, forced
/// applies, deletes) on throttling, 5xx, conflicts and dropped connections,
/// with the same jittered backoff as AWS reads.
async fn retried<T, Fut>(call: impl FnMut() -> Fut) -> Result<T, ProviderError>
where
    Fut: std::future::Future<Output = Result<T, ProviderError>>,
{
    call.retry(crate::providers::aws::backoff())
        .sleep(tokio::time::sleep)
        .when(|e| e.kind == ErrorKind::Transient)
        .await
}

fn api_resource(k: &ApiKind) -> ApiResource {
    ApiResource {
        group: k.group.into(),
        version: k.version.into(),
        api_version: k.api_version(),
        kind: k.kind.into(),
        plural: k.plural.into(),
    }
}

fn k8s_kind(id: &ResourceId) -> Result<(Kind, &'static ApiKind), ProviderError> {
    id.kind()
        .and_then(|k| k.k8s().map(|a| (k, a)))
        .ok_or_else(|| ProviderError::fatal(format!("{id} is not a Kubernetes object")))
}

impl K8s {
    /// A client for `access`; nothing is sent yet.
    pub async fn connect(access: &Access, owner: Owner) -> Result<K8s, ProviderError> {
        use base64::Engine as _;
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let server_name = access
            .server_name
            .as_ref()
            .map(|n| format!("    tls-server-name: {n}\n"))
            .unwrap_or_default();
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {}\n{server_name}    certificate-authority-data: {}\nusers:\n- name: u\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\ncontexts:\n- name: c\n  context: {{cluster: c, user: u}}\ncurrent-context: c\n",
            access.url,
            b64(&access.ca_pem),
            b64(&access.cert_pem),
            b64(&access.key_pem)
        );
        let bad =
            |e: String| ProviderError::fatal("configuring the Kubernetes client").caused_by(e);
        let kc = kube::config::Kubeconfig::from_yaml(&text).map_err(|e| bad(e.to_string()))?;
        let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .map_err(|e| bad(e.to_string()))?;
        Self::with_config(cfg, owner)
    }

    /// A client for a context of a kubeconfig (a local env's cluster):
    /// `path`, else `KUBECONFIG`'s files, else `~/.kube/config`, as kubectl
    /// reads them; nothing is sent yet.
    pub async fn from_kubeconfig(
        path: Option<&std::path::Path>,
        context: &str,
        owner: Owner,
    ) -> Result<K8s, ProviderError> {
        let which = path
            .map(|p| p.display().to_string())
            .or_else(|| std::env::var("KUBECONFIG").ok().filter(|v| !v.is_empty()))
            .unwrap_or_else(|| "~/.kube/config".into());
        let bad = |e: String| {
            ProviderError::fatal(format!("reading the kubeconfig {which}")).caused_by(e)
        };
        let kc = match path {
            Some(p) => kube::config::Kubeconfig::read_from(p),
            None => kube::config::Kubeconfig::read(),
        }
        .map_err(|e| bad(e.to_string()))?;
        if !kc.contexts.iter().any(|c| c.name == context) {
            let known: Vec<&str> = kc.contexts.iter().map(|c| c.name.as_str()).collect();
            return Err(ProviderError::fatal(format!(
                "the kubeconfig {which} has no context `{context}`"
            ))
            .caused_by(format!(
                "its contexts: {}",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ))
            .with_hint(format!(
                "create the cluster (e.g. `kind create cluster --name {}`), or set kube_context to one of `kubectl config get-contexts`",
                context.strip_prefix("kind-").unwrap_or(context)
            )));
        }
        let options = kube::config::KubeConfigOptions {
            context: Some(context.to_string()),
            ..Default::default()
        };
        let cfg = kube::Config::from_custom_kubeconfig(kc, &options)
            .await
            .map_err(|e| bad(e.to_string()))?;
        Self::with_config(cfg, owner)
    }

    fn with_config(mut cfg: kube::Config, owner: Owner) -> Result<K8s, ProviderError> {
        let url = cfg.cluster_url.to_string();
        cfg.connect_timeout = Some(Duration::from_secs(5));
        cfg.read_timeout = Some(Duration::from_secs(30));
        let client = Client::try_from(cfg).map_err(|e| {
            ProviderError::fatal("configuring the Kubernetes client").caused_by(e.to_string())
        })?;
        Ok(K8s {
            client,
            url,
            owner,
            secrets: BTreeMap::new(),
        })
    }

    /// The API's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn with_secrets(mut self, values: BTreeMap<String, String>) -> Self {
        self.secrets = values;
        self
    }

    /// `/readyz`, once: Ok(true) when the API says ready.
    pub async fn ready(&self) -> Result<bool, ProviderError> {
        let req = http::Request::get("/readyz")
            .body(Vec::new())
            .map_err(|e| ProviderError::fatal("building /readyz").caused_by(e.to_string()))?;
        match self.client.request_text(req).await {
            Ok(body) => Ok(body.trim() == "ok" || body.contains("readyz check passed")),
            Err(kube::Error::Api(s)) if s.code >= 500 => Ok(false),
            Err(e) => Err(error("GET /readyz", e)),
        }
    }

    fn api(&self, k: &ApiKind, namespace: Option<&str>) -> Api<DynamicObject> {
        let ar = api_resource(k);
        match namespace {
            Some(ns) if k.namespaced => Api::namespaced_with(self.client.clone(), ns, &ar),
            _ => Api::all_with(self.client.clone(), &ar),
        }
    }

    /// Lists every kind once by this env's labels (all namespaces), at once:
    /// one call per kind. None when the API does not answer at all (not up
    /// yet: every list failed to connect or got 5xx); a list that fails
    /// while others answer is retried with backoff.
    pub async fn observe(&self) -> Result<Option<Observation>, ProviderError> {
        let selector = mk::selector(&self.owner.project, &self.owner.env);
        let lp = ListParams::default().labels(&selector);
        let kinds: Vec<(Kind, &'static ApiKind)> = Kind::ALL
            .iter()
            .filter_map(|k| k.k8s().map(|a| (*k, a)))
            .collect();
        let list = |a: &'static ApiKind| {
            let api = self.api(a, None);
            let lp = lp.clone();
            async move {
                api.list(&lp)
                    .await
                    .map_err(|e| error(&format!("listing {}", a.plural), e))
            }
        };
        let first = futures::future::join_all(kinds.iter().map(|(_, a)| list(a))).await;
        if first.iter().all(|r| {
            r.as_ref().is_err_and(|e| {
                e.kind == ErrorKind::Transient && e.code.as_deref() != Some("TooManyRequests")
            })
        }) {
            return Ok(None);
        }
        let mut lists = Vec::new();
        for ((kind, a), got) in kinds.iter().zip(first) {
            let items = match got {
                Ok(l) => l.items,
                Err(e) if e.kind == ErrorKind::Transient => retried(|| list(a)).await?.items,
                Err(e) => return Err(e),
            };
            lists.push((*kind, *a, items));
        }
        let mut out = Observation::default();
        for (kind, a, items) in lists {
            for item in items {
                let Ok(json) = serde_json::to_value(&item) else {
                    continue;
                };
                let name = item.metadata.name.clone().unwrap_or_default();
                let ns = item.metadata.namespace.clone();
                if kind == Kind::ConfigMap && inventory::is_inventory(&json) {
                    if name == inventory_name(&self.owner) {
                        out.state.inventory = inventory::entries(&json);
                        out.state.inventory_exists = true;
                    }
                    continue;
                }
                let id = mk::address(kind, ns.as_deref().filter(|_| a.namespaced), &name);
                // Going: as good as gone for the plan (a create waits it out).
                if item.metadata.deletion_timestamp.is_some() {
                    let uid = item.metadata.uid.clone().unwrap_or_default();
                    out.state.terminating.push((id, uid));
                    continue;
                }
                let mut props = mk::to_props(a, &json);
                if kind == Kind::Secret {
                    props.insert(
                        "digest".into(),
                        crate::model::Value::str(secret::recorded_digest(&json)),
                    );
                }
                if kind == Kind::Deployment {
                    if let Some(tag) = item
                        .metadata
                        .annotations
                        .as_ref()
                        .and_then(|a| a.get(mk::TAG_ANNOTATION))
                    {
                        out.tags.insert(name.clone(), tag.clone());
                    }
                }
                let uid = item.metadata.uid.clone().unwrap_or_default();
                out.objects.push(Observed {
                    id,
                    physical_id: uid,
                    props,
                });
            }
        }
        Ok(Some(out))
    }

    /// Applies `r` (server-side, forced) and returns its uid.
    async fn apply(&self, r: &Resource) -> Result<String, ProviderError> {
        let (kind, a) = k8s_kind(&r.id)?;
        let (ns, name) = mk::namespace_and_name(&r.id);
        let mut obj = mk::to_object(&r.id, &r.props)
            .ok_or_else(|| ProviderError::fatal(format!("{} has no object", r.id)))?;
        if kind == Kind::Secret {
            secret::fill(&mut obj, &self.secrets)?;
            let digest = r
                .props
                .get("digest")
                .and_then(crate::model::Value::as_str)
                .unwrap_or_default();
            secret::record(&mut obj, digest);
        }
        let api = self.api(a, ns);
        let pp = PatchParams::apply(FIELD_MANAGER).force();
        let applied = retried(|| async {
            api.patch(name, &pp, &Patch::Apply(&obj))
                .await
                .map_err(|e| error("server-side apply", e))
        })
        .await?;
        Ok(applied.metadata.uid.unwrap_or_default())
    }

    /// Writes the inventory: the addresses scopectl has applied for this env.
    pub async fn write_inventory(
        &self,
        entries: &BTreeSet<ResourceId>,
    ) -> Result<(), ProviderError> {
        let obj = inventory::object(&self.owner, entries);
        let api = self.api(&mk::CONFIG_MAP, Some(inventory::NAMESPACE));
        let name = inventory_name(&self.owner);
        let pp = PatchParams::apply(FIELD_MANAGER).force();
        retried(|| async {
            api.patch(&name, &pp, &Patch::Apply(&obj))
                .await
                .map_err(|e| error("writing the inventory", e))
        })
        .await?;
        Ok(())
    }

    /// Deletes the inventory (`down` of a local env, once what it lists is
    /// gone): nothing scopectl made stays behind.
    pub async fn delete_inventory(&self) -> Result<(), ProviderError> {
        let api = self.api(&mk::CONFIG_MAP, Some(inventory::NAMESPACE));
        let name = inventory_name(&self.owner);
        retried(|| async {
            match api.delete(&name, &DeleteParams::default()).await {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
                Err(e) => Err(error("deleting the inventory", e)),
            }
        })
        .await
    }

    /// Deletes every Service of type LoadBalancer (any namespace), so the
    /// cloud controller removes their load balancers; waits, bounded, until
    /// they are gone. Returns how many there were.
    pub async fn delete_load_balancer_services(
        &self,
        deadline: Duration,
    ) -> Result<usize, ProviderError> {
        let api = self.api(&mk::SERVICE, None);
        let list = retried(|| async {
            api.list(&ListParams::default())
                .await
                .map_err(|e| error("listing services", e))
        })
        .await?;
        let lbs: Vec<(String, String)> = list
            .items
            .iter()
            .filter(|s| {
                s.data.pointer("/spec/type").and_then(|t| t.as_str()) == Some("LoadBalancer")
            })
            .map(|s| {
                (
                    s.metadata.namespace.clone().unwrap_or_default(),
                    s.metadata.name.clone().unwrap_or_default(),
                )
            })
            .collect();
        for (ns, name) in &lbs {
            let api = self.api(&mk::SERVICE, Some(ns));
            match retried(|| async {
                api.delete(name, &DeleteParams::background())
                    .await
                    .map_err(|e| error("deleting a LoadBalancer service", e))
            })
            .await
            {
                Err(e) if e.kind == ErrorKind::NotFound => {}
                other => {
                    other?;
                }
            }
        }
        // The cloud controller removes the service's finalizer once its load
        // balancer is gone.
        let until = std::time::Instant::now() + deadline;
        while !lbs.is_empty() && std::time::Instant::now() < until {
            let left = api
                .list(&ListParams::default())
                .await
                .map_err(|e| error("listing services", e))?
                .items
                .iter()
                .filter(|s| {
                    lbs.iter().any(|(ns, n)| {
                        s.metadata.namespace.as_deref() == Some(ns)
                            && s.metadata.name.as_deref() == Some(n)
                    })
                })
                .count();
            if left == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        Ok(lbs.len())
    }

    /// Lists one kind by this env's labels with status (for `status`).
    pub async fn list_with_status(
        &self,
        kind: Kind,
    ) -> Result<Vec<serde_json::Value>, ProviderError> {
        let a = kind
            .k8s()
            .ok_or_else(|| ProviderError::fatal("not a Kubernetes kind"))?;
        let api = self.api(a, None);
        let lp = ListParams::default().labels(&mk::selector(&self.owner.project, &self.owner.env));
        let list = retried(|| async {
            api.list(&lp)
                .await
                .map_err(|e| error(&format!("listing {}", a.plural), e))
        })
        .await?;
        Ok(list
            .items
            .iter()
            .filter_map(|i| serde_json::to_value(i).ok())
            .collect())
    }
}

impl Provider for K8s {
    /// Server-side apply creates or updates by name in one idempotent call:
    /// there is nothing to find first, and a repeat never duplicates.
    async fn find(&self, _r: &Resource) -> Result<Option<String>, ProviderError> {
        Ok(None)
    }

    async fn create(&self, r: &Resource) -> Result<String, ProviderError> {
        self.apply(r).await
    }

    async fn update(
        &self,
        r: &Resource,
        _physical_id: &str,
        _before: &Props,
    ) -> Result<(), ProviderError> {
        self.apply(r).await.map(|_| ())
    }

    async fn delete(
        &self,
        id: &ResourceId,
        physical_id: &str,
        _before: &Props,
    ) -> Result<(), ProviderError> {
        let (_, a) = k8s_kind(id)?;
        let (ns, name) = mk::namespace_and_name(id);
        let api = self.api(a, ns);
        // Only the object observed (its uid): never one made since by
        // someone else under the same name.
        let mut dp = DeleteParams::background();
        if !physical_id.is_empty() {
            dp = dp.preconditions(kube::api::Preconditions {
                uid: Some(physical_id.to_string()),
                resource_version: None,
            });
        }
        retried(|| async {
            match api.delete(name, &dp).await {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
                // A 409 is a failed uid precondition (the name now holds
                // another object: ours is gone) or a conflict like any
                // other write's (ours is still there): look which.
                Err(kube::Error::Api(s)) if s.code == 409 => match api.get_opt(name).await {
                    Ok(None) => Ok(()),
                    Ok(Some(o))
                        if !physical_id.is_empty()
                            && o.metadata.uid.as_deref() != Some(physical_id) =>
                    {
                        Ok(())
                    }
                    // Still ours: a transient conflict, tried again.
                    Ok(Some(_)) => Err(error("delete", kube::Error::Api(s))),
                    Err(e) => Err(error("delete", e)),
                },
                Err(e) => Err(error("delete", e)),
            }
        })
        .await?;
        // A namespace goes once its content has: the command waits for it,
        // with progress and its own --timeout (`down`, `up`).
        if id.kind() == Some(Kind::Namespace) {
            return Ok(());
        }
        // Deleted is not gone (finalizers, a grace period): what comes after
        // a delete (a replacement's create, the inventory) waits until it
        // is, as kapp does, bounded.
        let deadline = tokio::time::Instant::now() + GONE_WITHIN;
        let mut pause = std::time::Duration::from_millis(50);
        loop {
            let target = [(id.clone(), physical_id.to_string())];
            let left = self.lingering(&target).await?;
            let Some((_, why)) = left.first() else {
                return Ok(());
            };
            if tokio::time::Instant::now() >= deadline {
                return Err(ProviderError::fatal(format!(
                    "{id} was deleted but is still there after {}: {why}",
                    humantime::format_duration(GONE_WITHIN)
                ))
                .with_hint("a finalizer nobody removes keeps it for good: see it with `kubectl get -o yaml`"));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(std::time::Duration::from_secs(2));
        }
    }
}
