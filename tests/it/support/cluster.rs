//! A test cluster beside a sandbox: the in-process test API server
//! (tests/apiserver) standing in for an env's masters, started while
//! `scopectl up` runs in another process, as soon as the emulator holds the
//! env's PKI and its instances.
//!
//! The API load balancer's DNS name does not resolve here, so scopectl
//! reaches the API at [`TestCluster::url`] (`SCOPECTL_API_SERVER`, see
//! [`Sandbox::scopectl_in_cluster`]) and still checks the certificate
//! against the load balancer's name; kubectl does the same through the
//! admin kubeconfig with its server moved to the loopback port and
//! `tls-server-name` keeping the name.
//!
//! The port is reserved when the cluster is expected (bound, not listening:
//! until the server starts, connections are refused, as by a load balancer
//! with no healthy master), so the URL is known before `up` starts. A thread
//! polls `scripts/sandbox.py cluster` (through the shared helper, directly
//! against the emulator, never through the proxy) and starts the server on
//! that port with the stored API server certificate, the stored CA and one
//! Ready node per instance (named by its private DNS name, the masters
//! flagged and tainted). Dropping the `TestCluster` ends the thread and
//! stops the server.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use scopectl_apiserver::{Cluster, Config, NodeSpec, Record, Reservation, Server, Tls};
use serde_json::Value;

use super::{expect_exit, helper_call, output, Sandbox};

/// Simulated seconds per real second in tests: a pod is ready 20 ms after
/// it is scheduled (`Config::pod_ready`, 2 simulated seconds) and a
/// Deployment's 600-second progress deadline passes in 6 s.
pub const TIME_SCALE: f64 = 100.0;

/// How often the thread asks the emulator whether the env's cluster exists.
const POLL: Duration = Duration::from_millis(200);

/// The test API server's settings for tests: [`TIME_SCALE`], no faults.
/// Its `nodes` are replaced by the env's instances when it starts.
pub fn config() -> Config {
    Config {
        time_scale: Some(TIME_SCALE),
        ..Config::default()
    }
}

enum Phase {
    /// Not started; why, as the last poll said.
    Waiting(String),
    Started(Server),
    Failed(String),
}

struct State {
    phase: Phase,
    polls: u32,
    started_at: Option<Instant>,
    stop: bool,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The test API server for one env of a sandbox, started when the env's
/// PKI and instances exist.
pub struct TestCluster<'a> {
    sb: &'a Sandbox,
    scopectl_config: PathBuf,
    project: String,
    env: String,
    addr: SocketAddr,
    dir: tempfile::TempDir,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    /// The rewritten admin kubeconfig and the API load balancer's name.
    kubeconfig: Mutex<Option<(PathBuf, String)>>,
}

