//! The network benchmark: plan, up, no-op plan and down against the emulator
//! with a fixed latency added to every AWS call, printing calls and wall time;
//! then the cluster phase against the test API server with a fixed latency
//! added to every Kubernetes API call.
//!
//!     scripts/bench [--latency-ms 50] [--zones 3] [--placement beside-database|peered] [--nodes 3]
//!                   [--k8s-latency-ms 20] [--services 5,50] [--only aws|cluster]
//!
//! The AWS part prints, per command, its calls and wall time and then its
//! timeline (bursts of calls, each with its round-trip depth); for `up`,
//! the plan's critical path (`apply::critical_path`: the longest chain of
//! steps that wait on each other, each weighted by the calls it makes in
//! sequence, `providers::aws::step_calls`) and the ratio of the apply's wall
//! time (first write to last) to chain × latency: how close `up` is to its
//! limit. Measured on this machine (debug build, 3 nodes, beside the
//! database; `scripts/bench --only aws --latency-ms 150`, then 50 ms):
//!
//! ```text
//! critical path: 9 calls: create iam/instance-profile/master (4) → create ec2/instance/master-0 (2) → create pki/cert/apiserver (3)
//! up: the apply (first to last write) 1.65s = 1.22 × (chain 9 calls × 150 ms = 1.35s); the whole up 3.58s = 1.25 × (chain + 10 round trips outside the apply = 2.85s)
//! plan (no-op): 2 round trips deep; 104 ms → [aws 24 reads (2 deep × 150 ms): 451 ms] → 17 ms to exit
//! ```
//!
//! - `up` at 150 ms: 171 calls, 3.6 s (was 5.0–5.2 s); the apply 1.22 ×
//!   its chain of 9 calls (was 2.97 s, 1.8 × a chain of 11). What had
//!   stretched it: 8 steps at a time for ~110 calls (now 16, and the step
//!   with the longest chain behind it starts first); the IAM step's four
//!   writes in a row (the policy and the profile now at once); the ELB's
//!   health check then attributes, a certificate's CA read then names
//!   (each now at once). Outside the apply, `up` makes about 9 round trips
//!   in a row: two looks of 2 (before the lock and under it), the lock,
//!   the wait for AWS to list what was made (2), the unlock (2).
//! - No-op plan: 24 calls, 2 round trips deep (was 3: the role policies are
//!   read at once); 0.33 s at 50 ms, of which ~0.1 s is process start and
//!   planning.
//! - `down` at 50 ms: 30 nodes 2.75 s against 3.01 s for 3 (was 5.07 s
//!   against 2.75 s): instances ready to go together go as one
//!   `TerminateInstances` and one wait (`DescribeInstances` of all ids).
//!
//! The cluster part, per size in `--services` (a config with that many
//! `[services.sN]`, each a Deployment and a Service, besides the add-ons and
//! the namespace's objects), in a fresh sandbox:
//! - `up` with `SCOPECTL_PHASE=aws` (the machines, the PKI; not measured
//!   here), then the test API server starts beside the sandbox
//!   (`TestCluster`, `tests/it/support/cluster.rs`);
//! - `up --yes` with the phase `cluster` (`SCOPECTL_PHASE=cluster`): the
//!   cluster phase alone, from nothing, against the running API;
//! - a no-op `plan` with every phase.
//!
//! For each: Kubernetes API calls from the server's request log (all, writes,
//! lists; the kinds listed), AWS calls through the proxy, wall time, and the
//! API's own time (`at API`): how long at least one Kubernetes request was
//! at the server (the union of the requests' intervals, the added latency
//! and the server's processing included). `beyond` is wall time minus that,
//! split into `AWS` (some AWS call out, no Kubernetes one) and `own` (no call
//! out: process start, planning, TLS set-up). Then, per size, `up`'s
//! timeline: bursts of calls with their round-trip depth and the gaps
//! between them. `up` does not wait for rollouts, so the simulated time
//! Deployments take to become ready is not in its wall time; it is reported
//! from the server's clock (`TIME_SCALE`: a pod is ready 2 simulated s after
//! it is scheduled). Targets: the no-op plan lists each kind once (12 lists,
//! flat from 5 to 50 services; its one other call is the `/readyz` probe
//! that tells an API not up yet from one that fails); the cluster phase of
//! `up` for 5 services within 1 s beyond the API's own time.
//!
//! Measured on this machine (2 shared cores, debug build; AWS 50 ms and
//! Kubernetes 20 ms per call, 3 nodes; `scripts/bench`, the AWS table
//! unchanged):
//!
//! ```text
//! services command             k8s writes lists  aws writes    wall  at API  beyond    =AWS    +own
//! 5        up --phase cluster   57     31    24   21      2   1.43s   0.67s   0.76s   0.53s   0.23s
//! 5        plan (no-op)         13      0    12   25      0   0.56s   0.07s   0.49s   0.34s   0.15s
//! 50       up --phase cluster  147    121    24   21      2   9.35s   8.50s   0.84s   0.53s   0.31s
//! 50       plan (no-op)         13      0    12   25      0   0.57s   0.10s   0.47s   0.25s   0.22s
//! ```
//!
//! - No-op plan: 12 lists, one per kind, and the `/readyz` probe: 13 calls
//!   at 5 and at 50 services. Met.
//! - `up`'s cluster phase for 5 services: 0.76 s beyond the API's 0.67 s.
//!   Met, since `observe_and_plan_with` (src/commands/mod.rs) reads the
//!   state store (admin credentials, services' secrets) at once with the
//!   observation instead of after it, and with the phase `cluster` observes
//!   of AWS only the load balancers (the API's address) beside the facts:
//!   the AWS resources were dropped from a cluster-only plan anyway. Before:
//!   53 AWS calls, 1.75 s wall, 1.13 s beyond (0.91 s AWS): each of `up`'s
//!   two looks (without the lock, then under it) took 4 AWS round trips,
//!   now 2.
//! - What is left beyond: AWS 0.53 s, about 7 round trips of ~65 ms (the
//!   two looks, the lock's PutParameter, its release's GetParameter and
//!   DeleteParameter); scopectl's own 0.23 s: process start (~60 ms), the
//!   first TLS connection to the API (~90 ms once, debug-built TLS; ~7 ms
//!   the second time), planning (~20 ms a look; ~70 ms at 50 services).
//! - The Kubernetes side of `up`: 2 × (`/readyz` + 12 lists), then the
//!   inventory and the objects in kapp's rank order (namespaces; RBAC;
//!   accounts and config; workloads and services), each rank one wave of
//!   round trips, 2–4 ms of scopectl between waves, 8 at a time (then; 16 now)
//!   (`--parallelism`), no retries (every answer 2xx).
//! - 8.5 s at the API with 50 services is the test server's own time, not
//!   the latency: after every write its controllers reconcile every
//!   Deployment, ReplicaSet and Pod under its one state lock (about 4
//!   passes of ~1 ms per Deployment in a debug build: ~200 ms a write at 50
//!   Deployments) and the applies queue behind them (median 160 ms a
//!   request beyond the 20 ms).
//! - Rollouts: every service's Deployment was available 10 s (5 services)
//!   and 29 s (50) on the server's clock after it was made (0.1 s and 0.3 s
//!   real at ×100; more than the 2 s a pod takes because the busy
//!   controllers let simulated time pass), all before `up` returned; `up`
//!   does not wait for them, so none of it is in its wall time.

