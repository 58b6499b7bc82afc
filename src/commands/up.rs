use std::io::IsTerminal;
use std::time::Instant;

use anyhow::{Context, Result};

use super::{acquire, confirm, emit_plan, lock_info, observe_and_plan_with, Asked, Backend, Ctx};
use crate::apply::{execute, Options};
use crate::cli::UpArgs;
use crate::desired::Rotation;
use crate::error::{UserError, EXIT_OK};
use crate::plan::{Action, Plan, FORMAT_VERSION};
use crate::ui::{Output, StepReporter};

/// AWS lists a resource made a moment ago only after a while (tag-filtered
/// Describe calls are eventually consistent). Waits, bounded, until every
/// resource this run made is listed, so that the next plan (or the next
/// run's look for what exists) sees them instead of planning them again.
async fn await_listed(
    aws: &crate::providers::aws::Aws,
    plan: &Plan,
    outcome: &crate::apply::Outcome,
    printer: &crate::ui::Printer,
) -> Option<crate::model::Actual> {
    let made: Vec<(&crate::model::ResourceId, &String)> = plan
        .changes
        .iter()
        .filter(|c| matches!(c.action, Action::Create | Action::Replace))
        .filter_map(|c| outcome.ids.get(&c.address).map(|p| (&c.address, p)))
        .collect();
    if made.is_empty() {
        return None;
    }
    let timing = crate::timing::Timing::current();
    let mut delay = timing.min_delay;
    let mut missing = made.len();
    for _ in 0..8 {
        let Ok(actual) = aws.observe().await else {
            return None;
        };
        missing = made
            .iter()
            .filter(|(a, p)| actual.physical(a) != Some(p.as_str()))
            .count();
        if missing == 0 {
            return Some(actual);
        }
        tokio::time::sleep(delay).await;
        delay = timing.next(delay);
    }
    printer.info(&format!(
        "note: AWS does not list {missing} of the resources this run made yet; a plan made right now may not show them"
    ));
    None
}

/// Replacing the only master takes the API down until its replacement is up
/// (etcd comes back from its volume): only when asked for by name.
fn control_plane_guard(plan: &Plan, config: &crate::config::Config, args: &UpArgs) -> Result<()> {
    if args.allow_control_plane_replace || config.cluster.masters.count > 1 {
        return Ok(());
    }
    let Some(c) = plan.changes.iter().find(|c| c.control_plane) else {
        return Ok(());
    };
    Err(UserError::usage(
        format!(
            "this plan {} {}, part of the only master's control plane: the API is down until the new one is up",
            match c.action {
                Action::Delete => "deletes",
                _ => "replaces",
            },
            c.address
        ),
        "review the plan (`scopectl plan`); pass --allow-control-plane-replace to go ahead (etcd is snapshotted first and comes back from its volume), or run three masters",
    )
    .into())
}

/// Every address of a saved plan names a kind scopectl knows.
fn check_addresses(plan: &Plan) -> Result<()> {
    if let Some(c) = plan.changes.iter().find(|c| c.address.kind().is_none()) {
        return Err(UserError::usage(
            format!("the saved plan has an unknown address `{}`", c.address),
            "make a new plan with `scopectl plan --out FILE`; a saved plan is applied exactly as made, never edited",
        )
        .into());
    }
    Ok(())
}

