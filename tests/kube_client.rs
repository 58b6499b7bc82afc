//! The test API server (tests/apiserver) answers the `kube` crate, which the
//! cluster phase uses, as a real API server would: version, discovery, list,
//! server-side apply under a field manager, a conflict with another manager,
//! watch, and delete with its cascade.

use std::time::Duration;

use base64::Engine as _;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, WatchEvent, WatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Discovery};
use scopectl_apiserver::{testpki, Config, NodeSpec, Server};

fn kubeconfig(url: &str, pki: &testpki::Pki) -> String {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: {url}\n    certificate-authority-data: {}\nusers:\n- name: admin\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\ncontexts:\n- name: test\n  context: {{cluster: test, user: admin}}\ncurrent-context: test\n",
        b64(&pki.ca_pem),
        b64(&pki.admin_cert_pem),
        b64(&pki.admin_key_pem),
    )
}

fn deployment(image: &str) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "users", "namespace": "default", "labels": {"app": "users"}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "users"}},
            "template": {
                "metadata": {"labels": {"app": "users"}},
                "spec": {"containers": [{"name": "users", "image": image}]}
            }
        }
    })
}

#[test]
fn the_kube_crate_discovers_lists_applies_and_watches() {
    let pki = testpki::generate(&["127.0.0.1"]).unwrap();
    let config = Config {
        // A master (tainted: no workloads) and a node to run the pods.
        nodes: ["master-0", "node-0"]
            .iter()
            .enumerate()
            .map(|(i, n)| NodeSpec {
                name: format!("scope-kube-{n}"),
                internal_ip: format!("10.0.0.{}", 10 + i),
                master: n.starts_with("master"),
                zone: Some("us-east-1a".into()),
                instance_id: None,
                instance_type: None,
            })
            .collect(),
        time_scale: Some(150.0),
        ..Config::default()
    };
    let server = Server::start(config, &pki.tls(), "127.0.0.1:0").unwrap();
    let text = kubeconfig(&server.url(), &pki);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let kc = Kubeconfig::from_yaml(&text).unwrap();
        let cfg = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
            .await
            .unwrap();
        let client = Client::try_from(cfg).unwrap();

        let version = client.apiserver_version().await.unwrap();
        assert_eq!(version.major, "1", "{version:?}");

        // Discovery finds the groups and kinds the cluster phase uses.
        let discovery = Discovery::new(client.clone()).run().await.unwrap();
        let mut kinds = Vec::new();
        for group in discovery.groups() {
            for (ar, _caps) in group.recommended_resources() {
                kinds.push(format!("{}/{}", ar.api_version, ar.kind));
            }
        }
        for want in [
            "v1/Namespace",
            "v1/Service",
            "v1/ConfigMap",
            "apps/v1/Deployment",
            "apps/v1/DaemonSet",
            "rbac.authorization.k8s.io/v1/ClusterRole",
            "policy/v1/PodDisruptionBudget",
            "coordination.k8s.io/v1/Lease",
        ] {
            assert!(kinds.iter().any(|k| k == want), "{want} not in {kinds:?}");
        }

        let nodes: Api<Node> = Api::all(client.clone());
        let list = nodes.list(&ListParams::default()).await.unwrap();
        assert_eq!(list.items.len(), 2);

        // Server-side apply under scopectl's field manager, watched to ready.
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
        let mut watch = deployments
            .watch(&WatchParams::default().fields("metadata.name=users"), "0")
            .await
            .unwrap()
            .boxed();
        let applied = deployments
            .patch(
                "users",
                &PatchParams::apply("scopectl").force(),
                &Patch::Apply(&deployment("registry.example/scope/users:v1")),
            )
            .await
            .unwrap();
        let managers: Vec<String> = applied
            .metadata
            .managed_fields
            .unwrap_or_default()
            .into_iter()
            .filter_map(|m| m.manager)
            .collect();
        assert_eq!(managers, ["scopectl"]);
        let ready = tokio::time::timeout(Duration::from_secs(20), async {
            while let Some(event) = watch.next().await {
                if let WatchEvent::Modified(d) | WatchEvent::Added(d) = event.unwrap() {
                    let s = d.status.unwrap_or_default();
                    if s.available_replicas == Some(2) && s.updated_replicas == Some(2) {
                        return;
                    }
                }
            }
            panic!("the watch ended before the rollout");
        })
        .await;
        assert!(ready.is_ok(), "no ready rollout within 20 s");

        // Another manager's apply of the same field is a conflict naming it.
        let conflict = deployments
            .patch(
                "users",
                &PatchParams::apply("someone-else"),
                &Patch::Apply(&deployment("registry.example/scope/users:v2")),
            )
            .await
            .unwrap_err();
        match conflict {
            kube::Error::Api(e) => {
                assert_eq!(e.code, 409, "{e:?}");
                assert!(e.message.contains("image"), "{e:?}");
            }
            other => panic!("{other:?}"),
        }

        // Delete cascades to the pods: each is deleted and terminates for
        // its grace period, as on a real cluster.
        deployments
            .delete("users", &DeleteParams::default())
            .await
            .unwrap();
        let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
        let left = pods
            .list(&ListParams::default().labels("app=users"))
            .await
            .unwrap();
        assert!(
            left.items
                .iter()
                .all(|p| p.metadata.deletion_timestamp.is_some()),
            "{:?}",
            left.items.len()
        );
        // Then they go (30 simulated seconds: 0.2 s here; the bound only
        // guards against a hang).
        let started = std::time::Instant::now();
        while !pods
            .list(&ListParams::default().labels("app=users"))
            .await
            .unwrap()
            .items
            .is_empty()
        {
            assert!(started.elapsed() < std::time::Duration::from_secs(60));
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    });
    drop(server);
}
