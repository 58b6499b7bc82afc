//! The network layer end to end: the real binary against the emulator,
//! checked by reading the emulator back.

use crate::support;

use serde_json::Value;
use support::{config_text, Sandbox};

const PROJECT: &str = "scope";
const TAGS: [&str; 4] = ["scopectl:project", "scopectl:env", "scopectl:id", "Name"];

fn assert_tagged(env: &str, kind: &str, item: &Value) {
    for t in TAGS {
        assert!(
            item["tags"][t].is_string(),
            "{kind} {} lacks tag {t}: {item}",
            item["id"]
        );
    }
    if kind != "rules" {
        assert_eq!(
            item["tags"][format!("kubernetes.io/cluster/{PROJECT}-{env}")],
            "owned",
            "{item}"
        );
    }
}

/// What must survive every `up` and `down`: the adopted database, its VPC and
/// gateway, its main route table, and the neighbours planted beside us.
struct Untouchable {
    db_vpc: String,
    db_group: String,
    igw: String,
    main_table: String,
    planted: Vec<String>,
}

impl Untouchable {
    fn record(sb: &Sandbox, env: &str) -> Untouchable {
        let planted: Value =
            serde_json::from_str(&sb.python(&["plant", "--project", PROJECT, "--env", env]))
                .unwrap();
        let snap = sb.snapshot();
        let db = &snap.list("databases")[0];
        let db_vpc = db["vpc"].as_str().unwrap().to_string();
        Untouchable {
            db_group: db["security_groups"][0].as_str().unwrap().to_string(),
            igw: snap
                .list("internet_gateways")
                .iter()
                .find(|g| g["vpcs"][0] == db_vpc.as_str())
                .unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string(),
            main_table: snap
                .list("route_tables")
                .iter()
                .find(|t| t["vpc"] == db_vpc.as_str() && t["main"] == true)
                .unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string(),
            planted: planted
                .as_object()
                .unwrap()
                .values()
                .map(|v| v.as_str().unwrap().to_string())
                .collect(),
            db_vpc,
        }
    }

    fn check(&self, sb: &Sandbox) {
        let snap = sb.snapshot();
        let ids = |kind: &str| -> Vec<String> {
            snap.list(kind)
                .iter()
                .map(|x| x["id"].as_str().unwrap_or_default().to_string())
                .collect()
        };
        assert_eq!(
            snap.list("databases").len(),
            1,
            "the RDS instance must remain"
        );
        assert_eq!(snap.list("databases")[0]["status"], "available");
        assert!(
            ids("vpcs").contains(&self.db_vpc),
            "the database VPC must remain"
        );
        assert!(
            ids("security_groups").contains(&self.db_group),
            "the database group must remain"
        );
        assert!(
            ids("internet_gateways").contains(&self.igw),
            "the VPC's gateway must remain"
        );
        assert!(
            ids("route_tables").contains(&self.main_table),
            "the main route table must remain"
        );
        let all: Vec<String> = ["security_groups", "subnets"]
            .iter()
            .flat_map(|k| ids(k))
            .collect();
        for p in &self.planted {
            assert!(all.contains(p), "planted foreign resource {p} was deleted");
        }
    }
}

fn no_owned_left(sb: &Sandbox, env: &str) {
    let left = sb.snapshot().owned(PROJECT, env);
    assert!(left.is_empty(), "down left owned resources: {left:#?}");
}

