use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use super::*;
use crate::desired::desired;
use crate::desired::tests::{example, sample_facts};
use crate::model::{Actual, Kind, Observed, Props, Resource, ResourceId, Value};
use crate::plan::tests::applied;
use crate::plan::{destroy, fingerprint, plan, Plan};
use crate::teardown::{teardown, Inventory, TeardownError, TeardownOptions};

/// A cloud in memory: records the order of calls, hands out ids, and fails
/// on demand.
#[derive(Default)]
struct Fake {
    log: Mutex<Vec<String>>,
    state: Mutex<BTreeMap<ResourceId, Observed>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    /// Per address: errors to return before succeeding.
    faults: Mutex<BTreeMap<String, Vec<ErrorKind>>>,
    /// Deletes refused while these ids still exist: (blocked, blocker).
    blocked_by: Vec<(String, String)>,
    next: AtomicUsize,
    /// Creates applied and then answered with a dropped connection.
    lose_answer: Mutex<std::collections::BTreeSet<String>>,
    /// Per id: how many more finds miss it (eventual consistency).
    invisible: Mutex<BTreeMap<ResourceId, usize>>,
    /// Deletes of this kind go in batches (`delete_all`); a batch that
    /// holds this address fails whole, as one bad id fails a request.
    batch: Option<(Kind, Option<String>)>,
}

impl Fake {
    fn fault(&self, address: &str, kinds: &[ErrorKind]) {
        self.faults
            .lock()
            .unwrap()
            .insert(address.into(), kinds.to_vec());
    }

    async fn call(&self, what: String, address: &ResourceId) -> Result<(), ProviderError> {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(5)).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.log.lock().unwrap().push(what);
        if let Some(k) = self
            .faults
            .lock()
            .unwrap()
            .get_mut(address.as_str())
            .and_then(|v| (!v.is_empty()).then(|| v.remove(0)))
        {
            return Err(ProviderError::new(k, None, format!("injected {k:?}")));
        }
        Ok(())
    }

    fn position(&self, entry: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .position(|e| e == entry)
            .unwrap_or_else(|| panic!("{entry} never ran"))
    }
}

impl Provider for Fake {
    async fn find(&self, r: &Resource) -> Result<Option<String>, ProviderError> {
        if let Some(n) = self.invisible.lock().unwrap().get_mut(&r.id) {
            if *n > 0 {
                *n -= 1;
                return Ok(None);
            }
        }
        Ok(self
            .state
            .lock()
            .unwrap()
            .get(&r.id)
            .map(|o| o.physical_id.clone()))
    }
    async fn create(&self, r: &Resource) -> Result<String, ProviderError> {
        self.call(format!("create {}", r.id), &r.id).await?;
        let pid = format!("p-{}", self.next.fetch_add(1, Ordering::SeqCst));
        let props = r
            .props
            .iter()
            .filter(|(k, _)| k.as_str() != "descriptions")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        self.state.lock().unwrap().insert(
            r.id.clone(),
            Observed {
                id: r.id.clone(),
                physical_id: pid.clone(),
                props,
            },
        );
        if self.lose_answer.lock().unwrap().remove(r.id.as_str()) {
            self.invisible.lock().unwrap().insert(r.id.clone(), 3);
            return Err(ProviderError::new(
                ErrorKind::Transient,
                None,
                "connection closed before an answer",
            ));
        }
        Ok(pid)
    }
    async fn update(&self, r: &Resource, _pid: &str, _before: &Props) -> Result<(), ProviderError> {
        self.call(format!("update {}", r.id), &r.id).await?;
        if let Some(o) = self.state.lock().unwrap().get_mut(&r.id) {
            o.props = r.props.clone();
        }
        Ok(())
    }
    fn batches_deletes(&self, step: &Step) -> bool {
        self.batch.as_ref().map(|b| b.0) == step.address.kind()
    }
    async fn delete_all(
        &self,
        items: &[(ResourceId, String, Props)],
    ) -> Vec<Result<(), ProviderError>> {
        let names: Vec<&str> = items.iter().map(|(id, _, _)| id.as_str()).collect();
        self.log
            .lock()
            .unwrap()
            .push(format!("delete_all {}", names.join(" ")));
        let poisoned = self.batch.as_ref().and_then(|b| b.1.as_deref());
        if let Some(bad) = poisoned.filter(|b| names.contains(b)) {
            let e = ProviderError::new(ErrorKind::NotFound, None, format!("{bad} unknown"));
            return items.iter().map(|_| Err(e.clone())).collect();
        }
        let mut state = self.state.lock().unwrap();
        for (id, _, _) in items {
            state.remove(id);
        }
        items.iter().map(|_| Ok(())).collect()
    }
    async fn delete(
        &self,
        id: &ResourceId,
        _pid: &str,
        _before: &Props,
    ) -> Result<(), ProviderError> {
        let blocked = {
            let state = self.state.lock().unwrap();
            self.blocked_by
                .iter()
                .any(|(a, b)| a == id.as_str() && state.keys().any(|k| k.as_str() == b))
        };
        self.call(format!("delete {id}"), id).await?;
        if blocked {
            return Err(ProviderError::new(
                ErrorKind::DependencyViolation,
                None,
                "in use",
            ));
        }
        self.state.lock().unwrap().remove(id);
        Ok(())
    }
}

