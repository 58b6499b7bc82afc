//! An HTTP proxy between scopectl and the AWS emulator that makes moto behave
//! more like AWS:
//!
//! - it records every call (service, action, status, injected fault);
//! - `strict`: it enforces AWS's dependency rules that moto skips, by reading
//!   moto's state before forwarding a delete or detach (see [`rules`]), and
//!   keeps terminated instances and deleted load balancers holding their
//!   subnets and groups for `hold` (AWS's `shutting-down` and lingering ELB
//!   interfaces);
//! - it honours `ClientToken` (a repeated token replays the first answer);
//! - `faults`: from a seed, it throttles, answers 500 or 503, drops the
//!   connection before or after forwarding, and adds latency;
//! - `faults`, eventual consistency: a just-created EC2 resource (VPC,
//!   subnet, group, route table, gateway, peering, instance, volume,
//!   snapshot) answers NotFound to its first N requests that name it, and is
//!   left out of the answers of its first N filtered Describes (`Filter.N.*`,
//!   tag filters included) that would list it: the proxy forwards those and
//!   cuts the resource's `<item>` out of moto's answer (an instance's item,
//!   or its whole reservation's when every instance in it is hidden);
//! - `faults.lose_first_create`: the first request of every create action
//!   (`Create*`, `RunInstances`, `PutParameter`, …) that reaches the
//!   emulator is applied and its answer lost (the connection closes), as a
//!   client sees when AWS acts and the network fails; a retry with the same
//!   `ClientToken` replays the lost answer;
//! - `freeze_after_writes`: after forwarding the k-th write it stops
//!   answering, so a test can SIGKILL scopectl at a known point.
//!
//! Deliberately small: HTTP/1.1 with Content-Length bodies, which is what the
//! AWS SDK sends and what moto answers.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[path = "rules.rs"]
mod rules;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    pub service: String,
    pub action: String,
    pub status: u16,
    /// The fault injected into this call, if any.
    pub fault: Option<Fault>,
    /// The ids and names the request carries (`…Id=`, `…Name=`), to tell
    /// one step's retries apart in a failure report.
    pub names: String,
    /// When the request reached the proxy, and how long until it was
    /// answered (the added latency included): the benchmark's timeline.
    pub at: Instant,
    pub took: Duration,
}

impl Call {
    /// Reads are Describe*, Get*, List*; everything else writes.
    pub fn is_write(&self) -> bool {
        is_write(&self.action)
    }
}

fn is_write(action: &str) -> bool {
    !["Describe", "Get", "List"]
        .iter()
        .any(|p| action.starts_with(p))
}

/// The faults the proxy injects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Fault {
    /// RequestLimitExceeded (EC2) or Throttling (ELB, RDS, SSM).
    Throttle,
    Status500,
    Status503,
    /// The connection closes before the request reaches the emulator.
    DropBefore,
    /// The request is applied, then the connection closes unanswered.
    DropAfter,
    /// Up to `Faults::max_latency` more.
    Latency,
    /// A just-created resource named in the request is not found yet, or a
    /// filtered Describe leaves it out.
    NotYetVisible,
    /// Not injected: a refusal by AWS's dependency rules.
    DependencyViolation,
}

impl Fault {
    const RANDOM: [Fault; 6] = [
        Fault::Throttle,
        Fault::Status500,
        Fault::Status503,
        Fault::DropBefore,
        Fault::DropAfter,
        Fault::Latency,
    ];
}

#[derive(Clone, Debug)]
pub struct Faults {
    pub seed: u64,
    /// Share of calls that get one of the random faults, 0.0..=1.0.
    pub rate: f64,
    /// How many requests naming a just-created id answer NotFound, and how
    /// many filtered Describes that would list it leave it out.
    pub invisible_for: u32,
    /// Also fault the first call of every (service, action), so every kind
    /// of call is hit whatever the seed.
    pub first_of_each_action: bool,
    /// The longest delay a `Latency` fault adds (it adds a fifth to all of it).
    pub max_latency: Duration,
    /// Lose the answer of the first request of every create action (per
    /// service and action: `Create*`, `RunInstances`, `PutParameter`,
    /// `AllocateAddress`, `RegisterInstancesWithLoadBalancer`,
    /// `AttachVolume`, `AuthorizeSecurityGroupIngress`) that is forwarded:
    /// the emulator applies it, then the connection closes unanswered
    /// (recorded as `Fault::DropAfter`). A request a fault answered before
    /// it was forwarded does not count: the action's next one loses its
    /// answer. A retry with the same `ClientToken` gets the lost answer.
    pub lose_first_create: bool,
}

