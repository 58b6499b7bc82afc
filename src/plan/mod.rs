//! Pure: `(Desired, Actual) -> Plan`. Same inputs, same bytes.

use std::collections::{BTreeMap, BTreeSet};

use petgraph::algo::toposort;
use petgraph::graphmap::DiGraphMap;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::desired::Facts;
use crate::model::k8s;
use crate::model::schema::{Field, Order, Type};
use crate::model::{
    Actual, Desired, Kind, Observed, OnChange, Ownership, Props, Resource, ResourceId, Value,
};

/// Bumped on any incompatible change to the JSON plan (a public contract).
/// 2: `reason` is a typed object (`{"type": …, …}`), not a sentence.
pub const FORMAT_VERSION: &str = "2";

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    Create,
    Update,
    /// Delete then create: an immutable field changed.
    Replace,
    Delete,
}

impl Action {
    /// `replaced`, `deleted`, …: for reasons.
    pub fn past(self) -> &'static str {
        match self {
            Action::Create => "created",
            Action::Update => "updated",
            Action::Replace => "replaced",
            Action::Delete => "deleted",
        }
    }

    pub fn symbol(self) -> &'static str {
        match self {
            Action::Create => "+",
            Action::Update => "~",
            Action::Replace => "-/+",
            Action::Delete => "-",
        }
    }
}

/// One resource's change.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct Change {
    pub address: ResourceId,
    pub action: Action,
    pub reason: Option<Reason>,
    pub ownership: Ownership,
    /// The existing resource's AWS id (updates, replaces, deletes).
    pub physical_id: Option<String>,
    /// What exists now (observed; references are physical ids).
    pub before: Option<Props>,
    /// What the config wants (references are `{"ref": address}`).
    pub after: Option<Props>,
    /// Fields that differ (updates and replaces), old and new. In `after`,
    /// references to existing resources are resolved to their ids.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changed: Vec<FieldChange>,
    /// Resources this one's new version needs first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<ResourceId>,
    /// Resources the existing version references: it goes before them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<ResourceId>,
    /// For a replace: whether the new one is created before the old one is
    /// deleted (capacity never drops), or the old one goes first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_before_delete: Option<bool>,
    /// Replaces or deletes part of the control plane (a master, its etcd
    /// volume): shown as `[control plane]`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub control_plane: bool,
    /// This change's delete waits for the deletes of these (a volume comes
    /// off an instance once the instance is gone).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after_deleting: Vec<ResourceId>,
    /// This change's create runs before the deletes of these (a snapshot of
    /// a master's etcd before the master goes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub before_deleting: Vec<ResourceId>,
}

