use std::collections::BTreeMap;

use anyhow::Result;

use super::{Backend, Ctx};
use crate::config::Provider;
use crate::error::EXIT_OK;
use crate::model::{Props, ResourceId};
use crate::providers::aws::state::LockInfo;
use crate::ui::Output;

pub async fn run(ctx: &Ctx) -> Result<u8> {
    let config = ctx.config()?;
    let printer = &ctx.printer;
    let backend = Backend::for_env(&config).await?;
    let (actual, lock) = match &backend {
        Backend::Aws(aws) => {
            let (actual, lock) = futures::join!(aws.observe(), aws.read_lock());
            (actual?, lock?)
        }
        // The lock is in the cluster: an unreachable one shows as such below.
        Backend::Local(k8s) => (
            crate::model::Actual::default(),
            k8s.read_lock().await.ok().flatten(),
        ),
    };
    let cluster = match &backend {
        Backend::Aws(aws) if ctx.phase.cluster() => {
            Some(cluster_status(ctx, &config, aws, &actual).await)
        }
        Backend::Aws(_) => None,
        Backend::Local(k8s) => Some(status_of(&config, k8s, k8s.url().to_string()).await),
    };
    if printer.output == Output::Json {
        let resources = actual
            .resources
            .values()
            .chain(&actual.duplicates)
            .map(|o| StatusResource {
                address: o.id.clone(),
                kind: o.id.kind().map(|k| k.label()),
                id: o.physical_id.clone(),
                props: o.props.clone(),
            })
            .collect();
        printer.json(&Status {
            format_version: FORMAT_VERSION.into(),
            project: config.project.clone(),
            env: config.env.clone(),
            resources,
            lock,
            cluster,
        });
        return Ok(EXIT_OK);
    }
    let mut by_kind: BTreeMap<&str, Vec<(&str, &str)>> = BTreeMap::new();
    for o in actual.resources.values().chain(&actual.duplicates) {
        let kind = o.id.kind().map(|k| k.label()).unwrap_or("unknown");
        by_kind
            .entry(kind)
            .or_default()
            .push((o.id.name(), &o.physical_id));
    }
    let mut out = match config.provider {
        Provider::Aws => format!(
            "{}/{} in {}: {} resources\n",
            config.project,
            config.env,
            config.aws.region,
            actual.len()
        ),
        Provider::Local => format!(
            "{}/{}: provider \"local\", kube context {}\n",
            config.project,
            config.env,
            config.kube_context.as_deref().unwrap_or_default()
        ),
    };
    for (kind, items) in &by_kind {
        out.push_str(&format!("\n{kind} ({})\n", items.len()));
        for (name, id) in items {
            out.push_str(&format!("  {name:<40} {id}\n"));
        }
    }
    let lbs = super::endpoints(actual.resources.values());
    if !lbs.is_empty() {
        out.push_str(&format!("\nload balancers\n{lbs}"));
    }
    if let Some(c) = &cluster {
        out.push_str(&render_cluster(c));
    }
    out.push_str(&match &lock {
        None => "\nlock: free\n".to_string(),
        Some(l) => format!(
            "\nlock: held by {} ({} since {}, id {})\n",
            l.holder, l.command, l.started, l.id
        ),
    });
    printer.data(&out);
    Ok(EXIT_OK)
}

/// Bumped on any incompatible change to `status --output json` (a CI
/// contract; its schema is `schemas/status.schema.json`).
pub const FORMAT_VERSION: &str = "1";

/// An env as `status --output json` shows it: what it owns, its lock and
/// its cluster.
#[derive(Debug, serde::Serialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub(crate) struct Status {
    format_version: String,
    project: String,
    env: String,
    /// Every resource the env owns, duplicates included.
    resources: Vec<StatusResource>,
    /// The env lock, when a command holds it.
    lock: Option<LockInfo>,
    /// The cluster through its API; null with `--phase aws`.
    cluster: Option<ClusterStatus>,
}

/// One owned resource as observed.
#[derive(Debug, serde::Serialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
struct StatusResource {
    address: ResourceId,
    /// The kind's label (`subnet`, `instance` …); null for an address no
    /// kind claims.
    kind: Option<&'static str>,
    /// The AWS (or Kubernetes) id.
    id: String,
    /// As observed: references are physical ids.
    props: Props,
}

/// One workload as `status` shows it.
#[derive(Debug, serde::Serialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
struct Workload {
    name: String,
    namespace: String,
    /// `Deployment` or `DaemonSet`.
    kind: &'static str,
    /// Replicas (a Deployment) or nodes to run on (a DaemonSet).
    desired: i64,
    ready: i64,
    /// The release's tag (services only).
    #[serde(skip_serializing_if = "Option::is_none")]
    tag: Option<String>,
    rolling_out: bool,
}

#[derive(Debug, serde::Serialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
struct ClusterStatus {
    /// The API's URL, or why it was not reached.
    api: String,
    /// Whether the API answered ready.
    healthy: bool,
    /// The project's Deployments.
    services: Vec<Workload>,
    /// Everything else: DNS, the CNI, the cloud controller …
    addons: Vec<Workload>,
}

