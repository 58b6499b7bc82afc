//! The cluster harness (support/cluster.rs): the test API server stands in
//! for an env's masters, starting while `scopectl up` runs, as soon as the
//! emulator holds the env's PKI and instances; scopectl reaches it through
//! `SCOPECTL_API_SERVER`, kubectl and the `kube` crate through the admin
//! kubeconfig with the API load balancer's name as `tls-server-name`.

use crate::support;

use std::path::Path;
use std::time::{Duration, Instant};

use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::Value;
use support::cluster::{self, kubectl_binary, TestCluster};
use support::{config_text, Sandbox};

const PROJECT: &str = "scope";

/// `GET /readyz` as the cluster phase makes it with the `kube` crate: the
/// admin credentials of `kubeconfig`, the API at `url`, the server's
/// certificate checked against `server_name`.
fn readyz_with_kube(kubeconfig: &Path, url: &str, server_name: &str) -> Result<String, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let kc = Kubeconfig::read_from(kubeconfig).map_err(|e| e.to_string())?;
        let mut cfg = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
            .await
            .map_err(|e| e.to_string())?;
        cfg.cluster_url = url.parse().map_err(|e| format!("{url}: {e}"))?;
        cfg.tls_server_name = Some(server_name.into());
        cfg.connect_timeout = Some(Duration::from_secs(5));
        cfg.read_timeout = Some(Duration::from_secs(5));
        let client = kube::Client::try_from(cfg).map_err(|e| e.to_string())?;
        let req = kube::core::Request::new("")
            .get("readyz", &kube::api::GetParams::default())
            .map_err(|e| e.to_string())?;
        client.request_text(req).await.map_err(|e| format!("{e:?}"))
    })
}

