//! The test API server (tests/apiserver) checked against the real kubectl,
//! with the env's own PKI: `scopectl up` puts the PKI in the state store,
//! the server serves the stored API server certificate and trusts the
//! stored CA, and kubectl uses the admin kubeconfig `scopectl kubeconfig`
//! wrote. The kubeconfig names the API load balancer; here, as in the
//! sandbox, that name is reached on loopback: the server line points at the
//! server's port and `tls-server-name` keeps the load balancer's name, so
//! kubectl still checks the certificate against it.
//!
//! kubectl must be on PATH; without it the test fails under CI (`CI` set)
//! and is skipped otherwise.

#[path = "it/support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use scopectl_apiserver::{testpki, Config, NodeSpec, Server, Tls};
use serde_json::Value;
use support::{config_text, Sandbox};

fn kubectl_binary() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("kubectl"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "kubectl is not on PATH: CI must check the API server against the real kubectl (install kubectl 1.32)"
        );
        eprintln!("skipped: kubectl is not on PATH (under CI this fails)");
    }
    found
}

struct Kubectl {
    bin: PathBuf,
    config: PathBuf,
}

impl Kubectl {
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.env("KUBECONFIG", &self.config)
            .env_remove("KUBERNETES_MASTER")
            .env("HOME", self.config.parent().unwrap())
            .args(args)
            .stdin(Stdio::null());
        c
    }

    fn run(&self, args: &[&str]) -> (i32, String, String) {
        let out = self.cmd(args).output().expect("run kubectl");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    }

    fn ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.run(args);
        assert_eq!(
            code, 0,
            "kubectl {args:?} exited {code}\n--- stdout\n{out}\n--- stderr\n{err}"
        );
        out
    }
}

/// The kubeconfig's server moved to the loopback server; the certificate is
/// still checked against the name it had.
fn point_at(kubeconfig: &Path, port: u16) -> String {
    let text = std::fs::read_to_string(kubeconfig).unwrap();
    let mut doc: serde_norway::Value = serde_norway::from_str(&text).unwrap();
    let cluster = &mut doc["clusters"][0]["cluster"];
    let server = cluster["server"].as_str().unwrap().to_string();
    let host = server
        .trim_start_matches("https://")
        .rsplit_once(':')
        .map(|(h, _)| h.to_string())
        .unwrap();
    cluster["server"] = format!("https://127.0.0.1:{port}").into();
    cluster["tls-server-name"] = host.clone().into();
    std::fs::write(kubeconfig, serde_norway::to_string(&doc).unwrap()).unwrap();
    host
}

const MANIFESTS: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: default
  labels: {app: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: registry.example/scope/web:v1
        ports:
        - containerPort: 8080
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: default
spec:
  type: NodePort
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: 8080, nodePort: 30080}
"#;

