//! The network benchmark: plan, up, no-op plan and down against the emulator
//! with a fixed latency added to every AWS call, printing calls and wall time.
//!
//!     scripts/bench [--latency-ms 50] [--zones 3] [--placement beside-database|peered] [--nodes 3]

#[path = "../tests/it/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use support::{config_text, Sandbox};

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_string())
}

fn main() {
    let latency: u64 = arg("--latency-ms", "50").parse().expect("--latency-ms N");
    let zones: usize = arg("--zones", "3").parse().expect("--zones N");
    let placement = arg("--placement", "beside-database");
    let nodes: u32 = arg("--nodes", "3").parse().expect("--nodes N");
    let sb = Sandbox::with_latency(Duration::from_millis(latency));
    sb.prepare_db("bench-db");
    let zone_list: Vec<String> = "abcdef"
        .chars()
        .take(zones)
        .map(|c| format!("\"us-east-1{c}\""))
        .collect();
    let cidr = if placement == "peered" {
        "10.20.0.0/16"
    } else {
        "172.31.128.0/20"
    };
    let extra = format!(
        "network.placement = \"{placement}\"\nnetwork.cidr = \"{cidr}\"\nnetwork.zones = [{}]\ncluster.nodes.count = {nodes}",
        zone_list.join(", ")
    );
    let cfg = sb.config("scope.toml", &config_text("bench", "bench-db", &extra));

    println!("latency {latency} ms per call, placement {placement}, {zones} zones, {nodes} nodes");
    println!(
        "{:<14} {:>6} {:>7} {:>9}   calls by action",
        "command", "calls", "writes", "wall"
    );
    for (label, args) in [
        ("plan", &["plan"][..]),
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
        let mut by_action = std::collections::BTreeMap::new();
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
    }
    assert!(
        sb.snapshot().owned("scope", "bench").is_empty(),
        "down left resources behind"
    );
}