#[test]
fn a_test_cluster_starts_beside_up_and_kubectl_and_kube_reach_it() {
    let sb = Sandbox::start();
    let env = "it-cluster";
    sb.prepare_db("cluster-db");
    let cfg = sb.config(
        "scope.toml",
        &config_text(env, "cluster-db", "cluster.nodes.count = 2"),
    );
    let tc = TestCluster::expect(&sb, &cfg, env, 3, cluster::config());
    // The URL is known before `up`; until the server starts, the port
    // refuses connections (a load balancer with no healthy master).
    assert!(tc.url().starts_with("https://127.0.0.1:"), "{}", tc.url());
    let refused = std::net::TcpStream::connect(tc.addr()).unwrap_err();
    assert_eq!(
        refused.kind(),
        std::io::ErrorKind::ConnectionRefused,
        "{refused}"
    );
    assert!(!tc.is_started());

    let t = Instant::now();
    sb.expect_in_cluster(0, &tc, &cfg, &["--env", env, "up", "--yes"]);
    let up = t.elapsed();
    let handle = tc.wait_started(Duration::from_secs(30));
    let served = tc.started_at().unwrap().duration_since(t);
    eprintln!(
        "up: {:.1} s; the cluster served {:.1} s after up began",
        up.as_secs_f64(),
        served.as_secs_f64()
    );

    // One Ready node per instance, named by its private DNS name; the
    // master carries the control-plane role.
    let expected: Value =
        serde_json::from_str(&sb.python(&["cluster", "--project", PROJECT, "--env", env])).unwrap();
    let expected = expected["nodes"].as_array().unwrap().clone();
    assert_eq!(expected.len(), 3, "{expected:?}");
    let node = |name: &str| handle.object("v1", "Node", "", name);
    for n in &expected {
        assert!(node(n["name"].as_str().unwrap()).is_some(), "{n}");
    }

    // The kube crate, as the cluster phase reaches the API: loopback URL,
    // certificate checked against the API load balancer's name.
    let kubeconfig = tc.kubeconfig();
    let host = tc.api_host();
    assert!(host.contains("elb.amazonaws.com"), "{host}");
    assert_eq!(
        readyz_with_kube(&kubeconfig, &tc.url(), &host).as_deref(),
        Ok("ok")
    );
    let err = readyz_with_kube(&kubeconfig, &tc.url(), "api.elsewhere.example").unwrap_err();
    assert!(
        err.contains("NotValidForName"),
        "another name must fail the certificate check: {err}"
    );

    if kubectl_binary().is_some() {
        let out = tc.kubectl_ok(&["get", "nodes"]);
        let lines: Vec<&str> = out.lines().skip(1).collect();
        assert_eq!(lines.len(), expected.len(), "{out}");
        for n in &expected {
            let name = n["name"].as_str().unwrap();
            let line = lines
                .iter()
                .find(|l| l.split_whitespace().next() == Some(name))
                .unwrap_or_else(|| panic!("{name} not listed:\n{out}"));
            let cols: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(cols[1], "Ready", "{out}");
            assert_eq!(
                cols[2] == "control-plane",
                n["master"] == true,
                "roles of {name}:\n{out}"
            );
        }
        assert_eq!(tc.kubectl_ok(&["get", "--raw", "/readyz"]).trim(), "ok");
    } else {
        eprintln!("skipped the kubectl checks: kubectl is not on PATH");
    }

    // The request log: the health checks and lists came as the admin.
    let log = tc.requests();
    assert!(
        log.iter()
            .any(|r| r.path == "/readyz" && r.status == 200 && r.user == "kubernetes-admin"),
        "{log:#?}"
    );

    // An API that no longer answers never blocks or fails `down`.
    let url = tc.url();
    drop(tc);
    let t = Instant::now();
    let out = sb
        .scopectl(&cfg, &["--env", env, "down", "--yes"])
        .env_remove("SCOPECTL_PHASE")
        .env("SCOPECTL_API_SERVER", &url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("does not answer"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("down with the API gone: {:.1} s", t.elapsed().as_secs_f64());
    let left = sb.snapshot().owned(PROJECT, env);
    assert!(left.is_empty(), "owned resources left: {left:#?}");
}

#[test]
fn a_test_cluster_that_never_starts_ends_with_its_owner() {
    let sb = Sandbox::start();
    let cfg = sb.config("scope.toml", &config_text("it-never", "never-db", ""));
    let tc = TestCluster::expect(&sb, &cfg, "it-never", 1, cluster::config());
    std::thread::sleep(Duration::from_millis(500));
    assert!(!tc.is_started());
    let addr = tc.addr();
    let t = Instant::now();
    drop(tc);
    // A drop that hangs would hang for good (the watcher polls until the
    // cluster exists), so any finite bound catches it. The drop waits for
    // at most one call to the shared helper (well under a second, longer
    // when the machine is busy): 60 s is a margin of over 10x.
    assert!(
        t.elapsed() < Duration::from_secs(60),
        "dropping took {:?}",
        t.elapsed()
    );
    // The port is free again.
    std::net::TcpListener::bind(addr).unwrap();
}

/// A config with services for the cluster phase: `extra_services` are
/// appended (removing them later prunes them).
fn product(env: &str, db: &str, extra_services: &str) -> String {
    format!(
        r#"project = "scope"

[aws]
region = "us-east-1"

[cluster]
nodes = {{ count = 2, instance_type = "m5.large" }}

[network]
placement = "beside-database"
cidr = "172.31.128.0/20"

[database]
rds_instance = "{db}"

[services.users]
image = "registry.example/scope/users"
replicas = 2
port = 8080
readiness = {{ http = "/healthz" }}
env = {{ LOG_LEVEL = "info" }}
secrets = {{ DB_PASSWORD = "/scope/{env}/db-password" }}
initial_tag = "v1.4.2"

[services.frontend]
image = "registry.example/scope/frontend"
port = 8080
expose = "elb"
initial_tag = "v1.4.2"
{extra_services}
[env.{env}]
"#
    )
}

/// The JSON plan, valid against its schema.
fn plan_json(sb: &Sandbox, tc: &TestCluster, cfg: &Path, env: &str) -> Value {
    let (code, out, err) = sb.run_in_cluster(tc, cfg, &["--env", env, "plan", "--output", "json"]);
    assert_eq!(code, 0, "{err}");
    support::assert_schema("plan", &out);
    serde_json::from_str(&out).unwrap()
}

fn addresses(plan: &Value) -> Vec<String> {
    plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            format!(
                "{} {}",
                c["action"].as_str().unwrap(),
                c["address"].as_str().unwrap()
            )
        })
        .collect()
}

