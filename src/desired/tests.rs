use std::path::Path;

use super::*;
use crate::config;
use crate::model::{Kind, ResourceId, Value};

/// The facts of a typical account: a default VPC with six /20 subnets, a
/// gateway, and the database in it.
pub(crate) fn sample_facts() -> Facts {
    let zones: Vec<String> = "abcdef".chars().map(|c| format!("us-east-1{c}")).collect();
    Facts {
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
        let d = desired(&example(env), &sample_facts()).unwrap();
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
