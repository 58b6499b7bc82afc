//! Airplane mode: an env with `provider = "local"` against a laptop
//! cluster reached through a kubeconfig context (the test API server stands
//! in for kind), with AWS out of reach: `AWS_ENDPOINT_URL` at a loopback
//! port that counts the connections made to it (none may be), and no AWS
//! credentials anywhere.

use crate::support;

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use scopectl_apiserver::{testpki, Config, NodeSpec, Server};
use serde_json::Value;
use support::cluster::{self, kubectl_binary};
use support::{expect_exit, output};

const CONTEXT: &str = "kind-scope";

/// A stand-in for a laptop cluster and a stand-in for AWS that nobody may
/// call.
struct Laptop {
    server: Server,
    dir: tempfile::TempDir,
    aws_port: u16,
    aws_connections: Arc<AtomicUsize>,
}

impl Laptop {
    fn start(config: Config) -> Laptop {
        let pki = testpki::generate(&["127.0.0.1", "localhost"]).expect("a test PKI");
        let config = Config {
            nodes: vec![NodeSpec {
                name: "kind-control-plane".into(),
                internal_ip: "172.18.0.2".into(),
                master: false,
                zone: None,
                instance_id: None,
                instance_type: None,
            }],
            ..config
        };
        let server = Server::start(config, &pki.tls(), "127.0.0.1:0").expect("start the API");
        let dir = tempfile::tempdir().expect("a directory");
        use base64::Engine as _;
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        // What `kind create cluster --name scope` writes, plus another
        // context that must not be touched.
        let kubeconfig = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: {CONTEXT}\n  cluster:\n    server: {}\n    certificate-authority-data: {}\n- name: prod\n  cluster:\n    server: https://192.0.2.1:6443\nusers:\n- name: {CONTEXT}\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\ncontexts:\n- name: {CONTEXT}\n  context: {{cluster: {CONTEXT}, user: {CONTEXT}}}\n- name: prod\n  context: {{cluster: prod, user: {CONTEXT}}}\ncurrent-context: prod\n",
            server.url(),
            b64(&pki.ca_pem),
            b64(&pki.admin_cert_pem),
            b64(&pki.admin_key_pem),
        );
        std::fs::write(dir.path().join("kubeconfig"), kubeconfig).expect("write the kubeconfig");
        std::fs::create_dir(dir.path().join("home")).expect("a home");
        std::fs::write(
            dir.path().join("local.secrets"),
            "# local secrets\n/scope/db-password=local-pass\n",
        )
        .expect("write the secrets");

        // "AWS": a listener that counts and drops every connection.
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let aws_port = listener.local_addr().expect("addr").port();
        let aws_connections = Arc::new(AtomicUsize::new(0));
        let counter = aws_connections.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                counter.fetch_add(1, Ordering::SeqCst);
                if let Ok(mut c) = conn {
                    let mut buf = [0u8; 512];
                    let _ = c.set_read_timeout(Some(Duration::from_millis(50)));
                    let _ = c.read(&mut buf);
                }
            }
        });
        Laptop {
            server,
            dir,
            aws_port,
            aws_connections,
        }
    }

    fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    fn config(&self, text: &str) -> PathBuf {
        let p = self.dir.path().join("scope.toml");
        std::fs::write(&p, text).expect("write the config");
        p
    }

    /// scopectl with no AWS credentials, AWS at the counting port, the
    /// kubeconfig as `KUBECONFIG`.
    fn scopectl(&self, config: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new(support::binary());
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy().into_owned();
            if k.starts_with("AWS_") || k.starts_with("SCOPECTL_") {
                cmd.env_remove(&k);
            }
        }
        cmd.env(
            "AWS_ENDPOINT_URL",
            format!("http://127.0.0.1:{}", self.aws_port),
        )
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("HOME", self.dir.path().join("home"))
        .env("KUBECONFIG", self.kubeconfig())
        .env("SCOPECTL_RETRY_MIN_DELAY", support::RETRY_MIN_DELAY)
        .env("SCOPECTL_RETRY_MAX_DELAY", support::RETRY_MAX_DELAY)
        .env("NO_COLOR", "1")
        .arg("-c")
        .arg(config)
        .args(args)
        .stdin(Stdio::null());
        cmd
    }

    fn expect(&self, code: i32, config: &Path, args: &[&str]) -> (String, String) {
        expect_exit(code, args, output(self.scopectl(config, args)))
    }

    fn kubectl(&self, args: &[&str]) -> String {
        let bin = kubectl_binary().expect("kubectl");
        let out = Command::new(bin)
            .env("KUBECONFIG", self.kubeconfig())
            .env("HOME", self.dir.path().join("home"))
            .arg("--context")
            .arg(CONTEXT)
            .args(args)
            .output()
            .expect("run kubectl");
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    fn image(&self, service: &str) -> String {
        self.kubectl(&[
            "-n",
            "scope",
            "get",
            "deploy",
            service,
            "-o",
            "jsonpath={.spec.template.spec.containers[0].image}",
        ])
    }

    fn aws_connections(&self) -> usize {
        self.aws_connections.load(Ordering::SeqCst)
    }
}

