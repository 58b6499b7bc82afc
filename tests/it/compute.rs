//! The compute layer end to end against the strict proxy: instances, their
//! roles, the API and service load balancers, rolling replacement and
//! scaling, read back from the emulator.

use crate::support;

use serde_json::Value;
use support::{config_text, Sandbox, Snapshot};

const PROJECT: &str = "scope";

fn config(env: &str, db: &str, nodes: u32, node_type: &str) -> String {
    let mut text = config_text(
        env,
        db,
        &format!("cluster.nodes.count = {nodes}\ncluster.nodes.instance_type = \"{node_type}\""),
    );
    text.push_str(
        r#"
[services.frontend]
image = "registry.example/scope/frontend"
port = 8080
expose = "elb"
node_port = 30080
"#,
    );
    text
}

fn owned_of(snap: &Snapshot, env: &str, kind: &str) -> Vec<Value> {
    snap.owned(PROJECT, env)
        .into_iter()
        .filter(|(k, _)| k == kind)
        .map(|(_, v)| v)
        .collect()
}

fn nodes(snap: &Snapshot, env: &str) -> Vec<Value> {
    owned_of(snap, env, "instances")
        .into_iter()
        .filter(|i| {
            i["tags"]["scopectl:id"]
                .as_str()
                .is_some_and(|t| t.starts_with("ec2/instance/node-"))
        })
        .collect()
}

fn balancer(snap: &Snapshot, env: &str, name: &str) -> Value {
    owned_of(snap, env, "load_balancers")
        .into_iter()
        .find(|lb| lb["tags"]["scopectl:id"] == format!("elb/load-balancer/{name}"))
        .unwrap_or_else(|| panic!("no load balancer {name}"))
}

fn assert_no_changes(sb: &Sandbox, cfg: &std::path::Path, env: &str) {
    let (out, _) = sb.expect(0, cfg, &["--env", env, "plan", "--detailed-exitcode"]);
    assert!(out.contains("No changes"), "{out}");
    let dups = sb.snapshot().duplicates(PROJECT, env);
    assert!(dups.is_empty(), "{dups:?}");
}

