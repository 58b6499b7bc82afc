use super::*;
use crate::desired::tests::{example, sample_facts};
use crate::desired::{desired, Facts};
use crate::model::{Kind, Observed, Ownership, ResourceId};

fn staging() -> Desired {
    desired(&example("staging"), &sample_facts()).unwrap()
}

/// What AWS would hold after applying `d` perfectly: ids handed out in order.
pub(crate) fn applied(d: &Desired) -> Actual {
    let mut actual = Actual::default();
    for (n, r) in topo_order(d).unwrap().into_iter().enumerate() {
        let props = r
            .props
            .iter()
            .filter(|(k, _)| r.kind().schema().field(k).is_none_or(|f| f.compared()))
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.resolve(&|t| actual.physical(t).map(str::to_string))
                        .unwrap(),
                )
            })
            .collect();
        actual.insert(Observed {
            id: r.id.clone(),
            physical_id: format!("id-{n:02}"),
            props,
        });
    }
    actual
}

fn run(d: &Desired, a: &Actual) -> Plan {
    plan("scope", "staging", d, a, fingerprint(&Facts::default(), a)).unwrap()
}

#[test]
fn from_nothing_everything_is_created_in_a_stable_order() {
    let d = staging();
    let p = run(&d, &Actual::default());
    assert_eq!(
        p.summary,
        Summary {
            create: 45,
            ..Summary::default()
        }
    );
    assert!(p.changes.iter().all(|c| c.action == Action::Create));
    // Byte-identical on a second run.
    assert_eq!(
        serde_json::to_string(&p).unwrap(),
        serde_json::to_string(&run(&d, &Actual::default())).unwrap()
    );
}

#[test]
fn snapshot_plans_for_each_example_env() {
    for env in ["staging", "prod", "sandbox", "sandbox-peered"] {
        let d = desired(&example(env), &sample_facts()).unwrap();
        let p = plan(
            "scope",
            env,
            &d,
            &Actual::default(),
            fingerprint(&sample_facts(), &Actual::default()),
        )
        .unwrap();
        insta::assert_snapshot!(format!("plan-{env}"), crate::ui::render_plan(&p, false));
        insta::assert_json_snapshot!(format!("plan-{env}-json"), p);
    }
}

#[test]
fn after_apply_the_plan_is_empty() {
    let d = staging();
    let a = applied(&d);
    let p = run(&d, &a);
    assert!(p.is_empty(), "{:#?}", p.changes);
    assert_eq!(p.summary.unchanged, 45);
}

#[test]
fn immutable_fields_replace_and_their_dependents_follow() {
    let d = staging();
    let mut a = applied(&d);
    let subnet = ResourceId::new(Kind::Subnet, "nodes-us-east-1b");
    a.resources
        .get_mut(&subnet)
        .unwrap()
        .props
        .insert("cidr".into(), Value::str("172.31.140.0/22"));
    let p = run(&d, &a);
    let c = p.changes.iter().find(|c| c.address == subnet).unwrap();
    assert_eq!(c.action, Action::Replace);
    assert_eq!(
        c.reason,
        Some(Reason::FieldImmutable {
            field: "cidr".into()
        })
    );
    assert_eq!(c.changed[0].before, Some(Value::str("172.31.140.0/22")));
    assert_eq!(c.changed[0].after, Value::str("172.31.132.0/22"));
    let assoc = p
        .changes
        .iter()
        .find(|c| c.address == ResourceId::new(Kind::RouteTableAssociation, "nodes-us-east-1b"))
        .unwrap();
    assert_eq!(assoc.action, Action::Replace);
    assert_eq!(
        assoc.reason.as_ref().map(ToString::to_string).as_deref(),
        Some("subnet refers to ec2/subnet/nodes-us-east-1b, which is replaced")
    );
    assert_eq!(
        p.summary,
        Summary {
            replace: 9,
            unchanged: 36,
            ..Summary::default()
        }
    );
    insta::assert_snapshot!(crate::ui::render_plan(&p, false));
}