/// The example's services, an AWS env (never contacted) and a local one.
fn config_text() -> String {
    let mut text = String::from(
        "project = \"scope\"\n\n[aws]\nregion = \"us-east-1\"\n\n[network]\ncidr = \"172.31.128.0/20\"\n\n[database]\nrds_instance = \"scope-db\"\n",
    );
    for (s, replicas, extra) in [
        (
            "users",
            2,
            "secrets = { DB_PASSWORD = \"/scope/db-password\" }\n",
        ),
        ("provisioning", 2, ""),
        ("ui", 2, ""),
        ("frontend", 2, "expose = \"elb\"\n"),
        ("monitoring", 1, ""),
    ] {
        text.push_str(&format!(
            "\n[services.{s}]\nimage = \"registry.example/scope/{s}\"\nreplicas = {replicas}\nport = 8080\ninitial_tag = \"v1.4.2\"\n{extra}"
        ));
    }
    text.push_str(&format!(
        "\n[env.staging]\ndatabase.rds_instance = \"scope-staging-db\"\n\n[env.local]\nprovider = \"local\"\nkube_context = \"{CONTEXT}\"\ndatabase.host = \"host.docker.internal\"\nsecrets_from = {{ file = \"local.secrets\" }}\nservices.users.replicas = 1\n\n[env.elsewhere]\nprovider = \"local\"\nkube_context = \"kind-elsewhere\"\ndatabase.host = \"host.docker.internal\"\nsecrets_from = {{ env_prefix = \"ELSEWHERE_\" }}\n"
    ));
    text
}

fn objects_of_scope(laptop: &Laptop) -> Vec<String> {
    let mut left = Vec::new();
    for (api, kind) in [
        ("v1", "Namespace"),
        ("v1", "Service"),
        ("v1", "Secret"),
        ("v1", "ConfigMap"),
        ("apps/v1", "Deployment"),
        ("coordination.k8s.io/v1", "Lease"),
    ] {
        for o in laptop.server.cluster.objects(api, kind) {
            let name = o
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("");
            let ns = o
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or("");
            let labels = o.pointer("/metadata/labels").cloned().unwrap_or_default();
            if ns == "scope"
                || name == "scope"
                || name.starts_with("scopectl-")
                || labels
                    .get("app.kubernetes.io/managed-by")
                    .and_then(Value::as_str)
                    == Some("scopectl")
            {
                left.push(format!("{kind} {ns}/{name}"));
            }
        }
    }
    left
}