impl Inventory for Fake {
    async fn inventory(&self) -> Result<Actual, ProviderError> {
        let mut a = Actual::default();
        for o in self.state.lock().unwrap().values() {
            a.insert(o.clone());
        }
        Ok(a)
    }
}

fn opts(concurrency: usize) -> Options {
    Options {
        concurrency,
        min_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
        ..Options::default()
    }
}

pub(super) fn plan_for(actual: &Actual) -> Plan {
    let d = desired(&example("staging"), &sample_facts()).unwrap();
    plan(
        "scope",
        "staging",
        &d,
        actual,
        fingerprint(&sample_facts(), actual),
    )
    .unwrap()
}

fn ids(a: &Actual) -> BTreeMap<ResourceId, String> {
    a.resources
        .iter()
        .map(|(k, v)| (k.clone(), v.physical_id.clone()))
        .collect()
}

#[tokio::test]
async fn creates_follow_references_concurrently_within_the_bound() {
    let fake = Fake::default();
    let p = plan_for(&Actual::default());
    let out = execute(&p, BTreeMap::new(), &fake, &NoReporter, &opts(3)).await;
    assert!(out.ok(), "{out:?}");
    assert_eq!(out.created, 45);
    let max = fake.max_in_flight.load(Ordering::SeqCst);
    assert!((2..=3).contains(&max), "max in flight {max}");
    for (before, after) in [
        (
            "create ec2/subnet/nodes-us-east-1a",
            "create ec2/route-table-association/nodes-us-east-1a",
        ),
        (
            "create ec2/route-table/cluster",
            "create ec2/route/cluster-default",
        ),
        (
            "create ec2/security-group/nodes",
            "create ec2/security-group-ingress/database",
        ),
        (
            "create ec2/security-group/elb-api",
            "create ec2/security-group-ingress/masters",
        ),
    ] {
        assert!(
            fake.position(before) < fake.position(after),
            "{before} must precede {after}"
        );
    }
    // Re-observed, the result matches the plan: nothing left to do.
    let again = plan_for(&fake.inventory().await.unwrap());
    assert!(again.is_empty(), "{:#?}", again.changes);
}

#[tokio::test]
async fn transient_errors_are_retried_and_fatal_ones_skip_dependents() {
    let fake = Fake::default();
    fake.fault(
        "ec2/subnet/nodes-us-east-1a",
        &[
            ErrorKind::Transient,
            ErrorKind::Transient,
            ErrorKind::NotFound,
        ],
    );
    fake.fault("ec2/route-table/cluster", &[ErrorKind::Fatal]);
    let p = plan_for(&Actual::default());
    let out = execute(&p, BTreeMap::new(), &fake, &NoReporter, &opts(8)).await;
    assert_eq!(out.failures.len(), 1, "{out:?}");
    let failed = out.failures[0].object.as_ref().unwrap();
    assert_eq!(failed.address.as_str(), "ec2/route-table/cluster");
    assert_eq!(failed.phase, crate::apply::Phase::Create);
    let log = fake.log.lock().unwrap().clone();
    assert_eq!(
        log.iter()
            .filter(|e| *e == "create ec2/subnet/nodes-us-east-1a")
            .count(),
        4,
        "three retries then success"
    );
    assert!(
        !log.iter()
            .any(|e| e.contains("route-table-association") || e.contains("ec2/route/")),
        "dependents of a failure must not run"
    );
    // Another run finishes the job; nothing is created twice.
    let rest = plan_for(&fake.inventory().await.unwrap());
    let out = execute(
        &rest,
        ids(&fake.inventory().await.unwrap()),
        &fake,
        &NoReporter,
        &opts(8),
    )
    .await;
    assert!(out.ok(), "{out:?}");
    assert_eq!(fake.state.lock().unwrap().len(), 45);
}