#[test]
fn beside_database_up_plan_down() {
    let sb = Sandbox::start();
    let env = "it-beside";
    sb.prepare_db("beside-db");
    let keep = Untouchable::record(&sb, env);
    let cfg = sb.config("scope.toml", &config_text(env, "beside-db", ""));

    let (out, _) = sb.expect(2, &cfg, &["--env", env, "plan", "--detailed-exitcode"]);
    assert!(out.contains("Plan: 41 to create"), "{out}");
    let (json, err) = sb.expect(0, &cfg, &["--env", env, "--output", "json", "up", "--yes"]);
    assert!(err.contains("Apply complete: 41 created"), "{err}");
    support::assert_schema("up", &json);
    let applied: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(applied["created"], 41, "{json}");

    // After every apply, a fresh plan is empty.
    let (out, _) = sb.expect(0, &cfg, &["--env", env, "plan", "--detailed-exitcode"]);
    assert!(out.contains("No changes"), "{out}");

    // A second up makes no write call at all (not even the lock).
    let mark = sb.mark();
    let (out, _) = sb.expect(0, &cfg, &["--env", env, "up", "--yes"]);
    assert!(out.contains("No changes"), "{out}");
    let writes: Vec<_> = sb
        .calls_since(mark)
        .into_iter()
        .filter(|c| c.is_write())
        .collect();
    assert!(writes.is_empty(), "a no-op up wrote: {writes:?}");

    let snap = sb.snapshot();
    let owned = snap.owned(PROJECT, env);
    for (kind, item) in &owned {
        assert_tagged(env, kind, item);
    }
    // Cluster subnets: one per zone, in the database VPC, carved from network.cidr.
    let mut subnets: Vec<(String, String)> = owned
        .iter()
        .filter(|(k, _)| k == "subnets")
        .map(|(_, s)| {
            assert_eq!(s["vpc"], keep.db_vpc.as_str());
            assert_eq!(s["tags"]["kubernetes.io/role/elb"], "1");
            assert_eq!(s["public_ip"], true);
            (
                s["zone"].as_str().unwrap().into(),
                s["cidr"].as_str().unwrap().into(),
            )
        })
        .collect();
    subnets.sort();
    assert_eq!(
        subnets,
        [
            ("us-east-1a".to_string(), "172.31.128.0/22".to_string()),
            ("us-east-1b".into(), "172.31.132.0/22".into()),
            ("us-east-1c".into(), "172.31.136.0/22".into())
        ]
    );
    // The cluster table routes to the VPC's existing gateway and serves the subnets.
    let table = &owned.iter().find(|(k, _)| k == "route_tables").unwrap().1;
    assert!(table["routes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["destination"] == "0.0.0.0/0" && r["gateway"] == keep.igw.as_str()));
    assert_eq!(table["subnets"].as_array().unwrap().len(), 3);
    // The database port is reachable from the nodes' group, by a tagged rule.
    let nodes = owned
        .iter()
        .find(|(k, g)| {
            k == "security_groups" && g["tags"]["scopectl:id"] == "ec2/security-group/nodes"
        })
        .unwrap()
        .1["id"]
        .clone();
    let db_rule = snap
        .list("rules")
        .into_iter()
        .find(|r| r["group"] == keep.db_group.as_str() && r["source_group"] == nodes)
        .expect("a rule on the database group from the nodes group");
    assert_eq!(
        (
            db_rule["protocol"].as_str(),
            db_rule["from"].as_i64(),
            db_rule["to"].as_i64()
        ),
        (Some("tcp"), Some(5432), Some(5432))
    );
    assert_eq!(
        db_rule["tags"]["scopectl:id"],
        "ec2/security-group-ingress/database"
    );
    keep.check(&sb);

    // status lists what exists, by kind, with ids.
    let (out, _) = sb.expect(0, &cfg, &["--env", env, "status"]);
    assert!(
        out.contains("scope/it-beside in us-east-1: 41 resources"),
        "{out}"
    );
    assert!(out.contains("lock: free"), "{out}");

    let (out, _) = sb.expect(0, &cfg, &["--env", env, "down", "--dry-run"]);
    assert!(out.contains("41 to delete"), "{out}");
    assert_eq!(
        sb.snapshot().owned(PROJECT, env).len(),
        owned.len(),
        "--dry-run deleted something"
    );

    let (json, _) = sb.expect(
        0,
        &cfg,
        &["--env", env, "--output", "json", "down", "--yes"],
    );
    support::assert_schema("down", &json);
    no_owned_left(&sb, env);
    keep.check(&sb);
    let snap = sb.snapshot();
    assert!(
        !snap
            .list("rules")
            .iter()
            .any(|r| r["group"] == keep.db_group.as_str() && !r["source_group"].is_null()),
        "the database rule must be revoked"
    );
    // Twice is safe.
    let (out, _) = sb.expect(0, &cfg, &["--env", env, "down", "--yes"]);
    assert!(out.contains("Nothing to delete"), "{out}");
}

#[test]
fn peered_up_plan_down() {
    let sb = Sandbox::start();
    let env = "it-peered";
    sb.prepare_db("peered-db");
    let keep = Untouchable::record(&sb, env);
    let cfg = sb.config(
        "scope.toml",
        &config_text(
            env,
            "peered-db",
            "network.placement = \"peered\"\nnetwork.cidr = \"10.20.0.0/16\"",
        ),
    );
    sb.expect(0, &cfg, &["--env", env, "up", "--yes"]);
    let (out, _) = sb.expect(0, &cfg, &["--env", env, "plan", "--detailed-exitcode"]);
    assert!(out.contains("No changes"), "{out}");

    let snap = sb.snapshot();
    let owned = snap.owned(PROJECT, env);
    for (kind, item) in &owned {
        assert_tagged(env, kind, item);
    }
    let vpc = &owned
        .iter()
        .find(|(k, _)| k == "vpcs")
        .expect("a cluster VPC")
        .1;
    assert_eq!(vpc["cidr"], "10.20.0.0/16");
    let vpc_id = vpc["id"].as_str().unwrap();
    assert!(owned
        .iter()
        .filter(|(k, _)| k == "subnets")
        .all(|(_, s)| s["vpc"] == vpc_id));
    let pcx = &owned
        .iter()
        .find(|(k, _)| k == "peerings")
        .expect("a peering")
        .1;
    assert_eq!(pcx["status"], "active");
    assert_eq!(
        (pcx["requester"].as_str(), pcx["accepter"].as_str()),
        (Some(vpc_id), Some(keep.db_vpc.as_str()))
    );
    assert_eq!(
        (
            pcx["requester_dns"].as_bool(),
            pcx["accepter_dns"].as_bool()
        ),
        (Some(true), Some(true)),
        "DNS resolution on both sides"
    );
    let pcx_id = pcx["id"].as_str().unwrap();
    // Routes both ways across the peering.
    let tables = snap.list("route_tables");
    let routes_to = |table_vpc: &str, dest: &str| {
        tables.iter().any(|t| {
            t["vpc"] == table_vpc
                && t["routes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|r| r["destination"] == dest && r["peering"] == pcx_id)
        })
    };
    assert!(
        routes_to(vpc_id, "172.31.0.0/16"),
        "cluster → database route"
    );
    assert!(
        routes_to(&keep.db_vpc, "10.20.0.0/16"),
        "database → cluster route"
    );
    // The database admits the cluster's range.
    assert!(snap
        .list("rules")
        .iter()
        .any(|r| r["group"] == keep.db_group.as_str()
            && r["cidr"] == "10.20.0.0/16"
            && r["from"] == 5432));
    keep.check(&sb);

    sb.expect(0, &cfg, &["--env", env, "down", "--yes"]);
    no_owned_left(&sb, env);
    keep.check(&sb);
    let snap = sb.snapshot();
    assert!(
        !snap
            .list("route_tables")
            .iter()
            .flat_map(|t| t["routes"].as_array().unwrap().clone())
            .any(|r| r["peering"] == pcx_id),
        "routes to the peering must be removed"
    );
    assert!(
        !snap.list("vpcs").iter().any(|v| v["id"] == vpc_id),
        "the cluster VPC must be deleted"
    );
}

#[test]
fn saved_plan_applies_exactly_and_refuses_when_stale() {
    let sb = Sandbox::start();
    let env = "it-saved";
    let db = sb.prepare_db("saved-db");
    let db_group = db["security_group"].as_str().unwrap().to_string();
    let cfg = sb.config("scope.toml", &config_text(env, "saved-db", ""));
    let plan = sb.dir.path().join("plan.json");
    let plan_s = plan.to_str().unwrap();
    let writes_since = |mark: usize| -> Vec<String> {
        sb.calls_since(mark)
            .into_iter()
            .filter(|c| c.is_write())
            .map(|c| c.action)
            .collect()
    };

    let (json, _) = sb.expect(
        0,
        &cfg,
        &["--env", env, "--output", "json", "plan", "--out", plan_s],
    );
    support::assert_schema("plan", &std::fs::read_to_string(&plan).unwrap());
    {
        // It names the env's resources and policies: its owner's only.
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&plan).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "plan file mode {mode:o}");
    }
    let v: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["format_version"], "2");
    assert_eq!(v["summary"]["create"], 41);
    assert!(v["fingerprint"].as_str().unwrap().starts_with("sha256:"));
    assert_eq!(
        serde_json::from_str::<Value>(&std::fs::read_to_string(&plan).unwrap()).unwrap(),
        v
    );

    // Reality moves between `plan --out` and `up --plan`: someone makes a
    // group tagged for this env. The plan is stale; nothing is written.
    let code = format!(
        "import boto3; e = boto3.client('ec2', region_name='us-east-1'); vpc = e.describe_vpcs(Filters=[{{'Name': 'is-default', 'Values': ['true']}}])['Vpcs'][0]['VpcId']; e.create_security_group(GroupName='stray', Description='stray', VpcId=vpc, TagSpecifications=[{{'ResourceType': 'security-group', 'Tags': [{{'Key': 'scopectl:project', 'Value': 'scope'}}, {{'Key': 'scopectl:env', 'Value': '{env}'}}, {{'Key': 'scopectl:id', 'Value': 'ec2/security-group/stray'}}]}}])"
    );
    assert!(sb.python_code(&code, &[]));
    let mark = sb.mark();
    let (_, err) = sb.expect(1, &cfg, &["--env", env, "up", "--plan", plan_s]);
    assert!(err.contains("stale"), "{err}");
    assert!(writes_since(mark).is_empty(), "{:?}", writes_since(mark));

    // A new plan applies exactly; applying it again is stale.
    sb.expect(0, &cfg, &["--env", env, "plan", "--out", plan_s]);
    sb.expect(0, &cfg, &["--env", env, "up", "--plan", plan_s]);
    let (_, err) = sb.expect(1, &cfg, &["--env", env, "up", "--plan", plan_s]);
    assert!(err.contains("stale"), "{err}");
    let (out, _) = sb.expect(0, &cfg, &["--env", env, "plan", "--detailed-exitcode"]);
    assert!(out.contains("No changes"), "{out}");

    // A hand-edited plan pointing a delete at the database's group, or
    // naming an address scopectl does not know, is refused: exit 64, no write.
    sb.expect(0, &cfg, &["--env", env, "plan", "--out", plan_s]);
    let fresh: Value = serde_json::from_str(&std::fs::read_to_string(&plan).unwrap()).unwrap();
    let edited = |address: &str| {
        let mut p = fresh.clone();
        p["changes"] = serde_json::json!([{
            "address": address, "action": "delete", "reason": {"type": "not-in-config"},
            "ownership": "owned", "physical_id": db_group, "before": {}, "after": null,
        }]);
        p["summary"]["delete"] = 1.into();
        let path = sb.dir.path().join("edited.json");
        std::fs::write(&path, p.to_string()).unwrap();
        path
    };
    for (address, says) in [
        ("ec2/security-group/nodes", "does not match"),
        ("ec2/bogus/x", "unknown address `ec2/bogus/x`"),
    ] {
        let path = edited(address);
        let mark = sb.mark();
        let (_, err) = sb.expect(
            64,
            &cfg,
            &["--env", env, "up", "--plan", path.to_str().unwrap()],
        );
        assert!(err.contains(says), "{err}");
        assert!(writes_since(mark).is_empty(), "{:?}", writes_since(mark));
        assert!(
            sb.snapshot()
                .list("security_groups")
                .iter()
                .any(|g| g["id"] == db_group.as_str()),
            "the database's group was deleted"
        );
    }

    // A plan for another env is refused before any call.
    let other = sb.config("other.toml", &config_text("elsewhere", "saved-db", ""));
    let mark = sb.mark();
    let (_, err) = sb.expect(64, &other, &["--env", "elsewhere", "up", "--plan", plan_s]);
    assert!(err.contains("not scope/elsewhere"), "{err}");
    assert!(sb.calls_since(mark).is_empty());
    sb.expect(0, &cfg, &["--env", env, "down", "--yes"]);
}