#[test]
fn mutable_fields_update_in_place() {
    let d = staging();
    let mut a = applied(&d);
    let subnet = ResourceId::new(Kind::Subnet, "nodes-us-east-1a");
    a.resources
        .get_mut(&subnet)
        .unwrap()
        .props
        .insert("public_ip".into(), Value::Bool(false));
    let rules = ResourceId::new(Kind::SecurityGroupIngress, "elb-api");
    let r = a.resources.get_mut(&rules).unwrap();
    let mut list = r.props["rules"].as_list().to_vec();
    list.pop();
    r.props.insert("rules".into(), Value::list(list));
    let p = run(&d, &a);
    assert_eq!(
        p.summary,
        Summary {
            update: 2,
            unchanged: 43,
            ..Summary::default()
        }
    );
    insta::assert_snapshot!(crate::ui::render_plan(&p, false));
}

#[test]
fn extra_and_duplicate_resources_are_deleted() {
    let d = staging();
    let mut a = applied(&d);
    let extra = ResourceId::new(Kind::Subnet, "nodes-us-east-1d");
    a.insert(Observed {
        id: extra.clone(),
        physical_id: "id-99".into(),
        props: Props::new(),
    });
    let dup = ResourceId::new(Kind::SecurityGroup, "nodes");
    a.insert(Observed {
        id: dup.clone(),
        physical_id: "id-zz".into(),
        props: Props::new(),
    });
    let p = run(&d, &a);
    assert_eq!(p.summary.delete, 2);
    let del: Vec<_> = p
        .changes
        .iter()
        .map(|c| {
            (
                c.address.as_str(),
                c.physical_id.as_deref(),
                c.reason.clone(),
            )
        })
        .collect();
    assert!(
        del.contains(&(
            "ec2/subnet/nodes-us-east-1d",
            Some("id-99"),
            Some(Reason::NotInConfig)
        )),
        "{del:?}"
    );
    assert!(del.iter().any(|(a, p, r)| *a == "ec2/security-group/nodes"
        && *p == Some("id-zz")
        && matches!(r, Some(Reason::Duplicate { .. }))));
}

#[test]
fn deleting_a_referenced_resource_replaces_its_referrers() {
    // A rule set on an adopted group references the nodes group; if the group
    // must go, the rule set cannot stay as it is.
    let d = staging();
    let mut a = applied(&d);
    let nodes = ResourceId::new(Kind::SecurityGroup, "nodes");
    a.resources
        .get_mut(&nodes)
        .unwrap()
        .props
        .insert("description".into(), Value::str("old"));
    let p = run(&d, &a);
    let db = p
        .changes
        .iter()
        .find(|c| c.address == ResourceId::new(Kind::SecurityGroupIngress, "database"))
        .unwrap();
    assert_eq!(db.action, Action::Replace);
    assert_eq!(db.ownership, Ownership::OnAdopted);
}

#[test]
fn destroy_deletes_everything_with_references() {
    let a = applied(&staging());
    let p = destroy("scope", "staging", &a, "sha256:x".into());
    assert_eq!(p.summary.delete, 45);
    let assoc = p
        .changes
        .iter()
        .find(|c| c.address.kind() == Some(Kind::RouteTableAssociation))
        .unwrap();
    assert_eq!(
        assoc.references.len(),
        2,
        "an association references its subnet and table"
    );
}

#[test]
fn fingerprint_changes_with_reality() {
    let a = applied(&staging());
    let f1 = fingerprint(&sample_facts(), &a);
    assert_eq!(f1, fingerprint(&sample_facts(), &a));
    let mut b = a.clone();
    b.resources.pop_first();
    assert_ne!(f1, fingerprint(&sample_facts(), &b));
    let mut facts = sample_facts();
    facts.zones.pop();
    assert_ne!(f1, fingerprint(&facts, &a));
}

#[test]
fn the_json_plan_round_trips() {
    let p = run(&staging(), &Actual::default());
    let text = serde_json::to_string(&p).unwrap();
    let back: Plan = serde_json::from_str(&text).unwrap();
    assert_eq!(back, p);
}

