//! One thin function per subcommand, wiring config, observe, plan, apply and ui.

mod diff_env;
mod down;
mod init;
mod kubeconfig;
pub(crate) mod outputs;
mod pki;
mod plan;
mod rollout;
pub(crate) mod status;
mod unlock;
mod up;
mod wait;

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::time::SystemTime;

use anyhow::{Context as _, Result};
use sha2::{Digest, Sha256};

use crate::cli::{Cli, Command, Phase};
use crate::config::{self, Config, Provider};
use crate::desired::{self, Facts};
use crate::error::UserError;
use crate::model::{Actual, Desired, Owner};
use crate::plan::{self as planner, Plan};
use crate::providers::aws::Aws;
use crate::providers::k8s::{Access, K8s};
use crate::providers::lock::{LockError, LockInfo};
use crate::ui::{Output, Printer};
use std::collections::BTreeMap;

pub struct Ctx {
    pub config_path: PathBuf,
    pub env: Option<String>,
    pub printer: Printer,
    pub phase: Phase,
    pub api_server: Option<String>,
}

pub async fn run(cli: Cli) -> Result<u8> {
    // Before anything waits: a bad value is a usage error, nothing touched.
    crate::timing::Timing::from_env()?.install();
    let color =
        !cli.no_color && std::env::var_os("NO_COLOR").is_none() && std::io::stdout().is_terminal();
    let ctx = Ctx {
        config_path: cli.config,
        env: cli.env,
        phase: cli.phase,
        api_server: cli.api_server,
        printer: Printer {
            output: cli.output,
            quiet: cli.quiet,
            verbose: cli.verbose,
            color,
        },
    };
    let result = match cli.command {
        Command::Plan(a) => plan::run(&ctx, a).await,
        Command::Up(a) => up::run(&ctx, a).await,
        Command::Down(a) => down::run(&ctx, a).await,
        Command::Rollout(a) => rollout::run(&ctx, *a).await,
        Command::Status => status::run(&ctx).await,
        Command::DiffEnv(a) => diff_env::run(&ctx, a).await,
        Command::Unlock(a) => unlock::run(&ctx, a).await,
        Command::Kubeconfig(a) => kubeconfig::run(&ctx, a).await,
        Command::Pki(c) => pki::run(&ctx, c).await,
        Command::Init(a) => init::run(&ctx, a).await,
        Command::Completions(a) => {
            ctx.printer
                .data(&String::from_utf8_lossy(&crate::cli::completions(a.shell)));
            Ok(crate::error::EXIT_OK)
        }
        Command::Man(a) => {
            match a.dir {
                Some(dir) => {
                    std::fs::create_dir_all(&dir)
                        .and_then(|()| crate::cli::man_pages(&dir))
                        .with_context(|| format!("writing man pages to {}", dir.display()))?;
                    ctx.printer
                        .info(&format!("Wrote the man pages to {}.", dir.display()));
                }
                None => ctx.printer.data(&String::from_utf8_lossy(
                    &crate::cli::man_page().context("rendering the man page")?,
                )),
            }
            Ok(crate::error::EXIT_OK)
        }
    };
    // Credentials and region problems read the same whichever call met
    // them first: said once here, with the config they came from.
    result.map_err(|e| crate::error::explain(e, ctx.config().ok().as_ref()))
}

impl Ctx {
    /// Loads and validates the config: before any network call.
    pub fn config(&self) -> Result<Config> {
        let env = self.env.as_deref().ok_or_else(|| {
            let known = config::env_names(&self.config_path);
            UserError::usage(
                "no env given",
                if known.is_empty() {
                    "pass --env NAME or set SCOPECTL_ENV".to_string()
                } else {
                    format!(
                        "pass --env NAME or set SCOPECTL_ENV; defined envs: {}",
                        known.join(", ")
                    )
                },
            )
        })?;
        Ok(config::load(&self.config_path, env)?)
    }
}

pub fn owner(config: &Config) -> Owner {
    Owner {
        project: config.project.clone(),
        env: config.env.clone(),
    }
}

/// Where an env lives: on AWS (its resources, its state store, its
/// cluster reached through them), or for a local env only in a cluster
/// reached through a kubeconfig context, with no AWS call at all.
pub enum Backend {
    Aws(Aws),
    Local(K8s),
}

