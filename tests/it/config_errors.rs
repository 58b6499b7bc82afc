//! Bad input: exit 64, a message located at file:line:column with a hint, and
//! not one network connection: the recording proxy sees no call and no
//! connection, and neither does the listener behind it.

use crate::support;

use std::io::Read;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

const BASE: &str = r#"project = "scope"

[aws]
region = "us-east-1"

[cluster]
service_cidr = "10.96.0.0/12"
pod_cidr = "10.244.0.0/16"

[network]
placement = "beside-database"
cidr = "172.31.128.0/20"

[database]
rds_instance = "scope-db"

[services.users]
image = "registry.example/scope/users"
port = 8080

[env.staging]
"#;

/// A listener standing in for AWS: it counts every connection it receives.
fn listener() -> (String, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            c.fetch_add(1, Ordering::SeqCst);
            let mut s = s;
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
        }
    });
    (url, count)
}

struct Case {
    name: &'static str,
    text: String,
    /// Expected `line:column` in the message (None: the file, at 1:1).
    at: Option<&'static str>,
    message: &'static str,
    env: &'static str,
}

fn replace(from: &str, to: &str) -> String {
    assert!(BASE.contains(from), "{from}");
    BASE.replacen(from, to, 1)
}

fn cases() -> Vec<Case> {
    let c = |name, text: String, at, message| Case {
        name,
        text,
        at,
        message,
        env: "staging",
    };
    vec![
        c("unknown top-level key", format!("colour = \"red\"\n{BASE}"), Some("1:1"), "unknown field `colour`"),
        c("unknown key in a table", replace("region = \"us-east-1\"", "region = \"us-east-1\"\nzone = \"a\""), Some("5:1"), "unknown field `zone`"),
        c("unknown key in an env overlay", format!("{BASE}cluster.nodes.cnt = 2\n"), Some("22:15"), "unknown field `cnt`"),
        c("unknown key in a service", replace("port = 8080", "port = 8080\nreplica = 2"), Some("20:1"), "unknown field `replica`"),
        c("missing project", BASE.replacen("project = \"scope\"\n", "", 1), None, "no `project` name"),
        c("bad project name", replace("project = \"scope\"", "project = \"Scope_1\""), Some("1:11"), "not a valid name"),
        c("project of the wrong type", replace("project = \"scope\"", "project = 7"), Some("1:11"), "invalid type"),
        c("malformed network cidr", replace("cidr = \"172.31.128.0/20\"", "cidr = \"172.31.128.0/33\""), Some("12:8"), "not an IPv4 CIDR"),
        c("network cidr with host bits", replace("cidr = \"172.31.128.0/20\"", "cidr = \"172.31.128.7/20\""), Some("12:8"), "host bits set"),
        c("network cidr not a string", replace("cidr = \"172.31.128.0/20\"", "cidr = 17"), Some("12:8"), "invalid type"),
        c("network cidr too large", replace("cidr = \"172.31.128.0/20\"", "cidr = \"172.0.0.0/8\""), Some("12:8"), "/8 prefix"),
        c("network cidr too small", replace("cidr = \"172.31.128.0/20\"", "cidr = \"172.31.128.0/27\""), Some("12:8"), "/27 prefix"),
        c("malformed service cidr", replace("service_cidr = \"10.96.0.0/12\"", "service_cidr = \"10.96.0/12\""), Some("7:16"), "not an IPv4 CIDR"),
        c("pod and service cidrs overlap", replace("pod_cidr = \"10.244.0.0/16\"", "pod_cidr = \"10.96.0.0/16\""), Some("8:12"), "overlaps cluster.service_cidr"),
        c("network cidr overlaps pods", replace("cidr = \"172.31.128.0/20\"", "cidr = \"10.244.0.0/20\""), Some("12:8"), "overlaps cluster.pod_cidr"),
        c("subnet outside the vpc range", replace("cidr = \"172.31.128.0/20\"", "cidr = \"172.31.128.0/20\"\nsubnets = { \"us-east-1a\" = \"10.0.0.0/24\" }"), Some("13:28"), "outside network.cidr"),
        c("subnets overlap", replace("cidr = \"172.31.128.0/20\"", "cidr = \"172.31.128.0/20\"\nsubnets = { \"us-east-1a\" = \"172.31.128.0/22\", \"us-east-1b\" = \"172.31.130.0/24\" }"), Some("13:62"), "overlaps the subnet"),
        c("one zone only", replace("cidr = \"172.31.128.0/20\"", "cidr = \"172.31.128.0/20\"\nzones = [\"us-east-1a\"]"), Some("13:9"), "fewer than two zones"),
        c("zone listed twice", replace("cidr = \"172.31.128.0/20\"", "cidr = \"172.31.128.0/20\"\nzones = [\"us-east-1a\", \"us-east-1a\"]"), Some("13:24"), "listed twice"),
        c("unknown placement", replace("placement = \"beside-database\"", "placement = \"inside\""), Some("11:13"), "unknown network.placement"),
        c("unknown provider", format!("{BASE}provider = \"gcp\"\n"), Some("22:12"), "unknown provider"),
        c("missing rds instance", replace("rds_instance = \"scope-db\"", ""), None, "`database.rds_instance` is not set"),
        c("bad rds identifier", replace("rds_instance = \"scope-db\"", "rds_instance = \"1db\""), Some("15:16"), "not a valid RDS instance identifier"),
        c("region not shaped like one", replace("region = \"us-east-1\"", "region = \"useast1\""), Some("4:10"), "not an AWS region name"),
        c("missing region", replace("region = \"us-east-1\"", ""), None, "`aws.region` is not set"),
        c("negative node count", format!("{BASE}cluster.nodes.count = -1\n"), Some("22:23"), "out of range"),
        c("zero masters", format!("{BASE}cluster.masters.count = 0\n"), Some("22:25"), "out of range"),
        c("node count of the wrong type", format!("{BASE}cluster.nodes.count = \"two\"\n"), Some("22:23"), "invalid type"),
        c("image with a tag", replace("image = \"registry.example/scope/users\"", "image = \"registry.example/scope/users:v1\""), Some("18:9"), "carries a tag"),
        c("service port out of range", replace("port = 8080", "port = 70000"), Some("19:8"), "out of range"),
        c("unknown expose", replace("port = 8080", "port = 8080\nexpose = \"nlb\""), Some("20:10"), "unknown expose"),
        c("protected not a bool", format!("{BASE}protected = \"yes\"\n"), Some("22:13"), "invalid type"),
        c("not toml at all", format!("{BASE}[[[\n"), Some("22:3"), "unquoted keys cannot be empty"),
        c("duplicate key", replace("region = \"us-east-1\"", "region = \"us-east-1\"\nregion = \"eu-west-1\""), Some("5:1"), "duplicate key"),
        c("database port out of range", replace("rds_instance = \"scope-db\"", "rds_instance = \"scope-db\"\nport = 0"), Some("16:8"), "out of range"),
        c("protected env open to the internet", format!("{BASE}protected = true\n"), Some("22:13"), "cluster.api_allowed_cidrs is not set"),
        c("api range not a range", format!("{BASE}cluster.api_allowed_cidrs = [\"office\"]\n"), Some("22:30"), "not an IPv4 range"),
        c("cluster domain not a DNS name", replace("service_cidr = \"10.96.0.0/12\"", "service_cidr = \"10.96.0.0/12\"\ndomain = \"Cluster Local\""), Some("8:10"), "not a DNS name"),
        c("secrets prefix in the state store", format!("{BASE}secrets_prefix = \"/scopectl/\"\n"), Some("22:18"), "under the state store"),
        c("unknown api scheme", format!("{BASE}cluster.api_scheme = \"private\"\n"), Some("22:22"), "unknown cluster.api_scheme"),
        c("database client not a service", format!("{BASE}database.clients = [\"billing\"]\n"), Some("22:21"), "not a service"),
        Case { name: "unknown env", text: BASE.to_string(), at: None, message: "env `nope` is not defined", env: "nope" },
    ]
}