#[test]
fn a_leaf_near_expiry_or_with_new_names_is_reissued_and_nothing_else() {
    let mut d = staging();
    let mut a = applied(&d);
    let admin = ResourceId::new(Kind::Certificate, "admin");
    a.resources.get_mut(&admin).unwrap().props.insert(
        "renewal".into(),
        Value::str("due: expires 2026-12-20T00:00:00Z (within 30 days)"),
    );
    let api = ResourceId::new(Kind::Certificate, "apiserver");
    d.resources.get_mut(&api).unwrap().props.insert(
        "sans".into(),
        Value::list(vec![
            Value::str("kubernetes"),
            Value::str("api.example.com"),
        ]),
    );
    let p = run(&d, &a);
    let by = |id: &ResourceId| p.changes.iter().find(|c| &c.address == id).unwrap();
    assert_eq!(p.summary.replace, 2, "{:?}", p.changes);
    assert_eq!(by(&admin).action, Action::Replace);
    assert_eq!(
        by(&admin)
            .reason
            .as_ref()
            .map(ToString::to_string)
            .as_deref(),
        Some("due: expires 2026-12-20T00:00:00Z (within 30 days): reissue")
    );
    assert_eq!(
        by(&api).reason.as_ref().map(ToString::to_string).as_deref(),
        Some("sans changed: reissue")
    );
    // A reissue is one overwrite: no delete step, never a moment without it.
    let (steps, _) = crate::apply::steps(&p.changes);
    let ops: Vec<_> = steps
        .iter()
        .filter(|s| s.address == admin)
        .map(|s| s.op)
        .collect();
    assert_eq!(ops, [crate::apply::Op::Create]);
}

/// Replacing a master: a snapshot of its etcd volume first, the old master
/// gone before the new one (one instance per volume), the attachment off
/// once the old master is gone, and `[control plane]` on both.
#[test]
fn a_master_replacement_snapshots_etcd_and_goes_delete_first() {
    let d = staging();
    let mut a = applied(&d);
    let master = ResourceId::new(Kind::Instance, "master-0");
    a.resources
        .get_mut(&master)
        .unwrap()
        .props
        .insert("instance_type".into(), Value::str("t3.small"));
    let p = run(&d, &a);
    let get = |id: &ResourceId| p.changes.iter().find(|c| &c.address == id).unwrap();
    let m = get(&master);
    assert_eq!(m.action, Action::Replace);
    assert!(
        m.control_plane && m.create_before_delete == Some(false),
        "{m:#?}"
    );
    let attachment = get(&ResourceId::new(Kind::VolumeAttachment, "etcd-master-0"));
    assert_eq!(attachment.action, Action::Replace);
    assert_eq!(attachment.after_deleting, std::slice::from_ref(&master));
    assert!(!attachment.references.contains(&master));
    let snap = p
        .changes
        .iter()
        .find(|c| c.address.kind() == Some(Kind::Snapshot))
        .expect("a snapshot of the etcd volume");
    assert_eq!(snap.action, Action::Create);
    assert_eq!(snap.before_deleting, std::slice::from_ref(&master));
    assert!(snap.address.name().starts_with("etcd-master-0-"));
    // A node's replacement keeps its capacity-first order.
    let mut a2 = applied(&d);
    let node = ResourceId::new(Kind::Instance, "node-0");
    a2.resources
        .get_mut(&node)
        .unwrap()
        .props
        .insert("instance_type".into(), Value::str("t3.small"));
    let p2 = run(&d, &a2);
    let n = p2.changes.iter().find(|c| c.address == node).unwrap();
    assert!(n.create_before_delete == Some(true) && !n.control_plane);
    assert!(!p2
        .changes
        .iter()
        .any(|c| c.address.kind() == Some(Kind::Snapshot)));

    // The steps run: snapshot, old master gone, then the volume comes off
    // (while the new master boots) and goes onto the new master.
    let (steps, graph) = crate::apply::steps(&p.changes);
    let at = |kind: Kind, op: crate::apply::Op| {
        steps
            .iter()
            .position(|s| {
                s.address.kind() == Some(kind)
                    && s.op == op
                    && (kind != Kind::Instance || s.address == master)
            })
            .unwrap()
    };
    use crate::apply::Op;
    let chains = [
        [
            at(Kind::Snapshot, Op::Create),
            at(Kind::Instance, Op::Delete),
            at(Kind::VolumeAttachment, Op::Delete),
            at(Kind::VolumeAttachment, Op::Create),
        ],
        [
            at(Kind::Snapshot, Op::Create),
            at(Kind::Instance, Op::Delete),
            at(Kind::Instance, Op::Create),
            at(Kind::VolumeAttachment, Op::Create),
        ],
    ];
    // Each waits (transitively) on the one before it.
    let before = |a: usize, b: usize| {
        let mut todo = vec![b];
        let mut seen = std::collections::BTreeSet::new();
        while let Some(x) = todo.pop() {
            if x == a {
                return true;
            }
            if seen.insert(x) {
                todo.extend(graph.waits_on(x));
            }
        }
        false
    };
    for order in chains {
        for w in order.windows(2) {
            assert!(
                before(w[0], w[1]),
                "{:?} before {:?}",
                steps[w[0]],
                steps[w[1]]
            );
        }
    }
}

