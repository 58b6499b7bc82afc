//! Pure: the product's namespace, `database` Service and per-service
//! Deployment, Service and Secret, from `templates/workloads/`.

use std::collections::BTreeMap;

use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;

use super::RenderError;

const TEMPLATES: &[(&str, &str)] = &[
    (
        "workloads/namespace.yaml.j2",
        include_str!("../../templates/workloads/namespace.yaml.j2"),
    ),
    (
        "workloads/service.yaml.j2",
        include_str!("../../templates/workloads/service.yaml.j2"),
    ),
];

#[derive(Clone, Debug, Serialize)]
pub struct NamespaceInputs {
    pub project: String,
    pub namespace: String,
    /// The RDS endpoint (or, for a local env, the database host).
    pub database_host: Option<String>,
    pub database_port: u16,
}

#[derive(Clone, Debug, Serialize)]
pub struct EnvVar {
    pub name: String,
    pub value: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct ResourceInputs {
    pub cpu: String,
    pub memory: String,
    pub cpu_limit: Option<String>,
    pub memory_limit: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct ServiceInputs {
    pub project: String,
    pub namespace: String,
    pub name: String,
    /// The repository, without a tag.
    pub image: String,
    pub tag: String,
    pub replicas: u32,
    pub port: u16,
    pub readiness_path: Option<String>,
    pub resources: ResourceInputs,
    pub env: Vec<EnvVar>,
    /// Variables that come from the Secret, and the Secret's name.
    pub secret_keys: Vec<String>,
    pub secret_name: String,
    /// Variable -> SSM parameter (names only).
    pub sources: BTreeMap<String, String>,
    /// For `expose = "elb"`: the NodePort its load balancer targets.
    pub node_port: Option<u16>,
    /// The restricted security context's two choices (see the template).
    pub run_as_root: bool,
    pub read_only_root: bool,
}

fn render(
    template: &'static str,
    ctx: &impl Serialize,
) -> Result<Vec<serde_json::Value>, RenderError> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    // `.yaml` names would otherwise get JSON auto-escaping (minijinja's
    // `json` feature): values are quoted explicitly with `tojson`.
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    for (name, text) in TEMPLATES {
        env.add_template(name, text)
            .map_err(|e| RenderError::template(name, e))?;
    }
    let text = env
        .get_template(template)
        .and_then(|t| t.render(ctx))
        .map_err(|e| RenderError::template(template, e))?;
    super::addons::documents(template, &text)
}

pub fn namespace(inputs: &NamespaceInputs) -> Result<Vec<serde_json::Value>, RenderError> {
    render("workloads/namespace.yaml.j2", inputs)
}

pub fn service(inputs: &ServiceInputs) -> Result<Vec<serde_json::Value>, RenderError> {
    render("workloads/service.yaml.j2", inputs)
}
