//! Offline validation of rendered Kubernetes objects against the API's
//! schemas: PyPI's `kubernetes-validate` from the test virtualenv
//! (`scripts/setup-venv` installs it; `$SCOPECTL_VENV`, else `.venv`).

use std::path::PathBuf;
use std::process::Command;

use super::tests::in_ci;

/// The validator, or `None` (with a note) when it is not installed outside
/// CI. In CI a missing validator fails the test.
fn validator() -> Option<PathBuf> {
    let venv = std::env::var_os("SCOPECTL_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv"));
    let bin = venv.join("bin").join("kubernetes-validate");
    if bin.exists() {
        return Some(bin);
    }
    assert!(
        !in_ci(),
        "{} is missing: run scripts/setup-venv (it installs kubernetes-validate)",
        bin.display()
    );
    eprintln!(
        "{} is missing: the Kubernetes schema check is skipped (scripts/setup-venv installs it)",
        bin.display()
    );
    None
}

/// `kubernetes-validate --strict` for `kubernetes_version` (`1.31`, checked
/// as 1.31.0) over `objects`: `None` when the validator is not installed
/// (outside CI), else its verdict with its output on failure.
pub(crate) fn run_validator(
    objects: &[serde_json::Value],
    kubernetes_version: &str,
) -> Option<Result<(), String>> {
    let bin = validator()?;
    let version = match kubernetes_version.matches('.').count() {
        1 => format!("{kubernetes_version}.0"),
        _ => kubernetes_version.to_string(),
    };
    // One YAML stream of JSON documents (JSON is YAML; the validator takes
    // no JSON array).
    let mut text = String::new();
    for o in objects {
        text.push_str("---\n");
        text.push_str(&serde_json::to_string_pretty(o).unwrap());
        text.push('\n');
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("objects.yaml");
    std::fs::write(&file, &text).unwrap();
    let out = Command::new(&bin)
        .args(["--kubernetes-version", &version, "--strict", "--quiet"])
        .arg(&file)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", bin.display()));
    if out.status.success() {
        Some(Ok(()))
    } else {
        Some(Err(format!(
            "kubernetes-validate {version} --strict ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )))
    }
}

/// Fails the test with the validator's output when any of `objects` does
/// not validate against Kubernetes `kubernetes_version`'s schemas (strict:
/// unknown fields are errors). Skips with a note when the validator is not
/// installed, except where `CI` is set: there that fails.
pub(crate) fn validate_k8s(objects: &[serde_json::Value], kubernetes_version: &str) {
    assert!(!objects.is_empty(), "no objects to validate");
    if let Some(Err(e)) = run_validator(objects, kubernetes_version) {
        panic!("{e}");
    }
}

fn deployment(replicas: serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]},
            },
        },
    })
}

/// The check is real: a well-formed Deployment passes, and one with a
/// string where an integer goes fails with the field named.
#[test]
fn the_validator_rejects_a_broken_object() {
    let Some(good) = run_validator(&[deployment(2.into())], "1.31") else {
        return;
    };
    assert_eq!(good, Ok(()));
    let broken = run_validator(&[deployment("two".into())], "1.31").unwrap();
    let e = broken.expect_err("replicas \"two\" passed the validator");
    assert!(e.contains("spec.replicas"), "{e}");
}

/// Strict: a field the schema does not have is an error.
#[test]
fn the_validator_rejects_an_unknown_field() {
    let mut o = deployment(1.into());
    o["spec"]["replica"] = 1.into();
    let Some(verdict) = run_validator(&[o], "1.31") else {
        return;
    };
    let e = verdict.expect_err("an unknown field passed the validator");
    assert!(e.contains("replica"), "{e}");
}
