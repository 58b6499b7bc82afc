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
            .filter(|(k, _)| !r.kind().write_only().contains(&k.as_str()))
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
            create: 40,
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
    assert_eq!(p.summary.unchanged, 40);
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
    assert_eq!(c.reason.as_deref(), Some("cidr cannot change in place"));
    assert_eq!(c.changed[0].before, Some(Value::str("172.31.140.0/22")));
    assert_eq!(c.changed[0].after, Value::str("172.31.132.0/22"));
    let assoc = p
        .changes
        .iter()
        .find(|c| c.address == ResourceId::new(Kind::RouteTableAssociation, "nodes-us-east-1b"))
        .unwrap();
    assert_eq!(assoc.action, Action::Replace);
    assert_eq!(
        assoc.reason.as_deref(),
        Some("subnet refers to ec2/subnet/nodes-us-east-1b, which is replaced")
    );
    assert_eq!(
        p.summary,
        Summary {
            replace: 9,
            unchanged: 31,
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
    let rules = ResourceId::new(Kind::SecurityGroupIngress, "elb");
    let r = a.resources.get_mut(&rules).unwrap();
    let mut list = r.props["rules"].as_list().to_vec();
    list.pop();
    r.props.insert("rules".into(), Value::list(list));
    let p = run(&d, &a);
    assert_eq!(
        p.summary,
        Summary {
            update: 2,
            unchanged: 38,
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
                c.reason.as_deref(),
            )
        })
        .collect();
    assert!(
        del.contains(&(
            "ec2/subnet/nodes-us-east-1d",
            Some("id-99"),
            Some("no longer in the config")
        )),
        "{del:?}"
    );
    assert!(del.iter().any(|(a, p, r)| *a == "ec2/security-group/nodes"
        && *p == Some("id-zz")
        && r.unwrap().starts_with("duplicate of")));
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
    assert_eq!(p.summary.delete, 40);
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
        by(&admin).reason.as_deref(),
        Some("due: expires 2026-12-20T00:00:00Z (within 30 days): reissue")
    );
    assert_eq!(by(&api).reason.as_deref(), Some("sans changed: reissue"));
    // A reissue is one overwrite: no delete step, never a moment without it.
    let (steps, _) = crate::apply::steps(&p.changes);
    let ops: Vec<_> = steps
        .iter()
        .filter(|s| s.address == admin)
        .map(|s| s.op)
        .collect();
    assert_eq!(ops, [crate::apply::Op::Create]);
}
