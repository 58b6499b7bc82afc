//! The API server's own rules, through its request handler: server-side
//! apply (ownership, conflicts, removal, list merge), updates and
//! preconditions, watches (resumption, 410, bookmarks, selectors), the
//! Deployment controller's status sequences, allocation conflicts,
//! validation, garbage collection, faults and the request log.

use std::time::Duration;

use http::Method;
use scopectl_apiserver::{Cluster, Config, Fault, Faults, NodeSpec, Request};
use serde_json::{json, Value};

fn nodes() -> Vec<NodeSpec> {
    let n = |i: usize, master: bool| NodeSpec {
        name: format!("ip-10-0-{i}-10.ec2.internal"),
        internal_ip: format!("10.0.{i}.10"),
        master,
        zone: Some("us-east-1a".into()),
        instance_id: Some(format!("i-{i:017x}")),
        instance_type: Some("m5.large".into()),
    };
    vec![n(0, true), n(1, false), n(2, false), n(3, false)]
}

/// A cluster on a manual clock: time moves only by `advance`.
fn cluster() -> Cluster {
    Cluster::new(Config {
        nodes: nodes(),
        time_scale: None,
        ..Config::default()
    })
}

async fn call(c: &Cluster, method: Method, path: &str, body: Value, ct: &str) -> (u16, Value) {
    let body = if body.is_null() {
        Vec::new()
    } else {
        serde_json::to_vec(&body).unwrap()
    };
    let r = c
        .handle(Request::admin(method, path, body).content_type(ct))
        .await;
    (r.status, r.json_body())
}

async fn get(c: &Cluster, path: &str) -> Value {
    let (s, v) = call(c, Method::GET, path, Value::Null, "").await;
    assert_eq!(s, 200, "GET {path}: {v}");
    v
}

async fn apply(c: &Cluster, manager: &str, force: bool, obj: Value) -> (u16, Value) {
    let ns = obj["metadata"]["namespace"].as_str().unwrap_or("default");
    let name = obj["metadata"]["name"].as_str().unwrap();
    let (prefix, plural) = match obj["kind"].as_str().unwrap() {
        "Deployment" => ("/apis/apps/v1", "deployments"),
        "Service" => ("/api/v1", "services"),
        "ConfigMap" => ("/api/v1", "configmaps"),
        k => panic!("{k}"),
    };
    let path =
        format!("{prefix}/namespaces/{ns}/{plural}/{name}?fieldManager={manager}&force={force}");
    call(c, Method::PATCH, &path, obj, "application/apply-patch+yaml").await
}

fn deployment(name: &str, image: &str, replicas: i64) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": image, "ports": [{"containerPort": 8080}]}]}
            }
        }
    })
}

fn manager_fields<'a>(obj: &'a Value, manager: &str) -> &'a Value {
    obj["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["manager"] == manager && e["operation"] == "Apply")
        .map(|e| &e["fieldsV1"])
        .unwrap_or_else(|| {
            panic!(
                "no Apply entry for {manager}: {}",
                obj["metadata"]["managedFields"]
            )
        })
}

fn container(obj: &Value) -> &Value {
    &obj["spec"]["template"]["spec"]["containers"][0]
}

#[tokio::test]
async fn apply_tracks_ownership_and_removes_what_its_manager_dropped() {
    let c = cluster();
    let mut a = deployment("web", "r/web:v1", 2);
    a["metadata"]["labels"]["tier"] = json!("front");
    a["spec"]["template"]["spec"]["containers"][0]["env"] =
        json!([{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]);
    let (s, v) = apply(&c, "scopectl", false, a.clone()).await;
    assert_eq!(s, 201, "{v}");
    let f = manager_fields(&v, "scopectl");
    assert_eq!(f["f:spec"]["f:replicas"], json!({}));
    assert_eq!(
        f["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"app\"}"]["f:env"]
            ["k:{\"name\":\"B\"}"]["f:value"],
        json!({})
    );
    // Defaults are nobody's.
    assert!(f["f:spec"].get("f:progressDeadlineSeconds").is_none());
    assert_eq!(v["spec"]["progressDeadlineSeconds"], 600);

    // A second manager adds a label and an env var to the same container
    // (lists merge by key), and applies `tier` with the same value: shared.
    let b = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"team": "x", "tier": "front"}},
        "spec": {"template": {"spec": {"containers": [{"name": "app", "env": [{"name": "C", "value": "3"}]}]}}}
    });
    let (s, v) = apply(&c, "other", false, b).await;
    assert_eq!(s, 200, "{v}");
    let env: Vec<&str> = container(&v)["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(env, ["A", "B", "C"]);
    assert_eq!(container(&v)["image"], "r/web:v1");

    // scopectl drops `tier` (still the other's: kept) and env B (only its own: removed).
    a["metadata"]["labels"]
        .as_object_mut()
        .unwrap()
        .remove("tier");
    a["spec"]["template"]["spec"]["containers"][0]["env"] = json!([{"name": "A", "value": "1"}]);
    let (s, v) = apply(&c, "scopectl", false, a.clone()).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        v["metadata"]["labels"],
        json!({"app": "web", "team": "x", "tier": "front"})
    );
    let env: Vec<&str> = container(&v)["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(env, ["A", "C"]);

    // Applying the same again changes nothing: no new resource version.
    let rv = v["metadata"]["resourceVersion"].clone();
    let (_, again) = apply(&c, "scopectl", false, a).await;
    assert_eq!(again["metadata"]["resourceVersion"], rv);
}