/// A saved plan is applied only if it is exactly what this config and AWS
/// (observed now, by this env's tags) lead to: reality changed since is
/// stale (exit 1); a change that the fresh plan does not have (an edited
/// file, a delete pointed at something not this env's) is refused (exit 64).
fn check_saved(saved: &Plan, fresh: &Plan) -> Result<()> {
    if saved.fingerprint != fresh.fingerprint {
        return Err(UserError::failed(
            "the saved plan is stale: AWS changed since it was made",
            "make a new plan with `scopectl plan --out FILE` and review it again",
        )
        .into());
    }
    // Each change as the JSON the file holds, computed once per side.
    let json = |p: &Plan| -> Vec<serde_json::Value> {
        p.changes
            .iter()
            .map(|c| serde_json::to_value(c).unwrap_or_default())
            .collect()
    };
    let (mine, theirs) = (json(saved), json(fresh));
    let differs = saved
        .changes
        .iter()
        .zip(&mine)
        .find(|(_, j)| !theirs.contains(j))
        .map(|(c, _)| (c.address.clone(), c.action))
        .or_else(|| {
            fresh
                .changes
                .iter()
                .zip(&theirs)
                .find(|(_, j)| !mine.contains(j))
                .map(|(f, _)| (f.address.clone(), f.action))
        });
    if let Some((address, action)) = differs {
        return Err(UserError::usage(
            format!(
                "the saved plan does not match this config and what this env owns: its {} of {address} is not what scopectl plans now",
                match action {
                    Action::Create => "create",
                    Action::Update => "update",
                    Action::Replace => "replacement",
                    Action::Delete => "delete",
                }
            ),
            "make a new plan with `scopectl plan --out FILE` (with the same config and flags); a saved plan is applied exactly as made, never edited",
        )
        .into());
    }
    Ok(())
}

fn asked_by(ctx: &Ctx, plan: &Plan, rotation: Rotation) -> Asked {
    Asked {
        rotation,
        upgrade_image: plan.options.upgrade_image,
        phase: plan.options.phase,
        images: plan.options.images.clone(),
        api_server: ctx.api_server.clone(),
        read_secrets: true,
    }
}

fn asked(ctx: &Ctx, args: &UpArgs, rotation: Rotation) -> Asked {
    Asked {
        rotation,
        upgrade_image: args.upgrade_image,
        phase: ctx.phase,
        images: args.images.iter().cloned().collect(),
        api_server: ctx.api_server.clone(),
        read_secrets: true,
    }
}

/// The plan's changes of one layer (AWS, or the cluster's objects).
fn layer(plan: &Plan, k8s: bool) -> Plan {
    let mut out = plan.clone();
    out.changes
        .retain(|c| c.address.kind().is_some_and(|k| k.is_k8s()) == k8s);
    out
}

/// Inventory entries that name nothing there is or will be: listed, yet
/// neither observed (by this env's labels) nor applied by `plan`. A run
/// stopped between a prune's deletes and the inventory written behind them
/// leaves them; the next cluster phase drops them from the inventory (the
/// plan, with nothing left to delete, has no change for them).
fn forgotten(
    inventory: &std::collections::BTreeSet<crate::model::ResourceId>,
    observed: impl Fn(&crate::model::ResourceId) -> bool,
    plan: &Plan,
) -> std::collections::BTreeSet<crate::model::ResourceId> {
    inventory
        .iter()
        .filter(|id| !observed(id))
        .filter(|id| {
            !plan
                .changes
                .iter()
                .any(|c| &c.address == *id && c.action != Action::Delete)
        })
        .cloned()
        .collect()
}

/// Whether the observed cluster's inventory lists objects that are gone.
fn inventory_stale(obs: &super::Observation) -> bool {
    obs.actual.cluster.as_ref().is_some_and(|c| {
        !forgotten(
            &c.inventory,
            |id| obs.actual.resources.contains_key(id),
            &obs.plan,
        )
        .is_empty()
    })
}