impl Backend {
    /// Connects as the env's provider says; nothing is sent yet.
    pub async fn for_env(config: &Config) -> Result<Backend> {
        Ok(match config.provider {
            Provider::Aws => Backend::Aws(connect(config).await),
            Provider::Local => Backend::Local(local_cluster(config).await?),
        })
    }

    pub fn aws(&self) -> Option<&Aws> {
        match self {
            Backend::Aws(aws) => Some(aws),
            Backend::Local(_) => None,
        }
    }

    /// Takes the env lock: an SSM parameter, or a Lease in a local cluster.
    pub async fn lock(&self, info: &LockInfo) -> Result<(), LockError> {
        match self {
            Backend::Aws(aws) => aws.lock(info).await,
            Backend::Local(k8s) => k8s.lock(info).await,
        }
    }

    pub async fn unlock(&self, id: &str) -> Result<(), LockError> {
        match self {
            Backend::Aws(aws) => aws.unlock(id).await,
            Backend::Local(k8s) => k8s.unlock(id).await,
        }
    }

    pub async fn read_lock(&self) -> Result<Option<LockInfo>, LockError> {
        match self {
            Backend::Aws(aws) => aws.read_lock().await,
            Backend::Local(k8s) => k8s.read_lock().await,
        }
    }
}

/// A local env's cluster: the kubeconfig context its config names.
pub async fn local_cluster(config: &Config) -> Result<K8s> {
    let context = config.kube_context.as_deref().unwrap_or_default();
    Ok(K8s::from_kubeconfig(config.kubeconfig.as_deref(), context, owner(config)).await?)
}

/// A local cluster's client, once it answers: observing it found it down.
fn local_not_answering(config: &Config, url: &str) -> anyhow::Error {
    let context = config.kube_context.as_deref().unwrap_or_default();
    UserError::failed(
        format!("the cluster of kube context `{context}` ({url}) does not answer"),
        format!(
            "start it (kind: `docker start {}-control-plane`; or create it: `kind create cluster --name {}`), then check `kubectl --context {context} cluster-info`",
            context.strip_prefix("kind-").unwrap_or(context),
            context.strip_prefix("kind-").unwrap_or(context),
        ),
    )
    .into()
}

pub async fn connect(config: &Config) -> Aws {
    Aws::connect(
        &config.aws.region,
        config.aws.profile.as_deref(),
        owner(config),
    )
    .await
}

/// Refuses an env whose cluster is not scopectl's (`provider = "local"`):
/// it has no PKI in a state store.
pub fn require_own_pki(config: &Config, hint: &str) -> Result<()> {
    if config.provider == Provider::Local {
        return Err(UserError::usage(
            format!(
                "env {} uses provider \"local\": it has no PKI of scopectl's",
                config.env
            ),
            hint,
        )
        .into());
    }
    Ok(())
}

/// One observation of reality and the plan it leads to.
pub struct Observation {
    pub facts: Facts,
    pub actual: Actual,
    pub desired: Desired,
    pub plan: Plan,
    /// The cluster's client, when its API answered.
    pub k8s: Option<K8s>,
}

/// A notice when the env's Kubernetes minor is past upstream support
/// (today's date is read here, not in the pure planner).
fn support_notice(config: &Config) -> Option<String> {
    let minor = &config.cluster.kubernetes_version;
    let pins = crate::render::addons::kubernetes_pins(minor).ok()?;
    let today = time::OffsetDateTime::now_utc().date().to_string();
    (pins.end_of_support < today).then(|| {
        format!(
            "Kubernetes {minor} is out of upstream support since {}: no more security fixes; move to {} (one minor at a time)",
            pins.end_of_support,
            config::DEFAULT_KUBERNETES_VERSION
        )
    })
}

/// What a command asks of the plan beyond the config.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Asked {
    /// What `pki rotate` asks of the PKI.
    pub rotation: desired::Rotation,
    /// Move running instances to the newest image.
    pub upgrade_image: bool,
    /// Which layers to plan.
    pub phase: Phase,
    /// `--image NAME=TAG`: first deployments' tags.
    pub images: BTreeMap<String, String>,
    /// `--api-server`: where the API is reached.
    pub api_server: Option<String>,
    /// Read the services' secret values (only `up`, which applies them):
    /// a plan compares their SSM versions and never decrypts one.
    pub read_secrets: bool,
}

