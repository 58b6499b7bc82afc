//! `scopectl init`: read an existing database and its VPC (Describe calls
//! only), propose a free range, write a starting config.

use std::io::Write as _;
use std::path::Path;

use anyhow::{Context as _, Result};

use super::Ctx;
use crate::cli::InitArgs;
use crate::config::Placement;
use crate::error::{UserError, EXIT_OK};
use crate::init::{self as scaffold, FIRST_ENV};
use crate::model::Owner;
use crate::providers::aws::Aws;

pub async fn run(ctx: &Ctx, args: InitArgs) -> Result<u8> {
    let out = args.out.clone().unwrap_or_else(|| ctx.config_path.clone());
    // Before any call: a file in the way is a usage error, nothing touched.
    if out.exists() && !args.force {
        return Err(UserError::usage(
            format!("{} already exists", out.display()),
            "pass --force to overwrite it, or --out FILE to write another file",
        )
        .into());
    }
    let region = match args.region.clone() {
        Some(r) => r,
        None => crate::providers::aws::default_region()
            .await
            .ok_or_else(|| {
                UserError::usage(
                    "no AWS region to look in",
                    "pass --region, or set AWS_REGION (or a region in the AWS profile)",
                )
            })?,
    };
    let project = scaffold::project_name(&args.database)
        .or_else(|| {
            std::env::current_dir()
                .ok()
                .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
                .and_then(|n| scaffold::project_name(&n))
        })
        .unwrap_or_else(|| "scope".to_string());
    // The owner only tells scopectl's own subnets apart; init counts every
    // subnet as taken.
    let aws = Aws::connect(
        &region,
        None,
        Owner {
            project: project.clone(),
            env: FIRST_ENV.to_string(),
        },
    )
    .await;
    let survey = crate::providers::aws::facts::survey(&aws, &region, &args.database)
        .await
        .with_context(|| format!("reading RDS instance `{}`", args.database))?
        .ok_or_else(|| {
            UserError::failed(
                format!(
                    "RDS instance `{}` was not found in {region}",
                    args.database
                ),
                format!(
                    "check the identifier (`aws rds describe-db-instances --region {region}` lists them) and the region (--region); scopectl adopts an existing database and never creates one"
                ),
            )
        })?;
    let placement: Placement = args.placement.into();
    let proposal = scaffold::decide(&survey, placement, project).map_err(|e| {
        UserError::failed(
            format!("no range to propose for network.cidr: {e}"),
            match placement {
                Placement::BesideDatabase => {
                    "free space in the database VPC (or add a CIDR block to it), or pass --placement peered"
                }
                Placement::Peered => "write network.cidr by hand",
            },
        )
    })?;
    let mut command = format!("scopectl init --database {}", args.database);
    if placement == Placement::Peered {
        command.push_str(" --placement peered");
    }
    let text = scaffold::render(&survey, &proposal, &command);
    // What is written must load: a failure here is a bug, not the user's.
    crate::config::parse(&out, &text, FIRST_ENV)
        .context("the config init wrote does not load (a bug in scopectl init)")?;
    write(&out, &text, args.force).with_context(|| format!("writing {}", out.display()))?;

    for line in scaffold::findings(&survey, &proposal) {
        ctx.printer.info(&line);
    }
    for w in &proposal.warnings {
        ctx.printer.info(&format!("warning: {w}"));
    }
    ctx.printer.info(&format!(
        "Wrote {} (network.cidr = {}, {}). Next: scopectl{} plan --env {FIRST_ENV}",
        out.display(),
        proposal.cidr,
        match placement {
            Placement::BesideDatabase => "beside the database",
            Placement::Peered => "own VPC, peered",
        },
        if out == Path::new("scope.toml") {
            String::new()
        } else {
            format!(" -c {}", out.display())
        },
    ));
    Ok(EXIT_OK)
}

/// Writes the file; without `force`, only if it still does not exist (the
/// check above and this write are not one step).
fn write(path: &Path, text: &str, force: bool) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let mut f = options.open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}