#[tokio::test]
async fn a_conflicting_apply_names_the_field_unless_forced() {
    let c = cluster();
    assert_eq!(
        apply(&c, "scopectl", false, deployment("web", "r/web:v1", 2))
            .await
            .0,
        201
    );
    let mut other = deployment("web", "r/web:v1", 5);
    other["spec"]["template"]["spec"]["containers"][0]["image"] = json!("r/web:v2");
    let (s, v) = apply(&c, "kubectl", false, other.clone()).await;
    assert_eq!(s, 409, "{v}");
    assert_eq!(v["reason"], "Conflict");
    assert_eq!(
        v["message"],
        "Apply failed with 2 conflicts: conflicts with \"scopectl\" using apps/v1:\n- .spec.replicas\n- .spec.template.spec.containers[name=\"app\"].image"
    );
    assert_eq!(v["details"]["causes"][0]["field"], ".spec.replicas");
    // Only the replicas: the message has the single form.
    let mut one = deployment("web", "r/web:v1", 5);
    one["metadata"]["labels"] = json!({"app": "web"});
    let (s, v) = apply(&c, "kubectl", false, one).await;
    assert_eq!(s, 409);
    assert_eq!(
        v["message"],
        "Apply failed with 1 conflict: conflict with \"scopectl\" using apps/v1: .spec.replicas"
    );

    // dryRun=All with force: the answer shows the result, nothing is stored.
    let (s, v) = call(&c, Method::PATCH, "/apis/apps/v1/namespaces/default/deployments/web?fieldManager=kubectl&force=true&dryRun=All", other.clone(), "application/apply-patch+yaml").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["spec"]["replicas"], 5);
    assert_eq!(
        get(&c, "/apis/apps/v1/namespaces/default/deployments/web").await["spec"]["replicas"],
        2
    );

    let (s, v) = apply(&c, "kubectl", true, other).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["spec"]["replicas"], 5);
    let mine = manager_fields(&v, "scopectl");
    assert!(
        mine["f:spec"].get("f:replicas").is_none(),
        "forced away: {mine}"
    );
    assert_eq!(
        manager_fields(&v, "kubectl")["f:spec"]["f:replicas"],
        json!({})
    );
    // The generation moved with the spec.
    assert_eq!(v["metadata"]["generation"], 2);
}

#[tokio::test]
async fn ports_merge_by_port_and_protocol() {
    let c = cluster();
    let svc = |manager_port: Value| {
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "dns", "namespace": "default"},
            "spec": {"selector": {"app": "dns"}, "ports": manager_port}
        })
    };
    let (s, v) = apply(
        &c,
        "a",
        false,
        svc(json!([{"name": "dns", "port": 53, "protocol": "UDP"}])),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let (s, v) = apply(
        &c,
        "b",
        false,
        svc(json!([{"name": "dns-tcp", "port": 53, "protocol": "TCP"}])),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let ports: Vec<(i64, &str)> = v["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["port"].as_i64().unwrap(), p["protocol"].as_str().unwrap()))
        .collect();
    assert_eq!(ports, [(53, "UDP"), (53, "TCP")]);
    assert!(manager_fields(&v, "b")["f:spec"]["f:ports"]
        .get("k:{\"port\":53,\"protocol\":\"TCP\"}")
        .is_some());
    // a drops its port: only b's is left.
    let (s, v) = apply(&c, "a", false, json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "dns", "namespace": "default"}, "spec": {"selector": {"app": "dns"}}})).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["spec"]["ports"].as_array().unwrap().len(), 1);
    assert_eq!(v["spec"]["ports"][0]["protocol"], "TCP");
}

#[tokio::test]
async fn updates_need_the_current_resource_version_and_generation_follows_the_spec() {
    let c = cluster();
    let (s, d) = call(
        &c,
        Method::POST,
        "/apis/apps/v1/namespaces/default/deployments",
        deployment("web", "r/web:v1", 1),
        "application/json",
    )
    .await;
    assert_eq!(s, 201, "{d}");
    assert_eq!(d["metadata"]["generation"], 1);
    let mut labelled = d.clone();
    labelled["metadata"]["labels"]["x"] = json!("y");
    let (s, l) = call(
        &c,
        Method::PUT,
        "/apis/apps/v1/namespaces/default/deployments/web",
        labelled,
        "application/json",
    )
    .await;
    assert_eq!(s, 200, "{l}");
    assert_eq!(l["metadata"]["generation"], 1, "a label is not the spec");
    // The first object's version is stale now.
    let mut stale = d.clone();
    stale["spec"]["replicas"] = json!(3);
    let (s, e) = call(
        &c,
        Method::PUT,
        "/apis/apps/v1/namespaces/default/deployments/web",
        stale,
        "application/json",
    )
    .await;
    assert_eq!(s, 409);
    assert_eq!(e["message"], "Operation cannot be fulfilled on deployments.apps \"web\": the object has been modified; please apply your changes to the latest version and try again");
    let mut fresh = l.clone();
    fresh["spec"]["replicas"] = json!(3);
    let (s, u) = call(
        &c,
        Method::PUT,
        "/apis/apps/v1/namespaces/default/deployments/web",
        fresh,
        "application/json",
    )
    .await;
    assert_eq!(s, 200, "{u}");
    assert_eq!(u["metadata"]["generation"], 2);
    // Patches: strategic merge (containers by name), merge, JSON.
    let (s, p) = call(&c, Method::PATCH, "/apis/apps/v1/namespaces/default/deployments/web", json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "r/web:v2"}]}}}}), "application/strategic-merge-patch+json").await;
    assert_eq!(s, 200, "{p}");
    assert_eq!(container(&p)["image"], "r/web:v2");
    assert_eq!(container(&p)["ports"][0]["containerPort"], 8080);
    let (s, p) = call(
        &c,
        Method::PATCH,
        "/apis/apps/v1/namespaces/default/deployments/web",
        json!({"metadata": {"annotations": {"a": "b"}}}),
        "application/merge-patch+json",
    )
    .await;
    assert_eq!((s, &p["metadata"]["annotations"]["a"]), (200, &json!("b")));
    let (s, p) = call(
        &c,
        Method::PATCH,
        "/apis/apps/v1/namespaces/default/deployments/web",
        json!([{"op": "replace", "path": "/spec/replicas", "value": 4}]),
        "application/json-patch+json",
    )
    .await;
    assert_eq!((s, &p["spec"]["replicas"]), (200, &json!(4)));
    // A Deployment's status is its controller's: a PUT cannot set it.
    let mut with_status = p.clone();
    with_status["status"] = json!({"replicas": 99});
    let (_, w) = call(
        &c,
        Method::PUT,
        "/apis/apps/v1/namespaces/default/deployments/web",
        with_status,
        "application/json",
    )
    .await;
    assert_ne!(w["status"]["replicas"], 99);
}

