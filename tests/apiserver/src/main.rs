//! `scopectl-apiserver`: the in-memory API server as a process (the
//! sandbox's cluster). Prints `listening on https://ADDR` once it serves.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Parser;
use scopectl_apiserver::{server, Cluster, Config, Faults, NodeSpec, Tls};

#[derive(Parser, Debug)]
#[command(
    version,
    about = "An in-memory Kubernetes API server for scopectl's sandbox and tests"
)]
struct Args {
    /// Address to listen on (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:6443")]
    listen: SocketAddr,
    /// The API server certificate and key (PEM, as the state store's `pki/apiserver`).
    #[arg(long)]
    cert: PathBuf,
    /// The key, when not in --cert.
    #[arg(long)]
    key: Option<PathBuf>,
    /// The cluster CA bundle client certificates must chain to (`pki/ca`).
    #[arg(long)]
    client_ca: PathBuf,
    #[arg(long, default_value = "1.31")]
    kubernetes_version: String,
    #[arg(long, default_value = "10.96.0.0/12")]
    service_cidr: String,
    /// A node: NAME=IP[,master][,zone=Z][,id=I][,type=T]. Repeatable.
    #[arg(long = "node")]
    nodes: Vec<String>,
    /// Simulated seconds per real second.
    #[arg(long, default_value_t = 1.0)]
    time_scale: f64,
    /// Seconds (simulated) for a good image's pod to become ready.
    #[arg(long, default_value_t = 2.0)]
    pod_ready: f64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Probability of a fault per API request (0: none).
    #[arg(long, default_value_t = 0.0)]
    fault_rate: f64,
    /// Milliseconds added to every request (a fixed network round trip).
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Append every request to this file as a JSON line.
    #[arg(long)]
    request_log: Option<PathBuf>,
    /// Write the listening address here once serving.
    #[arg(long)]
    addr_file: Option<PathBuf>,
}

fn node(spec: &str) -> Result<NodeSpec, String> {
    let mut parts = spec.split(',');
    let first = parts.next().unwrap_or_default();
    let (name, ip) = first
        .split_once('=')
        .ok_or_else(|| format!("--node {spec}: expected NAME=IP"))?;
    let mut n = NodeSpec {
        name: name.into(),
        internal_ip: ip.into(),
        master: false,
        zone: None,
        instance_id: None,
        instance_type: None,
    };
    for p in parts {
        match p.split_once('=') {
            None if p == "master" => n.master = true,
            Some(("zone", z)) => n.zone = Some(z.into()),
            Some(("id", i)) => n.instance_id = Some(i.into()),
            Some(("type", t)) => n.instance_type = Some(t.into()),
            _ => return Err(format!("--node {spec}: unknown part {p:?}")),
        }
    }
    Ok(n)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if let Err(e) = run(Args::parse()).await {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> Result<(), String> {
    let started = Instant::now();
    let read = |p: &PathBuf| {
        std::fs::read_to_string(p).map_err(|e| format!("reading {}: {e}", p.display()))
    };
    let cert = read(&args.cert)?;
    let key = match &args.key {
        Some(k) => read(k)?,
        None => cert.clone(),
    };
    let tls = Tls {
        cert_pem: cert,
        key_pem: key,
        client_ca_pem: read(&args.client_ca)?,
    };
    let nodes = args
        .nodes
        .iter()
        .map(|s| node(s))
        .collect::<Result<Vec<_>, _>>()?;
    let config = Config {
        kubernetes_version: args.kubernetes_version,
        service_cidr: args.service_cidr,
        nodes,
        time_scale: Some(args.time_scale),
        pod_ready: Duration::from_secs_f64(args.pod_ready),
        seed: args.seed,
        faults: Faults {
            seed: args.seed,
            rate: args.fault_rate,
            throttle: true,
            errors: true,
            conflicts: true,
            cut_watches: true,
            cut_connections: true,
            max_latency: Duration::from_millis(200),
            every_kind_per_verb: false,
            max_in_a_row: 0,
        },
        latency: Duration::from_millis(args.latency_ms),
        ..Config::default()
    };
    let cluster = Cluster::new(config);
    if let Some(p) = &args.request_log {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .map_err(|e| format!("opening {}: {e}", p.display()))?;
        cluster.log_to(f);
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("binding {}: {e}", args.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    server::spawn(cluster.clone(), &tls, listener)?;
    cluster.spawn_controllers();
    if let Some(p) = &args.addr_file {
        std::fs::write(p, addr.to_string()).map_err(|e| format!("writing {}: {e}", p.display()))?;
    }
    println!(
        "listening on https://{addr} (started in {} ms)",
        started.elapsed().as_millis()
    );
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    Ok(())
}
