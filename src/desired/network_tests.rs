use std::path::Path;

use super::{MASTERS, NODES};

const ELB_API: &str = "elb-api";
const ELB_FRONTEND: &str = "elb-frontend";
use crate::config;
use crate::desired::{desired, tests::sample_facts};
use crate::model::{Desired, Kind, ResourceId, Value};

fn example(env: &str) -> Desired {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/scope.toml"))
        .unwrap();
    let config = config::parse(Path::new("examples/scope.toml"), &text, env).unwrap();
    desired(&config, &sample_facts()).unwrap()
}

/// Whether the ingress rule set on group `to` admits `protocol` on `port`
/// from the group `from` (what AWS decides: any rule whose protocol matches,
/// or is all traffic, whose range holds the port, whose source is the group).
fn admits(d: &Desired, to: &str, protocol: &str, port: i64, from: &str) -> bool {
    let rules = &d.resources[&ResourceId::new(Kind::SecurityGroupIngress, to)].props["rules"];
    let source = ResourceId::new(Kind::SecurityGroup, from);
    rules.as_list().iter().any(|r| {
        let r = r.as_map().unwrap();
        let p = r["protocol"].as_str().unwrap();
        let (lo, hi) = (r["from"].as_int().unwrap(), r["to"].as_int().unwrap());
        let from_group = matches!(&r["source"], Value::Ref(s) if s.target == source);
        from_group && (p == "-1" || (p == protocol && lo <= port && port <= hi))
    })
}

/// KUBEADM-ON-EC2's flows, for both placements: VXLAN between every two
/// instances both ways, nodes to the API servers, masters to the kubelets,
/// etcd only between masters, the balancers to the NodePorts and the API.
#[test]
fn security_groups_admit_the_clusters_flows_and_keep_etcd_to_the_masters() {
    for env in ["staging", "sandbox-peered"] {
        let d = example(env);
        for (to, from) in [
            (MASTERS, MASTERS),
            (MASTERS, NODES),
            (NODES, MASTERS),
            (NODES, NODES),
        ] {
            assert!(
                admits(&d, to, "udp", 8472, from),
                "{env}: VXLAN {from} to {to}"
            );
        }
        assert!(admits(&d, MASTERS, "tcp", 6443, NODES), "{env}");
        assert!(admits(&d, MASTERS, "tcp", 6443, ELB_API), "{env}");
        assert!(!admits(&d, MASTERS, "tcp", 6443, ELB_FRONTEND), "{env}");
        assert!(admits(&d, NODES, "tcp", 10250, MASTERS), "{env}");
        assert!(admits(&d, MASTERS, "tcp", 10250, MASTERS), "{env}");
        for port in [2379, 2380] {
            assert!(
                admits(&d, MASTERS, "tcp", port, MASTERS),
                "{env}: etcd {port}"
            );
        }
        for port in [2379, 2380, 2381] {
            assert!(
                !admits(&d, MASTERS, "tcp", port, NODES),
                "{env}: nodes reach etcd {port}"
            );
            assert!(
                !admits(&d, MASTERS, "tcp", port, ELB_API),
                "{env}: balancers reach etcd {port}"
            );
        }
        // Each service's balancer reaches its own NodePort, and no other.
        let frontend = d.resources
            [&crate::model::ResourceId::new(crate::model::Kind::LoadBalancer, "frontend")]
            .props["listeners"]
            .as_list()
            .first()
            .and_then(|l| l.as_map())
            .and_then(|m| m.get("instance_port"))
            .and_then(|p| p.as_int())
            .unwrap();
        assert!(admits(&d, NODES, "tcp", frontend, ELB_FRONTEND), "{env}");
        for port in [30000, 32767] {
            assert!(
                port == frontend || !admits(&d, NODES, "tcp", port, ELB_FRONTEND),
                "{env}: NodePort {port}"
            );
        }
        assert!(!admits(&d, NODES, "tcp", frontend, ELB_API), "{env}");
        assert!(!admits(&d, NODES, "tcp", 10250, ELB_FRONTEND), "{env}");
    }
}
