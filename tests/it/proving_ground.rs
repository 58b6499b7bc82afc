//! The proving ground: the real binary against moto behind a proxy that is as
//! strict as AWS (dependency rules, lingering ELB interfaces), that injects
//! faults from a seed, and that can freeze after the k-th write so a test can
//! SIGKILL scopectl at a known point.

use crate::support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::proxy::{Call, Fault, Faults, ProxyConfig};
use support::{config_text, Sandbox, Snapshot};

const PROJECT: &str = "scope";

fn peered(env: &str, db: &str) -> String {
    config_text(
        env,
        db,
        "network.placement = \"peered\"\nnetwork.cidr = \"10.20.0.0/16\"",
    )
}

fn assert_converged(sb: &Sandbox, cfg: &Path, env: &str) {
    let dups = sb.snapshot().duplicates(PROJECT, env);
    assert!(dups.is_empty(), "duplicates: {dups:#?}");
    let (out, _) = sb.expect(0, cfg, &["--env", env, "plan", "--detailed-exitcode"]);
    assert!(out.contains("No changes"), "{out}");
}

fn assert_nothing_owned(sb: &Sandbox, env: &str) {
    let left = sb.snapshot().owned(PROJECT, env);
    assert!(left.is_empty(), "owned resources left: {left:#?}");
}