/// The API's name (the certificate's) and the URL to reach it at.
fn api_address(
    config: &Config,
    actual: &Actual,
    api_server: Option<&str>,
) -> Option<(String, String)> {
    let host = match &config.cluster.api_endpoint {
        Some(h) => h.clone(),
        None => {
            let name = desired::load_balancer_name(&owner(config).cluster_name(), "api");
            actual
                .resources
                .values()
                .filter(|o| o.id.kind() == Some(crate::model::Kind::LoadBalancer))
                .find(|o| {
                    o.props.get("name").and_then(crate::model::Value::as_str) == Some(name.as_str())
                        || o.physical_id == name
                })?
                .props
                .get("dns_name")?
                .as_str()?
                .to_string()
        }
    };
    let url = api_server
        .map(str::to_string)
        .unwrap_or_else(|| format!("https://{host}:443"));
    Some((host, url))
}

/// The state store's names of the cluster CA and the admin credentials.
fn admin_names(aws: &Aws) -> [String; 2] {
    let prefix = aws.pki_prefix();
    [format!("{prefix}ca.crt"), format!("{prefix}admin")]
}

/// When the admin certificate among the state store's `values` expired
/// (RFC 3339), if it has.
fn admin_expired(aws: &Aws, values: &BTreeMap<String, String>) -> Option<String> {
    let [_, admin] = admin_names(aws);
    let pem = crate::pki::pem_blocks(values.get(&admin)?, "CERTIFICATE")
        .into_iter()
        .next()?;
    let info = crate::pki::read_certificate(&pem).ok()?;
    let until = time::OffsetDateTime::parse(
        &info.not_after,
        &time::format_description::well_known::Rfc3339,
    )
    .ok()?;
    (until <= time::OffsetDateTime::now_utc()).then_some(info.not_after)
}

/// Reads the cluster CA and the admin credentials from the state store (the
/// names that exist; none before the PKI does).
/// The join token's public facts, while it is valid (the cluster phase
/// registers it; an expired one is left to the token cleaner).
/// (An observation of the AWS phase lists the token already: then it is
/// taken from there, not read twice.)
async fn join_token(aws: &Aws) -> Result<Option<crate::desired::JoinTokenFacts>> {
    let name = aws.pki_parameter(&join_token_id());
    let found = crate::providers::aws::pki_store::observe(aws, Some(&name))
        .await
        .context("reading the join token's facts from the state store")?;
    Ok(found.first().and_then(token_facts))
}

fn join_token_id() -> crate::model::ResourceId {
    crate::model::ResourceId::new(crate::model::Kind::Token, crate::pki::BOOTSTRAP_TOKEN)
}

/// A stored token's public facts, unless it has expired.
fn token_facts(o: &crate::model::Observed) -> Option<crate::desired::JoinTokenFacts> {
    let get = |k: &str| o.props.get(k).and_then(crate::model::Value::as_str);
    if get("state") == Some("expired") {
        return None;
    }
    Some(crate::desired::JoinTokenFacts {
        parameter: o.physical_id.clone(),
        id: get("token_id")?.to_string(),
        expires: get("expires")?.to_string(),
    })
}

async fn read_admin(aws: &Aws) -> Result<BTreeMap<String, String>> {
    crate::providers::aws::pki_store::values(aws, &admin_names(aws))
        .await
        .context("reading the admin certificate from the state store")
}

/// The admin client for the env's cluster, from the state store; None when
/// the PKI or the API's address does not exist yet (a first `up`).
pub async fn cluster_client(
    aws: &Aws,
    config: &Config,
    actual: &Actual,
    api_server: Option<&str>,
) -> Result<Option<(K8s, String)>> {
    if api_address(config, actual, api_server).is_none() {
        return Ok(None);
    }
    let values = read_admin(aws).await?;
    client_with(aws, config, actual, api_server, &values).await
}

