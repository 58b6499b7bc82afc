use std::path::Path;

use super::*;
use crate::config;
use crate::model::{Kind, ResourceId, Value};

/// The facts of a typical account: a default VPC with six /20 subnets, a
/// gateway, and the database in it.
pub(crate) fn sample_facts() -> Facts {
    let zones: Vec<String> = "abcdef".chars().map(|c| format!("us-east-1{c}")).collect();
    Facts {
        image: Some(ImageFacts {
            id: "ami-0noble".into(),
            name: "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20261101".into(),
            created: "2026-11-01T00:00:00.000Z".into(),
        }),
        database: Some(DatabaseFacts {
            identifier: "scope-db".into(),
            status: "available".into(),
            vpc_id: "vpc-0db".into(),
            port: 5432,
            endpoint: Some("scope-db.abc.us-east-1.rds.amazonaws.com".into()),
            security_groups: vec!["sg-0db".into()],
            subnets: vec!["subnet-0a".into(), "subnet-0b".into()],
        }),
        database_vpc: Some(VpcFacts {
            id: "vpc-0db".into(),
            cidrs: vec!["172.31.0.0/16".into()],
            internet_gateway: Some("igw-0db".into()),
            subnets: zones
                .iter()
                .enumerate()
                .map(|(i, z)| SubnetFact {
                    id: format!("subnet-0{}", z.chars().last().unwrap()),
                    cidr: format!("172.31.{}.0/20", i * 16),
                    zone: z.clone(),
                    owned: false,
                })
                .collect(),
            route_tables: vec![RouteTableFact {
                id: "rtb-0main".into(),
                main: true,
                subnets: vec![],
                owned: false,
            }],
        }),
        zones,
        ..Facts::default()
    }
}

pub(crate) fn example(env: &str) -> config::Config {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/scope.toml"))
        .unwrap();
    config::parse(Path::new("examples/scope.toml"), &text, env).unwrap()
}

#[test]
fn snapshot_each_example_env() {
    for env in ["staging", "prod", "local", "sandbox", "sandbox-peered"] {
        let mut d = desired(&example(env), &sample_facts()).unwrap();
        // User data has its own snapshots (render::tests); keep its size here.
        for r in d.resources.values_mut() {
            if let Some(Value::Str(t)) = r.props.get("user_data_text") {
                let elided = format!("({} bytes)", t.len());
                r.props.insert("user_data_text".into(), Value::str(elided));
            }
        }
        insta::assert_json_snapshot!(format!("desired-{env}"), d);
    }
}

#[test]
fn desired_is_deterministic() {
    let a = serde_json::to_string(&desired(&example("staging"), &sample_facts()).unwrap()).unwrap();
    let b = serde_json::to_string(&desired(&example("staging"), &sample_facts()).unwrap()).unwrap();
    assert_eq!(a, b);
}

#[test]
fn beside_database_uses_the_database_vpc_and_gateway() {
    let d = desired(&example("staging"), &sample_facts()).unwrap();
    assert!(
        !d.resources.keys().any(|id| id.kind() == Some(Kind::Vpc)),
        "no own VPC beside the database"
    );
    let s = &d.resources[&ResourceId::new(Kind::Subnet, "nodes-us-east-1a")];
    assert_eq!(s.props["vpc"], Value::str("vpc-0db"));
    assert_eq!(s.props["cidr"], Value::str("172.31.128.0/22"));
    let route = &d.resources[&ResourceId::new(Kind::Route, "cluster-default")];
    assert_eq!(route.props["gateway"], Value::str("igw-0db"));
    let db = &d.resources[&ResourceId::new(Kind::SecurityGroupIngress, "database")];
    assert_eq!(db.ownership, crate::model::Ownership::OnAdopted);
    assert_eq!(db.props["group"], Value::str("sg-0db"));
}

#[test]
fn peered_builds_its_own_vpc_and_routes_both_ways() {
    let d = desired(&example("sandbox-peered"), &sample_facts()).unwrap();
    for id in [
        ResourceId::new(Kind::Vpc, "cluster"),
        ResourceId::new(Kind::InternetGateway, "cluster"),
        ResourceId::new(Kind::VpcPeering, "database"),
        ResourceId::new(Kind::Route, "cluster-to-database-172-31-0-0-16"),
        ResourceId::new(Kind::Route, "database-rtb-0main"),
    ] {
        assert!(d.resources.contains_key(&id), "missing {id}");
    }
    let pcx = &d.resources[&ResourceId::new(Kind::VpcPeering, "database")];
    assert_eq!(pcx.props["dns_resolution"], Value::Bool(true));
}