#[derive(Clone, Debug, Default)]
pub struct ProxyConfig {
    pub upstream: Option<SocketAddr>,
    /// The emulator's account to act in (`x-moto-account-id` on every
    /// request sent upstream): tests sharing one emulator stay apart.
    pub account: Option<String>,
    pub latency: Duration,
    pub strict: bool,
    /// How long terminated instances and deleted ELBs keep their dependants.
    pub hold: Duration,
    pub faults: Option<Faults>,
}

#[derive(Clone, Default)]
pub struct Calls(Arc<Mutex<Vec<Call>>>);

impl Calls {
    pub fn all(&self) -> Vec<Call> {
        self.0.lock().unwrap().clone()
    }
    pub fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
    pub fn since(&self, mark: usize) -> Vec<Call> {
        self.0.lock().unwrap()[mark..].to_vec()
    }
    fn push(&self, c: Call) {
        self.0.lock().unwrap().push(c);
    }
}

/// A recorded answer: status and the whole response.
type Answer = (u16, Vec<u8>);

/// What the tests can change while the proxy runs.
struct Control {
    config: Mutex<ProxyConfig>,
    /// Calls seen, for the fault generator.
    counter: AtomicU64,
    connections: AtomicU64,
    writes: AtomicU64,
    freeze_after: Mutex<Option<u64>>,
    frozen: AtomicBool,
    /// Requests between the freeze check and their answer: a freeze counts
    /// only once these have landed.
    in_flight: std::sync::atomic::AtomicI64,
    /// Bumped by `thaw`: hung requests give up.
    generation: AtomicU64,
    /// (action, ClientToken) → the first answer.
    tokens: Mutex<HashMap<(String, String), Answer>>,
    /// A just-created id → how long AWS would not show it yet.
    invisible: Mutex<HashMap<String, Hidden>>,
    held: Mutex<Vec<rules::Held>>,
    /// (service, action) pairs seen, for `first_of_each_action`.
    seen: Mutex<std::collections::HashSet<(String, String)>>,
    /// (service, action) create pairs whose answer was lost, for
    /// `lose_first_create`.
    lost: Mutex<std::collections::HashSet<(String, String)>>,
}

/// A just-created resource that AWS would not show yet.
#[derive(Clone, Copy, Debug)]
struct Hidden {
    /// Requests naming its id that still answer NotFound.
    named: u32,
    /// Filtered Describes that would list it and still leave it out.
    filtered: u32,
    /// The NotFound error code, and what the message calls it.
    code: &'static str,
    what: &'static str,
}

