use anyhow::Result;

use super::{acquire, confirm, connect, emit_plan, lock_info, owner, Ctx};
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
        printer.info(&format!(
            "env {} uses provider \"local\": there are no AWS resources to delete.",
            config.env
        ));
        return Ok(EXIT_OK);
    }
    let aws = connect(&config).await;
    let pki_kinds = vec![Kind::Ca, Kind::Certificate, Kind::KeyPair, Kind::Token];
    let opts = TeardownOptions {
        deadline: args.timeout.into(),
        last: pki_kinds.clone(),
        keep: if args.keep_pki { pki_kinds } else { Vec::new() },
        ..TeardownOptions::default()
    };
    // The plan shown is everything that goes, the PKI too (it goes last).
    let actual = select(
        crate::teardown::Inventory::inventory(&aws).await?,
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
    if args.dry_run || plan.is_empty() {
        if plan.is_empty() && printer.output == Output::Human {
            printer.data(&format!(
                "Nothing to delete: {}/{} owns no resources.\n",
                config.project, config.env
            ));
        } else {
            emit_plan(printer, &plan);
        }
        return Ok(EXIT_OK);
    }
    if printer.output == Output::Human {
        emit_plan(printer, &plan);
    }
    if config.protected && args.confirm.is_none() {
        confirm(
            &format!("Env `{}` is protected.", config.env),
            &config.env,
            "--confirm ENV --yes",
        )?;
    } else if !args.yes {
        confirm(
            &format!("Delete everything {}/{} owns?", config.project, config.env),
            "yes",
            "--yes",
        )?;
    }

    let info = lock_info("down");
    acquire(&aws, &info, printer).await?;
    if ctx.phase.cluster() {
        release_cluster_load_balancers(ctx, &config, &aws, &actual).await;
    }
    let reporter = StepReporter::new(printer.stderr_is_tty(), printer.quiet);
    let owner = owner(&config);
    let result = tokio::select! {
        r = teardown(&owner, &aws, Some(actual), &reporter, &opts) => r.map_err(anyhow::Error::from),
        _ = tokio::signal::ctrl_c() => Err(UserError::failed(
            "interrupted: some resources may remain",
            "run `scopectl down` again; it finds what is left by its tags",
        ).into()),
    };
    let released = aws.unlock(&info.id).await;
    let outcome = result?;
    released?;
    if printer.output == Output::Json {
        printer.json(&serde_json::json!({
            "project": config.project, "env": config.env, "deleted": outcome.deleted,
            "waves": outcome.waves, "elapsed_seconds": (outcome.elapsed.as_secs_f64() * 1000.0).round() / 1000.0,
        }));
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
