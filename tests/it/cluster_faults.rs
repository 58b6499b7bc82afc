//! The cluster phase under faults and interruption: `up` against a test API
//! server that throttles, fails, conflicts, cuts connections and lags at a
//! seeded share of its requests; and `up` SIGKILLed right after the k-th
//! write the server received (the server freezes there, as the AWS proxy
//! does in `proving_ground`), then run again. Each time the cluster ends
//! with exactly the desired objects, each once, all listed in the inventory
//! and nothing else, owned by `scopectl` through Apply, and a plan with no
//! changes.

use crate::support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use scopectl_apiserver::{Cluster, Fault, Faults};
use serde_json::Value;
use support::cluster::{self, TestCluster};
use support::Sandbox;

const PROJECT: &str = "scope";

/// The kinds scopectl applies (`model::k8s`), as the server stores them.
const KINDS: [(&str, &str); 12] = [
    ("v1", "Namespace"),
    ("rbac.authorization.k8s.io/v1", "ClusterRole"),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
    ("rbac.authorization.k8s.io/v1", "Role"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"),
    ("v1", "ServiceAccount"),
    ("v1", "ConfigMap"),
    ("v1", "Secret"),
    ("apps/v1", "Deployment"),
    ("apps/v1", "DaemonSet"),
    ("v1", "Service"),
    ("policy/v1", "PodDisruptionBudget"),
];

const REPORTS: &str = "\n[services.reports]\nimage = \"registry.example/scope/reports\"\nport = 9000\ninitial_tag = \"v2\"\n";
const AUDIT: &str =
    "\n[services.audit]\nimage = \"registry.example/scope/audit\"\nport = 9100\ninitial_tag = \"v3\"\n";

/// A product with two services and `extra` ones ([`REPORTS`], [`AUDIT`]):
/// taking one out prunes its Deployment and Service.
fn product(env: &str, db: &str, extra: &str) -> String {
    format!(
        r#"project = "{PROJECT}"

[aws]
region = "us-east-1"

[cluster]
nodes = {{ count = 1, instance_type = "m5.large" }}

[network]
placement = "beside-database"
cidr = "172.31.128.0/20"

[database]
rds_instance = "{db}"

[services.users]
image = "registry.example/scope/users"
replicas = 2
port = 8080
readiness = {{ http = "/healthz" }}
env = {{ LOG_LEVEL = "info" }}
initial_tag = "v1.4.2"

[services.frontend]
image = "registry.example/scope/frontend"
port = 8080
expose = "elb"
initial_tag = "v1.4.2"
{extra}
[env.{env}]
"#
    )
}

/// One master and one node.
const INSTANCES: usize = 2;

/// `k8s/<apiVersion>/<Kind>/<namespace>/<name>`, scopectl's address.
fn address(obj: &Value) -> String {
    let m = &obj["metadata"];
    let name = m["name"].as_str().unwrap_or_default();
    let head = format!(
        "k8s/{}/{}",
        obj["apiVersion"].as_str().unwrap_or_default(),
        obj["kind"].as_str().unwrap_or_default()
    );
    match m["namespace"].as_str() {
        Some(ns) => format!("{head}/{ns}/{name}"),
        None => format!("{head}/{name}"),
    }
}

/// Every stored object of the kinds scopectl applies.
fn stored(c: &Cluster) -> Vec<Value> {
    KINDS
        .iter()
        .flat_map(|(v, k)| {
            c.objects(v, k).into_iter().map(|mut o| {
                // Stored objects may leave apiVersion and kind implicit.
                o["apiVersion"] = Value::from(*v);
                o["kind"] = Value::from(*k);
                o
            })
        })
        .collect()
}

fn label<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj["metadata"]["labels"][key].as_str()
}

fn is_inventory(obj: &Value) -> bool {
    label(obj, "scopectl.io/inventory").is_some()
}