#[tokio::test]
async fn a_create_finds_what_an_interrupted_run_left() {
    let fake = Fake::default();
    let p = plan_for(&Actual::default());
    // The previous run created the route table, then died before recording it.
    fake.state.lock().unwrap().insert(
        ResourceId::new(Kind::RouteTable, "cluster"),
        Observed {
            id: ResourceId::new(Kind::RouteTable, "cluster"),
            physical_id: "p-old".into(),
            props: Props::new(),
        },
    );
    let out = execute(&p, BTreeMap::new(), &fake, &NoReporter, &opts(8)).await;
    assert!(out.ok());
    assert_eq!((out.created, out.found), (44, 1));
    assert!(!fake
        .log
        .lock()
        .unwrap()
        .contains(&"create ec2/route-table/cluster".to_string()));
    assert_eq!(
        out.ids[&ResourceId::new(Kind::RouteTable, "cluster")],
        "p-old"
    );
}

#[tokio::test]
async fn replace_deletes_dependents_first_then_recreates_in_order() {
    let d = desired(&example("staging"), &sample_facts()).unwrap();
    let mut actual = applied(&d);
    let subnet = ResourceId::new(Kind::Subnet, "nodes-us-east-1b");
    actual
        .resources
        .get_mut(&subnet)
        .unwrap()
        .props
        .insert("cidr".into(), Value::str("10.0.0.0/24"));
    let fake = Fake::default();
    *fake.state.lock().unwrap() = actual.resources.clone();
    let p = plan_for(&actual);
    let out = execute(&p, ids(&actual), &fake, &NoReporter, &opts(8)).await;
    assert!(out.ok(), "{out:?}");
    let pos = |e: &str| fake.position(e);
    assert!(
        pos("delete ec2/route-table-association/nodes-us-east-1b")
            < pos("delete ec2/subnet/nodes-us-east-1b")
    );
    assert!(pos("delete ec2/subnet/nodes-us-east-1b") < pos("create ec2/subnet/nodes-us-east-1b"));
    assert!(
        pos("create ec2/subnet/nodes-us-east-1b")
            < pos("create ec2/route-table-association/nodes-us-east-1b")
    );
}

#[tokio::test]
async fn teardown_waits_out_dependencies_in_waves() {
    let d = desired(&example("staging"), &sample_facts()).unwrap();
    let actual = applied(&d);
    // The nodes group stays "in use" until the elb group is gone (as an ENI
    // of a load balancer would hold it).
    let fake = Fake {
        blocked_by: vec![(
            "ec2/security-group/nodes".into(),
            "ec2/security-group/elb-api".into(),
        )],
        ..Fake::default()
    };
    fake.fault(
        "ec2/security-group/elb-api",
        &[ErrorKind::DependencyViolation; 4],
    );
    *fake.state.lock().unwrap() = actual.resources.clone();
    let (owner, o) = (staging(), teardown_opts(10));
    let out = teardown(&owner, &fake, None, &NoReporter, &o)
        .await
        .unwrap();
    assert_eq!(out.deleted, 45);
    assert!(out.waves >= 2, "{out:?}");
    assert!(fake.state.lock().unwrap().is_empty());
    let _ = destroy("scope", "staging", &actual, "x".into());
}

#[tokio::test]
async fn teardown_gives_up_without_progress() {
    let actual = applied(&desired(&example("staging"), &sample_facts()).unwrap());
    let fake = Fake::default();
    fake.fault(
        "ec2/security-group/elb-api",
        &[ErrorKind::DependencyViolation; 1000],
    );
    *fake.state.lock().unwrap() = actual.resources.clone();
    let (owner, o) = (staging(), teardown_opts(3));
    let err = teardown(&owner, &fake, None, &NoReporter, &o)
        .await
        .unwrap_err();
    let TeardownError::NoProgress { remaining, .. } = err else {
        panic!("{err}")
    };
    assert_eq!(remaining, [ResourceId::new(Kind::SecurityGroup, "elb-api")]);
}