#[test]
fn kubectl_drives_the_test_api_server_with_the_envs_pki() {
    let Some(bin) = kubectl_binary() else { return };
    let sb = Sandbox::start();
    let env = "kubectl";
    sb.prepare_db("scope-kubectl-db");
    let cfg = sb.config("scope.toml", &config_text(env, "scope-kubectl-db", ""));
    sb.expect(0, &cfg, &["--env", env, "up", "--yes"]);

    // The masters' stand-in: the stored certificate and CA, a node per instance.
    let cluster: Value =
        serde_json::from_str(&sb.python(&["cluster", "--project", "scope", "--env", env])).unwrap();
    let nodes: Vec<NodeSpec> = cluster["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| NodeSpec {
            name: n["name"].as_str().unwrap().into(),
            internal_ip: n["ip"].as_str().unwrap().into(),
            master: n["master"] == true,
            zone: n["zone"].as_str().map(str::to_string),
            instance_id: n["id"].as_str().map(str::to_string),
            instance_type: n["type"].as_str().map(str::to_string),
        })
        .collect();
    assert_eq!(nodes.len(), 4, "one master and three nodes: {cluster}");
    let tls = Tls::from_bundles(
        cluster["apiserver"].as_str().unwrap(),
        cluster["ca"].as_str().unwrap(),
    );
    // 600 simulated seconds of progress deadline take 4 s.
    let config = Config {
        nodes: nodes.clone(),
        time_scale: Some(150.0),
        ..Config::default()
    };
    let server = Server::start(config, &tls, "127.0.0.1:0").unwrap();

    let kubeconfig = sb.dir.path().join("admin.kubeconfig");
    sb.expect(
        0,
        &cfg,
        &[
            "--env",
            env,
            "kubeconfig",
            "--out",
            kubeconfig.to_str().unwrap(),
        ],
    );
    let host = point_at(&kubeconfig, server.addr.port());
    assert!(
        host.contains("elb.amazonaws.com"),
        "the API load balancer's name: {host}"
    );
    let k = Kubectl {
        bin,
        config: kubeconfig.clone(),
    };

    let out = k.ok(&["get", "nodes,ns", "-A"]);
    for n in &nodes {
        assert!(out.contains(&format!("node/{}", n.name)), "{out}");
    }
    assert!(
        out.contains("control-plane") && out.contains("Ready"),
        "{out}"
    );
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(out.contains(&format!("namespace/{ns} ")), "{out}");
    }

    let manifests = sb.dir.path().join("web.yaml");
    std::fs::write(&manifests, MANIFESTS).unwrap();
    let out = k.ok(&["apply", "--server-side", "-f", manifests.to_str().unwrap()]);
    assert_eq!(
        out,
        "deployment.apps/web serverside-applied\nservice/web serverside-applied\n"
    );
    let yaml = k.ok(&[
        "get",
        "deployment",
        "web",
        "-o",
        "yaml",
        "--show-managed-fields",
    ]);
    assert!(
        yaml.contains("manager: kubectl\n    operation: Apply"),
        "{yaml}"
    );
    assert!(
        yaml.contains("f:replicas: {}") && yaml.contains("k:{\"name\":\"web\"}:"),
        "{yaml}"
    );
    assert!(
        yaml.contains("subresource: status"),
        "the controller's status entry: {yaml}"
    );
    let svc = k.ok(&[
        "get",
        "service",
        "web",
        "-o",
        "jsonpath={.spec.clusterIP} {.spec.ports[0].nodePort}",
    ]);
    assert!(
        svc.starts_with("10.96.") && svc.ends_with(" 30080"),
        "{svc}"
    );

    let out = k.ok(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    assert!(
        out.contains("deployment \"web\" successfully rolled out"),
        "{out}"
    );

    // A crashlooping tag never becomes available: the deadline message.
    k.ok(&[
        "set",
        "image",
        "deployment/web",
        "web=registry.example/scope/web:v2-crashloop",
    ]);
    // The server's progress deadline ends the wait, not kubectl's own
    // --timeout (which would say "timed out waiting for the condition").
    let (code, _, err) = k.run(&["rollout", "status", "deployment/web", "--timeout=600s"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("error: deployment \"web\" exceeded its progress deadline"),
        "{err}"
    );
    let pods = k.ok(&["get", "pods"]);
    assert!(pods.contains("CrashLoopBackOff"), "{pods}");

    let history = k.ok(&["rollout", "history", "deployment/web"]);
    assert!(
        history.contains("REVISION  CHANGE-CAUSE\n1         <none>\n2         <none>"),
        "{history}"
    );
    assert_eq!(
        k.ok(&["rollout", "undo", "deployment/web"]),
        "deployment.apps/web rolled back\n"
    );
    k.ok(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    let history = k.ok(&["rollout", "history", "deployment/web"]);
    assert!(
        history.contains("REVISION  CHANGE-CAUSE\n2         <none>\n3         <none>"),
        "revision 1 came back as 3: {history}"
    );
    let image = k.ok(&[
        "get",
        "deployment",
        "web",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].image}",
    ]);
    assert_eq!(image, "registry.example/scope/web:v1");
    assert_eq!(
        k.ok(&["get", "rs", "-o", "name"]).lines().count(),
        2,
        "undo reused the first ReplicaSet"
    );

    assert_eq!(
        k.ok(&["scale", "deployment/web", "--replicas=3"]),
        "deployment.apps/web scaled\n"
    );
    k.ok(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    assert_eq!(
        k.ok(&[
            "get",
            "deployment",
            "web",
            "-o",
            "jsonpath={.status.availableReplicas}"
        ]),
        "3"
    );

    // A watch receives the deletion.
    let mut watch = k
        .cmd(&[
            "get",
            "deployments",
            "--watch",
            "--output-watch-events",
            "--request-timeout=30s",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = BufReader::new(watch.stdout.take().unwrap()).lines();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in lines.map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    let first = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the watch lists first");
    assert!(first.starts_with("EVENT"), "{first}");
    let added = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the current deployment");
    assert!(
        added.starts_with("ADDED") && added.contains("web"),
        "{added}"
    );
    assert_eq!(
        k.ok(&["delete", "deployment", "web"]),
        "deployment.apps \"web\" deleted\n"
    );
    let deleted = std::iter::from_fn(|| rx.recv_timeout(Duration::from_secs(60)).ok())
        .find(|l| l.starts_with("DELETED"))
        .expect("the watch receives the deletion");
    assert!(deleted.contains("web"), "{deleted}");
    let _ = watch.kill();
    let _ = watch.wait();
    // The ReplicaSets went with it; the pods terminate for their grace
    // period first (30 simulated seconds), as on a real cluster.
    let started = std::time::Instant::now();
    loop {
        let left = k.ok(&["get", "rs,pods", "-o", "name"]);
        if left.is_empty() {
            break;
        }
        assert!(
            !left.contains("replicaset") && started.elapsed() < Duration::from_secs(60),
            "the ReplicaSets and pods went with it: {left}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        k.ok(&[
            "delete",
            "-f",
            manifests.to_str().unwrap(),
            "--ignore-not-found"
        ]),
        "service \"web\" deleted\n"
    );

    // A client certificate from another CA (as another env's would be) is refused.
    let other = testpki::generate(&[]).unwrap();
    let foreign = sb.dir.path().join("foreign.kubeconfig");
    let mut doc: serde_norway::Value =
        serde_norway::from_str(&std::fs::read_to_string(&kubeconfig).unwrap()).unwrap();
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    doc["users"][0]["user"]["client-certificate-data"] = b64(&other.admin_cert_pem).into();
    doc["users"][0]["user"]["client-key-data"] = b64(&other.admin_key_pem).into();
    std::fs::write(&foreign, serde_norway::to_string(&doc).unwrap()).unwrap();
    let f = Kubectl {
        bin: k.bin.clone(),
        config: foreign,
    };
    let (code, _, err) = f.run(&["get", "nodes"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("error: You must be logged in to the server (Unauthorized)"),
        "{err}"
    );

    // The request record: every call, its verb, path and status.
    let log = server.cluster.requests();
    let count = |verb: &str, status: u16| {
        log.iter()
            .filter(|r| r.verb == verb && r.status == status)
            .count()
    };
    assert!(count("patch", 201) >= 2, "the two applies created");
    assert_eq!(count("delete", 200), 2);
    assert!(
        count("watch", 200) >= 3,
        "rollout status and get --watch watch"
    );
    assert!(log.iter().any(|r| r.status == 401 && r.user.is_empty()));
}