fn int(v: &serde_json::Value, path: &str) -> i64 {
    v.pointer(path).and_then(|x| x.as_i64()).unwrap_or(0)
}

/// `kubectl rollout status`'s rule, read from one observation.
fn deployment(v: &serde_json::Value) -> Workload {
    let desired = int(v, "/spec/replicas");
    let rolling_out = int(v, "/status/observedGeneration") < int(v, "/metadata/generation")
        || int(v, "/status/updatedReplicas") < desired
        || int(v, "/status/replicas") > int(v, "/status/updatedReplicas")
        || int(v, "/status/availableReplicas") < int(v, "/status/updatedReplicas");
    Workload {
        name: v
            .pointer("/metadata/name")
            .and_then(|x| x.as_str())
            .unwrap_or("")
            .into(),
        namespace: v
            .pointer("/metadata/namespace")
            .and_then(|x| x.as_str())
            .unwrap_or("")
            .into(),
        kind: "Deployment",
        desired,
        ready: int(v, "/status/readyReplicas"),
        tag: v
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(crate::model::k8s::TAG_ANNOTATION))
            .and_then(|t| t.as_str())
            .map(str::to_string),
        rolling_out,
    }
}

fn daemon_set(v: &serde_json::Value) -> Workload {
    let desired = int(v, "/status/desiredNumberScheduled");
    Workload {
        name: v
            .pointer("/metadata/name")
            .and_then(|x| x.as_str())
            .unwrap_or("")
            .into(),
        namespace: v
            .pointer("/metadata/namespace")
            .and_then(|x| x.as_str())
            .unwrap_or("")
            .into(),
        kind: "DaemonSet",
        desired,
        ready: int(v, "/status/numberReady"),
        tag: None,
        rolling_out: int(v, "/status/observedGeneration") < int(v, "/metadata/generation")
            || int(v, "/status/updatedNumberScheduled") < desired,
    }
}

/// A cluster whose API could not be asked; `api` says why.
fn unreachable(api: String) -> ClusterStatus {
    ClusterStatus {
        api,
        healthy: false,
        services: Vec::new(),
        addons: Vec::new(),
    }
}

async fn cluster_status(
    ctx: &Ctx,
    config: &crate::config::Config,
    aws: &crate::providers::aws::Aws,
    actual: &crate::model::Actual,
) -> ClusterStatus {
    let (client, url) =
        match super::cluster_client(aws, config, actual, ctx.api_server.as_deref()).await {
            Ok(Some(c)) => c,
            Ok(None) => return unreachable("not created yet".into()),
            Err(e) => return unreachable(format!("unknown ({e:#})")),
        };
    status_of(config, &client, url).await
}

/// The API's health, the services and the add-ons, from one client.
async fn status_of(
    config: &crate::config::Config,
    client: &crate::providers::k8s::K8s,
    url: String,
) -> ClusterStatus {
    match client.ready().await {
        Ok(true) => {}
        Ok(false) => return unreachable(format!("{url}: not ready")),
        Err(e) => return unreachable(format!("{url}: {}", e.detail())),
    }
    let (deployments, daemon_sets) = futures::join!(
        client.list_with_status(crate::model::Kind::Deployment),
        client.list_with_status(crate::model::Kind::DaemonSet)
    );
    let mut services = Vec::new();
    let mut addons = Vec::new();
    for w in deployments
        .unwrap_or_default()
        .iter()
        .map(deployment)
        .chain(daemon_sets.unwrap_or_default().iter().map(daemon_set))
    {
        if w.namespace == config.project && w.kind == "Deployment" {
            services.push(w);
        } else {
            addons.push(w);
        }
    }
    ClusterStatus {
        api: url,
        healthy: true,
        services,
        addons,
    }
}

fn render_cluster(c: &ClusterStatus) -> String {
    let mut out = format!(
        "\ncluster: API {} ({})\n",
        c.api,
        if c.healthy { "ready" } else { "not reachable" }
    );
    if !c.services.is_empty() {
        out.push_str("\nservices\n");
        for w in &c.services {
            out.push_str(&format!(
                "  {:<20} {}/{} ready  tag {}{}\n",
                w.name,
                w.ready,
                w.desired,
                w.tag.as_deref().unwrap_or("?"),
                if w.rolling_out { "  (rolling out)" } else { "" }
            ));
        }
    }
    if !c.addons.is_empty() {
        out.push_str("\nadd-ons\n");
        for w in &c.addons {
            let state = if w.ready >= w.desired && w.desired > 0 && !w.rolling_out {
                "ready"
            } else {
                "not ready"
            };
            out.push_str(&format!(
                "  {:<56} {}/{} {state}\n",
                format!("{}/{} ({})", w.namespace, w.name, w.kind),
                w.ready,
                w.desired
            ));
        }
    }
    out
}