#[test]
fn adopted_mismatches_are_errors() {
    let mut facts = sample_facts();
    facts.database_vpc.as_mut().unwrap().internet_gateway = None;
    let e = desired(&example("staging"), &facts).unwrap_err();
    assert!(e.message.contains("no internet gateway"), "{e}");

    let mut facts = sample_facts();
    facts.database = None;
    let e = desired(&example("staging"), &facts).unwrap_err();
    assert!(
        e.message.contains("`scope-staging-db` was not found"),
        "{e}"
    );
    assert!(e.at.is_some());

    // An existing neighbour's subnet in our range.
    let mut facts = sample_facts();
    facts
        .database_vpc
        .as_mut()
        .unwrap()
        .subnets
        .push(SubnetFact {
            id: "subnet-0x".into(),
            cidr: "172.31.130.0/24".into(),
            zone: "us-east-1a".into(),
            owned: false,
        });
    let e = desired(&example("staging"), &facts).unwrap_err();
    assert!(
        e.message.contains("overlaps the existing subnet subnet-0x"),
        "{e}"
    );
    // Our own subnet there is no conflict.
    facts
        .database_vpc
        .as_mut()
        .unwrap()
        .subnets
        .last_mut()
        .unwrap()
        .owned = true;
    assert!(desired(&example("staging"), &facts).is_ok());
}

#[test]
fn carving_is_stable_when_the_last_zone_goes() {
    let net: ipnet::Ipv4Net = "172.31.128.0/20".parse().unwrap();
    let three: Vec<String> = ["a", "b", "c"]
        .iter()
        .map(|z| format!("us-east-1{z}"))
        .collect();
    let a = network::carve(net, &three, &Default::default()).unwrap();
    let b = network::carve(net, &three[..2], &Default::default()).unwrap();
    assert_eq!(a[..2], b[..]);
    let five: Vec<String> = "abcde".chars().map(|z| format!("us-east-1{z}")).collect();
    assert_eq!(
        network::carve(net, &five, &Default::default()).unwrap()[4]
            .1
            .to_string(),
        "172.31.136.0/23"
    );
}

#[test]
fn newest_lts_image_is_chosen() {
    let img = |id: &str, name: &str, created: &str| ImageFacts {
        id: id.into(),
        name: name.into(),
        created: created.into(),
    };
    let all = [
        img(
            "ami-jammy",
            "ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-amd64-server-20260101",
            "2026-01-01",
        ),
        img(
            "ami-noble",
            "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20260901",
            "2026-09-01",
        ),
        img(
            "ami-plucky",
            "ubuntu/images/hvm-ssd-gp3/ubuntu-plucky-25.04-amd64-server-20261001",
            "2026-10-01",
        ),
        img(
            "ami-noble-old",
            "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20260101",
            "2026-01-01",
        ),
    ];
    assert_eq!(choose_image(&all, true).unwrap().id, "ami-noble");
    assert_eq!(choose_image(&all, false).unwrap().id, "ami-plucky");
    assert_eq!(choose_image(&[], true), None);
}

