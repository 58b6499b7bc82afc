//! Pure: releases (what a rollout changes and records), `kubectl rollout
//! status`'s rule, and which pod states fail a release early. The watching
//! and writing is in `providers::k8s::rollout`, the wiring in
//! `commands::rollout`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Bumped on any incompatible change to the release record (a CI contract).
pub const FORMAT_VERSION: &str = "1";
/// The field manager of a rollout's writes (the image field only); `up`'s
/// manager `scopectl` agrees on the value, so neither takes it from the other.
pub const FIELD_MANAGER: &str = "scopectl-rollout";
pub const CHANGE_CAUSE: &str = "kubernetes.io/change-cause";
/// Releases kept per env.
pub const KEEP: usize = 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    InProgress,
    Succeeded,
    /// Failed, and every service went back to its previous tag.
    RolledBack,
    /// Failed and left in place (`--no-rollback`), or the rollback failed.
    Failed,
    /// The process ended before it did (killed, a cancelled CI job).
    Interrupted,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Outcome::InProgress => "in progress",
            Outcome::Succeeded => "succeeded",
            Outcome::RolledBack => "rolled back",
            Outcome::Failed => "failed",
            Outcome::Interrupted => "interrupted",
        })
    }
}

/// Why a service's rollout failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct Failure {
    pub service: String,
    /// `CrashLoopBackOff`, `ProgressDeadlineExceeded`, `Timeout` …
    pub reason: String,
    pub message: String,
}

/// One release: the record `rollout history` lists and `--output json`
/// prints.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct Release {
    pub format_version: String,
    pub project: String,
    pub env: String,
    pub revision: u64,
    /// The services this release moves, to their new tags.
    pub tags: BTreeMap<String, String>,
    /// Their tags before.
    pub previous: BTreeMap<String, String>,
    /// Every service's tag once it succeeds (what `--from` promotes).
    pub services: BTreeMap<String, String>,
    /// `user@host`.
    pub by: String,
    /// Where it ran: a CI job's name and URL, or `terminal on HOST`.
    pub from: String,
    pub cause: String,
    pub started: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended: Option<String>,
    pub outcome: Outcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
    /// The env lock the rollout held: a release in progress whose lock is
    /// not held any more was interrupted.
    pub lock_id: String,
}

/// The env's releases (`rollout history --output json`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct History {
    pub format_version: String,
    /// Every release kept, newest first.
    pub releases: Vec<Release>,
    /// Revision 0: what ran before the first release kept (the tags `up`
    /// first deployed), where `undo` goes when no earlier release succeeded.
    /// Absent with no release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial: Option<Initial>,
}

/// Revision 0 of an env's history: the tags before its first release.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct Initial {
    /// Always 0.
    pub revision: u64,
    /// Every service's tag then.
    pub services: BTreeMap<String, String>,
}

/// Revision 0: the tags before the oldest release kept (its `previous` over
/// the services it did not move), as `helm rollback` can go back to the
/// first revision.
pub fn initial(history: &[Release]) -> Option<Initial> {
    let first = history.iter().min_by_key(|r| r.revision)?;
    let mut services = first.services.clone();
    for (s, t) in &first.previous {
        if !t.is_empty() {
            services.insert(s.clone(), t.clone());
        }
    }
    Some(Initial {
        revision: 0,
        services,
    })
}

/// The current release and each service's state (`rollout status --output
/// json`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct Status {
    pub format_version: String,
    /// The latest release; null before the first.
    pub release: Option<Release>,
    /// Every service's Deployment, by name.
    pub services: BTreeMap<String, ServiceState>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct ServiceState {
    /// The tag its Deployment is annotated with; null if it is not.
    pub tag: Option<String>,
    /// `complete`, `rolling out: …` or `failing: REASON`.
    pub state: String,
}

/// No release: every service already runs the tags asked for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct Unchanged {
    pub format_version: String,
    /// Always false (a release record has no `changed`).
    #[cfg_attr(test, schemars(extend("const" = false)))]
    pub changed: bool,
    /// The latest release; null before the first.
    pub release: Option<Release>,
}

/// Where this process runs, for the record: the CI job if there is one.
pub fn origin(env: &dyn Fn(&str) -> Option<String>, host: &str) -> String {
    if env("GITHUB_ACTIONS").is_some() {
        let run = match (
            env("GITHUB_SERVER_URL"),
            env("GITHUB_REPOSITORY"),
            env("GITHUB_RUN_ID"),
        ) {
            (Some(s), Some(r), Some(id)) => format!(" {s}/{r}/actions/runs/{id}"),
            _ => String::new(),
        };
        return format!(
            "GitHub Actions {}{run}",
            env("GITHUB_WORKFLOW").unwrap_or_default()
        );
    }
    if env("GITLAB_CI").is_some() {
        return format!(
            "GitLab CI {} {}",
            env("CI_JOB_NAME").unwrap_or_default(),
            env("CI_JOB_URL").unwrap_or_default()
        )
        .trim_end()
        .to_string();
    }
    if env("CI").is_some() {
        return format!("CI on {host}");
    }
    format!("terminal on {host}")
}

