//! `scopectl rollout` against the test API server: a release moves the
//! services it names at once, is watched with `kubectl rollout status`'s
//! rule, fails fast on a failing pod and rolls every service back; history,
//! undo and `up` keeping the release's tags.

use crate::support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use scopectl_apiserver::{Config, Fault, Faults};
use serde_json::Value;
use support::cluster::{self, kubectl_binary, TestCluster};
use support::Sandbox;

fn config(env: &str, db: &str) -> String {
    config_envs(db, &[(env, "")])
}

/// Three services, two replicas each; one `[env.NAME]` per entry, with its
/// extra lines (each env of one sandbox needs its own `network.cidr`).
fn config_envs(db: &str, envs: &[(&str, &str)]) -> String {
    let mut text = format!(
        "project = \"scope\"\n\n[aws]\nregion = \"us-east-1\"\n\n[cluster]\nnodes = {{ count = 2, instance_type = \"m5.large\" }}\n\n[network]\nplacement = \"beside-database\"\ncidr = \"172.31.128.0/20\"\n\n[database]\nrds_instance = \"{db}\"\n"
    );
    for s in SERVICES {
        text.push_str(&format!(
            "\n[services.{s}]\nimage = \"registry.example/scope/{s}\"\nreplicas = 2\ninitial_tag = \"v1.4.2\"\n"
        ));
    }
    for (env, extra) in envs {
        text.push_str(&format!("\n[env.{env}]\n{extra}"));
    }
    text
}

const SERVICES: [&str; 3] = ["users", "ui", "reports"];

fn image(tc: &TestCluster, service: &str) -> String {
    tc.kubectl_ok(&[
        "-n",
        "scope",
        "get",
        "deploy",
        service,
        "-o",
        "jsonpath={.spec.template.spec.containers[0].image}",
    ])
}

fn rollout(
    sb: &Sandbox,
    tc: &TestCluster,
    cfg: &Path,
    env: &str,
    args: &[&str],
) -> (i32, String, String) {
    let mut all = vec!["--env", env, "rollout", "--yes", "--failure-grace", "1s"];
    all.extend_from_slice(args);
    sb.run_in_cluster(tc, cfg, &all)
}

/// `rollout undo`, as `rollout` runs a release.
fn undo(sb: &Sandbox, tc: &TestCluster, cfg: &Path, env: &str) -> (i32, String, String) {
    sb.run_in_cluster(
        tc,
        cfg,
        &[
            "--env",
            env,
            "rollout",
            "undo",
            "--yes",
            "--failure-grace",
            "1s",
        ],
    )
}

