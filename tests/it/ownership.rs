//! Ownership and the control plane (issue 12), end to end against the strict
//! proxy: images kept until asked, etcd on its own volume through a master's
//! replacement, look-alikes never adopted, cluster names never shared.

use crate::support;

use serde_json::Value;
use support::{config_text, Sandbox, Snapshot};

const PROJECT: &str = "scope";

fn owned_of(snap: &Snapshot, env: &str, kind: &str) -> Vec<Value> {
    snap.owned(PROJECT, env)
        .into_iter()
        .filter(|(k, _)| k == kind)
        .map(|(_, v)| v)
        .collect()
}

fn by_id(items: &[Value], id: &str) -> Value {
    items
        .iter()
        .find(|x| x["tags"]["scopectl:id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("no {id} in {items:#?}"))
}

fn assert_no_changes(sb: &Sandbox, cfg: &std::path::Path, env: &str) -> String {
    let (out, _) = sb.expect(0, cfg, &["--env", env, "plan", "--detailed-exitcode"]);
    assert!(out.contains("No changes"), "{out}");
    let dups = sb.snapshot().duplicates(PROJECT, env);
    assert!(dups.is_empty(), "{dups:?}");
    out
}

fn register_image(sb: &Sandbox, name: &str) {
    let code = "import boto3,sys; boto3.client('ec2', region_name='us-east-1').register_image(Name=sys.argv[1], RootDeviceName='/dev/sda1', Architecture='x86_64', VirtualizationType='hvm')";
    assert!(sb.python_code(code, &[name]));
}

fn image_named(snap: &Snapshot, name: &str) -> String {
    snap.list("images")
        .into_iter()
        .find(|i| i["name"] == name)
        .and_then(|i| i["id"].as_str().map(str::to_string))
        .unwrap_or_else(|| panic!("no image {name}"))
}

/// A newer image matching `cluster.image_name` is a one-line notice: the
/// plan stays empty (exit 0) until `up --upgrade-image`, which replaces the
/// instances one at a time.
#[test]
fn a_newer_image_is_a_notice_until_upgrade_image() {
    let sb = Sandbox::start();
    let env = "it-image";
    sb.prepare_db("image-db");
    register_image(&sb, "scope-node-20261101");
    let extra = format!(
        "cluster.image_owner = \"{}\"\ncluster.image_name = \"scope-node-*\"\ncluster.nodes.count = 2",
        sb.account
    );
    let cfg = sb.config("scope.toml", &config_text(env, "image-db", &extra));
    sb.expect(0, &cfg, &["--env", env, "up", "--yes"]);
    let old = image_named(&sb.snapshot(), "scope-node-20261101");
    assert_no_changes(&sb, &cfg, env);

    register_image(&sb, "scope-node-20261201");
    let new = image_named(&sb.snapshot(), "scope-node-20261201");
    let out = assert_no_changes(&sb, &cfg, env);
    assert!(
        out.contains(&format!(
            "image update available: {new} (scope-node-20261201, "
        )),
        "{out}"
    );
    for i in owned_of(&sb.snapshot(), env, "instances") {
        assert_eq!(i["image"], old, "{i:#}");
    }
    // The JSON plan carries it too, and no change.
    let (json, _) = sb.expect(0, &cfg, &["--env", env, "--output", "json", "plan"]);
    let v: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["changes"], serde_json::json!([]));
    assert!(v["notices"][0].as_str().unwrap().contains(&new), "{v:#}");

    let (out, _) = sb.expect(
        2,
        &cfg,
        &[
            "--env",
            env,
            "plan",
            "--upgrade-image",
            "--detailed-exitcode",
        ],
    );
    for i in ["master-0", "node-0", "node-1"] {
        assert!(out.contains(&format!("-/+ ec2/instance/{i}")), "{out}");
    }
    let mark = sb.mark();
    sb.expect(
        0,
        &cfg,
        &[
            "--env",
            env,
            "up",
            "--yes",
            "--upgrade-image",
            "--allow-control-plane-replace",
        ],
    );
    // One at a time: never more than one instance beyond the three.
    let mut live: i64 = 3;
    let mut most = live;
    for c in sb.calls_since(mark).iter().filter(|c| c.status < 300) {
        match c.action.as_str() {
            "RunInstances" => live += 1,
            "TerminateInstances" => live -= 1,
            _ => {}
        }
        most = most.max(live);
    }
    assert_eq!((live, most), (3, 4));
    let instances = owned_of(&sb.snapshot(), env, "instances");
    assert_eq!(instances.len(), 3);
    for i in instances {
        assert_eq!(i["image"], new, "{i:#}");
    }
    let out = assert_no_changes(&sb, &cfg, env);
    assert!(!out.contains("image update available"), "{out}");
    sb.expect(0, &cfg, &["--env", env, "down", "--yes"]);
    assert!(sb.snapshot().owned(PROJECT, env).is_empty());
}

/// A master keeps etcd on its own volume: planned, attached, snapshotted
/// before the master is replaced and attached to the replacement; the only
/// master's replacement needs the flag; `down` removes volume and snapshot.
#[test]
fn etcd_volume_survives_a_master_replacement() {
    let sb = Sandbox::start();
    let env = "it-etcd";
    sb.prepare_db("etcd-db");
    let cfg = sb.config("scope.toml", &config_text(env, "etcd-db", ""));
    let (out, _) = sb.expect(2, &cfg, &["--env", env, "plan", "--detailed-exitcode"]);
    assert!(out.contains("+ ec2/volume/etcd-master-0"), "{out}");
    assert!(
        out.contains("+ ec2/volume-attachment/etcd-master-0"),
        "{out}"
    );
    sb.expect(0, &cfg, &["--env", env, "up", "--yes"]);
    assert_no_changes(&sb, &cfg, env);

    let snap = sb.snapshot();
    let master = by_id(&owned_of(&snap, env, "instances"), "ec2/instance/master-0");
    let volume = by_id(&owned_of(&snap, env, "volumes"), "ec2/volume/etcd-master-0");
    let subnet = snap
        .list("subnets")
        .into_iter()
        .find(|s| s["id"] == master["subnet"])
        .unwrap();
    assert_eq!(volume["zone"], subnet["zone"], "in the master's zone");
    assert_eq!(
        (volume["size"].as_i64(), volume["type"].as_str()),
        (Some(20), Some("gp3"))
    );
    let attached = &volume["attachments"][0];
    assert_eq!(attached["instance"], master["id"]);
    assert_eq!(attached["device"], "/dev/sdf");

    // A new master type: the master is replaced, marked, and etcd copied first.
    let bigger = sb.config(
        "bigger.toml",
        &config_text(
            env,
            "etcd-db",
            "cluster.masters.instance_type = \"m5.xlarge\"",
        ),
    );
    let (out, _) = sb.expect(2, &bigger, &["--env", env, "plan", "--detailed-exitcode"]);
    assert!(
        out.contains(&format!(
            "-/+ ec2/instance/master-0 ({})  [control plane]",
            master["id"].as_str().unwrap()
        )),
        "{out}"
    );
    assert!(
        out.contains("the old one is deleted before the new one is created"),
        "{out}"
    );
    assert!(out.contains("+ ec2/snapshot/etcd-master-0-"), "{out}");
    // The only master: refused without the flag, before any write.
    let mark = sb.mark();
    let (_, err) = sb.expect(64, &bigger, &["--env", env, "up", "--yes"]);
    assert!(err.contains("--allow-control-plane-replace"), "{err}");
    assert!(err.contains("ec2/instance/master-0"), "{err}");
    let writes: Vec<_> = sb
        .calls_since(mark)
        .into_iter()
        .filter(|c| c.is_write())
        .collect();
    assert!(writes.is_empty(), "{writes:?}");

    sb.expect(
        0,
        &bigger,
        &["--env", env, "up", "--yes", "--allow-control-plane-replace"],
    );
    assert_no_changes(&sb, &bigger, env);
    let snap = sb.snapshot();
    let replacement = by_id(&owned_of(&snap, env, "instances"), "ec2/instance/master-0");
    assert_ne!(replacement["id"], master["id"]);
    assert_eq!(replacement["type"], "m5.xlarge");
    let after = by_id(&owned_of(&snap, env, "volumes"), "ec2/volume/etcd-master-0");
    assert_eq!(after["id"], volume["id"], "the same volume, not a new one");
    let attached: Vec<&Value> = after["attachments"].as_array().unwrap().iter().collect();
    assert_eq!(attached.len(), 1, "{after:#}");
    assert_eq!(attached[0]["instance"], replacement["id"]);
    let snapshots = owned_of(&snap, env, "snapshots");
    assert_eq!(snapshots.len(), 1, "{snapshots:#?}");
    assert_eq!(snapshots[0]["volume"], volume["id"]);
    assert!(snapshots[0]["tags"]["scopectl:id"]
        .as_str()
        .unwrap()
        .starts_with("ec2/snapshot/etcd-master-0-"));

    sb.expect(0, &bigger, &["--env", env, "down", "--yes"]);
    let left = sb.snapshot().owned(PROJECT, env);
    assert!(left.is_empty(), "{left:#?}");
}

/// What scopectl wants by name but does not own is an error with a hint:
/// an untagged balancer with the API balancer's name, a role with the
/// master role's name, a route of someone else's to the cluster's network.
/// Each is left exactly as it was, by `up` and by `down`.
#[test]
fn look_alikes_are_errors_and_stay_untouched() {
    let sb = Sandbox::start();
    let env = "it-alike";
    let db = sb.prepare_db("alike-db");
    let vpc = db["vpc"].as_str().unwrap().to_string();
    let cfg = sb.config(
        "scope.toml",
        &config_text(
            env,
            "alike-db",
            "network.placement = \"peered\"\nnetwork.cidr = \"10.30.0.0/16\"",
        ),
    );
    // A route in the database VPC's route table to the cluster's network,
    // through the VPC's internet gateway: someone else's.
    let code = format!(
        "import boto3; e = boto3.client('ec2', region_name='us-east-1')\n\
         vpc = '{vpc}'\n\
         igw = e.describe_internet_gateways(Filters=[{{'Name': 'attachment.vpc-id', 'Values': [vpc]}}])['InternetGateways'][0]['InternetGatewayId']\n\
         for t in e.describe_route_tables(Filters=[{{'Name': 'vpc-id', 'Values': [vpc]}}])['RouteTables']:\n\
         \x20   e.create_route(RouteTableId=t['RouteTableId'], DestinationCidrBlock='10.30.0.0/16', GatewayId=igw)\n\
         subnets = [s['SubnetId'] for s in e.describe_subnets(Filters=[{{'Name': 'vpc-id', 'Values': [vpc]}}])['Subnets']][:2]\n\
         boto3.client('elb', region_name='us-east-1').create_load_balancer(LoadBalancerName='scope-{env}-api', Subnets=subnets, Listeners=[{{'Protocol': 'TCP', 'LoadBalancerPort': 8443, 'InstanceProtocol': 'TCP', 'InstancePort': 8443}}])\n\
         boto3.client('iam', region_name='us-east-1').create_role(RoleName='scope-{env}-master', AssumeRolePolicyDocument='{{}}')\n"
    );
    assert!(sb.python_code(&code, &[]));
    let foreign = |snap: &Snapshot| {
        let routes: Vec<Value> = snap
            .list("route_tables")
            .into_iter()
            .filter(|t| t["vpc"] == vpc.as_str())
            .flat_map(|t| t["routes"].as_array().cloned().unwrap_or_default())
            .filter(|r| r["destination"] == "10.30.0.0/16")
            .collect();
        let lb: Vec<Value> = snap
            .list("load_balancers")
            .into_iter()
            .filter(|l| l["name"] == format!("scope-{env}-api"))
            .collect();
        let role: Vec<Value> = snap
            .list("roles")
            .into_iter()
            .filter(|r| r["id"] == format!("scope-{env}-master"))
            .collect();
        (routes, lb, role)
    };
    let before = foreign(&sb.snapshot());
    assert!(!before.0.is_empty() && before.1.len() == 1 && before.2.len() == 1);

    // Each run stops at the first of them it meets; remove each in turn.
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..3 {
        let (code, _, err) = sb.run(&cfg, &["--env", env, "up", "--yes"]);
        assert_eq!(code, 1, "{err}");
        assert!(err.contains("hint:"), "{err}");
        assert_eq!(
            foreign(&sb.snapshot()),
            before,
            "a look-alike was changed:\n{err}"
        );
        if err.contains(&format!(
            "classic load balancer `scope-{env}-api` exists and is not scopectl's"
        )) {
            seen.insert("elb");
        }
        if err.contains(&format!(
            "IAM role `scope-{env}-master` exists and is not scopectl's"
        )) {
            seen.insert("role");
        }
        if err.contains("(not scopectl's) already routes 10.30.0.0/16 to igw-") {
            seen.insert("route");
        }
        if seen.len() == 3 {
            break;
        }
    }
    assert_eq!(seen.len(), 3, "{seen:?}");
    // down removes what this env made, and none of them.
    sb.expect(0, &cfg, &["--env", env, "down", "--yes"]);
    assert_eq!(foreign(&sb.snapshot()), before);
    assert!(sb.snapshot().owned(PROJECT, env).is_empty());
}

/// `scope`/`a-b` and `scope-a`/`b` would both be the cluster `scope-a-b`
/// (Kubernetes tags its balancers with it): the second is refused.
#[test]
fn two_envs_never_share_a_cluster_name() {
    let sb = Sandbox::start();
    sb.prepare_db("names-db");
    let first = sb.config("first.toml", &config_text("a-b", "names-db", ""));
    sb.expect(0, &first, &["--env", "a-b", "up", "--yes"]);
    let second = sb.config(
        "second.toml",
        &config_text("b", "names-db", "network.cidr = \"172.31.144.0/20\"").replacen(
            "project = \"scope\"",
            "project = \"scope-a\"",
            1,
        ),
    );
    let mark = sb.mark();
    let (_, err) = sb.expect(1, &second, &["--env", "b", "up", "--yes"]);
    assert!(
        err.contains("the cluster name scope-a-b is already used by scopectl env scope/a-b"),
        "{err}"
    );
    assert!(err.contains("hint:"), "{err}");
    let writes: Vec<_> = sb
        .calls_since(mark)
        .into_iter()
        .filter(|c| c.is_write())
        .collect();
    assert!(writes.is_empty(), "{writes:?}");
    sb.expect(0, &first, &["--env", "a-b", "down", "--yes"]);
}
