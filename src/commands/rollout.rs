//! `scopectl rollout`: a release (image tags of some services) applied at
//! once, watched, rolled back as one on failure; `status`, `history`, `undo`.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::Instant;

use anyhow::{Context, Result};

use super::{acquire, confirm, holder_is_gone, lock_info, Backend, Ctx, Procfs};
use crate::cli::{RolloutArgs, RolloutCommand, WatchArgs};
use crate::config::Config;
use crate::error::{UserError, EXIT_OK};
use crate::providers::k8s::rollout::Target;
use crate::providers::k8s::K8s;
use crate::rollout::{self, Failure, Outcome, Progress, Release};
use crate::ui::Output;

pub const EXIT_ROLLED_BACK: u8 = 3;

/// Which tags a release goes to.
enum Wanted {
    Tags(BTreeMap<String, String>),
    All(String),
    /// An env, and where to reach its API (`--from-api-server`).
    From(String, Option<String>),
    File(std::path::PathBuf),
    Undo(Option<u64>),
}

pub async fn run(ctx: &Ctx, args: RolloutArgs) -> Result<u8> {
    match args.command {
        Some(RolloutCommand::Status) => status(ctx).await,
        Some(RolloutCommand::History) => history(ctx).await,
        Some(RolloutCommand::Undo(u)) => release(ctx, Wanted::Undo(u.to), &u.watch).await,
        None => {
            let wanted = if let Some(tag) = args.all {
                Wanted::All(tag)
            } else if let Some(env) = args.from {
                Wanted::From(env, args.from_api_server)
            } else if let Some(f) = args.tags_file {
                Wanted::File(f)
            } else if !args.tags.is_empty() {
                Wanted::Tags(args.tags.into_iter().collect())
            } else {
                return Err(UserError::usage(
                    "no tags given",
                    "name them: `scopectl rollout --env ENV users=v1.5.0 ui=v1.5.0`, or use --all TAG, --from ENV or --tags-file FILE",
                )
                .into());
            };
            release(ctx, wanted, &args.watch).await
        }
    }
}

/// The env's cluster client, which must answer. `api_server` is where to
/// reach it (`--api-server`, `--from-api-server`: `flag`), else its load
/// balancer.
pub(super) async fn cluster(
    config: &Config,
    backend: &Backend,
    api_server: Option<&str>,
    flag: &str,
) -> Result<K8s> {
    let aws = match backend {
        Backend::Aws(aws) => aws,
        Backend::Local(k8s) => {
            if !k8s.ready().await.unwrap_or(false) {
                return Err(super::local_not_answering(config, k8s.url()));
            }
            return Ok(k8s.clone());
        }
    };
    let mut actual = crate::model::Actual::default();
    for o in aws.load_balancers().await.context("finding the API")? {
        actual.insert(o);
    }
    let Some((client, url)) = super::cluster_client(aws, config, &actual, api_server).await? else {
        return Err(UserError::failed(
            format!("{}/{} has no cluster yet", config.project, config.env),
            format!("run `scopectl up --env {}` first", config.env),
        )
        .into());
    };
    if !client.ready().await.unwrap_or(false) {
        return Err(UserError::failed(
            format!("the Kubernetes API at {url} does not answer"),
            format!(
                "check the masters (`scopectl status --env {}`), or reach the API with {flag} URL",
                config.env
            ),
        )
        .into());
    }
    Ok(client)
}

/// The tag each service runs now: its Deployment's release annotation.
pub(super) async fn running(k8s: &K8s, config: &Config) -> Result<BTreeMap<String, String>> {
    let deployments = k8s
        .service_deployments(&config.project)
        .await
        .context("reading the services' deployments")?;
    Ok(config
        .services
        .keys()
        .filter_map(|s| {
            let d = deployments.get(s)?;
            let tag = d
                .pointer("/metadata/annotations")
                .and_then(|a| a.get(crate::model::k8s::TAG_ANNOTATION))
                .and_then(|t| t.as_str())?;
            Some((s.clone(), tag.to_string()))
        })
        .collect())
}

