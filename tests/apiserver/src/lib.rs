//! An in-memory Kubernetes API server for scopectl's proving ground.
//!
//! It speaks HTTPS with client-certificate authentication against the
//! env's own CA, serves discovery, stores the kinds the cluster phase and
//! rollouts use (get, list with selectors, create, update with
//! `resourceVersion` preconditions, delete with garbage collection, watch
//! with bookmarks and 410 Gone), implements server-side apply with managed
//! fields plus strategic-merge, merge and JSON patches, allocates ClusterIPs
//! and NodePorts, runs a Deployment controller whose pods' fate follows the
//! image tag over scaled time, injects seeded faults, and records every
//! request. See `README.md` beside this crate for what it deliberately
//! leaves out.

pub mod api;
pub mod controllers;
pub mod errors;
pub mod fields;
pub mod kinds;
pub mod patch;
pub mod selectors;
pub mod server;
pub mod services;
pub mod state;
pub mod table;
pub mod testpki;
pub mod util;
pub mod validate;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

pub use api::{Body, Request, Response};
pub use controllers::NodeSpec;
pub use server::{Reservation, Server, Tls};
use state::{Clock, State};

/// Seeded faults, like the AWS proxy's: each API request is faulted with
/// probability `rate`, the fault drawn from the enabled ones.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    pub seed: u64,
    pub rate: f64,
    /// 429 with `Retry-After`.
    pub throttle: bool,
    /// 500 and 503.
    pub errors: bool,
    /// 409 on writes (create, update, patch, delete).
    pub conflicts: bool,
    /// Watch streams end after a few events, without an ERROR event.
    pub cut_watches: bool,
    /// Connections close unanswered (not watches): before the request is
    /// served ([`Fault::CutBefore`]), or after it was, its effect kept and
    /// its answer lost ([`Fault::CutAfter`]).
    pub cut_connections: bool,
    /// Up to this much added latency.
    pub max_latency: Duration,
    /// Whatever the seed (with a rate above 0), the first requests of each verb meet
    /// every enabled fault that applies to it, every other request (the
    /// 1st, 3rd, 5th …; 409 first for writes), so that a short run is sure
    /// to see each fault on each verb; the rest are drawn as usual.
    pub every_kind_per_verb: bool,
    /// At most this many faults in a row for one verb and path (one
    /// client call and its retries), then one unfaulted answer: a client
    /// that retries enough always gets through. 0: no limit.
    pub max_in_a_row: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fault {
    Throttle,
    Status500,
    Status503,
    Conflict,
    CutWatch,
    /// The connection closed before the request was served.
    CutBefore,
    /// The request was served (a write applied), then the connection closed
    /// unanswered.
    CutAfter,
    Latency,
}

#[derive(Clone, Debug)]
pub struct Config {
    /// `1.31` (the server reports `v1.31.0`).
    pub kubernetes_version: String,
    pub service_cidr: String,
    pub nodes: Vec<NodeSpec>,
    /// Simulated seconds per real second (a 600 s progress deadline takes
    /// 6 s at 100). `None`: a manual clock, moved by [`Cluster::advance`].
    pub time_scale: Option<f64>,
    /// Simulated time for a good image's pod to become ready (`slow`: ten
    /// times this).
    pub pod_ready: Duration,
    /// Events kept for watch resumption; a watch from an older resource
    /// version gets 410 Gone.
    pub history: usize,
    /// Real time between watch bookmarks.
    pub bookmark_interval: Duration,
    pub seed: u64,
    pub faults: Faults,
    /// Fixed latency added to every request before it is answered (a
    /// network round trip), discovery and health checks included; unlike
    /// `Faults::max_latency` it is not drawn. Counted in `Record::micros`.
    pub latency: Duration,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            kubernetes_version: "1.31".into(),
            service_cidr: "10.96.0.0/12".into(),
            nodes: Vec::new(),
            time_scale: Some(1.0),
            pod_ready: Duration::from_secs(2),
            history: 10_000,
            bookmark_interval: Duration::from_secs(10),
            seed: 1,
            faults: Faults::default(),
            latency: Duration::ZERO,
        }
    }
}

