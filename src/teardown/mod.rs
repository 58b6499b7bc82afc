//! `down`: delete everything the env owns, found by tags, in reverse
//! dependency order. A delete refused because something still depends on the
//! resource is "not yet": the next wave retries it (kops' delete.go). Waves
//! stop when nothing is left, after `max_stalls` waves without progress, or at
//! the deadline.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::apply::{execute, Options, Provider, ProviderError, Reporter};
use crate::desired::Facts;
use crate::model::{Actual, Kind, Owner, ResourceId};
use crate::plan::{destroy, fingerprint};

/// A provider that can also list everything an env owns.
pub trait Inventory: Provider {
    fn inventory(&self) -> impl Future<Output = Result<Actual, ProviderError>>;
}

#[derive(Clone, Debug)]
pub struct TeardownOptions {
    pub deadline: Duration,
    pub max_stalls: usize,
    pub pause: Duration,
    pub apply: Options,
    /// Kinds deleted only once nothing else is left (the PKI: a cluster
    /// half torn down can still be reached and debugged).
    pub last: Vec<Kind>,
    /// Kinds never deleted (`down --keep-pki`).
    pub keep: Vec<Kind>,
}

impl Default for TeardownOptions {
    fn default() -> Self {
        TeardownOptions {
            deadline: Duration::from_secs(20 * 60),
            max_stalls: 5,
            pause: crate::timing::Timing::current().teardown_pause,
            apply: Options {
                tolerate_dependencies: true,
                ..Options::default()
            },
            last: Vec::new(),
            keep: Vec::new(),
        }
    }
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TeardownOutcome {
    pub deleted: usize,
    pub waves: usize,
    pub elapsed: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum TeardownError {
    /// A signal asked to stop: the wave in flight finished, no other began.
    #[error("stopped after {waves} waves; {} resources remain", remaining.len())]
    Stopped {
        waves: usize,
        remaining: Vec<ResourceId>,
    },
    #[error("teardown made no progress in {waves} waves; {} resources remain: {}", remaining.len(), list(remaining))]
    NoProgress {
        waves: usize,
        remaining: Vec<ResourceId>,
    },
    #[error("teardown passed its deadline of {}s; {} resources remain: {}", deadline.as_secs(), remaining.len(), list(remaining))]
    Deadline {
        deadline: Duration,
        remaining: Vec<ResourceId>,
    },
    #[error("deleting {} failed: {}{}", plural(failures.len()), failures.iter().map(|(a, m)| format!("{a}: {m}")).collect::<Vec<_>>().join("; "), if remaining.is_empty() { String::new() } else { format!("; {} resources remain: {}", remaining.len(), list(remaining)) })]
    Failed {
        /// Every delete that failed, in the order they failed: teardown went
        /// on with everything else.
        failures: Vec<(ResourceId, String)>,
        remaining: Vec<ResourceId>,
    },
    #[error(transparent)]
    Observe(#[from] ProviderError),
}

/// What this wave may delete: never `keep` kinds, and `last` kinds only
/// when nothing else remains.
pub fn select(mut actual: Actual, opts: &TeardownOptions) -> Actual {
    let of = |id: &ResourceId, kinds: &[Kind]| id.kind().is_some_and(|k| kinds.contains(&k));
    actual.resources.retain(|id, _| !of(id, &opts.keep));
    actual.duplicates.retain(|o| !of(&o.id, &opts.keep));
    let others = actual
        .resources
        .keys()
        .chain(actual.duplicates.iter().map(|o| &o.id))
        .any(|id| !of(id, &opts.last));
    if others {
        actual.resources.retain(|id, _| !of(id, &opts.last));
        actual.duplicates.retain(|o| !of(&o.id, &opts.last));
    }
    actual
}

fn plural(n: usize) -> String {
    if n == 1 {
        "1 resource".into()
    } else {
        format!("{n} resources")
    }
}

fn list(ids: &[ResourceId]) -> String {
    let mut s: Vec<String> = ids.iter().take(8).map(ToString::to_string).collect();
    if ids.len() > 8 {
        s.push(format!("and {} more", ids.len() - 8));
    }
    s.join(", ")
}

/// Runs delete waves until nothing is left. `first` is an observation the
/// caller already made (the first wave uses it); later waves observe afresh.
pub async fn teardown<I: Inventory, R: Reporter>(
    owner: &Owner,
    inventory: &I,
    first: Option<Actual>,
    reporter: &R,
    opts: &TeardownOptions,
) -> Result<TeardownOutcome, TeardownError> {
    let started = Instant::now();
    let mut out = TeardownOutcome::default();
    let mut stalls = 0;
    let mut first = first;
    // Deletes that failed (not "not yet": an error) are not tried again this
    // run; the rest of the env still goes, and all failures are reported.
    let mut failures: Vec<(ResourceId, String)> = Vec::new();
    loop {
        let mut actual = select(
            match first.take() {
                Some(a) => a,
                None => inventory.inventory().await?,
            },
            opts,
        );
        let failed = |id: &ResourceId| failures.iter().any(|(a, _)| a == id);
        let remaining = |actual: &Actual| -> Vec<ResourceId> {
            actual
                .resources
                .keys()
                .chain(actual.duplicates.iter().map(|o| &o.id))
                .cloned()
                .collect()
        };
        let left = remaining(&actual);
        actual.resources.retain(|id, _| !failed(id));
        actual.duplicates.retain(|o| !failed(&o.id));
        // Why to stop now, if at all: `Some(None)` when nothing is left to try.
        let stop = if actual.is_empty() {
            Some(None)
        } else if crate::cancel::requested() {
            Some(Some(TeardownError::Stopped {
                waves: out.waves,
                remaining: left.clone(),
            }))
        } else if started.elapsed() > opts.deadline {
            Some(Some(TeardownError::Deadline {
                deadline: opts.deadline,
                remaining: left.clone(),
            }))
        } else if stalls >= opts.max_stalls {
            Some(Some(TeardownError::NoProgress {
                waves: out.waves,
                remaining: left.clone(),
            }))
        } else {
            None
        };
        if let Some(reason) = stop {
            if !failures.is_empty() {
                return Err(TeardownError::Failed {
                    failures,
                    remaining: left,
                });
            }
            out.elapsed = started.elapsed();
            return match reason {
                None => Ok(out),
                Some(e) => Err(e),
            };
        }
        let ids = actual
            .resources
            .iter()
            .map(|(k, v)| (k.clone(), v.physical_id.clone()))
            .collect();
        let plan = destroy(
            &owner.project,
            &owner.env,
            &actual,
            fingerprint(&Facts::default(), &actual),
        );
        let wave = execute(&plan, ids, inventory, reporter, &opts.apply).await;
        out.waves += 1;
        out.deleted += wave.deleted;
        let failed_now = !wave.failures.is_empty();
        failures.extend(wave.failures.into_iter().filter_map(|e| {
            let address = e.object.as_ref()?.address.clone();
            Some((address, e.detail()))
        }));
        if wave.deleted == 0 && !failed_now {
            stalls += 1;
        } else {
            stalls = 0;
        }
        if wave.blocked > 0 || wave.skipped > 0 {
            tokio::time::sleep(
                opts.pause
                    .min(opts.deadline.saturating_sub(started.elapsed())),
            )
            .await;
        }
    }
}