#[path = "../tests/it/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use scopectl_apiserver::{util, Record};
use support::cluster::{self, TestCluster};
use support::proxy::Call;
use support::{config_text, expect_exit, output, Sandbox};

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_string())
}

/// What the benchmark's configs share.
struct Setup {
    latency: Duration,
    zones: usize,
    placement: String,
    nodes: u32,
}

impl Setup {
    /// The env's settings under `[env.bench]`.
    fn extra(&self) -> String {
        let zone_list: Vec<String> = "abcdef"
            .chars()
            .take(self.zones)
            .map(|c| format!("\"us-east-1{c}\""))
            .collect();
        let cidr = if self.placement == "peered" {
            "10.20.0.0/16"
        } else {
            "172.31.128.0/20"
        };
        format!(
            "network.placement = \"{}\"\nnetwork.cidr = \"{cidr}\"\nnetwork.zones = [{}]\ncluster.nodes.count = {}",
            self.placement,
            zone_list.join(", "),
            self.nodes
        )
    }
}

fn main() {
    let setup = Setup {
        latency: Duration::from_millis(arg("--latency-ms", "50").parse().expect("--latency-ms N")),
        zones: arg("--zones", "3").parse().expect("--zones N"),
        placement: arg("--placement", "beside-database"),
        nodes: arg("--nodes", "3").parse().expect("--nodes N"),
    };
    let k8s_latency = Duration::from_millis(
        arg("--k8s-latency-ms", "20")
            .parse()
            .expect("--k8s-latency-ms N"),
    );
    let sizes: Vec<usize> = arg("--services", "5,50")
        .split(',')
        .map(|s| s.trim().parse().expect("--services N[,N…]"))
        .collect();
    let only = arg("--only", "all");
    assert!(
        matches!(only.as_str(), "all" | "aws" | "cluster"),
        "--only aws|cluster"
    );
    version_time();
    if only != "cluster" {
        aws(&setup);
    }
    if only != "aws" {
        if only == "all" {
            println!();
        }
        let rows: Vec<ClusterRun> = sizes
            .iter()
            .map(|&n| cluster_run(&setup, k8s_latency, n))
            .collect();
        report(&setup, k8s_latency, &rows);
    }
}