/// Marks releases left in progress by a process that no longer holds the
/// lock (killed, a cancelled CI job) as interrupted. `history` was read
/// before `held`: a release is read again before it is marked, since a
/// rollout that ended in between wrote its outcome before it let the lock go
/// (`status` run beside a rollout must not turn its success into
/// `interrupted`).
async fn settle_interrupted(k8s: &K8s, history: &mut [Release], held: Option<&str>) -> Result<()> {
    for r in history.iter_mut() {
        if r.outcome == Outcome::InProgress && Some(r.lock_id.as_str()) != held {
            match k8s.release(r.revision).await.context("reading a release")? {
                Some(now) if now.outcome == Outcome::InProgress => {}
                Some(now) => {
                    *r = now;
                    continue;
                }
                None => continue,
            }
            r.outcome = Outcome::Interrupted;
            r.ended = Some(now());
            k8s.update_release(r)
                .await
                .context("marking an interrupted release")?;
        }
    }
    Ok(())
}

/// The id of the env lock, unless its holder is gone beyond doubt (a
/// killed process on this machine, by `acquire`'s rule): such a lock stays
/// in the state store until the next command takes it over, but its release
/// is interrupted, not in progress.
async fn live_lock(backend: &Backend) -> Result<Option<String>> {
    let me = lock_info("rollout");
    Ok(backend
        .read_lock()
        .await?
        .filter(|held| !holder_is_gone(held, &me, &Procfs))
        .map(|held| held.id))
}

fn now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