/// One request as the server saw it.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    pub seq: u64,
    /// The Kubernetes verb: get, list, watch, create, update, patch, delete,
    /// deletecollection; or the HTTP method for non-resource paths.
    pub verb: String,
    pub path: String,
    pub status: u16,
    pub fault: Option<Fault>,
    pub user: String,
    /// The server's own time for the request (a watch: until it started),
    /// `Config::latency` included.
    pub micros: u64,
    /// When the request arrived, in real microseconds since the cluster was
    /// made: with `micros`, the interval the request spent at the server.
    pub at_micros: u64,
}

pub(crate) struct Inner {
    pub state: Mutex<State>,
    pub config: Config,
    pub wake: tokio::sync::Notify,
    pub log: Mutex<Vec<Record>>,
    pub faults: Mutex<util::Rng>,
    pub seq: AtomicU64,
    pub log_file: Mutex<Option<std::fs::File>>,
    /// Requests per verb so far (`Faults::every_kind_per_verb`).
    pub per_verb: Mutex<std::collections::HashMap<String, usize>>,
    /// Faults in a row per verb and path (`Faults::max_in_a_row`).
    pub in_a_row: Mutex<std::collections::HashMap<(String, String), u32>>,
    pub freeze: Mutex<Freeze>,
    pub thaw: tokio::sync::Notify,
    /// When the cluster was made (`Record::at_micros` counts from it).
    pub born: std::time::Instant,
}

/// [`Cluster::freeze_after_writes`]: writes served so far, the one to
/// freeze after, and whether the server is frozen.
#[derive(Debug, Default)]
pub(crate) struct Freeze {
    pub writes: u64,
    pub at: Option<u64>,
    pub frozen: bool,
}

/// The cluster: its store, controllers, fault source and request log.
/// Cheap to clone.
#[derive(Clone)]
pub struct Cluster {
    pub(crate) inner: Arc<Inner>,
}