/// The AWS measurements: plan, up, no-op plan, no-op up and down.
/// `scopectl --version`, the median of 20 runs: it answers before reading
/// anything (a test checks that; how fast is measured here, not there).
fn version_time() {
    let mut times: Vec<Duration> = (0..20)
        .map(|_| {
            let t = Instant::now();
            let ok = std::process::Command::new(support::binary())
                .arg("--version")
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false);
            assert!(ok, "scopectl --version failed");
            t.elapsed()
        })
        .collect();
    times.sort();
    println!(
        "scopectl --version: median {:.1} ms of 20 runs\n",
        times[times.len() / 2].as_secs_f64() * 1000.0
    );
}

fn aws(setup: &Setup) {
    let Setup {
        latency,
        zones,
        placement,
        nodes,
        ..
    } = setup;
    let sb = Sandbox::with_latency(*latency);
    sb.prepare_db("bench-db");
    let cfg = sb.config(
        "scope.toml",
        &config_text("bench", "bench-db", &setup.extra()),
    );

    println!(
        "latency {} ms per call, placement {placement}, {zones} zones, {nodes} nodes",
        latency.as_millis()
    );
    println!(
        "{:<14} {:>6} {:>7} {:>9}   calls by action",
        "command", "calls", "writes", "wall"
    );
    let mut timelines = Vec::new();
    let saved = sb.dir.path().join("bench-plan.json");
    let saved_arg = saved.to_string_lossy().to_string();
    let mut up_wall = None;
    for (label, args) in [
        ("plan", &["plan", "--out", saved_arg.as_str()][..]),
        ("up", &["up", "--yes"]),
        ("plan (no-op)", &["plan", "--detailed-exitcode"]),
        ("up (no-op)", &["up", "--yes"]),
        ("down", &["down", "--yes"]),
    ] {
        let mark = sb.mark();
        let t = Instant::now();
        let mut full = vec!["--env", "bench", "-q"];
        full.extend_from_slice(args);
        sb.expect(0, &cfg, &full);
        let wall = t.elapsed();
        let calls = sb.calls_since(mark);
        let writes = calls.iter().filter(|c| c.is_write()).count();
        let mut by_action = BTreeMap::new();
        for c in &calls {
            *by_action.entry(c.action.as_str()).or_insert(0) += 1;
        }
        let detail: Vec<String> = by_action.iter().map(|(a, n)| format!("{a}×{n}")).collect();
        println!(
            "{label:<14} {:>6} {writes:>7} {:>8.2}s   {}",
            calls.len(),
            wall.as_secs_f64(),
            detail.join(" ")
        );
        if label == "up" {
            if std::env::var_os("BENCH_TRACE").is_some() {
                for c in &calls {
                    eprintln!(
                        "{:>6} {:>6} {} {} {}",
                        c.at.saturating_duration_since(t).as_millis(),
                        (c.at + c.took).saturating_duration_since(t).as_millis(),
                        c.status,
                        c.action,
                        c.names
                    );
                }
            }
            up_wall = Some((wall, apply_span(&calls, t)));
        }
        timelines.push((label, aws_measured(wall, t, calls)));
    }
    // The plan's critical path, weighted by each step's calls in sequence
    // (`providers::aws::step_calls`): chain × latency bounds `up` from below.
    let plan: scopectl::plan::Plan =
        serde_json::from_str(&std::fs::read_to_string(&saved).expect("plan --out wrote the plan"))
            .expect("a plan");
    let path = scopectl::apply::critical_path(&plan.changes, scopectl::providers::aws::step_calls);
    println!("critical path: {path}");
    if let Some((wall, (apply, outside))) = up_wall {
        let bound = latency.mul_f64(path.calls as f64);
        let whole = latency.mul_f64((path.calls + outside) as f64);
        println!(
            "up: the apply (first to last write) {} = {:.2} × (chain {} calls × {} ms = {}); the whole up {} = {:.2} × (chain + {} round trips outside the apply = {})",
            secs(apply),
            apply.as_secs_f64() / bound.as_secs_f64(),
            path.calls,
            latency.as_millis(),
            secs(bound),
            secs(wall),
            wall.as_secs_f64() / whole.as_secs_f64(),
            outside,
            secs(whole),
        );
    }
    for (label, m) in &timelines {
        let spans: Vec<&Span> = m.spans.iter().collect();
        println!(
            "{label}: {} round trips deep; {}",
            depth(&spans),
            timeline(m, *latency, Duration::ZERO)
        );
    }
    assert!(
        sb.snapshot().owned("scope", "bench").is_empty(),
        "down left resources behind"
    );
}