/// Why a resource is replaced or deleted (or a snapshot made): typed, and
/// rendered in one place (its `Display`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Reason {
    /// A field that cannot change in place differs.
    FieldImmutable { field: String },
    /// A reference field points at a resource this plan replaces.
    ReferenceReplaced { field: String, target: ResourceId },
    /// The existing version references a resource that is replaced or deleted.
    ReferenceGoes { target: ResourceId },
    /// A state-store item whose facts changed is issued anew.
    Reissue { field: String },
    /// A leaf certificate is due for renewal (its status says why).
    RenewalDue { status: String },
    /// `pki rotate` asked for it.
    RotationRequested,
    /// Desired no more.
    NotInConfig,
    /// `down`: the env owns it.
    OwnedBy { project: String, env: String },
    /// A second copy of one address; the other one is kept.
    Duplicate { of: String },
    /// A Kubernetes object, created once the API answers (it did not yet).
    AfterApiUp,
    /// A copy of a master's etcd volume before `of` goes.
    Snapshot {
        volume: ResourceId,
        of: ResourceId,
        action: Action,
    },
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::FieldImmutable { field } => write!(f, "{field} cannot change in place"),
            Reason::ReferenceReplaced { field, target } => {
                write!(f, "{field} refers to {target}, which is replaced")
            }
            Reason::ReferenceGoes { target } => {
                write!(f, "it references {target}, which is replaced or deleted")
            }
            Reason::Reissue { field } => write!(f, "{field} changed: reissue"),
            Reason::RenewalDue { status } => write!(f, "{status}: reissue"),
            Reason::RotationRequested => f.write_str("rotation requested: reissue"),
            Reason::NotInConfig => f.write_str("no longer in the config"),
            Reason::OwnedBy { project, env } => write!(f, "owned by {project}/{env}"),
            Reason::Duplicate { of } => write!(f, "duplicate of {of}"),
            Reason::AfterApiUp => f.write_str("after the API is up"),
            Reason::Snapshot { volume, of, action } => write!(
                f,
                "a copy of {volume} before {} is {}",
                of.name(),
                action.past()
            ),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct FieldChange {
    pub field: String,
    pub before: Option<Value>,
    pub after: Value,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct Summary {
    pub create: usize,
    pub update: usize,
    pub replace: usize,
    pub delete: usize,
    pub unchanged: usize,
}

/// A plan: what changes, in order of application, and what it was computed
/// from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct Plan {
    pub format_version: String,
    pub project: String,
    pub env: String,
    /// sha256 of the observed state and facts the plan was computed from.
    pub fingerprint: String,
    pub changes: Vec<Change>,
    pub summary: Summary,
    /// One-line notes that change nothing (a newer image is available).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notices: Vec<String>,
    /// What the command asked beyond the config; `up --plan` plans again
    /// with the same to check the saved plan.
    #[serde(default, skip_serializing_if = "PlanOptions::is_default")]
    pub options: PlanOptions,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct PlanOptions {
    /// Running instances move to the newest image (`--upgrade-image`).
    #[serde(default)]
    pub upgrade_image: bool,
    /// The layers planned (`--phase`).
    #[serde(default, skip_serializing_if = "is_all")]
    pub phase: crate::cli::Phase,
    /// First deployments' tags (`--image NAME=TAG`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub images: BTreeMap<String, String>,
}

fn is_all(p: &crate::cli::Phase) -> bool {
    *p == crate::cli::Phase::All
}

impl PlanOptions {
    fn is_default(&self) -> bool {
        *self == PlanOptions::default()
    }
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("the desired resources reference each other in a cycle (at {0})")]
    Cycle(ResourceId),
    #[error("{0} references {1}, which is neither desired nor existing")]
    Dangling(ResourceId, ResourceId),
}

/// sha256 over the canonical JSON of what was observed.
pub fn fingerprint(facts: &Facts, actual: &Actual) -> String {
    #[derive(Serialize)]
    struct Canon<'a> {
        facts: &'a Facts,
        actual: &'a Actual,
    }
    let bytes = serde_json::to_vec(&Canon { facts, actual }).expect("plain data serializes");
    format!("sha256:{:x}", Sha256::digest(&bytes))
}

/// Orders desired resources so that every reference comes before its user.
pub fn topo_order(desired: &Desired) -> Result<Vec<&Resource>, PlanError> {
    let mut g: DiGraphMap<&ResourceId, ()> = DiGraphMap::new();
    for r in desired.resources.values() {
        g.add_node(&r.id);
    }
    for r in desired.resources.values() {
        for d in r.deps() {
            if let Some((dep, _)) = desired.resources.get_key_value(&d) {
                g.add_edge(dep, &r.id, ());
            }
        }
    }
    let order = toposort(&g, None).map_err(|c| PlanError::Cycle(c.node_id().clone()))?;
    Ok(order.into_iter().map(|id| &desired.resources[id]).collect())
}

/// Diffs desired against actual.
pub fn plan(
    project: &str,
    env: &str,
    desired: &Desired,
    actual: &Actual,
    fingerprint: String,
) -> Result<Plan, PlanError> {
    plan_inner(project, env, desired, actual, fingerprint, false)
}

