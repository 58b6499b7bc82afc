use std::path::Path;

use super::*;
use crate::config;
use crate::render::validate_tests::validate_k8s;

/// The example database endpoint's zone and the example VPC's resolver (its
/// base address plus two).
const ZONE: &str = "c9akciq32.us-east-1.rds.amazonaws.com";
const RESOLVER: &str = "172.31.0.2";

/// The add-on inputs of the example config's staging env.
fn inputs(database: bool) -> AddonInputs {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/scope.toml"))
        .unwrap();
    let c = config::parse(Path::new("examples/scope.toml"), &text, "staging").unwrap();
    AddonInputs {
        kubernetes_version: c.cluster.kubernetes_version.clone(),
        cluster_name: format!("{}-{}", c.project, c.env),
        region: c.aws.region.clone(),
        pod_cidr: c.cluster.pod_cidr.to_string(),
        service_cidr: c.cluster.service_cidr.to_string(),
        dns_service_ip: dns_service_ip(&c.cluster.service_cidr).unwrap().to_string(),
        domain: c.cluster.domain.clone(),
        database_zone: database.then(|| ZONE.to_string()),
        database_resolver: database.then(|| RESOLVER.to_string()),
    }
}

fn find<'a>(addons: &'a [Addon], name: &str) -> &'a Addon {
    addons
        .iter()
        .find(|a| a.name == name)
        .unwrap_or_else(|| panic!("no add-on {name}"))
}

fn object<'a>(addon: &'a Addon, kind: &str, name: &str) -> &'a serde_json::Value {
    addon
        .objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("{} has no {kind} {name}", addon.name))
}

fn corefile(addons: &[Addon]) -> String {
    object(find(addons, "coredns"), "ConfigMap", "coredns")["data"]["Corefile"]
        .as_str()
        .unwrap()
        .to_string()
}

/// An add-on's objects as one YAML stream, as reviewers read them.
fn yaml(addon: &Addon) -> String {
    let mut out = format!("# {} {}\n", addon.name, addon.version);
    for o in &addon.objects {
        out.push_str("---\n");
        out.push_str(&serde_norway::to_string(o).unwrap());
    }
    out
}

#[test]
fn the_example_env_has_the_three_addons_in_order() {
    let addons = addons(&inputs(false)).unwrap();
    let names: Vec<(&str, &str)> = addons
        .iter()
        .map(|a| (a.name, a.version.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("pod-network", "flannel v0.28.1"),
            ("cloud-controller-manager", "v1.35.2"),
            ("coredns", "v1.11.3"),
        ]
    );
}

#[test]
fn addon_snapshots() {
    for database in [false, true] {
        for addon in addons(&inputs(database)).unwrap() {
            // The database zone changes CoreDNS's Corefile only.
            if database && addon.name != "coredns" {
                continue;
            }
            let suffix = if database { "-database" } else { "" };
            insta::assert_snapshot!(format!("addon-{}{suffix}", addon.name), yaml(&addon));
        }
    }
}

/// Every rendered object passes the Kubernetes 1.31 schemas (strict), with
/// and without the database zone; and each pinned minor's add-ons pass that
/// minor's.
#[test]
fn addons_pass_the_kubernetes_schemas() {
    for database in [false, true] {
        let i = inputs(database);
        let objects: Vec<serde_json::Value> = addons(&i)
            .unwrap()
            .into_iter()
            .flat_map(|a| a.objects)
            .collect();
        validate_k8s(&objects, &i.kubernetes_version);
    }
    for minor in versions().unwrap().cloud_controller_manager.keys() {
        let i = AddonInputs {
            kubernetes_version: minor.clone(),
            ..inputs(true)
        };
        let objects: Vec<serde_json::Value> = addons(&i)
            .unwrap()
            .into_iter()
            .flat_map(|a| a.objects)
            .collect();
        validate_k8s(&objects, minor);
    }
}

/// apiVersion, kind, name, and a namespace on what is namespaced; nothing
/// the API server owns or defaults for nothing; no ownership labels (the
/// caller adds them).
#[test]
fn every_object_is_complete_and_minimal() {
    let cluster_scoped = [
        "Namespace",
        "ClusterRole",
        "ClusterRoleBinding",
        "PriorityClass",
    ];
    for addon in addons(&inputs(true)).unwrap() {
        assert!(!addon.objects.is_empty(), "{}", addon.name);
        for o in &addon.objects {
            let kind = o["kind"].as_str().expect("kind");
            let what = format!("{}: {kind} {}", addon.name, o["metadata"]["name"]);
            assert!(o["apiVersion"].is_string(), "{what}");
            assert!(o["metadata"]["name"].is_string(), "{what}");
            assert_eq!(
                o["metadata"]["namespace"].is_string(),
                !cluster_scoped.contains(&kind),
                "{what}"
            );
            let text = o.to_string();
            for never in [
                "\"status\"",
                "creationTimestamp",
                "resourceVersion",
                "\"uid\"",
                "managedFields",
                "app.kubernetes.io/managed-by",
                "imagePullPolicy",
                "terminationMessagePath",
            ] {
                assert!(!text.contains(never), "{what} has {never}");
            }
        }
    }
}