/// From the first write after the lock's to the end of the last one before
/// its release: the apply.
/// With the round trips of the calls outside it (the looks, the lock, the
/// wait for AWS to list what was made).
fn apply_span(calls: &[Call], t: Instant) -> (Duration, usize) {
    let writes: Vec<&Call> = calls.iter().filter(|c| c.is_write()).collect();
    let inner = writes.get(1..writes.len().saturating_sub(1)).unwrap_or(&[]);
    let start = inner.iter().map(|c| c.at).min();
    let end = inner.iter().map(|c| c.at + c.took).max();
    match (start, end) {
        (Some(a), Some(b)) => {
            let m = aws_measured(Duration::ZERO, t, calls.to_vec());
            let (a_us, b_us) = (
                a.saturating_duration_since(t).as_micros() as u64,
                b.saturating_duration_since(t).as_micros() as u64,
            );
            let outside: Vec<&Span> = m
                .spans
                .iter()
                .filter(|s| s.end <= a_us || s.start >= b_us)
                .collect();
            (b.saturating_duration_since(a.max(t)), depth(&outside))
        }
        _ => (Duration::ZERO, 0),
    }
}

/// A run's AWS calls as a timeline (no Kubernetes side).
fn aws_measured(wall: Duration, t: Instant, aws: Vec<Call>) -> Measured {
    let spans = aws
        .iter()
        .map(|c| {
            let start = c.at.saturating_duration_since(t).as_micros() as u64;
            Span {
                side: Side::Aws,
                start,
                end: start + c.took.as_micros() as u64,
                what: c.action.clone(),
            }
        })
        .collect();
    Measured {
        wall,
        k8s: Vec::new(),
        aws,
        spans,
    }
}

/// A config with `n` services, `[services.s1]` … `[services.sN]`.
fn services_config(n: usize, extra: &str) -> String {
    let services: String = (1..=n)
        .map(|i| {
            format!(
                "[services.s{i}]\nimage = \"registry.example/scope/s{i}\"\nport = 8080\ninitial_tag = \"v1.0.{i}\"\n\n"
            )
        })
        .collect();
    format!(
        r#"project = "scope"

[aws]
region = "us-east-1"

[network]
placement = "beside-database"
cidr = "172.31.128.0/20"

[database]
rds_instance = "bench-db"

{services}[env.bench]
{extra}
"#
    )
}

/// Which side of scopectl a call went to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Aws,
    K8s,
}

/// One call on the timeline of a run, in µs since scopectl was started.
struct Span {
    side: Side,
    start: u64,
    end: u64,
    /// `get /readyz`, `list`, `patch`, or the AWS action.
    what: String,
}

/// One command's measurements against the test cluster.
struct Measured {
    wall: Duration,
    /// The Kubernetes requests it made, in order.
    k8s: Vec<Record>,
    aws: Vec<Call>,
    spans: Vec<Span>,
}

impl Measured {
    fn writes(&self) -> usize {
        self.k8s.iter().filter(|r| is_write(&r.verb)).count()
    }

    fn lists(&self) -> Vec<&Record> {
        self.k8s.iter().filter(|r| r.verb == "list").collect()
    }

    /// How long at least one call (of `side`, or of either) was out.
    fn busy(&self, side: Option<Side>) -> Duration {
        Duration::from_micros(union(
            self.spans
                .iter()
                .filter(|s| side.is_none_or(|x| s.side == x)),
        ))
    }