fn ids(snap: &Snapshot, kind: &str) -> BTreeSet<String> {
    snap.list(kind)
        .iter()
        .map(|x| {
            x.get("id")
                .or_else(|| x.get("name"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

/// Everything in the emulator that is not this env's, as comparable text:
/// resources, their tags, and the rules of groups that are not ours.
/// This env's are what `Snapshot::owned` counts: scopectl's tags for it
/// (our peerings keep theirs once deleted, and AWS keeps deleted peerings
/// visible; a foreign peering, untagged, is compared whatever its status),
/// and Kubernetes' load balancers and groups of its cluster. The env's lock
/// parameter is untagged: it must be gone again after `up` and `down`.
fn foreign(snap: &Snapshot, env: &str) -> Vec<String> {
    let cluster_tag = format!("kubernetes.io/cluster/{PROJECT}-{env}");
    let mine = |kind: &str, x: &Value| {
        let t = &x["tags"];
        (t["scopectl:project"] == PROJECT && t["scopectl:env"] == env)
            || (matches!(kind, "load_balancers" | "security_groups")
                && t[cluster_tag.as_str()] == "owned"
                && t["scopectl:project"].is_null())
    };
    let our_groups: BTreeSet<String> = snap
        .list("security_groups")
        .iter()
        .filter(|g| mine("security_groups", g))
        .map(|g| g["id"].as_str().unwrap_or_default().to_string())
        .collect();
    let mut out = Vec::new();
    for kind in [
        "vpcs",
        "subnets",
        "route_tables",
        "security_groups",
        "rules",
        "internet_gateways",
        "peerings",
        "load_balancers",
        "instances",
        "volumes",
        "snapshots",
        "roles",
        "instance_profiles",
        "parameters",
        "databases",
    ] {
        for x in snap.list(kind) {
            if mine(kind, &x) {
                continue;
            }
            if kind == "rules" && our_groups.contains(x["group"].as_str().unwrap_or_default()) {
                continue;
            }
            // Our route table's associations show on nothing foreign; the
            // route tables of the database VPC are compared whole.
            out.push(format!("{kind} {x}"));
        }
    }
    out.sort();
    out
}

fn tally(calls: &[Call]) -> BTreeMap<Fault, usize> {
    let mut t = BTreeMap::new();
    for c in calls {
        if let Some(f) = c.fault {
            *t.entry(f).or_default() += 1;
        }
    }
    t
}

fn count(calls: &[Call]) -> String {
    let writes = calls.iter().filter(|c| c.is_write()).count();
    format!("{} calls ({} writes)", calls.len(), writes)
}

#[test]
fn proxy_refuses_what_aws_refuses() {
    let sb = Sandbox::start();
    sb.prepare_db("rules-db");
    // Through the proxy, as any AWS client would be.
    let hold = format!("{:.2}", support::HOLD.as_secs_f64() + 0.1);
    let out = sb.python_via_proxy(
        &r#"
import boto3, json, time
ec2 = boto3.client("ec2")
elb = boto3.client("elb")
def code(f, **kw):
    try:
        f(**kw)
        return "ok"
    except Exception as e:
        return e.response["Error"]["Code"]
vpc = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
igw = ec2.describe_internet_gateways(Filters=[{"Name": "attachment.vpc-id", "Values": [vpc]}])["InternetGateways"][0]["InternetGatewayId"]
subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="172.31.200.0/24")["Subnet"]["SubnetId"]
used = ec2.create_security_group(GroupName="used", Description="x", VpcId=vpc)["GroupId"]
referrer = ec2.create_security_group(GroupName="referrer", Description="x", VpcId=vpc)["GroupId"]
ec2.authorize_security_group_ingress(GroupId=referrer, IpPermissions=[{"IpProtocol": "tcp", "FromPort": 1, "ToPort": 2, "UserIdGroupPairs": [{"GroupId": used}]}])
r = {}
r["referenced_group"] = code(ec2.delete_security_group, GroupId=used)
ec2.revoke_security_group_ingress(GroupId=referrer, IpPermissions=[{"IpProtocol": "tcp", "FromPort": 1, "ToPort": 2, "UserIdGroupPairs": [{"GroupId": used}]}])
inst = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1, NetworkInterfaces=[{"DeviceIndex": 0, "SubnetId": subnet, "AssociatePublicIpAddress": True, "Groups": [used]}])["Instances"][0]["InstanceId"]
r["subnet_with_instance"] = code(ec2.delete_subnet, SubnetId=subnet)
r["group_of_instance"] = code(ec2.delete_security_group, GroupId=used)
r["detach_with_public_ip"] = code(ec2.detach_internet_gateway, InternetGatewayId=igw, VpcId=vpc)
r["vpc_with_contents"] = code(ec2.delete_vpc, VpcId=vpc)
ec2.terminate_instances(InstanceIds=[inst])
r["subnet_while_shutting_down"] = code(ec2.delete_subnet, SubnetId=subnet)
elb.create_load_balancer(LoadBalancerName="lb", Subnets=[subnet], SecurityGroups=[referrer], Listeners=[{"Protocol": "TCP", "LoadBalancerPort": 80, "InstancePort": 80}])
time.sleep(HOLD_SECONDS)
r["subnet_with_elb"] = code(ec2.delete_subnet, SubnetId=subnet)
r["group_of_elb"] = code(ec2.delete_security_group, GroupId=referrer)
elb.delete_load_balancer(LoadBalancerName="lb")
r["group_while_elb_interfaces_linger"] = code(ec2.delete_security_group, GroupId=referrer)
time.sleep(HOLD_SECONDS)
r["group_after_linger"] = code(ec2.delete_security_group, GroupId=referrer)
r["subnet_after_all"] = code(ec2.delete_subnet, SubnetId=subnet)
r["unused_group"] = code(ec2.delete_security_group, GroupId=used)
# ClientToken: a repeated create answers with the first one's resource.
t1 = ec2.create_route_table(VpcId=vpc, ClientToken="tok-1")["RouteTable"]["RouteTableId"]
t2 = ec2.create_route_table(VpcId=vpc, ClientToken="tok-1")["RouteTable"]["RouteTableId"]
t3 = ec2.create_route_table(VpcId=vpc, ClientToken="tok-2")["RouteTable"]["RouteTableId"]
r["client_token_replayed"] = "ok" if t1 == t2 and t1 != t3 else "no"
print(json.dumps(r))
"#
        .replace("HOLD_SECONDS", &hold),
    );
    let r: Value = serde_json::from_str(out.trim()).unwrap();
    for refused in [
        "referenced_group",
        "subnet_with_instance",
        "group_of_instance",
        "detach_with_public_ip",
        "vpc_with_contents",
        "subnet_while_shutting_down",
        "subnet_with_elb",
        "group_of_elb",
        "group_while_elb_interfaces_linger",
    ] {
        assert_eq!(r[refused], "DependencyViolation", "{refused}: {r}");
    }
    for allowed in [
        "group_after_linger",
        "subnet_after_all",
        "unused_group",
        "client_token_replayed",
    ] {
        assert_eq!(r[allowed], "ok", "{allowed}: {r}");
    }
    let refusals = sb
        .proxy
        .calls
        .all()
        .iter()
        .filter(|c| c.fault == Some(Fault::DependencyViolation))
        .count();
    assert_eq!(refusals, 9);
}

/// `down` of the example's full staging env with a Service's load balancer
/// in it, under the strict proxy: the ELB goes first, its group after the
/// ELB's interfaces let go of it, then the subnets and the rest. Neighbours
/// stay untouched.
#[test]
fn down_removes_kubernetes_load_balancers_first_and_spares_neighbours() {
    let sb = Sandbox::start();
    let env = "staging";
    let cluster = format!("{PROJECT}-{env}");
    let db = sb.prepare_db("scope-staging-db");
    let db_vpc = db["vpc"].as_str().unwrap().to_string();
    sb.python(&["plant", "--project", PROJECT, "--env", env]);
    // A neighbour's load balancer, shared with our cluster, in the VPC's own subnets.
    let snap = sb.snapshot();
    let default_subnets: Vec<String> = snap
        .list("subnets")
        .iter()
        .filter(|s| {
            s["vpc"] == db_vpc.as_str() && s["tags"].as_object().is_none_or(|t| t.is_empty())
        })
        .take(2)
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    let shared: Value = serde_json::from_str(&sb.python(&[
        "plant-k8s",
        "--cluster",
        &cluster,
        "--vpc",
        &db_vpc,
        "--subnets",
        &default_subnets.join(","),
        "--tag",
        "shared",
        "--name",
        "neighbour-lb",
    ]))
    .unwrap();
    let cfg = support::repo().join("examples/scope.toml");
    sb.expect(0, &cfg, &["--env", env, "up", "--yes"]);
    assert_converged(&sb, &cfg, env);
    let before = foreign(&sb.snapshot(), env);

    // What Kubernetes would make for a Service of type LoadBalancer.
    let snap = sb.snapshot();
    let owned = snap.owned(PROJECT, env);
    let subnets: Vec<String> = owned
        .iter()
        .filter(|(k, _)| k == "subnets")
        .map(|(_, s)| s["id"].as_str().unwrap().to_string())
        .collect();
    let nodes = owned
        .iter()
        .find(|(k, g)| {
            k == "security_groups" && g["tags"]["scopectl:id"] == "ec2/security-group/nodes"
        })
        .unwrap()
        .1["id"]
        .as_str()
        .unwrap()
        .to_string();
    let k8s: Value = serde_json::from_str(&sb.python(&[
        "plant-k8s",
        "--cluster",
        &cluster,
        "--vpc",
        &db_vpc,
        "--subnets",
        &subnets.join(","),
        "--nodes-sg",
        &nodes,
    ]))
    .unwrap();

    // `up` never plans Kubernetes' resources; `down --dry-run` shows them.
    let (out, _) = sb.expect(0, &cfg, &["--env", env, "plan", "--detailed-exitcode"]);
    assert!(out.contains("No changes"), "{out}");
    let (out, _) = sb.expect(0, &cfg, &["--env", env, "down", "--dry-run"]);
    assert!(
        out.contains("- elb/k8s-load-balancer/a1b2c3d4e5f6"),
        "{out}"
    );
    assert!(
        out.contains("- ec2/k8s-security-group/k8s-elb-a1b2c3d4e5f6"),
        "{out}"
    );
    assert!(!out.contains("neighbour-lb"), "{out}");

    let mark = sb.mark();
    let (_, err) = sb.expect(0, &cfg, &["--env", env, "down", "--yes"]);
    let calls = sb.calls_since(mark);
    let first = |action: &str| {
        calls
            .iter()
            .position(|c| c.action == action && c.status < 300)
    };
    let elb = first("DeleteLoadBalancer").expect("the ELB was deleted");
    let subnet = first("DeleteSubnet").expect("subnets were deleted");
    assert!(elb < subnet, "the ELB must go before the subnets");
    let refused = calls
        .iter()
        .filter(|c| c.fault == Some(Fault::DependencyViolation))
        .count();
    let last = err.lines().last().unwrap_or_default();
    eprintln!(
        "k8s teardown: {}, {refused} refusals waited out; {last}",
        count(&calls)
    );

    let snap = sb.snapshot();
    assert!(!ids(&snap, "load_balancers").contains("a1b2c3d4e5f6"));
    assert!(!ids(&snap, "security_groups").contains(k8s["security_group"].as_str().unwrap()));
    assert!(ids(&snap, "load_balancers").contains("neighbour-lb"));
    assert!(ids(&snap, "security_groups").contains(shared["security_group"].as_str().unwrap()));
    assert_nothing_owned(&sb, env);
    assert_eq!(
        foreign(&snap, env),
        before,
        "a neighbour's resource changed"
    );
}

/// Lookalikes and shared resources in the database VPC survive `up` and
/// `down` byte for byte: same ids, same tags, same rules.
#[test]
fn shared_vpc_neighbours_are_untouched() {
    let sb = Sandbox::start();
    let env = "pg-shared";
    sb.prepare_db("shared-db");
    sb.python(&["plant", "--project", PROJECT, "--env", env]);
    let before = foreign(&sb.snapshot(), env);
    assert!(before.len() > 10, "{before:#?}");
    let cfg = sb.config("scope.toml", &config_text(env, "shared-db", ""));
    sb.expect(0, &cfg, &["--env", env, "up", "--yes"]);
    assert_eq!(
        foreign(&sb.snapshot(), env),
        before,
        "up changed a neighbour"
    );
    assert_converged(&sb, &cfg, env);
    sb.expect(0, &cfg, &["--env", env, "down", "--yes"]);
    assert_eq!(
        foreign(&sb.snapshot(), env),
        before,
        "down changed a neighbour"
    );
    assert_nothing_owned(&sb, env);
}

fn faulted(seed: u64) -> ProxyConfig {
    ProxyConfig {
        faults: Some(Faults {
            seed,
            rate: 0.25,
            invisible_for: 2,
            first_of_each_action: true,
            // Slow enough to overlap other calls, no slower.
            max_latency: Duration::from_millis(100),
            lose_first_create: true,
        }),
        ..support::strict()
    }
}

fn up_down_under_faults(seed: u64, env: &str, text: &str) {
    let sb = Sandbox::with(faulted(seed));
    sb.prepare_db(&format!("{env}-db"));
    let cfg = sb.config("scope.toml", text);
    let started = Instant::now();
    let mark = sb.mark();
    let (code, out, err) = sb.run(&cfg, &["--env", env, "up", "--yes"]);
    if code != 0 {
        let calls: Vec<String> = sb
            .proxy
            .calls
            .all()
            .iter()
            .map(|c| {
                format!(
                    "{} {} {} {:?} {}",
                    c.service, c.action, c.status, c.fault, c.names
                )
            })
            .collect();
        panic!(
            "up exited {code}\n--- calls\n{}\n--- stdout\n{out}\n--- stderr\n{err}",
            calls.join("\n")
        );
    }
    let up = sb.calls_since(mark);
    assert_converged(&sb, &cfg, env);
    let mark = sb.mark();
    sb.expect(0, &cfg, &["--env", env, "down", "--yes"]);
    let down = sb.calls_since(mark);
    assert_nothing_owned(&sb, env);

    let all = sb.proxy.calls.all();
    let faults = tally(&all);
    let injected: usize = faults
        .iter()
        .filter(|(f, _)| **f != Fault::DependencyViolation)
        .map(|(_, n)| n)
        .sum();
    let share = injected as f64 / all.len() as f64;
    eprintln!(
        "faults seed {seed} ({env}): {} calls, {injected} faulted ({:.0}%): {faults:?}; up {}, down {}; {:.1}s",
        all.len(),
        share * 100.0,
        count(&up),
        count(&down),
        started.elapsed().as_secs_f64()
    );
    assert!(share >= 0.20, "only {:.0}% of calls faulted", share * 100.0);
    for f in [
        Fault::Throttle,
        Fault::Status500,
        Fault::Status503,
        Fault::DropBefore,
        Fault::DropAfter,
        Fault::NotYetVisible,
    ] {
        assert!(faults.contains_key(&f), "no {f:?} was injected: {faults:?}");
    }
    // Every kind of call met a fault at least once.
    let actions: BTreeSet<&str> = all.iter().map(|c| c.action.as_str()).collect();
    let hit: BTreeSet<&str> = all
        .iter()
        .filter(|c| c.fault.is_some())
        .map(|c| c.action.as_str())
        .collect();
    assert_eq!(actions, hit, "calls never faulted");
    for service in ["ec2", "rds", "ssm"] {
        assert!(
            all.iter()
                .any(|c| c.service == service && c.fault.is_some()),
            "no fault hit {service}"
        );
    }
}

#[test]
fn peered_up_and_down_converge_under_faults() {
    up_down_under_faults(
        7,
        "pg-fault-peered",
        &peered("pg-fault-peered", "pg-fault-peered-db"),
    );
}

#[test]
fn beside_up_and_down_converge_under_faults() {
    up_down_under_faults(
        11,
        "pg-fault-beside",
        &config_text("pg-fault-beside", "pg-fault-beside-db", ""),
    );
}

/// Runs scopectl and SIGKILLs it right after its k-th write reached AWS.
/// Returns false if it ended first (k is past its last write).
fn kill_after_write(sb: &Sandbox, cfg: &Path, args: &[&str], k: u64) -> bool {
    sb.proxy.freeze_after_writes(k);
    let mut child = sb.spawn(cfg, args);
    let deadline = Instant::now() + Duration::from_secs(60);
    let killed = loop {
        if sb.proxy.frozen() {
            child.kill().unwrap();
            break true;
        }
        if child.try_wait().unwrap().is_some() {
            break false;
        }
        assert!(
            Instant::now() < deadline,
            "{args:?} neither froze nor ended (k = {k})"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    child.wait().unwrap();
    sb.proxy.thaw();
    killed
}

/// The write points a crash test tries, out of `total`: every one when
/// `SCOPECTL_CRASH_POINTS=all` (`scripts/soak`), else `n` of them
/// (`SCOPECTL_CRASH_POINTS=N`, default 6): always the first and the last,
/// the rest drawn from `seed`.
fn crash_points(total: u64, seed: u64, salt: u64) -> Vec<u64> {
    let want = match std::env::var("SCOPECTL_CRASH_POINTS").as_deref() {
        Ok("all") => return (1..=total).collect(),
        Ok(n) => n
            .parse::<u64>()
            .unwrap_or_else(|_| panic!("SCOPECTL_CRASH_POINTS={n:?}: a number or `all`")),
        Err(_) => 6,
    };
    let mut points = BTreeSet::from([1, total]);
    let mut r = seed ^ salt;
    while (points.len() as u64) < want.min(total) {
        r = support::proxy::mix(r);
        points.insert(1 + r % total);
    }
    points.into_iter().collect()
}

/// The seed of this run's sample: `SCOPECTL_SEED` replays one.
fn seed() -> u64 {
    match std::env::var("SCOPECTL_SEED") {
        Ok(s) => s
            .parse()
            .unwrap_or_else(|_| panic!("SCOPECTL_SEED={s:?} is not a number")),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64 % 1_000_000)
            .unwrap_or(1),
    }
}

/// Kills `up` (SIGKILL) right after its k-th write reached AWS, at a sample
/// of the write points (every one in `scripts/soak`); each time the next `up`
/// converges without duplicates (breaking the dead run's lock). Then `down`
/// is killed after its k-th write, and the next `down` leaves nothing owned.
fn killed_at_write_points_converge(placement: &str) {
    let sb = Sandbox::start();
    let env = format!("pg-crash-{placement}");
    let env = env.as_str();
    let db = format!("{env}-db");
    sb.prepare_db(&db);
    // One master and one node keep the number of writes (and the run) small.
    let text = if placement == "peered" {
        peered(env, &db).replace(
            "network.cidr = \"10.20.0.0/16\"",
            "network.cidr = \"10.20.0.0/16\"\ncluster.nodes.count = 1",
        )
    } else {
        config_text(env, &db, "cluster.nodes.count = 1")
    };
    let cfg = sb.config("scope.toml", &text);
    let seed = seed();
    eprintln!("crash points ({placement}): seed {seed} (replay with SCOPECTL_SEED={seed})");
    let started = Instant::now();

    // How many writes a whole `up` and a whole `down` make.
    let before = sb.proxy.writes();
    sb.expect(0, &cfg, &["--env", env, "up", "--yes"]);
    let up_writes = sb.proxy.writes() - before;
    assert_converged(&sb, &cfg, env);
    let before = sb.proxy.writes();
    sb.expect(0, &cfg, &["--env", env, "down", "--yes"]);
    let down_writes = sb.proxy.writes() - before;
    assert_nothing_owned(&sb, env);

    let up_points = crash_points(up_writes, seed, 1);
    let down_points = crash_points(down_writes, seed, 2);
    let mut stale_locks = 0;
    for i in 0..up_points.len().max(down_points.len()) {
        let up = ["--env", env, "up", "--yes"];
        if let Some(&k) = up_points.get(i) {
            assert!(
                kill_after_write(&sb, &cfg, &up, k),
                "up ended before its write {k} of {up_writes} (seed {seed})"
            );
        }
        let (_, err) = sb.expect(0, &cfg, &up);
        if err.contains("breaking a stale lock") {
            stale_locks += 1;
        }
        assert_converged(&sb, &cfg, env);
        let down = ["--env", env, "down", "--yes"];
        if let Some(&k) = down_points.get(i) {
            assert!(
                kill_after_write(&sb, &cfg, &down, k),
                "down ended before its write {k} of {down_writes} (seed {seed})"
            );
        }
        sb.expect(0, &cfg, &down);
        assert_nothing_owned(&sb, env);
    }
    eprintln!(
        "crash points ({placement}, seed {seed}): up killed after writes {up_points:?} of {up_writes}, down after {down_points:?} of {down_writes}: {} points; {stale_locks} stale locks broken; {:.1}s",
        up_points.len() + down_points.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(up_writes >= 20, "only {up_writes} writes in up");
    assert!(down_writes >= 20, "only {down_writes} writes in down");
    assert!(
        up_points.len() + down_points.len() >= 12,
        "only {} crash points",
        up_points.len() + down_points.len()
    );
    assert!(stale_locks > 0);
}

#[test]
fn peered_up_and_down_killed_at_write_points_converge() {
    killed_at_write_points_converge("peered");
}

#[test]
fn beside_up_and_down_killed_at_write_points_converge() {
    killed_at_write_points_converge("beside");
}

#[test]
fn two_ups_at_once_one_proceeds_one_exits_4() {
    // Latency keeps the first run inside its lock while the second asks.
    let sb = Sandbox::with(ProxyConfig {
        latency: Duration::from_millis(20),
        ..support::strict()
    });
    let env = "pg-race";
    sb.prepare_db("pg-race-db");
    let cfg = sb.config("scope.toml", &config_text(env, "pg-race-db", ""));
    let a = sb.spawn(&cfg, &["--env", env, "up", "--yes"]);
    let b = sb.spawn(&cfg, &["--env", env, "up", "--yes"]);
    let mut results: Vec<(i32, String)> = [a, b]
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            (
                out.status.code().unwrap_or(-1),
                String::from_utf8_lossy(&out.stderr).to_string(),
            )
        })
        .collect();
    results.sort();
    assert_eq!(results[0].0, 0, "{results:#?}");
    assert_eq!(results[1].0, 4, "{results:#?}");
    assert!(results[1].1.contains("locked by"), "{}", results[1].1);
    assert!(
        results[1].1.contains("(pid "),
        "the holder is named: {}",
        results[1].1
    );
    assert_converged(&sb, &cfg, env);
    sb.expect(0, &cfg, &["--env", env, "down", "--yes"]);
    assert_nothing_owned(&sb, env);
}

/// Calls per command for the note: a full env (peered, 3 zones) under the
/// strict proxy without faults.
#[test]
fn calls_per_command() {
    let sb = Sandbox::start();
    let env = "pg-count";
    sb.prepare_db("pg-count-db");
    let cfg = sb.config("scope.toml", &peered(env, "pg-count-db"));
    let mut report = Vec::new();
    for (name, args) in [
        ("plan (empty env)", &["plan"][..]),
        ("up", &["up", "--yes"]),
        ("plan (no changes)", &["plan"]),
        ("up (no changes)", &["up", "--yes"]),
        ("down", &["down", "--yes"]),
    ] {
        let mark = sb.mark();
        let mut full = vec!["--env", env];
        full.extend_from_slice(args);
        sb.expect(0, &cfg, &full);
        let calls = sb.calls_since(mark);
        if name == "up (no changes)" {
            assert_eq!(calls.iter().filter(|c| c.is_write()).count(), 0);
        }
        if name.starts_with("plan") {
            assert!(calls.iter().all(|c| !c.is_write()), "plan wrote: {calls:?}");
        }
        report.push(format!("{name}: {}", count(&calls)));
    }
    eprintln!("calls per command: {}", report.join("; "));
    assert_nothing_owned(&sb, env);
}

/// A no-op plan reads each kind once, whatever the size: the same calls for
/// 3 nodes and for 30.
#[test]
fn a_no_op_plan_is_flat_from_3_to_30_nodes() {
    let sb = Sandbox::start();
    let env = "pg-flat";
    sb.prepare_db("pg-flat-db");
    let mut counts = Vec::new();
    for nodes in [3, 30] {
        let cfg = sb.config(
            &format!("scope-{nodes}.toml"),
            &config_text(env, "pg-flat-db", &format!("cluster.nodes.count = {nodes}")),
        );
        sb.expect(0, &cfg, &["--env", env, "up", "--yes"]);
        let mark = sb.mark();
        let (out, _) = sb.expect(0, &cfg, &["--env", env, "plan", "--detailed-exitcode"]);
        assert!(out.contains("No changes"), "{out}");
        let calls = sb.calls_since(mark);
        assert!(calls.iter().all(|c| !c.is_write()));
        counts.push(calls.len());
    }
    eprintln!(
        "no-op plan: {} calls with 3 nodes, {} with 30",
        counts[0], counts[1]
    );
    assert_eq!(counts[0], counts[1]);
    let cfg = sb.config("scope.toml", &config_text(env, "pg-flat-db", ""));
    sb.expect(0, &cfg, &["--env", env, "down", "--yes"]);
    assert_nothing_owned(&sb, env);
}