/// Waits, bounded, for the API's `/readyz` through its endpoint with the
/// admin certificate from the state store; returns a client for it.
async fn wait_for_api(
    ctx: &Ctx,
    config: &crate::config::Config,
    aws: &crate::providers::aws::Aws,
    timeout: std::time::Duration,
) -> Result<()> {
    let printer = &ctx.printer;
    let started = Instant::now();
    let mut last_report = Instant::now();
    let mut said = String::new();
    let poll = crate::timing::Timing::current()
        .max_delay
        .min(std::time::Duration::from_secs(2));
    loop {
        let mut actual = crate::model::Actual::default();
        for o in aws.load_balancers().await.unwrap_or_default() {
            actual.insert(o);
        }
        let state =
            match super::cluster_client(aws, config, &actual, ctx.api_server.as_deref()).await {
                Ok(Some((client, url))) => match client.ready().await {
                    Ok(true) => return Ok(()),
                    Ok(false) => format!("{url}: not ready yet"),
                    // No answer at all: the masters are still booting.
                    Err(e) if e.code.is_none() && e.kind == crate::apply::ErrorKind::Transient => {
                        match &e.cause {
                            Some(c) => format!("{url}: not answering yet ({c})"),
                            None => format!("{url}: not answering yet"),
                        }
                    }
                    Err(e) => format!("{url}: {}", e.detail()),
                },
                Ok(None) => "no API address or admin certificate yet".to_string(),
                Err(e) => format!("{e:#}"),
            };
        if started.elapsed() >= timeout {
            // The next look is at master-0's boot (cloud-init, kubeadm):
            // name the instance when it can be read.
            let console = match aws.instance_id("master-0").await {
                Some(id) => format!("aws ec2 get-console-output --instance-id {id} --latest --output text"),
                None => "aws ec2 get-console-output --instance-id <master-0's id> --latest --output text".into(),
            };
            let env = &config.env;
            return Err(anyhow::anyhow!("last seen: {state}").context(UserError::failed(
                format!(
                    "the Kubernetes API did not become ready within {}",
                    humantime::format_duration(timeout)
                ),
                format!(
                    "the machines are up; see what answers with `scopectl status --env {env}`, read master-0's boot with `{console}`, then run `scopectl up --env {env}` again to apply the cluster phase"
                ),
            )));
        }
        if said.is_empty() || last_report.elapsed() >= std::time::Duration::from_secs(15) {
            printer.info(&format!(
                "Waiting for the Kubernetes API ({state}; {}s of at most {})",
                started.elapsed().as_secs(),
                humantime::format_duration(timeout)
            ));
            said = state;
            last_report = Instant::now();
        }
        tokio::time::sleep(poll).await;
    }
}

pub async fn run(ctx: &Ctx, args: UpArgs) -> Result<u8> {
    apply(ctx, args, Rotation::default()).await
}

/// `up`, or `pki rotate` (the same run with a rotation asked for).
pub async fn apply(ctx: &Ctx, args: UpArgs, rotation: Rotation) -> Result<u8> {
    let started = Instant::now();
    let config = ctx.config()?;
    let printer = &ctx.printer;
    let saved: Option<Plan> = match &args.plan {
        None => None,
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading the plan {}", path.display()))?;
            let plan: Plan = serde_json::from_str(&text)
                .with_context(|| format!("{} is not a scopectl plan", path.display()))?;
            if plan.format_version != FORMAT_VERSION {
                return Err(UserError::usage(
                    format!(
                        "the plan has format version {}, this scopectl reads {FORMAT_VERSION}",
                        plan.format_version
                    ),
                    "make the plan with the same scopectl version that applies it",
                )
                .into());
            }
            if (plan.project.as_str(), plan.env.as_str())
                != (config.project.as_str(), config.env.as_str())
            {
                return Err(UserError::usage(
                    format!(
                        "the plan is for {}/{}, not {}/{}",
                        plan.project, plan.env, config.project, config.env
                    ),
                    "pass the --env the plan was made for",
                )
                .into());
            }
            Some(plan)
        }
    };
    if let Some(plan) = &saved {
        check_addresses(plan)?;
        control_plane_guard(plan, &config, &args)?;
    }
    let backend = Backend::for_env(&config).await?;

    // A first look without the lock: an env that is up to date needs no
    // write at all, and a saved plan that reality or an edit contradicts is
    // refused before any write (the lock is one).
    if let Some(plan) = &saved {
        let first =
            observe_and_plan_with(&backend, &config, &asked_by(ctx, plan, rotation)).await?;
        check_saved(plan, &first.plan)?;
    } else {
        let first = observe_and_plan_with(&backend, &config, &asked(ctx, &args, rotation)).await?;
        if first.plan.is_empty() && !inventory_stale(&first) {
            emit_plan(printer, &first.plan);
            return Ok(EXIT_OK);
        }
        if let Err(e) = control_plane_guard(&first.plan, &config, &args) {
            if printer.output == Output::Human {
                emit_plan(printer, &first.plan);
            }
            return Err(e);
        }
        // Refuse before taking the lock: a refused run writes nothing.
        if !args.yes && !std::io::stdin().is_terminal() {
            if printer.output == Output::Human {
                emit_plan(printer, &first.plan);
            }
            confirm("", "yes", "--yes")?;
        }
    }

    let info = lock_info(if rotation == Rotation::default() {
        "up"
    } else {
        "pki rotate"
    });
    acquire(&backend, &info, printer).await?;
    let result = locked(ctx, &config, &backend, &args, saved, started, rotation).await;
    let released = backend.unlock(&info.id).await;
    let code = result?;
    released.context("releasing the env lock")?;
    Ok(code)
}

