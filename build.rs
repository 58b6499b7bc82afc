//! Stamps the build with the git commit it was made from, for `--version`:
//! `SCOPECTL_COMMIT` is `<short hash> <commit date>`, or `unknown` outside a
//! git checkout (a source tarball, a vendored copy).
//!
//! Cargo reruns this only when HEAD or the branch it points at moves (a
//! commit, a checkout), not on every build.

use std::path::Path;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    Some(s).filter(|s| !s.is_empty())
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let manifest = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    // `.git` is a directory in a clone and a file in a worktree.
    let stamp = if Path::new(&manifest).join(".git").exists() {
        // In a worktree, HEAD is per worktree and the branch refs are shared:
        // `--git-path` finds each where it is.
        if let Some(head) = git(&["rev-parse", "--git-path", "HEAD"]) {
            watch(&head);
        }
        if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
            if let Some(p) = git(&["rev-parse", "--git-path", &branch]) {
                watch(&p);
            }
        }
        if let Some(p) = git(&["rev-parse", "--git-path", "packed-refs"]) {
            watch(&p);
        }
        match (
            git(&["rev-parse", "--short", "HEAD"]),
            git(&["log", "-1", "--format=%cs", "HEAD"]),
        ) {
            (Some(hash), Some(date)) => format!("{hash} {date}"),
            (Some(hash), None) => hash,
            _ => "unknown".to_string(),
        }
    } else {
        "unknown".to_string()
    };
    println!("cargo:rustc-env=SCOPECTL_COMMIT={stamp}");
}

/// Reruns when `path` changes. Only existing files: Cargo reruns every time
/// for a missing one (a branch whose ref is only in packed-refs).
fn watch(path: &str) {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    let p = Path::new(&manifest).join(path);
    if p.exists() {
        println!("cargo:rerun-if-changed={}", p.display());
    }
}
