//! Issue 27, cancellation: a CI job cancelled with SIGTERM never leaves the
//! env locked. The first signal lets the calls in flight finish, starts
//! nothing new, releases the lock and exits 143 with what to run next; the
//! next run converges.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::support;

use support::{config_text, Sandbox};

fn sigterm(child: &Child) {
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("run kill")
        .success();
    assert!(ok, "kill -TERM");
}

/// Waits (bounded, as a guard) until `ready` says so of the calls scopectl
/// made since `mark`; fails with scopectl's output if it ended first.
fn wait_for(
    sb: &Sandbox,
    child: &mut Child,
    mark: usize,
    what: &str,
    ready: impl Fn(&[support::proxy::Call]) -> bool,
) {
    let started = Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            if let Some(e) = child.stderr.as_mut() {
                use std::io::Read as _;
                let _ = e.read_to_string(&mut err);
            }
            panic!("scopectl ended ({status}) before {what}:\n{err}");
        }
        let calls = sb.calls_since(mark);
        if ready(&calls) {
            return;
        }
        let tail: Vec<&str> = calls
            .iter()
            .rev()
            .take(30)
            .map(|c| c.action.as_str())
            .collect();
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "never saw {what}; the last calls, newest first: {tail:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn finish(child: Child) -> (i32, String) {
    let out = child.wait_with_output().expect("wait for scopectl");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

fn assert_lock_free(sb: &Sandbox, cfg: &std::path::Path, env: &str) {
    let (out, _) = sb.expect(0, cfg, &["--env", env, "status"]);
    assert!(out.contains("lock: free"), "{out}");
}

#[test]
fn sigterm_during_the_aws_phase_releases_the_lock_and_the_next_up_converges() {
    // Slow calls: the signal lands with steps in flight and more to start.
    let sb = Sandbox::with_latency(Duration::from_millis(150));
    let env = "it-cancel";
    sb.prepare_db("cancel-db");
    let cfg = sb.config("scope.toml", &config_text(env, "cancel-db", ""));
    let mark = sb.mark();
    let mut child = sb.spawn(&cfg, &["--env", env, "up", "--yes", "--phase", "aws"]);
    wait_for(&sb, &mut child, mark, "a first create", |calls| {
        calls.iter().any(|c| c.is_write())
    });
    sigterm(&child);
    let (code, err) = finish(child);
    assert_eq!(code, 143, "{err}");
    assert!(err.contains("stopped by SIGTERM"), "{err}");
    assert!(err.contains("run `scopectl up` again"), "{err}");
    // Nothing started after the signal took effect: some of the plan is left.
    let (out, _) = sb.expect(
        2,
        &cfg,
        &[
            "--env",
            env,
            "plan",
            "--phase",
            "aws",
            "--detailed-exitcode",
        ],
    );
    assert!(out.contains("to create"), "{out}");
    assert_lock_free(&sb, &cfg, env);

    sb.up_aws_converged(&cfg, env);
    assert!(sb.snapshot().duplicates("scope", env).is_empty());
}

#[test]
fn sigterm_while_waiting_for_the_api_releases_the_lock() {
    let sb = Sandbox::start();
    let env = "it-cancel-wait";
    sb.prepare_db("cancel-wait-db");
    let cfg = sb.config("scope.toml", &config_text(env, "cancel-wait-db", ""));
    let mark = sb.mark();
    // No API ever answers here: after the AWS phase, `up` waits for it.
    let mut child = sb.spawn(
        &cfg,
        &[
            "--env",
            env,
            "up",
            "--yes",
            "--timeout",
            "10m",
            "--phase",
            "all",
        ],
    );
    wait_for(&sb, &mut child, mark, "the wait for the API", |calls| {
        let Some(last_write) = calls.iter().rposition(|c| c.is_write()) else {
            return false;
        };
        let after = &calls[last_write + 1..];
        calls.iter().any(|c| c.action == "RunInstances")
            && after
                .iter()
                .filter(|c| c.action == "DescribeLoadBalancers")
                .count()
                >= 3
    });
    sigterm(&child);
    let (code, err) = finish(child);
    assert_eq!(code, 143, "{err}");
    assert!(err.contains("the AWS phase was applied"), "{err}");
    assert_lock_free(&sb, &cfg, env);
    // The AWS phase is whole: a fresh plan of it is empty.
    sb.assert_aws_converged(&cfg, env);
}
