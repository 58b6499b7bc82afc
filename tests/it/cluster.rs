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

    sb.expect_in_cluster(0, &tc, &cfg, &["--env", env, "down", "--yes"]);
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
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "dropping took {:?}",
        t.elapsed()
    );
    // The port is free again.
    std::net::TcpListener::bind(addr).unwrap();
}