#[tokio::test]
async fn invalid_objects_get_422_in_the_api_servers_words() {
    let c = cluster();
    let mut bad = deployment("Web", "r/web:v1", 1);
    bad["spec"]["template"]["metadata"]["labels"] = json!({"app": "other"});
    let (s, e) = call(
        &c,
        Method::POST,
        "/apis/apps/v1/namespaces/default/deployments",
        bad,
        "application/json",
    )
    .await;
    assert_eq!(s, 422, "{e}");
    assert_eq!(e["reason"], "Invalid");
    let msg = e["message"].as_str().unwrap();
    assert!(msg.starts_with("Deployment.apps \"Web\" is invalid: [metadata.name: Invalid value: \"Web\": a lowercase RFC 1123 subdomain"), "{msg}");
    assert!(msg.contains("spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"other\"}: `selector` does not match template `labels`"), "{msg}");
    assert_eq!(e["details"]["group"], "apps");
    assert_eq!(e["details"]["causes"][0]["field"], "metadata.name");
    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}, {"port": 70000}], "selector": {"bad key": "x"}}});
    let (s, e) = call(
        &c,
        Method::POST,
        "/api/v1/namespaces/default/services",
        svc,
        "application/json",
    )
    .await;
    assert_eq!(s, 422);
    let msg = e["message"].as_str().unwrap();
    assert!(msg.contains("spec.ports[0].name: Required value"), "{msg}");
    assert!(
        msg.contains(
            "spec.ports[1].port: Invalid value: 70000: must be between 1 and 65535, inclusive"
        ),
        "{msg}"
    );
    assert!(msg.contains("spec.selector: Invalid value: \"bad key\": name part must consist of alphanumeric characters"), "{msg}");
    let (s, e) = call(
        &c,
        Method::POST,
        "/api/v1/namespaces/nowhere/configmaps",
        json!({"metadata": {"name": "x"}}),
        "application/json",
    )
    .await;
    assert_eq!(
        (s, e["message"].as_str().unwrap()),
        (404, "namespaces \"nowhere\" not found")
    );
}

#[tokio::test]
async fn cluster_ips_and_node_ports_are_allocated_and_conflicts_refused() {
    let c = cluster();
    let svc = |name: &str, spec: Value| json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec});
    let (s, dns) = call(&c, Method::POST, "/api/v1/namespaces/default/services", svc("kube-dns", json!({"clusterIP": "10.96.0.10", "ports": [{"name": "dns", "port": 53, "protocol": "UDP"}]})), "application/json").await;
    assert_eq!(s, 201, "{dns}");
    assert_eq!(dns["spec"]["clusterIPs"], json!(["10.96.0.10"]));
    let (s, e) = call(
        &c,
        Method::POST,
        "/api/v1/namespaces/default/services",
        svc(
            "again",
            json!({"clusterIP": "10.96.0.10", "ports": [{"port": 53}]}),
        ),
        "application/json",
    )
    .await;
    assert_eq!(s, 422);
    assert_eq!(e["message"], "Service \"again\" is invalid: spec.clusterIPs: Invalid value: []string{\"10.96.0.10\"}: failed to allocate IP 10.96.0.10: provided IP is already allocated");
    let (s, web) = call(
        &c,
        Method::POST,
        "/api/v1/namespaces/default/services",
        svc(
            "web",
            json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}),
        ),
        "application/json",
    )
    .await;
    assert_eq!(s, 201, "{web}");
    assert_eq!(web["spec"]["ports"][0]["nodePort"], 30080);
    let (s, e) = call(
        &c,
        Method::POST,
        "/api/v1/namespaces/default/services",
        svc(
            "web2",
            json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}),
        ),
        "application/json",
    )
    .await;
    assert_eq!(s, 422);
    assert_eq!(e["message"], "Service \"web2\" is invalid: spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated");
    let (s, e) = call(
        &c,
        Method::POST,
        "/api/v1/namespaces/default/services",
        svc(
            "web3",
            json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 8080}]}),
        ),
        "application/json",
    )
    .await;
    assert_eq!(s, 422);
    assert!(
        e["message"].as_str().unwrap().ends_with(
            "provided port is not in the valid range. The range of valid ports is 30000-32767"
        ),
        "{e}"
    );
    // A dry run allocates nothing; a delete frees the port.
    let (s, _) = call(
        &c,
        Method::POST,
        "/api/v1/namespaces/default/services?dryRun=All",
        svc(
            "dry",
            json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30090}]}),
        ),
        "application/json",
    )
    .await;
    assert_eq!(s, 201);
    let (s, _) = call(
        &c,
        Method::POST,
        "/api/v1/namespaces/default/services",
        svc(
            "wet",
            json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30090}]}),
        ),
        "application/json",
    )
    .await;
    assert_eq!(s, 201);
    assert_eq!(
        call(
            &c,
            Method::DELETE,
            "/api/v1/namespaces/default/services/web",
            Value::Null,
            ""
        )
        .await
        .0,
        200
    );
    let (s, _) = call(
        &c,
        Method::POST,
        "/api/v1/namespaces/default/services",
        svc(
            "web2",
            json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}),
        ),
        "application/json",
    )
    .await;
    assert_eq!(s, 201);
}

fn status(c: &Cluster, name: &str) -> Value {
    c.object("apps/v1", "Deployment", "default", name).unwrap()["status"].clone()
}

fn condition(status: &Value, ty: &str) -> (String, String) {
    let c = status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == ty)
        .unwrap();
    (
        c["status"].as_str().unwrap().into(),
        c["reason"].as_str().unwrap().into(),
    )
}

