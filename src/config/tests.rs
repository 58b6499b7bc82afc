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

#[test]
fn a_local_env_names_its_context_database_and_secrets_source() {
    let local = load(&example(), "local").unwrap();
    assert_eq!(local.database.host.as_deref(), Some("host.docker.internal"));
    assert_eq!(local.database.port, Some(5432));
    assert!(
        local.cluster.addons.is_empty(),
        "a laptop cluster has its own"
    );
    assert_eq!(local.secrets_from, SecretsFrom::Unset);
    let staging = load(&example(), "staging").unwrap();
    assert_eq!(staging.cluster.addons.len(), 3);
    assert_eq!(staging.secrets_from, SecretsFrom::Ssm);

    let with = |extra: &str| format!("{}\n[env.laptop]\nprovider = \"local\"\n{extra}", example());
    let err = |text: String| load(&text, "laptop").unwrap_err();
    let hint = |e: &ConfigError| e.hint().unwrap_or_default();
    let e = err(with("database.host = \"db.local\"\n"));
    assert!(hint(&e).contains("kube_context"), "{e}");
    let e = err(with("kube_context = \"kind-x\"\n"));
    assert!(hint(&e).contains("database.host"), "{e}");
    let e = err(with(
        "kube_context = \"kind-x\"\ndatabase.host = \"10.0.0.5\"\n",
    ));
    assert!(e.to_string().contains("not a DNS name"), "{e}");
    let e = err(with(
        "kube_context = \"kind-x\"\ndatabase.host = \"db.local\"\ncluster.addons = [\"cloud-controller-manager\"]\n",
    ));
    assert!(e.to_string().contains("needs an AWS env"), "{e}");
    let e = err(with(
        "kube_context = \"kind-x\"\ndatabase.host = \"db.local\"\nservices.users.secrets = { DB_PASSWORD = \"/scope/db-password\" }\n",
    ));
    assert!(hint(&e).contains("secrets_from"), "{e}");
    let ok = load(
        &with("kube_context = \"kind-x\"\ndatabase.host = \"db.local\"\ncluster.addons = [\"coredns\"]\nsecrets_from = { file = \"x.secrets\" }\nkubeconfig = \"kube/config\"\n"),
        "laptop",
    )
    .unwrap();
    assert_eq!(ok.secrets_from, SecretsFrom::File("x.secrets".into()));
    assert_eq!(ok.kubeconfig.as_deref(), Some(Path::new("kube/config")));
    assert_eq!(ok.cluster.addons.iter().collect::<Vec<_>>(), ["coredns"]);

    // AWS envs: their cluster and secrets are scopectl's own.
    let aws = format!("{}\n[env.cloud]\nkube_context = \"kind-x\"\n", example());
    assert!(load(&aws, "cloud")
        .unwrap_err()
        .to_string()
        .contains("provider = \"local\""));
    let aws = format!(
        "{}\n[env.cloud]\ndatabase.host = \"db.example\"\n",
        example()
    );
    assert!(load(&aws, "cloud")
        .unwrap_err()
        .to_string()
        .contains("database.host"));
}

#[test]
fn the_kubernetes_version_is_one_of_the_pinned_minors() {
    let c = load(
        &example().replace("kubernetes_version = \"1.35\"\n", ""),
        "staging",
    )
    .unwrap();
    assert_eq!(c.cluster.kubernetes_version, DEFAULT_KUBERNETES_VERSION);
    for bad in ["1.36", "1.30", "stable"] {
        let text = example().replace(
            "kubernetes_version = \"1.35\"",
            &format!("kubernetes_version = \"{bad}\""),
        );
        let err = load(&text, "staging").unwrap_err();
        assert!(
            err.to_string().contains(&format!(
                "cluster.kubernetes_version `{bad}` is not supported"
            )),
            "{err}"
        );
        let hint = err.hint().unwrap();
        assert!(
            hint.contains("\"1.31\", \"1.32\", \"1.33\", \"1.34\", \"1.35\""),
            "{hint}"
        );
    }
}