async fn locked(
    ctx: &Ctx,
    config: &crate::config::Config,
    backend: &Backend,
    args: &UpArgs,
    saved: Option<Plan>,
    started: Instant,
    rotation: Rotation,
) -> Result<u8> {
    let printer = &ctx.printer;
    let asked = match &saved {
        Some(plan) => asked_by(ctx, plan, rotation),
        None => asked(ctx, args, rotation),
    };
    let aws = backend.aws();
    let obs = observe_and_plan_with(backend, config, &asked).await?;
    let plan = match saved {
        Some(saved) => {
            // Again under the lock: the first look was before it.
            check_saved(&saved, &obs.plan)?;
            saved
        }
        None => {
            if obs.plan.is_empty() && !inventory_stale(&obs) {
                emit_plan(printer, &obs.plan);
                let lbs = super::endpoints(obs.actual.resources.values());
                if !lbs.is_empty() && printer.output == Output::Human {
                    printer.info(&format!("Load balancers:\n{}", lbs.trim_end()));
                }
                let access = super::local_access(config);
                if printer.output == Output::Human && !access.is_empty() {
                    printer.info(&access);
                }
                return Ok(EXIT_OK);
            }
            control_plane_guard(&obs.plan, config, args)?;
            if printer.output == Output::Human {
                emit_plan(printer, &obs.plan);
            }
            if !args.yes {
                confirm(
                    &format!("Apply these changes to {}/{}?", config.project, config.env),
                    "yes",
                    "--yes",
                )?;
            }
            obs.plan.clone()
        }
    };
    let ids: std::collections::BTreeMap<_, _> = obs
        .actual
        .resources
        .iter()
        .map(|(k, v)| (k.clone(), v.physical_id.clone()))
        .collect();
    let reporter = StepReporter::new(printer.stderr_is_tty(), printer.quiet);
    let opts = Options {
        concurrency: usize::from(args.parallelism),
        ..Options::default()
    };
    let interrupted = || -> anyhow::Error {
        crate::cancel::interrupted(
            "the steps in flight finished, no other began, and the lock is released",
            "run `scopectl up` again; it picks up where this run stopped",
        )
        .into()
    };

    // The AWS phase.
    let aws_plan = layer(&plan, false);
    let mut outcome = crate::apply::Outcome::default();
    // What AWS lists once it lists everything this run made.
    let mut listed = None;
    if let (false, Some(aws)) = (aws_plan.is_empty(), aws) {
        // A signal lets the steps in flight finish and starts no other.
        outcome = execute(&aws_plan, ids.clone(), aws, &reporter, &opts).await;
        if crate::cancel::requested() {
            return Err(interrupted());
        }
        if outcome.failures.is_empty() {
            listed = await_listed(aws, &aws_plan, &outcome, printer).await;
        }
    }

    // The cluster phase: once the API answers, the cluster's objects as
    // planned (or, when the API did not answer before, as planned now).
    let mut k8s_plan = layer(&plan, true);
    // The client the wait for a working cluster reads through.
    let mut working: Option<crate::providers::k8s::K8s> = obs.k8s.clone();
    if outcome.failures.is_empty()
        && asked.phase.cluster()
        && (!k8s_plan.is_empty() || obs.actual.cluster.is_none() || inventory_stale(&obs))
    {
        let (client, state, k8s_ids) = match (obs.k8s, &obs.actual.cluster) {
            (Some(client), Some(state)) => (client, state.clone(), ids),
            _ => {
                // A local cluster answered when observed, or it is an error.
                let Some(aws) = aws else {
                    return Err(UserError::failed(
                        "the cluster stopped answering",
                        "run `scopectl up` again",
                    )
                    .into());
                };
                crate::cancel::or_stopped(
                    wait_for_api(ctx, config, aws, *args.timeout),
                    "the AWS phase was applied; the cluster's objects were not, and the lock is released",
                    "run `scopectl up` again once the masters have booted",
                )
                .await?;
                let again = Asked {
                    phase: crate::cli::Phase::Cluster,
                    ..asked.clone()
                };
                let now = observe_and_plan_with(backend, config, &again).await?;
                let (Some(client), Some(state)) = (now.k8s, now.actual.cluster.clone()) else {
                    return Err(UserError::failed(
                        "the Kubernetes API answered /readyz, then not",
                        "run `scopectl up` again",
                    )
                    .into());
                };
                k8s_plan = now.plan;
                if printer.output == Output::Human && !k8s_plan.is_empty() {
                    printer.info("The API is up; the cluster phase:");
                    emit_plan(printer, &k8s_plan);
                }
                let ids = now
                    .actual
                    .resources
                    .iter()
                    .map(|(k, v)| (k.clone(), v.physical_id.clone()))
                    .collect();
                (client, state, ids)
            }
        };
        working = Some(client.clone());
        // What an earlier `down` or delete left terminating is waited out
        // before it is made again (a Terminating namespace refuses new
        // content).
        if !state.terminating.is_empty() {
            let names: Vec<String> = state
                .terminating
                .iter()
                .map(|(id, _)| id.to_string())
                .collect();
            printer.info(&format!(
                "Being deleted (an earlier down or delete): {}; waiting for it to be gone before making it again",
                names.join(", ")
            ));
            crate::cancel::or_stopped(
                super::wait::gone(
                    printer,
                    &client,
                    &state.terminating,
                    started + *args.timeout,
                    *args.timeout,
                    "what holds them is named above; run `scopectl up` again once they are gone",
                ),
                "nothing of the cluster was applied, and the lock is released",
                "run `scopectl up` again",
            )
            .await?;
        }
        let stale =
            !forgotten(&state.inventory, |id| k8s_ids.contains_key(id), &k8s_plan).is_empty();
        if !k8s_plan.is_empty() || stale {
            let k8s_outcome = cluster_phase(
                &client,
                &k8s_plan,
                &state,
                k8s_ids,
                &reporter,
                &opts,
                &interrupted,
            )
            .await?;
            outcome.created += k8s_outcome.created;
            outcome.updated += k8s_outcome.updated;
            outcome.deleted += k8s_outcome.deleted;
            outcome.found += k8s_outcome.found;
            outcome.skipped += k8s_outcome.skipped;
            outcome.failures.extend(k8s_outcome.failures);
        }
    }
    let plan = Plan {
        changes: aws_plan
            .changes
            .into_iter()
            .chain(k8s_plan.changes)
            .collect(),
        ..plan
    };
    let elapsed = started.elapsed().as_secs_f64();
    if printer.output == Output::Json {
        printer.json(&super::outputs::Applied {
            format_version: super::outputs::FORMAT_VERSION.into(),
            project: config.project.clone(),
            env: config.env.clone(),
            created: outcome.created,
            found: outcome.found,
            updated: outcome.updated,
            deleted: outcome.deleted,
            failed: outcome.failures.len(),
            skipped: outcome.skipped,
            elapsed_seconds: super::outputs::seconds(started.elapsed()),
        });
    }
    if let Some(first) = outcome.failures.first() {
        // The first failure is the error: its object, phase and cause; the
        // count goes around it when there were more.
        let mut first = first.clone();
        if first.hint.is_none() {
            first.hint =
                Some("fix the cause and run `scopectl up` again; finished steps are kept".into());
        }
        let n = outcome.failures.len();
        let err = anyhow::Error::new(first);
        return Err(if n > 1 {
            err.context(format!(
                "{n} of {} changes failed; the first:",
                plan.changes.len()
            ))
        } else {
            err
        });
    }
    // A working cluster, not only applied objects: every instance a Ready
    // Node, every add-on and service rolled out.
    if let (false, true, Some(client)) = (args.no_wait, asked.phase.cluster(), &working) {
        let expected = super::wait::expected_nodes(aws).await?;
        let workloads = super::wait::workloads(&obs.desired, &config.project);
        let deadline = started + *args.timeout;
        crate::cancel::or_stopped(
            super::wait::working_cluster(
                printer,
                client,
                aws,
                (&expected, &workloads),
                deadline,
                *args.timeout,
                &config.env,
            ),
            "everything was applied; the wait for a working cluster was cut short, and the lock is released",
            &format!("`scopectl --env {} status` shows the cluster's state", config.env),
        )
        .await?;
    }
    printer.info(&format!(
        "Apply complete: {} created, {} updated, {} deleted{} in {elapsed:.1}s.",
        outcome.created,
        outcome.updated,
        outcome.deleted,
        if outcome.found > 0 {
            format!(", {} found from an earlier run", outcome.found)
        } else {
            String::new()
        },
    ));
    if printer.output == Output::Human {
        // A new balancer's DNS name exists only once AWS made it: from the
        // listing after the apply, or read again (two calls); otherwise the
        // observation has them.
        let made = plan.changes.iter().any(|c| {
            c.address.kind() == Some(crate::model::Kind::LoadBalancer)
                && matches!(c.action, Action::Create | Action::Replace)
        });
        let lbs = if let (true, Some(listed)) = (made, &listed) {
            // The listing `await_listed` waited for has them: no more calls.
            super::endpoints(listed.resources.values())
        } else if let (true, Some(aws)) = (made, aws) {
            aws.load_balancers()
                .await
                .map(|l| super::endpoints(&l))
                .unwrap_or_default()
        } else {
            super::endpoints(obs.actual.resources.values())
        };
        if !lbs.is_empty() {
            printer.info(&format!("Load balancers:\n{}", lbs.trim_end()));
        }
        let access = super::local_access(config);
        if !access.is_empty() {
            printer.info(&access);
        }
    }
    Ok(EXIT_OK)
}

