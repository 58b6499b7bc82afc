use anyhow::Result;

use super::{
    acquire, confirm, emit_plan, lock_info, observe_and_plan_with, owner, Asked, Backend, Ctx,
};
use crate::cli::DownArgs;
use crate::config::Provider;
use crate::desired::Facts;
use crate::error::{UserError, EXIT_OK};
use crate::model::Kind;
use crate::plan::{destroy, fingerprint};
use crate::teardown::{select, teardown, TeardownOptions};
use crate::ui::{Output, StepReporter};

pub async fn run(ctx: &Ctx, args: DownArgs) -> Result<u8> {
    let config = ctx.config()?;
    let printer = &ctx.printer;
    if config.protected && !args.dry_run && args.confirm.as_deref() != Some(config.env.as_str()) {
        if let Some(other) = &args.confirm {
            return Err(UserError::usage(
                format!("--confirm {other} does not match the env `{}`", config.env),
                format!("pass --confirm {}", config.env),
            )
            .into());
        }
        if args.yes || !std::io::stdin().is_terminal() {
            return Err(UserError::usage(
                format!("env `{}` is protected", config.env),
                format!("pass --confirm {} (with --yes) to delete it", config.env),
            )
            .into());
        }
    }
    if config.provider == Provider::Local {
        return down_local(ctx, &config, &args).await;
    }
    let backend = Backend::for_env(&config).await?;
    let Backend::Aws(aws) = &backend else {
        unreachable!("an AWS env's backend is AWS")
    };
    let pki_kinds = vec![Kind::Ca, Kind::Certificate, Kind::KeyPair, Kind::Token];
    let opts = TeardownOptions {
        deadline: args.timeout.into(),
        last: pki_kinds.clone(),
        keep: if args.keep_pki { pki_kinds } else { Vec::new() },
        ..TeardownOptions::default()
    };
    // The plan shown is everything that goes, the PKI too (it goes last).
    let actual = select(
        crate::teardown::Inventory::inventory(aws).await?,
        &TeardownOptions {
            last: Vec::new(),
            ..opts.clone()
        },
    );
    let plan = destroy(
        &config.project,
        &config.env,
        &actual,
        fingerprint(&Facts::default(), &actual),
    );
    if !show_and_confirm(
        ctx,
        &config,
        &args,
        &plan,
        args.dry_run || plan.is_empty(),
        ("owns no resources", "owns"),
    )? {
        return Ok(EXIT_OK);
    }

    let info = lock_info("down");
    acquire(&backend, &info, printer).await?;
    if ctx.phase.cluster() {
        release_cluster_load_balancers(ctx, &config, aws, &actual).await;
    }
    let reporter = StepReporter::new(printer.stderr_is_tty(), printer.quiet);
    let owner = owner(&config);
    // A signal lets the wave in flight finish, then stops.
    let result = match teardown(&owner, aws, Some(actual), &reporter, &opts).await {
        Err(crate::teardown::TeardownError::Stopped { remaining, .. }) => {
            Err(crate::cancel::interrupted(
                &format!("{} resources remain; the lock is released", remaining.len()),
                "run `scopectl down` again; it finds what is left by its tags",
            )
            .into())
        }
        r => r.map_err(anyhow::Error::from),
    };
    let released = backend.unlock(&info.id).await;
    let outcome = result?;
    released?;
    if printer.output == Output::Json {
        printer.json(&super::outputs::TornDown {
            format_version: super::outputs::FORMAT_VERSION.into(),
            project: config.project.clone(),
            env: config.env.clone(),
            deleted: outcome.deleted,
            waves: outcome.waves,
            elapsed_seconds: super::outputs::seconds(outcome.elapsed),
        });
    }
    printer.info(&format!(
        "Teardown complete: {} deleted in {} wave{}, {:.1}s.",
        outcome.deleted,
        outcome.waves,
        if outcome.waves == 1 { "" } else { "s" },
        outcome.elapsed.as_secs_f64()
    ));
    Ok(EXIT_OK)
}

use std::io::IsTerminal;

/// When the API answers, deletes its Services of type LoadBalancer first, so
/// the cloud controller removes their load balancers and groups itself. An
/// API that does not answer never blocks or fails `down`: those balancers
/// are found by their cluster tag and deleted with the rest.
async fn release_cluster_load_balancers(
    ctx: &Ctx,
    config: &crate::config::Config,
    aws: &crate::providers::aws::Aws,
    actual: &crate::model::Actual,
) {
    let printer = &ctx.printer;
    let client = match super::cluster_client(aws, config, actual, ctx.api_server.as_deref()).await {
        Ok(Some((client, _))) => client,
        _ => return,
    };
    if !client.ready().await.unwrap_or(false) {
        printer.info(
            "The Kubernetes API does not answer: its load balancers are deleted by their tags.",
        );
        return;
    }
    match client
        .delete_load_balancer_services(std::time::Duration::from_secs(120))
        .await
    {
        Ok(0) => {}
        Ok(n) => printer.info(&format!(
            "Deleted {n} LoadBalancer Service{} through the API first.",
            if n == 1 { "" } else { "s" }
        )),
        Err(e) => printer.info(&format!(
            "warning: could not delete the LoadBalancer Services through the API ({}); their load balancers are deleted by their tags",
            e.detail()
        )),
    }
}

