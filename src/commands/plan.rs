use anyhow::{Context, Result};

use super::{emit_plan, observe_and_plan_with, Asked, Backend, Ctx};
use crate::cli::PlanArgs;
use crate::error::{EXIT_CHANGES, EXIT_OK};

pub async fn run(ctx: &Ctx, args: PlanArgs) -> Result<u8> {
    let config = ctx.config()?;
    let backend = Backend::for_env(&config).await?;
    let asked = Asked {
        upgrade_image: args.upgrade_image,
        phase: ctx.phase,
        images: args.images.iter().cloned().collect(),
        api_server: ctx.api_server.clone(),
        ..Asked::default()
    };
    let obs = observe_and_plan_with(&backend, &config, &asked).await?;
    emit_plan(&ctx.printer, &obs.plan);
    if let Some(path) = &args.out {
        let text = serde_json::to_string_pretty(&obs.plan)?;
        write_private(path, &(text + "\n"))
            .with_context(|| format!("writing the plan to {}", path.display()))?;
        ctx.printer.info(&format!(
            "Saved the plan to {}; apply it with `scopectl up --plan {}`.",
            path.display(),
            path.display()
        ));
    }
    Ok(if args.detailed_exitcode && !obs.plan.is_empty() {
        EXIT_CHANGES
    } else {
        EXIT_OK
    })
}

/// A plan names the env's resources and policies: readable by its owner
/// only (0600), also when the file was there before.
fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    f.write_all(text.as_bytes())
}