#[test]
fn bad_configs_exit_64_located_and_touch_nothing() {
    let (upstream, count) = listener();
    let proxy = support::proxy::Proxy::spawn(support::proxy::ProxyConfig {
        upstream: Some(upstream.trim_start_matches("http://").parse().unwrap()),
        ..support::strict()
    });
    let url = proxy.url();
    let dir = tempfile::tempdir().unwrap();
    let cases = cases();
    assert!(cases.len() >= 30);
    for (i, case) in cases.iter().enumerate() {
        let path = dir.path().join(format!("case{i}.toml"));
        std::fs::write(&path, &case.text).unwrap();
        for cmd in [
            &["plan"][..],
            &["up", "--yes"],
            &["down", "--yes"],
            &["status"],
        ] {
            let out = Command::new(env!("CARGO_BIN_EXE_scopectl"))
                .arg("-c")
                .arg(&path)
                .args(["--env", case.env])
                .args(cmd)
                .env("AWS_ENDPOINT_URL", &url)
                .env("AWS_ACCESS_KEY_ID", "t")
                .env("AWS_SECRET_ACCESS_KEY", "t")
                .stdin(Stdio::null())
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(
                out.status.code(),
                Some(64),
                "{}: {cmd:?} exited {:?}\n{err}",
                case.name,
                out.status.code()
            );
            assert!(err.starts_with("error: "), "{}: {err}", case.name);
            assert!(
                err.contains(case.message),
                "{}: expected {:?} in\n{err}",
                case.name,
                case.message
            );
            let at = format!("{}:{}", path.display(), case.at.unwrap_or("1:1"));
            if std::env::var_os("SHOW_LOCATIONS").is_some() {
                eprintln!(
                    "{} => {}",
                    case.name,
                    err.lines().next().unwrap_or_default()
                );
                continue;
            }
            assert!(
                err.contains(&at),
                "{}: expected location {at} in\n{err}",
                case.name
            );
            assert!(err.contains("\nhint: "), "{}: no hint in\n{err}", case.name);
        }
    }
    assert_eq!(proxy.calls.len(), 0, "a config error made an AWS call");
    assert_eq!(
        proxy.connections(),
        0,
        "a config error made a network connection"
    );
    assert_eq!(
        count.load(Ordering::SeqCst),
        0,
        "a config error made a network connection"
    );
    eprintln!(
        "bad input: {} configs × 4 commands, all exit 64; proxy calls: {}",
        cases.len(),
        proxy.calls.len()
    );
}