/// `down` of a local env: every object scopectl applied to the cluster (its
/// inventory), in kapp's reverse order, then the inventory and the release
/// records; the cluster itself is the developer's and stays.
async fn down_local(ctx: &Ctx, config: &crate::config::Config, args: &DownArgs) -> Result<u8> {
    let printer = &ctx.printer;
    let backend = Backend::for_env(config).await?;
    let Backend::Local(client) = &backend else {
        unreachable!("a local env's backend is its cluster")
    };
    // Nothing desired: the plan deletes what the inventory lists.
    let obs = observe_and_plan_with(
        &backend,
        config,
        &Asked {
            phase: crate::cli::Phase::Cluster,
            ..Asked::default()
        },
    )
    .await?;
    let state = obs.actual.cluster.clone().unwrap_or_default();
    let plan = destroy_cluster(config, &obs.actual)?;
    let history = client.releases().await.unwrap_or_default();
    let nothing = plan.is_empty() && history.is_empty() && !state.inventory_exists;
    if !show_and_confirm(
        ctx,
        config,
        args,
        &plan,
        args.dry_run || nothing,
        ("has no objects in the cluster", "made in the cluster"),
    )? {
        return Ok(EXIT_OK);
    }
    let started = std::time::Instant::now();
    let info = lock_info("down");
    acquire(&backend, &info, printer).await?;
    let result = async {
        let ids = obs
            .actual
            .resources
            .iter()
            .map(|(k, v)| (k.clone(), v.physical_id.clone()))
            .collect();
        let reporter = StepReporter::new(printer.stderr_is_tty(), printer.quiet);
        let outcome = super::up::cluster_phase(
            client,
            &plan,
            &state,
            ids,
            &reporter,
            &crate::apply::Options::default(),
            &|| {
                UserError::failed(
                    "interrupted: some objects may remain",
                    "run `scopectl down` again; it finds what is left by the inventory",
                )
                .into()
            },
        )
        .await?;
        if let Some(first) = outcome.failures.first() {
            return Err(anyhow::Error::new(first.clone()));
        }
        // Deleted is not gone: a namespace stays Terminating while its
        // controller empties it, a pod for its grace period. `down` ends
        // when the API no longer has them (and what an earlier run left
        // terminating).
        let mut deleted: Vec<(crate::model::ResourceId, String)> = plan
            .changes
            .iter()
            .filter(|c| c.action == crate::plan::Action::Delete)
            .map(|c| {
                let uid = obs
                    .actual
                    .resources
                    .get(&c.address)
                    .map(|o| o.physical_id.clone())
                    .unwrap_or_default();
                (c.address.clone(), uid)
            })
            .collect();
        deleted.extend(state.terminating.iter().cloned());
        super::wait::gone(
            printer,
            client,
            &deleted,
            started + *args.timeout,
            *args.timeout,
            &format!(
                "what holds them is named above (a finalizer nobody removes stays for good: see `kubectl --context {} get namespace NAME -o yaml`); `scopectl down` again waits again",
                config.kube_context.as_deref().unwrap_or("CONTEXT")
            ),
        )
        .await?;
        // Objects kept from the prune (`scopectl.io/prune: disabled`) stay
        // listed: a later `down` still knows them.
        let kept = state.inventory.iter().any(|id| {
            obs.actual.resources.contains_key(id)
                && !plan
                    .changes
                    .iter()
                    .any(|c| &c.address == id && c.action == crate::plan::Action::Delete)
        });
        if !kept {
            client.delete_inventory().await?;
        }
        client.prune_releases(&history, 0).await?;
        anyhow::Ok(outcome.deleted)
    }
    .await;
    let released = backend.unlock(&info.id).await;
    let deleted = result?;
    released?;
    let elapsed = started.elapsed().as_secs_f64();
    if printer.output == Output::Json {
        printer.json(&super::outputs::TornDown {
            format_version: super::outputs::FORMAT_VERSION.into(),
            project: config.project.clone(),
            env: config.env.clone(),
            deleted,
            waves: 1,
            elapsed_seconds: super::outputs::seconds(started.elapsed()),
        });
    }
    printer.info(&format!(
        "Teardown complete: {deleted} objects deleted from the cluster in {elapsed:.1}s."
    ));
    Ok(EXIT_OK)
}

/// The plan of a local env's `down`: a delete of every object the
/// inventory lists (the planner's prune, with nothing desired).
fn destroy_cluster(
    config: &crate::config::Config,
    actual: &crate::model::Actual,
) -> Result<crate::plan::Plan> {
    Ok(crate::plan::plan(
        &config.project,
        &config.env,
        &crate::model::Desired::default(),
        actual,
        fingerprint(&Facts::default(), actual),
    )?)
}

/// Shows what `down` deletes and asks (a protected env by its name). False
/// when it stops there: `stop` (a dry run, nothing to delete) or nothing
/// to delete. `words`: "<env> {0}" for nothing, "everything <env> {1}".
fn show_and_confirm(
    ctx: &Ctx,
    config: &crate::config::Config,
    args: &DownArgs,
    plan: &crate::plan::Plan,
    stop: bool,
    words: (&str, &str),
) -> Result<bool> {
    let printer = &ctx.printer;
    if stop {
        if plan.is_empty() && printer.output == Output::Human {
            printer.data(&format!(
                "Nothing to delete: {}/{} {}.\n",
                config.project, config.env, words.0
            ));
        } else {
            emit_plan(printer, plan);
        }
        return Ok(false);
    }
    if printer.output == Output::Human {
        emit_plan(printer, plan);
    }
    if config.protected && args.confirm.is_none() {
        confirm(
            &format!("Env `{}` is protected.", config.env),
            &config.env,
            "--confirm ENV --yes",
        )?;
    } else if !args.yes {
        confirm(
            &format!(
                "Delete everything {}/{} {}?",
                config.project, config.env, words.1
            ),
            "yes",
            "--yes",
        )?;
    }
    Ok(true)
}