#[test]
fn the_corefile_has_every_plugin_and_the_database_block() {
    let i = inputs(true);
    let with = corefile(&addons(&i).unwrap());
    for plugin in [
        "errors",
        "health {\n        lameduck 5s\n    }",
        "ready",
        "kubernetes cluster.local in-addr.arpa ip6.arpa {\n        pods insecure\n        fallthrough in-addr.arpa ip6.arpa\n        ttl 30\n    }",
        "prometheus :9153",
        "forward . /etc/resolv.conf",
        "cache 30",
        "loop",
        "reload",
        "loadbalance",
    ] {
        assert!(with.contains(plugin), "no {plugin:?} in\n{with}");
    }
    let block = format!("{ZONE}:53 {{\n    errors\n    cache 30\n    forward . {RESOLVER}\n}}");
    assert!(with.contains(&block), "no {block:?} in\n{with}");
    // A server block of its own, after the main one.
    assert!(with.find(".:53 {").unwrap() < with.find(&block).unwrap());

    let without = corefile(&addons(&inputs(false)).unwrap());
    assert!(
        !without.contains(ZONE) && !without.contains(RESOLVER),
        "{without}"
    );
    assert_eq!(without.matches(":53 {").count(), 1, "{without}");
}

#[test]
fn kube_dns_is_at_the_tenth_address_of_the_service_range() {
    let i = inputs(false);
    assert_eq!(i.dns_service_ip, "10.96.0.10");
    let addons = addons(&i).unwrap();
    let coredns = find(&addons, "coredns");
    let service = object(coredns, "Service", "kube-dns");
    assert_eq!(service["spec"]["clusterIP"], i.dns_service_ip.as_str());
    assert_eq!(service["spec"]["selector"]["k8s-app"], "kube-dns");
    let ports: Vec<(i64, &str)> = service["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["port"].as_i64().unwrap(), p["protocol"].as_str().unwrap()))
        .collect();
    assert_eq!(ports, [(53, "UDP"), (53, "TCP"), (9153, "TCP")]);

    let deployment = object(coredns, "Deployment", "coredns");
    assert_eq!(deployment["spec"]["replicas"], 2);
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["priorityClassName"], "system-cluster-critical");
    let term = &pod["affinity"]["podAntiAffinity"]
        ["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"];
    assert_eq!(term["topologyKey"], "kubernetes.io/hostname");
    assert_eq!(
        term["labelSelector"]["matchExpressions"][0],
        serde_json::json!({"key": "k8s-app", "operator": "In", "values": ["kube-dns"]})
    );
    let container = &pod["containers"][0];
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/ready");
    assert_eq!(container["readinessProbe"]["httpGet"]["port"], 8181);
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/health");
    assert_eq!(container["livenessProbe"]["httpGet"]["port"], 8080);
    let pdb = object(coredns, "PodDisruptionBudget", "coredns");
    assert_eq!(pdb["spec"]["maxUnavailable"], 1);
}

#[test]
fn dns_service_ip_is_the_tenth_address() {
    let ip = |cidr: &str| dns_service_ip(&cidr.parse().unwrap()).map(|i| i.to_string());
    assert_eq!(ip("10.96.0.0/12").unwrap(), "10.96.0.10");
    assert_eq!(ip("10.100.0.0/16").unwrap(), "10.100.0.10");
    assert_eq!(ip("172.20.0.0/28").unwrap(), "172.20.0.10");
    let e = ip("10.0.0.0/29").unwrap_err().to_string();
    assert!(e.contains("no tenth address"), "{e}");
}