#[test]
fn missing_env_and_missing_file_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scope.toml");
    std::fs::write(&path, BASE).unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_scopectl"))
            .args(args)
            .env_remove("SCOPECTL_ENV")
            .env_remove("SCOPECTL_CONFIG")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let out = run(&["-c", path.to_str().unwrap(), "plan"]);
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("defined envs: staging"));
    let out = run(&[
        "-c",
        dir.path().join("none.toml").to_str().unwrap(),
        "--env",
        "staging",
        "plan",
    ]);
    assert_eq!(
        out.status.code(),
        Some(64),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&["plan", "--bogus-flag"]);
    assert_eq!(out.status.code(), Some(64));
}

#[test]
fn pki_commands_refuse_a_local_env_without_a_call() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scope.toml");
    let text =
        format!("{BASE}\n[env.laptop]\nprovider = \"local\"\nkube_context = \"kind-scope\"\ndatabase.host = \"db.local\"\n");
    std::fs::write(&path, text).unwrap();
    let (url, connections) = listener();
    for args in [
        &["kubeconfig", "--out", "k"][..],
        &["pki", "status"],
        &["pki", "rotate", "--yes"],
        &["pki", "rotate", "--ca", "--yes"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_scopectl"))
            .current_dir(dir.path())
            .args(["-c", path.to_str().unwrap(), "--env", "laptop"])
            .args(args)
            .env("AWS_ENDPOINT_URL", &url)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{args:?}: {err}");
        assert!(err.contains("has no PKI of scopectl's"), "{args:?}: {err}");
        assert!(err.contains("hint:"), "{args:?}: {err}");
    }
    assert!(!dir.path().join("k").exists());
    assert_eq!(connections.load(Ordering::SeqCst), 0);
}
