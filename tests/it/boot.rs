//! The machines' boot, run for real: `up` makes the instances, the boot
//! harness (tests/boot/boot.py) runs each one's user data in a box of its
//! own (namespaces, an instance metadata stub, the AWS CLI against the
//! emulator, kubeadm's stand-in judging by kubeadm's rules), the test API
//! server stands in for the masters with the nodes that joined, and `up`
//! ends only on a working cluster: every instance a Ready Node, every add-on
//! and service ready.

use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::support::cluster::{self, TestCluster};
use crate::support::{config_text, repo, venv_bin, Sandbox};

/// Root runs the boxes (namespaces, mounts, loop devices). Elsewhere the
/// test says so and passes, except under CI, which runs as root.
fn can_boot() -> bool {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !root {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI runs as root: the boot harness must run there"
        );
        eprintln!("skipped: the boot harness needs root (namespaces, mounts, loop devices)");
    }
    root
}

/// Runs the boot harness against the sandbox (through its proxy, as the
/// instances' AWS CLI would reach AWS) once `instances` exist; returns its
/// exit code and output.
fn boot(sb: &Sandbox, env: &str, out: &Path, instances: usize, extra: &[&str]) -> (i32, String) {
    let mut cmd = Command::new(venv_bin("python"));
    cmd.arg(repo().join("tests/boot/boot.py"))
        .args(["--endpoint", &sb.endpoint(), "--project", "scope"])
        .args(["--env", env, "--out"])
        .arg(out)
        .args(["--wait-instances", &instances.to_string(), "--together"])
        // The proxy maps every request to the sandbox's account and takes
        // only its key: the instances' metadata hands that key out.
        .arg("--static-credentials")
        .args(extra)
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .stdin(Stdio::null());
    let o = cmd.output().expect("run the boot harness");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.code().unwrap_or(-1), text)
}

fn report(out: &Path) -> Value {
    let text = std::fs::read_to_string(out.join("report.json")).expect("report.json");
    serde_json::from_str(&text).unwrap()
}

/// Three masters: master-0 inits, masters 1 and 2 join as control planes
/// (kubeadm checks each one's name and address in the shared certificates),
/// the node joins while master-0 is still coming up (discovery waits), and
/// `up` returns once all four are Ready Nodes and every add-on and service
/// is ready; a fresh plan is empty.
#[test]
fn three_masters_boot_join_and_up_ends_on_a_working_cluster() {
    if !can_boot() {
        return;
    }
    let sb = Sandbox::start();
    let env = "it-boot3";
    sb.prepare_db("boot3-db");
    let cfg = sb.config(
        "scope.toml",
        &config_text(
            env,
            "boot3-db",
            "cluster.masters.count = 3\ncluster.nodes.count = 1",
        ),
    );
    let out = sb.dir.path().join("boot");
    let tc = TestCluster::expect_booted(&sb, &cfg, env, 4, cluster::config(), &out);
    let (code, log) = std::thread::scope(|s| {
        let harness = s.spawn(|| boot(&sb, env, &out, 4, &[]));
        let up = sb.run_in_cluster(&tc, &cfg, &["--env", env, "up", "--yes"]);
        let (code, log) = harness.join().unwrap();
        assert_eq!(up.0, 0, "up: {}\nboot:\n{log}", up.2);
        assert!(
            up.2.contains("The cluster works: 4 of 4 nodes Ready"),
            "{}",
            up.2
        );
        (code, log)
    });
    eprintln!("{log}");
    assert_eq!(code, 0, "{log}");
    let r = report(&out);
    let by_name = |n: &str| {
        r["instances"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["name"] == n)
            .cloned()
            .unwrap_or_else(|| panic!("no {n} in {r:#}"))
    };
    for m in ["master-0", "master-1", "master-2", "node-0"] {
        assert_eq!(by_name(m)["ok"], true, "{m}: {r:#}");
    }
    assert_eq!(r["nodes"].as_array().unwrap().len(), 4, "{r:#}");
    // Three etcd members: one init, two control-plane joins.
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("cluster/cluster.json")).unwrap())
            .unwrap();
    assert_eq!(
        state["etcdMembers"].as_array().map(Vec::len),
        Some(3),
        "{state:#}"
    );
    // Every instance runs the newest build of the pinned Ubuntu release
    // (24.04), not the newer 22.04 build the emulator also has.
    for i in sb.snapshot().list("instances") {
        assert_eq!(i["image"], "ami-0a0b24040000c0001", "{i:#}");
    }
    sb.expect_in_cluster(0, &tc, &cfg, &["--env", env, "plan", "--detailed-exitcode"]);
}

/// The example's staging shape (1 master, 3 nodes), booted together, with
/// first-boot trouble: node-0 finds the dpkg lock held (its installs wait
/// for it and it joins), node-2 cannot install the AWS CLI (its boot stops
/// there, saying so). `up` waits for the nodes, then fails naming node-2,
/// which never became a Node, with its console's last lines.
#[test]
fn a_boot_that_fails_is_named_by_the_harness_and_by_up() {
    if !can_boot() {
        return;
    }
    let sb = Sandbox::start();
    let env = "it-bootfail";
    sb.prepare_db("bootfail-db");
    let cfg = sb.config("scope.toml", &config_text(env, "bootfail-db", ""));
    let out = sb.dir.path().join("boot");
    let tc = TestCluster::expect_booted(&sb, &cfg, env, 4, cluster::config(), &out);
    let faults = [
        "--fault",
        "node-0:dpkg-lock",
        "--fault",
        "node-2:pypi-unreachable",
    ];
    // The machines, then their boot to its end, then `up` of the cluster:
    // its --timeout then bounds only the wait for a working cluster (the
    // missing node), however slow the boot was on a busy machine.
    sb.expect(0, &cfg, &["--env", env, "up", "--yes", "--phase", "aws"]);
    let (code, log) = boot(&sb, env, &out, 4, &faults);
    let up = sb.run_in_cluster(
        &tc,
        &cfg,
        &["--env", env, "up", "--yes", "--timeout", "45s"],
    );
    eprintln!("{log}");
    assert_eq!(code, 1, "{log}");
    assert!(
        log.contains("boot failed: node-2: /usr/local/sbin/scopectl-install"),
        "{log}"
    );
    assert!(log.contains("could not install the AWS CLI"), "{log}");
    let r = report(&out);
    let ok: Vec<&str> = r["instances"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["ok"] == true)
        .filter_map(|i| i["name"].as_str())
        .collect();
    assert_eq!(ok, ["master-0", "node-0", "node-1"], "{r:#}");

    let (code, _, err) = up;
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("the cluster did not become ready within 45s"),
        "{err}"
    );
    assert!(err.contains("instance node-2 ("), "{err}");
    assert!(err.contains("never registered as a Node"), "{err}");
    assert!(!err.contains("instance node-1 ("), "{err}");
    assert!(err.contains("get-console-output"), "{err}");
}