/// Writes the env's lock parameter as another run (or tool) would.
fn put_lock(sb: &Sandbox, env: &str, value: &str) {
    let code = format!(
        "import boto3,sys; boto3.client('ssm', region_name='us-east-1', endpoint_url='http://{}').put_parameter(Name='/scopectl/scope/{env}/lock', Value=sys.argv[1], Type='String', Overwrite=True)",
        sb.moto_addr
    );
    assert!(sb.python_code(&code, &[value]));
}

#[test]
fn lock_held_exits_4_and_unlock_breaks_it() {
    let sb = Sandbox::start();
    let env = "it-lock";
    sb.prepare_db("lock-db");
    let cfg = sb.config("scope.toml", &config_text(env, "lock-db", ""));
    // Another machine's run holds the lock.
    let held = r#"{"id":"feedc0ffee123456","holder":"ci@runner-7 (pid 4242)","host":"runner-7","pid":4242,"command":"up","started":"2026-11-24T08:00:00Z"}"#;
    put_lock(&sb, env, held);
    let (_, err) = sb.expect(4, &cfg, &["--env", env, "up", "--yes"]);
    assert!(err.contains("ci@runner-7"), "{err}");
    assert!(
        err.contains("scopectl unlock --env <env> feedc0ffee123456"),
        "{err}"
    );
    let (out, _) = sb.expect(0, &cfg, &["--env", env, "status"]);
    assert!(out.contains("lock: held by ci@runner-7"), "{out}");
    assert!(
        sb.snapshot().owned(PROJECT, env).is_empty(),
        "nothing may be created while locked"
    );

    sb.expect(1, &cfg, &["--env", env, "unlock", "not-the-id"]);
    sb.expect(0, &cfg, &["--env", env, "unlock", "feedc0ffee123456"]);
    sb.expect(0, &cfg, &["--env", env, "up", "--yes"]);
    put_lock(&sb, env, held);
    let (_, err) = sb.expect(4, &cfg, &["--env", env, "down", "--yes"]);
    assert!(err.contains("locked by ci@runner-7"), "{err}");
    assert!(
        !sb.snapshot().owned(PROJECT, env).is_empty(),
        "nothing may be deleted while locked"
    );
    sb.expect(0, &cfg, &["--env", env, "unlock", "feedc0ffee123456"]);
    sb.expect(0, &cfg, &["--env", env, "down", "--yes"]);
    no_owned_left(&sb, env);
}