/// [`cluster_client`] with the state store's values already read
/// ([`read_admin`]).
async fn client_with(
    aws: &Aws,
    config: &Config,
    actual: &Actual,
    api_server: Option<&str>,
    values: &BTreeMap<String, String>,
) -> Result<Option<(K8s, String)>> {
    let Some((host, url)) = api_address(config, actual, api_server) else {
        return Ok(None);
    };
    let [ca, admin] = admin_names(aws);
    // Found here rather than as the API's 401: the date it expired, and
    // nothing sent with a certificate the API must refuse.
    if let Some(expired) = admin_expired(aws, values) {
        let env = &config.env;
        return Err(anyhow::anyhow!(
            "{admin} in the state store holds a certificate valid until {expired}; the API refuses it"
        )
        .context(UserError::failed(
            format!(
                "the admin certificate of {}/{env} expired on {expired}",
                config.project
            ),
            format!(
                "reissue the env's leaf certificates with `scopectl pki rotate --env {env}` (`scopectl pki status --env {env}` lists each one's expiry)"
            ),
        )));
    }
    let (Some(ca_pem), Some(admin_value)) = (values.get(&ca), values.get(&admin)) else {
        return Ok(None);
    };
    let cert = crate::pki::pem_blocks(admin_value, "CERTIFICATE");
    let key = crate::pki::pem_blocks(admin_value, "PRIVATE KEY");
    let (Some(cert), Some(key)) = (cert.first(), key.first()) else {
        return Ok(None);
    };
    let access = Access {
        url: url.clone(),
        server_name: api_server.map(|_| host),
        ca_pem: ca_pem.clone(),
        cert_pem: cert.to_string(),
        key_pem: key.to_string(),
    };
    let k8s = K8s::connect(&access, owner(config)).await?;
    Ok(Some((k8s, url)))
}