fn rs_names(list: Value) -> Vec<(String, String, i64)> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|rs| {
            (
                rs["metadata"]["name"].as_str().unwrap().to_string(),
                rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                rs["spec"]["replicas"].as_i64().unwrap(),
            )
        })
        .collect()
}

/// Every status the Deployment went through since `from`, as a watch sees
/// them: (Progressing reason, Available, updated, ready, available,
/// unavailable), consecutive repeats dropped.
async fn sequence(
    c: &Cluster,
    name: &str,
    from: &str,
) -> Vec<(String, String, i64, i64, i64, i64)> {
    let mut w = c
        .handle(Request::admin(Method::GET, &format!("/apis/apps/v1/namespaces/default/deployments?watch=true&resourceVersion={from}&fieldSelector=metadata.name%3D{name}"), Vec::new()))
        .await;
    let mut out: Vec<(String, String, i64, i64, i64, i64)> = Vec::new();
    while let Some(e) = w.next_event(Duration::from_millis(100)).await {
        let s = &e["object"]["status"];
        let cond = |ty: &str, f: &str| {
            s["conditions"]
                .as_array()
                .and_then(|c| c.iter().find(|c| c["type"] == ty))
                .map(|c| c[f].as_str().unwrap().to_string())
                .unwrap_or_default()
        };
        let n = |f: &str| s[f].as_i64().unwrap_or(0);
        let row = (
            cond("Progressing", "reason"),
            cond("Available", "status"),
            n("updatedReplicas"),
            n("readyReplicas"),
            n("availableReplicas"),
            n("unavailableReplicas"),
        );
        if out.last() != Some(&row) && !row.0.is_empty() {
            out.push(row);
        }
    }
    out
}

fn rv(c: &Cluster) -> String {
    c.object("v1", "Namespace", "", "default").unwrap()["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn list_rv(c: &Cluster) -> String {
    let _ = rv(c);
    get(c, "/api/v1/namespaces").await["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string()
}

fn row(p: &str, a: &str, u: i64, r: i64, av: i64, un: i64) -> (String, String, i64, i64, i64, i64) {
    (p.into(), a.into(), u, r, av, un)
}

#[tokio::test]
async fn a_good_image_rolls_out_and_a_crashlooping_one_exceeds_its_deadline() {
    let c = cluster();
    let from = list_rv(&c).await;
    assert_eq!(
        apply(&c, "scopectl", false, deployment("web", "r/web:v1", 2))
            .await
            .0,
        201
    );
    c.settle();
    let s = status(&c, "web");
    assert_eq!(s["observedGeneration"], 1);
    c.advance(Duration::from_millis(1500));
    assert!(
        status(&c, "web").get("readyReplicas").is_none(),
        "not yet: ready after 2 s"
    );
    c.advance(Duration::from_millis(600));
    assert_eq!(
        sequence(&c, "web", &from).await,
        [
            row("NewReplicaSetCreated", "False", 0, 0, 0, 2),
            row("ReplicaSetUpdated", "False", 2, 0, 0, 2),
            row("NewReplicaSetAvailable", "True", 2, 2, 2, 0),
        ]
    );
    let s = status(&c, "web");
    assert_eq!(
        condition(&s, "Available"),
        ("True".into(), "MinimumReplicasAvailable".into())
    );
    let first = rs_names(get(&c, "/apis/apps/v1/namespaces/default/replicasets").await);
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].1, "1");
    let d = c.object("apps/v1", "Deployment", "default", "web").unwrap();
    assert_eq!(
        d["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "1"
    );

    // A crashlooping image: one new pod (maxSurge 25% of 2 rounds up to 1,
    // maxUnavailable rounds down to 0), never ready; the old ones stay.
    let from = list_rv(&c).await;
    assert_eq!(
        apply(
            &c,
            "scopectl",
            false,
            deployment("web", "r/web:v2-crashloop", 2)
        )
        .await
        .0,
        200
    );
    c.settle();
    assert_eq!(status(&c, "web")["observedGeneration"], 2);
    c.advance(Duration::from_secs(5));
    let pods = get(&c, "/api/v1/namespaces/default/pods").await;
    let reasons: Vec<String> = pods["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"]
                .as_str()
                .unwrap_or("running")
                .to_string()
        })
        .collect();
    assert_eq!(
        reasons.iter().filter(|r| *r == "CrashLoopBackOff").count(),
        1,
        "{reasons:?}"
    );
    let s = status(&c, "web");
    assert_eq!(
        (
            s["replicas"].clone(),
            s["updatedReplicas"].clone(),
            s["availableReplicas"].clone()
        ),
        (json!(3), json!(1), json!(2))
    );
    c.advance(Duration::from_secs(590));
    assert_eq!(condition(&status(&c, "web"), "Progressing").0, "True");
    c.advance(Duration::from_secs(20));
    assert_eq!(
        sequence(&c, "web", &from).await,
        [
            // The apply itself, before the controller saw it.
            row("NewReplicaSetAvailable", "True", 2, 2, 2, 0),
            row("NewReplicaSetCreated", "True", 0, 2, 2, 1),
            row("ReplicaSetUpdated", "True", 1, 2, 2, 1),
            row("ProgressDeadlineExceeded", "True", 1, 2, 2, 1),
        ]
    );
    let s = status(&c, "web");
    let msg = s["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Progressing")
        .unwrap()["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        msg.starts_with("ReplicaSet \"web-") && msg.ends_with("\" has timed out progressing."),
        "{msg}"
    );
    let revs = rs_names(get(&c, "/apis/apps/v1/namespaces/default/replicasets").await);
    assert_eq!(revs.len(), 2);
    assert!(revs.iter().any(|r| r.1 == "2" && r.2 == 1), "{revs:?}");
}