fn plan_inner(
    project: &str,
    env: &str,
    desired: &Desired,
    actual: &Actual,
    fingerprint: String,
    destroying: bool,
) -> Result<Plan, PlanError> {
    let mut changes: Vec<Change> = Vec::new();
    let mut summary = Summary::default();
    // Ids that get a new physical id in this plan: references to them are unknown.
    let mut renewed: BTreeSet<ResourceId> = BTreeSet::new();
    // Ids whose existing version goes away (replaced or deleted).
    let mut going: BTreeSet<ResourceId> = actual
        .resources
        .keys()
        .filter(|id| !desired.resources.contains_key(*id))
        .cloned()
        .collect();

    for r in topo_order(desired)? {
        let deps: Vec<ResourceId> = r.deps().into_iter().collect();
        for d in &deps {
            if !desired.resources.contains_key(d) {
                return Err(PlanError::Dangling(r.id.clone(), d.clone()));
            }
        }
        let Some(obs) = actual.resources.get(&r.id) else {
            renewed.insert(r.id.clone());
            summary.create += 1;
            // Not seen because the API was not reached: created once it is.
            let unseen = r.kind().is_k8s() && actual.cluster.is_none();
            changes.push(Change {
                address: r.id.clone(),
                action: Action::Create,
                reason: unseen.then_some(Reason::AfterApiUp),
                ownership: r.ownership,
                physical_id: None,
                before: None,
                after: Some(r.props.clone()),
                changed: Vec::new(),
                depends_on: deps,
                references: Vec::new(),
                create_before_delete: None,
                control_plane: false,
                after_deleting: Vec::new(),
                before_deleting: Vec::new(),
            });
            continue;
        };
        let lookup = |t: &ResourceId| -> Option<String> {
            if renewed.contains(t) {
                None
            } else {
                actual.physical(t).map(str::to_string)
            }
        };
        let mut changed = Vec::new();
        let mut reason = None;
        let schema = r.kind().schema();
        let replaces = |field: &str| {
            schema
                .field(field)
                .is_some_and(|f| f.on_change == OnChange::Replace)
        };
        for (field, want) in &r.props {
            // Desired props are declared (a unit test walks every example):
            // an undeclared one is compared like any other, never skipped.
            let decl = schema.field(field);
            if decl.is_some_and(|f| !f.compared()) {
                continue;
            }
            // A Kubernetes object's section: the fields scopectl sets, each
            // difference at its own path (`spec.replicas`).
            if decl.is_some_and(|f| f.ty == Type::Object) {
                let mut leaves = Vec::new();
                k8s::subset_diff(field, want, obs.props.get(field), &mut leaves);
                if !leaves.is_empty() && reason.is_none() && replaces(field) {
                    reason = Some(Reason::FieldImmutable {
                        field: field.clone(),
                    });
                }
                changed.extend(leaves.into_iter().map(|l| FieldChange {
                    field: l.path,
                    before: l.have,
                    after: l.want,
                }));
                continue;
            }
            let resolved = want.resolve(&lookup);
            let have = obs.props.get(field).map(|v| normalize(decl, v));
            if resolved.as_ref().map(|v| normalize(decl, v)) == have && have.is_some() {
                continue;
            }
            changed.push(FieldChange {
                field: field.clone(),
                before: obs.props.get(field).cloned(),
                after: want.resolve_partial(&lookup),
            });
            if reason.is_none() && replaces(field) {
                let pki = r.kind().is_pki();
                reason = Some(match (resolved, want) {
                    (None, Value::Ref(t)) => Reason::ReferenceReplaced {
                        field: field.clone(),
                        target: t.target.clone(),
                    },
                    _ if pki && field == "renewal" => {
                        if want.as_str() == Some(crate::pki::ROTATION_REQUESTED) {
                            Reason::RotationRequested
                        } else {
                            Reason::RenewalDue {
                                status: obs
                                    .props
                                    .get(field)
                                    .and_then(Value::as_str)
                                    .unwrap_or("due")
                                    .to_string(),
                            }
                        }
                    }
                    _ if pki => Reason::Reissue {
                        field: field.clone(),
                    },
                    _ => Reason::FieldImmutable {
                        field: field.clone(),
                    },
                });
            }
        }
        let references: Vec<ResourceId> = actual.deps_of(obs).into_iter().collect();
        // Something this resource references is going away: it cannot stay,
        // unless the reference is deleted outright and sits only in fields
        // that this plan updates in place (a load balancer leaving a subnet).
        let updated_away = |gone: &ResourceId| {
            let Some(pid) = actual.physical(gone) else {
                return false;
            };
            !desired.resources.contains_key(gone)
                && obs.props.iter().all(|(field, v)| {
                    let mut strings = Vec::new();
                    v.strings(&mut strings);
                    !strings.contains(&pid)
                        || (!replaces(field) && changed.iter().any(|c| &c.field == field))
                })
        };
        if reason.is_none() {
            if let Some(gone) = references
                .iter()
                .find(|d| going.contains(*d) && !updated_away(d))
            {
                reason = Some(Reason::ReferenceGoes {
                    target: gone.clone(),
                });
            }
        }
        let action = match (&reason, changed.is_empty()) {
            (Some(_), _) => Action::Replace,
            (None, false) => Action::Update,
            (None, true) => {
                summary.unchanged += 1;
                continue;
            }
        };
        if action == Action::Replace {
            renewed.insert(r.id.clone());
            going.insert(r.id.clone());
            summary.replace += 1;
        } else {
            summary.update += 1;
        }
        changes.push(Change {
            address: r.id.clone(),
            action,
            reason,
            ownership: r.ownership,
            physical_id: Some(obs.physical_id.clone()),
            before: Some(obs.props.clone()),
            after: Some(r.props.clone()),
            changed,
            depends_on: deps,
            references,
            create_before_delete: None,
            control_plane: false,
            after_deleting: Vec::new(),
            before_deleting: Vec::new(),
        });
    }

    let mut delete = |o: &Observed, reason: Reason| {
        summary.delete += 1;
        changes.push(Change {
            address: o.id.clone(),
            action: Action::Delete,
            reason: Some(reason),
            ownership: Ownership::Owned,
            physical_id: Some(o.physical_id.clone()),
            before: Some(o.props.clone()),
            after: None,
            changed: Vec::new(),
            depends_on: Vec::new(),
            references: actual.deps_of(o).into_iter().collect(),
            create_before_delete: None,
            control_plane: false,
            after_deleting: Vec::new(),
            before_deleting: Vec::new(),
        });
    };
    let mut notices = Vec::new();
    for o in actual.resources.values() {
        let kept = !destroying && o.id.kind().is_some_and(|k| k.kept_until_down());
        if !destroying
            && !desired.resources.contains_key(&o.id)
            && o.id.kind().is_some_and(Kind::is_k8s)
        {
            if let Some(notice) = kept_from_prune(o, actual) {
                notices.push(notice);
                continue;
            }
        }
        if !desired.resources.contains_key(&o.id) && !kept {
            delete(
                o,
                if destroying {
                    Reason::OwnedBy {
                        project: project.into(),
                        env: env.into(),
                    }
                } else {
                    Reason::NotInConfig
                },
            );
        }
    }
    for o in &actual.duplicates {
        let kept = actual.physical(&o.id).unwrap_or_default().to_string();
        delete(o, Reason::Duplicate { of: kept });
    }

    if !destroying {
        let snapshots = control_plane_snapshots(desired, actual, &changes, &fingerprint);
        summary.create += snapshots.len();
        changes.extend(snapshots);
    }
    order_volume_changes(desired, actual, &mut changes);

    changes.sort_by(|a, b| {
        (&a.address, a.action, &a.physical_id).cmp(&(&b.address, b.action, &b.physical_id))
    });
    Ok(Plan {
        format_version: FORMAT_VERSION.into(),
        project: project.into(),
        env: env.into(),
        fingerprint,
        changes,
        summary,
        notices,
        options: PlanOptions::default(),
    })
}