/// Observes and plans.
pub async fn observe_and_plan_with(
    backend: &Backend,
    config: &Config,
    asked: &Asked,
) -> Result<Observation> {
    let aws = backend.aws();
    // The cluster phase's reads from the state store (the services' secrets,
    // the admin credentials) need nothing observed: they go at once with
    // the observation rather than one round trip after it.
    let cluster = match (aws, config.provider) {
        (Some(aws), Provider::Aws) if asked.phase.cluster() => Some(aws),
        _ => None,
    };
    let token_param = aws.map(|a| a.pki_parameter(&join_token_id()));
    let params: Vec<String> = config
        .services
        .values()
        .flat_map(|s| s.secrets.values().cloned())
        .chain(token_param.clone().filter(|_| cluster.is_some()))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let stored = async {
        let Some(aws) = cluster else {
            return Ok((BTreeMap::new(), BTreeMap::new(), BTreeMap::new(), None));
        };
        futures::try_join!(
            async {
                if params.is_empty() || !asked.read_secrets {
                    return Ok(BTreeMap::new());
                }
                crate::providers::aws::pki_store::values(aws, &params)
                    .await
                    .context("reading the services' secrets from SSM")
            },
            async {
                if params.is_empty() {
                    return Ok(BTreeMap::new());
                }
                crate::providers::aws::pki_store::versions(aws, &params)
                    .await
                    .context("reading the services' secrets' versions from SSM")
            },
            read_admin(aws),
            async {
                if asked.phase.aws() {
                    return Ok(None);
                }
                join_token(aws).await
            },
        )
    };
    let observed = async {
        match (aws, config.provider) {
            (Some(aws), Provider::Aws) => {
                let peered = config.network.placement == config::Placement::Peered;
                let observing = async {
                    if asked.phase.aws() {
                        return aws.observe().await;
                    }
                    // Only the cluster's objects are planned (AWS resources
                    // are left out below): of AWS, only the load balancers,
                    // for the API's address.
                    let mut actual = Actual::default();
                    for o in aws.load_balancers().await? {
                        actual.insert(o);
                    }
                    Ok(actual)
                };
                futures::try_join!(
                    crate::providers::aws::facts::gather(
                        aws,
                        &config.database.rds_instance,
                        peered,
                        match &config.cluster.image_id {
                            Some(id) => crate::providers::aws::facts::ImageQuery::Pinned(id),
                            None => crate::providers::aws::facts::ImageQuery::Newest {
                                owner: &config.cluster.image_owner,
                                pattern: &config.cluster.image_name,
                            },
                        },
                    ),
                    observing,
                )
                .context("observing AWS")
            }
            _ => Ok((Facts::default(), Actual::default())),
        }
    };
    let ((mut facts, mut actual), (mut secret_values, versions, admin, token)) =
        futures::try_join!(observed, stored)?;
    facts.join_token = match (cluster, asked.phase.aws()) {
        (Some(_), true) => actual.resources.get(&join_token_id()).and_then(token_facts),
        _ => token,
    };
    // What a plan compares secrets by: an SSM parameter's version (never
    // its value).
    facts.secrets = versions;
    if let (Backend::Local(_), true) = (backend, asked.phase.cluster()) {
        // A local env's secrets come from a local source, never SSM: they
        // are read anyway, and their digests stand for versions.
        secret_values = crate::providers::local::secrets(config)?;
        for (param, value) in &secret_values {
            facts.secrets.insert(
                param.clone(),
                crate::model::k8s::value_digest(value.as_bytes()),
            );
        }
    }
    let mut k8s = None;
    let mut notices = Vec::new();
    if let Some(aws) = cluster {
        // An expired admin certificate cannot observe the cluster; a plan
        // of the AWS phase renews it (a due leaf), and `up` observes the
        // cluster with the new one once that phase is applied.
        let expired = admin_expired(aws, &admin).filter(|_| asked.phase.aws());
        let client = match &expired {
            Some(when) => {
                notices.push(format!(
                    "the admin certificate expired on {when}: the cluster is observed once it is renewed"
                ));
                None
            }
            None => client_with(aws, config, &actual, asked.api_server.as_deref(), &admin).await?,
        };
        if let Some((client, _url)) = client {
            // Not answering yet (a first `up`, masters booting) is not
            // an error: the cluster's objects are planned as creates.
            if let Some(seen) = client.observe().await.context("observing the cluster")? {
                k8s = Some((client, seen));
            }
        }
    }
    if let (Backend::Local(client), true) = (backend, asked.phase.cluster()) {
        let Some(seen) = client.observe().await.context("observing the cluster")? else {
            return Err(local_not_answering(config, client.url()));
        };
        k8s = Some((client.clone(), seen));
    }
    let k8s = k8s.map(|(client, seen)| {
        facts.tags = seen.tags;
        for o in seen.objects {
            actual.insert(o);
        }
        actual.cluster = Some(seen.state);
        client
    });
    let on_aws = config.provider == Provider::Aws;
    let mut desired = if asked.phase.aws() && on_aws {
        desired::desired(config, &facts)?
    } else {
        Desired::default()
    };
    if asked.phase.aws() && on_aws {
        desired::settle(&mut desired, &actual, asked.rotation);
        notices.extend(desired::keep_images(
            &mut desired,
            &actual,
            &facts,
            config.cluster.image_id.is_some(),
            asked.upgrade_image,
        ));
    }
    if asked.phase.cluster() {
        notices.extend(desired::cluster(
            config,
            &facts,
            &asked.images,
            &mut desired,
        )?);
    }
    if !asked.phase.aws() {
        // Only the cluster's objects are planned: AWS resources observed
        // stay out of the plan (they are not desired here, not going).
        actual
            .resources
            .retain(|id, _| id.kind().is_some_and(|k| k.is_k8s()));
        actual.duplicates.clear();
    }
    let fp = planner::fingerprint(&facts, &actual);
    let mut plan = planner::plan(&config.project, &config.env, &desired, &actual, fp.clone())?;
    // The join token depends on the plan: a launch needs a usable one.
    let launching = plan.changes.iter().any(|c| {
        c.address.kind() == Some(crate::model::Kind::Instance)
            && matches!(c.action, planner::Action::Create | planner::Action::Replace)
    });
    // `pki rotate` (not each stage of `--ca`, which is a plan of its own).
    let rotate = asked.rotation.leaves;
    if asked.phase.aws() && on_aws && desired::join_token(&mut desired, &actual, launching, rotate)
    {
        plan = planner::plan(&config.project, &config.env, &desired, &actual, fp)?;
    }
    plan.notices.extend(notices);
    if config.provider == Provider::Aws {
        plan.notices.extend(support_notice(config));
    }
    plan.options.upgrade_image = asked.upgrade_image;
    plan.options.phase = asked.phase;
    plan.options.images = asked.images.clone();
    Ok(Observation {
        facts,
        actual,
        desired,
        plan,
        k8s: k8s.map(|c| c.with_secrets(secret_values)),
    })
}