#[test]
fn a_release_rolls_forward_fails_fast_rolls_back_and_undoes() {
    if kubectl_binary().is_none() {
        eprintln!("skipped: kubectl is not on PATH");
        return;
    }
    let sb = Sandbox::start();
    let env = "it-rollout";
    sb.prepare_db("rollout-db");
    let cfg = sb.config("scope.toml", &config(env, "rollout-db"));
    let tc = TestCluster::expect(&sb, &cfg, env, 3, cluster::config());
    sb.expect_in_cluster(0, &tc, &cfg, &["--env", env, "up", "--yes"]);

    // A good release: all three at once, recorded, visible to kubectl.
    let t = Instant::now();
    let (code, out, err) = rollout(
        &sb,
        &tc,
        &cfg,
        env,
        &[
            "--output",
            "json",
            "users=v1.5.0",
            "ui=v1.5.0",
            "reports=v1.5.0",
        ],
    );
    assert_eq!(code, 0, "{err}");
    eprintln!("good release: {:.2} s", t.elapsed().as_secs_f64());
    support::assert_schema("release", &out);
    let record: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(record["format_version"], "1");
    assert_eq!(record["revision"], 1);
    assert_eq!(record["outcome"], "succeeded");
    assert_eq!(record["previous"]["users"], "v1.4.2");
    for s in ["users", "ui", "reports"] {
        assert_eq!(image(&tc, s), format!("registry.example/scope/{s}:v1.5.0"));
    }
    let kubectl_history = tc.kubectl_ok(&["-n", "scope", "rollout", "history", "deploy/users"]);
    assert!(
        kubectl_history.contains("scopectl revision 1"),
        "{kubectl_history}"
    );
    // The same tags again: nothing to do.
    let (code, out, err) = rollout(&sb, &tc, &cfg, env, &["--output", "json", "users=v1.5.0"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("already runs these tags"), "{err}");
    support::assert_schema("rollout-unchanged", &out);
    let unchanged: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(unchanged["changed"], false);
    assert_eq!(unchanged["release"], record);
    // `up` keeps the release's tags: no drift.
    sb.expect_in_cluster(0, &tc, &cfg, &["--env", env, "plan", "--detailed-exitcode"]);

    // One failing image: all three go back, exit 3, well before the deadline.
    let t = Instant::now();
    let (code, _, err) = rollout(
        &sb,
        &tc,
        &cfg,
        env,
        &["users=v1.6.0", "ui=v1.6.0-crashloop", "reports=v1.6.0"],
    );
    let took = t.elapsed();
    assert_eq!(code, 3, "{err}");
    // Failed fast, on the pods' reason: a release that ran into its deadline
    // would say "Timeout" (the wall time is the bench's business).
    assert!(err.contains("ui failed: CrashLoopBackOff"), "{err}");
    assert!(!err.contains("Timeout"), "{err}");
    assert!(err.contains("runs the previous release again"), "{err}");
    eprintln!(
        "failing release detected and rolled back in {:.2} s",
        took.as_secs_f64()
    );
    for s in ["users", "ui", "reports"] {
        assert_eq!(image(&tc, s), format!("registry.example/scope/{s}:v1.5.0"));
    }

    // A missing image, likewise.
    let (code, _, err) = rollout(&sb, &tc, &cfg, env, &["users=v1.7.0-missing"]);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("ImagePullBackOff") || err.contains("ErrImagePull"),
        "{err}"
    );
    assert_eq!(image(&tc, "users"), "registry.example/scope/users:v1.5.0");

    // --no-rollback leaves it in place and exits 1.
    let (code, _, err) = rollout(
        &sb,
        &tc,
        &cfg,
        env,
        &["--no-rollback", "reports=v1.8.0-crashloop"],
    );
    assert_eq!(code, 1, "{err}");
    assert_eq!(
        image(&tc, "reports"),
        "registry.example/scope/reports:v1.8.0-crashloop"
    );

    // A good one, then undo: back to revision 1's tags, as a new release.
    let (code, _, err) = rollout(&sb, &tc, &cfg, env, &["--all", "v2.0.0"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = undo(&sb, &tc, &cfg, env);
    assert_eq!(code, 0, "{err}");
    for s in ["users", "ui", "reports"] {
        assert_eq!(image(&tc, s), format!("registry.example/scope/{s}:v1.5.0"));
    }

    // History: every release with its outcome, newest first.
    let (out, _) = sb.expect_in_cluster(
        0,
        &tc,
        &cfg,
        &["--env", env, "rollout", "history", "--output", "json"],
    );
    // Every record kept, rolled back and failed ones with their failure.
    support::assert_schema("history", &out);
    let h: Value = serde_json::from_str(&out).unwrap();
    let outcomes: Vec<(u64, &str)> = h["releases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["revision"].as_u64().unwrap(),
                r["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            (6, "succeeded"),
            (5, "succeeded"),
            (4, "failed"),
            (3, "rolled-back"),
            (2, "rolled-back"),
            (1, "succeeded"),
        ]
    );
    let (out, _) = sb.expect_in_cluster(0, &tc, &cfg, &["--env", env, "rollout", "status"]);
    assert!(out.contains("release 6 succeeded"), "{out}");
    let (out, _) = sb.expect_in_cluster(
        0,
        &tc,
        &cfg,
        &["--env", env, "rollout", "status", "--output", "json"],
    );
    support::assert_schema("rollout-status", &out);
    let status: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(status["release"]["revision"], 6, "{status:#}");
    assert_eq!(status["services"]["users"]["tag"], "v1.5.0", "{status:#}");
    assert_eq!(
        status["services"]["users"]["state"], "complete",
        "{status:#}"
    );
    sb.expect_in_cluster(0, &tc, &cfg, &["--env", env, "down", "--yes"]);
}

/// The test cluster's settings with pods ready after `secs` simulated
/// seconds (a `slow` tag: ten times that) at [`cluster::TIME_SCALE`]:
/// `paced(10)` makes a good pod ready in 0.1 s of real time and a slow one
/// in 1 s. Two replicas roll one at a time (maxSurge 1, maxUnavailable 0).
fn paced(secs: u64) -> Config {
    Config {
        pod_ready: Duration::from_secs(secs),
        ..cluster::config()
    }
}

/// Every service's image, from the server's store (kubectl would fail on
/// an injected fault).
fn images(tc: &TestCluster) -> BTreeMap<String, String> {
    let c = tc.handle().expect("the test cluster runs");
    SERVICES
        .iter()
        .map(|s| {
            let d = c
                .object("apps/v1", "Deployment", "scope", s)
                .unwrap_or_else(|| panic!("no deployment {s}"));
            let image = d
                .pointer("/spec/template/spec/containers/0/image")
                .and_then(Value::as_str)
                .unwrap_or_default();
            (s.to_string(), image.to_string())
        })
        .collect()
}

/// The images of `tags` (every service, by name).
fn tagged(tags: [(&str, &str); 3]) -> BTreeMap<String, String> {
    tags.iter()
        .map(|(s, t)| (s.to_string(), format!("registry.example/scope/{s}:{t}")))
        .collect()
}

fn spawn_rollout(sb: &Sandbox, tc: &TestCluster, cfg: &Path, env: &str, args: &[&str]) -> Child {
    let mut all = vec!["--env", env, "rollout", "--yes", "--failure-grace", "1s"];
    all.extend_from_slice(args);
    sb.spawn_in_cluster(tc, cfg, &all)
}

fn finish(child: Child) -> (i32, String, String) {
    let out = child.wait_with_output().expect("wait for scopectl");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// The successful writes to a service's Deployment since request `mark`.
fn image_writes(tc: &TestCluster, mark: usize, service: &str) -> usize {
    let path = format!("/apis/apps/v1/namespaces/scope/deployments/{service}");
    tc.requests()
        .iter()
        .skip(mark)
        .filter(|r| r.verb == "patch" && r.status == 200 && r.path == path)
        .count()
}

/// Polls until `done`: `timeout` only guards against a hang (the events
/// awaited take well under a second on an idle machine; callers give 10x
/// and more, as a busy machine is slower).
fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let t = Instant::now();
    while !done() {
        assert!(t.elapsed() < timeout, "{what}: not within {timeout:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// (revision, outcome) of every release, newest first.
fn outcomes(sb: &Sandbox, tc: &TestCluster, cfg: &Path, env: &str) -> Vec<(u64, String)> {
    let args = ["--env", env, "rollout", "history", "--output", "json"];
    let (out, _) = sb.expect_in_cluster(0, tc, cfg, &args);
    let h: Value = serde_json::from_str(&out).unwrap();
    h["releases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["revision"].as_u64().unwrap(),
                r["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn releases(list: &[(u64, &str)]) -> Vec<(u64, String)> {
    list.iter().map(|(r, o)| (*r, o.to_string())).collect()
}

/// Whether the env lock is in the state store (`held`) or not, as the
/// emulator says; a failure to ask is neither.
fn lock_is(sb: &Sandbox, env: &str, held: bool) -> bool {
    sb.python_code(
        "import sys, boto3\nssm = boto3.client('ssm')\ntry:\n    ssm.get_parameter(Name=sys.argv[1])\n    held = 'held'\nexcept ssm.exceptions.ParameterNotFound:\n    held = 'free'\nsys.exit(0 if held == sys.argv[2] else 1)\n",
        &[
            &format!("/scopectl/scope/{env}/lock"),
            if held { "held" } else { "free" },
        ],
    )
}

/// The seed of the faults: `SCOPECTL_SEED` replays one.
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

#[test]
fn a_release_past_its_timeout_rolls_back_within_its_own_budget() {
    let total = Instant::now();
    let sb = Sandbox::start();
    let env = "it-timeout";
    sb.prepare_db("timeout-db");
    let cfg = sb.config("scope.toml", &config(env, "timeout-db"));
    let tc = TestCluster::expect(&sb, &cfg, env, 3, paced(10));
    let t = Instant::now();
    sb.expect_in_cluster(0, &tc, &cfg, &["--env", env, "up", "--yes"]);
    eprintln!("up: {:.1} s", t.elapsed().as_secs_f64());

    // users on a slow tag: a rollback to it waits for a slow pod.
    let (code, _, err) = rollout(
        &sb,
        &tc,
        &cfg,
        env,
        &["--timeout", "30s", "users=v1.5.0-slow"],
    );
    assert_eq!(code, 0, "{err}");

    // At 1.5 s the first new users pod is ready (1 s; one old pod gone) and
    // the second is not (2 s): Timeout. The rollback needs a new pod of the
    // old slow tag (1 s) with nothing left of --timeout: it has its own.
    let t = Instant::now();
    let (code, out, err) = rollout(
        &sb,
        &tc,
        &cfg,
        env,
        &[
            "--output",
            "json",
            "--timeout",
            "1500ms",
            "--rollback-timeout",
            "30s",
            "users=v1.6.0-slow",
            "ui=v1.6.0",
            "reports=v1.6.0",
        ],
    );
    let took = t.elapsed();
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("users failed: Timeout"), "{err}");
    let record: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(record["outcome"], "rolled-back", "{record}");
    assert_eq!(record["failure"]["reason"], "Timeout", "{record}");
    assert_eq!(
        images(&tc),
        tagged([
            ("users", "v1.5.0-slow"),
            ("ui", "v1.4.2"),
            ("reports", "v1.4.2")
        ])
    );
    // The rollback waited for users' new old-tag pod after the deadline.
    let rollback = err
        .split_once("rolling every service of the release back")
        .map(|(_, r)| r)
        .unwrap_or_else(|| panic!("no rollback in {err}"));
    let users_back: Vec<&str> = rollback
        .lines()
        .filter(|l| l.starts_with("users: "))
        .collect();
    assert!(
        users_back.len() >= 2 && users_back.last() == Some(&"users: complete"),
        "{err}"
    );
    assert!(took >= Duration::from_millis(2400), "took {took:?}\n{err}");
    eprintln!("timeout at 1.5 s and rollback: {:.2} s", took.as_secs_f64());

    // The same with a rollback budget shorter than that pod: the rollback
    // times out too (exit 1), the images written back all the same.
    let t = Instant::now();
    let (code, _, err) = rollout(
        &sb,
        &tc,
        &cfg,
        env,
        &[
            "--timeout",
            "1500ms",
            "--rollback-timeout",
            "300ms",
            "users=v1.7.0-slow",
        ],
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("users failed: Timeout"), "{err}");
    assert!(err.contains("its rollback failed too"), "{err}");
    assert!(
        err.contains("not complete within --rollback-timeout"),
        "{err}"
    );
    assert_eq!(
        images(&tc)["users"],
        "registry.example/scope/users:v1.5.0-slow"
    );
    eprintln!(
        "timeout and a rollback past its own budget: {:.2} s",
        t.elapsed().as_secs_f64()
    );
    assert_eq!(
        outcomes(&sb, &tc, &cfg, env),
        releases(&[(3, "failed"), (2, "rolled-back"), (1, "succeeded")])
    );
    eprintln!(
        "timeout test: {:.1} s in all",
        total.elapsed().as_secs_f64()
    );
}

#[test]
fn a_promotion_moves_another_env_to_exactly_the_last_good_release() {
    let total = Instant::now();
    let sb = Sandbox::start();
    let (stage, prod) = ("it-stage", "it-prod");
    sb.prepare_db("promote-db");
    let cfg = sb.config(
        "scope.toml",
        &config_envs(
            "promote-db",
            &[
                (stage, ""),
                (
                    prod,
                    "protected = true\ncluster.api_allowed_cidrs = [\"127.0.0.1/32\"]\n\n[env.it-prod.network]\ncidr = \"172.31.144.0/20\"\n",
                ),
            ],
        ),
    );
    let tc_stage = TestCluster::expect(&sb, &cfg, stage, 3, cluster::config());
    let tc_prod = TestCluster::expect(&sb, &cfg, prod, 3, cluster::config());
    let t = Instant::now();
    let ups = [(stage, &tc_stage), (prod, &tc_prod)]
        .map(|(env, tc)| sb.spawn_in_cluster(tc, &cfg, &["--env", env, "up", "--yes"]));
    for child in ups {
        let (code, _, err) = finish(child);
        assert_eq!(code, 0, "up: {err}");
    }
    eprintln!("two envs up at once: {:.1} s", t.elapsed().as_secs_f64());

    // Stage: a good release (its record kept), then a failing one, rolled back.
    let (code, out, err) = rollout(
        &sb,
        &tc_stage,
        &cfg,
        stage,
        &["--output", "json", "users=v1.5.0", "ui=v1.5.1"],
    );
    assert_eq!(code, 0, "{err}");
    let record_file = tc_stage.dir().join("release.json");
    std::fs::write(&record_file, &out).unwrap();
    let (code, _, err) = rollout(&sb, &tc_stage, &cfg, stage, &["reports=v1.6.0-crashloop"]);
    assert_eq!(code, 3, "{err}");
    let good = tagged([("users", "v1.5.0"), ("ui", "v1.5.1"), ("reports", "v1.4.2")]);
    assert_eq!(images(&tc_stage), good);

    // Refused before anything is written, here or in AWS: protected prod
    // without `--confirm it-prod` (or with another env's name), no tags, a
    // service the config does not have.
    let stage_url = tc_stage.url();
    let from = ["--from", stage, "--from-api-server", stage_url.as_str()];
    let (k8s_mark, aws_mark) = (tc_prod.requests().len(), sb.mark());
    let refused: [(Vec<&str>, &str); 5] = [
        ([&["rollout", "--yes"][..], &from].concat(), "is protected"),
        (
            [&["rollout", "--yes", "--confirm", stage][..], &from].concat(),
            "--confirm names `it-stage`, not the env `it-prod`",
        ),
        (vec!["rollout", "--yes", "--confirm", prod], "no tags given"),
        (
            vec![
                "rollout",
                "--yes",
                "--confirm",
                prod,
                "users=v1.6.0",
                "payments=v1.0.0",
            ],
            "`payments` is not a service of scope/it-prod",
        ),
        (vec!["rollout", "--confirm", prod, "users=v1.6.0"], "--yes"),
    ];
    for (args, says) in refused {
        let args = [&["--env", prod][..], &args].concat();
        let (code, _, err) = sb.run_in_cluster(&tc_prod, &cfg, &args);
        assert_eq!(code, 64, "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
    let writes: Vec<String> = tc_prod.requests()[k8s_mark..]
        .iter()
        .filter(|r| !matches!(r.verb.as_str(), "get" | "list" | "watch"))
        .map(|r| format!("{} {}", r.verb, r.path))
        .collect();
    assert!(writes.is_empty(), "refused rollouts wrote {writes:?}");
    let aws_writes: Vec<String> = sb
        .calls_since(aws_mark)
        .iter()
        .filter(|c| c.is_write())
        .map(|c| format!("{} {}", c.action, c.names))
        .collect();
    assert!(
        aws_writes.is_empty(),
        "refused rollouts wrote {aws_writes:?}"
    );
    assert_eq!(
        images(&tc_prod)["users"],
        "registry.example/scope/users:v1.4.2"
    );

    // The promotion: prod runs exactly stage's last good release.
    let t = Instant::now();
    let args = [&["--output", "json", "--confirm", prod][..], &from].concat();
    let (code, out, err) = rollout(&sb, &tc_prod, &cfg, prod, &args);
    assert_eq!(code, 0, "{err}");
    eprintln!("promotion: {:.2} s", t.elapsed().as_secs_f64());
    let record: Value = serde_json::from_str(&out).unwrap();
    assert!(
        record["cause"]
            .as_str()
            .unwrap()
            .starts_with("promote it-stage revision 1"),
        "{record}"
    );
    assert_eq!(images(&tc_prod), good);

    // Elsewhere, then back with the record stage's rollout printed.
    let (code, _, err) = rollout(
        &sb,
        &tc_prod,
        &cfg,
        prod,
        &["--confirm", prod, "--all", "v0.9.0"],
    );
    assert_eq!(code, 0, "{err}");
    let file = record_file.to_string_lossy();
    let (code, _, err) = rollout(
        &sb,
        &tc_prod,
        &cfg,
        prod,
        &["--confirm", prod, "--tags-file", &file],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(images(&tc_prod), good);
    assert_eq!(
        outcomes(&sb, &tc_prod, &cfg, prod),
        releases(&[(3, "succeeded"), (2, "succeeded"), (1, "succeeded")])
    );
    eprintln!(
        "promotion test: {:.1} s in all",
        total.elapsed().as_secs_f64()
    );
}

#[test]
fn one_rollout_at_a_time_and_a_killed_one_reads_interrupted() {
    let total = Instant::now();
    let sb = Sandbox::start();
    let env = "it-lock";
    sb.prepare_db("lock-db");
    let cfg = sb.config("scope.toml", &config(env, "lock-db"));
    // A slow pod takes 2 s: a slow release of two replicas holds the lock 4 s.
    let tc = TestCluster::expect(&sb, &cfg, env, 3, paced(20));
    sb.expect_in_cluster(0, &tc, &cfg, &["--env", env, "up", "--yes"]);

    // A second rollout while the first runs: exit 4, naming the holder.
    let mark = tc.requests().len();
    let t = Instant::now();
    let first = spawn_rollout(&sb, &tc, &cfg, env, &["users=v1.5.0-slow"]);
    let pid = first.id();
    wait_for(
        "the first rollout's image write",
        Duration::from_secs(120),
        || image_writes(&tc, mark, "users") > 0,
    );
    let (code, _, err) = rollout(&sb, &tc, &cfg, env, &["ui=v1.5.0"]);
    assert_eq!(code, 4, "{err}");
    assert!(
        err.contains(&format!("(pid {pid}) (rollout since")),
        "{err}"
    );
    let (code, _, err) = finish(first);
    assert_eq!(code, 0, "{err}");
    eprintln!(
        "a slow release with a second refused meanwhile: {:.2} s",
        t.elapsed().as_secs_f64()
    );
    assert_eq!(image_writes(&tc, mark, "ui"), 0);
    assert_eq!(
        images(&tc),
        tagged([
            ("users", "v1.5.0-slow"),
            ("ui", "v1.4.2"),
            ("reports", "v1.4.2")
        ])
    );

    // Killed once its image writes reached the server.
    let mark = tc.requests().len();
    let mut killed = spawn_rollout(
        &sb,
        &tc,
        &cfg,
        env,
        &["users=v1.6.0-slow", "ui=v1.6.0-slow"],
    );
    wait_for("the image writes", Duration::from_secs(120), || {
        image_writes(&tc, mark, "users") > 0 && image_writes(&tc, mark, "ui") > 0
    });
    killed.kill().expect("SIGKILL the rollout");
    // Reaped, as after a real kill: its pid is free.
    killed.wait().expect("reap it");
    assert!(lock_is(&sb, env, true), "the killed rollout's lock is gone");

    // status says so at once (the dead process's lock is not a live one).
    let t = Instant::now();
    let (out, _) = sb.expect_in_cluster(0, &tc, &cfg, &["--env", env, "rollout", "status"]);
    let took = t.elapsed();
    // "At once": it reads the dead holder as dead instead of reporting a
    // live release (no wall bound: that is the bench's business).
    assert!(out.contains("release 2 interrupted"), "{out}");
    assert!(!out.contains("in progress"), "{out}");
    eprintln!("status of a killed release: {:.2} s", took.as_secs_f64());

    // A new release takes the stale lock over and succeeds.
    let (code, _, err) = rollout(&sb, &tc, &cfg, env, &["users=v1.7.0", "ui=v1.7.0"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("breaking a stale lock"), "{err}");
    assert!(lock_is(&sb, env, false), "the lock was not released");
    assert_eq!(
        images(&tc),
        tagged([("users", "v1.7.0"), ("ui", "v1.7.0"), ("reports", "v1.4.2")])
    );
    assert_eq!(
        outcomes(&sb, &tc, &cfg, env),
        releases(&[(3, "succeeded"), (2, "interrupted"), (1, "succeeded")])
    );

    // SIGTERM (a cancelled CI job) mid-release (issue 27): recorded as
    // interrupted at once, the lock let go, exit 143; the next rollout needs
    // no takeover.
    let mark = tc.requests().len();
    let cancelled = spawn_rollout(
        &sb,
        &tc,
        &cfg,
        env,
        &["users=v1.8.0-slow", "ui=v1.8.0-slow"],
    );
    wait_for("the image writes", Duration::from_secs(120), || {
        image_writes(&tc, mark, "users") > 0 && image_writes(&tc, mark, "ui") > 0
    });
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &cancelled.id().to_string()])
        .status()
        .expect("run kill");
    assert!(sent.success());
    let (code, _, err) = finish(cancelled);
    assert_eq!(code, 143, "{err}");
    assert!(
        err.contains("release 4 is recorded as interrupted"),
        "{err}"
    );
    assert!(
        lock_is(&sb, env, false),
        "the cancelled rollout kept the lock"
    );
    assert_eq!(
        outcomes(&sb, &tc, &cfg, env)[0],
        (4, "interrupted".to_string())
    );
    let (code, _, err) = rollout(&sb, &tc, &cfg, env, &["users=v1.9.0", "ui=v1.9.0"]);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("breaking a stale lock"), "{err}");
    assert_eq!(
        images(&tc),
        tagged([("users", "v1.9.0"), ("ui", "v1.9.0"), ("reports", "v1.4.2")])
    );

    if kubectl_binary().is_some() {
        let h = tc.kubectl_ok(&["-n", "scope", "rollout", "history", "deploy/users"]);
        for rev in 1..=3 {
            assert!(h.contains(&format!("scopectl revision {rev}:")), "{h}");
        }
        let h = tc.kubectl_ok(&["-n", "scope", "rollout", "history", "deploy/ui"]);
        assert!(h.contains("scopectl revision 2:"), "{h}");
        assert!(h.contains("scopectl revision 3:"), "{h}");
        assert!(!h.contains("scopectl revision 1:"), "{h}");
    }
    eprintln!(
        "lock and kill test: {:.1} s in all",
        total.elapsed().as_secs_f64()
    );
}

/// A good release of every service, then a failing one: exit 0 with the
/// new images, then exit 3 with them restored, each on what the pods did,
/// never on `--timeout` (a watch the server cut must not leave the rollout
/// blind: a blind one would end in "Timeout"), each recorded once. Returns
/// how long each took.
fn good_then_failing(
    sb: &Sandbox,
    tc: &TestCluster,
    cfg: &Path,
    env: &str,
) -> (Duration, Duration) {
    let t = Instant::now();
    let (code, _, err) = rollout(sb, tc, cfg, env, &["--timeout", "2m", "--all", "v1.5.0"]);
    let good = t.elapsed();
    assert_eq!(code, 0, "{env}: {err}");
    let released = tagged([("users", "v1.5.0"), ("ui", "v1.5.0"), ("reports", "v1.5.0")]);
    assert_eq!(images(tc), released, "{env}");

    let t = Instant::now();
    let (code, _, err) = rollout(
        sb,
        tc,
        cfg,
        env,
        &[
            "--timeout",
            "2m",
            "users=v1.6.0",
            "ui=v1.6.0-crashloop",
            "reports=v1.6.0",
        ],
    );
    let bad = t.elapsed();
    assert_eq!(code, 3, "{env}: {err}");
    assert!(err.contains("ui failed: CrashLoopBackOff"), "{env}: {err}");
    assert!(!err.contains("Timeout"), "{env}: {err}");
    assert_eq!(images(tc), released, "{env}");
    assert_eq!(
        outcomes(sb, tc, cfg, env),
        releases(&[(2, "rolled-back"), (1, "succeeded")]),
        "{env}"
    );
    (good, bad)
}

/// The injected faults among `rs`: by kind, their number, and how many of
/// `rs` could be faulted.
fn tally(rs: &[scopectl_apiserver::Record]) -> (BTreeMap<String, usize>, usize, usize) {
    let mut t: BTreeMap<String, usize> = BTreeMap::new();
    for f in rs.iter().filter_map(|r| r.fault) {
        *t.entry(format!("{f:?}")).or_default() += 1;
    }
    let n: usize = t.values().sum();
    (t, n, rs.iter().filter(|r| faultable(&r.path)).count())
}

/// Three envs of one sandbox, each its own test API server:
/// - `it-faults`: 30% of its API requests faulted: 429, 500, 503, 409 on
///   writes, watches cut, connections cut before a request is served or
///   after (its answer lost), up to 100 ms latency; each kind met first on
///   each verb, at most 3 faults in a row;
/// - `it-cuts`: 80% of its watches cut after a few events, pods ready in
///   0.1 s, so that a release spans several watches (a rollout that stopped
///   hearing one kind when its watch ended, the other still open, would
///   wait for --timeout);
/// - `it-lost`: half its requests' connections cut, before or after they
///   are served, the first of each verb surely (a release record written
///   with its answer lost must not turn into two releases).
///
/// In each a good release succeeds and a failing one is rolled back,
/// promptly, each recorded once.
#[test]
fn releases_hold_under_api_faults() {
    let total = Instant::now();
    let seed = seed();
    eprintln!("API faults: seed {seed} (replay with SCOPECTL_SEED={seed})");
    let sb = Sandbox::start();
    sb.prepare_db("faults-db");
    let envs = [
        (
            "it-faults",
            "",
            Config {
                faults: Faults {
                    seed,
                    rate: 0.3,
                    throttle: true,
                    errors: true,
                    conflicts: true,
                    cut_watches: true,
                    cut_connections: true,
                    max_latency: Duration::from_millis(100),
                    every_kind_per_verb: true,
                    max_in_a_row: 3,
                },
                ..cluster::config()
            },
        ),
        (
            "it-cuts",
            "\n[env.it-cuts.network]\ncidr = \"172.31.144.0/20\"\n",
            Config {
                faults: Faults {
                    seed,
                    rate: 0.8,
                    cut_watches: true,
                    ..Faults::default()
                },
                ..paced(10)
            },
        ),
        (
            "it-lost",
            "\n[env.it-lost.network]\ncidr = \"172.31.160.0/20\"\n",
            Config {
                faults: Faults {
                    seed,
                    rate: 0.5,
                    cut_connections: true,
                    every_kind_per_verb: true,
                    max_in_a_row: 3,
                    ..Faults::default()
                },
                ..cluster::config()
            },
        ),
    ];
    let text = config_envs(
        "faults-db",
        &envs.each_ref().map(|(env, extra, _)| (*env, *extra)),
    );
    let cfg = sb.config("scope.toml", &text);
    let clusters =
        envs.map(|(env, _, config)| (env, TestCluster::expect(&sb, &cfg, env, 3, config)));
    let t = Instant::now();
    let ups = clusters
        .each_ref()
        .map(|(env, tc)| sb.spawn_in_cluster(tc, &cfg, &["--env", env, "up", "--yes"]));
    for child in ups {
        let (code, _, err) = finish(child);
        assert_eq!(code, 0, "up under faults (seed {seed}): {err}");
    }
    eprintln!(
        "three envs up under API faults: {:.1} s",
        t.elapsed().as_secs_f64()
    );

    for (env, tc) in &clusters {
        let mark = tc.requests().len();
        let (good, bad) = good_then_failing(&sb, tc, &cfg, env);
        let requests = tc.requests();
        let (up, rollouts) = requests.split_at(mark);
        let (up_kinds, up_faulted, up_n) = tally(up);
        let (kinds, faulted, n) = tally(rollouts);
        let watches = rollouts.iter().filter(|r| r.verb == "watch").count();
        eprintln!(
            "{env}, seed {seed}: up sent {up_n} API requests (discovery aside), {up_faulted} faulted: {up_kinds:?}; the rollouts {n} ({watches} watches), {faulted} faulted ({:.0}%): {kinds:?}; good release {:.2} s, failing one rolled back {:.2} s",
            100.0 * faulted as f64 / n as f64,
            good.as_secs_f64(),
            bad.as_secs_f64()
        );
        let met = |f: Fault| rollouts.iter().any(|r| r.fault == Some(f));
        match *env {
            "it-cuts" => assert!(met(Fault::CutWatch), "{env}: no watch was cut"),
            "it-lost" => assert!(
                rollouts
                    .iter()
                    .any(|r| r.verb == "create" && r.fault == Some(Fault::CutAfter)),
                "{env}: no release record's answer was lost"
            ),
            _ => assert!(faulted > 0, "{env}: no fault reached the rollouts"),
        }
    }
    eprintln!("faults test: {:.1} s in all", total.elapsed().as_secs_f64());
}

/// Whether the server may fault a request to `path`: an object or a
/// collection (discovery never is).
fn faultable(path: &str) -> bool {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    matches!(segs.first(), Some(&"api") if segs.len() >= 3)
        || matches!(segs.first(), Some(&"apis") if segs.len() >= 4)
}

/// `undo` always has a way back: after an env's first release it goes to
/// revision 0, the tags `up` first deployed (as `helm rollback` goes to the
/// previous revision); the same after a failed release on top of a good
/// one; twice in a row, it goes back and forth. `rollout history` shows
/// revision 0, in human and JSON output alike.
#[test]
fn undo_after_the_first_release_goes_back_to_what_up_deployed() {
    let sb = Sandbox::start();
    let env = "it-undo0";
    sb.prepare_db("undo0-db");
    let cfg = sb.config("scope.toml", &config(env, "undo0-db"));
    let tc = TestCluster::expect(&sb, &cfg, env, 3, cluster::config());
    sb.expect_in_cluster(0, &tc, &cfg, &["--env", env, "up", "--yes"]);
    let first = tagged([("users", "v1.4.2"), ("ui", "v1.4.2"), ("reports", "v1.4.2")]);

    let (code, _, err) = rollout(&sb, &tc, &cfg, env, &["users=v2.0.0", "ui=v2.0.0"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = undo(&sb, &tc, &cfg, env);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("ui=v1.4.2 users=v1.4.2"), "{err}");
    assert_eq!(images(&tc), first);

    // Undo again: back to the release it undid.
    let (code, _, err) = undo(&sb, &tc, &cfg, env);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        images(&tc),
        tagged([("users", "v2.0.0"), ("ui", "v2.0.0"), ("reports", "v1.4.2")])
    );

    // History shows revision 0 in both outputs.
    let (out, _) = sb.expect_in_cluster(0, &tc, &cfg, &["--env", env, "rollout", "history"]);
    assert!(out.contains("0     initial"), "{out}");
    let (out, _) = sb.expect_in_cluster(
        0,
        &tc,
        &cfg,
        &["--env", env, "rollout", "history", "--output", "json"],
    );
    support::assert_schema("history", &out);
    let h: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(h["initial"]["revision"], 0, "{h:#}");
    // Newest first: the second undo, the first (to revision 0), the release.
    assert_eq!(
        h["releases"][1]["cause"], "undo to revision 0 (the tags before the first release)",
        "{h:#}"
    );
    assert_eq!(h["initial"]["services"]["users"], "v1.4.2", "{h:#}");
}

/// A failed release (rolled back) on top of the env's only good one: undo
/// goes back past both, to revision 0.
#[test]
fn undo_after_a_failed_release_on_top_of_the_first_goes_to_revision_0() {
    let sb = Sandbox::start();
    let env = "it-undo1";
    sb.prepare_db("undo1-db");
    let cfg = sb.config("scope.toml", &config(env, "undo1-db"));
    let tc = TestCluster::expect(&sb, &cfg, env, 3, cluster::config());
    sb.expect_in_cluster(0, &tc, &cfg, &["--env", env, "up", "--yes"]);
    let (code, _, err) = rollout(&sb, &tc, &cfg, env, &["--all", "v1.5.0"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = rollout(&sb, &tc, &cfg, env, &["users=v1.6.0-crashloop"]);
    assert_eq!(code, 3, "{err}");
    let (code, _, err) = undo(&sb, &tc, &cfg, env);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        images(&tc),
        tagged([("users", "v1.4.2"), ("ui", "v1.4.2"), ("reports", "v1.4.2")])
    );
}