#[test]
fn flannel_routes_the_pod_range_over_vxlan() {
    let i = inputs(false);
    let addons = addons(&i).unwrap();
    let flannel = find(&addons, "pod-network");
    let config = object(flannel, "ConfigMap", "kube-flannel-cfg");
    let net: serde_json::Value =
        serde_json::from_str(config["data"]["net-conf.json"].as_str().unwrap()).unwrap();
    assert_eq!(net["Network"], i.pod_cidr.as_str());
    assert_eq!(net["Backend"]["Type"], "vxlan");
    let _: serde_json::Value =
        serde_json::from_str(config["data"]["cni-conf.json"].as_str().unwrap()).unwrap();
    object(flannel, "Namespace", "kube-flannel");
    let ds = object(flannel, "DaemonSet", "kube-flannel-ds");
    let pinned = versions().unwrap().flannel;
    let images: Vec<&str> = ["initContainers", "containers"]
        .iter()
        .flat_map(|k| ds["spec"]["template"]["spec"][k].as_array().unwrap())
        .map(|c| c["image"].as_str().unwrap())
        .collect();
    assert_eq!(
        images,
        [
            pinned.cni_plugin_image.as_str(),
            pinned.image.as_str(),
            pinned.image.as_str()
        ]
    );
    // Quoted numbers stay strings where the schema wants strings.
    let env = &ds["spec"]["template"]["spec"]["containers"][0]["env"];
    assert_eq!(env[2]["value"], "5000");
}