#[tokio::test]
async fn slow_and_missing_images() {
    let c = cluster();
    assert_eq!(
        apply(&c, "scopectl", false, deployment("slow", "r/x:v1-slow", 1))
            .await
            .0,
        201
    );
    assert_eq!(
        apply(
            &c,
            "scopectl",
            false,
            deployment("gone", "r/x:v1-missing", 1)
        )
        .await
        .0,
        201
    );
    c.settle();
    c.advance(Duration::from_secs(5));
    assert!(
        status(&c, "slow").get("readyReplicas").is_none(),
        "ten times slower: not ready at 5 s"
    );
    let pods = get(
        &c,
        "/api/v1/namespaces/default/pods?labelSelector=app%3Dgone",
    )
    .await;
    let p = &pods["items"][0];
    assert_eq!(p["status"]["phase"], "Pending");
    assert_eq!(
        p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"],
        "ImagePullBackOff"
    );
    c.advance(Duration::from_secs(16));
    assert_eq!(status(&c, "slow")["readyReplicas"], 1);
    assert_eq!(
        sequence(&c, "slow", "1").await,
        [
            row("NewReplicaSetCreated", "False", 0, 0, 0, 1),
            row("ReplicaSetUpdated", "False", 1, 0, 0, 1),
            row("NewReplicaSetAvailable", "True", 1, 1, 1, 0),
        ]
    );
    assert!(status(&c, "gone").get("readyReplicas").is_none());
}