#[test]
fn snapshots_stay_until_down() {
    let d = staging();
    let mut a = applied(&d);
    a.insert(Observed {
        id: ResourceId::new(Kind::Snapshot, "etcd-master-0-abcdef12"),
        physical_id: "snap-1".into(),
        props: Props::new(),
    });
    assert!(run(&d, &a).is_empty());
    let gone = destroy("scope", "staging", &a, "f".into());
    assert!(gone
        .changes
        .iter()
        .any(|c| c.physical_id.as_deref() == Some("snap-1")));
}

/// A newer image changes nothing until asked: the plan says so in one line.
#[test]
fn a_newer_image_is_a_notice_until_asked_for() {
    let facts = sample_facts();
    let d = desired(&example("staging"), &facts).unwrap();
    let a = applied(&d);
    let mut newer = facts.clone();
    newer.image = Some(crate::desired::ImageFacts {
        id: "ami-0newer".into(),
        name: "ubuntu-noble-24.04-amd64-server-20261201".into(),
        created: "2026-12-01T00:00:00.000Z".into(),
    });
    let mut d2 = desired(&example("staging"), &newer).unwrap();
    let notice = crate::desired::keep_images(&mut d2, &a, &newer, false, false);
    let p = run(&d2, &a);
    assert!(p.is_empty(), "{:#?}", p.changes);
    let notice = notice.expect("a notice");
    assert!(
        notice.starts_with("image update available: ami-0newer (ubuntu-noble-24.04-amd64-server-20261201, 2026-12-01"),
        "{notice}"
    );
    // Asked for: every instance is replaced (one at a time, by the executor).
    let mut d3 = desired(&example("staging"), &newer).unwrap();
    assert_eq!(
        crate::desired::keep_images(&mut d3, &a, &newer, false, true),
        None
    );
    let p = run(&d3, &a);
    let instances = d3
        .resources
        .keys()
        .filter(|k| k.kind() == Some(Kind::Instance))
        .count();
    assert_eq!(
        p.changes
            .iter()
            .filter(|c| c.address.kind() == Some(Kind::Instance) && c.action == Action::Replace)
            .count(),
        instances
    );
    // Pinned: the pin decides, no notice.
    let mut d4 = desired(&example("staging"), &newer).unwrap();
    assert_eq!(
        crate::desired::keep_images(&mut d4, &a, &newer, true, false),
        None
    );
}

/// IAM policies read as pretty, key-sorted JSON, and a change names the
/// statements it touches.
#[test]
fn policies_show_pretty_and_by_statement() {
    let d = staging();
    let mut a = applied(&d);
    let profile = ResourceId::new(Kind::InstanceProfile, "node");
    let old = a.resources[&profile].props["policy"]
        .as_str()
        .unwrap()
        .to_string();
    let mut doc: serde_json::Value = serde_json::from_str(&old).unwrap();
    doc["Statement"][0]["Action"] = serde_json::json!(["ssm:GetParameter"]);
    a.resources
        .get_mut(&profile)
        .unwrap()
        .props
        .insert("policy".into(), Value::str(doc.to_string()));
    let p = run(&d, &a);
    let text = crate::ui::render_plan(&p, false);
    insta::assert_snapshot!("policy-statement-diff", text);
    let created = crate::ui::render_plan(&run(&d, &Actual::default()), false);
    assert!(
        created.contains("      policy =\n        {\n          \"Statement\": ["),
        "{created}"
    );
}

/// A list declared a set compares whatever its order; an ordered list's
/// order is part of its value (container, env and args order).
#[test]
fn sets_ignore_order_and_ordered_lists_keep_it() {
    use crate::model::schema::{Elem, Field};
    let ab = Value::List(vec![Value::str("a"), Value::str("b")]);
    let ba = Value::List(vec![Value::str("b"), Value::str("a")]);
    let set = Field::set("groups", Elem::Str);
    let ordered = Field::list("args", Elem::Str);
    assert_eq!(normalize(Some(&set), &ab), normalize(Some(&set), &ba));
    assert_ne!(
        normalize(Some(&ordered), &ab),
        normalize(Some(&ordered), &ba)
    );
}