#[test]
fn instances_balancers_rolling_replacement_and_scaling() {
    let sb = Sandbox::start();
    let env = "it-compute";
    sb.prepare_db("compute-db");
    let cfg = sb.config("scope.toml", &config(env, "compute-db", 3, "m5.large"));

    let (_, err) = sb.expect(0, &cfg, &["--env", env, "up", "--yes"]);
    assert!(err.contains("Load balancers:"), "{err}");
    assert!(err.contains("frontend"), "{err}");
    assert_no_changes(&sb, &cfg, env);

    let snap = sb.snapshot();
    let masters: Vec<Value> = owned_of(&snap, env, "instances")
        .into_iter()
        .filter(|i| i["tags"]["scopectl:id"] == "ec2/instance/master-0")
        .collect();
    assert_eq!(masters.len(), 1);
    let first = nodes(&snap, env);
    assert_eq!(first.len(), 3);
    // Spread across the zones' subnets.
    let subnets: std::collections::BTreeSet<&str> = first
        .iter()
        .map(|n| n["subnet"].as_str().unwrap())
        .collect();
    assert_eq!(subnets.len(), 3, "{first:#?}");
    let api = balancer(&snap, env, "api");
    assert_eq!(api["instances"], serde_json::json!([masters[0]["id"]]));
    let frontend = balancer(&snap, env, "frontend");
    assert_eq!(frontend["instances"].as_array().unwrap().len(), 3);
    let roles = owned_of(&snap, env, "roles");
    assert_eq!(roles.len(), 2, "{roles:#?}");
    for r in &roles {
        assert_eq!(r["path"], format!("/scopectl/{PROJECT}/{env}/"));
        assert_eq!(r["policies"], serde_json::json!(["scopectl"]));
    }
    let profiles: Vec<Value> = snap
        .list("instance_profiles")
        .into_iter()
        .filter(|p| p["path"] == format!("/scopectl/{PROJECT}/{env}/"))
        .collect();
    assert_eq!(profiles.len(), 2);

    // status names the balancers' DNS names.
    let (out, _) = sb.expect(0, &cfg, &["--env", env, "status"]);
    let dns = api["dns"].as_str().unwrap();
    assert!(out.contains(dns), "{out}");

    // A new node type: each node is replaced, with the reason.
    let bigger = sb.config("bigger.toml", &config(env, "compute-db", 3, "m5.xlarge"));
    let (out, _) = sb.expect(2, &bigger, &["--env", env, "plan", "--detailed-exitcode"]);
    for i in 0..3 {
        assert!(out.contains(&format!("-/+ ec2/instance/node-{i}")), "{out}");
        assert!(
            out.contains(&format!("-/+ elb/registration/frontend.node-{i}")),
            "{out}"
        );
    }
    assert!(
        out.contains("# instance_type cannot change in place"),
        "{out}"
    );
    assert!(!out.contains("master-0 ("), "masters are untouched: {out}");
    let mark = sb.mark();
    sb.expect(0, &bigger, &["--env", env, "up", "--yes"]);
    let calls = sb.calls_since(mark);
    // One at a time, new before old: launch, register, deregister, terminate.
    let sequence: Vec<&str> = calls
        .iter()
        .filter(|c| c.status < 300)
        .map(|c| c.action.as_str())
        .filter(|a| {
            [
                "RunInstances",
                "TerminateInstances",
                "RegisterInstancesWithLoadBalancer",
                "DeregisterInstancesFromLoadBalancer",
            ]
            .contains(a)
        })
        .collect();
    let one_node = [
        "RunInstances",
        "RegisterInstancesWithLoadBalancer",
        "DeregisterInstancesFromLoadBalancer",
        "TerminateInstances",
    ];
    assert_eq!(sequence, one_node.repeat(3), "{sequence:?}");
    assert_no_changes(&sb, &bigger, env);
    let snap = sb.snapshot();
    let replaced = nodes(&snap, env);
    assert_eq!(replaced.len(), 3);
    assert!(
        replaced.iter().all(|n| n["type"] == "m5.xlarge"),
        "{replaced:#?}"
    );
    assert!(replaced
        .iter()
        .all(|n| !first.iter().any(|f| f["id"] == n["id"])));
    assert_eq!(
        balancer(&snap, env, "frontend")["instances"]
            .as_array()
            .unwrap()
            .len(),
        3
    );

    // Scaling: 3 → 5 creates node-3 and node-4; 5 → 2 deletes the highest.
    let five = sb.config("five.toml", &config(env, "compute-db", 5, "m5.xlarge"));
    let (out, _) = sb.expect(2, &five, &["--env", env, "plan", "--detailed-exitcode"]);
    assert!(
        out.contains("+ ec2/instance/node-3") && out.contains("+ ec2/instance/node-4"),
        "{out}"
    );
    assert!(
        out.contains("4 to create, 0 to update, 0 to replace, 0 to delete"),
        "{out}"
    );
    sb.expect(0, &five, &["--env", env, "up", "--yes"]);
    assert_no_changes(&sb, &five, env);
    assert_eq!(nodes(&sb.snapshot(), env).len(), 5);

    let two = sb.config("two.toml", &config(env, "compute-db", 2, "m5.xlarge"));
    let (out, _) = sb.expect(2, &two, &["--env", env, "plan", "--detailed-exitcode"]);
    for i in 2..5 {
        assert!(out.contains(&format!("- ec2/instance/node-{i} (")), "{out}");
    }
    assert!(
        out.contains("0 to create, 0 to update, 0 to replace, 6 to delete"),
        "{out}"
    );
    sb.expect(0, &two, &["--env", env, "up", "--yes"]);
    assert_no_changes(&sb, &two, env);
    let snap = sb.snapshot();
    let left = nodes(&snap, env);
    assert_eq!(left.len(), 2);
    let mut names: Vec<&str> = left
        .iter()
        .map(|n| n["tags"]["scopectl:id"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["ec2/instance/node-0", "ec2/instance/node-1"]);
    assert_eq!(
        balancer(&snap, env, "frontend")["instances"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // down removes balancers, instances, roles and profiles; the strict
    // proxy holds subnets and groups while terminated instances shut down.
    sb.expect(0, &two, &["--env", env, "down", "--yes"]);
    let snap = sb.snapshot();
    let left = snap.owned(PROJECT, env);
    assert!(left.is_empty(), "{left:#?}");
    assert!(snap
        .list("instance_profiles")
        .iter()
        .all(|p| p["path"] != format!("/scopectl/{PROJECT}/{env}/")));
}