/// A delete that fails (an error, not "not yet") does not stop `down`:
/// everything that does not depend on it still goes, and every failure is
/// reported at the end.
#[tokio::test]
async fn teardown_goes_on_past_a_failed_delete_and_reports_every_failure() {
    let actual = applied(&desired(&example("staging"), &sample_facts()).unwrap());
    let total = actual.resources.len();
    let fake = Fake::default();
    for address in ["elb/load-balancer/api", "iam/instance-profile/node"] {
        fake.fault(address, &[ErrorKind::Fatal; 1000]);
    }
    *fake.state.lock().unwrap() = actual.resources.clone();
    let (owner, o) = (staging(), teardown_opts(3));
    let err = teardown(&owner, &fake, None, &NoReporter, &o)
        .await
        .unwrap_err();
    let TeardownError::Failed {
        failures,
        remaining,
    } = &err
    else {
        panic!("{err}")
    };
    let failed: Vec<String> = failures.iter().map(|(a, _)| a.to_string()).collect();
    assert_eq!(
        failed.iter().collect::<BTreeSet<_>>(),
        BTreeSet::from([
            &"elb/load-balancer/api".to_string(),
            &"iam/instance-profile/node".to_string()
        ]),
        "{err}"
    );
    // Nothing in this fake depends on the two: all the rest went.
    let left: Vec<String> = fake
        .state
        .lock()
        .unwrap()
        .keys()
        .map(ToString::to_string)
        .collect();
    assert_eq!(left.len(), 2, "of {total}, left: {left:?}");
    assert_eq!(remaining.len(), 2, "{err}");
    let text = err.to_string();
    assert!(text.starts_with("deleting 2 resources failed: "), "{text}");
}

fn staging() -> crate::model::Owner {
    crate::model::Owner {
        project: "scope".into(),
        env: "staging".into(),
    }
}

/// Teardown as `down` runs it, with a 1 ms pause between waves.
fn teardown_opts(max_stalls: usize) -> TeardownOptions {
    TeardownOptions {
        pause: Duration::from_millis(1),
        max_stalls,
        apply: Options {
            tolerate_dependencies: true,
            ..opts(8)
        },
        ..TeardownOptions::default()
    }
}

/// A create whose answer was lost, and which tag-filtered reads do not show
/// for a while, is waited for, not made twice.
#[tokio::test]
async fn a_create_whose_answer_was_lost_is_found_not_repeated() {
    for polls in [6, 0] {
        let fake = Fake::default();
        for a in ["ec2/subnet/nodes-us-east-1a", "ec2/instance/master-0"] {
            fake.lose_answer.lock().unwrap().insert(a.into());
        }
        let p = plan_for(&Actual::default());
        let o = Options {
            lost_create_polls: polls,
            ..opts(8)
        };
        let out = execute(&p, BTreeMap::new(), &fake, &NoReporter, &o).await;
        assert!(out.ok(), "{out:?}");
        let creates = |a: &str| {
            fake.log
                .lock()
                .unwrap()
                .iter()
                .filter(|e| *e == &format!("create {a}"))
                .count()
        };
        // Without the wait, the second attempt misses it and creates again.
        let want = if polls > 0 { 1 } else { 2 };
        assert_eq!(
            creates("ec2/subnet/nodes-us-east-1a"),
            want,
            "polls {polls}"
        );
        assert_eq!(creates("ec2/instance/master-0"), want, "polls {polls}");
    }
}

#[test]
fn kubernetes_objects_apply_in_kapps_order_and_delete_in_reverse() {
    use crate::model::k8s;
    let change = |kind: Kind, name: &str, action: Action| {
        bare(
            k8s::address(
                kind,
                kind.k8s().unwrap().namespaced.then_some("scope"),
                name,
            ),
            action,
        )
    };
    let changes = vec![
        change(Kind::Deployment, "users", Action::Create),
        change(Kind::ConfigMap, "c", Action::Create),
        change(Kind::Namespace, "scope", Action::Create),
        change(Kind::ClusterRole, "r", Action::Create),
        change(Kind::Service, "old", Action::Delete),
        change(Kind::Secret, "old", Action::Delete),
    ];
    let (steps, graph) = crate::apply::steps(&changes);
    let at = |name: &str, op: crate::apply::Op| {
        steps
            .iter()
            .position(|s| s.address.as_str().ends_with(name) && s.op == op)
            .unwrap()
    };
    use crate::apply::Op::{Create, Delete};
    let waits = |a: usize| graph.waits_on(a);
    assert_eq!(waits(at("Namespace/scope", Create)), Vec::<usize>::new());
    assert_eq!(
        waits(at("ClusterRole/r", Create)),
        [at("Namespace/scope", Create)]
    );
    assert_eq!(
        waits(at("ConfigMap/scope/c", Create)),
        [at("ClusterRole/r", Create)]
    );
    assert_eq!(
        waits(at("Deployment/scope/users", Create)),
        [at("ConfigMap/scope/c", Create)]
    );
    // Deletes in reverse: the Service (rank 3) before the Secret (rank 2).
    assert_eq!(
        waits(at("Secret/scope/old", Delete)),
        [at("Service/scope/old", Delete)]
    );
}