/// Applies the cluster's objects, keeping the inventory of what scopectl
/// applied ahead of the applies (a crash never leaves an object it does not
/// list) and behind the deletes (an object is unlisted once it is gone;
/// what a crash left listed after its delete is dropped by the next run,
/// see [`forgotten`]).
pub(super) async fn cluster_phase(
    client: &crate::providers::k8s::K8s,
    plan: &Plan,
    state: &crate::model::ClusterState,
    ids: std::collections::BTreeMap<crate::model::ResourceId, String>,
    reporter: &StepReporter,
    opts: &Options,
    interrupted: &dyn Fn() -> anyhow::Error,
) -> Result<crate::apply::Outcome> {
    use std::collections::BTreeSet;
    let applied: BTreeSet<crate::model::ResourceId> = plan
        .changes
        .iter()
        .filter(|c| c.action != Action::Delete)
        .map(|c| c.address.clone())
        .collect();
    // What is listed but gone is dropped here: it is no longer observed,
    // so no delete in this plan would drop it behind.
    let gone = forgotten(&state.inventory, |id| ids.contains_key(id), plan);
    let ahead: BTreeSet<_> = state
        .inventory
        .difference(&gone)
        .cloned()
        .collect::<BTreeSet<_>>()
        .union(&applied)
        .cloned()
        .collect();
    if !state.inventory_exists || ahead != state.inventory {
        client
            .write_inventory(&ahead)
            .await
            .map_err(anyhow::Error::new)
            .context("recording what scopectl applies (the inventory)")?;
    }
    // A signal lets the steps in flight finish and starts no other; the
    // inventory below still records what was applied.
    let outcome = execute(plan, ids, client, reporter, opts).await;
    let failed: BTreeSet<&crate::model::ResourceId> = outcome
        .failures
        .iter()
        .filter_map(|f| f.object.as_ref().map(|o| &o.address))
        .collect();
    let deleted: BTreeSet<_> = plan
        .changes
        .iter()
        .filter(|c| c.action == Action::Delete && !failed.contains(&c.address))
        .map(|c| c.address.clone())
        .collect();
    let behind: BTreeSet<_> = ahead.difference(&deleted).cloned().collect();
    if behind != ahead {
        client
            .write_inventory(&behind)
            .await
            .map_err(anyhow::Error::new)
            .context("recording what scopectl applies (the inventory)")?;
    }
    if crate::cancel::requested() {
        return Err(interrupted());
    }
    Ok(outcome)
}