pub struct Proxy {
    pub addr: SocketAddr,
    pub calls: Calls,
    control: Arc<Control>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Proxy {
    /// Starts on a free loopback port, on its own thread and runtime.
    pub fn spawn(config: ProxyConfig) -> Proxy {
        let std_listener =
            std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        std_listener.set_nonblocking(true).expect("nonblocking");
        let addr = std_listener.local_addr().expect("local addr");
        let calls = Calls::default();
        let control = Arc::new(Control {
            config: Mutex::new(config),
            counter: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            freeze_after: Mutex::new(None),
            frozen: AtomicBool::new(false),
            in_flight: std::sync::atomic::AtomicI64::new(0),
            generation: AtomicU64::new(0),
            tokens: Mutex::default(),
            invisible: Mutex::default(),
            held: Mutex::default(),
            seen: Mutex::default(),
            lost: Mutex::default(),
        });
        let (tx, mut rx) = tokio::sync::oneshot::channel();
        let (c, ctl) = (calls.clone(), control.clone());
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = TcpListener::from_std(std_listener).expect("listener");
                loop {
                    tokio::select! {
                        _ = &mut rx => break,
                        accepted = listener.accept() => {
                            let Ok((stream, _)) = accepted else { continue };
                            ctl.connections.fetch_add(1, Ordering::SeqCst);
                            let (ctl, calls) = (ctl.clone(), c.clone());
                            tokio::spawn(async move { let _ = serve(stream, &ctl, &calls).await; });
                        }
                    }
                }
            });
            // Hung (frozen) requests are dropped with the runtime.
            rt.shutdown_timeout(Duration::from_millis(100));
        });
        Proxy {
            addr,
            calls,
            control,
            stop: Some(tx),
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Changes the configuration for calls from now on.
    pub fn configure(&self, f: impl FnOnce(&mut ProxyConfig)) {
        f(&mut self.control.config.lock().unwrap());
    }

    /// Client connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.control.connections.load(Ordering::SeqCst)
    }

    /// Write calls forwarded so far.
    pub fn writes(&self) -> u64 {
        self.control.writes.load(Ordering::SeqCst)
    }

    /// After forwarding the `k`-th write from now, answer nothing more.
    pub fn freeze_after_writes(&self, k: u64) {
        let base = self.writes();
        *self.control.freeze_after.lock().unwrap() = Some(base + k);
    }

    /// Frozen, and every request that got past the freeze has landed.
    pub fn frozen(&self) -> bool {
        self.control.frozen.load(Ordering::SeqCst)
            && self.control.in_flight.load(Ordering::SeqCst) == 0
    }

    /// Answers again; requests hung by the freeze are closed unanswered.
    pub fn thaw(&self) {
        *self.control.freeze_after.lock().unwrap() = None;
        self.control.generation.fetch_add(1, Ordering::SeqCst);
        self.control.frozen.store(false, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.thaw();
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub(crate) struct Request {
    head: String,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    /// The service from the SigV4 credential scope: .../region/SERVICE/aws4_request.
    fn service(&self) -> String {
        self.header("authorization")
            .and_then(|a| a.split("Credential=").nth(1))
            .and_then(|c| c.split('/').nth(3))
            .unwrap_or("unknown")
            .to_string()
    }

    /// Query protocols (EC2, RDS, ELB) put `Action=` in the form body; JSON
    /// protocols (SSM) name it in X-Amz-Target.
    fn action(&self) -> String {
        if let Some(t) = self.header("x-amz-target") {
            return t.rsplit('.').next().unwrap_or(t).to_string();
        }
        self.param("Action").unwrap_or_else(|| "unknown".into())
    }

    /// The form parameters of a query-protocol request.
    pub(crate) fn params(&self) -> Vec<(String, String)> {
        if self.header("x-amz-target").is_some() {
            return Vec::new();
        }
        form_urlencoded::parse(&self.body)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }

    pub(crate) fn param(&self, name: &str) -> Option<String> {
        self.params()
            .into_iter()
            .find_map(|(k, v)| (k == name).then_some(v))
    }

    /// Values of `Name.1`, `Name.2`, …
    pub(crate) fn list_param(&self, name: &str) -> Vec<String> {
        let prefix = format!("{name}.");
        self.params()
            .into_iter()
            .filter(|(k, _)| {
                k.strip_prefix(&prefix)
                    .is_some_and(|n| n.chars().all(|c| c.is_ascii_digit()))
            })
            .map(|(_, v)| v)
            .collect()
    }
}

async fn read_request(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
) -> std::io::Result<Option<Request>> {
    loop {
        if let Some(end) = find(buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let len = head
                .lines()
                .find_map(|l| {
                    l.split_once(':')
                        .filter(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
                })
                .and_then(|(_, v)| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            while buf.len() < end + 4 + len {
                let mut chunk = [0u8; 16384];
                let n = stream.read(&mut chunk).await?;
                if n == 0 {
                    return Ok(None);
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            let body = buf[end + 4..end + 4 + len].to_vec();
            buf.drain(..end + 4 + len);
            return Ok(Some(Request { head, body }));
        }
        let mut chunk = [0u8; 16384];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// splitmix64: a fault sequence that a seed reproduces.
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// What to do with one request.
enum Verdict {
    Forward,
    Answer(u16, Vec<u8>, Option<Fault>),
    Drop(Fault),
}

async fn serve(mut client: TcpStream, ctl: &Control, calls: &Calls) -> std::io::Result<()> {
    let mut buf = Vec::new();
    while let Some(req) = read_request(&mut client, &mut buf).await? {
        let config = ctl.config.lock().unwrap().clone();
        let (service, action) = (req.service(), req.action());
        let names = req
            .params()
            .into_iter()
            .filter(|(k, _)| k.ends_with("Id") || k.ends_with("Name"))
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        let at = Instant::now();
        let record = |status: u16, fault: Option<Fault>| {
            calls.push(Call {
                service: service.clone(),
                action: action.clone(),
                status,
                fault,
                names: names.clone(),
                at,
                took: at.elapsed(),
            })
        };
        if ctl.frozen.load(Ordering::SeqCst) {
            hang(ctl).await;
            return Ok(());
        }
        let guard = InFlight::new(ctl);
        if !config.latency.is_zero() {
            tokio::time::sleep(config.latency).await;
        }
        if let Some((status, code, message)) = refuse_credentials(&req, &service) {
            record(status, None);
            client
                .write_all(&response(
                    status,
                    &service,
                    &error_body(&service, code, message),
                ))
                .await?;
            continue;
        }
        let token = req.param("ClientToken").map(|t| (action.clone(), t));
        if let Some(t) = &token {
            let replay = ctl.tokens.lock().unwrap().get(t).cloned();
            if let Some((status, body)) = replay {
                record(status, None);
                client.write_all(&body).await?;
                continue;
            }
        }

        let n = ctl.counter.fetch_add(1, Ordering::SeqCst);
        let mut fault = None;
        let mut verdict = Verdict::Forward;
        if let Some(f) = &config.faults {
            let r = mix(f.seed ^ mix(n));
            let first = f.first_of_each_action
                && ctl
                    .seen
                    .lock()
                    .unwrap()
                    .insert((service.clone(), action.clone()));
            if first || (r % 10_000) as f64 / 10_000.0 < f.rate {
                let kind = Fault::RANDOM[((r >> 20) % Fault::RANDOM.len() as u64) as usize];
                fault = Some(kind);
                verdict = match kind {
                    Fault::Throttle => Verdict::Answer(0, throttle(&service), Some(kind)),
                    Fault::Status500 => Verdict::Answer(
                        500,
                        error_body(&service, "InternalError", "An internal error has occurred"),
                        Some(kind),
                    ),
                    Fault::Status503 => Verdict::Answer(
                        503,
                        error_body(&service, "Unavailable", "The service is unavailable"),
                        Some(kind),
                    ),
                    Fault::DropBefore => Verdict::Drop(kind),
                    Fault::Latency => {
                        let max = f.max_latency.as_millis().max(5) as u64;
                        let ms = max / 5 + (r >> 40) % (max - max / 5);
                        tokio::time::sleep(Duration::from_millis(ms)).await;
                        Verdict::Forward
                    }
                    _ => Verdict::Forward,
                };
            }
            if matches!(verdict, Verdict::Forward) && service == "ec2" {
                if let Some((code, what, id)) = invisible(ctl, &req) {
                    fault = Some(Fault::NotYetVisible);
                    verdict = Verdict::Answer(
                        400,
                        error_body("ec2", code, &format!("The {what} ID '{id}' does not exist")),
                        fault,
                    );
                }
            }
        }
        let upstream = Upstream {
            addr: config.upstream.expect("an upstream address"),
            account: config.account.clone(),
        };
        let upstream = &upstream;
        if matches!(verdict, Verdict::Forward) && config.strict {
            if let Some((code, message)) =
                rules::check(&req, &action, upstream, ctl, config.hold).await
            {
                fault = Some(Fault::DependencyViolation);
                verdict = Verdict::Answer(400, error_body(&service, code, &message), fault);
            }
        }
        // The first create of its kind to reach the emulator loses its answer
        // (one a fault already answered is not forwarded, so does not count).
        if matches!(verdict, Verdict::Forward)
            && config.faults.as_ref().is_some_and(|f| f.lose_first_create)
            && is_create(&action)
            && ctl
                .lost
                .lock()
                .unwrap()
                .insert((service.clone(), action.clone()))
        {
            fault = Some(Fault::DropAfter);
        }
        match verdict {
            Verdict::Drop(f) => {
                record(0, Some(f));
                return Ok(());
            }
            Verdict::Answer(status, body, f) => {
                let status = if status == 0 {
                    throttle_status(&service)
                } else {
                    status
                };
                record(status, f);
                client.write_all(&response(status, &service, &body)).await?;
                continue;
            }
            Verdict::Forward => {}
        }
        if config.strict {
            rules::before_forward(&req, &action, upstream, ctl, config.hold).await;
        }
        let (status, resp_body, mut resp) = forward(&req, upstream).await?;
        if status < 300 {
            // Before any drop below: a retry with the token replays this
            // answer even when the client never got it.
            if let Some(t) = token {
                ctl.tokens.lock().unwrap().insert(t, (status, resp.clone()));
            }
            if let Some(f) = &config.faults {
                created(ctl, &action, &resp_body, f.invisible_for);
                // A filtered Describe leaves out what is not visible yet (not
                // when the answer is dropped anyway: that read sees nothing).
                if service == "ec2" && fault != Some(Fault::DropAfter) && filtered(&req) {
                    if let Some(body) = hide_filtered(ctl, &action, &resp_body) {
                        resp = with_body(&resp, body.as_bytes());
                        fault = Some(Fault::NotYetVisible);
                    }
                }
            }
        }
        let write = is_write(&action);
        if write {
            let k = ctl.writes.fetch_add(1, Ordering::SeqCst) + 1;
            if ctl.freeze_after.lock().unwrap().is_some_and(|at| k >= at) {
                ctl.frozen.store(true, Ordering::SeqCst);
                record(status, None);
                drop(guard);
                hang(ctl).await;
                return Ok(());
            }
        }
        if fault == Some(Fault::DropAfter) {
            record(status, fault);
            return Ok(());
        }
        record(status, fault);
        client.write_all(&resp).await?;
    }
    Ok(())
}

/// Counts a request in flight until dropped.
struct InFlight<'a>(&'a Control);

impl<'a> InFlight<'a> {
    fn new(ctl: &'a Control) -> Self {
        ctl.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(ctl)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Waits until the freeze is lifted (or the proxy stops).
async fn hang(ctl: &Control) {
    let generation = ctl.generation.load(Ordering::SeqCst);
    while ctl.generation.load(Ordering::SeqCst) == generation {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Remembers the ids a create call returned, to hide them for a while.
fn created(ctl: &Control, action: &str, body: &str, n: u32) {
    let (tag, code, what) = match action {
        "CreateVpc" => ("vpcId", "InvalidVpcID.NotFound", "vpc"),
        "CreateSubnet" => ("subnetId", "InvalidSubnetID.NotFound", "subnet"),
        "CreateSecurityGroup" => ("groupId", "InvalidGroup.NotFound", "security group"),
        "CreateRouteTable" => (
            "routeTableId",
            "InvalidRouteTableID.NotFound",
            "route table",
        ),
        "CreateInternetGateway" => (
            "internetGatewayId",
            "InvalidInternetGatewayID.NotFound",
            "internet gateway",
        ),
        "CreateVpcPeeringConnection" => (
            "vpcPeeringConnectionId",
            "InvalidVpcPeeringConnectionID.NotFound",
            "vpc peering connection",
        ),
        "RunInstances" => ("instanceId", "InvalidInstanceID.NotFound", "instance"),
        "CreateVolume" => ("volumeId", "InvalidVolume.NotFound", "volume"),
        "CreateSnapshot" => ("snapshotId", "InvalidSnapshot.NotFound", "snapshot"),
        _ => return,
    };
    if n == 0 {
        return;
    }
    let ids: Vec<String> = if action == "RunInstances" {
        // <RunInstancesResponse><instancesSet><item><instanceId>, one item
        // per instance (their interfaces and volumes are nested deeper).
        root(body)
            .and_then(|r| r.child(body, "instancesSet"))
            .map(|set| {
                set.items(body)
                    .iter()
                    .filter_map(|i| i.text(body, tag))
                    .filter(|id| !id.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    } else {
        // The first `<tag>`: the created resource's own id (CreateVpc wraps
        // it in <vpc>, CreateVolume puts it at the top; in all of them the
        // ids of other resources come after it, or under other names).
        let open = format!("<{tag}>");
        let Some(start) = body.find(&open).map(|i| i + open.len()) else {
            return;
        };
        let Some(len) = body[start..].find('<') else {
            return;
        };
        vec![body[start..start + len].to_string()]
    };
    let mut hidden = ctl.invisible.lock().unwrap();
    for id in ids {
        hidden.insert(
            id,
            Hidden {
                named: n,
                filtered: n,
                code,
                what,
            },
        );
    }
}

/// A request naming a hidden id (not in a filter: AWS filters just match
/// nothing, see [`hide_filtered`]) gets NotFound and uses up one of the id's
/// invisible requests.
fn invisible(ctl: &Control, req: &Request) -> Option<(&'static str, &'static str, String)> {
    let mut hidden = ctl.invisible.lock().unwrap();
    if hidden.is_empty() {
        return None;
    }
    for (k, v) in req.params() {
        if k.starts_with("Filter.") {
            continue;
        }
        let Some(h) = hidden.get_mut(&v) else {
            continue;
        };
        if h.named == 0 {
            continue;
        }
        h.named -= 1;
        let out = (h.code, h.what, v.clone());
        if h.named == 0 && h.filtered == 0 {
            hidden.remove(&v);
        }
        return Some(out);
    }
    None
}

/// The request carries `Filter.N.*` parameters.
fn filtered(req: &Request) -> bool {
    req.params().iter().any(|(k, _)| k.starts_with("Filter."))
}

/// A filtered EC2 Describe's answer without the `<item>`s of just-created
/// resources that AWS would not list yet, or None when it lists none of
/// them. Each hidden id it leaves out uses up one of the id's filtered reads.
/// Only the resource's own items go: other resources that mention it (a
/// subnet's `<vpcId>`, a volume's attachment) stay as moto answered.
fn hide_filtered(ctl: &Control, action: &str, body: &str) -> Option<String> {
    // The set under the response's root, and its items' id.
    let (set, tag) = match action {
        "DescribeVpcs" => ("vpcSet", "vpcId"),
        "DescribeSubnets" => ("subnetSet", "subnetId"),
        "DescribeSecurityGroups" => ("securityGroupInfo", "groupId"),
        "DescribeRouteTables" => ("routeTableSet", "routeTableId"),
        "DescribeInternetGateways" => ("internetGatewaySet", "internetGatewayId"),
        "DescribeVpcPeeringConnections" => ("vpcPeeringConnectionSet", "vpcPeeringConnectionId"),
        // reservationSet/item/instancesSet/item/instanceId
        "DescribeInstances" => ("reservationSet", "instanceId"),
        "DescribeVolumes" => ("volumeSet", "volumeId"),
        "DescribeSnapshots" => ("snapshotSet", "snapshotId"),
        _ => return None,
    };
    let mut hidden = ctl.invisible.lock().unwrap();
    if !hidden.values().any(|h| h.filtered > 0) {
        return None;
    }
    let is_hidden = |id: &str| -> bool { hidden.get(id).is_some_and(|h| h.filtered > 0) };
    let items = root(body)?.child(body, set)?.items(body);
    // Byte ranges to cut, and the hidden ids they held.
    let mut cut: Vec<Range<usize>> = Vec::new();
    let mut ids: Vec<String> = Vec::new();
    if action == "DescribeInstances" {
        for reservation in &items {
            let Some(instances) = reservation.child(body, "instancesSet") else {
                continue;
            };
            let instances = instances.items(body);
            let mut gone: Vec<Range<usize>> = Vec::new();
            for instance in &instances {
                let Some(id) = instance.text(body, tag) else {
                    continue;
                };
                if is_hidden(id) {
                    ids.push(id.to_string());
                    gone.push(instance.whole.clone());
                }
            }
            if gone.is_empty() {
                continue;
            }
            if gone.len() == instances.len() {
                cut.push(reservation.whole.clone());
            } else {
                cut.extend(gone);
            }
        }
    } else {
        for item in &items {
            let Some(id) = item.text(body, tag) else {
                continue;
            };
            if is_hidden(id) {
                ids.push(id.to_string());
                cut.push(item.whole.clone());
            }
        }
    }
    if cut.is_empty() {
        return None;
    }
    ids.sort();
    ids.dedup();
    for id in &ids {
        if let Some(h) = hidden.get_mut(id) {
            h.filtered = h.filtered.saturating_sub(1);
            if h.named == 0 && h.filtered == 0 {
                hidden.remove(id);
            }
        }
    }
    drop(hidden);
    cut.sort_by_key(|r| r.start);
    let mut out = String::with_capacity(body.len());
    let mut at = 0;
    for r in cut {
        if r.start >= at {
            out.push_str(&body[at..r.start]);
            at = r.end;
        }
    }
    out.push_str(&body[at..]);
    Some(out)
}

/// An element of an XML answer: its name, and byte ranges in the text of the
/// whole element and of its content.
#[derive(Clone, Debug)]
struct Element<'a> {
    name: &'a str,
    whole: Range<usize>,
    content: Range<usize>,
}

impl<'a> Element<'a> {
    /// The elements directly inside this one.
    fn children(&self, xml: &'a str) -> Vec<Element<'a>> {
        elements(xml, self.content.clone())
    }

    /// The first element named `name` directly inside this one.
    fn child(&self, xml: &'a str, name: &str) -> Option<Element<'a>> {
        self.children(xml).into_iter().find(|e| e.name == name)
    }

    /// The `<item>`s directly inside this one (a set's members, not the
    /// items of their own tag sets or rules).
    fn items(&self, xml: &'a str) -> Vec<Element<'a>> {
        self.children(xml)
            .into_iter()
            .filter(|e| e.name == "item")
            .collect()
    }

    /// The trimmed text of the child `name`.
    fn text(&self, xml: &'a str, name: &str) -> Option<&'a str> {
        self.child(xml, name).map(|e| xml[e.content].trim())
    }
}

/// The document's root element.
fn root(xml: &str) -> Option<Element<'_>> {
    elements(xml, 0..xml.len()).into_iter().next()
}

/// The elements directly inside `xml[within]`, found by counting open and
/// close tags, so nested `<item>`s stay inside their parent. Enough XML for
/// what moto answers: declarations, comments and CDATA are stepped over,
/// `>` inside quoted attribute values is no tag end; names are not checked
/// against their close tags.
fn elements(xml: &str, within: Range<usize>) -> Vec<Element<'_>> {
    let b = xml.as_bytes();
    let end = within.end.min(b.len());
    let mut out = Vec::new();
    let mut depth = 0usize;
    // The open element at depth 0: name, start, content start.
    let mut open: Option<(&str, usize, usize)> = None;
    let mut i = within.start;
    while i < end {
        if b[i] != b'<' {
            i += 1;
            continue;
        }
        let rest = &xml[i..end];
        let special = ["<!--", "<![CDATA[", "<?", "<!"]
            .iter()
            .zip(["-->", "]]>", "?>", ">"])
            .find(|(start, _)| rest.starts_with(**start));
        if let Some((_, close)) = special {
            let Some(j) = rest.find(close) else { break };
            i += j + close.len();
            continue;
        }
        let Some(next) = tag_end(b, i + 1, end) else {
            break;
        };
        // Between `<` and `>`.
        let tag = &xml[i + 1..next - 1];
        if tag.starts_with('/') {
            depth = depth.saturating_sub(1);
            if depth == 0 {
                if let Some((name, start, content)) = open.take() {
                    out.push(Element {
                        name,
                        whole: start..next,
                        content: content..i,
                    });
                }
            }
        } else if tag.ends_with('/') {
            if depth == 0 {
                out.push(Element {
                    name: tag_name(tag),
                    whole: i..next,
                    content: next..next,
                });
            }
        } else {
            if depth == 0 {
                open = Some((tag_name(tag), i, next));
            }
            depth += 1;
        }
        i = next;
    }
    out
}

/// Just past the `>` that closes the tag whose name starts at `from`.
fn tag_end(b: &[u8], from: usize, end: usize) -> Option<usize> {
    let mut quote = None;
    for (j, &c) in b[from..end].iter().enumerate() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == b'"' || c == b'\'' => quote = Some(c),
            None if c == b'>' => return Some(from + j + 1),
            None => {}
        }
    }
    None
}

/// The name in a tag's text (`vpcSet/`, `Response xmlns="…"` → the name).
fn tag_name(tag: &str) -> &str {
    tag.split(|c: char| c.is_ascii_whitespace() || c == '/')
        .next()
        .unwrap_or("")
}

/// The same response with another body (and its Content-Length).
fn with_body(resp: &[u8], body: &[u8]) -> Vec<u8> {
    let end = find(resp, b"\r\n\r\n").unwrap_or(resp.len());
    respond(&String::from_utf8_lossy(&resp[..end]), body)
}

/// Creates, whose answer `Faults::lose_first_create` loses.
fn is_create(action: &str) -> bool {
    (is_write(action) && action.starts_with("Create"))
        || matches!(
            action,
            "RunInstances"
                | "PutParameter"
                | "AllocateAddress"
                | "RegisterInstancesWithLoadBalancer"
                | "AttachVolume"
                | "AuthorizeSecurityGroupIngress"
        )
}

fn throttle_status(service: &str) -> u16 {
    // EC2 throttles with 503; the awsQuery and JSON services with 400.
    if service == "ec2" {
        503
    } else {
        400
    }
}

fn throttle(service: &str) -> Vec<u8> {
    match service {
        "ec2" => error_body("ec2", "RequestLimitExceeded", "Request limit exceeded."),
        "ssm" => error_body("ssm", "ThrottlingException", "Rate exceeded"),
        s => error_body(s, "Throttling", "Rate exceeded"),
    }
}

/// The one access key AWS knows here: the harness's (`Sandbox`).
pub const ACCESS_KEY: &str = "testing";

/// AWS's regions: a request signed for another is refused, as AWS refuses
/// a credential scope that names no valid region.
const REGIONS: &[&str] = &[
    "af-south-1",
    "ap-east-1",
    "ap-east-2",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-south-1",
    "ap-south-2",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-southeast-5",
    "ap-southeast-7",
    "ca-central-1",
    "ca-west-1",
    "eu-central-1",
    "eu-central-2",
    "eu-north-1",
    "eu-south-1",
    "eu-south-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "il-central-1",
    "me-central-1",
    "me-south-1",
    "mx-central-1",
    "sa-east-1",
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
];

/// AWS's answer to a request signed with an access key it does not know,
/// or for a region that does not exist, in each service's words: EC2's
/// `AuthFailure`, SSM's `UnrecognizedClientException`, and the query
/// services' `InvalidClientTokenId` / `SignatureDoesNotMatch`.
fn refuse_credentials(req: &Request, service: &str) -> Option<(u16, &'static str, &'static str)> {
    let scope = req
        .header("authorization")
        .and_then(|a| a.split("Credential=").nth(1))
        .and_then(|c| c.split([',', ' ']).next())?;
    let mut parts = scope.split('/');
    let (key, _date, region) = (parts.next()?, parts.next()?, parts.next()?);
    if key != ACCESS_KEY {
        return Some(match service {
            "ec2" => (
                401,
                "AuthFailure",
                "AWS was not able to validate the provided access credentials",
            ),
            "ssm" => (
                400,
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
            ),
            _ => (
                403,
                "InvalidClientTokenId",
                "The security token included in the request is invalid.",
            ),
        });
    }
    if !REGIONS.contains(&region) {
        return Some(match service {
            "ec2" => (
                401,
                "AuthFailure",
                "Credential should be scoped to a valid region.",
            ),
            "ssm" => (
                400,
                "InvalidSignatureException",
                "Credential should be scoped to a valid region.",
            ),
            _ => (
                403,
                "SignatureDoesNotMatch",
                "Credential should be scoped to a valid region.",
            ),
        });
    }
    None
}

/// An error body in the shape each protocol uses.
pub(crate) fn error_body(service: &str, code: &str, message: &str) -> Vec<u8> {
    let message = message
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    match service {
        "ec2" => format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors><RequestID>00000000-0000-0000-0000-000000000000</RequestID></Response>"
        ),
        "ssm" => {
            let code = match code {
                "InternalError" => "InternalServerError",
                "Unavailable" => "ServiceUnavailable",
                c => c,
            };
            serde_json::json!({"__type": code, "message": message}).to_string()
        }
        _ => {
            let kind = if matches!(
                code,
                "Throttling"
                    | "DependencyViolation"
                    | "InvalidClientTokenId"
                    | "SignatureDoesNotMatch"
            ) {
                "Sender"
            } else {
                "Receiver"
            };
            format!(
                "<ErrorResponse><Error><Type>{kind}</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>00000000-0000-0000-0000-000000000000</RequestId></ErrorResponse>"
            )
        }
    }
    .into_bytes()
}

fn response(status: u16, service: &str, body: &[u8]) -> Vec<u8> {
    let content_type = if service == "ssm" {
        "application/x-amz-json-1.1"
    } else {
        "text/xml"
    };
    let reason = match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Error",
    };
    respond(
        &format!("HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}"),
        body,
    )
}

/// Where requests go: the emulator, and the account in it.
#[derive(Clone, Debug)]
pub(crate) struct Upstream {
    pub addr: SocketAddr,
    pub account: Option<String>,
}

/// Sends the request upstream on a fresh connection. Returns the status, the
/// body as text, and the response rewritten for a kept-alive client.
async fn forward(req: &Request, upstream: &Upstream) -> std::io::Result<(u16, String, Vec<u8>)> {
    let mut up = TcpStream::connect(upstream.addr).await?;
    let account = upstream
        .account
        .as_ref()
        .map(|a| format!("x-moto-account-id: {a}"));
    let mut head: Vec<&str> = req
        .head
        .lines()
        .filter(|l| {
            let l = l.to_ascii_lowercase();
            !l.starts_with("connection:") && !l.starts_with("x-moto-account-id:")
        })
        .collect();
    head.extend(account.as_deref());
    head.push("Connection: close");
    let mut out = head.join("\r\n").into_bytes();
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(&req.body);
    up.write_all(&out).await?;
    let mut resp = Vec::new();
    up.read_to_end(&mut resp).await?;
    let end = find(&resp, b"\r\n\r\n").unwrap_or(resp.len());
    let head = String::from_utf8_lossy(&resp[..end]).to_string();
    let body = resp.get(end + 4..).unwrap_or_default().to_vec();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(502);
    Ok((
        status,
        String::from_utf8_lossy(&body).to_string(),
        respond(&head, &body),
    ))
}

/// The proxy's own reads of the emulator's state: a query-protocol call,
/// unsigned (moto does not check signatures), answered as XML text.
pub(crate) async fn query(
    upstream: &Upstream,
    service: &str,
    version: &str,
    params: &[(&str, &str)],
) -> std::io::Result<String> {
    let body = {
        let mut form = form_urlencoded::Serializer::new(String::new());
        for (k, v) in params {
            form.append_pair(k, v);
        }
        form.append_pair("Version", version);
        form.finish()
    };
    let head = format!(
        "POST / HTTP/1.1\r\nHost: {upstream}\r\nContent-Type: application/x-www-form-urlencoded; charset=utf-8\r\nAuthorization: AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/{service}/aws4_request, SignedHeaders=host, Signature=0\r\nX-Amz-Date: 20260101T000000Z\r\nContent-Length: {}",
        body.len(),
        upstream = upstream.addr
    );
    let req = Request {
        head,
        body: body.into_bytes(),
    };
    let (status, text, _) = forward(&req, upstream).await?;
    if status >= 300 {
        return Err(std::io::Error::other(format!(
            "{service} query: {status}: {text}"
        )));
    }
    Ok(text)
}

/// A response with an exact Content-Length and no `Connection: close`.
pub fn respond(head: &str, body: &[u8]) -> Vec<u8> {
    let mut lines: Vec<String> = head
        .lines()
        .filter(|l| {
            let l = l.to_ascii_lowercase();
            !l.starts_with("connection:")
                && !l.starts_with("content-length:")
                && !l.starts_with("transfer-encoding:")
        })
        .map(str::to_string)
        .collect();
    lines.push(format!("Content-Length: {}", body.len()));
    let mut out = lines.join("\r\n").into_bytes();
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(body);
    out
}

/// When a held record stops holding.
pub(crate) fn until(hold: Duration) -> Instant {
    Instant::now() + hold
}