    /// Wall time beyond the API's own time.
    fn beyond(&self) -> Duration {
        self.wall.saturating_sub(self.busy(Some(Side::K8s)))
    }

    /// Of `beyond`: AWS calls out and no Kubernetes call.
    fn aws_only(&self) -> Duration {
        self.busy(None).saturating_sub(self.busy(Some(Side::K8s)))
    }

    /// Of `beyond`: no call out at all (process start, planning, TLS set-up).
    fn own(&self) -> Duration {
        self.wall.saturating_sub(self.busy(None))
    }
}

/// The length of the union of the spans' intervals, in µs.
fn union<'a>(spans: impl Iterator<Item = &'a Span>) -> u64 {
    let mut v: Vec<(u64, u64)> = spans.map(|s| (s.start, s.end)).collect();
    v.sort_unstable();
    let (mut total, mut end) = (0, 0);
    for (a, b) in v {
        if b > end {
            total += b - a.max(end);
            end = b;
        }
    }
    total
}

/// The most calls of `spans` that ran one after another (none overlapping):
/// how many round trips deep they were.
fn depth(spans: &[&Span]) -> usize {
    let mut v: Vec<(u64, u64)> = spans.iter().map(|s| (s.end, s.start)).collect();
    v.sort_unstable();
    let (mut n, mut free) = (0, 0);
    for (end, start) in v {
        if start >= free {
            n += 1;
            free = end;
        }
    }
    n
}

fn is_write(verb: &str) -> bool {
    matches!(
        verb,
        "create" | "update" | "patch" | "delete" | "deletecollection"
    )
}

/// The kind (its plural) a request is about: `/apis/apps/v1/namespaces/scope/deployments/s1`
/// is `deployments`.
fn plural(path: &str) -> String {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let rest = match segs.as_slice() {
        ["api", _, rest @ ..] => rest,
        ["apis", _, _, rest @ ..] => rest,
        _ => return path.to_string(),
    };
    match rest {
        ["namespaces", _, kind, ..] => kind.to_string(),
        [kind, ..] => kind.to_string(),
        [] => path.to_string(),
    }
}

struct ClusterRun {
    services: usize,
    /// The objects the cluster phase applied.
    objects: usize,
    up: Measured,
    plan: Measured,
    /// The server's simulated time from a service's Deployment being made
    /// to its being available, the longest; and when, after `up` returned,
    /// they all were (real time).
    rollout: Option<(Duration, Duration)>,
    /// `scopectl rollout --all` of every service: (wall, scopectl's own time
    /// from the last Deployment complete to its exit).
    release: Option<(Duration, Duration)>,
    /// A release of every service with one crash-looping image: its wall
    /// time to exit 3 with everything rolled back, and the grace it used.
    failing: Option<(Duration, i32)>,
}

/// Runs scopectl against `tc` with `phase` (None: every phase) and measures it.
fn measure(
    sb: &Sandbox,
    tc: &TestCluster<'_>,
    cfg: &Path,
    phase: Option<&str>,
    args: &[&str],
) -> Measured {
    let handle = tc.handle().expect("the test cluster serves");
    let k8s_mark = handle.requests().len();
    let aws_mark = sb.mark();
    let mut cmd = sb.scopectl_in_cluster(tc, cfg, args);
    if let Some(p) = phase {
        cmd.env("SCOPECTL_PHASE", p);
    }
    let t = Instant::now();
    let result = output(cmd);
    let wall = t.elapsed();
    expect_exit(0, args, result);
    let k8s = handle.requests().split_off(k8s_mark);
    let aws = sb.calls_since(aws_mark);
    let since = |at: Instant| at.saturating_duration_since(t).as_micros() as u64;
    let mut spans: Vec<Span> = k8s
        .iter()
        .map(|r| {
            let start = since(handle.born() + Duration::from_micros(r.at_micros));
            Span {
                side: Side::K8s,
                start,
                end: start + r.micros,
                what: match r.verb.as_str() {
                    "get" | "watch" => format!("{} {}", r.verb, r.path),
                    v => v.to_string(),
                },
            }
        })
        .collect();
    spans.extend(aws.iter().map(|c| {
        let start = since(c.at);
        Span {
            side: Side::Aws,
            start,
            end: start + c.took.as_micros() as u64,
            what: c.action.clone(),
        }
    }));
    spans.sort_by_key(|s| (s.start, s.end));
    Measured {
        wall,
        k8s,
        aws,
        spans,
    }
}