#[test]
fn the_cloud_controller_manager_runs_on_the_masters_at_the_clusters_minor() {
    for (minor, pinned) in versions().unwrap().cloud_controller_manager {
        let i = AddonInputs {
            kubernetes_version: minor.clone(),
            ..inputs(false)
        };
        let addons = addons(&i).unwrap();
        let ccm = find(&addons, "cloud-controller-manager");
        assert_eq!(ccm.version, pinned.version);
        assert!(
            pinned.version.starts_with(&format!("v{minor}.")),
            "{minor}: {}",
            pinned.version
        );
        let ds = object(ccm, "DaemonSet", "aws-cloud-controller-manager");
        let pod = &ds["spec"]["template"]["spec"];
        assert_eq!(
            pod["nodeSelector"],
            serde_json::json!({"node-role.kubernetes.io/control-plane": ""})
        );
        assert_eq!(pod["hostNetwork"], true);
        let tolerated: Vec<&str> = pod["tolerations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["key"].as_str().unwrap())
            .collect();
        for key in [
            "node.cloudprovider.kubernetes.io/uninitialized",
            "node-role.kubernetes.io/control-plane",
        ] {
            assert!(tolerated.contains(&key), "{minor}: {tolerated:?}");
        }
        let container = &pod["containers"][0];
        assert_eq!(container["image"], pinned.image.as_str());
        let args: Vec<&str> = container["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        for arg in [
            "--cloud-provider=aws",
            "--use-service-account-credentials=true",
            "--configure-cloud-routes=false",
        ] {
            assert!(args.contains(&arg), "{minor}: {args:?}");
        }
        object(ccm, "ClusterRole", "system:cloud-controller-manager");
        object(ccm, "ClusterRoleBinding", "system:cloud-controller-manager");
        let reader = object(
            ccm,
            "RoleBinding",
            "cloud-controller-manager:apiserver-authentication-reader",
        );
        assert_eq!(reader["metadata"]["namespace"], "kube-system");
        assert_eq!(
            reader["roleRef"]["name"],
            "extension-apiserver-authentication-reader"
        );
    }
}

#[test]
fn a_minor_without_a_pinned_release_is_an_error() {
    let i = AddonInputs {
        kubernetes_version: "1.29".into(),
        ..inputs(false)
    };
    let e = addons(&i).err().expect("1.29 rendered").to_string();
    assert!(
        e.contains("Kubernetes 1.29 has no pinned AWS cloud controller manager"),
        "{e}"
    );
    assert!(e.contains("1.31, 1.32"), "{e}");
}

/// Every pinned minor has its exact release, package and pause image; the
/// default is pinned and was in upstream support when it was made the
/// default; `kubernetes_pins` names the pinned minors for one that is not.
#[test]
fn every_supported_minor_pins_its_release_packages_and_pause_image() {
    let minors = supported_minors();
    assert!(
        minors.contains(&crate::config::DEFAULT_KUBERNETES_VERSION.to_string()),
        "{minors:?}"
    );
    for m in &minors {
        let p = kubernetes_pins(m).unwrap();
        assert!(p.release.starts_with(&format!("{m}.")), "{m}: {p:?}");
        assert_eq!(p.package, format!("{}-1.1", p.release), "{m}");
        assert!(p.pause_image.starts_with("registry.k8s.io/pause:3."), "{m}");
        assert_eq!(p.end_of_support.len(), 10, "{m}: YYYY-MM-DD");
    }
    // The newest pinned minor is the default, and it is supported past the
    // day it was made the default (2026-12-08).
    assert_eq!(
        minors.last().unwrap(),
        crate::config::DEFAULT_KUBERNETES_VERSION
    );
    let default = kubernetes_pins(crate::config::DEFAULT_KUBERNETES_VERSION).unwrap();
    assert!(default.end_of_support.as_str() > "2026-12-08");
    let e = kubernetes_pins("1.36").unwrap_err().to_string();
    assert!(e.contains("Kubernetes 1.36 is not pinned"), "{e}");
    assert!(e.contains("1.31, 1.32, 1.33, 1.34, 1.35"), "{e}");
}

/// Each image names its version's tag; registry.k8s.io images carry the
/// digest their promotion lists, and a digest is a full SHA-256.
#[test]
fn versions_are_pinned_in_one_place() {
    let v = versions().unwrap();
    let mut images = vec![
        (v.flannel.version.as_str(), v.flannel.image.as_str()),
        (v.coredns.version.as_str(), v.coredns.image.as_str()),
    ];
    for minor in ["1.31", "1.32", "1.33", "1.34", "1.35"] {
        assert!(v.cloud_controller_manager.contains_key(minor), "{minor}");
    }
    images.extend(
        v.cloud_controller_manager
            .values()
            .map(|p| (p.version.as_str(), p.image.as_str())),
    );
    for (version, image) in images {
        let (name, digest) = match image.split_once('@') {
            Some((n, d)) => (n, Some(d)),
            None => (image, None),
        };
        assert!(name.ends_with(&format!(":{version}")), "{image}");
        if image.starts_with("registry.k8s.io/") {
            assert!(digest.is_some(), "{image} has no digest");
        }
        if let Some(d) = digest {
            let hex = d.strip_prefix("sha256:").expect(image);
            assert!(
                hex.len() == 64
                    && hex
                        .bytes()
                        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
                "{image}"
            );
        }
    }
    assert!(v
        .flannel
        .cni_plugin_image
        .starts_with("ghcr.io/flannel-io/flannel-cni-plugin:v"));
    // Nothing else names an image: the templates take them from here.
    for (name, text) in TEMPLATES {
        assert!(
            !text.contains("image: ghcr.io") && !text.contains("image: registry."),
            "{name}"
        );
    }
}

#[test]
fn inputs_that_would_change_the_documents_are_errors() {
    type Change = fn(&mut AddonInputs);
    let cases: [(&str, Change); 6] = [
        ("domain", |i| i.domain = "cluster.local\n  x: y".into()),
        ("pod_cidr", |i| i.pod_cidr = "10.244.0.0".into()),
        ("dns_service_ip", |i| {
            i.dns_service_ip = "10.244.0.10".into()
        }),
        ("database_zone", |i| {
            i.database_zone = Some("x.com { }".into());
            i.database_resolver = Some(RESOLVER.into());
        }),
        ("database_resolver", |i| {
            i.database_zone = Some(ZONE.into());
            i.database_resolver = Some("resolver".into());
        }),
        ("go together", |i| {
            i.database_zone = Some(ZONE.into());
            i.database_resolver = None;
        }),
    ];
    for (expected, change) in cases {
        let mut i = inputs(false);
        change(&mut i);
        let e = addons(&i).err().expect(expected).to_string();
        assert!(e.contains(expected), "{expected}: {e}");
    }
}

/// Multi-document YAML: empty documents are skipped, integers stay
/// integers, quoted numbers stay strings.
#[test]
fn documents_parse_to_json_objects() {
    let docs = documents(
        "t",
        "---\n# only a comment\n---\na: 1\nb: \"53\"\nc: 0.5\n---\n---\nd: [x]\n",
    )
    .unwrap();
    assert_eq!(
        docs,
        [
            serde_json::json!({"a": 1, "b": "53", "c": 0.5}),
            serde_json::json!({"d": ["x"]})
        ]
    );
    assert!(docs[0]["a"].is_i64());
    let e = documents("t", "- a\n").unwrap_err().to_string();
    assert!(e.contains("not an object"), "{e}");
}

#[test]
fn ecr_repositories_are_told_by_their_host() {
    for yes in [
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/scope/users",
        "123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com/x",
        "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn/x",
    ] {
        assert!(is_ecr(yes), "{yes}");
    }
    for no in [
        "registry.example/scope/users",
        "public.ecr.aws/scope/users",
        "dkr.ecr.us-east-1.amazonaws.com.evil.example/x",
        "1.dkr.ecr.us-east-1.amazonaws.com.evil.example/x",
    ] {
        assert!(!is_ecr(no), "{no}");
    }
    let p = ecr_credential_provider().unwrap();
    assert!(p.url.contains(&format!("/{}/linux/amd64/", p.version)));
    assert_eq!(p.sha256.len(), 64);
}
