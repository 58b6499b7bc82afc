//! `diff-env`: every difference between what two envs run or would run,
//! service by service (pure: the command reads the running tags). The
//! workloads come from the same templates in every env, so what can differ
//! is what the config and the running release set: replicas, image, tag,
//! port, readiness, resources, exposure, plain variables, the secrets'
//! sources (names only, never values), the database and the add-ons.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::config::{Config, Expose, Provider, Readiness, SecretsFrom};

pub const FORMAT_VERSION: &str = "1";

/// One env as `diff-env` compares it.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct EnvView {
    pub name: String,
    /// `aws` or `local`.
    pub provider: String,
    /// The region, or the kube context.
    pub target: String,
    /// Where the tags come from: `running` (read from the cluster) or
    /// `config` (what a first `up` would deploy), with why.
    pub tags_from: String,
    #[serde(skip)]
    fields: BTreeMap<String, String>,
    #[serde(skip)]
    services: BTreeMap<String, BTreeMap<String, String>>,
}

/// One difference: `service` is None for the env-wide ones (database,
/// add-ons). A value is None where the other env has no such thing.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct Difference {
    pub service: Option<String>,
    pub field: String,
    pub a: Option<String>,
    pub b: Option<String>,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct EnvDiff {
    pub format_version: String,
    pub project: String,
    pub a: EnvView,
    pub b: EnvView,
    pub differences: Vec<Difference>,
    /// Services that are the same in both envs.
    pub identical: Vec<String>,
}

/// What `config`'s env runs (`running`: the tags read from its cluster,
/// None when it was not read) or would run.
pub fn view(config: &Config, running: Result<&BTreeMap<String, String>, &str>) -> EnvView {
    let mut fields = BTreeMap::new();
    fields.insert(
        "database".to_string(),
        match config.provider {
            Provider::Aws => format!(
                "RDS instance {}{}",
                config.database.rds_instance,
                config
                    .database
                    .port
                    .map(|p| format!(" (port {p})"))
                    .unwrap_or_default()
            ),
            Provider::Local => format!(
                "{}:{}",
                config.database.host.as_deref().unwrap_or("?"),
                config.database.port.unwrap_or(5432)
            ),
        },
    );
    fields.insert(
        "add-ons".to_string(),
        if config.cluster.addons.is_empty() {
            "(none: the cluster's own)".to_string()
        } else {
            config
                .cluster
                .addons
                .iter()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        },
    );
    let mut services = BTreeMap::new();
    for (name, s) in &config.services {
        let mut f = BTreeMap::new();
        f.insert("replicas".to_string(), s.replicas.to_string());
        f.insert("image".to_string(), s.image.clone());
        let tag = match running {
            Ok(tags) => tags
                .get(name)
                .cloned()
                .unwrap_or_else(|| "(not deployed)".into()),
            Err(_) => s
                .initial_tag
                .clone()
                .unwrap_or_else(|| "(none: --image on the first up)".into()),
        };
        f.insert("tag".to_string(), tag);
        f.insert("port".to_string(), s.port.to_string());
        f.insert(
            "readiness".to_string(),
            match &s.readiness {
                Readiness::Tcp => format!("tcp {}", s.port),
                Readiness::Http(p) => format!("http {p}"),
            },
        );
        let r = &s.resources;
        f.insert(
            "resources".to_string(),
            format!(
                "cpu {}{}, memory {} (limit {})",
                r.cpu,
                r.cpu_limit
                    .as_ref()
                    .map(|l| format!(" (limit {l})"))
                    .unwrap_or_default(),
                r.memory,
                r.memory_limit
            ),
        );
        let node_port = s
            .node_port
            .map(|p| p.to_string())
            .unwrap_or_else(|| "assigned".into());
        f.insert(
            "exposure".to_string(),
            match (s.expose, config.provider) {
                (Expose::None, _) => "in the cluster only".to_string(),
                (Expose::Elb, Provider::Aws) => {
                    format!("load balancer (ELB) to node port {node_port}")
                }
                (Expose::Elb, Provider::Local) => format!("node port {node_port}"),
            },
        );
        for (k, v) in &s.env {
            f.insert(format!("env.{k}"), v.clone());
        }
        for (var, param) in &s.secrets {
            f.insert(
                format!("secrets.{var}"),
                match &config.secrets_from {
                    SecretsFrom::Ssm => format!("SSM parameter {param}"),
                    SecretsFrom::File(p) => format!(
                        "file {}: {param}",
                        p.file_name()
                            .map(|n| n.to_string_lossy().into_owned())
                            .unwrap_or_default()
                    ),
                    SecretsFrom::Env { prefix } => {
                        format!("variable {}", SecretsFrom::variable(prefix, param))
                    }
                    SecretsFrom::Unset => "(no source)".into(),
                },
            );
        }
        services.insert(name.clone(), f);
    }
    EnvView {
        name: config.env.clone(),
        provider: match config.provider {
            Provider::Aws => "aws",
            Provider::Local => "local",
        }
        .into(),
        target: match config.provider {
            Provider::Aws => config.aws.region.clone(),
            Provider::Local => config.kube_context.clone().unwrap_or_default(),
        },
        tags_from: match running {
            Ok(_) => "running".into(),
            Err(why) => format!("config ({why})"),
        },
        fields,
        services,
    }
}