/// A Deployment's progress by `kubectl rollout status`'s rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Progress {
    Waiting {
        updated: i64,
        available: i64,
        desired: i64,
    },
    Complete,
    Failed {
        reason: String,
        message: String,
    },
}

fn int(v: &serde_json::Value, path: &str) -> i64 {
    v.pointer(path).and_then(|x| x.as_i64()).unwrap_or(0)
}

/// kubectl's `DeploymentStatusViewer`: the observed generation caught up,
/// `ProgressDeadlineExceeded` fails, then updated = desired, no old
/// replicas left, available = updated. (kube-runtime's
/// `is_deployment_completed` checks less.)
pub fn progress(d: &serde_json::Value) -> Progress {
    let desired = v_or(d, "/spec/replicas", 1);
    let updated = int(d, "/status/updatedReplicas");
    let available = int(d, "/status/availableReplicas");
    let waiting = Progress::Waiting {
        updated,
        available,
        desired,
    };
    if int(d, "/metadata/generation") > int(d, "/status/observedGeneration") {
        return waiting;
    }
    let deadline = d
        .pointer("/status/conditions")
        .and_then(|c| c.as_array())
        .and_then(|c| c.iter().find(|c| c["type"] == "Progressing"))
        .filter(|c| c["reason"] == "ProgressDeadlineExceeded");
    if let Some(c) = deadline {
        return Progress::Failed {
            reason: "ProgressDeadlineExceeded".into(),
            message: c["message"].as_str().unwrap_or_default().to_string(),
        };
    }
    if updated < desired || int(d, "/status/replicas") > updated || available < updated {
        return waiting;
    }
    Progress::Complete
}

fn v_or(d: &serde_json::Value, path: &str, default: i64) -> i64 {
    d.pointer(path).and_then(|x| x.as_i64()).unwrap_or(default)
}

/// Waiting reasons that mean a new pod will not become ready by itself.
pub const FAILING: [&str; 4] = [
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "ErrImagePull",
    "CreateContainerConfigError",
];

/// The failing reason and message of a pod running `image`, if any of its
/// containers waits for one of [`FAILING`].
pub fn failing(pod: &serde_json::Value, image: &str) -> Option<(String, String)> {
    let runs = pod
        .pointer("/spec/containers")
        .and_then(|c| c.as_array())
        .is_some_and(|c| c.iter().any(|c| c["image"] == image));
    if !runs {
        return None;
    }
    pod.pointer("/status/containerStatuses")
        .and_then(|s| s.as_array())?
        .iter()
        .find_map(|s| {
            let w = s.pointer("/state/waiting")?;
            let reason = w["reason"].as_str()?;
            FAILING.contains(&reason).then(|| {
                (
                    reason.to_string(),
                    w["message"].as_str().unwrap_or_default().to_string(),
                )
            })
        })
}

/// The next revision after `history`.
pub fn next_revision(history: &[Release]) -> u64 {
    history.iter().map(|r| r.revision).max().unwrap_or(0) + 1
}

/// The last release that succeeded (what `--from` promotes, what `undo`
/// goes back from).
pub fn last_succeeded(history: &[Release]) -> Option<&Release> {
    history
        .iter()
        .filter(|r| r.outcome == Outcome::Succeeded)
        .max_by_key(|r| r.revision)
}

/// What `undo` goes back to, as (revision, every service's tag): release
/// `to`'s (0: the tags before the first release), or the last succeeded
/// release before the current one, else revision 0 — there is always a way
/// back once there is a release.
pub fn undo_target(
    history: &[Release],
    to: Option<u64>,
) -> Result<(u64, BTreeMap<String, String>), String> {
    let start = || {
        initial(history)
            .map(|i| (0, i.services))
            .ok_or_else(|| "there is no release to undo yet".to_string())
    };
    match to {
        Some(0) => start(),
        Some(rev) => history
            .iter()
            .find(|r| r.revision == rev)
            .map(|r| (r.revision, r.services.clone()))
            .ok_or_else(|| format!("there is no release {rev}")),
        None => {
            let current = last_succeeded(history).map(|r| r.revision).unwrap_or(0);
            match history
                .iter()
                .filter(|r| r.outcome == Outcome::Succeeded && r.revision < current)
                .max_by_key(|r| r.revision)
            {
                Some(r) => Ok((r.revision, r.services.clone())),
                None => start(),
            }
        }
    }
}

