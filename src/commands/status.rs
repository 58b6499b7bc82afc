use std::collections::BTreeMap;

use anyhow::Result;

use super::{connect, Ctx};
use crate::config::Provider;
use crate::error::EXIT_OK;
use crate::ui::Output;

pub async fn run(ctx: &Ctx) -> Result<u8> {
    let config = ctx.config()?;
    let printer = &ctx.printer;
    if config.provider == Provider::Local {
        printer.data(&format!(
            "{}/{}: provider \"local\", no AWS resources.\n",
            config.project, config.env
        ));
        return Ok(EXIT_OK);
    }
    let aws = connect(&config).await;
    let (actual, lock) = futures::join!(aws.observe(), aws.read_lock());
    let (actual, lock) = (actual?, lock?);
    if printer.output == Output::Json {
        let resources: Vec<_> = actual
            .resources
            .values()
            .chain(&actual.duplicates)
            .map(|o| {
                serde_json::json!({
                    "address": o.id, "kind": o.id.kind().map(|k| k.label()), "id": o.physical_id, "props": o.props,
                })
            })
            .collect();
        printer.json(&serde_json::json!({
            "project": config.project, "env": config.env, "resources": resources, "lock": lock,
        }));
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
    let mut out = format!(
        "{}/{} in {}: {} resources\n",
        config.project,
        config.env,
        config.aws.region,
        actual.len()
    );
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