#[test]
fn instances_spread_over_zones_and_register_with_their_balancers() {
    let d = desired(&example("staging"), &sample_facts()).unwrap();
    let instance = |n: &str| &d.resources[&ResourceId::new(Kind::Instance, n)];
    // staging: 1 master, 2 nodes, three zones.
    assert!(d
        .resources
        .contains_key(&ResourceId::new(Kind::Instance, "node-1")));
    assert!(!d
        .resources
        .contains_key(&ResourceId::new(Kind::Instance, "node-2")));
    assert_ne!(
        instance("node-0").props["subnet"],
        instance("node-1").props["subnet"]
    );
    assert_eq!(instance("node-0").props["ami"], Value::str("ami-0noble"));
    for r in ["api.master-0", "frontend.node-0", "frontend.node-1"] {
        assert!(
            d.resources
                .contains_key(&ResourceId::new(Kind::Registration, r)),
            "{r}"
        );
    }
    let text = instance("node-0").props["user_data_text"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(text.starts_with("#cloud-config\n"));
    assert!(
        !text.contains("KEY-----") && !text.contains("BEGIN CERTIFICATE"),
        "user data must hold no key"
    );
    assert!(text.contains("scopectl-state, join"));
    let master = instance("master-0").props["user_data_text"]
        .as_str()
        .unwrap();
    assert!(master.contains("kubeadm init --config"));
    assert!(master.contains("clusterName: scope-staging"));
}

#[test]
fn changing_the_node_type_replaces_nodes_with_a_reason() {
    let before = desired(&example("staging"), &sample_facts()).unwrap();
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/scope.toml"))
        .unwrap()
        .replace(
            "cluster.nodes.count = 2",
            "cluster.nodes.count = 2\ncluster.nodes.instance_type = \"m5.xlarge\"",
        );
    let config = config::parse(Path::new("scope.toml"), &text, "staging").unwrap();
    let after = desired(&config, &sample_facts()).unwrap();
    let a = &after.resources[&ResourceId::new(Kind::Instance, "node-0")];
    let b = &before.resources[&ResourceId::new(Kind::Instance, "node-0")];
    assert_ne!(a.props["instance_type"], b.props["instance_type"]);
    assert_eq!(a.props["user_data"], b.props["user_data"]);
}

/// Every desired prop of every example env is declared by its kind, with
/// its type; none is a computed field.
#[test]
fn every_desired_prop_is_declared() {
    for env in ["staging", "prod", "sandbox", "sandbox-peered", "local"] {
        let d = desired(&example(env), &sample_facts()).unwrap();
        for r in d.resources.values() {
            if let Err(e) = r.kind().schema().check(&r.props, true) {
                panic!("{env}: {}: {e}", r.id);
            }
        }
    }
}

/// Issue 26: a join token exists while a launch needs it, lives 24 hours,
/// and is made anew by a rotation or when too little of it is left.
#[test]
fn the_join_token_follows_launches_and_expires() {
    use crate::model::{Actual, Desired, Kind, Observed, Ownership, Props, ResourceId, Value};
    let id = ResourceId::new(Kind::Token, crate::pki::BOOTSTRAP_TOKEN);
    let want = || {
        let mut d = Desired::default();
        d.add(
            id.clone(),
            Ownership::Owned,
            Props::from([
                ("purpose".into(), Value::str("node join")),
                ("ttl".into(), Value::str("24h")),
                ("serial".into(), Value::Int(1)),
                ("state".into(), Value::str("usable")),
            ]),
        );
        d
    };
    let seen = |state: &str| {
        let mut a = Actual::default();
        a.insert(Observed {
            id: id.clone(),
            physical_id: "/scopectl/scope/staging/pki/bootstrap-token".into(),
            props: Props::from([
                ("purpose".into(), Value::str("node join")),
                ("ttl".into(), Value::str("24h")),
                ("serial".into(), Value::Int(3)),
                ("state".into(), Value::str(state)),
            ]),
        });
        a
    };
    let run = |a: &Actual, launching: bool, rotate: bool| {
        let mut d = want();
        crate::desired::join_token(&mut d, a, launching, rotate);
        d.resources.get(&id).map(|r| r.props.clone())
    };
    // Nothing launches, nothing stored: no token at all.
    assert_eq!(run(&Actual::default(), false, false), None);
    // A launch makes one.
    assert_eq!(
        run(&Actual::default(), true, false).unwrap()["state"],
        Value::str("usable")
    );
    // Valid and nothing launches: kept as it is (no change planned).
    assert_eq!(
        run(&seen("expiring"), false, false).unwrap(),
        seen("expiring").resources[&id].props
    );
    // Expired and nothing launches: deleted.
    assert_eq!(run(&seen("expired"), false, false), None);
    // A launch with too little left: a usable one wanted (a replace).
    assert_eq!(
        run(&seen("expiring"), true, false).unwrap()["state"],
        Value::str("usable")
    );
    // A launch with a usable one: the same one.
    assert_eq!(
        run(&seen("usable"), true, false).unwrap(),
        seen("usable").resources[&id].props
    );
    // A rotation: the next serial, a new token.
    assert_eq!(
        run(&seen("usable"), false, true).unwrap()["serial"],
        Value::Int(4)
    );
    // The state at a time.
    let now = time::OffsetDateTime::now_utc();
    let at = |d: time::Duration| crate::pki::rfc3339(now + d);
    assert_eq!(
        crate::pki::token_state(Some(&at(time::Duration::hours(20))), now),
        "usable"
    );
    assert_eq!(
        crate::pki::token_state(Some(&at(time::Duration::minutes(30))), now),
        "expiring"
    );
    assert_eq!(
        crate::pki::token_state(Some(&at(-time::Duration::minutes(1))), now),
        "expired"
    );
    assert_eq!(crate::pki::token_state(None, now), "expired");
}

/// Issue 26: each balancer has its own group, admitting only its clients and
/// reaching only its own port; the prod API admits only its listed ranges.
#[test]
fn each_balancer_has_its_own_group() {
    let d = desired(&example("prod"), &sample_facts()).unwrap();
    let group = |name: &str| ResourceId::new(Kind::SecurityGroup, name);
    for g in ["elb-api", "elb-frontend", "masters", "nodes"] {
        assert!(d.resources.contains_key(&group(g)), "no group {g}");
    }
    assert!(!d.resources.contains_key(&group("elb")));
    let rules = |name: &str| {
        serde_json::to_string(
            &d.resources[&ResourceId::new(Kind::SecurityGroupIngress, name)].props["rules"],
        )
        .unwrap()
    };
    let api = rules("elb-api");
    assert!(
        api.contains("203.0.113.0/24") && api.contains("198.51.100.7/32"),
        "{api}"
    );
    assert!(!api.contains("0.0.0.0/0"), "{api}");
    let frontend = rules("elb-frontend");
    assert!(
        frontend.contains("0.0.0.0/0") && frontend.contains("80"),
        "{frontend}"
    );
    let nodes = rules("nodes");
    assert!(
        !nodes.contains("32767"),
        "a NodePort range is open: {nodes}"
    );
    let lb = &d.resources[&ResourceId::new(Kind::LoadBalancer, "frontend")].props;
    assert!(
        serde_json::to_string(&lb["security_groups"])
            .unwrap()
            .contains("elb-frontend"),
        "{lb:?}"
    );
}

/// Issue 26: with database.clients, NetworkPolicies keep every other pod
/// from the database's subnets; every Deployment runs restricted.
#[test]
fn the_database_admits_its_clients_and_pods_run_restricted() {
    let facts = sample_facts();
    let mut d = crate::model::Desired::default();
    cluster(&example("staging"), &facts, &Default::default(), &mut d).unwrap();
    let others = &d.resources[&ResourceId::parse(
        "k8s/networking.k8s.io/v1/NetworkPolicy/scope/database-others",
    )
    .unwrap()];
    let text = serde_json::to_string(&others.props).unwrap();
    // The database's subnet group: subnet-0a and subnet-0b.
    assert!(
        text.contains("172.31.0.0/20") && text.contains("172.31.16.0/20"),
        "{text}"
    );
    let clients = &d.resources[&ResourceId::parse(
        "k8s/networking.k8s.io/v1/NetworkPolicy/scope/database-clients",
    )
    .unwrap()];
    let text = serde_json::to_string(&clients.props).unwrap();
    assert!(
        text.contains("users") && text.contains("provisioning") && text.contains("5432"),
        "{text}"
    );
    assert!(!text.contains("frontend"), "{text}");
    let deployment =
        &d.resources[&ResourceId::parse("k8s/apps/v1/Deployment/scope/users").unwrap()];
    let spec = serde_json::to_string(&deployment.props["spec"]).unwrap();
    for needed in [
        "\"runAsNonRoot\":true",
        "\"RuntimeDefault\"",
        "\"allowPrivilegeEscalation\":false",
        "\"ALL\"",
    ] {
        assert!(spec.contains(needed), "no {needed}: {spec}");
    }
}

/// Issue 26: an internal API balancer, and a service balancer open only to
/// its listed ranges.
#[test]
fn api_scheme_and_service_ranges() {
    let mut config = example("staging");
    config.cluster.api_scheme = "internal".into();
    config.services.get_mut("frontend").unwrap().allowed_cidrs = vec!["192.0.2.0/24".into()];
    let d = desired(&config, &sample_facts()).unwrap();
    let lb = |n: &str| d.resources[&ResourceId::new(Kind::LoadBalancer, n)].props["scheme"].clone();
    assert_eq!(lb("api"), Value::str("internal"));
    assert_eq!(lb("frontend"), Value::str("internet-facing"));
    let rules = serde_json::to_string(
        &d.resources[&ResourceId::new(Kind::SecurityGroupIngress, "elb-frontend")].props["rules"],
    )
    .unwrap();
    assert!(
        rules.contains("192.0.2.0/24") && !rules.contains("0.0.0.0/0"),
        "{rules}"
    );
}
