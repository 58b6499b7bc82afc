//! `scopectl pki status|rotate`.

use anyhow::{Context, Result};

use super::{connect, Ctx};
use crate::cli::{PkiCommand, UpArgs};
use crate::desired::Rotation;
use crate::error::{UserError, EXIT_OK};
use crate::pki;
use crate::providers::aws::pki_store;
use crate::ui::Output;

pub async fn run(ctx: &Ctx, command: PkiCommand) -> Result<u8> {
    match command {
        PkiCommand::Status => status(ctx).await,
        PkiCommand::Rotate(a) => {
            super::require_own_pki(
                &ctx.config()?,
                "pki rotate reissues an AWS env's certificates",
            )?;
            let rotation = Rotation {
                leaves: !a.ca,
                ca: a.ca,
            };
            let args = UpArgs {
                yes: a.yes,
                plan: None,
                parallelism: crate::apply::DEFAULT_CONCURRENCY,
                upgrade_image: false,
                allow_control_plane_replace: false,
                images: Vec::new(),
                timeout: std::time::Duration::from_secs(20 * 60).into(),
                // A rotation reissues what exists; waiting is `up`'s.
                no_wait: true,
            };
            super::up::apply(ctx, args, rotation).await
        }
    }
}

use super::outputs::Certificate as Row;

/// Reads every certificate (decrypting, then dropping the keys) and lists it.
async fn status(ctx: &Ctx) -> Result<u8> {
    let config = ctx.config()?;
    super::require_own_pki(&config, "pki status reads an AWS env's state store")?;
    let aws = connect(&config).await;
    let prefix = aws.pki_prefix();
    let mut names: Vec<String> = pki::CAS
        .iter()
        .map(|c| c.stem)
        .chain(pki::LEAVES.iter().map(|l| l.stem))
        .map(|s| format!("{prefix}{s}"))
        .collect();
    names.sort();
    let values = pki_store::values(&aws, &names)
        .await
        .context("reading the state store")?;
    let mut rows = Vec::new();
    for name in &names {
        let Some(v) = values.get(name) else { continue };
        for (i, pem) in pki::pem_blocks(v, "CERTIFICATE").iter().enumerate() {
            let cert = pki::read_certificate(pem)
                .with_context(|| format!("reading the certificate in {name}"))?;
            let stem = name.trim_start_matches(&prefix);
            rows.push(Row {
                item: if i == 0 {
                    stem.to_string()
                } else {
                    format!("{stem} (also trusted)")
                },
                cert,
            });
        }
    }
    if rows.is_empty() {
        return Err(UserError::failed(
            format!(
                "{}/{} has no PKI in its state store",
                config.project, config.env
            ),
            "run `scopectl up` to issue it",
        )
        .into());
    }
    if ctx.printer.output == Output::Json {
        ctx.printer.json(&super::outputs::PkiStatus {
            format_version: super::outputs::FORMAT_VERSION.into(),
            project: config.project.clone(),
            env: config.env.clone(),
            certificates: rows,
        });
        return Ok(EXIT_OK);
    }
    let mut out = String::new();
    for r in &rows {
        out.push_str(&format!(
            "{}\n  subject:  {}\n  issuer:   {}\n  expires:  {}\n",
            r.item, r.cert.subject, r.cert.issuer, r.cert.not_after
        ));
        if !r.cert.sans.is_empty() {
            out.push_str(&format!("  SANs:     {}\n", r.cert.sans.join(", ")));
        }
    }
    ctx.printer.data(&out);
    Ok(EXIT_OK)
}
