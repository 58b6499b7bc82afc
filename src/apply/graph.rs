//! Turns plan changes into steps and the order between them.

use std::collections::BTreeMap;

use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::Direction;

use crate::model::ResourceId;
use crate::plan::{Action, Change};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Op {
    Create,
    Update,
    Delete,
}

impl Op {
    pub fn verb(self) -> &'static str {
        match self {
            Op::Create => "create",
            Op::Update => "update",
            Op::Delete => "delete",
        }
    }
}

/// One provider call sequence: a change, or half of a replace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub change: usize,
    pub op: Op,
    pub address: ResourceId,
}

pub struct StepGraph {
    pub(super) g: DiGraph<usize, ()>,
    succ: Vec<Vec<usize>>,
}

impl StepGraph {
    /// Steps that must finish before `i` starts.
    pub fn waits_on(&self, i: usize) -> Vec<usize> {
        self.g
            .neighbors_directed(NodeIndex::new(i), Direction::Incoming)
            .map(|n| n.index())
            .collect()
    }

    /// Steps that wait on `i`.
    pub fn unblocks(&self, i: usize) -> &[usize] {
        &self.succ[i]
    }
}

/// Orders the steps:
/// - a create or update runs after the creates and updates of what it references;
/// - a delete runs before the deletes of what its existing version references
///   (the reverse of creation order);
/// - a replace deletes before it creates, except for kinds that create first
///   (instances: capacity never drops);
/// - replacements of a one-at-a-time kind form a chain per group: the next
///   one starts when the previous old one is gone;
/// - a create waits for the pure deletes of its own kind (a freed CIDR, a freed name);
/// - an update runs before the pure deletes of what its existing version
///   references (it is what lets go of them: a balancer leaves a subnet).
pub fn steps(changes: &[Change]) -> (Vec<Step>, StepGraph) {
    let mut steps = Vec::new();
    let mut ups: BTreeMap<&ResourceId, usize> = BTreeMap::new();
    let mut downs: BTreeMap<&ResourceId, Vec<usize>> = BTreeMap::new();
    for (ci, c) in changes.iter().enumerate() {
        let mut push = |op: Op| {
            steps.push(Step {
                change: ci,
                op,
                address: c.address.clone(),
            });
            steps.len() - 1
        };
        match c.action {
            Action::Create => {
                ups.insert(&c.address, push(Op::Create));
            }
            Action::Update => {
                ups.insert(&c.address, push(Op::Update));
            }
            Action::Delete => downs.entry(&c.address).or_default().push(push(Op::Delete)),
            // A reissued certificate overwrites its parameter: one step, and
            // never a moment without one.
            Action::Replace if c.address.kind().is_some_and(|k| k.is_pki()) => {
                ups.insert(&c.address, push(Op::Create));
            }
            Action::Replace => {
                downs.entry(&c.address).or_default().push(push(Op::Delete));
                ups.insert(&c.address, push(Op::Create));
            }
        }
    }
    // Create-before-delete holds only while nothing the new one needs is
    // itself replaced delete-first (a replaced subnet must be gone before
    // its replacement, and the instances in it with it): to a fixpoint.
    let replaced: BTreeMap<&ResourceId, &Change> = changes
        .iter()
        .filter(|c| c.action == Action::Replace)
        .map(|c| (&c.address, c))
        .collect();
    let mut create_first: std::collections::BTreeSet<&ResourceId> = replaced
        .keys()
        .filter(|a| replaced[*a].create_before_delete == Some(true))
        .copied()
        .collect();
    loop {
        let demote: Vec<&ResourceId> = create_first
            .iter()
            .filter(|a| {
                replaced[*a]
                    .depends_on
                    .iter()
                    .any(|d| replaced.contains_key(d) && !create_first.contains(d))
            })
            .copied()
            .collect();
        if demote.is_empty() {
            break;
        }
        for a in demote {
            create_first.remove(a);
        }
    }
    let mut g = DiGraph::<usize, ()>::new();
    for i in 0..steps.len() {
        g.add_node(i);
    }
    let mut edge = |a: usize, b: usize| {
        if a != b && g.find_edge(NodeIndex::new(a), NodeIndex::new(b)).is_none() {
            g.add_edge(NodeIndex::new(a), NodeIndex::new(b), ());
        }
    };
    for (ci, c) in changes.iter().enumerate() {
        if let Some(&up) = ups.get(&c.address) {
            for d in &c.depends_on {
                if let Some(&dep) = ups.get(d) {
                    edge(dep, up);
                }
            }
            if let Some(own) = downs.get(&c.address) {
                if create_first.contains(&c.address) {
                    own.iter().for_each(|&d| edge(up, d));
                } else {
                    own.iter().for_each(|&d| edge(d, up));
                }
            }
            let kind = c.address.kind();
            for (other, ds) in &downs {
                if other.kind() == kind
                    && changes
                        .iter()
                        .any(|x| &x.address == *other && x.action == Action::Delete)
                {
                    ds.iter().for_each(|&d| edge(d, up));
                }
            }
        }
        if c.action == Action::Update {
            if let Some(&up) = ups.get(&c.address) {
                for r in &c.references {
                    let pure_delete = changes
                        .iter()
                        .any(|x| &x.address == r && x.action == Action::Delete);
                    if let (true, Some(theirs)) = (pure_delete, downs.get(r)) {
                        theirs.iter().for_each(|&d| edge(up, d));
                    }
                }
            }
        }
        if let Some(own) = downs.get(&c.address) {
            for r in &c.references {
                if let Some(theirs) = downs.get(r) {
                    for &a in own {
                        for &b in theirs {
                            // Only the delete steps of this change reference `r`.
                            if steps[a].change == ci {
                                edge(a, b);
                            }
                        }
                    }
                }
            }
        }
    }
    // Declared orders: a snapshot before the delete it guards, an attachment's
    // delete after the instance it ends with.
    for c in changes {
        if let Some(&up) = ups.get(&c.address) {
            for r in &c.before_deleting {
                for &d in downs.get(r).into_iter().flatten() {
                    edge(up, d);
                }
            }
        }
        for r in &c.after_deleting {
            for &theirs in downs.get(r).into_iter().flatten() {
                for &mine in downs.get(&c.address).into_iter().flatten() {
                    edge(theirs, mine);
                }
            }
        }
    }
    // Kubernetes objects in kapp's order: namespaces, then RBAC, then
    // accounts, config and secrets, then workloads and services; each rank's
    // applies wait for the previous present rank's, deletes go in reverse.
    let mut ranked_ups: BTreeMap<u8, Vec<usize>> = BTreeMap::new();
    let mut ranked_downs: BTreeMap<u8, Vec<usize>> = BTreeMap::new();
    for c in changes {
        let Some(rank) = c.address.kind().and_then(|k| k.k8s()).map(|a| a.rank) else {
            continue;
        };
        if let Some(&up) = ups.get(&c.address) {
            ranked_ups.entry(rank).or_default().push(up);
        }
        for &d in downs.get(&c.address).into_iter().flatten() {
            ranked_downs.entry(rank).or_default().push(d);
        }
    }
    let ups_by_rank: Vec<&Vec<usize>> = ranked_ups.values().collect();
    for pair in ups_by_rank.windows(2) {
        for &a in pair[0] {
            for &b in pair[1] {
                edge(a, b);
            }
        }
    }
    let downs_by_rank: Vec<&Vec<usize>> = ranked_downs.values().rev().collect();
    for pair in downs_by_rank.windows(2) {
        for &a in pair[0] {
            for &b in pair[1] {
                edge(a, b);
            }
        }
    }
    // Rolling replacement: one instance at a time across the kind (as kops'
    // rolling update: the masters first, then the other groups), in index
    // order; each create waits for the previous replacement's delete. Groups
    // run apart would let a master and a node be replaced at once.
    // (not a master, group, index) orders a kind's replacements.
    type Order = (bool, String, u64);
    let mut chains: BTreeMap<String, Vec<(Order, usize)>> = BTreeMap::new();
    for (ci, c) in changes.iter().enumerate() {
        let Some(kind) = c.address.kind().filter(|k| k.one_at_a_time()) else {
            continue;
        };
        if c.action != Action::Replace {
            continue;
        }
        let name = c.address.name();
        let (group, index) = name
            .rsplit_once('-')
            .and_then(|(g, i)| i.parse::<u64>().ok().map(|i| (g, i)))
            .unwrap_or((name, 0));
        chains
            .entry(kind.prefix().to_string())
            .or_default()
            .push(((group != "master", group.to_string(), index), ci));
    }
    for chain in chains.values_mut() {
        chain.sort_unstable();
        for pair in chain.windows(2) {
            let (prev, next) = (&changes[pair[0].1].address, &changes[pair[1].1].address);
            if let (Some(ds), Some(&up)) = (downs.get(prev), ups.get(next)) {
                for &d in ds {
                    edge(d, up);
                }
            }
        }
    }
    let succ = (0..steps.len())
        .map(|i| {
            let mut v: Vec<usize> = g
                .neighbors_directed(NodeIndex::new(i), Direction::Outgoing)
                .map(|n| n.index())
                .collect();
            v.sort_unstable();
            v
        })
        .collect();
    (steps, StepGraph { g, succ })
}
