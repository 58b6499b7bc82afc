//! The JSON outputs' schemas (`schemas/NAME.schema.json`), derived from the
//! types that serialize the outputs, so that they cannot drift: the test
//! below fails when a committed file differs from what the types say.
//! `UPDATE_SCHEMAS=1 cargo test --lib schemas::` writes them.
//!
//! Test-only: the binary does not carry `schemars`.

use std::path::PathBuf;

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema};
use serde_json::Value;

use crate::{commands, plan, rollout};

/// One JSON output: its schema file's name, the commands that print it, its
/// format version and its root type's schema.
struct Output {
    name: &'static str,
    printed_by: &'static str,
    format_version: &'static str,
    schema: Schema,
}

/// Every JSON output. A new one is one line here, and
/// `#[cfg_attr(test, derive(schemars::JsonSchema))]` on its types.
fn outputs() -> Vec<Output> {
    let o = |name, printed_by, format_version, schema| Output {
        name,
        printed_by,
        format_version,
        schema,
    };
    vec![
        o(
            "plan",
            "`scopectl plan --output json` and the file of `plan --out`",
            plan::FORMAT_VERSION,
            schema::<plan::Plan>(),
        ),
        o(
            "status",
            "`scopectl status --output json`",
            commands::status::FORMAT_VERSION,
            schema::<commands::status::Status>(),
        ),
        o(
            "release",
            "`scopectl rollout --output json` and `rollout undo --output json` (a release), and each release kept in the cluster",
            rollout::FORMAT_VERSION,
            schema::<rollout::Release>(),
        ),
        o(
            "rollout-unchanged",
            "`scopectl rollout --output json` when every service already runs the tags (no release)",
            rollout::FORMAT_VERSION,
            schema::<rollout::Unchanged>(),
        ),
        o(
            "history",
            "`scopectl rollout history --output json`",
            rollout::FORMAT_VERSION,
            schema::<rollout::History>(),
        ),
        o(
            "rollout-status",
            "`scopectl rollout status --output json`",
            rollout::FORMAT_VERSION,
            schema::<rollout::Status>(),
        ),
        o(
            "up",
            "`scopectl up --output json` and `pki rotate --output json`",
            commands::outputs::FORMAT_VERSION,
            schema::<commands::outputs::Applied>(),
        ),
        o(
            "down",
            "`scopectl down --output json`",
            commands::outputs::FORMAT_VERSION,
            schema::<commands::outputs::TornDown>(),
        ),
        o(
            "pki-status",
            "`scopectl pki status --output json`",
            commands::outputs::FORMAT_VERSION,
            schema::<commands::outputs::PkiStatus>(),
        ),
        o(
            "diff-env",
            "`scopectl diff-env A B --output json`",
            crate::envdiff::FORMAT_VERSION,
            schema::<crate::envdiff::EnvDiff>(),
        ),
    ]
}

/// The schema of what `T` serializes to: a field that is always written is
/// required, even an `Option` (written as null).
fn schema<T: JsonSchema>() -> Schema {
    SchemaSettings::default()
        .for_serialize()
        .into_generator()
        .into_root_schema_for::<T>()
}

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("schemas")
}

/// The file's text: the derived schema, titled, with `format_version`
/// pinned to this version (a document of another version is not valid).
fn render(o: &Output) -> String {
    let mut schema = o.schema.clone().to_value();
    let root = schema.as_object_mut().expect("a schema is an object");
    root.insert(
        "title".into(),
        format!("scopectl {} (format version {})", o.name, o.format_version).into(),
    );
    let description = root
        .get("description")
        .and_then(Value::as_str)
        .map(|d| format!("{d}\n\n"))
        .unwrap_or_default();
    root.insert(
        "description".into(),
        format!("{description}Printed by {}.", o.printed_by).into(),
    );
    let required = root["required"].as_array().cloned().unwrap_or_default();
    assert!(
        required.contains(&"format_version".into()),
        "{}: the root type has no required format_version",
        o.name
    );
    let version = root
        .get_mut("properties")
        .and_then(|p| p.get_mut("format_version"))
        .and_then(Value::as_object_mut)
        .unwrap_or_else(|| panic!("{}: no format_version property", o.name));
    version.insert("const".into(), o.format_version.into());
    // The header first, for whoever opens the file.
    let mut ordered = serde_json::Map::new();
    for key in ["$schema", "title", "description"] {
        if let Some(v) = root.remove(key) {
            ordered.insert(key.into(), v);
        }
    }
    ordered.append(root);
    let schema = Value::Object(ordered);
    format!(
        "{}\n",
        serde_json::to_string_pretty(&schema).expect("plain data")
    )
}

#[test]
fn committed_schemas_match_the_types() {
    let update = std::env::var_os("UPDATE_SCHEMAS").is_some();
    let mut stale = Vec::new();
    for o in outputs() {
        let path = dir().join(format!("{}.schema.json", o.name));
        let text = render(&o);
        if update {
            std::fs::create_dir_all(dir()).expect("create schemas/");
            std::fs::write(&path, &text).expect("write a schema");
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            stale.push(format!("schemas/{}.schema.json", o.name));
        }
    }
    assert!(
        stale.is_empty(),
        "these schemas differ from the Rust types: {}\nrun `UPDATE_SCHEMAS=1 cargo test --lib schemas::` and commit them",
        stale.join(", ")
    );
}

/// A schema file no output generates any more would mislead whoever reads it.
#[test]
fn every_committed_schema_is_generated() {
    let names: Vec<String> = outputs()
        .iter()
        .map(|o| format!("{}.schema.json", o.name))
        .collect();
    for entry in std::fs::read_dir(dir()).expect("schemas/ exists") {
        let name = entry.expect("read schemas/").file_name();
        let name = name.to_string_lossy();
        assert!(
            names.iter().any(|n| *n == name),
            "schemas/{name} is not generated by any output: delete it or add it to outputs()"
        );
    }
}