impl Cluster {
    pub fn new(config: Config) -> Cluster {
        let clock = match config.time_scale {
            Some(scale) => Clock::Scaled {
                origin_ms: wall_ms(),
                start: std::time::Instant::now(),
                scale,
            },
            None => Clock::Manual { now_ms: wall_ms() },
        };
        let mut st = State::new(&config.service_cidr, config.seed, clock, config.history);
        st.sim = controllers::Sim::new(
            config.pod_ready.as_millis() as i64,
            &format!("v{}.0", config.kubernetes_version),
        );
        controllers::bootstrap(&mut st, &config.nodes);
        controllers::reconcile(&mut st);
        let faults = util::Rng::new(config.faults.seed);
        Cluster {
            inner: Arc::new(Inner {
                state: Mutex::new(st),
                config,
                wake: tokio::sync::Notify::new(),
                log: Mutex::new(Vec::new()),
                faults: Mutex::new(faults),
                seq: AtomicU64::new(0),
                log_file: Mutex::new(None),
                per_verb: Mutex::new(std::collections::HashMap::new()),
                in_a_row: Mutex::new(std::collections::HashMap::new()),
                freeze: Mutex::new(Freeze::default()),
                thaw: tokio::sync::Notify::new(),
                born: std::time::Instant::now(),
            }),
        }
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// When the cluster was made: `Record::at_micros` counts from here.
    pub fn born(&self) -> std::time::Instant {
        self.inner.born
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Also appends each request to `file` as a JSON line.
    pub fn log_to(&self, file: std::fs::File) {
        *self
            .inner
            .log_file
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(file);
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<Record> {
        self.inner
            .log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn record(&self, mut r: Record) {
        r.seq = self.inner.seq.fetch_add(1, Ordering::SeqCst);
        if let Some(f) = self
            .inner
            .log_file
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
        {
            use std::io::Write;
            let line = serde_json::json!({
                "seq": r.seq, "verb": r.verb, "path": r.path, "status": r.status,
                "fault": r.fault.map(|f| format!("{f:?}")), "user": r.user, "micros": r.micros,
                "at_micros": r.at_micros,
            });
            let _ = writeln!(f, "{line}");
        }
        self.inner
            .log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(r);
    }

    /// Runs the controllers until nothing changes (what the background loop
    /// does after every write and whenever time brings a change).
    pub fn settle(&self) {
        controllers::reconcile(&mut self.state());
    }

    /// Moves a manual clock on and settles. (A scaled clock ignores it.)
    pub fn advance(&self, by: Duration) {
        let mut st = self.state();
        if let Clock::Manual { now_ms } = &mut st.clock {
            *now_ms += by.as_millis() as i64;
        }
        controllers::reconcile(&mut st);
    }

    /// The simulated time, in milliseconds since the epoch.
    pub fn now_ms(&self) -> i64 {
        self.state().clock.now_ms()
    }

    /// An object, as stored.
    pub fn object(
        &self,
        api_version: &str,
        kind: &str,
        ns: &str,
        name: &str,
    ) -> Option<serde_json::Value> {
        let k = kinds::by_kind(api_version, kind)?;
        self.state().get(k, ns, name).map(|v| (**v).clone())
    }

    /// Every stored object of a kind (all namespaces), as stored.
    pub fn objects(&self, api_version: &str, kind: &str) -> Vec<serde_json::Value> {
        let Some(k) = kinds::by_kind(api_version, kind) else {
            return Vec::new();
        };
        self.state()
            .list(k, None)
            .iter()
            .map(|v| (**v).clone())
            .collect()
    }

    /// Freezes the server right after the `k`-th write from now (create,
    /// update, patch, delete, deletecollection; any answer): that write
    /// takes effect but its answer is held back, and every request that
    /// comes while frozen is held too, until [`Cluster::thaw`], when they
    /// all get their connection closed unanswered (the held ones unserved).
    /// A test kills its client at a known point this way, as with the AWS
    /// proxy's `freeze_after_writes`. The controllers keep running.
    pub fn freeze_after_writes(&self, k: u64) {
        let mut f = self.freezer();
        f.at = Some(f.writes + k.max(1));
    }

    /// Whether a write froze the server (and it was not thawed since).
    pub fn frozen(&self) -> bool {
        self.freezer().frozen
    }

    /// Writes served so far.
    pub fn writes(&self) -> u64 {
        self.freezer().writes
    }

    /// Ends a freeze (and a pending [`Cluster::freeze_after_writes`]).
    pub fn thaw(&self) {
        let mut f = self.freezer();
        f.at = None;
        f.frozen = false;
        drop(f);
        self.inner.thaw.notify_waiters();
    }

    pub(crate) fn freezer(&self) -> MutexGuard<'_, Freeze> {
        self.inner.freeze.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits while the server is frozen; true if it was.
    pub(crate) async fn held(&self) -> bool {
        let mut was = false;
        loop {
            let thawed = self.inner.thaw.notified();
            if !self.freezer().frozen {
                return was;
            }
            was = true;
            thawed.await;
        }
    }

    /// The controllers' loop: reconciles after writes and when simulated
    /// time brings the next change. Needs a Tokio runtime; ends when the
    /// cluster is dropped.
    pub fn spawn_controllers(&self) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            loop {
                let Some(inner) = weak.upgrade() else { return };
                let cluster = Cluster { inner };
                let (wake, scale) = {
                    let mut st = cluster.state();
                    let wake = controllers::reconcile(&mut st);
                    (wake.map(|w| w - st.clock.now_ms()), st.clock.scale())
                };
                let real = match wake {
                    Some(ms) if scale.is_finite() && scale > 0.0 => {
                        Duration::from_micros(((ms.max(0) as f64 / scale) * 1000.0) as u64 + 500)
                    }
                    _ => Duration::from_millis(500),
                }
                .min(Duration::from_millis(500));
                let notified = cluster.inner.wake.notified();
                tokio::select! {
                    _ = notified => {}
                    _ = tokio::time::sleep(real) => {}
                }
            }
        })
    }
}

fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