#[test]
fn a_local_env_runs_the_same_commands_with_no_aws_call() {
    if kubectl_binary().is_none() {
        eprintln!("skipped: kubectl is not on PATH");
        return;
    }
    let laptop = Laptop::start(cluster::config());
    let cfg = laptop.config(&config_text());
    let local = ["--env", "local"];
    let with = |args: &[&'static str]| -> Vec<&'static str> {
        local.iter().chain(args).copied().collect()
    };

    // Before: every object a create; the other context is never used.
    let (out, _) = laptop.expect(2, &cfg, &with(&["plan", "--detailed-exitcode"]));
    assert!(out.contains("k8s/apps/v1/Deployment/scope/users"), "{out}");
    assert!(
        !out.contains("coredns") && !out.contains("flannel"),
        "add-ons on a laptop: {out}"
    );
    assert!(!out.contains("after the API is up"), "{out}");

    let before = laptop.server.cluster.requests().len();
    let started = std::time::Instant::now();
    let (_, err) = laptop.expect(0, &cfg, &with(&["up", "--yes"]));
    eprintln!(
        "local up: {} API calls, {:.2}s",
        laptop.server.cluster.requests().len() - before,
        started.elapsed().as_secs_f64()
    );
    assert!(
        err.contains("port-forward svc/frontend 8080:8080"),
        "how to reach the exposed service: {err}"
    );
    // The same workloads, with the env's overlays.
    let replicas = laptop.kubectl(&[
        "-n",
        "scope",
        "get",
        "deploy",
        "-o",
        "jsonpath={range .items[*]}{.metadata.name}={.spec.replicas} {end}",
    ]);
    assert!(replicas.contains("users=1 "), "{replicas}");
    assert!(replicas.contains("ui=2 "), "{replicas}");
    let frontend = laptop.kubectl(&[
        "-n",
        "scope",
        "get",
        "svc",
        "frontend",
        "-o",
        "jsonpath={.spec.type}",
    ]);
    assert_eq!(frontend, "NodePort");
    let db = laptop.kubectl(&[
        "-n",
        "scope",
        "get",
        "svc",
        "database",
        "-o",
        "jsonpath={.spec.externalName}:{.spec.ports[0].port}",
    ]);
    assert_eq!(db, "host.docker.internal:5432");
    let secret = laptop.kubectl(&[
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
        .decode(secret.trim())
        .expect("base64");
    assert_eq!(decoded, b"local-pass");

    // Nothing more to do: one list per kind.
    let before = laptop.server.cluster.requests().len();
    let started = std::time::Instant::now();
    laptop.expect(0, &cfg, &with(&["plan", "--detailed-exitcode"]));
    let calls = laptop.server.cluster.requests().len() - before;
    eprintln!(
        "local no-op plan: {calls} API calls, {:.2}s",
        started.elapsed().as_secs_f64()
    );
    // One list per kind (13 kinds).
    assert!(calls <= 13, "a no-op plan made {calls} calls");
    let (status, _) = laptop.expect(0, &cfg, &with(&["status"]));
    assert!(status.contains("provider \"local\""), "{status}");
    assert!(
        status.contains("users") && status.contains("1/1 ready"),
        "{status}"
    );
    assert!(status.contains("lock: free"), "{status}");
    let (json, _) = laptop.expect(0, &cfg, &with(&["status", "--output", "json"]));
    support::assert_schema("status", &json);

    // A good release, then a failing one rolled back.
    laptop.expect(
        0,
        &cfg,
        &with(&["rollout", "--yes", "users=v1.5.0", "ui=v1.5.0"]),
    );
    assert_eq!(laptop.image("users"), "registry.example/scope/users:v1.5.0");
    let (_, err) = laptop.expect(
        3,
        &cfg,
        &with(&[
            "rollout",
            "--yes",
            "--failure-grace",
            "1s",
            "users=crashloop",
        ]),
    );
    assert!(err.contains("rolled back"), "{err}");
    assert_eq!(laptop.image("users"), "registry.example/scope/users:v1.5.0");
    let (history, _) = laptop.expect(0, &cfg, &with(&["rollout", "history"]));
    assert!(history.contains("rolled back"), "{history}");
    let (current, _) = laptop.expect(0, &cfg, &with(&["rollout", "status"]));
    assert!(current.contains("v1.5.0"), "{current}");
    laptop.expect(0, &cfg, &with(&["plan", "--detailed-exitcode"]));

    // What differs from another local env whose cluster is not there: its
    // tags are the ones it would run.
    let (diff, _) = laptop.expect(
        0,
        &cfg,
        &["diff-env", "local", "elsewhere", "--output", "json"],
    );
    support::assert_schema("diff-env", &diff);
    let diff: Value = serde_json::from_str(&diff).expect("JSON");
    let tag = diff["differences"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|d| d["service"] == "users" && d["field"] == "tag")
        .unwrap_or_else(|| panic!("no tag difference: {diff}"));
    assert_eq!(tag["a"], "v1.5.0");
    assert_eq!(tag["b"], "v1.4.2");

    laptop.expect(0, &cfg, &with(&["rollout", "--yes", "users=v1.6.0"]));
    laptop.expect(0, &cfg, &with(&["rollout", "undo", "--yes"]));
    assert_eq!(laptop.image("users"), "registry.example/scope/users:v1.5.0");

    // pki and kubeconfig are an AWS env's: refused, nothing touched.
    laptop.expect(64, &cfg, &with(&["pki", "status"]));
    laptop.expect(64, &cfg, &with(&["kubeconfig"]));

    let (_, err) = laptop.expect(0, &cfg, &with(&["down", "--yes"]));
    assert!(err.contains("Teardown complete"), "{err}");
    assert_eq!(objects_of_scope(&laptop), Vec::<String>::new());
    laptop.expect(0, &cfg, &with(&["down", "--yes"]));

    assert_eq!(
        laptop.aws_connections(),
        0,
        "a local env made AWS connections"
    );
}

#[test]
fn a_local_env_is_locked_by_a_lease() {
    if kubectl_binary().is_none() {
        eprintln!("skipped: kubectl is not on PATH");
        return;
    }
    // Slow enough that the two runs overlap.
    let laptop = Laptop::start(Config {
        latency: Duration::from_millis(40),
        ..cluster::config()
    });
    let cfg = laptop.config(&config_text());
    let args = ["--env", "local", "up", "--yes"];
    let a = laptop
        .scopectl(&cfg, &args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start");
    let b = laptop
        .scopectl(&cfg, &args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start");
    let results: Vec<(i32, String)> = [a, b]
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().expect("wait");
            (
                out.status.code().unwrap_or(-1),
                String::from_utf8_lossy(&out.stderr).to_string(),
            )
        })
        .collect();
    let codes: Vec<i32> = results.iter().map(|r| r.0).collect();
    assert!(
        codes.contains(&0) && codes.contains(&4),
        "one applies, the other finds the lock: {results:?}"
    );
    let held = &results.iter().find(|r| r.0 == 4).expect("exit 4").1;
    assert!(held.contains("error: env is locked by"), "{held}");
    assert!(held.contains("scopectl unlock --env"), "{held}");

    // A lock left by another machine: refused with its holder, broken by
    // `unlock`, then `up` goes ahead.
    let lease = format!(
        "apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata:\n  name: scopectl-lock-scope-local\n  namespace: kube-system\n  annotations:\n    scopectl.io/lock: '{}'\nspec:\n  holderIdentity: feedfacecafebeef\n",
        r#"{"id":"feedfacecafebeef","holder":"ci@runner-7 (pid 42)","host":"runner-7","pid":42,"command":"rollout","started":"2026-11-26T10:00:00Z"}"#
    );
    let file = laptop.dir.path().join("lease.yaml");
    std::fs::write(&file, lease).expect("write");
    laptop.kubectl(&["apply", "-f", &file.to_string_lossy()]);
    laptop.kubectl(&["-n", "scope", "scale", "deploy", "users", "--replicas", "3"]);
    let (_, err) = laptop.expect(4, &cfg, &args);
    assert!(
        err.contains("ci@runner-7 (pid 42)") && err.contains("feedfacecafebeef"),
        "{err}"
    );
    let (status, _) = laptop.expect(0, &cfg, &["--env", "local", "status"]);
    assert!(status.contains("lock: held by ci@runner-7"), "{status}");
    laptop.expect(0, &cfg, &["--env", "local", "unlock", "feedfacecafebeef"]);
    laptop.expect(0, &cfg, &args);
    laptop.expect(0, &cfg, &["--env", "local", "plan", "--detailed-exitcode"]);
    assert_eq!(laptop.aws_connections(), 0);
}

/// `down` then `up` at once, the everyday recreate of an env, against a
/// server that deletes as kube-apiserver does (a Terminating namespace
/// refuses new content until its controller has emptied it; pods go after
/// their 30 s grace period, 3 s here): `down` returns only once what it
/// deleted is gone, so the `up` right after it succeeds; an `up` that
/// finds the namespace still terminating (deleted by someone else a moment
/// before) waits it out, saying why; a namespace held by a finalizer nobody
/// removes makes `down` exit 1 naming it.
#[test]
fn down_then_up_at_once_and_a_namespace_that_never_goes() {
    let laptop = Laptop::start(Config {
        time_scale: Some(10.0),
        ..cluster::config()
    });
    let cfg = laptop.config(&config_text());
    let local = |args: &[&'static str]| -> Vec<&'static str> {
        ["--env", "local"].iter().chain(args).copied().collect()
    };
    laptop.expect(0, &cfg, &local(&["up", "--yes"]));
    let (_, down_err) = laptop.expect(0, &cfg, &local(&["down", "--yes"]));
    let left = objects_of_scope(&laptop);
    // Right after: the `up` of a recreate. (Before `down` waited, this one
    // met a Terminating namespace: 403 on every object.)
    laptop.expect(0, &cfg, &local(&["up", "--yes"]));
    laptop.expect(0, &cfg, &local(&["plan", "--detailed-exitcode"]));
    assert!(down_err.contains("Waiting for"), "{down_err}");
    assert!(
        down_err.contains("k8s/v1/Namespace/scope (Terminating"),
        "{down_err}"
    );
    assert!(left.is_empty(), "down returned with objects left: {left:?}");

    // Someone deletes the namespace; `up` right after waits it out.
    if kubectl_binary().is_some() {
        laptop.kubectl(&["delete", "namespace", "scope", "--wait=false"]);
        let (_, err) = laptop.expect(0, &cfg, &local(&["up", "--yes"]));
        assert!(
            err.contains("Being deleted (an earlier down or delete): k8s/v1/Namespace/scope"),
            "{err}"
        );
        laptop.expect(0, &cfg, &local(&["plan", "--detailed-exitcode"]));

        // A finalizer nobody removes: `down` gives up at its --timeout and
        // names what holds the namespace.
        let cm = laptop.dir.path().join("held.yaml");
        std::fs::write(
            &cm,
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: held\n  namespace: scope\n  finalizers: [example.com/keep]\n",
        )
        .unwrap();
        laptop.kubectl(&["apply", "-f", cm.to_str().unwrap()]);
        let (_, err) = laptop.expect(1, &cfg, &local(&["down", "--yes", "--timeout", "8s"]));
        assert!(
            err.contains("deleted object is still there after 8s"),
            "{err}"
        );
        assert!(
            err.contains("example.com/keep in 1 resource instances"),
            "{err}"
        );
        assert!(err.contains("k8s/v1/Namespace/scope (Terminating"), "{err}");
    }
}

/// A service leaves the config while the cluster deletes as a real one
/// does: `up` prunes its objects (their pods then terminate for their
/// grace period, 3 s here) and a fresh plan is empty at once; put back a
/// moment later, while those pods still terminate, `up` makes it again.
#[test]
fn a_pruned_service_whose_pods_still_terminate_comes_back() {
    let laptop = Laptop::start(Config {
        time_scale: Some(10.0),
        ..cluster::config()
    });
    let full = config_text();
    let cfg = laptop.config(&full);
    let local = |args: &[&'static str]| -> Vec<&'static str> {
        ["--env", "local"].iter().chain(args).copied().collect()
    };
    laptop.expect(0, &cfg, &local(&["up", "--yes"]));
    let without = full.replace(
        "\n[services.monitoring]\nimage = \"registry.example/scope/monitoring\"\nreplicas = 1\nport = 8080\ninitial_tag = \"v1.4.2\"\n",
        "\n",
    );
    assert_ne!(without, full);
    laptop.config(&without);
    laptop.expect(0, &cfg, &local(&["up", "--yes"]));
    laptop.expect(0, &cfg, &local(&["plan", "--detailed-exitcode"]));
    let terminating: Vec<Value> = laptop
        .server
        .cluster
        .objects("v1", "Pod")
        .into_iter()
        .filter(|p| {
            p.pointer("/metadata/name")
                .and_then(Value::as_str)
                .is_some_and(|n| n.starts_with("monitoring-"))
        })
        .collect();
    assert!(
        !terminating.is_empty(),
        "the pruned service's pods are gone already"
    );
    assert!(
        terminating
            .iter()
            .all(|p| p.pointer("/metadata/deletionTimestamp").is_some()),
        "{terminating:#?}"
    );
    laptop.config(&full);
    laptop.expect(0, &cfg, &local(&["up", "--yes"]));
    laptop.expect(0, &cfg, &local(&["plan", "--detailed-exitcode"]));
}