/// The cluster phase end to end: `up` builds the machines, waits for the
/// API, applies add-ons and services; a fresh plan is empty; drift made with
/// kubectl shows at its field and `up` restores it; a removed service is
/// pruned while a look-alike with copied labels and a protected object
/// survive; `status` shows the services; `down` ends it all.
#[test]
fn up_applies_the_cluster_restores_drift_and_prunes_only_its_own() {
    let Some(_) = kubectl_binary() else {
        eprintln!("skipped: kubectl is not on PATH");
        return;
    };
    let sb = Sandbox::start();
    let env = "it-k8s";
    sb.prepare_db("k8s-db");
    let reports =
        "\n[services.reports]\nimage = \"registry.example/scope/reports\"\ninitial_tag = \"v2\"\n";
    let audit =
        "\n[services.audit]\nimage = \"registry.example/scope/audit\"\ninitial_tag = \"v3\"\n";
    let cfg = sb.config(
        "scope.toml",
        &product(env, "k8s-db", &format!("{reports}{audit}")),
    );
    let tc = TestCluster::expect(&sb, &cfg, env, 3, cluster::config());
    let put_secret = |value: &str| {
        assert!(sb.python_code(
            "import boto3, sys\nboto3.client('ssm').put_parameter(Name=sys.argv[1], Value=sys.argv[2], Type='SecureString', Overwrite=True)",
            &[&format!("/scope/{env}/db-password"), value],
        ));
    };
    put_secret("hunter2");

    // Before the API exists, the cluster's objects are creates after it.
    let (code, out, err) = sb.run_in_cluster(&tc, &cfg, &["--env", env, "plan"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("+ k8s/apps/v1/Deployment/scope/users") && out.contains("after the API is up"),
        "{out}"
    );

    let t = Instant::now();
    let (_, err) = sb.expect_in_cluster(0, &tc, &cfg, &["--env", env, "up", "--yes"]);
    eprintln!("up (AWS and cluster): {:.1} s", t.elapsed().as_secs_f64());
    assert!(
        err.contains("Waiting for the Kubernetes API") || tc.is_started(),
        "{err}"
    );
    let (out, _) =
        sb.expect_in_cluster(0, &tc, &cfg, &["--env", env, "plan", "--detailed-exitcode"]);
    assert!(out.contains("No changes"), "{out}");

    // What was applied: the services, the database name, the add-ons.
    let get = |args: &[&str]| tc.kubectl_ok(args);
    let image = get(&[
        "-n",
        "scope",
        "get",
        "deploy",
        "users",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].image}",
    ]);
    assert_eq!(image, "registry.example/scope/users:v1.4.2");
    let ext = get(&[
        "-n",
        "scope",
        "get",
        "svc",
        "database",
        "-o",
        "jsonpath={.spec.type} {.spec.externalName}",
    ]);
    assert!(ext.starts_with("ExternalName k8s-db."), "{ext}");
    // The secret's value reaches the Secret, and no plan shows it.
    let data = get(&[
        "-n",
        "scope",
        "get",
        "secret",
        "users-secrets",
        "-o",
        "jsonpath={.data.DB_PASSWORD}",
    ]);
    use base64::Engine as _;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .unwrap();
    assert_eq!(decoded, b"hunter2");
    put_secret("correct-horse");
    let mark = sb.mark();
    let (code, out, err) = sb.run_in_cluster(&tc, &cfg, &["--env", env, "plan"]);
    assert_eq!(code, 0, "{err}");
    // Issue 26: a plan sees the new version without decrypting the secret:
    // its one decrypting read is the admin credentials (GetParameters).
    let decrypting: Vec<String> = sb
        .calls_since(mark)
        .into_iter()
        .filter(|c| c.action == "GetParameters" || c.action == "GetParameter")
        .map(|c| format!("{} {}", c.action, c.names))
        .collect();
    assert_eq!(decrypting.len(), 1, "{decrypting:?}");
    assert!(
        out.contains("~ k8s/v1/Secret/scope/users-secrets") && out.contains("digest: (sensitive)"),
        "{out}"
    );
    let json = plan_json(&sb, &tc, &cfg, env).to_string();
    assert!(!json.contains("hunter2") && !json.contains("correct-horse"));
    sb.expect_in_cluster(0, &tc, &cfg, &["--env", env, "up", "--yes"]);
    let data = get(&[
        "-n",
        "scope",
        "get",
        "secret",
        "users-secrets",
        "-o",
        "jsonpath={.data.DB_PASSWORD}",
    ]);
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(data.trim())
            .unwrap(),
        b"correct-horse"
    );

    // The API's balancer keeps long watches open.
    assert!(sb.python_code(
        "import boto3\nelb = boto3.client('elb')\nname = [d['LoadBalancerName'] for d in elb.describe_load_balancers()['LoadBalancerDescriptions'] if d['LoadBalancerName'].endswith('-api')][0]\nassert elb.describe_load_balancer_attributes(LoadBalancerName=name)['LoadBalancerAttributes']['ConnectionSettings']['IdleTimeout'] == 300",
        &[],
    ));

    let managers = get(&[
        "-n",
        "scope",
        "get",
        "deploy",
        "users",
        "-o",
        "jsonpath={.metadata.managedFields[*].manager}",
    ]);
    assert!(
        managers.split_whitespace().any(|m| m == "scopectl"),
        "{managers}"
    );

    // Drift: scaled and re-imaged with kubectl; the plan names the fields.
    tc.kubectl_ok(&["-n", "scope", "scale", "deploy", "users", "--replicas=5"]);
    tc.kubectl_ok(&[
        "-n",
        "scope",
        "set",
        "image",
        "deploy/users",
        "users=registry.example/scope/users:hotfix",
    ]);
    let plan = plan_json(&sb, &tc, &cfg, env);
    let change = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["address"] == "k8s/apps/v1/Deployment/scope/users")
        .unwrap_or_else(|| panic!("no drift shown: {plan:#}"));
    assert_eq!(change["action"], "update");
    let fields: Vec<&str> = change["changed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        [
            "spec.replicas",
            "spec.template.spec.containers[users].image"
        ],
        "{change:#}"
    );
    assert_eq!(change["changed"][0]["before"], 5);
    // Restored through a saved plan, as a CI job applies what was reviewed.
    let saved = tc.dir().join("drift.json");
    let saved = saved.to_str().unwrap();
    sb.expect_in_cluster(0, &tc, &cfg, &["--env", env, "plan", "--out", saved]);
    sb.expect_in_cluster(
        0,
        &tc,
        &cfg,
        &["--env", env, "up", "--yes", "--plan", saved],
    );
    assert_eq!(
        get(&[
            "-n",
            "scope",
            "get",
            "deploy",
            "users",
            "-o",
            "jsonpath={.spec.replicas}"
        ]),
        "2"
    );
    sb.expect_in_cluster(0, &tc, &cfg, &["--env", env, "plan", "--detailed-exitcode"]);

    // A look-alike with this env's labels that scopectl never applied, and
    // `audit` protected from pruning.
    let lookalike = tc.dir().join("lookalike.yaml");
    std::fs::write(
        &lookalike,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: lookalike\n  namespace: scope\n  labels:\n    app.kubernetes.io/managed-by: scopectl\n    scopectl.io/project: scope\n    scopectl.io/env: it-k8s\ndata:\n  a: b\n",
    )
    .unwrap();
    tc.kubectl_ok(&["apply", "-f", lookalike.to_str().unwrap()]);
    tc.kubectl_ok(&[
        "-n",
        "scope",
        "annotate",
        "deploy",
        "audit",
        "scopectl.io/prune=disabled",
    ]);

    // `reports` and `audit` leave the config; the annotation protects the
    // one object that carries it.
    std::fs::write(&cfg, product(env, "k8s-db", "")).unwrap();
    let plan = plan_json(&sb, &tc, &cfg, env);
    let shown = addresses(&plan);
    assert_eq!(
        shown,
        [
            "delete k8s/apps/v1/Deployment/scope/reports",
            "delete k8s/v1/Service/scope/audit",
            "delete k8s/v1/Service/scope/reports",
        ],
        "{plan:#}"
    );
    assert_eq!(plan["changes"][0]["reason"]["type"], "not-in-config");
    let notices = plan["notices"].to_string();
    assert!(notices.contains("k8s/v1/ConfigMap/scope/lookalike carries this env's labels but scopectl never applied it"), "{notices}");
    assert!(
        notices.contains(
            "k8s/apps/v1/Deployment/scope/audit is no longer in the config but is annotated"
        ),
        "{notices}"
    );
    sb.expect_in_cluster(0, &tc, &cfg, &["--env", env, "up", "--yes"]);
    let (code, _, _) = tc.kubectl(&["-n", "scope", "get", "deploy", "reports"]);
    assert_ne!(code, 0, "reports was not pruned");
    tc.kubectl_ok(&["-n", "scope", "get", "configmap", "lookalike"]);
    tc.kubectl_ok(&["-n", "scope", "get", "deploy", "audit"]);
    let (out, _) =
        sb.expect_in_cluster(0, &tc, &cfg, &["--env", env, "plan", "--detailed-exitcode"]);
    assert!(
        out.contains("annotated scopectl.io/prune: disabled; kept"),
        "{out}"
    );

    // status: services with replicas and tags, add-ons, the API.
    let (out, _) = sb.expect_in_cluster(0, &tc, &cfg, &["--env", env, "status"]);
    assert!(
        out.contains("cluster: API https://127.0.0.1:") && out.contains("(ready)"),
        "{out}"
    );
    let users = out
        .lines()
        .find(|l| l.trim_start().starts_with("users "))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        users.contains("2/2 ready") && users.contains("tag v1.4.2"),
        "{out}"
    );
    // The same as JSON, valid against its schema.
    let (out, _) =
        sb.expect_in_cluster(0, &tc, &cfg, &["--env", env, "status", "--output", "json"]);
    support::assert_schema("status", &out);
    let status: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(status["cluster"]["healthy"], true, "{status:#}");
    let users = status["cluster"]["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["name"] == "users")
        .unwrap_or_else(|| panic!("{status:#}"));
    assert_eq!(
        (&users["ready"], &users["tag"]),
        (&2.into(), &"v1.4.2".into())
    );
    assert!(
        status["resources"].as_array().unwrap().len() > 10,
        "{status:#}"
    );

    // `down` deletes LoadBalancer Services through the API first.
    let lb = tc.dir().join("lb.yaml");
    std::fs::write(
        &lb,
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: public\n  namespace: default\nspec:\n  type: LoadBalancer\n  selector:\n    app: x\n  ports:\n  - port: 80\n",
    )
    .unwrap();
    tc.kubectl_ok(&["apply", "-f", lb.to_str().unwrap()]);
    let (_, err) = sb.expect_in_cluster(0, &tc, &cfg, &["--env", env, "down", "--yes"]);
    assert!(
        err.contains("Deleted 1 LoadBalancer Service through the API first"),
        "{err}"
    );
    assert!(
        tc.requests()
            .iter()
            .any(|r| r.verb == "delete" && r.path.ends_with("/namespaces/default/services/public")),
        "no delete of the LoadBalancer Service"
    );
    let left = sb.snapshot().owned(PROJECT, env);
    assert!(left.is_empty(), "owned resources left: {left:#?}");
}

/// The sandbox recreated at once, as an ephemeral env's CI job does: `up`,
/// `down`, and `up` again right after (a new cluster behind new machines),
/// each ending on a working cluster, a fresh plan empty after each.
#[test]
fn the_sandbox_goes_down_and_up_again_at_once() {
    let sb = Sandbox::start();
    let env = "it-again";
    sb.prepare_db("again-db");
    let cfg = sb.config(
        "scope.toml",
        &config_text(env, "again-db", "cluster.nodes.count = 1"),
    );
    for round in 0..2 {
        let tc = TestCluster::expect(&sb, &cfg, env, 2, cluster::config());
        let (_, err) = sb.expect_in_cluster(0, &tc, &cfg, &["--env", env, "up", "--yes"]);
        assert!(
            err.contains("The cluster works: 2 of 2 nodes Ready"),
            "round {round}: {err}"
        );
        sb.expect_in_cluster(0, &tc, &cfg, &["--env", env, "plan", "--detailed-exitcode"]);
        sb.expect_in_cluster(0, &tc, &cfg, &["--env", env, "down", "--yes"]);
        let left = sb.snapshot().owned(PROJECT, env);
        assert!(
            left.is_empty(),
            "round {round}: owned resources left: {left:#?}"
        );
    }
}
