use std::path::Path;

use super::*;

fn example() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/scope.toml")).unwrap()
}

fn load(text: &str, env: &str) -> Result<Config, ConfigError> {
    parse(Path::new("scope.toml"), text, env)
}

#[test]
fn example_envs_all_load() {
    for env in ["staging", "prod", "local", "sandbox", "sandbox-peered"] {
        let c = load(&example(), env).unwrap_or_else(|e| panic!("{env}: {e}"));
        assert_eq!(c.project, "scope");
        assert_eq!(c.env, env);
    }
}

#[test]
fn overlays_deep_merge_and_keep_the_base() {
    let staging = load(&example(), "staging").unwrap();
    assert_eq!(staging.database.rds_instance, "scope-staging-db");
    assert_eq!(staging.cluster.nodes.count, 2);
    // Untouched siblings of an overridden key survive the merge.
    assert_eq!(staging.cluster.nodes.instance_type, "m5.large");
    assert_eq!(staging.cluster.masters.count, 1);
    assert!(!staging.protected);
    let prod = load(&example(), "prod").unwrap();
    assert!(prod.protected);
    assert_eq!(prod.database.rds_instance, "scope-db");
    assert_eq!(prod.cluster.nodes.count, 3);
    let local = load(&example(), "local").unwrap();
    assert_eq!(local.provider, Provider::Local);
    assert_eq!(local.kube_context.as_deref(), Some("kind-scope"));
    let peered = load(&example(), "sandbox-peered").unwrap();
    assert_eq!(peered.network.placement, Placement::Peered);
    assert_eq!(peered.network.cidr.to_string(), "10.20.0.0/16");
}

#[test]
fn arrays_replace_rather_than_append() {
    let text = format!(
        "{}\n[env.zoned]\nnetwork.zones = [\"us-east-1b\", \"us-east-1c\"]\n",
        example().replace(
            "cidr = \"172.31.128.0/20\"",
            "cidr = \"172.31.128.0/20\"\nzones = [\"us-east-1a\", \"us-east-1b\", \"us-east-1d\"]"
        )
    );
    let c = load(&text, "zoned").unwrap();
    assert_eq!(c.network.zones.unwrap(), ["us-east-1b", "us-east-1c"]);
}

#[test]
fn services_merge_per_key() {
    let text = format!("{}\n[env.more]\nservices.users.replicas = 5\n", example());
    let c = load(&text, "more").unwrap();
    assert_eq!(c.services["users"].replicas, 5);
    assert_eq!(c.services["users"].image, "registry.example/scope/users");
    assert_eq!(c.services["frontend"].expose, Expose::Elb);
    assert_eq!(c.services.len(), 5);
}

#[test]
fn errors_carry_a_location_and_a_snippet() {
    let text = example().replace("cidr = \"172.31.128.0/20\"", "cidr = \"172.31.128.0/99\"");
    let err = load(&text, "staging").unwrap_err();
    let ConfigError::Invalid { at, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!((at.line, at.column), (17, 8));
    insta::assert_snapshot!(err.snippet().unwrap(), @r#"
       |
    17 | cidr = "172.31.128.0/99"        # cluster subnets are carved from this, one per zone
       |        ^^^^^^^^^^^^^^^^^
    "#);
    assert!(err.hint().unwrap().contains("address/prefix"));
}

#[test]
fn an_env_can_name_its_own_project() {
    let text = format!("{}\n[env.other]\nproject = \"other\"\n", example());
    assert_eq!(load(&text, "other").unwrap().project, "other");
}

#[test]
fn quantities_are_written_as_the_api_server_writes_them() {
    use super::resolve::canonical_quantity as c;
    for (given, canonical) in [
        ("1000m", "1"),
        ("0.5", "500m"),
        ("250m", "250m"),
        ("1.5", "1500m"),
        ("2", "2"),
        ("1024Mi", "1Gi"),
        ("1536Mi", "1536Mi"),
        ("1.5Gi", "1536Mi"),
        ("256Mi", "256Mi"),
        ("1000k", "1M"),
        ("128974848", "128974848"),
        ("0.0001", "1m"),
    ] {
        assert_eq!(c(given), canonical, "{given}");
    }
}