async fn wanted_tags(
    ctx: &Ctx,
    config: &Config,
    k8s: &K8s,
    wanted: &Wanted,
) -> Result<(BTreeMap<String, String>, String)> {
    let known = |names: &mut dyn Iterator<Item = &String>| -> Result<()> {
        for n in names {
            if !config.services.contains_key(n) {
                return Err(UserError::usage(
                    format!(
                        "`{n}` is not a service of {}/{}",
                        config.project, config.env
                    ),
                    format!(
                        "services are: {}",
                        config
                            .services
                            .keys()
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
                .into());
            }
        }
        Ok(())
    };
    let describe = |m: &BTreeMap<String, String>| {
        m.iter()
            .map(|(s, t)| format!("{s}={t}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    Ok(match wanted {
        Wanted::Tags(m) => {
            known(&mut m.keys())?;
            (m.clone(), format!("rollout {}", describe(m)))
        }
        Wanted::All(tag) => {
            let m: BTreeMap<_, _> = config
                .services
                .keys()
                .map(|s| (s.clone(), tag.clone()))
                .collect();
            (m, format!("rollout --all {tag}"))
        }
        Wanted::File(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let v: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("{} is not JSON", path.display()))?;
            let m: BTreeMap<String, String> =
                serde_json::from_value(v.get("services").cloned().unwrap_or(v)).map_err(|_| {
                    UserError::usage(
                        format!("{} holds no tags", path.display()),
                        "give the release record `scopectl rollout --output json` printed, or {\"SERVICE\": \"TAG\"}",
                    )
                })?;
            let m: BTreeMap<_, _> = m
                .into_iter()
                .filter(|(s, _)| config.services.contains_key(s))
                .collect();
            (
                m.clone(),
                format!("rollout --tags-file {}: {}", path.display(), describe(&m)),
            )
        }
        Wanted::From(env, api_server) => {
            let other = crate::config::load(&ctx.config_path, env)?;
            let backend = Backend::for_env(&other).await?;
            // Never the target env's --api-server: that reaches another cluster.
            let theirs =
                cluster(&other, &backend, api_server.as_deref(), "--from-api-server").await?;
            let history = theirs.releases().await.context("reading their releases")?;
            let last = rollout::last_succeeded(&history).ok_or_else(|| {
                UserError::failed(
                    format!("{env} has no successful release to promote"),
                    format!("roll out to {env} first"),
                )
            })?;
            let m: BTreeMap<_, _> = last
                .services
                .iter()
                .filter(|(s, _)| config.services.contains_key(*s))
                .map(|(s, t)| (s.clone(), t.clone()))
                .collect();
            (
                m.clone(),
                format!("promote {env} revision {}: {}", last.revision, describe(&m)),
            )
        }
        Wanted::Undo(to) => {
            let history = k8s.releases().await.context("reading the releases")?;
            let (revision, services) = rollout::undo_target(&history, *to)
                .map_err(|e| UserError::usage(e, "see `scopectl rollout history`"))?;
            // Only the services this config still has.
            let services: BTreeMap<_, _> = services
                .into_iter()
                .filter(|(s, _)| config.services.contains_key(s))
                .collect();
            let what = if revision == 0 {
                "undo to revision 0 (the tags before the first release)".to_string()
            } else {
                format!("undo to revision {revision}")
            };
            (services, what)
        }
    })
}

async fn release(ctx: &Ctx, wanted: Wanted, w: &WatchArgs) -> Result<u8> {
    let config = ctx.config()?;
    let printer = &ctx.printer;
    // Refused before any call: a protected env is named, or typed.
    if config.protected {
        match w.confirm.as_deref() {
            Some(c) if c == config.env => {}
            Some(c) => {
                return Err(UserError::usage(
                    format!("--confirm names `{c}`, not the env `{}`", config.env),
                    format!("pass --confirm {}", config.env),
                )
                .into())
            }
            None if !std::io::stdin().is_terminal() => {
                return Err(UserError::usage(
                    format!("env {} is protected", config.env),
                    format!("pass --confirm {} --yes", config.env),
                )
                .into())
            }
            None => {}
        }
    }
    let backend = Backend::for_env(&config).await?;
    let k8s = cluster(&config, &backend, ctx.api_server.as_deref(), "--api-server").await?;
    let (tags, cause) = wanted_tags(ctx, &config, &k8s, &wanted).await?;
    let before = running(&k8s, &config).await?;
    let changes = rollout::changes(&before, &tags);
    if changes.is_empty() {
        printer.info(&format!(
            "{}/{} already runs these tags; nothing to roll out.",
            config.project, config.env
        ));
        if printer.output == Output::Json {
            let mut history = k8s.releases().await.unwrap_or_default();
            printer.json(&rollout::Unchanged {
                format_version: rollout::FORMAT_VERSION.into(),
                changed: false,
                release: history.pop(),
            });
        }
        return Ok(EXIT_OK);
    }
    let mut shown = String::new();
    for (s, old, new) in &changes {
        shown.push_str(&format!(
            "  {s:<20} {} -> {new}\n",
            if old.is_empty() { "(none)" } else { old }
        ));
    }
    if printer.output == Output::Human {
        printer.data(&format!(
            "Release for {}/{} ({cause}):\n{shown}",
            config.project, config.env
        ));
    }
    if config.protected && w.confirm.is_none() {
        confirm(
            &format!("Env `{}` is protected.", config.env),
            &config.env,
            "--confirm ENV --yes",
        )?;
    } else if !w.yes {
        confirm(
            &format!("Roll out to {}/{}?", config.project, config.env),
            "yes",
            "--yes",
        )?;
    }
    let info = lock_info("rollout");
    acquire(&backend, &info, printer).await?;
    let result = locked(ctx, &config, &k8s, &tags, &cause, w, &info.id).await;
    let released = backend.unlock(&info.id).await;
    let code = result?;
    released.context("releasing the env lock")?;
    Ok(code)
}

async fn locked(
    ctx: &Ctx,
    config: &Config,
    k8s: &K8s,
    tags: &BTreeMap<String, String>,
    cause: &str,
    w: &WatchArgs,
    lock_id: &str,
) -> Result<u8> {
    let printer = &ctx.printer;
    let mut history = k8s.releases().await.context("reading the releases")?;
    settle_interrupted(k8s, &mut history, Some(lock_id)).await?;
    // Again under the lock: what runs may have moved since the first look.
    let before = running(k8s, config).await?;
    let changes = rollout::changes(&before, tags);
    if changes.is_empty() {
        printer.info("Nothing to roll out: the env runs these tags.");
        return Ok(EXIT_OK);
    }
    if let Some((s, _, _)) = changes.iter().find(|(_, old, _)| old.is_empty()) {
        return Err(UserError::failed(
            format!(
                "{s} is not deployed in {}/{} yet",
                config.project, config.env
            ),
            format!(
                "run `scopectl up --env {}` first: it deploys every service at its initial tag",
                config.env
            ),
        )
        .into());
    }
    let moved: BTreeMap<String, String> = changes
        .iter()
        .map(|(s, _, n)| (s.clone(), n.clone()))
        .collect();
    let previous: BTreeMap<String, String> = changes
        .iter()
        .map(|(s, o, _)| (s.clone(), o.clone()))
        .collect();
    let info = lock_info("rollout");
    let mut record = Release {
        format_version: rollout::FORMAT_VERSION.into(),
        project: config.project.clone(),
        env: config.env.clone(),
        revision: rollout::next_revision(&history),
        tags: moved.clone(),
        previous: previous.clone(),
        services: before
            .iter()
            .chain(&moved)
            .map(|(a, b)| (a.clone(), b.clone()))
            .collect(),
        by: info
            .holder
            .split(" (")
            .next()
            .unwrap_or_default()
            .to_string(),
        from: rollout::origin(&|k| std::env::var(k).ok(), &info.host),
        cause: cause.to_string(),
        started: now(),
        ended: None,
        outcome: Outcome::InProgress,
        failure: None,
        lock_id: lock_id.to_string(),
    };
    while !k8s
        .create_release(&record)
        .await
        .context("recording the release")?
    {
        record.revision += 1;
    }
    let targets = |m: &BTreeMap<String, String>| -> Vec<Target> {
        m.iter()
            .filter(|(_, t)| !t.is_empty())
            .map(|(s, t)| Target {
                service: s.clone(),
                image: format!("{}:{t}", config.services[s].image),
                tag: t.clone(),
            })
            .collect()
    };
    let bars = crate::ui::RolloutBars::new(printer.stderr_is_tty(), printer.quiet);
    let report = |s: &str, p: &Progress| bars.report(s, p);
    let started = Instant::now();
    let change_cause = format!(
        "scopectl revision {}: {cause} (by {} from {})",
        record.revision, record.by, record.from
    );
    let forward = targets(&moved);
    // A signal ends the forward roll where it is: the release is recorded
    // as interrupted (its services may run either release, never without a
    // record), then the lock is let go. A rollback, once begun, is finished.
    let rolled = tokio::select! {
        o = k8s.roll(
            &config.project,
            &forward,
            &change_cause,
            (*w.timeout, "--timeout"),
            *w.failure_grace,
            &report,
        ) => Some(o),
        _ = crate::cancel::asked() => None,
    };
    let Some(outcome) = rolled else {
        record.outcome = Outcome::Interrupted;
        record.ended = Some(now());
        k8s.update_release(&record)
            .await
            .context("recording the release as interrupted")?;
        emit(printer, &record);
        return Err(crate::cancel::interrupted(
            &format!(
                "release {} is recorded as interrupted; its services may run either release, and the lock is released",
                record.revision
            ),
            &format!(
                "`scopectl rollout status --env {0}` shows each service; roll forward again, or `scopectl rollout undo --env {0}`",
                config.env
            ),
        )
        .into());
    };
    let failure = match outcome {
        Ok(Ok(())) => None,
        Ok(Err(f)) => Some(f),
        Err(e) => Some(Failure {
            service: String::new(),
            reason: "Error".into(),
            message: e.detail(),
        }),
    };
    let Some(failure) = failure else {
        record.outcome = Outcome::Succeeded;
        record.ended = Some(now());
        k8s.update_release(&record)
            .await
            .context("recording the release")?;
        history.push(record.clone());
        let _ = k8s.prune_releases(&history, rollout::KEEP).await;
        emit(printer, &record);
        printer.info(&format!(
            "Release {} of {}/{} succeeded in {:.1}s: {}.",
            record.revision,
            config.project,
            config.env,
            started.elapsed().as_secs_f64(),
            describe(&moved)
        ));
        return Ok(EXIT_OK);
    };
    record.failure = Some(failure.clone());
    let why = format!(
        "{} failed: {}{}",
        if failure.service.is_empty() {
            "the release"
        } else {
            &failure.service
        },
        failure.reason,
        if failure.message.is_empty() {
            String::new()
        } else {
            format!(" ({})", failure.message)
        }
    );
    if w.no_rollback {
        record.outcome = Outcome::Failed;
        record.ended = Some(now());
        k8s.update_release(&record)
            .await
            .context("recording the release")?;
        emit(printer, &record);
        return Err(UserError::failed(
            format!(
                "release {} {why}; left in place (--no-rollback)",
                record.revision
            ),
            format!(
                "fix it with a new rollout, or `scopectl rollout undo --env {}`",
                config.env
            ),
        )
        .into());
    }
    printer.info(&format!("{why}; rolling every service of the release back"));
    let back = targets(&previous);
    let rollback_cause = format!("scopectl rollback of revision {}: {why}", record.revision);
    let rolled = k8s
        .roll(
            &config.project,
            &back,
            &rollback_cause,
            (*w.rollback_timeout, "--rollback-timeout"),
            *w.failure_grace,
            &report,
        )
        .await;
    record.ended = Some(now());
    match rolled {
        Ok(Ok(())) => {
            record.outcome = Outcome::RolledBack;
            k8s.update_release(&record)
                .await
                .context("recording the release")?;
            emit(printer, &record);
            Err(UserError {
                message: format!(
                    "release {} {why}; rolled back: {}/{} runs the previous release again ({})",
                    record.revision,
                    config.project,
                    config.env,
                    describe(&previous)
                ),
                hint: Some("look at the failing pods (`kubectl describe pod`), fix the image, and roll out again".into()),
                code: EXIT_ROLLED_BACK,
            }
            .into())
        }
        other => {
            record.outcome = Outcome::Failed;
            k8s.update_release(&record)
                .await
                .context("recording the release")?;
            emit(printer, &record);
            let now_running = running(k8s, config)
                .await
                .map(|m| describe(&m))
                .unwrap_or_else(|e| format!("unknown ({e:#})"));
            let rollback_why = match other {
                Ok(Err(f)) => format!("{}: {} {}", f.service, f.reason, f.message),
                Err(e) => e.detail(),
                Ok(Ok(())) => String::new(),
            };
            Err(UserError::failed(
                format!(
                    "release {} {why}, and its rollback failed too ({rollback_why}); now running: {now_running}",
                    record.revision
                ),
                format!("see `scopectl rollout status --env {}` and the pods; roll out a known-good release", config.env),
            )
            .into())
        }
    }
}

fn describe(m: &BTreeMap<String, String>) -> String {
    m.iter()
        .map(|(s, t)| format!("{s}={t}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn emit(printer: &crate::ui::Printer, r: &Release) {
    if printer.output == Output::Json {
        printer.json(r);
    }
}

async fn history(ctx: &Ctx) -> Result<u8> {
    let config = ctx.config()?;
    let backend = Backend::for_env(&config).await?;
    let k8s = cluster(&config, &backend, ctx.api_server.as_deref(), "--api-server").await?;
    let mut history = k8s.releases().await.context("reading the releases")?;
    let held = live_lock(&backend).await?;
    settle_interrupted(&k8s, &mut history, held.as_deref()).await?;
    history.reverse();
    let initial = rollout::initial(&history);
    if ctx.printer.output == Output::Json {
        ctx.printer.json(&rollout::History {
            format_version: rollout::FORMAT_VERSION.into(),
            releases: history,
            initial,
        });
        return Ok(EXIT_OK);
    }
    let mut out = format!(
        "{:<5} {:<12} {:<21} {:<24} CHANGES\n",
        "REV", "OUTCOME", "STARTED", "BY"
    );
    for r in &history {
        let changes: Vec<String> = r
            .tags
            .iter()
            .map(|(s, t)| {
                format!(
                    "{s} {}->{t}",
                    r.previous.get(s).map(String::as_str).unwrap_or("?")
                )
            })
            .collect();
        out.push_str(&format!(
            "{:<5} {:<12} {:<21} {:<24} {}\n",
            r.revision,
            r.outcome.to_string(),
            r.started,
            r.by,
            changes.join(", ")
        ));
    }
    // Revision 0: where `undo` goes when no earlier release succeeded.
    if let Some(i) = initial {
        let tags: Vec<String> = i.services.iter().map(|(s, t)| format!("{s} {t}")).collect();
        out.push_str(&format!(
            "{:<5} {:<12} {:<21} {:<24} {}\n",
            0,
            "initial",
            "-",
            "(before release 1)",
            tags.join(", ")
        ));
    }
    if history.is_empty() {
        out = format!("{}/{} has no releases yet.\n", config.project, config.env);
    }
    ctx.printer.data(&out);
    Ok(EXIT_OK)
}

async fn status(ctx: &Ctx) -> Result<u8> {
    let config = ctx.config()?;
    let backend = Backend::for_env(&config).await?;
    let k8s = cluster(&config, &backend, ctx.api_server.as_deref(), "--api-server").await?;
    let mut history = k8s.releases().await.context("reading the releases")?;
    let held = live_lock(&backend).await?;
    settle_interrupted(&k8s, &mut history, held.as_deref()).await?;
    let deployments = k8s.service_deployments(&config.project).await?;
    let current = history.last();
    let services: BTreeMap<String, rollout::ServiceState> = deployments
        .iter()
        .map(|(name, d)| {
            let p = rollout::progress(d);
            let tag = d
                .pointer("/metadata/annotations")
                .and_then(|a| a.get(crate::model::k8s::TAG_ANNOTATION))
                .and_then(|t| t.as_str())
                .map(str::to_string);
            let state = match &p {
                Progress::Complete => "complete".to_string(),
                Progress::Waiting {
                    updated,
                    available,
                    desired,
                } => {
                    format!("rolling out: {updated} updated, {available} available of {desired}")
                }
                Progress::Failed { reason, .. } => format!("failing: {reason}"),
            };
            (name.clone(), rollout::ServiceState { tag, state })
        })
        .collect();
    if ctx.printer.output == Output::Json {
        ctx.printer.json(&rollout::Status {
            format_version: rollout::FORMAT_VERSION.into(),
            release: current.cloned(),
            services,
        });
        return Ok(EXIT_OK);
    }
    let mut out = match current {
        None => format!(
            "{}/{}: no release yet (the tags `up` deployed)\n",
            config.project, config.env
        ),
        Some(r) => format!(
            "{}/{}: release {} {} ({}, by {} from {}, started {})\n",
            config.project, config.env, r.revision, r.outcome, r.cause, r.by, r.from, r.started
        ),
    };
    for (name, s) in &services {
        out.push_str(&format!(
            "  {name:<20} {:<12} {}\n",
            s.tag.as_deref().unwrap_or("?"),
            s.state
        ));
    }
    ctx.printer.data(&out);
    Ok(EXIT_OK)
}