/// Asks on the terminal; refuses when there is none (CI must pass --yes).
pub fn confirm(question: &str, expected: &str, flag_hint: &str) -> Result<()> {
    if !std::io::stdin().is_terminal() {
        return Err(UserError::usage(
            "refusing to continue without confirmation: standard input is not a terminal",
            format!("pass {flag_hint} to run non-interactively"),
        )
        .into());
    }
    eprint!("{question} Type `{expected}` to continue: ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    if line.trim() != expected {
        return Err(UserError::failed(
            "cancelled; nothing was changed",
            "run the command again to retry",
        )
        .into());
    }
    Ok(())
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown-host".into())
}

pub fn lock_info(command: &str) -> LockInfo {
    let now = SystemTime::now();
    let nanos = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let host = hostname();
    let id = format!(
        "{:x}",
        Sha256::digest(format!("{host}:{}:{nanos}", std::process::id()))
    );
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .unwrap_or_else(|_| "unknown".into());
    let pid = std::process::id();
    LockInfo {
        id: id[..16].to_string(),
        holder: format!("{user}@{host} (pid {pid})"),
        host,
        pid,
        command: command.into(),
        started: humantime::format_rfc3339_seconds(now).to_string(),
        boot_id: Procfs.boot_id(),
        pid_namespace: Procfs.pid_namespace(),
        start_time: Procfs.start_time(pid),
    }
}

/// Takes the env lock. A lock left by a dead process on this same machine is
/// stale beyond doubt, and is taken over with a warning.
pub async fn acquire(backend: &Backend, info: &LockInfo, printer: &Printer) -> Result<()> {
    // Holding the lock, a command stops cleanly on a signal and lets it go.
    crate::cancel::cooperate();
    match backend.lock(info).await {
        Err(LockError::Held(held)) if holder_is_gone(&held, info, &Procfs) => {
            printer.info(&format!(
                "warning: breaking a stale lock {} left by {} (process {} is gone)",
                held.id, held.holder, held.pid
            ));
            backend.unlock(&held.id).await?;
            backend.lock(info).await?;
            Ok(())
        }
        other => Ok(other?),
    }
}

/// What this machine says about its processes.
pub trait Processes {
    fn boot_id(&self) -> Option<String>;
    fn pid_namespace(&self) -> Option<String>;
    /// When `pid` started (clock ticks since boot), or None if no such process.
    fn start_time(&self, pid: u32) -> Option<u64>;
}

/// Linux's /proc.
pub struct Procfs;

impl Processes for Procfs {
    fn boot_id(&self) -> Option<String> {
        let id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
        Some(id.trim().to_string()).filter(|s| !s.is_empty())
    }

    fn pid_namespace(&self) -> Option<String> {
        let link = std::fs::read_link("/proc/self/ns/pid").ok()?;
        Some(link.to_string_lossy().into_owned())
    }

    fn start_time(&self, pid: u32) -> Option<u64> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // Field 22; the command name (field 2) may hold spaces and parentheses.
        let after = &stat[stat.rfind(')')? + 1..];
        after.split_whitespace().nth(19)?.parse().ok()
    }
}

/// A lock's holder is gone beyond doubt only when it ran on this machine
/// (same host name and kernel boot), in this pid namespace (a container with
/// the same host name sees other pids), and its pid is free or now belongs to
/// a process that started later. Anything unknown counts as alive: a live
/// lock is never broken.
pub fn holder_is_gone(held: &LockInfo, me: &LockInfo, procs: &impl Processes) -> bool {
    let same = |a: &Option<String>, b: &Option<String>| a.is_some() && a == b;
    if held.host != me.host
        || held.pid == me.pid
        || !same(&held.boot_id, &me.boot_id)
        || !same(&held.pid_namespace, &me.pid_namespace)
    {
        return false;
    }
    let Some(started) = held.start_time else {
        return false;
    };
    match procs.start_time(held.pid) {
        None => true,
        Some(now) => now != started,
    }
}