/// Why an object scopectl no longer wants is kept, if it is: only what the
/// inventory lists (scopectl applied it) is pruned, and never one annotated
/// `scopectl.io/prune: disabled`. Observation found it by this env's labels,
/// so a look-alike with copied labels is reported, not deleted.
fn kept_from_prune(o: &Observed, actual: &Actual) -> Option<String> {
    let in_inventory = actual
        .cluster
        .as_ref()
        .is_some_and(|c| c.inventory.contains(&o.id));
    if !in_inventory {
        return Some(format!(
            "{} carries this env's labels but scopectl never applied it: left alone",
            o.id
        ));
    }
    let disabled = o
        .props
        .get("annotations")
        .and_then(Value::as_map)
        .and_then(|a| a.get(k8s::PRUNE_ANNOTATION))
        .and_then(Value::as_str)
        == Some("disabled");
    disabled.then(|| {
        format!(
            "{} is no longer in the config but is annotated {}: disabled; kept",
            o.id,
            k8s::PRUNE_ANNOTATION
        )
    })
}

/// The volume a desired instance holds through an attachment, if any.
fn held_volume<'a>(desired: &'a Desired, instance: &ResourceId) -> Option<&'a ResourceId> {
    desired.resources.values().find_map(|r| {
        if r.kind() != Kind::VolumeAttachment {
            return None;
        }
        let target = |f: &str| match r.props.get(f) {
            Some(Value::Ref(t)) => Some(&t.target),
            _ => None,
        };
        (target("instance") == Some(instance))
            .then(|| target("volume"))
            .flatten()
    })
}