/// The example's cluster objects, and a cluster that holds exactly them
/// (with what the API server adds: defaults, status-like fields).
fn cluster_applied() -> (Desired, Actual) {
    let config = example("staging");
    let mut d = Desired::default();
    crate::desired::cluster(&config, &sample_facts(), &Default::default(), &mut d).unwrap();
    let mut actual = applied(&d);
    for o in actual.resources.values_mut() {
        if let Some(Value::Map(spec)) = o.props.get_mut("spec") {
            spec.insert("progressDeadlineSeconds".into(), Value::Int(600));
        }
    }
    actual.cluster = Some(crate::model::ClusterState {
        inventory: d.resources.keys().cloned().collect(),
        inventory_exists: true,
        ..Default::default()
    });
    (d, actual)
}

#[test]
fn a_cluster_not_reached_is_created_after_the_api_is_up() {
    let (d, _) = cluster_applied();
    let p = run(&d, &Actual::default());
    assert!(p
        .changes
        .iter()
        .all(|c| c.action == Action::Create && c.reason == Some(Reason::AfterApiUp)));
    assert!(crate::ui::render_plan(&p, false).contains("# after the API is up"));
}

#[test]
fn an_applied_cluster_plans_nothing_and_drift_shows_at_its_field() {
    let (d, mut actual) = cluster_applied();
    assert!(
        run(&d, &actual).is_empty(),
        "{:#?}",
        run(&d, &actual).changes
    );
    let users = ResourceId::parse("k8s/apps/v1/Deployment/scope/users").unwrap();
    if let Some(Value::Map(spec)) = actual
        .resources
        .get_mut(&users)
        .and_then(|o| o.props.get_mut("spec"))
    {
        spec.insert("replicas".into(), Value::Int(5));
    }
    let p = run(&d, &actual);
    assert_eq!(p.changes.len(), 1);
    let c = &p.changes[0];
    assert_eq!((c.action, &c.address), (Action::Update, &users));
    assert_eq!(c.changed[0].field, "spec.replicas");
    assert_eq!(c.changed[0].before, Some(Value::Int(5)));
    assert_eq!(c.changed[0].after, Value::Int(2));
    assert!(crate::ui::render_plan(&p, false).contains("spec.replicas: 5 -> 2"));
}

#[test]
fn a_changed_selector_replaces_the_workload() {
    let (d, mut actual) = cluster_applied();
    let users = ResourceId::parse("k8s/apps/v1/Deployment/scope/users").unwrap();
    actual.resources.get_mut(&users).unwrap().props.insert(
        "selector".into(),
        Value::Map([("matchLabels".to_string(), Value::Map(Default::default()))].into()),
    );
    let p = run(&d, &actual);
    assert_eq!(p.changes[0].action, Action::Replace);
    assert_eq!(
        p.changes[0].reason,
        Some(Reason::FieldImmutable {
            field: "selector".into()
        })
    );
}

#[test]
fn prune_takes_only_what_the_inventory_lists_and_keeps_the_protected() {
    let (mut d, mut actual) = cluster_applied();
    let gone = ResourceId::parse("k8s/apps/v1/Deployment/scope/ui").unwrap();
    let protected = ResourceId::parse("k8s/v1/Service/scope/ui").unwrap();
    d.resources.remove(&gone);
    d.resources.remove(&protected);
    actual.resources.get_mut(&protected).unwrap().props.insert(
        "annotations".into(),
        Value::Map([(k8s::PRUNE_ANNOTATION.to_string(), Value::str("disabled"))].into()),
    );
    // A look-alike with the env's labels that scopectl never applied.
    let lookalike = ResourceId::parse("k8s/v1/ConfigMap/scope/lookalike").unwrap();
    actual.insert(Observed {
        id: lookalike.clone(),
        physical_id: "uid-x".into(),
        props: Props::new(),
    });
    let p = run(&d, &actual);
    let shown: Vec<(Action, &ResourceId)> =
        p.changes.iter().map(|c| (c.action, &c.address)).collect();
    assert_eq!(shown, [(Action::Delete, &gone)]);
    assert_eq!(p.changes[0].reason, Some(Reason::NotInConfig));
    assert!(p
        .notices
        .iter()
        .any(|n| n.contains("lookalike") && n.contains("never applied")));
    assert!(p
        .notices
        .iter()
        .any(|n| n.contains("k8s/v1/Service/scope/ui") && n.contains("kept")));
}
