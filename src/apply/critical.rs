//! The plan's critical path: the longest chain of steps that wait on each
//! other, each weighted by the calls it makes one after another (the
//! re-observation before a create, the create, what completes it). Its
//! length times the latency of one call is a lower bound on the apply's
//! wall time, whatever the concurrency.

use super::graph::{steps, Step, StepGraph};
use crate::plan::Change;

/// One step on the path, with the calls it makes in sequence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathStep {
    pub step: Step,
    pub calls: usize,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CriticalPath {
    /// In the order they run.
    pub steps: Vec<PathStep>,
    /// The sum of their calls: the round trips no schedule can avoid.
    pub calls: usize,
}

impl std::fmt::Display for CriticalPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self
            .steps
            .iter()
            .map(|s| format!("{} {} ({})", s.step.op.verb(), s.step.address, s.calls))
            .collect();
        write!(f, "{} calls: {}", self.calls, parts.join(" → "))
    }
}

/// The longest chain through `changes`' steps (the executor's own order),
/// each step weighing `calls(step)`. Ties go to the lower step index, so
/// the answer is deterministic.
pub fn critical_path(changes: &[Change], calls: impl Fn(&Step) -> usize) -> CriticalPath {
    let (steps, graph) = steps(changes);
    let weight: Vec<usize> = steps.iter().map(&calls).collect();
    // Steps are not numbered in dependency order: walk a topological order.
    let order = match petgraph::algo::toposort(&graph.g, None) {
        Ok(o) => o,
        // A cycle would stop the executor too; there is no path to speak of.
        Err(_) => return CriticalPath::default(),
    };
    // Longest chain ending at each step, and the step before it there.
    let mut best: Vec<usize> = vec![0; steps.len()];
    let mut prev: Vec<Option<usize>> = vec![None; steps.len()];
    for n in order {
        let i = n.index();
        let mut before: Vec<usize> = graph.waits_on(i);
        before.sort_unstable();
        let mut longest = 0;
        for p in before {
            if prev[i].is_none() || best[p] > longest {
                longest = best[p];
                prev[i] = Some(p);
            }
        }
        best[i] = longest + weight[i];
    }
    let Some(end) = (0..steps.len()).max_by(|a, b| best[*a].cmp(&best[*b]).then(b.cmp(a))) else {
        return CriticalPath::default();
    };
    let mut chain = vec![end];
    let mut at = end;
    while let Some(p) = prev[at] {
        chain.push(p);
        at = p;
    }
    chain.reverse();
    CriticalPath {
        calls: best[end],
        steps: chain
            .into_iter()
            .map(|i| PathStep {
                step: steps[i].clone(),
                calls: weight[i],
            })
            .collect(),
    }
}

/// For each step, the longest chain from it to the end, its own weight
/// included: the executor starts the ready step with the most behind it
/// first, so a bound on concurrency does not stretch the critical path.
pub(super) fn remaining(graph: &StepGraph, weight: &[usize]) -> Vec<usize> {
    let mut rest = weight.to_vec();
    if let Ok(order) = petgraph::algo::toposort(&graph.g, None) {
        for n in order.into_iter().rev() {
            let i = n.index();
            let after = graph.unblocks(i).iter().map(|&j| rest[j]).max();
            rest[i] = weight[i] + after.unwrap_or(0);
        }
    }
    rest
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::graph::Op;
    use crate::apply::tests::plan_for;
    use crate::model::{Actual, Kind};

    /// Every chain's length by brute force: the longest path from each step.
    fn longest_from(i: usize, changes: &[Change], w: &dyn Fn(&Step) -> usize) -> usize {
        let (steps, graph) = steps(changes);
        w(&steps[i])
            + graph
                .unblocks(i)
                .iter()
                .map(|&n| longest_from(n, changes, w))
                .max()
                .unwrap_or(0)
    }

    #[test]
    fn the_path_is_a_chain_of_waits_and_the_longest_one() {
        let plan = plan_for(&Actual::default());
        // Weights that vary by kind, so the heaviest chain is not the one
        // with the most steps.
        let w = |s: &Step| match (s.address.kind(), s.op) {
            (Some(Kind::InstanceProfile), _) => 6,
            (Some(Kind::LoadBalancer), _) => 5,
            (_, Op::Create) => 2,
            _ => 1,
        };
        let path = critical_path(&plan.changes, w);
        let (steps, graph) = steps(&plan.changes);
        let index = |s: &Step| steps.iter().position(|x| x == s).unwrap();
        for pair in path.steps.windows(2) {
            let (a, b) = (index(&pair[0].step), index(&pair[1].step));
            assert!(graph.waits_on(b).contains(&a), "{pair:?} is not a wait");
        }
        assert!(graph.waits_on(index(&path.steps[0].step)).is_empty());
        assert_eq!(
            path.calls,
            path.steps.iter().map(|s| s.calls).sum::<usize>()
        );
        let brute = (0..steps.len())
            .map(|i| longest_from(i, &plan.changes, &w))
            .max()
            .unwrap();
        assert_eq!(path.calls, brute);
        assert!(path.steps.len() > 2, "{path}");
        assert!(path
            .to_string()
            .starts_with(&format!("{} calls: create ", path.calls)));
    }

    /// With AWS's own weights, a fresh env's longest chain: the role and
    /// profile (4 calls), the master (2), the API server's certificate,
    /// which names the master and the balancer (3). A change that makes a
    /// step on it longer shows here first.
    #[test]
    fn a_fresh_envs_chain_runs_through_iam_the_master_and_its_certificate() {
        let plan = plan_for(&Actual::default());
        let path = critical_path(&plan.changes, crate::providers::aws::step_calls);
        let kinds: Vec<Option<Kind>> = path.steps.iter().map(|s| s.step.address.kind()).collect();
        assert_eq!(
            kinds,
            [
                Some(Kind::InstanceProfile),
                Some(Kind::Instance),
                Some(Kind::Certificate)
            ],
            "{path}"
        );
        assert_eq!(path.calls, 9, "{path}");
    }

    #[test]
    fn a_heavier_step_moves_the_path() {
        let plan = plan_for(&Actual::default());
        let base = critical_path(&plan.changes, |_| 1);
        // Weigh one step that is off the unit-weight path a lot: it must
        // now be on it.
        let off = plan
            .changes
            .iter()
            .find(|c| !base.steps.iter().any(|s| s.step.address == c.address))
            .unwrap()
            .address
            .clone();
        let heavy = critical_path(&plan.changes, |s| if s.address == off { 100 } else { 1 });
        assert!(heavy.steps.iter().any(|s| s.step.address == off), "{heavy}");
        assert!(heavy.calls >= 100);
        assert_eq!(critical_path(&[], |_| 1), CriticalPath::default());
    }
}