impl<'a> TestCluster<'a> {
    /// Reserves a loopback port and starts watching the emulator for the
    /// env `env` of the config `scopectl_config` (its `project` read from
    /// the file): once its PKI is stored and `instances` of its instances
    /// are pending or running, the server starts with `config` (see
    /// [`config`]), its nodes those instances.
    pub fn expect(
        sb: &'a Sandbox,
        scopectl_config: &Path,
        env: &str,
        instances: usize,
        config: Config,
    ) -> TestCluster<'a> {
        Self::expect_with(sb, scopectl_config, env, instances, config, None)
    }

    /// [`TestCluster::expect`], with the nodes the boot harness (its
    /// `--out booted`) joined, once it has judged every boot: an instance
    /// whose boot failed is no node.
    pub fn expect_booted(
        sb: &'a Sandbox,
        scopectl_config: &Path,
        env: &str,
        instances: usize,
        config: Config,
        booted: &Path,
    ) -> TestCluster<'a> {
        Self::expect_with(sb, scopectl_config, env, instances, config, Some(booted))
    }

    fn expect_with(
        sb: &'a Sandbox,
        scopectl_config: &Path,
        env: &str,
        instances: usize,
        config: Config,
        booted: Option<&Path>,
    ) -> TestCluster<'a> {
        let text = std::fs::read_to_string(scopectl_config).unwrap_or_else(|e| {
            panic!("reading {}: {e}", scopectl_config.display());
        });
        let project = toml::from_str::<toml::Table>(&text)
            .ok()
            .and_then(|t| t.get("project")?.as_str().map(str::to_string))
            .unwrap_or_else(|| panic!("no project in {}", scopectl_config.display()));
        let reservation = Reservation::new("127.0.0.1:0").expect("reserve a loopback port");
        let addr = reservation.addr;
        let dir = tempfile::tempdir().expect("a directory for the cluster");
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                phase: Phase::Waiting("not polled yet".into()),
                polls: 0,
                started_at: None,
                stop: false,
            }),
            changed: Condvar::new(),
        });
        let watcher = Watcher {
            shared: shared.clone(),
            account: sb.account.clone(),
            args: [
                "cluster".into(),
                "--project".into(),
                project.clone(),
                "--env".into(),
                env.into(),
                "--dir".into(),
                dir.path().to_string_lossy().into_owned(),
                "--instances".into(),
                instances.to_string(),
            ]
            .into_iter()
            .chain(
                booted
                    .into_iter()
                    .flat_map(|b| ["--booted".to_string(), b.to_string_lossy().into_owned()]),
            )
            .collect(),
            dir: dir.path().to_path_buf(),
            config,
        };
        let thread = std::thread::Builder::new()
            .name(format!("test-cluster-{env}"))
            .spawn(move || watcher.run(reservation))
            .expect("start the test cluster's thread");
        TestCluster {
            sb,
            scopectl_config: scopectl_config.to_path_buf(),
            project,
            env: env.into(),
            addr,
            dir,
            shared,
            thread: Some(thread),
            kubeconfig: Mutex::new(None),
        }
    }

    /// `https://127.0.0.1:PORT`, known before the server starts.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server's cluster (store, request log, manual clock), once started.
    pub fn handle(&self) -> Option<Cluster> {
        match &self.shared.lock().phase {
            Phase::Started(server) => Some(server.cluster.clone()),
            _ => None,
        }
    }

    pub fn is_started(&self) -> bool {
        self.handle().is_some()
    }

    /// When the server started serving.
    pub fn started_at(&self) -> Option<Instant> {
        let st = self.shared.lock();
        match st.phase {
            Phase::Started(_) => st.started_at,
            _ => None,
        }
    }

    /// Waits until the server serves, and returns its cluster; fails the
    /// test after `timeout` (saying what the last poll found) or when the
    /// server could not start.
    pub fn wait_started(&self, timeout: Duration) -> Cluster {
        let deadline = Instant::now() + timeout;
        let mut st = self.shared.lock();
        loop {
            match &st.phase {
                Phase::Started(server) => return server.cluster.clone(),
                Phase::Failed(e) => panic!("the test cluster of {} did not start: {e}", self.env),
                Phase::Waiting(why) => {
                    let now = Instant::now();
                    assert!(
                        now < deadline,
                        "the test cluster of {} did not start within {timeout:?} ({} polls; the last: {why})",
                        self.env,
                        st.polls
                    );
                    st = self
                        .shared
                        .changed
                        .wait_timeout(st, deadline - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
            }
        }
    }

    /// Every request the server answered so far (none before it started).
    pub fn requests(&self) -> Vec<Record> {
        self.handle().map(|c| c.requests()).unwrap_or_default()
    }

    /// The admin kubeconfig (`scopectl kubeconfig --out`, from the
    /// sandbox's state store), its server moved to [`TestCluster::url`] with
    /// `tls-server-name` keeping the API load balancer's name. Written once;
    /// [`TestCluster::refresh_kubeconfig`] writes it again (after a PKI
    /// rotation).
    /// A directory of this cluster's own, for files a test writes.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn kubeconfig(&self) -> PathBuf {
        let mut k = self.kubeconfig.lock().unwrap_or_else(|e| e.into_inner());
        if k.is_none() {
            *k = Some(self.write_kubeconfig());
        }
        k.as_ref().map(|(p, _)| p.clone()).unwrap_or_default()
    }

    pub fn refresh_kubeconfig(&self) -> PathBuf {
        *self.kubeconfig.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.kubeconfig()
    }

    /// The API load balancer's DNS name, the name the server's certificate
    /// is checked against (`tls-server-name`).
    pub fn api_host(&self) -> String {
        self.kubeconfig();
        let k = self.kubeconfig.lock().unwrap_or_else(|e| e.into_inner());
        k.as_ref().map(|(_, h)| h.clone()).unwrap_or_default()
    }

    fn write_kubeconfig(&self) -> (PathBuf, String) {
        let path = self.dir.path().join("admin.kubeconfig");
        let out = path.to_string_lossy().into_owned();
        let args = ["--env", &self.env, "kubeconfig", "--out", &out];
        self.sb.expect(0, &self.scopectl_config, &args);
        let text = std::fs::read_to_string(&path).expect("read the kubeconfig");
        let mut doc: serde_norway::Value = serde_norway::from_str(&text).expect("kubeconfig YAML");
        let cluster = &mut doc["clusters"][0]["cluster"];
        let server = cluster["server"].as_str().unwrap_or_default().to_string();
        let host = server
            .trim_start_matches("https://")
            .rsplit_once(':')
            .map(|(h, _)| h.to_string())
            .unwrap_or_else(|| panic!("the kubeconfig's server {server:?} has no port"));
        cluster["server"] = self.url().into();
        cluster["tls-server-name"] = host.clone().into();
        std::fs::write(&path, serde_norway::to_string(&doc).unwrap())
            .expect("write the kubeconfig");
        (path, host)
    }

    /// The real kubectl with the admin kubeconfig (its own `HOME`, so its
    /// cache is this cluster's). Fails the test when kubectl is missing:
    /// check [`kubectl_binary`] first.
    pub fn kubectl_cmd(&self, args: &[&str]) -> Command {
        let bin = kubectl_binary().expect("kubectl is not on PATH");
        let mut cmd = Command::new(bin);
        cmd.env("KUBECONFIG", self.kubeconfig())
            .env("HOME", self.dir.path())
            .env_remove("KUBERNETES_MASTER")
            .args(args)
            .stdin(Stdio::null());
        cmd
    }

    /// Runs kubectl: (exit code, stdout, stderr).
    pub fn kubectl(&self, args: &[&str]) -> (i32, String, String) {
        let out = self.kubectl_cmd(args).output().expect("run kubectl");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    }

    /// Runs kubectl and fails the test unless it succeeds; its stdout.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.kubectl(args);
        assert_eq!(
            code, 0,
            "kubectl {args:?} exited {code}\n--- stdout\n{out}\n--- stderr\n{err}"
        );
        out
    }

    pub fn project(&self) -> &str {
        &self.project
    }

    pub fn env(&self) -> &str {
        &self.env
    }
}

