//! Test harness: a moto server on a free loopback port, the recording proxy in
//! front of it, and helpers to run the real scopectl binary against them;
//! `cluster` stands the test API server in for an env's masters.
#![allow(dead_code)]

pub mod cluster;
pub mod proxy;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use proxy::{Call, Proxy, ProxyConfig};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn venv_bin(name: &str) -> PathBuf {
    let venv = std::env::var_os("SCOPECTL_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".venv"));
    let p = venv.join("bin").join(name);
    assert!(
        p.exists(),
        "{} is missing: run scripts/setup-venv (the README's test command does)",
        p.display()
    );
    p
}

/// The scopectl binary: cargo names it for integration tests; the benchmark
/// (an example) finds it beside its own directory.
pub fn binary() -> PathBuf {
    match option_env!("CARGO_BIN_EXE_scopectl") {
        Some(p) => PathBuf::from(p),
        None => {
            let exe = std::env::current_exe().expect("current exe");
            exe.parent()
                .and_then(Path::parent)
                .expect("target dir")
                .join("scopectl")
        }
    }
}

/// How long the strict proxy keeps a terminated instance's or a deleted
/// ELB's subnets and groups: long enough that `down` meets the refusal and
/// waits it out in a later wave (scopectl pauses `TEARDOWN_PAUSE` between
/// waves), short enough that no test idles.
pub const HOLD: Duration = Duration::from_millis(500);

/// scopectl's own waits in tests: retries start at 20 ms and stop doubling at
/// 500 ms; teardown waves pause 150 ms. The logic (backoff, waves) is the same
/// as with AWS's defaults; only the clock is faster.
pub const RETRY_MIN_DELAY: &str = "20ms";
pub const RETRY_MAX_DELAY: &str = "500ms";
pub const TEARDOWN_PAUSE: &str = "150ms";

/// The proxy as strict as AWS: dependency rules, and terminated instances and
/// deleted load balancers holding their subnets and groups for [`HOLD`].
pub fn strict() -> ProxyConfig {
    ProxyConfig {
        strict: true,
        hold: HOLD,
        ..ProxyConfig::default()
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One emulator and one helper process for the whole test binary: starting
/// moto costs seconds of CPU, and tests keep apart by account (moto's
/// `x-moto-account-id`), each its own default VPC and nothing else in
/// common. Both children read their standard input until it closes, so they
/// end with the test binary however it ends.
struct Shared {
    moto_addr: SocketAddr,
    _moto: Child,
    helper: Mutex<Helper>,
}

/// `sandbox.py serve`: boto3 imported once, a JSON line per command.
struct Helper {
    _child: Child,
    stdin: std::process::ChildStdin,
    stdout: BufReader<std::process::ChildStdout>,
}

static SHARED: OnceLock<Shared> = OnceLock::new();
static ACCOUNTS: AtomicU64 = AtomicU64::new(0);

fn shared() -> &'static Shared {
    SHARED.get_or_init(|| {
        let port = free_port();
        let mut moto = Command::new(venv_bin("python"))
            .arg(repo().join("scripts/sandbox.py"))
            .args(["moto", "--port", &port.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the emulator");
        let mut ready = String::new();
        BufReader::new(moto.stdout.take().expect("emulator stdout"))
            .read_line(&mut ready)
            .expect("the emulator starts");
        assert_eq!(ready.trim(), "ready", "the emulator did not start");
        let moto_addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(moto_addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "the emulator did not listen on {moto_addr}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut child = Command::new(venv_bin("python"))
            .arg(repo().join("scripts/sandbox.py"))
            .arg("serve")
            .env("AWS_ENDPOINT_URL", format!("http://{moto_addr}"))
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env_remove("AWS_PROFILE")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start sandbox.py serve");
        let helper = Helper {
            stdin: child.stdin.take().expect("helper stdin"),
            stdout: BufReader::new(child.stdout.take().expect("helper stdout")),
            _child: child,
        };
        Shared {
            moto_addr,
            _moto: moto,
            helper: Mutex::new(helper),
        }
    })
}

/// One account of the shared emulator and one proxy in front of it.
pub struct Sandbox {
    pub moto_addr: SocketAddr,
    /// The emulator's account this sandbox lives in.
    pub account: String,
    pub proxy: Proxy,
    pub dir: tempfile::TempDir,
}

impl Sandbox {
    /// AWS's dependency rules on, no faults, no latency.
    pub fn start() -> Sandbox {
        Self::with(strict())
    }

    pub fn with_latency(latency: Duration) -> Sandbox {
        Self::with(ProxyConfig {
            latency,
            ..strict()
        })
    }

    pub fn with(config: ProxyConfig) -> Sandbox {
        let moto_addr = shared().moto_addr;
        let account = format!(
            "{:012}",
            200_000_000_000 + ACCOUNTS.fetch_add(1, Ordering::SeqCst)
        );
        let proxy = Proxy::spawn(ProxyConfig {
            upstream: Some(moto_addr),
            account: Some(account.clone()),
            ..config
        });
        Sandbox {
            moto_addr,
            account,
            proxy,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn endpoint(&self) -> String {
        self.proxy.url()
    }

    fn aws_env(&self, cmd: &mut Command) {
        cmd.env("AWS_ENDPOINT_URL", self.endpoint())
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env_remove("AWS_PROFILE")
            .env_remove("SCOPECTL_ENV")
            .env_remove("SCOPECTL_CONFIG")
            .env_remove("SCOPECTL_API_SERVER")
            .env("SCOPECTL_RETRY_MIN_DELAY", RETRY_MIN_DELAY)
            .env("SCOPECTL_RETRY_MAX_DELAY", RETRY_MAX_DELAY)
            .env("SCOPECTL_TEARDOWN_PAUSE", TEARDOWN_PAUSE)
            .env("NO_COLOR", "1");
    }

    /// Writes a config into the sandbox's directory.
    pub fn config(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    /// The real binary, pointed at this sandbox, AWS phase only
    /// (`SCOPECTL_PHASE=aws`: it never waits for a Kubernetes API; `down`
    /// skips it too). `scopectl_in_cluster` (support/cluster.rs) runs every
    /// phase against a [`cluster::TestCluster`].
    pub fn scopectl(&self, config: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new(binary());
        self.aws_env(&mut cmd);
        cmd.env("SCOPECTL_PHASE", "aws")
            .arg("-c")
            .arg(config)
            .args(args)
            .stdin(Stdio::null());
        cmd
    }

    /// Runs scopectl and returns (exit code, stdout, stderr).
    pub fn run(&self, config: &Path, args: &[&str]) -> (i32, String, String) {
        output(self.scopectl(config, args))
    }

    /// Runs scopectl and fails the test unless it exits with `code`.
    pub fn expect(&self, code: i32, config: &Path, args: &[&str]) -> (String, String) {
        expect_exit(code, args, self.run(config, args))
    }

    /// Runs a `scripts/sandbox.py` command against this sandbox's account
    /// of the emulator (directly, not through the proxy: the harness's calls
    /// are not scopectl's), in the shared helper process.
    pub fn python(&self, args: &[&str]) -> String {
        self.try_python(args)
            .unwrap_or_else(|e| panic!("sandbox.py {args:?}: {e}"))
    }

    /// [`Sandbox::python`], with the command's failure (a `sys.exit`
    /// message, an exception) as an error rather than a panic.
    pub fn try_python(&self, args: &[&str]) -> Result<String, String> {
        helper_call(&self.account, args)
    }

    /// Runs a Python snippet against moto directly (not through the proxy),
    /// with boto3 from the emulator's virtualenv, in this sandbox's account.
    pub fn python_code(&self, code: &str, args: &[&str]) -> bool {
        let mut cmd = Command::new(venv_bin("python"));
        self.aws_env(&mut cmd);
        cmd.env("AWS_ENDPOINT_URL", format!("http://{}", self.moto_addr));
        cmd.arg("-c")
            .arg(account_prelude(&self.account) + code)
            .args(args);
        cmd.status().expect("run python").success()
    }

    /// Runs a Python snippet with boto3 pointed at the proxy, as a client of
    /// "AWS" would be; prints whatever the snippet prints.
    pub fn python_via_proxy(&self, code: &str) -> String {
        let mut cmd = Command::new(venv_bin("python"));
        self.aws_env(&mut cmd);
        let out = cmd.arg("-c").arg(code).output().expect("run python");
        assert!(
            out.status.success(),
            "python: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// `up --phase aws`, then a fresh plan of that phase, which must be empty.
    pub fn up_aws_converged(&self, config: &Path, env: &str) {
        self.expect(0, config, &["--env", env, "up", "--yes", "--phase", "aws"]);
        self.assert_aws_converged(config, env);
    }

    /// A fresh plan of the AWS phase is empty.
    pub fn assert_aws_converged(&self, config: &Path, env: &str) {
        let args = [
            "--env",
            env,
            "plan",
            "--phase",
            "aws",
            "--detailed-exitcode",
        ];
        let (out, _) = self.expect(0, config, &args);
        assert!(out.contains("No changes"), "{out}");
    }

    /// Starts scopectl without waiting for it.
    pub fn spawn(&self, config: &Path, args: &[&str]) -> Child {
        self.scopectl(config, args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start scopectl")
    }

    /// Creates the stand-in for the user's existing database.
    pub fn prepare_db(&self, name: &str) -> serde_json::Value {
        serde_json::from_str(&self.python(&["prepare", "--db", name])).unwrap()
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot(serde_json::from_str(&self.python(&["snapshot"])).unwrap())
    }

    pub fn calls_since(&self, mark: usize) -> Vec<Call> {
        self.proxy.calls.since(mark)
    }

    pub fn mark(&self) -> usize {
        self.proxy.calls.len()
    }
}

/// One command for the shared `sandbox.py serve` helper, in `account`.
fn helper_call(account: &str, args: &[&str]) -> Result<String, String> {
    let mut helper = shared().helper.lock().unwrap_or_else(|e| e.into_inner());
    let req = serde_json::json!({"account": account, "args": args});
    writeln!(helper.stdin, "{req}").map_err(|e| format!("writing to sandbox.py serve: {e}"))?;
    helper
        .stdin
        .flush()
        .map_err(|e| format!("flushing sandbox.py serve: {e}"))?;
    let mut line = String::new();
    helper
        .stdout
        .read_line(&mut line)
        .map_err(|e| format!("reading from sandbox.py serve: {e}"))?;
    let answer: serde_json::Value =
        serde_json::from_str(&line).map_err(|e| format!("{e}: {line:?}"))?;
    if answer["ok"] != true {
        return Err(answer["err"].as_str().unwrap_or("failed").to_string());
    }
    Ok(answer["out"].as_str().unwrap_or_default().to_string())
}

/// Runs a command to its end: (exit code, stdout, stderr).
pub fn output(mut cmd: Command) -> (i32, String, String) {
    let out = cmd.output().expect("run scopectl");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// Fails the test unless scopectl exited with `code`.
pub fn expect_exit(
    code: i32,
    args: &[&str],
    (c, out, err): (i32, String, String),
) -> (String, String) {
    assert_eq!(
        c, code,
        "scopectl {args:?} exited {c}\n--- stdout\n{out}\n--- stderr\n{err}"
    );
    (out, err)
}

/// Fails the test unless `json`, an output of scopectl, is valid against its
/// committed schema `schemas/NAME.schema.json`, checked with Python's
/// `jsonschema` (in the venv: kubernetes-validate depends on it). The schema
/// must also reject the same document with another `format_version`, so a
/// schema that accepts anything cannot pass.
pub fn assert_schema(name: &str, json: &str) {
    const CHECK: &str = r#"
import json, sys, jsonschema
schema = json.load(open(sys.argv[1]))
doc = json.loads(sys.stdin.read())
cls = jsonschema.validators.validator_for(schema)
cls.check_schema(schema)
v = cls(schema)
for e in sorted(v.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path))):
    print("/" + "/".join(map(str, e.absolute_path)) + ": " + e.message[:300])
if isinstance(doc, dict) and v.is_valid(dict(doc, format_version="0")):
    print("the schema accepts format_version \"0\"")
"#;
    let path = repo().join("schemas").join(format!("{name}.schema.json"));
    assert!(path.exists(), "{} is missing", path.display());
    let mut child = Command::new(venv_bin("python"))
        .arg("-c")
        .arg(CHECK)
        .arg(&path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(json.as_bytes())
        .expect("write the document");
    let out = child.wait_with_output().expect("run python");
    let errors = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && errors.trim().is_empty(),
        "this output does not match schemas/{name}.schema.json:\n{errors}{}\n--- output\n{json}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Makes every boto3 client of a snippet talk to `account` of the emulator.
fn account_prelude(account: &str) -> String {
    format!(
        "import boto3 as _b\n_s = _b.session.Session.client\ndef _c(self, *a, **k):\n    c = _s(self, *a, **k)\n    c.meta.events.register('before-sign.*.*', lambda request, **_: request.headers.__setitem__('x-moto-account-id', '{account}'))\n    return c\n_b.session.Session.client = _c\n_b.setup_default_session()\n"
    )
}

/// The emulator's state as JSON (see scripts/sandbox.py snapshot).
pub struct Snapshot(pub serde_json::Value);

impl Snapshot {
    pub fn list(&self, kind: &str) -> Vec<serde_json::Value> {
        self.0[kind].as_array().cloned().unwrap_or_default()
    }

    /// Everything of every kind tagged for this project and env, and the
    /// classic load balancers and security groups Kubernetes made for this
    /// env's cluster (tagged `kubernetes.io/cluster/<project>-<env>` =
    /// `owned`, without scopectl's tags): `down` deletes those too.
    pub fn owned(&self, project: &str, env: &str) -> Vec<(String, serde_json::Value)> {
        let cluster_tag = format!("kubernetes.io/cluster/{project}-{env}");
        let mut out = Vec::new();
        for kind in [
            "vpcs",
            "subnets",
            "route_tables",
            "security_groups",
            "rules",
            "internet_gateways",
            "peerings",
            "instances",
            "load_balancers",
            "roles",
            "instance_profiles",
            "parameters",
            "volumes",
            "snapshots",
        ] {
            for item in self.list(kind) {
                let t = &item["tags"];
                // AWS (and moto) keep deleted peerings visible for a while.
                if kind == "peerings" && item["status"] == "deleted" {
                    continue;
                }
                let scopectl = t["scopectl:project"] == project && t["scopectl:env"] == env;
                let kubernetes = matches!(kind, "load_balancers" | "security_groups")
                    && t[cluster_tag.as_str()] == "owned"
                    && t["scopectl:project"].is_null();
                if scopectl || kubernetes {
                    out.push((kind.to_string(), item));
                }
            }
        }
        out
    }

    /// Owned resources that exist more than once under one `scopectl:id`
    /// (rules: more than once with the same group, ports and source).
    /// Parameters are keyed by name (a CA's `ca` and `ca.crt` share one
    /// `scopectl:id`; names are unique), snapshots by their own id (several
    /// snapshots of one volume are legitimate), and Kubernetes' own
    /// resources, which have no `scopectl:id`, by theirs.
    pub fn duplicates(&self, project: &str, env: &str) -> Vec<String> {
        let mut seen = std::collections::BTreeMap::<String, usize>::new();
        for (kind, item) in self.owned(project, env) {
            let key = match kind.as_str() {
                "rules" => format!(
                    "rule {} {} {}-{} {}",
                    item["group"],
                    item["protocol"],
                    item["from"],
                    item["to"],
                    if item["source_group"].is_null() {
                        &item["cidr"]
                    } else {
                        &item["source_group"]
                    }
                ),
                "parameters" => format!("{kind} {}", item["name"]),
                "snapshots" => format!("{kind} {}", item["id"]),
                _ if item["tags"]["scopectl:id"].is_null() => format!("{kind} {}", item["id"]),
                _ => format!("{kind} {}", item["tags"]["scopectl:id"]),
            };
            *seen.entry(key).or_default() += 1;
        }
        seen.into_iter()
            .filter(|(_, n)| *n > 1)
            .map(|(k, n)| format!("{k} ×{n}"))
            .collect()
    }

    pub fn default_vpc(&self) -> serde_json::Value {
        self.list("vpcs")
            .into_iter()
            .find(|v| v["default"] == true)
            .expect("a default VPC")
    }
}

/// A config for one test env, beside the database unless `extra` says otherwise.
pub fn config_text(env: &str, db: &str, extra: &str) -> String {
    format!(
        r#"project = "scope"

[aws]
region = "us-east-1"

[network]
placement = "beside-database"
cidr = "172.31.128.0/20"

[database]
rds_instance = "{db}"

[services.users]
image = "registry.example/scope/users"
port = 8080
initial_tag = "v1.0.0"

[env.{env}]
{extra}
"#
    )
}

/// The public half of `env`'s join token, from its parameter's description.
pub fn join_token_id(sb: &Sandbox, env: &str) -> String {
    let code = format!(
        r#"
import boto3, json
ssm = boto3.client("ssm", region_name="us-east-1")
ps = ssm.describe_parameters(ParameterFilters=[{{"Key": "Name", "Option": "Equals",
    "Values": ["/scopectl/scope/{env}/pki/bootstrap-token"]}}])["Parameters"]
print(json.loads(ps[0]["Description"])["token_id"] if ps else "")
"#
    );
    let id = sb.python_via_proxy(&code).trim().to_string();
    assert_eq!(id.len(), 6, "no join token for {env}: {id:?}");
    id
}