/// A lock left on this machine is taken over only when its holder is gone
/// beyond doubt: same host name, same kernel boot, same pid namespace, and
/// its pid free. A container with this host name (another pid namespace)
/// never breaks it, and a lock scopectl cannot read is an error, not a guess.
#[test]
fn stale_lock_takeover_needs_this_machine_boot_and_namespace() {
    let sb = Sandbox::start();
    let env = "it-stale-lock";
    sb.prepare_db("stale-lock-db");
    let cfg = sb.config("scope.toml", &config_text(env, "stale-lock-db", ""));
    let read = |p: &str| std::fs::read_to_string(p).unwrap().trim().to_string();
    let host = read("/proc/sys/kernel/hostname");
    let boot = read("/proc/sys/kernel/random/boot_id");
    let ns = std::fs::read_link("/proc/self/ns/pid")
        .unwrap()
        .to_string_lossy()
        .into_owned();
    // A pid no process has: past the kernel's pid_max.
    let free_pid = read("/proc/sys/kernel/pid_max").parse::<u64>().unwrap() + 1;
    let lock = |ns: &str| {
        serde_json::json!({
            "id": "0123456789abcdef", "holder": format!("ci@{host} (pid {free_pid})"),
            "host": host, "pid": free_pid, "command": "up", "started": "2026-11-26T00:00:00Z",
            "boot_id": boot, "pid_namespace": ns, "start_time": 12345,
        })
        .to_string()
    };

    // The same host name in another pid namespace: a container whose run may
    // be alive. Exit 4, nothing touched.
    put_lock(&sb, env, &lock("pid:[1]"));
    let (_, err) = sb.expect(4, &cfg, &["--env", env, "up", "--yes"]);
    assert!(err.contains("0123456789abcdef"), "{err}");
    assert!(sb.snapshot().owned(PROJECT, env).is_empty());

    // A value that is not a lock: an error naming it, with a way out.
    put_lock(&sb, env, "held by the release pipeline");
    let (_, err) = sb.expect(1, &cfg, &["--env", env, "up", "--yes"]);
    assert!(
        err.contains("/scopectl/scope/it-stale-lock/lock holds a value scopectl cannot read"),
        "{err}"
    );
    assert!(
        err.contains("hint: ") && err.contains("delete-parameter"),
        "{err}"
    );
    assert!(sb.snapshot().owned(PROJECT, env).is_empty());

    // Left here, in this namespace, by a process that is gone: taken over.
    put_lock(&sb, env, &lock(&ns));
    let (_, err) = sb.expect(0, &cfg, &["--env", env, "up", "--yes"]);
    assert!(
        err.contains("breaking a stale lock 0123456789abcdef"),
        "{err}"
    );
    sb.expect(0, &cfg, &["--env", env, "down", "--yes"]);
    no_owned_left(&sb, env);
}