impl Drop for TestCluster<'_> {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.changed.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        // The server (its runtime, listener and controllers) goes outside the lock.
        let phase = std::mem::replace(
            &mut self.shared.lock().phase,
            Phase::Waiting("stopped".into()),
        );
        drop(phase);
    }
}

/// The thread's side: polls until the env's cluster exists, then starts
/// the server on the reserved port.
struct Watcher {
    shared: Arc<Shared>,
    account: String,
    args: Vec<String>,
    dir: PathBuf,
    config: Config,
}

impl Watcher {
    fn run(self, reservation: Reservation) {
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        loop {
            if self.shared.lock().stop {
                return;
            }
            let polled = helper_call(&self.account, &args).and_then(|out| self.ready(&out));
            let mut st = self.shared.lock();
            st.polls += 1;
            match polled {
                Ok((nodes, tls)) => {
                    if st.stop {
                        return;
                    }
                    drop(st);
                    let config = Config {
                        nodes,
                        ..self.config.clone()
                    };
                    let started = Server::start_on(config, &tls, reservation);
                    let mut st = self.shared.lock();
                    st.phase = match started {
                        Ok(server) => Phase::Started(server),
                        Err(e) => Phase::Failed(e),
                    };
                    st.started_at = Some(Instant::now());
                    self.shared.changed.notify_all();
                    return;
                }
                Err(why) => {
                    st.phase = Phase::Waiting(why);
                    let _ = self
                        .shared
                        .changed
                        .wait_timeout_while(st, POLL, |s| !s.stop);
                }
            }
        }
    }