/// Every difference between two envs' views.
pub fn diff(project: &str, a: EnvView, b: EnvView) -> EnvDiff {
    let mut differences = Vec::new();
    let pairs = |x: &BTreeMap<String, String>, y: &BTreeMap<String, String>| {
        let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
        keys.into_iter()
            .filter(|k| x.get(*k) != y.get(*k))
            .map(|k| (k.clone(), x.get(k).cloned(), y.get(k).cloned()))
            .collect::<Vec<_>>()
    };
    for (field, va, vb) in pairs(&a.fields, &b.fields) {
        differences.push(Difference {
            service: None,
            field,
            a: va,
            b: vb,
        });
    }
    let mut identical = Vec::new();
    let names: BTreeSet<&String> = a.services.keys().chain(b.services.keys()).collect();
    for name in names {
        match (a.services.get(name), b.services.get(name)) {
            (Some(x), Some(y)) => {
                let d = pairs(x, y);
                if d.is_empty() {
                    identical.push(name.clone());
                }
                differences.extend(d.into_iter().map(|(field, va, vb)| Difference {
                    service: Some(name.clone()),
                    field,
                    a: va,
                    b: vb,
                }));
            }
            (x, y) => differences.push(Difference {
                service: Some(name.clone()),
                field: "service".into(),
                a: x.map(|_| "defined".into()),
                b: y.map(|_| "defined".into()),
            }),
        }
    }
    EnvDiff {
        format_version: FORMAT_VERSION.into(),
        project: project.into(),
        a,
        b,
        differences,
        identical,
    }
}

/// The human view: a column per env, only what differs.
pub fn render(d: &EnvDiff) -> String {
    let head = |v: &EnvView| {
        format!(
            "{} ({} {}; tags from {})",
            v.name, v.provider, v.target, v.tags_from
        )
    };
    let mut out = format!("{}: {}\n  vs {}\n", d.project, head(&d.a), head(&d.b));
    let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "(absent)".into());
    let width = d
        .differences
        .iter()
        .map(|x| x.field.len())
        .max()
        .unwrap_or(0)
        .max(8);
    let col = d
        .differences
        .iter()
        .map(|x| show(&x.a).len())
        .max()
        .unwrap_or(0)
        .max(d.a.name.len());
    let mut section: Option<Option<&String>> = None;
    for x in &d.differences {
        if section != Some(x.service.as_ref()) {
            section = Some(x.service.as_ref());
            out.push_str(&format!(
                "\n{}\n  {:<width$}  {:<col$}  {}\n",
                x.service.as_deref().unwrap_or("env"),
                "",
                d.a.name,
                d.b.name
            ));
        }
        out.push_str(&format!(
            "  {:<width$}  {:<col$}  {}\n",
            x.field,
            show(&x.a),
            show(&x.b)
        ));
    }
    if d.differences.is_empty() {
        out.push_str("\nno differences\n");
    }
    if !d.identical.is_empty() {
        out.push_str(&format!("\nidentical: {}\n", d.identical.join(", ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example(env: &str) -> Config {
        crate::config::load(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/scope.toml"),
            env,
        )
        .unwrap()
    }

    #[test]
    fn the_examples_local_and_staging_differ_where_overlays_and_providers_do() {
        let d = diff(
            "scope",
            view(&example("local"), Err("--offline")),
            view(&example("staging"), Err("--offline")),
        );
        insta::assert_snapshot!("local_vs_staging", render(&d));
        insta::assert_json_snapshot!("local_vs_staging_json", d);
    }

    #[test]
    fn running_tags_differ_and_a_service_of_one_env_only_shows() {
        let staging = example("staging");
        let mut prod = example("prod");
        prod.services.remove("ui");
        let a_tags = BTreeMap::from([("users".to_string(), "v1.5.0".to_string())]);
        let b_tags = BTreeMap::from([("users".to_string(), "v1.4.2".to_string())]);
        let d = diff(
            "scope",
            view(&staging, Ok(&a_tags)),
            view(&prod, Ok(&b_tags)),
        );
        let users_tag = d
            .differences
            .iter()
            .find(|x| x.service.as_deref() == Some("users") && x.field == "tag")
            .unwrap();
        assert_eq!(users_tag.a.as_deref(), Some("v1.5.0"));
        assert_eq!(users_tag.b.as_deref(), Some("v1.4.2"));
        assert!(d
            .differences
            .iter()
            .any(|x| x.service.as_deref() == Some("ui") && x.field == "service" && x.b.is_none()));
        // Same config, same running tags: nothing differs.
        let same = diff(
            "scope",
            view(&staging, Ok(&a_tags)),
            view(&staging, Ok(&a_tags)),
        );
        assert!(same.differences.is_empty());
        assert_eq!(same.identical.len(), staging.services.len());
    }
}
