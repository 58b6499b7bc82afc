//! `scopectl diff-env A B`: what differs between two envs, service by
//! service; the check before promoting.

use std::collections::BTreeMap;

use anyhow::Result;

use super::{Backend, Ctx};
use crate::cli::DiffEnvArgs;
use crate::config::Config;
use crate::envdiff;
use crate::error::EXIT_OK;
use crate::ui::Output;

pub async fn run(ctx: &Ctx, args: DiffEnvArgs) -> Result<u8> {
    // Both configs first: a config error touches nothing.
    let a = crate::config::load(&ctx.config_path, &args.a)?;
    let b = crate::config::load(&ctx.config_path, &args.b)?;
    let (ta, tb) = if args.offline {
        (Err("--offline".to_string()), Err("--offline".to_string()))
    } else {
        futures::join!(running(ctx, &a), running(ctx, &b))
    };
    let d = envdiff::diff(
        &a.project,
        envdiff::view(&a, ta.as_ref().map_err(String::as_str)),
        envdiff::view(&b, tb.as_ref().map_err(String::as_str)),
    );
    match ctx.printer.output {
        Output::Json => ctx.printer.json(&d),
        Output::Human => ctx.printer.data(&envdiff::render(&d)),
    }
    Ok(EXIT_OK)
}

/// The tags an env's cluster runs; why not, when it cannot be read (then
/// the env shows what a first `up` would deploy).
async fn running(ctx: &Ctx, config: &Config) -> Result<BTreeMap<String, String>, String> {
    let read = async {
        let backend = Backend::for_env(config).await?;
        let k8s = super::rollout::cluster(config, &backend, None, "--api-server").await?;
        super::rollout::running(&k8s, config).await
    };
    read.await.map_err(|e: anyhow::Error| {
        ctx.printer.info(&format!(
            "note: the running tags of {} could not be read ({e}); showing the config's",
            config.env
        ));
        "cluster not reachable".to_string()
    })
}
