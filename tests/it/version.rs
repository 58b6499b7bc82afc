//! `--version`: the version and the commit the binary was built from, with
//! nothing read first.

use std::process::Command;

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
fn version_names_the_commit_and_reads_nothing_first() {
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

    // It answers before anything that could take time: with a config that
    // does not exist and an AWS endpoint nobody serves, it still answers.
    // (How fast is scripts/bench's business: a wall-clock bound here fails
    // on a busy machine.)
    let out = Command::new(support::binary())
        .args([
            "-c",
            "/nonexistent/scope.toml",
            "--env",
            "nowhere",
            "--version",
        ])
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8(out.stdout).unwrap(), line);
}