/// The services whose tag changes: (service, old, new), in name order.
pub fn changes(
    running: &BTreeMap<String, String>,
    wanted: &BTreeMap<String, String>,
) -> Vec<(String, String, String)> {
    wanted
        .iter()
        .filter_map(|(s, new)| {
            let old = running.get(s).cloned().unwrap_or_default();
            (old != *new).then(|| (s.clone(), old, new.clone()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(generation: i64, status: serde_json::Value) -> serde_json::Value {
        json!({"metadata": {"generation": generation}, "spec": {"replicas": 2}, "status": status})
    }

    #[test]
    fn kubectls_rule_and_not_a_weaker_one() {
        let done = json!({"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2});
        assert_eq!(progress(&deployment(2, done.clone())), Progress::Complete);
        // The controller has not seen the new generation yet.
        assert!(matches!(
            progress(&deployment(3, done)),
            Progress::Waiting { .. }
        ));
        // An old replica still terminating.
        let old = json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 2, "availableReplicas": 2});
        assert!(matches!(
            progress(&deployment(2, old)),
            Progress::Waiting { .. }
        ));
        // Updated but not available.
        let unavailable = json!({"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 1});
        assert!(matches!(
            progress(&deployment(2, unavailable)),
            Progress::Waiting { .. }
        ));
        let deadline = json!({"observedGeneration": 2, "conditions": [
            {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
             "message": "ReplicaSet \"users-1\" has timed out progressing."}]});
        assert_eq!(
            progress(&deployment(2, deadline)),
            Progress::Failed {
                reason: "ProgressDeadlineExceeded".into(),
                message: "ReplicaSet \"users-1\" has timed out progressing.".into()
            }
        );
    }

    #[test]
    fn only_new_pods_in_a_failing_state_count() {
        let pod = |image: &str, reason: &str| {
            json!({"spec": {"containers": [{"name": "users", "image": image}]},
                   "status": {"containerStatuses": [{"state": {"waiting": {"reason": reason, "message": "back-off"}}}]}})
        };
        assert_eq!(
            failing(&pod("r/users:v2", "CrashLoopBackOff"), "r/users:v2"),
            Some(("CrashLoopBackOff".into(), "back-off".into()))
        );
        assert_eq!(
            failing(&pod("r/users:v1", "CrashLoopBackOff"), "r/users:v2"),
            None
        );
        assert_eq!(
            failing(&pod("r/users:v2", "ContainerCreating"), "r/users:v2"),
            None
        );
    }

    #[test]
    fn undo_goes_back_to_the_success_before_the_current() {
        let release = |revision, outcome| Release {
            format_version: FORMAT_VERSION.into(),
            project: "scope".into(),
            env: "staging".into(),
            revision,
            tags: BTreeMap::new(),
            previous: BTreeMap::new(),
            services: BTreeMap::new(),
            by: String::new(),
            from: String::new(),
            cause: String::new(),
            started: String::new(),
            ended: None,
            outcome,
            failure: None,
            lock_id: String::new(),
        };
        let h = vec![
            release(1, Outcome::Succeeded),
            release(2, Outcome::Succeeded),
            release(3, Outcome::RolledBack),
            release(4, Outcome::Succeeded),
        ];
        assert_eq!(undo_target(&h, None).unwrap().0, 2);
        assert_eq!(undo_target(&h, Some(1)).unwrap().0, 1);
        assert!(undo_target(&h, Some(9)).is_err());
        assert_eq!(next_revision(&h), 5);
        assert_eq!(last_succeeded(&h).unwrap().revision, 4);
        assert_eq!(
            undo_target(&[], None).unwrap_err(),
            "there is no release to undo yet"
        );
    }

    /// With no earlier success, undo goes to revision 0: the tags before
    /// the first release (its `previous` over the services it kept).
    #[test]
    fn undo_after_the_first_release_goes_to_revision_0() {
        let tags = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(s, t)| (s.to_string(), t.to_string()))
                .collect()
        };
        let first = Release {
            format_version: FORMAT_VERSION.into(),
            project: "scope".into(),
            env: "staging".into(),
            revision: 1,
            tags: tags(&[("users", "v2.0.0")]),
            previous: tags(&[("users", "v1.4.2")]),
            services: tags(&[("users", "v2.0.0"), ("ui", "v1.4.2")]),
            by: String::new(),
            from: String::new(),
            cause: String::new(),
            started: String::new(),
            ended: None,
            outcome: Outcome::Succeeded,
            failure: None,
            lock_id: String::new(),
        };
        let start = tags(&[("users", "v1.4.2"), ("ui", "v1.4.2")]);
        assert_eq!(
            undo_target(std::slice::from_ref(&first), None).unwrap(),
            (0, start.clone())
        );
        assert_eq!(
            undo_target(std::slice::from_ref(&first), Some(0)).unwrap(),
            (0, start.clone())
        );
        // A failed release on top: still back to the start.
        let failed = Release {
            revision: 2,
            outcome: Outcome::RolledBack,
            ..first.clone()
        };
        assert_eq!(undo_target(&[first, failed], None).unwrap(), (0, start));
    }

    #[test]
    fn the_origin_names_the_ci_job() {
        let gh = |k: &str| {
            let v = match k {
                "GITHUB_ACTIONS" => "true",
                "GITHUB_WORKFLOW" => "deploy",
                "GITHUB_SERVER_URL" => "https://github.com",
                "GITHUB_REPOSITORY" => "acme/scope",
                "GITHUB_RUN_ID" => "42",
                _ => return None,
            };
            Some(v.to_string())
        };
        assert_eq!(
            origin(&gh, "runner"),
            "GitHub Actions deploy https://github.com/acme/scope/actions/runs/42"
        );
        assert_eq!(origin(&|_| None, "laptop"), "terminal on laptop");
    }
}
