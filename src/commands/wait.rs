//! `up`'s last step: wait, bounded, for a working cluster (every instance a
//! Ready Node, every add-on and service rolled out), as kapp and `helm
//! --wait` do, and fail naming what is missing and why.

use std::time::{Duration, Instant};

use anyhow::Result;

use crate::error::UserError;
use crate::health::{self, ExpectedNode, Verdict, Workload};
use crate::model::{Desired, Kind};
use crate::providers::aws::Aws;
use crate::providers::k8s::K8s;
use crate::ui::Printer;

/// The Deployments and DaemonSets of `desired`, each labelled as users know
/// it: a service (the product's namespace) or an add-on.
pub fn workloads(desired: &Desired, project: &str) -> Vec<Workload> {
    desired
        .resources
        .values()
        .filter_map(|r| {
            let kind = match r.kind() {
                Kind::Deployment => "Deployment",
                Kind::DaemonSet => "DaemonSet",
                _ => return None,
            };
            let (ns, name) = crate::model::k8s::namespace_and_name(&r.id);
            let ns = ns.unwrap_or("default");
            let label = if ns == project {
                format!("service {name}")
            } else {
                format!("add-on {name} ({kind} {ns}/{name})")
            };
            Some(Workload {
                kind,
                namespace: ns.to_string(),
                name: name.to_string(),
                label,
            })
        })
        .collect()
}

/// The instances that must be Nodes (AWS envs; a local cluster's nodes are
/// the laptop's).
pub async fn expected_nodes(aws: Option<&Aws>) -> Result<Vec<ExpectedNode>> {
    let Some(aws) = aws else {
        return Ok(Vec::new());
    };
    Ok(aws
        .instances()
        .await?
        .into_iter()
        .map(|(instance, instance_id, node_name)| ExpectedNode {
            instance,
            instance_id,
            node_name,
        })
        .collect())
}

/// How long a workload may stay failing (CrashLoopBackOff,
/// ImagePullBackOff, …) before `up` stops waiting for it: rollout's default
/// `--failure-grace`.
const FAILURE_GRACE: Duration = Duration::from_secs(20);

/// Waits until the cluster works or `deadline` passes; on failure the error
/// names each missing instance (with its console's last lines), add-on and
/// service, and why.
pub async fn working_cluster(
    printer: &Printer,
    client: &K8s,
    aws: Option<&Aws>,
    (expected, workloads): (&[ExpectedNode], &[Workload]),
    deadline: Instant,
    budget: Duration,
    env: &str,
) -> Result<()> {
    let started = Instant::now();
    let poll = crate::timing::Timing::current()
        .max_delay
        .min(Duration::from_secs(2));
    let mut said = String::new();
    let mut last_report = Instant::now();
    let mut failing_since: Option<Instant> = None;
    loop {
        let verdict = match client.health(workloads).await {
            Ok(snap) => health::judge(expected, &snap),
            Err(e) => Verdict {
                missing: vec![health::Missing {
                    what: "the Kubernetes API".into(),
                    why: e.to_string(),
                    failing: false,
                    instance_id: None,
                }],
                ..Verdict::default()
            },
        };
        if verdict.working() {
            printer.info(&format!(
                "The cluster works: {} ({:.0}s).",
                verdict.summary(),
                started.elapsed().as_secs_f64()
            ));
            return Ok(());
        }
        // Only what is failing left (nothing still on its way): past the
        // grace it will not come by itself.
        let only_failing = verdict.missing.iter().all(|m| m.failing);
        failing_since = match (only_failing, failing_since) {
            (true, None) => Some(Instant::now()),
            (true, since) => since,
            (false, _) => None,
        };
        let gave_up = failing_since.is_some_and(|s| s.elapsed() >= FAILURE_GRACE);
        if gave_up || Instant::now() >= deadline {
            return Err(failure(aws, &verdict, gave_up, budget, env).await);
        }
        let summary = verdict.summary();
        if summary != said || last_report.elapsed() >= Duration::from_secs(15) {
            let first = &verdict.missing[0];
            printer.info(&format!(
                "Waiting for a working cluster: {summary} (next: {}: {}; {}s of at most {})",
                first.what,
                first.why,
                started.elapsed().as_secs(),
                humantime::format_duration(budget)
            ));
            said = summary;
            last_report = Instant::now();
        }
        tokio::time::sleep(poll).await;
    }
}

async fn failure(
    aws: Option<&Aws>,
    verdict: &Verdict,
    gave_up: bool,
    budget: Duration,
    env: &str,
) -> anyhow::Error {
    let mut lines = Vec::new();
    for m in &verdict.missing {
        lines.push(format!("{}: {}", m.what, m.why));
        if let (Some(aws), Some(id)) = (aws, &m.instance_id) {
            let tail = aws.console_tail(id, 15).await;
            lines.extend(tail.lines().map(|l| format!("    | {l}")));
        }
    }
    let message = if gave_up {
        "the cluster does not work: what is left fails by itself".to_string()
    } else {
        format!(
            "the cluster did not become ready within {}",
            humantime::format_duration(budget)
        )
    };
    let hint = if verdict.missing.iter().any(|m| m.instance_id.is_some()) {
        format!(
            "an instance that never became a Node did not join: read its boot with `aws ec2 get-console-output --instance-id ID --latest --output text`; then `scopectl up --env {env}` again (nothing is undone)"
        )
    } else {
        format!(
            "see the pods with `scopectl status --env {env}`; a bad image tag is fixed with `scopectl rollout --env {env} SERVICE=TAG`"
        )
    };
    anyhow::anyhow!("{}", lines.join("\n")).context(UserError::failed(message, hint))
}

/// Waits, bounded, until every object of `targets` (address, uid) is gone
/// from the API, as kapp waits for its deletes: a progress line while it
/// waits; at `deadline`, an error naming each one left and why (a
/// namespace's remaining content, finalizers nobody removes).
pub async fn gone(
    printer: &Printer,
    client: &K8s,
    targets: &[(crate::model::ResourceId, String)],
    deadline: Instant,
    budget: Duration,
    hint: &str,
) -> Result<()> {
    let started = Instant::now();
    let poll = crate::timing::Timing::current()
        .max_delay
        .min(Duration::from_millis(500));
    let mut said = String::new();
    let mut last_report = Instant::now();
    loop {
        let left = client.lingering(targets).await?;
        if left.is_empty() {
            return Ok(());
        }
        let summary: Vec<String> = left
            .iter()
            .map(|(id, why)| format!("{id} ({why})"))
            .collect();
        if Instant::now() >= deadline {
            return Err(
                anyhow::anyhow!("{}", summary.join("\n")).context(UserError::failed(
                    format!(
                        "{} deleted object{} still there after {}",
                        left.len(),
                        if left.len() == 1 { " is" } else { "s are" },
                        humantime::format_duration(budget)
                    ),
                    hint.to_string(),
                )),
            );
        }
        let line = summary.join(", ");
        if line != said || last_report.elapsed() >= Duration::from_secs(15) {
            printer.info(&format!(
                "Waiting for {} deleted object{} to be gone: {line} ({}s of at most {})",
                left.len(),
                if left.len() == 1 { "" } else { "s" },
                started.elapsed().as_secs(),
                humantime::format_duration(budget)
            ));
            said = line;
            last_report = Instant::now();
        }
        tokio::time::sleep(poll).await;
    }
}