#[test]
fn protected_env_needs_confirm_and_up_needs_yes_without_tty() {
    let sb = Sandbox::start();
    let env = "it-prod";
    sb.prepare_db("prod-db");
    let cfg = sb.config(
        "scope.toml",
        &config_text(
            env,
            "prod-db",
            "protected = true\ncluster.api_allowed_cidrs = [\"127.0.0.1/32\"]",
        ),
    );
    let mark = sb.mark();
    let (_, err) = sb.expect(64, &cfg, &["--env", env, "up"]);
    assert!(err.contains("--yes"), "{err}");
    assert!(
        sb.calls_since(mark).iter().all(|c| !c.is_write()),
        "refusing up must not write"
    );
    sb.expect(0, &cfg, &["--env", env, "up", "--yes"]);

    let (_, err) = sb.expect(64, &cfg, &["--env", env, "down", "--yes"]);
    assert!(
        err.contains("protected") && err.contains("--confirm it-prod"),
        "{err}"
    );
    sb.expect(
        64,
        &cfg,
        &["--env", env, "down", "--yes", "--confirm", "staging"],
    );
    assert!(!sb.snapshot().owned(PROJECT, env).is_empty());
    sb.expect(0, &cfg, &["--env", env, "down", "--yes", "--confirm", env]);
    no_owned_left(&sb, env);
}

