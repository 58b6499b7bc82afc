//! `scopectl rollout` against the test API server: a release moves the
//! services it names at once, is watched with `kubectl rollout status`'s
//! rule, fails fast on a failing pod and rolls every service back; history,
//! undo and `up` keeping the release's tags.

use crate::support;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::cluster::{self, kubectl_binary, TestCluster};
use support::Sandbox;

fn config(env: &str, db: &str) -> String {
    let mut text = format!(
        "project = \"scope\"\n\n[aws]\nregion = \"us-east-1\"\n\n[cluster]\nnodes = {{ count = 2, instance_type = \"m5.large\" }}\n\n[network]\nplacement = \"beside-database\"\ncidr = \"172.31.128.0/20\"\n\n[database]\nrds_instance = \"{db}\"\n"
    );
    for s in ["users", "ui", "reports"] {
        text.push_str(&format!(
            "\n[services.{s}]\nimage = \"registry.example/scope/{s}\"\nreplicas = 2\ninitial_tag = \"v1.4.2\"\n"
        ));
    }
    text.push_str(&format!("\n[env.{env}]\n"));
    text
}

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
    let (code, _, err) = rollout(&sb, &tc, &cfg, env, &["users=v1.5.0"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("already runs these tags"), "{err}");
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
    assert!(err.contains("ui failed: CrashLoopBackOff"), "{err}");
    assert!(err.contains("runs the previous release again"), "{err}");
    assert!(took < Duration::from_secs(20), "took {took:?}");
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
    let (code, _, err) = sb.run_in_cluster(
        &tc,
        &cfg,
        &[
            "--env",
            env,
            "rollout",
            "undo",
            "--yes",
            "--failure-grace",
            "1s",
        ],
    );
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
    sb.expect_in_cluster(0, &tc, &cfg, &["--env", env, "down", "--yes"]);
}