#[test]
fn the_image_follows_one_ubuntu_release() {
    let c = load(&example(), "staging").unwrap();
    assert_eq!(
        c.cluster.image_name,
        "ubuntu/images/hvm-ssd*/ubuntu-*-24.04-amd64-server-*"
    );
    let jammy = format!("{}\n[env.jammy]\ncluster.ubuntu = \"22.04\"\n", example());
    let c = load(&jammy, "jammy").unwrap();
    assert_eq!(
        c.cluster.image_name,
        "ubuntu/images/hvm-ssd*/ubuntu-*-22.04-amd64-server-*"
    );
    let interim = format!("{}\n[env.x]\ncluster.ubuntu = \"25.04\"\n", example());
    let err = load(&interim, "x").unwrap_err();
    assert!(
        err.to_string().contains("not an Ubuntu LTS release"),
        "{err}"
    );
    let both = format!(
        "{}\n[env.x]\ncluster.ubuntu = \"24.04\"\ncluster.image_name = \"mine-*\"\n",
        example()
    );
    let err = load(&both, "x").unwrap_err();
    assert!(err.to_string().contains("both choose the image"), "{err}");
}

/// Issue 26: `cluster.domain` lands in kubeadm's YAML and certificates; a
/// value that is not a DNS name is refused at its line and column.
#[test]
fn cluster_domain_must_be_a_dns_name() {
    for bad in ["Cluster.Local", "a b", "x\\ny: 1", "-x.local", ""] {
        let text = format!(
            "project = \"scope\"\n[aws]\nregion = \"us-east-1\"\n[network]\nplacement = \"beside-database\"\ncidr = \"172.31.128.0/20\"\n[database]\nrds_instance = \"db\"\n[cluster]\ndomain = \"{bad}\"\n[env.staging]\n"
        );
        let e = crate::config::parse(std::path::Path::new("scope.toml"), &text, "staging")
            .expect_err(bad);
        let shown = e.to_string();
        assert!(shown.contains("is not a DNS name"), "{bad}: {shown}");
    }
    assert!(crate::config::resolve::is_dns_subdomain("cluster.local"));
}

/// Issue 26: a service reads secrets only from under its env's prefix, never
/// from the state store.
#[test]
fn service_secrets_stay_under_the_envs_prefix() {
    let base = |extra: &str, secret: &str| {
        format!(
            "project = \"scope\"\n{extra}[aws]\nregion = \"us-east-1\"\n[network]\nplacement = \"beside-database\"\ncidr = \"172.31.128.0/20\"\n[database]\nrds_instance = \"db\"\n[services.users]\nimage = \"r/users\"\nport = 8080\nsecrets = {{ DB_PASSWORD = \"{secret}\" }}\n[env.staging]\n"
        )
    };
    let parse =
        |text: String| crate::config::parse(std::path::Path::new("scope.toml"), &text, "staging");
    let ok = parse(base("", "/scope/staging/db-password")).unwrap();
    assert_eq!(ok.secrets_prefix, "/scope/staging/");
    for (extra, secret, says) in [
        (
            "",
            "/scope/prod/db-password",
            "outside this env's secrets prefix `/scope/staging/`",
        ),
        (
            "",
            "/scopectl/scope/prod/pki/ca",
            "outside this env's secrets prefix",
        ),
        (
            "secrets_prefix = \"/scopectl/scope/\"\n",
            "/scopectl/scope/x",
            "under the state store",
        ),
        (
            "secrets_prefix = \"scope\"\n",
            "/scope/x",
            "is not an SSM path",
        ),
    ] {
        let e = parse(base(extra, secret)).expect_err(secret).to_string();
        assert!(e.contains(says), "{secret}: {e}");
    }
    let shared = parse(base(
        "secrets_prefix = \"/shared/\"\n",
        "/shared/db-password",
    ))
    .unwrap();
    assert_eq!(shared.secrets_prefix, "/shared/");
}