#[test]
fn adopted_mismatches_are_errors_with_hints_not_changes() {
    let sb = Sandbox::start();
    sb.prepare_db("mismatch-db");
    // The range lies outside the database VPC (172.31.0.0/16).
    let cfg = sb.config(
        "a.toml",
        &config_text(
            "it-outside",
            "mismatch-db",
            "network.cidr = \"10.50.0.0/20\"",
        ),
    );
    let mark = sb.mark();
    let (_, err) = sb.expect(64, &cfg, &["--env", "it-outside", "up", "--yes"]);
    assert!(
        err.contains("outside the database VPC")
            && err.contains("hint:")
            && err.contains("a.toml:"),
        "{err}"
    );
    assert!(sb.calls_since(mark).iter().all(|c| !c.is_write()));
    // Overlaps a default subnet of the VPC.
    let cfg = sb.config(
        "b.toml",
        &config_text(
            "it-overlap",
            "mismatch-db",
            "network.cidr = \"172.31.0.0/20\"",
        ),
    );
    let (_, err) = sb.expect(64, &cfg, &["--env", "it-overlap", "plan"]);
    assert!(err.contains("overlaps the existing subnet"), "{err}");
    // No such database.
    let cfg = sb.config("c.toml", &config_text("it-nodb", "no-such-db", ""));
    let (_, err) = sb.expect(64, &cfg, &["--env", "it-nodb", "plan"]);
    assert!(
        err.contains("`no-such-db` was not found") && err.contains("never creates one"),
        "{err}"
    );
    // Peered, but the range overlaps the database VPC.
    let cfg = sb.config(
        "d.toml",
        &config_text(
            "it-peer-overlap",
            "mismatch-db",
            "network.placement = \"peered\"\nnetwork.cidr = \"172.31.0.0/16\"",
        ),
    );
    let (_, err) = sb.expect(64, &cfg, &["--env", "it-peer-overlap", "plan"]);
    assert!(err.contains("overlaps the database VPC"), "{err}");
}

