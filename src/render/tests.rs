use std::path::Path;
use std::process::Command;

use crate::config;
use crate::desired::{desired, tests::sample_facts};
use crate::model::{Kind, Value};

/// The rendered user data of every instance of every example env that runs
/// on AWS, by `env/instance`.
fn rendered() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/scope.toml"))
        .unwrap();
    let mut out = Vec::new();
    for env in ["staging", "prod", "sandbox", "sandbox-peered"] {
        let config = config::parse(Path::new("examples/scope.toml"), &text, env).unwrap();
        let d = desired(&config, &sample_facts()).unwrap();
        for r in d.resources.values().filter(|r| r.kind() == Kind::Instance) {
            let Some(Value::Str(t)) = r.props.get("user_data_text") else {
                panic!("{} has no user data", r.id);
            };
            out.push((format!("{env}/{}", r.id.name()), t.clone()));
        }
    }
    out
}

#[test]
fn user_data_snapshots() {
    let all = rendered();
    // One master and one node per env; the rest differ only in their name.
    for (name, text) in all
        .iter()
        .filter(|(n, _)| n.ends_with("/master-0") || n.ends_with("/node-0"))
    {
        insta::assert_snapshot!(format!("user-data-{}", name.replace('/', "-")), text);
    }
}

#[test]
fn user_data_holds_no_secret_and_names_the_instance() {
    for (name, text) in rendered() {
        assert!(text.starts_with("#cloud-config\n"), "{name}");
        // The fetch script names PEM labels; no PEM armour may appear.
        for secret in ["PRIVATE KEY-----", "BEGIN CERTIFICATE", "token: \"abcdef"] {
            assert!(!text.contains(secret), "{name} contains {secret}");
        }
        let instance = name.rsplit('/').next().unwrap();
        assert!(text.contains(&format!("-{instance}\n")), "{name}");
    }
}

#[test]
fn an_undefined_variable_is_an_error() {
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.add_template("t", "{{ nope }}").unwrap();
    assert!(env.get_template("t").unwrap().render(()).is_err());
}

/// `cloud-init schema` (Debian's cloud-init, installed by scripts/test)
/// accepts every rendered user data.
#[test]
fn user_data_passes_cloud_init_schema() {
    let version = Command::new("cloud-init").arg("--version").output();
    if version.is_err() && std::env::var_os("SCOPECTL_SKIP_CLOUD_INIT").is_some() {
        eprintln!("cloud-init is not installed; SCOPECTL_SKIP_CLOUD_INIT is set: skipped");
        return;
    }
    assert!(
        version.is_ok(),
        "cloud-init is not installed: run scripts/test (it installs Debian's cloud-init)"
    );
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in rendered() {
        let path = dir.path().join(format!("{}.yaml", name.replace('/', "-")));
        std::fs::write(&path, &text).unwrap();
        let out = Command::new("cloud-init")
            .args(["schema", "--config-file"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{name}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // The YAML must also parse as YAML (a schema check of nothing passes).
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Valid cloud-config"),
            "{name}"
        );
    }
}