fn managers(obj: &Value) -> Vec<(String, String)> {
    obj["metadata"]["managedFields"]
        .as_array()
        .map(|m| {
            m.iter()
                .map(|e| {
                    (
                        e["manager"].as_str().unwrap_or_default().to_string(),
                        e["operation"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The Kubernetes addresses of a plan's changes with `action`.
fn k8s_changes(plan: &Value, action: &str) -> BTreeSet<String> {
    plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["action"] == action)
        .map(|c| c["address"].as_str().unwrap().to_string())
        .filter(|a| a.starts_with("k8s/"))
        .collect()
}

fn plan_json(sb: &Sandbox, tc: &TestCluster, cfg: &Path, env: &str) -> Value {
    let (out, _) = sb.expect_in_cluster(0, tc, cfg, &["--env", env, "plan", "--output", "json"]);
    serde_json::from_str(&out).unwrap()
}

/// What the cluster holds for `env` now, against `desired` (scopectl
/// addresses): the inventory lists exactly `desired`, each once; the
/// objects carrying this env's labels are exactly `desired`, each once;
/// every object a `scopectl` manager ever wrote is listed (or is the
/// inventory); every desired object has `scopectl` as an Apply manager.
/// `gone` must not exist at all (pruned objects: deleted, not unlabelled).
fn assert_cluster_holds(
    what: &str,
    c: &Cluster,
    env: &str,
    desired: &BTreeSet<String>,
    gone: &[String],
) {
    let objects = stored(c);
    let mine: Vec<&Value> = objects
        .iter()
        .filter(|o| {
            label(o, "scopectl.io/project") == Some(PROJECT)
                && label(o, "scopectl.io/env") == Some(env)
        })
        .collect();
    let inventories: Vec<&&Value> = mine.iter().filter(|o| is_inventory(o)).collect();
    assert_eq!(
        inventories.len(),
        1,
        "{what}: one inventory: {inventories:#?}"
    );
    let inventory = inventories[0];
    assert_eq!(
        address(inventory),
        format!("k8s/v1/ConfigMap/kube-system/scopectl-{PROJECT}-{env}")
    );
    let lines: Vec<&str> = inventory["data"]["objects"]
        .as_str()
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let listed: BTreeSet<String> = lines.iter().map(|l| l.to_string()).collect();
    assert_eq!(
        lines.len(),
        listed.len(),
        "{what}: listed twice: {lines:#?}"
    );
    let missing: Vec<&String> = desired.difference(&listed).collect();
    let extra: Vec<&String> = listed.difference(desired).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{what}: the inventory is not the desired objects: missing {missing:#?}, extra {extra:#?}"
    );

    let mut by_address = BTreeMap::<String, usize>::new();
    for o in mine.iter().filter(|o| !is_inventory(o)) {
        *by_address.entry(address(o)).or_default() += 1;
    }
    let twice: Vec<_> = by_address.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "{what}: duplicates: {twice:#?}");
    let labelled: BTreeSet<String> = by_address.into_keys().collect();
    let missing: Vec<&String> = desired.difference(&labelled).collect();
    let extra: Vec<&String> = labelled.difference(desired).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{what}: the env's objects are not the desired ones: missing {missing:#?}, not in the inventory {extra:#?}"
    );

    // Nothing scopectl wrote outside its labels or its inventory.
    let unlisted: Vec<String> = objects
        .iter()
        .filter(|o| !is_inventory(o))
        .filter(|o| managers(o).iter().any(|(m, _)| m == "scopectl"))
        .map(address)
        .filter(|a| !listed.contains(a))
        .collect();
    assert!(
        unlisted.is_empty(),
        "{what}: written by scopectl, not in the inventory: {unlisted:#?}"
    );

    for o in &mine {
        let m = managers(o);
        assert!(
            m.iter().any(|(m, op)| m == "scopectl" && op == "Apply"),
            "{what}: {} has no scopectl Apply manager: {m:?}",
            address(o)
        );
    }
    let present: BTreeSet<String> = objects.iter().map(address).collect();
    for g in gone {
        assert!(!present.contains(g), "{what}: {g} was not deleted");
    }
}

/// A path to objects (`/api/v1/…`, `/apis/<group>/<version>/…`), the
/// requests the server may fault; not discovery or health checks.
fn is_resource(path: &str) -> bool {
    let s: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    matches!(s[..], ["api", _, _, ..] | ["apis", _, _, _, ..])
}

/// The seed of this run: `SCOPECTL_SEED` replays one.
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

/// The test API server with every fault it has at `rate` of the API
/// requests (discovery and health checks are never faulted), each fault on
/// each verb at least once whatever the seed, and never more than three
/// failures in a row for one call: scopectl retries a call 8 times, so the
/// test cannot fail from bad luck, only from a bug.
fn faulted(seed: u64, rate: f64) -> scopectl_apiserver::Config {
    scopectl_apiserver::Config {
        faults: Faults {
            seed,
            rate,
            throttle: true,
            errors: true,
            conflicts: true,
            cut_watches: true,
            cut_connections: true,
            max_latency: Duration::from_millis(40),
            every_kind_per_verb: true,
            max_in_a_row: 3,
        },
        ..cluster::config()
    }
}

/// Runs `up --yes` in the cluster; on a failure, says what the server saw.
fn up(sb: &Sandbox, tc: &TestCluster, cfg: &Path, env: &str, what: &str) -> String {
    let (code, out, err) = sb.run_in_cluster(tc, cfg, &["--env", env, "up", "--yes"]);
    if code != 0 {
        let log: Vec<String> = tc
            .requests()
            .iter()
            .map(|r| format!("{} {} {} {:?}", r.verb, r.path, r.status, r.fault))
            .collect();
        panic!(
            "{what}: up exited {code}\n--- requests\n{}\n--- stdout\n{out}\n--- stderr\n{err}",
            log.join("\n")
        );
    }
    err
}

fn assert_no_changes(sb: &Sandbox, tc: &TestCluster, cfg: &Path, env: &str) {
    let (out, _) = sb.expect_in_cluster(0, tc, cfg, &["--env", env, "plan", "--detailed-exitcode"]);
    assert!(out.contains("No changes"), "{out}");
}

/// `up` (AWS, then the cluster) against an API server faulting at least a
/// fifth of its API requests: 429 with Retry-After, 500, 503, 409 on writes,
/// connections cut before a request is served or after (a write applied,
/// its answer lost), latency. Then a prune (a service taken out of the
/// config) under the same faults. Each `up` exits 0; a fresh plan, under
/// the same faults (the server's faults are fixed for its life, and a plan
/// must read through them as well), has no changes; the cluster holds
/// exactly the desired objects, each once, all in the inventory, all
/// applied by `scopectl`; the pruned ones are gone.
#[test]
fn up_and_prune_converge_under_api_faults() {
    let sb = Sandbox::start();
    let env = "it-k8s-faults";
    let db = "k8s-faults-db";
    sb.prepare_db(db);
    let cfg = sb.config("scope.toml", &product(env, db, REPORTS));
    let seed = seed();
    eprintln!("cluster faults: seed {seed} (replay with SCOPECTL_SEED={seed})");
    let started = Instant::now();
    let tc = TestCluster::expect(&sb, &cfg, env, INSTANCES, faulted(seed, 0.3));

    // Before the API answers, every object of the cluster is a create.
    let desired = k8s_changes(&plan_json(&sb, &tc, &cfg, env), "create");
    assert!(
        desired.contains("k8s/apps/v1/Deployment/scope/reports"),
        "{desired:#?}"
    );

    let t = Instant::now();
    up(&sb, &tc, &cfg, env, &format!("seed {seed}"));
    let first_up = t.elapsed();
    // The join token is made by the AWS phase of that `up`: its Secret was
    // not in the plan before it, and is desired now.
    let mut desired = desired;
    desired.insert(format!(
        "k8s/v1/Secret/kube-system/bootstrap-token-{}",
        support::join_token_id(&sb, env)
    ));
    let c = tc.wait_started(Duration::from_secs(5));
    let after_up = c.requests().len();
    assert_no_changes(&sb, &tc, &cfg, env);
    assert_cluster_holds("after up", &c, env, &desired, &[]);

    // `reports` leaves the config: its objects are pruned under faults.
    std::fs::write(&cfg, product(env, db, "")).unwrap();
    let plan = plan_json(&sb, &tc, &cfg, env);
    let pruned: Vec<String> = k8s_changes(&plan, "delete").into_iter().collect();
    assert!(
        !pruned.is_empty() && pruned.iter().all(|a| a.ends_with("/scope/reports")),
        "{plan:#}"
    );
    let desired: BTreeSet<String> = desired
        .into_iter()
        .filter(|a| !pruned.contains(a))
        .collect();
    let t = Instant::now();
    up(&sb, &tc, &cfg, env, &format!("prune, seed {seed}"));
    let prune_up = t.elapsed();
    assert_no_changes(&sb, &tc, &cfg, env);
    assert_cluster_holds("after the prune", &c, env, &desired, &pruned);

    // What the server did: the share faulted, every kind of fault, on
    // every verb scopectl used.
    let log = c.requests();
    let api: Vec<_> = log.iter().filter(|r| is_resource(&r.path)).collect();
    let faulted: Vec<_> = api.iter().filter(|r| r.fault.is_some()).collect();
    let mut tally = BTreeMap::<String, usize>::new();
    for r in &faulted {
        *tally.entry(format!("{:?}", r.fault.unwrap())).or_default() += 1;
    }
    let verbs: BTreeMap<&str, usize> = api.iter().fold(BTreeMap::new(), |mut m, r| {
        *m.entry(r.verb.as_str()).or_default() += 1;
        m
    });
    let share = faulted.len() as f64 / api.len() as f64;
    let failing = faulted
        .iter()
        .filter(|r| r.fault != Some(Fault::Latency))
        .count();
    eprintln!(
        "cluster faults (seed {seed}): {} requests ({} to the API's resources, {} in the first up), {} faulted ({:.0}%; {failing} failed, {:.0}%): {tally:?}; verbs {verbs:?}; up {:.1}s, prune up {:.1}s, all {:.1}s",
        log.len(),
        api.len(),
        after_up,
        faulted.len(),
        share * 100.0,
        failing as f64 * 100.0 / api.len() as f64,
        first_up.as_secs_f64(),
        prune_up.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    assert!(share >= 0.2, "only {:.0}% faulted", share * 100.0);
    for f in [
        Fault::Throttle,
        Fault::Status500,
        Fault::Status503,
        Fault::Conflict,
        Fault::CutBefore,
        Fault::CutAfter,
        Fault::Latency,
    ] {
        assert!(tally.contains_key(&format!("{f:?}")), "no {f:?}: {tally:?}");
    }
    // The lists and the applies (many requests) met every fault that
    // applies to them; the deletes (a few) met a 409 first, which is not
    // their uid precondition failing: the object is still there.
    let met = |verb: &str| -> BTreeSet<String> {
        api.iter()
            .filter(|r| r.verb == verb)
            .filter_map(|r| r.fault.map(|f| format!("{f:?}")))
            .collect()
    };
    let every = |faults: &[Fault]| -> BTreeSet<String> {
        faults.iter().map(|f| format!("{f:?}")).collect()
    };
    eprintln!(
        "cluster faults (seed {seed}): the deletes met {:?}, the gets {:?}",
        met("delete"),
        met("get")
    );
    let reads = [
        Fault::Throttle,
        Fault::Status500,
        Fault::Status503,
        Fault::CutBefore,
        Fault::CutAfter,
        Fault::Latency,
    ];
    assert_eq!(met("list"), every(&reads), "the lists");
    let mut writes = reads.to_vec();
    writes.push(Fault::Conflict);
    assert_eq!(met("patch"), every(&writes), "the applies");
    assert!(
        met("delete").contains("Conflict"),
        "no delete met a conflict: {:?}",
        met("delete")
    );
}

/// Runs `up --yes` in the cluster and SIGKILLs it right after the k-th
/// write the server received from now (its answer held back by the
/// server's freeze). Returns whether it was killed (false: `up` ended
/// first, with 0) and what it wrote to stderr until then.
fn kill_after_write(
    sb: &Sandbox,
    tc: &TestCluster,
    cfg: &Path,
    env: &str,
    k: u64,
) -> (bool, String) {
    let c = tc.wait_started(Duration::from_secs(10));
    c.freeze_after_writes(k);
    let mut child: Child = sb.spawn_in_cluster(tc, cfg, &["--env", env, "up", "--yes"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    let killed = loop {
        if c.frozen() {
            child.kill().unwrap();
            break true;
        }
        if child.try_wait().unwrap().is_some() {
            break false;
        }
        assert!(
            Instant::now() < deadline,
            "up neither froze nor ended (k = {k})"
        );
        std::thread::sleep(Duration::from_millis(2));
    };
    let out = child.wait_with_output().unwrap();
    c.thaw();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    if !killed {
        let code = out.status.code().unwrap_or(-1);
        assert_eq!(code, 0, "up (k = {k}) ended with {code}: {err}");
    }
    (killed, err)
}

/// The write points tried out of `total`: every one with
/// `SCOPECTL_CRASH_POINTS=all` (`scripts/soak`), else the Fibonacci numbers
/// up to `total`, `total` itself, and evenly spaced ones until there are
/// `want` (`SCOPECTL_CRASH_POINTS=N`: N).
fn crash_points(total: u64, want: usize) -> Vec<u64> {
    let want = match std::env::var("SCOPECTL_CRASH_POINTS").as_deref() {
        Ok("all") => return (1..=total).collect(),
        Ok(n) => n
            .parse::<usize>()
            .unwrap_or_else(|_| panic!("SCOPECTL_CRASH_POINTS={n:?}: a number or `all`")),
        Err(_) => want,
    };
    let mut points = BTreeSet::from([total]);
    let (mut a, mut b) = (1, 2);
    while a <= total {
        points.insert(a);
        (a, b) = (b, a + b);
    }
    let mut step = 2;
    while points.len() < want.min(total as usize) {
        for i in 1..step {
            points.insert((total * i / step).max(1));
        }
        step += 1;
    }
    points.into_iter().collect()
}

/// Whether the env's lock parameter exists in the state store.
fn lock_held(sb: &Sandbox, env: &str) -> bool {
    let name = format!("/scopectl/{PROJECT}/{env}/lock");
    sb.snapshot()
        .list("parameters")
        .iter()
        .any(|p| p["name"].as_str() == Some(name.as_str()))
}

/// A fresh test API server for the env (the machines are up already, so it
/// serves at once): each crash point starts from an empty cluster.
fn fresh<'a>(sb: &'a Sandbox, cfg: &Path, env: &str) -> TestCluster<'a> {
    let tc = TestCluster::expect(sb, cfg, env, INSTANCES, cluster::config());
    tc.wait_started(Duration::from_secs(10));
    tc
}

/// Counts the runs that took over a dead run's lock.
#[derive(Default)]
struct Takeovers(usize);

impl Takeovers {
    fn note(&mut self, stderr: &str) {
        if stderr.contains("warning: breaking a stale lock") {
            self.0 += 1;
        }
    }
}

/// The AWS phase once (`SCOPECTL_PHASE=aws`), then the cluster phase of
/// `up` SIGKILLed right after its k-th write to the API, at a spread of
/// points, each on a fresh cluster; and a change that both prunes a service
/// and adds one (the inventory written ahead of the applies, the deletes,
/// the inventory written behind them) killed after each of its writes.
/// Each time the next `up` exits 0 (never 4: a dead run's lock is taken
/// over), the plan after it is empty, the inventory lists exactly the
/// desired objects, nothing is extra or twice, the pruned objects are gone
/// and unlisted. Every lock a killed run left is taken over by a later run,
/// and none is held at the end.
#[test]
fn cluster_phase_killed_at_write_points_converges() {
    let sb = Sandbox::start();
    let env = "it-k8s-crash";
    let db = "k8s-crash-db";
    sb.prepare_db(db);
    let full = sb.config("full.toml", &product(env, db, REPORTS));
    let swapped = sb.config("swapped.toml", &product(env, db, AUDIT));
    let started = Instant::now();
    sb.expect(0, &full, &["--env", env, "up", "--yes"]);
    let aws_phase = started.elapsed();

    // A whole cluster phase: its writes, and what it applies.
    let tc = fresh(&sb, &full, env);
    let c = tc.handle().unwrap();
    let desired = k8s_changes(&plan_json(&sb, &tc, &full, env), "create");
    let before = c.writes();
    let t = Instant::now();
    up(&sb, &tc, &full, env, "a whole cluster phase");
    let whole = t.elapsed();
    let total = c.writes() - before;
    assert_no_changes(&sb, &tc, &full, env);
    assert_cluster_holds("a whole cluster phase", &c, env, &desired, &[]);
    // And a whole swap (`reports` out, `audit` in): its writes.
    let plan = plan_json(&sb, &tc, &swapped, env);
    let gone: Vec<String> = k8s_changes(&plan, "delete").into_iter().collect();
    let added = k8s_changes(&plan, "create");
    assert!(
        !gone.is_empty() && gone.iter().all(|a| a.ends_with("/scope/reports")),
        "{plan:#}"
    );
    assert!(
        !added.is_empty() && added.iter().all(|a| a.ends_with("/scope/audit")),
        "{plan:#}"
    );
    let swapped_desired: BTreeSet<String> = desired
        .iter()
        .filter(|a| !gone.contains(a))
        .chain(&added)
        .cloned()
        .collect();
    let before = c.writes();
    up(&sb, &tc, &swapped, env, "a whole swap");
    let swap_total = c.writes() - before;
    assert_no_changes(&sb, &tc, &swapped, env);
    assert_cluster_holds("a whole swap", &c, env, &swapped_desired, &gone);
    drop(tc);

    let mut takeovers = Takeovers::default();
    let mut kills = 0;
    let mut no_ops = Vec::new();
    let mut timings = Vec::new();
    let points = crash_points(total, 10);
    for &k in &points {
        let t = Instant::now();
        let tc = fresh(&sb, &full, env);
        let c = tc.handle().unwrap();
        let (killed, err) = kill_after_write(&sb, &tc, &full, env, k);
        assert!(killed, "up ended before its write {k} of {total}");
        kills += 1;
        takeovers.note(&err);
        let written = c.writes();
        let err = up(&sb, &tc, &full, env, &format!("after a kill at write {k}"));
        takeovers.note(&err);
        if c.writes() == written {
            no_ops.push(format!("up {k}"));
        }
        assert_no_changes(&sb, &tc, &full, env);
        let what = format!("killed after write {k}");
        assert_cluster_holds(&what, &c, env, &desired, &[]);
        timings.push(format!(
            "{k}: {written}+{} writes {:.1}s",
            c.writes() - written,
            t.elapsed().as_secs_f64()
        ));
    }

    // The swap killed after each of its writes, the last first: the last
    // point's next `up` has work, and takes over its lock.
    let swap_points: Vec<u64> = (1..=swap_total).rev().collect();
    for &k in &swap_points {
        let t = Instant::now();
        let tc = fresh(&sb, &full, env);
        let c = tc.handle().unwrap();
        takeovers.note(&up(&sb, &tc, &full, env, "before a swap"));
        let before = c.writes();
        let (killed, err) = kill_after_write(&sb, &tc, &swapped, env, k);
        assert!(
            killed,
            "the swap ended before its write {k} of {swap_total}"
        );
        kills += 1;
        takeovers.note(&err);
        let left = gone
            .iter()
            .filter(|g| stored(&c).iter().any(|o| address(o) == **g))
            .count();
        let written = c.writes();
        let err = up(
            &sb,
            &tc,
            &swapped,
            env,
            &format!("after a swap killed at write {k}"),
        );
        takeovers.note(&err);
        if c.writes() == written {
            no_ops.push(format!("swap {k}"));
        }
        assert_no_changes(&sb, &tc, &swapped, env);
        let what = format!("a swap killed after write {k}");
        assert_cluster_holds(&what, &c, env, &swapped_desired, &gone);
        timings.push(format!(
            "swap {k}: {}+{} writes, {left} of {} pruned objects left {:.1}s",
            written - before,
            c.writes() - written,
            gone.len(),
            t.elapsed().as_secs_f64()
        ));
    }
    let held = lock_held(&sb, env);
    eprintln!(
        "cluster crash points: AWS phase {:.1}s; a whole cluster phase {total} writes ({:.1}s), a swap {swap_total}; up killed after writes {points:?}, the swap after {swap_points:?}: {kills} kills, {} locks taken over, reruns with nothing to do (the lock left for the next run) {no_ops:?}; {}; all {:.1}s",
        aws_phase.as_secs_f64(),
        whole.as_secs_f64(),
        takeovers.0,
        timings.join(", "),
        started.elapsed().as_secs_f64()
    );
    assert!(!held, "the env lock is still held");
    assert!(
        points.len() + swap_points.len() >= 10,
        "only {} points",
        points.len() + swap_points.len()
    );
    assert_eq!(takeovers.0, kills, "each dead run's lock taken over once");
}
