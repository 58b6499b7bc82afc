//! `--version`: the version and the commit the binary was built from, fast.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::support;

fn version() -> String {
    let out = Command::new(support::binary())
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn version_names_the_commit_and_answers_in_milliseconds() {
    let line = version();
    assert!(
        line.starts_with(&format!("scopectl {} (", env!("CARGO_PKG_VERSION"))),
        "{line}"
    );
    // In a git checkout: the commit the test is built from (the binary is
    // built from the same tree in the same cargo run).
    let head = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(support::repo())
        .output()
        .ok()
        .filter(|o| o.status.success() && support::repo().join(".git").exists());
    match head {
        Some(o) => {
            let hash = String::from_utf8(o.stdout).unwrap();
            assert!(
                line.contains(&format!("({} ", hash.trim())),
                "{line} lacks {hash}"
            );
        }
        None => assert!(line.contains("(unknown)"), "{line}"),
    }

    // Median of 20 runs: under 10 ms in a release build; a debug binary is
    // over a hundred megabytes to map and relocate, so it gets slack.
    let mut times: Vec<Duration> = (0..20)
        .map(|_| {
            let t = Instant::now();
            version();
            t.elapsed()
        })
        .collect();
    times.sort();
    let median = times[times.len() / 2];
    eprintln!("scopectl --version: median {median:?} of 20 runs");
    let limit = if cfg!(debug_assertions) {
        Duration::from_millis(50)
    } else {
        Duration::from_millis(10)
    };
    assert!(median < limit, "median {median:?} ≥ {limit:?}: {times:?}");
}