/// `name  dns-name` lines for the env's load balancers, from an observation.
pub fn endpoints<'a>(observed: impl IntoIterator<Item = &'a crate::model::Observed>) -> String {
    let mut out = String::new();
    for o in observed {
        if o.id.kind() != Some(crate::model::Kind::LoadBalancer) {
            continue;
        }
        let dns = o
            .props
            .get("dns_name")
            .and_then(crate::model::Value::as_str)
            .unwrap_or("(no DNS name yet)");
        out.push_str(&format!("  {:<20} {dns}\n", o.id.name()));
    }
    out
}

/// How to reach a local env's exposed services (`expose = "elb"` is a
/// NodePort there: no load balancer on a laptop); empty for AWS envs.
pub fn local_access(config: &Config) -> String {
    if config.provider != Provider::Local {
        return String::new();
    }
    let context = config.kube_context.as_deref().unwrap_or_default();
    let mut out = String::new();
    for (name, s) in &config.services {
        if s.expose != config::Expose::Elb {
            continue;
        }
        if out.is_empty() {
            out.push_str("Exposed services (NodePorts of the local cluster):\n");
        }
        out.push_str(&format!(
            "  {name:<20} node port {}; from this machine: kubectl --context {context} -n {} port-forward svc/{name} {}:{}\n",
            s.node_port.map(|p| p.to_string()).unwrap_or_else(|| "(assigned)".into()),
            config.project,
            s.port,
            s.port
        ));
    }
    out.trim_end().to_string()
}

pub fn emit_plan(printer: &Printer, plan: &Plan) {
    match printer.output {
        Output::Json => printer.json(plan),
        Output::Human => printer.data(&crate::ui::render_plan(plan, printer.color)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake(Option<u64>);

    impl Processes for Fake {
        fn boot_id(&self) -> Option<String> {
            Some("boot-1".into())
        }
        fn pid_namespace(&self) -> Option<String> {
            Some("pid:[1]".into())
        }
        fn start_time(&self, _pid: u32) -> Option<u64> {
            self.0
        }
    }

    fn lock(pid: u32, boot: &str, ns: &str, start: Option<u64>) -> LockInfo {
        LockInfo {
            id: format!("id-{pid}"),
            holder: "me".into(),
            host: "laptop".into(),
            pid,
            command: "up".into(),
            started: "2026-11-26T00:00:00Z".into(),
            boot_id: Some(boot.into()),
            pid_namespace: Some(ns.into()),
            start_time: start,
        }
    }

    #[test]
    fn only_a_holder_gone_from_this_machine_boot_and_namespace_is_stale() {
        let me = lock(2, "boot-1", "pid:[1]", Some(500));
        let dead = lock(1, "boot-1", "pid:[1]", Some(100));
        assert!(holder_is_gone(&dead, &me, &Fake(None)), "pid free");
        assert!(holder_is_gone(&dead, &me, &Fake(Some(400))), "pid reused");
        assert!(
            !holder_is_gone(&dead, &me, &Fake(Some(100))),
            "still running"
        );
        // A container with the same host name: its pids are not ours to see.
        let container = lock(1, "boot-1", "pid:[2]", Some(100));
        assert!(!holder_is_gone(&container, &me, &Fake(None)));
        // Another machine with the same host name, or this one before a reboot.
        let other_boot = lock(1, "boot-0", "pid:[1]", Some(100));
        assert!(!holder_is_gone(&other_boot, &me, &Fake(None)));
        // A lock from before these fields: never taken over.
        let old = LockInfo {
            boot_id: None,
            pid_namespace: None,
            start_time: None,
            ..dead.clone()
        };
        assert!(!holder_is_gone(&old, &me, &Fake(None)));
        let other_host = LockInfo {
            host: "ci".into(),
            ..dead
        };
        assert!(!holder_is_gone(&other_host, &me, &Fake(None)));
    }

    #[test]
    fn this_process_is_found_in_proc() {
        if !std::path::Path::new("/proc/self/stat").exists() {
            return;
        }
        let me = Procfs.start_time(std::process::id());
        assert!(me.is_some_and(|t| t > 0), "{me:?}");
        assert!(Procfs.boot_id().is_some());
        assert!(Procfs.pid_namespace().is_some());
    }
}
