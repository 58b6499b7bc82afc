//! The executor: walks a plan's changes in dependency order with bounded
//! concurrency and retries. It knows resources only through [`Provider`].

mod critical;
mod graph;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};
use futures::stream::{FuturesUnordered, StreamExt};

use crate::model::{Props, Resource, ResourceId};
use crate::plan::{Action, Change, Plan};

pub use critical::{critical_path, CriticalPath, PathStep};
pub use graph::{steps, Op, Step};

/// Why a provider call failed, as far as retrying is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// Throttling, 5xx, dropped connections: retry with backoff.
    Transient,
    /// Something still depends on the resource: retry later.
    DependencyViolation,
    /// The resource (or one it names) does not exist (yet).
    NotFound,
    /// Anything else: do not retry.
    Fatal,
    /// AWS cannot be used at all from here (no credentials, credentials
    /// refused, a region with no endpoint): every call fails alike, so no
    /// retry, and the command says so in the user's terms.
    Access(Access),
}

/// Why AWS cannot be used at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// The default chain found no credentials.
    NoCredentials,
    /// AWS refused the credentials (unknown key, bad secret, expired token).
    Rejected,
    /// The region has no endpoint (its name does not resolve, or AWS says
    /// the credential scope names no valid region).
    UnknownRegion,
}

/// The phase of a step in which an error happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Create,
    /// Completing a create found from an earlier, interrupted run.
    Finish,
    Update,
    Delete,
    /// Waiting for AWS to finish (a termination, a detach).
    Wait,
}

impl Phase {
    pub fn verb(self) -> &'static str {
        match self {
            Phase::Create => "create",
            Phase::Finish => "finish",
            Phase::Update => "update",
            Phase::Delete => "delete",
            Phase::Wait => "wait for",
        }
    }
}

/// The object an error is about: its address, AWS id and phase.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Object {
    pub address: ResourceId,
    pub physical_id: Option<String>,
    pub phase: Phase,
}

/// The service's own answer (`InvalidSubnetID.NotFound: …`), kept as the cause.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ServiceError(pub String);

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderError {
    pub kind: ErrorKind,
    /// The service's error code, when it gave one.
    pub code: Option<String>,
    /// What was being done: the call (`CreateSubnet`), or what it was for
    /// (`setting MapPublicIpOnLaunch`).
    pub message: String,
    /// What the operator can do about it, when scopectl knows.
    pub hint: Option<String>,
    /// Set by the executor: which object, in which phase.
    pub object: Option<Box<Object>>,
    /// A phase the provider knows better than the executor (`Wait`).
    pub phase: Option<Phase>,
    pub cause: Option<ServiceError>,
}

impl std::fmt::Display for ProviderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(o) = &self.object {
            write!(f, "{} {}", o.phase.verb(), o.address)?;
            if let Some(p) = &o.physical_id {
                write!(f, " ({p})")?;
            }
            f.write_str(": ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ProviderError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause.as_ref().map(|c| c as _)
    }
}

impl ProviderError {
    pub fn new(kind: ErrorKind, code: Option<String>, message: impl Into<String>) -> Self {
        ProviderError {
            kind,
            code,
            message: message.into(),
            hint: None,
            object: None,
            phase: None,
            cause: None,
        }
    }