/// Sets each replace's order and marks the control plane:
/// - an instance holding a volume is replaced delete-first (a volume has
///   one instance; etcd never runs twice on it), others create-first where
///   their kind does;
/// - a master or an etcd volume that goes is `[control plane]`;
/// - an attachment's delete waits for its instance's (it ends with it) and
///   does not count the instance among what it goes before.
fn order_volume_changes(desired: &Desired, actual: &Actual, changes: &mut [Change]) {
    let going: BTreeSet<ResourceId> = changes
        .iter()
        .filter(|c| matches!(c.action, Action::Replace | Action::Delete))
        .map(|c| c.address.clone())
        .collect();
    for c in changes.iter_mut() {
        let Some(kind) = c.address.kind() else {
            continue;
        };
        if c.action == Action::Replace {
            c.create_before_delete =
                Some(kind.create_before_delete() && held_volume(desired, &c.address).is_none());
        }
        let control_plane = match kind {
            Kind::Instance => c.address.name().starts_with("master-"),
            Kind::Volume => c.address.name().starts_with("etcd-"),
            _ => false,
        };
        c.control_plane = control_plane && matches!(c.action, Action::Replace | Action::Delete);
        if let (Some(field), Some(before)) = (kind.ended_by(), &c.before) {
            let pid = before.get(field).and_then(Value::as_str);
            let ended_by = actual
                .resources
                .values()
                .find(|o| Some(o.physical_id.as_str()) == pid)
                .map(|o| o.id.clone());
            if let Some(owner) = ended_by {
                c.references.retain(|r| *r != owner);
                if going.contains(&owner) {
                    c.after_deleting.push(owner);
                }
            }
        }
    }
}

/// Before a master that holds an etcd volume is replaced, or the volume
/// itself goes, a snapshot of the volume: created before either's delete,
/// named after the plan so each plan's is its own.
fn control_plane_snapshots(
    desired: &Desired,
    actual: &Actual,
    changes: &[Change],
    fingerprint: &str,
) -> Vec<Change> {
    let short: String = fingerprint
        .trim_start_matches("sha256:")
        .chars()
        .take(8)
        .collect();
    let mut out: BTreeMap<ResourceId, Change> = BTreeMap::new();
    for c in changes {
        let (volume, why) = match (c.address.kind(), c.action) {
            (Some(Kind::Instance), Action::Replace) => match held_volume(desired, &c.address) {
                Some(v) => (
                    v.clone(),
                    format!("before {} is replaced", c.address.name()),
                ),
                None => continue,
            },
            (Some(Kind::Volume), Action::Replace | Action::Delete) => (
                c.address.clone(),
                format!("before {} is {}", c.address.name(), c.action.past()),
            ),
            _ => continue,
        };
        if actual.physical(&volume).is_none() {
            continue;
        }
        let id = ResourceId::new(Kind::Snapshot, &format!("{}-{short}", volume.name()));
        let entry = out.entry(id.clone()).or_insert_with(|| Change {
            address: id.clone(),
            action: Action::Create,
            reason: Some(Reason::Snapshot {
                volume: volume.clone(),
                of: c.address.clone(),
                action: c.action,
            }),
            ownership: Ownership::Owned,
            physical_id: None,
            before: None,
            after: Some(Props::from([
                ("volume".to_string(), Value::reference(&volume)),
                (
                    "description".to_string(),
                    Value::str(format!("scopectl: {} {why}", volume.name())),
                ),
            ])),
            changed: Vec::new(),
            // The volume exists (checked above); waiting for a replaced
            // volume's new create would wait on its own delete.
            depends_on: Vec::new(),
            references: Vec::new(),
            create_before_delete: None,
            control_plane: false,
            after_deleting: Vec::new(),
            before_deleting: Vec::new(),
        });
        entry.before_deleting.push(c.address.clone());
    }
    out.into_values().collect()
}

/// A plan that removes everything observed (for `down`).
pub fn destroy(project: &str, env: &str, actual: &Actual, fingerprint: String) -> Plan {
    plan_inner(project, env, &Desired::default(), actual, fingerprint, true)
        .expect("an empty desired state cannot fail")
}

/// The value as compared: a list declared a set is sorted and deduplicated,
/// an ordered one keeps its order (as do lists nested in maps).
fn normalize(decl: Option<&Field>, v: &Value) -> Value {
    match (decl.map(|f| f.ty), v) {
        (Some(Type::List(_, Order::Set)), Value::List(l)) => {
            let mut items = l.clone();
            items.sort();
            items.dedup();
            Value::List(items)
        }
        _ => v.clone(),
    }
}

#[cfg(test)]
pub(crate) mod tests;