/// With one step at a time, the ready step with the longest chain behind it
/// goes first, not the lowest index: the head of the critical path starts
/// the run, and every step starts only once its chain is the longest left.
#[tokio::test]
async fn the_longest_chain_behind_a_step_starts_it_first() {
    let fake = Fake::default();
    let p = plan_for(&Actual::default());
    let out = execute(&p, BTreeMap::new(), &fake, &NoReporter, &opts(1)).await;
    assert!(out.ok(), "{out:?}");
    let (steps, graph) = steps(&p.changes);
    let rank = critical::remaining(&graph, &vec![1; steps.len()]);
    let longest = rank.iter().copied().max().unwrap();
    let first = fake
        .log
        .lock()
        .unwrap()
        .iter()
        .find(|e| e.starts_with("create "))
        .cloned()
        .unwrap();
    let i = steps
        .iter()
        .position(|s| first == format!("create {}", s.address))
        .unwrap();
    assert_eq!(rank[i], longest, "{first} has {} behind it", rank[i]);
    // Lowest index first would have started with a step with less behind it.
    assert!(rank[0] < longest, "{}", steps[0].address);
}

/// Deletes of a kind that batches and that are ready together go as one
/// `delete_all`; when the batch fails, each is deleted alone.
#[tokio::test]
async fn deletes_ready_together_go_in_one_batch() {
    // Only the instances: nothing else orders them, all are ready at once.
    let mut actual = applied(&desired(&example("staging"), &sample_facts()).unwrap());
    actual
        .resources
        .retain(|id, _| id.kind() == Some(Kind::Instance));
    let instances: Vec<String> = actual
        .resources
        .keys()
        .filter(|id| id.kind() == Some(Kind::Instance))
        .map(|id| id.to_string())
        .collect();
    assert!(instances.len() >= 3, "{instances:?}");
    for poisoned in [None, Some(instances[0].clone())] {
        let fake = Fake {
            batch: Some((Kind::Instance, poisoned.clone())),
            ..Fake::default()
        };
        *fake.state.lock().unwrap() = actual.resources.clone();
        let out = teardown(&staging(), &fake, None, &NoReporter, &teardown_opts(3))
            .await
            .unwrap();
        assert_eq!(out.deleted, actual.resources.len());
        assert!(fake.state.lock().unwrap().is_empty());
        let log = fake.log.lock().unwrap().clone();
        let batches: Vec<&String> = log.iter().filter(|e| e.starts_with("delete_all")).collect();
        let alone: Vec<&String> = log
            .iter()
            .filter(|e| e.starts_with("delete ec2/instance/"))
            .collect();
        assert_eq!(
            batches,
            [&format!("delete_all {}", instances.join(" "))],
            "{log:#?}"
        );
        match poisoned {
            None => assert!(alone.is_empty(), "{alone:?}"),
            Some(bad) => {
                let failed = batches.iter().find(|b| b.contains(&bad)).unwrap();
                let retried = failed.split(' ').skip(1).count();
                assert_eq!(alone.len(), retried, "{log:#?}");
            }
        }
    }
}

/// Instances are replaced one at a time across their groups, the masters
/// first (as kops' rolling update): a master and a node never at once.
#[test]
fn rolling_replacement_is_one_instance_at_a_time_masters_first() {
    let change = |name: &str| Change {
        physical_id: Some(format!("i-{name}")),
        before: Some(Props::new()),
        ..bare(ResourceId::new(Kind::Instance, name), Action::Replace)
    };
    let changes = vec![change("node-1"), change("node-0"), change("master-0")];
    let (steps, graph) = crate::apply::steps(&changes);
    let at = |name: &str, op: crate::apply::Op| {
        steps
            .iter()
            .position(|s| s.address.name() == name && s.op == op)
            .unwrap()
    };
    use crate::apply::Op::{Create, Delete};
    assert!(graph
        .waits_on(at("node-0", Create))
        .contains(&at("master-0", Delete)));
    assert!(graph
        .waits_on(at("node-1", Create))
        .contains(&at("node-0", Delete)));
    assert!(!graph
        .waits_on(at("master-0", Create))
        .iter()
        .any(|&w| steps[w].address.name().starts_with("node")));
}

/// A change with nothing but its address and action (and empty props after).
fn bare(address: ResourceId, action: Action) -> Change {
    Change {
        address,
        action,
        reason: None,
        ownership: crate::model::Ownership::Owned,
        physical_id: None,
        before: None,
        after: Some(Props::new()),
        changed: Vec::new(),
        depends_on: Vec::new(),
        references: Vec::new(),
        create_before_delete: None,
        control_plane: false,
        after_deleting: Vec::new(),
        before_deleting: Vec::new(),
    }
}