fn cluster_run(setup: &Setup, k8s_latency: Duration, n: usize) -> ClusterRun {
    let sb = Sandbox::with_latency(setup.latency);
    sb.prepare_db("bench-db");
    let cfg = sb.config("scope.toml", &services_config(n, &setup.extra()));
    let base = ["--env", "bench", "-q"];
    let with = |args: &[&'static str]| -> Vec<&'static str> {
        base.iter().chain(args).copied().collect::<Vec<_>>()
    };
    // The machines and the PKI: the AWS phase only.
    let t = Instant::now();
    sb.expect(0, &cfg, &with(&["up", "--yes"]));
    eprintln!(
        "{n} services: the AWS phase took {:.1} s; the cluster phase next",
        t.elapsed().as_secs_f64()
    );
    let instances = sb
        .snapshot()
        .owned("scope", "bench")
        .iter()
        .filter(|(k, _)| k == "instances")
        .count();
    let tc = TestCluster::expect(
        &sb,
        &cfg,
        "bench",
        instances,
        scopectl_apiserver::Config {
            latency: k8s_latency,
            ..cluster::config()
        },
    );
    let handle = tc.wait_started(Duration::from_secs(60));

    let up = measure(&sb, &tc, &cfg, Some("cluster"), &with(&["up", "--yes"]));
    let returned = Instant::now();
    // Every service's Deployment available: how long it took on the
    // server's clock (from its creation to its `Available` condition).
    let simulated = |name: &str| -> Option<i64> {
        let d = handle.object("apps/v1", "Deployment", "scope", name)?;
        let want = d["spec"]["replicas"].as_i64().unwrap_or(1);
        if d["status"]["availableReplicas"].as_i64() != Some(want) {
            return None;
        }
        let made = util::parse_rfc3339(d["metadata"]["creationTimestamp"].as_str()?)?;
        let available = d["status"]["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == "Available" && c["status"] == "True")?;
        Some(util::parse_rfc3339(available["lastTransitionTime"].as_str()?)? - made)
    };
    let mut rollout = None;
    while returned.elapsed() < Duration::from_secs(20) {
        let ms: Option<Vec<i64>> = (1..=n).map(|i| simulated(&format!("s{i}"))).collect();
        if let Some(ms) = ms {
            let longest = ms.into_iter().max().unwrap_or(0).max(0) as u64;
            rollout = Some((Duration::from_millis(longest), returned.elapsed()));
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    // Every write but the inventory's (a ConfigMap named after the env).
    let objects = up
        .k8s
        .iter()
        .filter(|r| is_write(&r.verb) && !r.path.ends_with("/scopectl-scope-bench"))
        .count();
    let plan = measure(
        &sb,
        &tc,
        &cfg,
        None,
        &with(&["plan", "--detailed-exitcode"]),
    );
    // A release of every service: the wall time, and scopectl's overhead
    // from the moment the last Deployment is complete by kubectl's rule (as
    // the server holds it, polled every 2 ms) to the process's exit.
    let complete = |tag: &str| -> bool {
        (1..=n).all(|i| {
            handle
                .object("apps/v1", "Deployment", "scope", &format!("s{i}"))
                .is_some_and(|d| {
                    d["spec"]["template"]["spec"]["containers"][0]["image"]
                        .as_str()
                        .is_some_and(|im| im.ends_with(tag))
                        && scopectl::rollout::progress(&d) == scopectl::rollout::Progress::Complete
                })
        })
    };
    let timed_rollout = |args: &[&str], tag: &str| -> (Duration, Option<Instant>, i32) {
        let t = Instant::now();
        let mut child = sb.spawn_in_cluster(&tc, &cfg, args);
        let mut done_at = None;
        loop {
            if done_at.is_none() && complete(tag) {
                done_at = Some(Instant::now());
            }
            if let Ok(Some(status)) = child.try_wait() {
                let wall = t.elapsed();
                return (wall, done_at, status.code().unwrap_or(-1));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    };
    let (wall, done, code) = timed_rollout(
        &["--env", "bench", "-q", "rollout", "--yes", "--all", "v2"],
        ":v2",
    );
    let exited = Instant::now();
    let release = (code == 0).then(|| (wall, done.map(|d| exited - d).unwrap_or_default()));
    let mut args: Vec<String> = [
        "--env",
        "bench",
        "-q",
        "rollout",
        "--yes",
        "--failure-grace",
        "1s",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend((1..=n).map(|i| format!("s{i}=v3{}", if i == 1 { "-crashloop" } else { "" })));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (wall, _, code) = timed_rollout(&args, ":never");
    let failing = Some((wall, code));
    ClusterRun {
        services: n,
        objects,
        up,
        plan,
        rollout,
        release,
        failing,
    }
}

fn secs(d: Duration) -> String {
    format!("{:.2}s", d.as_secs_f64())
}

fn report(setup: &Setup, k8s_latency: Duration, rows: &[ClusterRun]) {
    println!(
        "cluster phase: Kubernetes API latency {} ms per call, AWS {} ms per call, {} nodes",
        k8s_latency.as_millis(),
        setup.latency.as_millis(),
        setup.nodes
    );
    println!(
        "{:<8} {:<18} {:>4} {:>6} {:>5} {:>4} {:>6} {:>7} {:>7} {:>7} {:>7} {:>7}",
        "services",
        "command",
        "k8s",
        "writes",
        "lists",
        "aws",
        "writes",
        "wall",
        "at API",
        "beyond",
        "=AWS",
        "+own"
    );
    for r in rows {
        for (label, m) in [("up --phase cluster", &r.up), ("plan (no-op)", &r.plan)] {
            println!(
                "{:<8} {label:<18} {:>4} {:>6} {:>5} {:>4} {:>6} {:>7} {:>7} {:>7} {:>7} {:>7}",
                r.services,
                m.k8s.len(),
                m.writes(),
                m.lists().len(),
                m.aws.len(),
                m.aws.iter().filter(|c| c.is_write()).count(),
                secs(m.wall),
                secs(m.busy(Some(Side::K8s))),
                secs(m.beyond()),
                secs(m.aws_only()),
                secs(m.own()),
            );
        }
    }
    println!("at API: some Kubernetes request at the server (latency included); beyond: wall minus that,");
    println!("  = AWS: some AWS call out and no Kubernetes one, + own: no call out (start, planning, TLS)");
    for r in rows {
        if let Some((wall, overhead)) = r.release {
            println!(
                "{} services: rollout --all v2 took {} (all in parallel); scopectl's own time from the last Deployment complete to its exit: {} (target 200 ms: {})",
                r.services,
                secs(wall),
                secs(overhead),
                if overhead <= Duration::from_millis(200) { "met" } else { "missed" }
            );
        }
        if let Some((wall, code)) = r.failing {
            println!(
                "{} services: a release with one crash-looping image exited {code} (3: rolled back) in {} with a 1 s failure grace; the progress deadline is 600 s simulated ({} real at this time scale)",
                r.services,
                secs(wall),
                secs(Duration::from_secs_f64(600.0 / cluster::TIME_SCALE))
            );
        }
        println!(
            "{} services: up applied {} objects (Kubernetes calls: {}); {}",
            r.services,
            r.objects,
            by(r.up.k8s.iter().map(|x| x.verb.clone())),
            match r.rollout {
                Some((sim, after)) => format!(
                    "Deployments available {:.0} s simulated after they were made ({} real; all {} after up returned, not waited for)",
                    sim.as_secs_f64(),
                    secs(sim.div_f64(cluster::TIME_SCALE)),
                    secs(after)
                ),
                None => "Deployments not all available within 20 s".into(),
            }
        );
        let mut own: Vec<u64> =
            r.up.k8s
                .iter()
                .map(|x| x.micros.saturating_sub(k8s_latency.as_micros() as u64))
                .collect();
        own.sort_unstable();
        let failed = r.up.k8s.iter().filter(|x| x.status >= 300).count()
            + r.up.aws.iter().filter(|c| c.status >= 300).count();
        println!(
            "  the server's own time per request beyond the added latency: median {:.1} ms, max {:.0} ms, sum {}; answers other than 2xx (retried): {failed}",
            own.get(own.len() / 2).copied().unwrap_or(0) as f64 / 1000.0,
            own.last().copied().unwrap_or(0) as f64 / 1000.0,
            secs(Duration::from_micros(own.iter().sum())),
        );
        println!("  up: {}", timeline(&r.up, setup.latency, k8s_latency));
    }
    for r in rows {
        let kinds: Vec<String> = r.plan.lists().iter().map(|x| plural(&x.path)).collect();
        let others: Vec<String> = r
            .plan
            .k8s
            .iter()
            .filter(|x| x.verb != "list")
            .map(|x| format!("{} {}", x.verb, x.path))
            .collect();
        println!(
            "{} services: no-op plan: {} Kubernetes calls: {} lists ({}){}",
            r.services,
            r.plan.k8s.len(),
            kinds.len(),
            kinds.join(" "),
            if others.is_empty() {
                String::new()
            } else {
                format!(" + {}", others.join(", "))
            }
        );
        println!("  plan: {}", timeline(&r.plan, setup.latency, k8s_latency));
    }
    // The targets.
    let kinds = 12;
    let flat = rows.iter().all(|r| r.plan.lists().len() == kinds);
    println!(
        "target: no-op plan lists each of the {kinds} kinds once, flat: {} ({})",
        if flat { "met" } else { "MISSED" },
        rows.iter()
            .map(|r| format!(
                "{} lists, {} calls at {} services",
                r.plan.lists().len(),
                r.plan.k8s.len(),
                r.services
            ))
            .collect::<Vec<_>>()
            .join("; ")
    );
    if let Some(r) = rows.iter().find(|r| r.services == 5) {
        let beyond = r.up.beyond();
        println!(
            "target: the cluster phase of up for 5 services within 1 s beyond the API's own time: {} ({} beyond {} at the API: {} AWS, {} own)",
            if beyond < Duration::from_secs(1) {
                "met"
            } else {
                "MISSED"
            },
            secs(beyond),
            secs(r.up.busy(Some(Side::K8s))),
            secs(r.up.aws_only()),
            secs(r.up.own()),
        );
    }
}

/// Counts per key, as `key×n`, in key order.
fn by(keys: impl Iterator<Item = String>) -> String {
    let mut m = BTreeMap::<String, usize>::new();
    for k in keys {
        *m.entry(k).or_default() += 1;
    }
    m.iter()
        .map(|(k, n)| {
            if *n == 1 {
                k.clone()
            } else {
                format!("{k}×{n}")
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The run as bursts of calls (AWS and Kubernetes; calls less than 2 ms
/// apart are one burst) and the quiet gaps between them: per burst, its
/// length, and per side its calls and how many round trips deep they were.
fn timeline(m: &Measured, aws_latency: Duration, k8s_latency: Duration) -> String {
    let describe = |burst: &[&Span]| {
        let start = burst.iter().map(|s| s.start).min().unwrap_or(0);
        let end = burst.iter().map(|s| s.end).max().unwrap_or(0);
        let mut parts = Vec::new();
        for (side, name, latency) in [
            (Side::Aws, "aws", aws_latency),
            (Side::K8s, "k8s", k8s_latency),
        ] {
            let mine: Vec<&Span> = burst.iter().copied().filter(|s| s.side == side).collect();
            if mine.is_empty() {
                continue;
            }
            let what = if side == Side::Aws {
                // AWS reads by count; writes by name.
                let reads = mine.iter().filter(|s| !proxy_write(&s.what)).count();
                let writes = by(mine
                    .iter()
                    .filter(|s| proxy_write(&s.what))
                    .map(|s| s.what.clone()));
                match (reads, writes.is_empty()) {
                    (0, _) => writes,
                    (r, true) => format!("{r} reads"),
                    (r, false) => format!("{r} reads, {writes}"),
                }
            } else {
                by(mine.iter().map(|s| s.what.clone()))
            };
            parts.push(format!(
                "{name} {what} ({} deep × {} ms)",
                depth(&mine),
                latency.as_millis()
            ));
        }
        format!("[{}: {} ms]", parts.join("; "), (end - start) / 1000)
    };
    let mut out = Vec::new();
    let mut cursor = 0;
    let mut burst: Vec<&Span> = Vec::new();
    for s in &m.spans {
        if s.start > cursor + 2_000 {
            if !burst.is_empty() {
                out.push(describe(&burst));
                burst.clear();
            }
            out.push(format!("{} ms", (s.start - cursor) / 1000));
        }
        cursor = cursor.max(s.end);
        burst.push(s);
    }
    if !burst.is_empty() {
        out.push(describe(&burst));
    }
    let end = m.wall.as_micros() as u64;
    out.push(format!("{} ms to exit", end.saturating_sub(cursor) / 1000));
    out.join(" → ")
}

/// The proxy's idea of a write: not Describe*, Get*, List*.
fn proxy_write(action: &str) -> bool {
    !["Describe", "Get", "List"]
        .iter()
        .any(|p| action.starts_with(p))
}