#[test]
fn database_without_subnet_group_is_found_through_its_security_group() {
    let sb = Sandbox::start();
    sb.python(&["prepare", "--db", "nogroup-db", "--no-subnet-group"]);
    let env = "it-nogroup";
    let cfg = sb.config("scope.toml", &config_text(env, "nogroup-db", ""));
    sb.expect(0, &cfg, &["--env", env, "up", "--yes"]);
    let (out, _) = sb.expect(0, &cfg, &["--env", env, "plan", "--detailed-exitcode"]);
    assert!(out.contains("No changes"), "{out}");
    let vpc = sb.snapshot().default_vpc()["id"].clone();
    assert!(sb
        .snapshot()
        .owned(PROJECT, env)
        .iter()
        .filter(|(k, _)| k == "subnets")
        .all(|(_, s)| s["vpc"] == vpc));
    sb.expect(0, &cfg, &["--env", env, "down", "--yes"]);
    no_owned_left(&sb, env);
}

#[test]
fn config_changes_plan_updates_replacements_and_deletes() {
    let sb = Sandbox::start();
    let env = "it-change";
    sb.prepare_db("change-db");
    let cfg = sb.config("scope.toml", &config_text(env, "change-db", ""));
    sb.expect(0, &cfg, &["--env", env, "up", "--yes"]);

    // Two zones instead of three: the third subnet and its association go.
    let two = sb.config(
        "two.toml",
        &config_text(
            env,
            "change-db",
            "network.zones = [\"us-east-1a\", \"us-east-1b\"]",
        ),
    );
    let (out, _) = sb.expect(2, &two, &["--env", env, "plan", "--detailed-exitcode"]);
    assert!(out.contains("- ec2/subnet/nodes-us-east-1c"), "{out}");
    assert!(
        out.contains("0 to create, 1 to update, 1 to replace, 2 to delete"),
        "{out}"
    );
    sb.expect(0, &two, &["--env", env, "up", "--yes"]);
    sb.expect(0, &two, &["--env", env, "plan", "--detailed-exitcode"]);

    // A new range for one zone: the subnet is replaced, with the reason.
    let moved = sb.config(
        "moved.toml",
        &config_text(env, "change-db", "network.zones = [\"us-east-1a\", \"us-east-1b\"]\nnetwork.subnets = { \"us-east-1b\" = \"172.31.140.0/22\" }"),
    );
    let (out, _) = sb.expect(2, &moved, &["--env", env, "plan", "--detailed-exitcode"]);
    assert!(out.contains("-/+ ec2/subnet/nodes-us-east-1b"), "{out}");
    assert!(out.contains("# cidr cannot change in place"), "{out}");
    assert!(
        out.contains("cidr: \"172.31.132.0/22\" -> \"172.31.140.0/22\""),
        "{out}"
    );
    assert!(
        out.contains("-/+ ec2/route-table-association/nodes-us-east-1b"),
        "{out}"
    );
    sb.expect(0, &moved, &["--env", env, "up", "--yes"]);
    let (out, _) = sb.expect(0, &moved, &["--env", env, "plan", "--detailed-exitcode"]);
    assert!(out.contains("No changes"), "{out}");
    assert!(sb
        .snapshot()
        .owned(PROJECT, env)
        .iter()
        .any(|(k, s)| k == "subnets" && s["cidr"] == "172.31.140.0/22"));

    // Drift: someone removes the database rule by hand; plan puts it back.
    let snap = sb.snapshot();
    let rule = snap
        .list("rules")
        .into_iter()
        .find(|r| r["tags"]["scopectl:id"] == "ec2/security-group-ingress/database")
        .unwrap();
    let group = rule["group"].as_str().unwrap().to_string();
    let id = rule["id"].as_str().unwrap().to_string();
    assert!(sb.python_code(
        &format!("import boto3; boto3.client('ec2', region_name='us-east-1', endpoint_url='http://{}').revoke_security_group_ingress(GroupId='{group}', SecurityGroupRuleIds=['{id}'])", sb.moto_addr),
        &[],
    ));
    let (out, _) = sb.expect(2, &moved, &["--env", env, "plan", "--detailed-exitcode"]);
    assert!(
        out.contains("+ ec2/security-group-ingress/database"),
        "{out}"
    );
    sb.expect(0, &moved, &["--env", env, "up", "--yes"]);
    sb.expect(0, &moved, &["--env", env, "plan", "--detailed-exitcode"]);
    sb.expect(0, &moved, &["--env", env, "down", "--yes"]);
    no_owned_left(&sb, env);
}