#[tokio::test]
async fn revision_history_limit_and_cascading_delete() {
    let c = cluster();
    for tag in ["v1", "v2", "v3", "v4"] {
        let mut d = deployment("web", &format!("r/web:{tag}"), 1);
        d["spec"]["revisionHistoryLimit"] = json!(1);
        apply(&c, "scopectl", false, d).await;
        c.settle();
        c.advance(Duration::from_secs(3));
    }
    let revs = rs_names(get(&c, "/apis/apps/v1/namespaces/default/replicasets").await);
    let mut r: Vec<&str> = revs.iter().map(|r| r.1.as_str()).collect();
    r.sort();
    assert_eq!(r, ["3", "4"], "{revs:?}");
    let (s, _) = call(
        &c,
        Method::DELETE,
        "/apis/apps/v1/namespaces/default/deployments/web",
        json!({"propagationPolicy": "Background"}),
        "application/json",
    )
    .await;
    assert_eq!(s, 200);
    assert!(
        get(&c, "/apis/apps/v1/namespaces/default/replicasets").await["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    // The garbage collector deletes the pods as a client would: each one
    // terminates for its grace period (30 s by default) before it goes.
    let pods = get(&c, "/api/v1/namespaces/default/pods").await;
    let terminating = pods["items"].as_array().unwrap();
    assert!(!terminating.is_empty());
    for p in terminating {
        assert!(p["metadata"]["deletionTimestamp"].is_string(), "{p}");
        assert_eq!(p["metadata"]["deletionGracePeriodSeconds"], 30, "{p}");
    }
    c.advance(Duration::from_secs(30));
    assert!(get(&c, "/api/v1/namespaces/default/pods").await["items"]
        .as_array()
        .unwrap()
        .is_empty());
}

async fn create(c: &Cluster, path: &str, body: Value) -> (u16, Value) {
    call(c, Method::POST, path, body, "application/json").await
}

/// A namespace is deleted as kube-apiserver and its namespace controller do
/// (`pkg/registry/core/namespace/storage/storage.go` `REST.Delete`;
/// `pkg/controller/namespace/deletion/namespaced_resources_deleter.go`):
/// marked Terminating at once (200 with the object), new content refused
/// with the NamespaceLifecycle plugin's 403 and cause, its content deleted
/// (pods for their grace period) with the conditions saying what remains,
/// and gone once empty.
#[tokio::test]
async fn a_namespace_terminates_until_its_content_is_gone() {
    let c = cluster();
    assert_eq!(
        create(
            &c,
            "/api/v1/namespaces",
            json!({"metadata": {"name": "scope"}})
        )
        .await
        .0,
        201
    );
    let mut d = deployment("web", "r/web:v1", 2);
    d["metadata"]["namespace"] = json!("scope");
    assert_eq!(apply(&c, "scopectl", false, d).await.0, 201);
    c.settle();
    c.advance(Duration::from_secs(3));
    let (s, ns) = call(
        &c,
        Method::DELETE,
        "/api/v1/namespaces/scope",
        Value::Null,
        "",
    )
    .await;
    assert_eq!(s, 200, "{ns}");
    assert_eq!(ns["status"]["phase"], "Terminating");
    assert!(ns["metadata"]["deletionTimestamp"].is_string(), "{ns}");
    assert_eq!(ns["spec"]["finalizers"], json!(["kubernetes"]));

    // No new content: the lifecycle plugin's words and cause.
    let (s, e) = create(
        &c,
        "/api/v1/namespaces/scope/configmaps",
        json!({"metadata": {"name": "cm1"}}),
    )
    .await;
    assert_eq!(s, 403, "{e}");
    assert_eq!(
        e["message"],
        "configmaps \"cm1\" is forbidden: unable to create new content in namespace scope because it is being terminated"
    );
    assert_eq!(
        e["details"]["causes"][0],
        json!({"reason": "NamespaceTerminating", "message": "namespace scope is being terminated", "field": "metadata.namespace"})
    );
    // Server-side apply that would create is a create too.
    let mut again = deployment("web2", "r/web:v1", 1);
    again["metadata"]["namespace"] = json!("scope");
    assert_eq!(apply(&c, "scopectl", false, again).await.0, 403);

    // The controller deleted the Deployment and its ReplicaSet; the pods
    // terminate for 30 s, and the conditions say so.
    c.settle();
    let ns = get(&c, "/api/v1/namespaces/scope").await;
    let conds = ns["status"]["conditions"].as_array().unwrap();
    let cond = |t: &str| conds.iter().find(|c| c["type"] == t).unwrap().clone();
    assert_eq!(cond("NamespaceContentRemaining")["status"], "True");
    assert_eq!(
        cond("NamespaceContentRemaining")["message"],
        "Some resources are remaining: pods. has 2 resource instances"
    );
    assert_eq!(
        cond("NamespaceContentRemaining")["reason"],
        "SomeResourcesRemain"
    );
    assert_eq!(
        cond("NamespaceDeletionContentFailure")["reason"],
        "ContentDeleted"
    );
    assert_eq!(cond("NamespaceFinalizersRemaining")["status"], "False");
    // A repeated DELETE returns it as it is.
    let (s, same) = call(
        &c,
        Method::DELETE,
        "/api/v1/namespaces/scope",
        Value::Null,
        "",
    )
    .await;
    assert_eq!((s, &same["status"]["phase"]), (200, &json!("Terminating")));

    c.advance(Duration::from_secs(30));
    let (s, _) = call(&c, Method::GET, "/api/v1/namespaces/scope", Value::Null, "").await;
    assert_eq!(s, 404);
    // And it can be made again at once.
    assert_eq!(
        create(
            &c,
            "/api/v1/namespaces",
            json!({"metadata": {"name": "scope"}})
        )
        .await
        .0,
        201
    );
}

/// Content with a finalizer nobody removes keeps its namespace Terminating
/// for good, and the conditions name the finalizer; removing it lets the
/// namespace go.
#[tokio::test]
async fn a_finalizer_nobody_removes_keeps_the_namespace_terminating() {
    let c = cluster();
    create(
        &c,
        "/api/v1/namespaces",
        json!({"metadata": {"name": "stuck"}}),
    )
    .await;
    let (s, _) = create(
        &c,
        "/api/v1/namespaces/stuck/configmaps",
        json!({"metadata": {"name": "held", "finalizers": ["example.com/keep"]}}),
    )
    .await;
    assert_eq!(s, 201);
    call(
        &c,
        Method::DELETE,
        "/api/v1/namespaces/stuck",
        Value::Null,
        "",
    )
    .await;
    c.settle();
    c.advance(Duration::from_secs(600));
    let ns = get(&c, "/api/v1/namespaces/stuck").await;
    assert_eq!(ns["status"]["phase"], "Terminating");
    let conds = ns["status"]["conditions"].as_array().unwrap();
    let f = conds
        .iter()
        .find(|c| c["type"] == "NamespaceFinalizersRemaining")
        .unwrap();
    assert_eq!(f["status"], "True");
    assert_eq!(f["reason"], "SomeFinalizersRemain");
    assert_eq!(
        f["message"],
        "Some content in the namespace has finalizers remaining: example.com/keep in 1 resource instances"
    );
    let (s, _) = call(
        &c,
        Method::PATCH,
        "/api/v1/namespaces/stuck/configmaps/held",
        json!({"metadata": {"finalizers": null}}),
        "application/merge-patch+json",
    )
    .await;
    assert_eq!(s, 200);
    c.settle();
    let (s, _) = call(&c, Method::GET, "/api/v1/namespaces/stuck", Value::Null, "").await;
    assert_eq!(s, 404);
}

/// A pod on a node terminates for its grace period (`CheckGracefulDelete`:
/// the options', else its terminationGracePeriodSeconds, else 30 s) with
/// deletionTimestamp at now + the period; the kubelet then removes it. A
/// Foreground delete keeps the owner, with the `foregroundDeletion`
/// finalizer, until its dependents are gone.
#[tokio::test]
async fn pods_terminate_gracefully_and_foreground_owners_wait_for_them() {
    let c = cluster();
    apply(&c, "scopectl", false, deployment("web", "r/web:v1", 1)).await;
    c.settle();
    c.advance(Duration::from_secs(3));
    let pods = get(&c, "/api/v1/namespaces/default/pods").await;
    let name = pods["items"][0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/api/v1/namespaces/default/pods/{name}");
    let (s, p) = call(
        &c,
        Method::DELETE,
        &path,
        json!({"gracePeriodSeconds": 10}),
        "application/json",
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(p["metadata"]["deletionGracePeriodSeconds"], 10);
    c.advance(Duration::from_secs(9));
    assert_eq!(call(&c, Method::GET, &path, Value::Null, "").await.0, 200);
    c.advance(Duration::from_secs(1));
    assert_eq!(call(&c, Method::GET, &path, Value::Null, "").await.0, 404);

    // Foreground: the Deployment stays until its ReplicaSet and pods are gone.
    c.settle();
    let (s, d) = call(
        &c,
        Method::DELETE,
        "/apis/apps/v1/namespaces/default/deployments/web",
        json!({"propagationPolicy": "Foreground"}),
        "application/json",
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(d["metadata"]["finalizers"], json!(["foregroundDeletion"]));
    c.settle();
    let d = get(&c, "/apis/apps/v1/namespaces/default/deployments/web").await;
    assert!(d["metadata"]["deletionTimestamp"].is_string());
    c.advance(Duration::from_secs(30));
    let (s, _) = call(
        &c,
        Method::GET,
        "/apis/apps/v1/namespaces/default/deployments/web",
        Value::Null,
        "",
    )
    .await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn watches_resume_from_a_version_and_an_old_one_is_gone() {
    let c = Cluster::new(Config {
        nodes: nodes(),
        time_scale: None,
        history: 20,
        bookmark_interval: Duration::from_millis(50),
        ..Config::default()
    });
    let cm = |n: &str, v: &str| json!({"metadata": {"name": n, "labels": {"watch": v}}, "data": {"k": "v"}});
    let (_, a) = call(
        &c,
        Method::POST,
        "/api/v1/namespaces/default/configmaps",
        cm("a", "yes"),
        "application/json",
    )
    .await;
    let from = a["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    call(
        &c,
        Method::POST,
        "/api/v1/namespaces/default/configmaps",
        cm("b", "yes"),
        "application/json",
    )
    .await;
    call(
        &c,
        Method::POST,
        "/api/v1/namespaces/default/configmaps",
        cm("c", "no"),
        "application/json",
    )
    .await;
    let w = Duration::from_secs(2);
    let mut r = c.handle(Request::admin(Method::GET, &format!("/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={from}&labelSelector=watch%3Dyes&allowWatchBookmarks=true"), Vec::new())).await;
    let e = r.next_event(w).await.unwrap();
    assert_eq!(
        (
            e["type"].as_str().unwrap(),
            e["object"]["metadata"]["name"].as_str().unwrap()
        ),
        ("ADDED", "b")
    );
    // A change that takes `a` out of the selection reads as DELETED.
    let (_, mut a2) = call(
        &c,
        Method::GET,
        "/api/v1/namespaces/default/configmaps/a",
        Value::Null,
        "",
    )
    .await;
    a2["metadata"]["labels"]["watch"] = json!("no");
    call(
        &c,
        Method::PUT,
        "/api/v1/namespaces/default/configmaps/a",
        a2,
        "application/json",
    )
    .await;
    let e = r.next_event(w).await.unwrap();
    assert_eq!(
        (
            e["type"].as_str().unwrap(),
            e["object"]["metadata"]["name"].as_str().unwrap()
        ),
        ("DELETED", "a")
    );
    let e = r.next_event(w).await.unwrap();
    assert_eq!(e["type"], "BOOKMARK");
    assert!(
        e["object"]["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            > from.parse().unwrap()
    );

    // Without a version: the current objects as ADDED, then changes.
    let mut fresh = c
        .handle(Request::admin(
            Method::GET,
            "/api/v1/namespaces/default/configmaps?watch=1&labelSelector=watch%3Dyes",
            Vec::new(),
        ))
        .await;
    assert_eq!(
        fresh.next_event(w).await.unwrap()["object"]["metadata"]["name"],
        "b"
    );

    // Enough writes push `from` out of the history: 410 as a watch ERROR event.
    for i in 0..30 {
        call(
            &c,
            Method::POST,
            "/api/v1/namespaces/default/configmaps",
            cm(&format!("x{i}"), "no"),
            "application/json",
        )
        .await;
    }
    let mut old = c
        .handle(Request::admin(
            Method::GET,
            &format!("/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={from}"),
            Vec::new(),
        ))
        .await;
    assert_eq!(old.status, 200);
    let e = old.next_event(w).await.unwrap();
    assert_eq!(e["type"], "ERROR");
    assert_eq!(e["object"]["code"], 410);
    assert_eq!(e["object"]["reason"], "Expired");
    assert!(e["object"]["message"]
        .as_str()
        .unwrap()
        .starts_with(&format!("too old resource version: {from} (")));
    assert!(
        old.next_event(Duration::from_millis(200)).await.is_none(),
        "the stream ends after the error"
    );
}

#[tokio::test]
async fn lists_page_and_select_by_fields() {
    let c = cluster();
    for i in 0..5 {
        call(
            &c,
            Method::POST,
            "/api/v1/namespaces/default/configmaps",
            json!({"metadata": {"name": format!("c{i}")}}),
            "application/json",
        )
        .await;
    }
    let p1 = get(&c, "/api/v1/namespaces/default/configmaps?limit=2").await;
    assert_eq!(p1["items"].as_array().unwrap().len(), 2);
    assert_eq!(p1["metadata"]["remainingItemCount"], 3);
    let token = p1["metadata"]["continue"].as_str().unwrap();
    let p2 = get(
        &c,
        &format!(
            "/api/v1/namespaces/default/configmaps?limit=10&continue={}",
            form_urlencoded::byte_serialize(token.as_bytes()).collect::<String>()
        ),
    )
    .await;
    assert_eq!(p2["items"].as_array().unwrap().len(), 3);
    assert!(p2["metadata"].get("continue").is_none());
    let one = get(
        &c,
        "/api/v1/namespaces/default/configmaps?fieldSelector=metadata.name%3Dc3",
    )
    .await;
    assert_eq!(one["items"].as_array().unwrap().len(), 1);
    let (s, e) = call(
        &c,
        Method::GET,
        "/api/v1/namespaces/default/configmaps?fieldSelector=data.k%3Dv",
        Value::Null,
        "",
    )
    .await;
    assert_eq!(
        (s, e["message"].as_str().unwrap()),
        (400, "field label not supported: data.k")
    );
    let nodes = get(&c, "/api/v1/nodes").await;
    assert_eq!(nodes["items"].as_array().unwrap().len(), 4);
    assert!(
        nodes["items"][0].get("kind").is_none(),
        "list items carry no kind, as the API server's"
    );
}

#[tokio::test]
async fn seeded_faults_and_the_request_log() {
    let faults = Faults {
        seed: 7,
        rate: 1.0,
        throttle: true,
        ..Faults::default()
    };
    let c = Cluster::new(Config {
        nodes: nodes(),
        time_scale: None,
        faults,
        ..Config::default()
    });
    let r = c
        .handle(Request::admin(Method::GET, "/api/v1/nodes", Vec::new()))
        .await;
    assert_eq!(r.status, 429);
    assert!(r
        .headers
        .iter()
        .any(|(k, v)| *k == "Retry-After" && v == "1"));
    // Discovery is never faulted.
    assert_eq!(
        c.handle(Request::admin(Method::GET, "/apis", Vec::new()))
            .await
            .status,
        200
    );
    let log = c.requests();
    assert_eq!(log.len(), 2);
    assert_eq!(
        (
            log[0].verb.as_str(),
            log[0].path.as_str(),
            log[0].status,
            log[0].fault
        ),
        ("list", "/api/v1/nodes", 429, Some(Fault::Throttle))
    );
    assert_eq!(log[1].status, 200);

    let conflicts = Faults {
        seed: 3,
        rate: 0.5,
        conflicts: true,
        errors: true,
        ..Faults::default()
    };
    let run = |seed| {
        let c = Cluster::new(Config {
            time_scale: None,
            faults: Faults {
                seed,
                ..conflicts.clone()
            },
            ..Config::default()
        });
        async move {
            for i in 0..20 {
                call(
                    &c,
                    Method::POST,
                    "/api/v1/namespaces/default/configmaps",
                    json!({"metadata": {"name": format!("c{i}")}}),
                    "application/json",
                )
                .await;
            }
            c.requests()
                .iter()
                .map(|r| (r.status, r.fault))
                .collect::<Vec<_>>()
        }
    };
    let (a, b) = (run(3).await, run(3).await);
    assert_eq!(a, b, "the same seed, the same faults");
    assert!(
        a.iter()
            .any(|(s, f)| *s == 409 && *f == Some(Fault::Conflict)),
        "{a:?}"
    );
    assert!(a.iter().any(|(s, _)| *s == 500 || *s == 503), "{a:?}");
    assert!(a.iter().any(|(s, _)| *s == 201), "{a:?}");
}

#[tokio::test]
async fn every_fault_kind_per_verb_and_cut_connections() {
    let c = Cluster::new(Config {
        time_scale: None,
        faults: Faults {
            seed: 5,
            // Low: the first requests' faults come from the schedule.
            rate: 0.000_001,
            throttle: true,
            errors: true,
            conflicts: true,
            cut_connections: true,
            every_kind_per_verb: true,
            max_latency: Duration::from_millis(1),
            ..Faults::default()
        },
        ..Config::default()
    });
    let mut created = Vec::new();
    for i in 0..16 {
        let name = format!("c{i}");
        let (s, _) = call(
            &c,
            Method::POST,
            "/api/v1/namespaces/default/configmaps",
            json!({"metadata": {"name": name}}),
            "application/json",
        )
        .await;
        created.push(s);
    }
    let log = c.requests();
    let faults: Vec<Option<Fault>> = log.iter().map(|r| r.fault).collect();
    // A write meets its conflict first, then the rest, every other request.
    assert_eq!(
        faults[..14],
        [
            Some(Fault::Conflict),
            None,
            Some(Fault::Throttle),
            None,
            Some(Fault::Status500),
            None,
            Some(Fault::Status503),
            None,
            Some(Fault::CutBefore),
            None,
            Some(Fault::CutAfter),
            None,
            Some(Fault::Latency),
            None,
        ],
        "{log:#?}"
    );
    assert_eq!(&created[..2], [409, 201]);
    // Cut before: not served (status 0, nothing stored); cut after: served,
    // the answer lost.
    assert_eq!(created[8], 0);
    assert!(c.object("v1", "ConfigMap", "default", "c8").is_none());
    assert_eq!(created[10], 0);
    assert_eq!(log[10].status, 201, "the log has what was served");
    assert!(c.object("v1", "ConfigMap", "default", "c10").is_some());
    // Another verb has its own schedule.
    let (s, _) = call(
        &c,
        Method::GET,
        "/api/v1/namespaces/default/configmaps",
        Value::Null,
        "",
    )
    .await;
    assert_eq!(s, 429);

    // Every request faulted, but never more than twice in a row for one
    // verb and path.
    let c = Cluster::new(Config {
        time_scale: None,
        faults: Faults {
            seed: 9,
            rate: 1.0,
            errors: true,
            max_in_a_row: 2,
            ..Faults::default()
        },
        ..Config::default()
    });
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let path = "/api/v1/namespaces/default/configmaps";
        statuses.push(call(&c, Method::GET, path, Value::Null, "").await.0 < 300);
    }
    assert_eq!(statuses, [false, false, true, false, false, true]);
}

#[tokio::test]
async fn a_freeze_holds_the_kth_writes_answer_and_what_comes_after() {
    let c = cluster();
    let post = |c: Cluster, name: &'static str| async move {
        call(
            &c,
            Method::POST,
            "/api/v1/namespaces/default/configmaps",
            json!({"metadata": {"name": name}}),
            "application/json",
        )
        .await
        .0
    };
    assert_eq!(post(c.clone(), "a").await, 201);
    c.freeze_after_writes(2);
    assert_eq!(c.writes(), 1);
    // Reads do not count.
    get(&c, "/api/v1/namespaces/default/configmaps").await;
    assert_eq!(post(c.clone(), "b").await, 201);
    assert!(!c.frozen());
    let third = tokio::spawn(post(c.clone(), "c"));
    while !c.frozen() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // Applied, its answer held; the next request held unserved.
    assert!(c.object("v1", "ConfigMap", "default", "c").is_some());
    let fourth = tokio::spawn(post(c.clone(), "d"));
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(!third.is_finished() && !fourth.is_finished());
    c.thaw();
    assert_eq!(third.await.unwrap(), 0);
    assert_eq!(fourth.await.unwrap(), 0);
    assert!(c.object("v1", "ConfigMap", "default", "d").is_none());
    assert_eq!(c.writes(), 3);
    assert_eq!(c.objects("v1", "ConfigMap").len(), 3);
    // Thawed for good.
    assert_eq!(post(c.clone(), "e").await, 201);
}

#[tokio::test]
async fn a_fixed_latency_delays_every_request_and_is_logged() {
    let c = Cluster::new(Config {
        nodes: nodes(),
        time_scale: None,
        latency: Duration::from_millis(30),
        ..Config::default()
    });
    let t = std::time::Instant::now();
    for path in ["/readyz", "/apis", "/api/v1/nodes"] {
        let r = c
            .handle(Request::admin(Method::GET, path, Vec::new()))
            .await;
        assert_eq!(r.status, 200, "{path}");
    }
    assert!(
        t.elapsed() >= Duration::from_millis(90),
        "{:?}",
        t.elapsed()
    );
    let log = c.requests();
    assert_eq!(log.len(), 3);
    for (i, r) in log.iter().enumerate() {
        assert!(r.micros >= 30_000, "{r:?}");
        assert_eq!(r.fault, None);
        if i > 0 {
            // One after the other: each arrived after the one before ended.
            assert!(
                r.at_micros >= log[i - 1].at_micros + log[i - 1].micros,
                "{log:?}"
            );
        }
    }
}