    pub fn fatal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Fatal, None, message)
    }

    /// The service's answer as the cause of this error.
    pub fn caused_by(mut self, cause: impl Into<String>) -> Self {
        self.cause = Some(ServiceError(cause.into()));
        self
    }

    /// Says what the failed call was for.
    pub fn doing(mut self, what: impl Into<String>) -> Self {
        self.message = what.into();
        self
    }

    pub fn in_phase(mut self, phase: Phase) -> Self {
        self.phase = Some(phase);
        self
    }

    /// Names the object (the executor does, for every step).
    pub fn about(mut self, address: &ResourceId, physical_id: Option<&str>, phase: Phase) -> Self {
        if self.object.is_none() {
            self.object = Some(Box::new(Object {
                address: address.clone(),
                physical_id: physical_id.map(str::to_string),
                phase: self.phase.unwrap_or(phase),
            }));
        }
        self
    }

    /// The message with its cause, on one line (for lists of failures).
    pub fn detail(&self) -> String {
        match &self.cause {
            Some(c) => format!("{self}: {c}"),
            None => self.to_string(),
        }
    }

    /// Whether the call may have taken effect though it failed: its answer
    /// was lost (a dropped connection, a timeout) or the service failed
    /// after acting (a 5xx). A throttle or a refusal never acted.
    pub fn may_have_applied(&self) -> bool {
        self.kind == ErrorKind::Transient
            && match self.code.as_deref() {
                None => true,
                Some(c) => [
                    "InternalError",
                    "InternalFailure",
                    "InternalServerError",
                    "ServiceUnavailable",
                    "Unavailable",
                ]
                .contains(&c),
            }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

/// What the executor needs from a cloud (or a cluster): one method per step.
/// `Resource::props` arrive with references resolved to physical ids.
pub trait Provider: Sync {
    /// Re-observes one id before creating it: an earlier interrupted run may
    /// have created it already.
    fn find(&self, r: &Resource) -> impl Future<Output = Result<Option<String>, ProviderError>>;
    fn create(&self, r: &Resource) -> impl Future<Output = Result<String, ProviderError>>;
    /// Completes what a create does after the resource exists (an attribute,
    /// an attachment, an acceptance), for a create that `find` found because
    /// an earlier attempt or run was interrupted. Idempotent.
    fn finish(
        &self,
        _r: &Resource,
        _physical_id: &str,
    ) -> impl Future<Output = Result<(), ProviderError>> {
        async { Ok(()) }
    }
    fn update(
        &self,
        r: &Resource,
        physical_id: &str,
        before: &Props,
    ) -> impl Future<Output = Result<(), ProviderError>>;
    /// The calls `step` makes one after another when nothing fails (see
    /// `critical_path`): with more steps ready than may run, the one with
    /// the heaviest chain behind it starts first.
    fn step_calls(&self, _step: &Step) -> usize {
        1
    }
    /// Whether this delete goes in one call with the other deletes of its
    /// kind that are ready at the same moment (`delete_all`).
    fn batches_deletes(&self, _step: &Step) -> bool {
        false
    }
    /// Deletes several resources of one kind at once (one request, one wait
    /// for all): one result per item, in order. A failed item is retried
    /// alone, as its own step.
    fn delete_all(
        &self,
        items: &[(ResourceId, String, Props)],
    ) -> impl Future<Output = Vec<Result<(), ProviderError>>> {
        futures::future::join_all(
            items
                .iter()
                .map(|(id, pid, before)| self.delete(id, pid, before)),
        )
    }
    /// Deleting something already gone succeeds.
    fn delete(
        &self,
        id: &ResourceId,
        physical_id: &str,
        before: &Props,
    ) -> impl Future<Output = Result<(), ProviderError>>;
}

/// Progress callbacks; the CLI draws them, tests ignore them.
pub trait Reporter: Sync {
    fn start(&self, _total: usize) {}
    fn step_started(&self, _step: &Step) {}
    fn step_finished(&self, _step: &Step, _result: &StepResult) {}
    fn retrying(&self, _step: &Step, _error: &ProviderError, _after: Duration) {}
    fn finish(&self) {}
}

pub struct NoReporter;
impl Reporter for NoReporter {}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StepResult {
    Done {
        physical_id: Option<String>,
    },
    /// The create found the resource already there (an interrupted run).
    Found {
        physical_id: String,
    },
    /// Teardown: blocked by a dependency for now; the next round retries.
    Blocked,
    /// Not run because a step it waits on failed or was blocked.
    Skipped,
    Failed(ProviderError),
}

/// Steps at once by default (`--parallelism`). An `up` of a small cluster
/// makes about 110 calls on a critical path of about 9: at 8 at a time the
/// bound on concurrency, not the chain, set its length; 16 stays well
/// inside AWS's request bursts.
pub const DEFAULT_CONCURRENCY: u16 = 16;

#[derive(Clone, Debug)]
pub struct Options {
    pub concurrency: usize,
    /// Attempts per step for transient errors.
    pub max_attempts: usize,
    pub min_delay: Duration,
    pub max_delay: Duration,
    /// Teardown mode: a delete refused by a dependency is `Blocked`, not an error.
    pub tolerate_dependencies: bool,
    /// After a create whose answer was lost, how many more times `find`
    /// looks for it (backing off like retries) before creating again: a
    /// resource just made may not show in tag-filtered reads yet.
    pub lost_create_polls: usize,
}

impl Default for Options {
    fn default() -> Self {
        let t = crate::timing::Timing::current();
        Options {
            concurrency: usize::from(DEFAULT_CONCURRENCY),
            max_attempts: 8,
            min_delay: t.min_delay,
            max_delay: t.max_delay,
            tolerate_dependencies: false,
            lost_create_polls: 6,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    pub created: usize,
    pub found: usize,
    pub updated: usize,
    pub deleted: usize,
    pub blocked: usize,
    pub skipped: usize,
    /// Every failed step's error, naming its object and phase.
    pub failures: Vec<ProviderError>,
    pub elapsed: Duration,
    /// Physical ids after the run, for everything the run knows of.
    pub ids: BTreeMap<ResourceId, String>,
}

impl Outcome {
    pub fn ok(&self) -> bool {
        self.failures.is_empty() && self.blocked == 0 && self.skipped == 0
    }
}

/// Runs every change of `plan`. `ids` are the physical ids of resources that
/// exist now (from the observation the plan was checked against).
pub async fn execute<P: Provider, R: Reporter>(
    plan: &Plan,
    ids: BTreeMap<ResourceId, String>,
    provider: &P,
    reporter: &R,
    opts: &Options,
) -> Outcome {
    let started = Instant::now();
    let (steps, graph) = steps(&plan.changes);
    let ids = Mutex::new(ids);
    let mut waiting: Vec<usize> = (0..steps.len()).map(|i| graph.waits_on(i).len()).collect();
    let mut results: Vec<Option<StepResult>> = vec![None; steps.len()];
    let mut ready: Vec<usize> = (0..steps.len()).filter(|&i| waiting[i] == 0).collect();
    let weight: Vec<usize> = steps.iter().map(|s| provider.step_calls(s)).collect();
    let rank = critical::remaining(&graph, &weight);
    let mut running = FuturesUnordered::new();
    let mut stop = false;
    reporter.start(steps.len());

    loop {
        // The longest chain behind a step first (list scheduling: a bound on
        // concurrency then delays the critical path least), then the lowest
        // index: a deterministic order of launches.
        ready.sort_unstable_by(|a, b| rank[*a].cmp(&rank[*b]).then(b.cmp(a)));
        // Asked to stop (a signal): nothing new starts; what runs finishes.
        while !stop && !crate::cancel::requested() && running.len() < opts.concurrency.max(1) {
            let Some(i) = ready.pop() else { break };
            // Deletes of a kind that batches go together, in one slot.
            let mut batch = vec![i];
            let batches = |j: usize| {
                steps[j].op == Op::Delete
                    && steps[j].address.kind() == steps[i].address.kind()
                    && provider.batches_deletes(&steps[j])
            };
            if batches(i) {
                ready.retain(|&j| {
                    let joins = batches(j);
                    if joins {
                        batch.push(j);
                    }
                    !joins
                });
                batch.sort_unstable();
            }
            for &j in &batch {
                reporter.step_started(&steps[j]);
            }
            let (steps, ids) = (&steps, &ids);
            running.push(async move {
                run_batch(batch, steps, plan, ids, provider, reporter, opts).await
            });
        }
        let Some(first) = running.next().await else {
            break;
        };
        // Every step that has finished by now, before launching more: steps
        // made ready together then start together (and batch).
        let mut finished = vec![first];
        while let Some(Some(more)) = futures::FutureExt::now_or_never(running.next()) {
            finished.push(more);
        }
        for (i, result) in finished.into_iter().flatten() {
            reporter.step_finished(&steps[i], &result);
            let succeeded = matches!(result, StepResult::Done { .. } | StepResult::Found { .. });
            if matches!(result, StepResult::Failed(_)) {
                stop = true;
            }
            results[i] = Some(result);
            for &next in graph.unblocks(i) {
                if succeeded {
                    waiting[next] -= 1;
                    if waiting[next] == 0 && results[next].is_none() {
                        ready.push(next);
                    }
                } else {
                    skip(next, &graph, &mut results);
                }
            }
        }
    }
    reporter.finish();
    drop(running);

    let mut out = Outcome::default();
    for (i, r) in results.into_iter().enumerate() {
        let step = &steps[i];
        match r.unwrap_or(StepResult::Skipped) {
            StepResult::Done { .. } => match step.op {
                Op::Create => out.created += 1,
                Op::Update => out.updated += 1,
                Op::Delete => out.deleted += 1,
            },
            StepResult::Found { .. } => out.found += 1,
            StepResult::Blocked => out.blocked += 1,
            StepResult::Skipped => out.skipped += 1,
            StepResult::Failed(e) => out.failures.push(e),
        }
    }
    out.elapsed = started.elapsed();
    out.ids = ids.into_inner().unwrap_or_else(|e| e.into_inner());
    out
}

/// Marks `i` and everything waiting on it as skipped.
fn skip(i: usize, graph: &graph::StepGraph, results: &mut [Option<StepResult>]) {
    if results[i].is_some() {
        return;
    }
    results[i] = Some(StepResult::Skipped);
    for &n in graph.unblocks(i) {
        skip(n, graph, results);
    }
}

/// Runs one step, or several deletes of one kind as one `delete_all`; an
/// item of the batch that failed then runs alone, with its own retries.
async fn run_batch<P: Provider, R: Reporter>(
    batch: Vec<usize>,
    steps: &[Step],
    plan: &Plan,
    ids: &Mutex<BTreeMap<ResourceId, String>>,
    provider: &P,
    reporter: &R,
    opts: &Options,
) -> Vec<(usize, StepResult)> {
    let alone = |i: usize| async move {
        let step = &steps[i];
        let change = &plan.changes[step.change];
        (
            i,
            run_step(step, change, ids, provider, reporter, opts).await,
        )
    };
    if batch.len() == 1 {
        return vec![alone(batch[0]).await];
    }
    let items: Vec<(ResourceId, String, Props)> = batch
        .iter()
        .map(|&i| {
            let c = &plan.changes[steps[i].change];
            (
                c.address.clone(),
                c.physical_id.clone().unwrap_or_default(),
                c.before.clone().unwrap_or_default(),
            )
        })
        .collect();
    let answers = provider.delete_all(&items).await;
    let mut out = Vec::new();
    let mut again = Vec::new();
    for (k, &i) in batch.iter().enumerate() {
        match answers.get(k) {
            Some(Ok(())) => {
                ids.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&steps[i].address);
                out.push((i, StepResult::Done { physical_id: None }));
            }
            _ => again.push(i),
        }
    }
    out.extend(futures::future::join_all(again.into_iter().map(alone)).await);
    out
}

async fn run_step<P: Provider, R: Reporter>(
    step: &Step,
    change: &Change,
    ids: &Mutex<BTreeMap<ResourceId, String>>,
    provider: &P,
    reporter: &R,
    opts: &Options,
) -> StepResult {
    let backoff = ExponentialBuilder::default()
        .with_min_delay(opts.min_delay)
        .with_max_delay(opts.max_delay)
        .with_max_times(opts.max_attempts.saturating_sub(1))
        .with_jitter();
    let op = step.op;
    // Set when a create failed in a way that may have created it anyway.
    let lost = std::sync::atomic::AtomicBool::new(false);
    let lost = &lost;
    let attempt = || async move {
        match op {
            Op::Create => {
                let r = resolved(change, ids)?;
                let mut found = provider.find(&r).await?;
                if found.is_none() && lost.load(std::sync::atomic::Ordering::SeqCst) {
                    let mut delay = opts.min_delay;
                    for _ in 0..opts.lost_create_polls {
                        tokio::time::sleep(delay).await;
                        found = provider.find(&r).await?;
                        if found.is_some() {
                            break;
                        }
                        delay = (delay * 2).min(opts.max_delay);
                    }
                }
                if let Some(pid) = found {
                    provider
                        .finish(&r, &pid)
                        .await
                        .map_err(|e| e.about(&change.address, Some(&pid), Phase::Finish))?;
                    return Ok(StepResult::Found { physical_id: pid });
                }
                let pid = provider.create(&r).await.inspect_err(|e| {
                    if e.may_have_applied() {
                        lost.store(true, std::sync::atomic::Ordering::SeqCst);
                    }
                })?;
                Ok(StepResult::Done {
                    physical_id: Some(pid),
                })
            }
            Op::Update => {
                let r = resolved(change, ids)?;
                let pid = change.physical_id.as_deref().unwrap_or_default();
                provider
                    .update(&r, pid, change.before.as_ref().unwrap_or(&Props::new()))
                    .await?;
                Ok(StepResult::Done { physical_id: None })
            }
            Op::Delete => {
                let pid = change.physical_id.as_deref().unwrap_or_default();
                provider
                    .delete(
                        &change.address,
                        pid,
                        change.before.as_ref().unwrap_or(&Props::new()),
                    )
                    .await?;
                Ok(StepResult::Done { physical_id: None })
            }
        }
    };
    let retryable = |e: &ProviderError| match e.kind {
        ErrorKind::Transient => true,
        // Eventual consistency: a resource created a moment ago is not visible yet.
        ErrorKind::NotFound => op != Op::Delete,
        // Dependants (interfaces, just-revoked rules) take a moment to go.
        ErrorKind::DependencyViolation => op == Op::Delete,
        ErrorKind::Fatal | ErrorKind::Access(_) => false,
    };
    let result = attempt
        .retry(backoff)
        .sleep(tokio::time::sleep)
        .when(|e| {
            retryable(e)
                && !(opts.tolerate_dependencies && e.kind == ErrorKind::DependencyViolation)
        })
        .notify(|e, after| reporter.retrying(step, e, after))
        .await;
    match result {
        Ok(res) => {
            let mut ids = ids.lock().unwrap_or_else(|e| e.into_inner());
            match (&res, op) {
                (
                    StepResult::Done {
                        physical_id: Some(p),
                    },
                    _,
                )
                | (StepResult::Found { physical_id: p }, _) => {
                    ids.insert(change.address.clone(), p.clone());
                }
                (_, Op::Delete) => {
                    ids.remove(&change.address);
                }
                _ => {}
            }
            res
        }
        Err(e) if opts.tolerate_dependencies && e.kind == ErrorKind::DependencyViolation => {
            StepResult::Blocked
        }
        Err(e) => {
            let phase = match op {
                Op::Create => Phase::Create,
                Op::Update => Phase::Update,
                Op::Delete => Phase::Delete,
            };
            // A replace's create makes a new object: the old id is not its.
            let pid = match op {
                Op::Create => None,
                _ => change.physical_id.clone(),
            };
            StepResult::Failed(e.about(&change.address, pid.as_deref(), phase))
        }
    }
}

/// The change's desired resource with references replaced by physical ids.
fn resolved(
    change: &Change,
    ids: &Mutex<BTreeMap<ResourceId, String>>,
) -> Result<Resource, ProviderError> {
    let ids = ids.lock().unwrap_or_else(|e| e.into_inner());
    let after = change
        .after
        .as_ref()
        .ok_or_else(|| ProviderError::fatal("a create or update without an `after`"))?;
    let lookup = |t: &ResourceId| ids.get(t).cloned();
    let props = after
        .iter()
        .map(|(k, v)| {
            v.resolve(&lookup).map(|v| (k.clone(), v)).ok_or_else(|| {
                ProviderError::fatal(format!(
                    "{}: {k} refers to a resource with no id yet",
                    change.address
                ))
            })
        })
        .collect::<Result<Props, _>>()?;
    Ok(Resource {
        id: change.address.clone(),
        ownership: change.ownership,
        props,
    })
}

/// Convenience for callers that only care about the action counts.
pub fn count(plan: &Plan, action: Action) -> usize {
    plan.changes.iter().filter(|c| c.action == action).count()
}

#[cfg(test)]
mod tests;