    /// The nodes and TLS material from `sandbox.py cluster`'s answer.
    fn ready(&self, out: &str) -> Result<(Vec<NodeSpec>, Tls), String> {
        let v: Value = serde_json::from_str(out).map_err(|e| format!("{e}: {out:?}"))?;
        let str_of = |n: &Value, k: &str| n[k].as_str().map(str::to_string);
        let nodes = v["nodes"]
            .as_array()
            .ok_or_else(|| format!("no nodes in {out}"))?
            .iter()
            .map(|n| NodeSpec {
                name: str_of(n, "name").unwrap_or_default(),
                internal_ip: str_of(n, "ip").unwrap_or_default(),
                master: n["master"] == true,
                zone: str_of(n, "zone"),
                instance_id: str_of(n, "id"),
                instance_type: str_of(n, "type").filter(|t| !t.is_empty()),
            })
            .collect();
        let read = |name: &str| {
            std::fs::read_to_string(self.dir.join(name)).map_err(|e| format!("reading {name}: {e}"))
        };
        let tls = Tls::from_bundles(&read("apiserver.pem")?, &read("ca.pem")?);
        Ok((nodes, tls))
    }
}

/// kubectl on PATH. Without it: `None` (the caller skips what needs it),
/// unless under CI (`CI` set), where its absence fails the test.
pub fn kubectl_binary() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("kubectl"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "kubectl is not on PATH: CI must check the cluster harness against the real kubectl"
        );
    }
    found
}

impl Sandbox {
    /// scopectl with every phase (no `SCOPECTL_PHASE`), reaching the
    /// cluster's API at `cluster.url()` (`SCOPECTL_API_SERVER`) while
    /// checking the certificate against the API load balancer's name.
    pub fn scopectl_in_cluster(
        &self,
        cluster: &TestCluster<'_>,
        config: &Path,
        args: &[&str],
    ) -> Command {
        let mut cmd = self.scopectl(config, args);
        cmd.env_remove("SCOPECTL_PHASE")
            .env("SCOPECTL_API_SERVER", cluster.url());
        cmd
    }

    /// [`Sandbox::run`] with every phase against `cluster`.
    pub fn run_in_cluster(
        &self,
        cluster: &TestCluster<'_>,
        config: &Path,
        args: &[&str],
    ) -> (i32, String, String) {
        output(self.scopectl_in_cluster(cluster, config, args))
    }

    /// [`Sandbox::expect`] with every phase against `cluster`.
    pub fn expect_in_cluster(
        &self,
        code: i32,
        cluster: &TestCluster<'_>,
        config: &Path,
        args: &[&str],
    ) -> (String, String) {
        expect_exit(code, args, self.run_in_cluster(cluster, config, args))
    }

    /// [`Sandbox::spawn`] with every phase against `cluster`.
    pub fn spawn_in_cluster(
        &self,
        cluster: &TestCluster<'_>,
        config: &Path,
        args: &[&str],
    ) -> Child {
        self.scopectl_in_cluster(cluster, config, args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start scopectl")
    }
}
