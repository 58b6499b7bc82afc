use anyhow::Result;

use super::{Backend, Ctx};
use crate::cli::UnlockArgs;
use crate::error::EXIT_OK;

pub async fn run(ctx: &Ctx, args: UnlockArgs) -> Result<u8> {
    let config = ctx.config()?;
    // A local env's lock is a Lease in its cluster.
    Backend::for_env(&config)
        .await?
        .unlock(&args.lock_id)
        .await?;
    ctx.printer.info(&format!(
        "Released lock {} on {}/{}.",
        args.lock_id, config.project, config.env
    ));
    Ok(EXIT_OK)
}
