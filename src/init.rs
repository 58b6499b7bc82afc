//! `scopectl init`: from what was read about an existing database (a
//! [`Survey`]) to a starting `scope.toml`. Pure: the reads are in
//! `providers::aws::facts::survey`, the file is written by the command.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::config::Placement;
use crate::desired::{DatabaseFacts, VpcFacts};

/// The cluster's default pod and service ranges (as `init` writes them): a
/// proposed `network.cidr` must stay clear of them too.
pub const SERVICE_CIDR: &str = "10.96.0.0/12";
pub const POD_CIDR: &str = "10.244.0.0/16";
/// The env `init` writes, and the one its hints name.
pub const FIRST_ENV: &str = "staging";

/// Beside the database, a /20 when it fits: 4 subnets of 1024 addresses.
const PREFERRED: u8 = 20;
/// Peered, an own VPC of the largest size AWS allows.
const PEERED: u8 = 16;
/// AWS's smallest subnet.
const SMALLEST_SUBNET: u8 = 28;

/// What `init` read: the RDS instance, its VPC with every subnet, and the
/// region's zones.
#[derive(Clone, Debug)]
pub struct Survey {
    pub region: String,
    pub database: DatabaseFacts,
    pub engine: Option<String>,
    pub engine_version: Option<String>,
    pub vpc: VpcFacts,
    /// The zones the region offers, sorted.
    pub zones: Vec<String>,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProposeError {
    #[error("the region offers fewer than two availability zones")]
    TooFewZones,
    #[error("no free block of /{smallest} or larger is left in {}", list(.cidrs))]
    NoRoom { cidrs: Vec<Ipv4Net>, smallest: u8 },
    #[error("every candidate range overlaps {}", list(.cidrs))]
    NoDisjoint { cidrs: Vec<Ipv4Net> },
}

fn list(cidrs: &[Ipv4Net]) -> String {
    cidrs
        .iter()
        .map(Ipv4Net::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn overlaps(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// The free space of `within` once `taken` is removed, as maximal aligned
/// blocks in address order (down to /28, AWS's smallest subnet).
pub fn free_blocks(within: &[Ipv4Net], taken: &[Ipv4Net]) -> Vec<Ipv4Net> {
    fn walk(block: Ipv4Net, taken: &[Ipv4Net], out: &mut Vec<Ipv4Net>) {
        if !taken.iter().any(|t| overlaps(t, &block)) {
            out.push(block);
            return;
        }
        if taken.iter().any(|t| t.contains(&block)) || block.prefix_len() >= SMALLEST_SUBNET {
            return;
        }
        // Partly taken: look at each half.
        if let Ok(halves) = block.subnets(block.prefix_len() + 1) {
            for half in halves {
                walk(half, taken, out);
            }
        }
    }
    let mut out = Vec::new();
    for c in within {
        walk(c.trunc(), taken, &mut out);
    }
    out
}

/// Proposes `network.cidr`.
///
/// Beside the database: the first free /20 inside the VPC's ranges (clear of
/// every subnet and of `avoid`); when none is free, the largest free block
/// that still gives each zone a subnet of at least /28. Peered: the first of
/// 10.x.0.0/16, 172.16-31.0.0/16 and 192.168.0.0/16 that overlaps neither the
/// database VPC nor `avoid`.
pub fn propose(
    placement: Placement,
    vpc_cidrs: &[Ipv4Net],
    subnets: &[Ipv4Net],
    avoid: &[Ipv4Net],
    zones: usize,
) -> Result<Ipv4Net, ProposeError> {
    if zones < 2 {
        return Err(ProposeError::TooFewZones);
    }
    match placement {
        Placement::BesideDatabase => {
            // `desired::carve` splits the range into 4 slots (8 beyond four zones).
            let bits = if zones <= 4 { 2 } else { 3 };
            let smallest = SMALLEST_SUBNET - bits;
            let taken: Vec<Ipv4Net> = subnets.iter().chain(avoid).copied().collect();
            let free = free_blocks(vpc_cidrs, &taken);
            (PREFERRED..=smallest)
                .find_map(|p| {
                    let block = free.iter().find(|b| b.prefix_len() <= p)?;
                    Ipv4Net::new(block.network(), p).ok()
                })
                .ok_or(ProposeError::NoRoom {
                    cidrs: vpc_cidrs.to_vec(),
                    smallest,
                })
        }
        Placement::Peered => {
            let taken: Vec<Ipv4Net> = vpc_cidrs.iter().chain(avoid).copied().collect();
            let candidates = (0..=255u8)
                .map(|b| Ipv4Addr::new(10, b, 0, 0))
                .chain((16..=31u8).map(|b| Ipv4Addr::new(172, b, 0, 0)))
                .chain([Ipv4Addr::new(192, 168, 0, 0)]);
            candidates
                .filter_map(|a| Ipv4Net::new(a, PEERED).ok())
                .find(|c| !taken.iter().any(|t| overlaps(t, c)))
                .ok_or(ProposeError::NoDisjoint {
                    cidrs: vpc_cidrs.to_vec(),
                })
        }
    }
}

/// `scope-db` → `scope`; a name scopectl accepts (see `config::check_name_str`),
/// or None.
pub fn project_name(from: &str) -> Option<String> {
    let mut s: String = from
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    for suffix in ["-database", "-db", "-rds", "-postgres", "-mysql"] {
        if let Some(stem) = s.strip_suffix(suffix).filter(|t| !t.is_empty()) {
            s = stem.to_string();
            break;
        }
    }
    let s = s.trim_start_matches(|c: char| !c.is_ascii_lowercase());
    let mut s: String = s.chars().take(32).collect();
    while s.ends_with('-') {
        s.pop();
    }
    Some(s).filter(|s| !s.is_empty())
}

/// Everything `init` decided, ready to write.
#[derive(Clone, Debug)]
pub struct Proposal {
    pub project: String,
    pub placement: Placement,
    pub cidr: Ipv4Net,
    /// The zones the config names (the first three offered).
    pub zones: Vec<String>,
    /// Free space beside the database, for the comments.
    pub free: Vec<Ipv4Net>,
    /// Things to fix before `up` (also printed).
    pub warnings: Vec<String>,
}

/// Decides the proposal from a survey.
pub fn decide(
    survey: &Survey,
    placement: Placement,
    project: String,
) -> Result<Proposal, ProposeError> {
    let parse =
        |v: &[String]| -> Vec<Ipv4Net> { v.iter().filter_map(|c| c.parse().ok()).collect() };
    let vpc_cidrs = parse(&survey.vpc.cidrs);
    let subnets: Vec<Ipv4Net> = survey
        .vpc
        .subnets
        .iter()
        .filter_map(|s| s.cidr.parse().ok())
        .collect();
    let avoid: Vec<Ipv4Net> = [SERVICE_CIDR, POD_CIDR]
        .iter()
        .filter_map(|c| c.parse().ok())
        .collect();
    let zones: Vec<String> = survey.zones.iter().take(3).cloned().collect();
    let cidr = propose(placement, &vpc_cidrs, &subnets, &avoid, zones.len())?;
    let mut warnings = Vec::new();
    if placement == Placement::BesideDatabase && survey.vpc.internet_gateway.is_none() {
        warnings.push(format!(
            "VPC {} has no internet gateway: `plan` refuses beside-database until one is attached (or use --placement peered)",
            survey.vpc.id
        ));
    }
    if !survey.database.status.is_empty() && survey.database.status != "available" {
        warnings.push(format!(
            "RDS instance `{}` is {}, not available",
            survey.database.identifier, survey.database.status
        ));
    }
    Ok(Proposal {
        project,
        placement,
        cidr,
        zones,
        free: free_blocks(&vpc_cidrs, &subnets),
        warnings,
    })
}

/// What was found, as `# ` comment lines (also printed to stderr).
pub fn findings(survey: &Survey, proposal: &Proposal) -> Vec<String> {
    let db = &survey.database;
    let vpc = &survey.vpc;
    let engine = match (&survey.engine, &survey.engine_version) {
        (Some(e), Some(v)) => format!("{e} {v}"),
        (Some(e), None) => e.clone(),
        _ => "unknown engine".into(),
    };
    let mut out = vec![format!(
        "RDS {}: {engine}, {}, port {}{}",
        db.identifier,
        if db.status.is_empty() {
            "status unknown"
        } else {
            &db.status
        },
        db.port,
        db.endpoint
            .as_ref()
            .map(|e| format!(", endpoint {e}"))
            .unwrap_or_default()
    )];
    out.push(format!(
        "  security groups: {}; subnet group: {}",
        or_none(&db.security_groups.join(", ")),
        or_none(&db.subnets.join(", ")),
    ));
    // The largest blocks first: scattered slivers matter least.
    let mut free = proposal.free.clone();
    free.sort_by_key(|b| (b.prefix_len(), b.network()));
    let free = match free.len() {
        0 => "none".to_string(),
        n if n > 6 => format!("{} and {} smaller blocks", list(&free[..6]), n - 6),
        _ => list(&free),
    };
    out.push(format!(
        "VPC {}: {}; {} subnets; free: {free}",
        vpc.id,
        vpc.cidrs.join(", "),
        vpc.subnets.len(),
    ));
    let mut subnets: Vec<_> = vpc.subnets.iter().collect();
    subnets.sort_by_key(|s| (s.cidr.parse::<Ipv4Net>().ok(), s.id.clone()));
    for s in subnets {
        out.push(format!("  {} {} {}", s.cidr, s.zone, s.id));
    }
    out.push(format!(
        "internet gateway: {}",
        vpc.internet_gateway.as_deref().unwrap_or("none")
    ));
    out.push(format!(
        "zones in {}: {}",
        survey.region,
        survey.zones.join(", ")
    ));
    out
}

fn or_none(s: &str) -> &str {
    if s.is_empty() {
        "none"
    } else {
        s
    }
}

/// The config text. `command` is how it was made, for the header.
pub fn render(survey: &Survey, proposal: &Proposal, command: &str) -> String {
    let mut t = String::new();
    let p = proposal;
    let _ = writeln!(t, "# A starting scopectl config, written by `{command}`.");
    let _ = writeln!(
        t,
        "# Check every value, then: scopectl plan --env {FIRST_ENV}"
    );
    let _ = writeln!(t, "#");
    for line in findings(survey, p) {
        let _ = writeln!(t, "# {line}");
    }
    for w in &p.warnings {
        let _ = writeln!(t, "# warning: {w}");
    }
    let _ = writeln!(t, "project = \"{}\"", p.project);
    let _ = writeln!(t);
    let _ = writeln!(t, "[aws]");
    let _ = writeln!(t, "region = \"{}\"", survey.region);
    let _ = writeln!(t);
    let _ = writeln!(t, "[cluster]");
    let _ = writeln!(
        t,
        "kubernetes_version = \"{}\"",
        crate::config::DEFAULT_KUBERNETES_VERSION
    );
    let _ = writeln!(t, "service_cidr = \"{SERVICE_CIDR}\"");
    let _ = writeln!(t, "pod_cidr = \"{POD_CIDR}\"");
    let _ = writeln!(t, "masters = {{ count = 1, instance_type = \"m5.large\" }}");
    let _ = writeln!(t, "nodes = {{ count = 3, instance_type = \"m5.large\" }}");
    let _ = writeln!(t);
    let _ = writeln!(t, "[network]");
    match p.placement {
        Placement::BesideDatabase => {
            let _ = writeln!(t, "placement = \"beside-database\"   # or \"peered\": own VPC, peered to the database VPC");
            let _ = writeln!(
                t,
                "# Free inside {} and clear of its {} subnets; one subnet per zone is carved from it.",
                survey.vpc.id,
                survey.vpc.subnets.len()
            );
        }
        Placement::Peered => {
            let _ = writeln!(
                t,
                "placement = \"peered\"   # own VPC, peered to the database VPC"
            );
            let _ = writeln!(
                t,
                "# The own VPC's range: clear of {} ({}) and of the pod and service ranges.",
                survey.vpc.id,
                survey.vpc.cidrs.join(", ")
            );
        }
    }
    let _ = writeln!(t, "cidr = \"{}\"", p.cidr);
    let zones: Vec<String> = p.zones.iter().map(|z| format!("\"{z}\"")).collect();
    let _ = writeln!(
        t,
        "zones = [{}]   # offered: {}",
        zones.join(", "),
        survey.zones.join(", ")
    );
    let _ = writeln!(t);
    let _ = writeln!(t, "[database]");
    let _ = writeln!(
        t,
        "rds_instance = \"{}\"   # adopted: read, never created, changed or deleted",
        survey.database.identifier
    );
    let _ = writeln!(t);
    let _ = write!(
        t,
        r#"# One block per service; uncomment and adapt. `image` is a repository
# without a tag: tags belong to `scopectl rollout`. Pods reach the database
# as the Service `database` on port {port}.
# [services.users]
# image = "registry.example/{project}/users"
# replicas = 2
# port = 8080
# initial_tag = "v1.0.0"
# readiness = {{ http = "/healthz" }}
# resources = {{ cpu = "250m", memory = "256Mi" }}
# env = {{ DB_HOST = "database", DB_PORT = "{port}" }}
# secrets = {{ DB_PASSWORD = "/{project}/{env}/db-password" }}   # an SSM parameter
# expose = "elb"   # a load balancer in front of it

# Per-env overrides (deep-merged onto the settings above).
[env.{env}]

[env.prod]
protected = true
"#,
        port = survey.database.port,
        project = p.project,
        env = FIRST_ENV,
    );
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::SubnetFact;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    fn nets(v: &[&str]) -> Vec<Ipv4Net> {
        v.iter().map(|s| net(s)).collect()
    }

    fn avoid() -> Vec<Ipv4Net> {
        nets(&[SERVICE_CIDR, POD_CIDR])
    }

    fn free_of(p: Ipv4Net, taken: &[Ipv4Net]) -> bool {
        !taken.iter().any(|t| overlaps(t, &p))
    }

    /// The default VPC's six /20s, as in us-east-1.
    fn default_subnets() -> Vec<Ipv4Net> {
        (0..6)
            .map(|i| Ipv4Net::new(Ipv4Addr::new(172, 31, i * 16, 0), 20).unwrap())
            .collect()
    }

    #[test]
    fn beside_the_default_vpc_the_first_free_20_follows_the_default_subnets() {
        let vpc = nets(&["172.31.0.0/16"]);
        let got = propose(
            Placement::BesideDatabase,
            &vpc,
            &default_subnets(),
            &avoid(),
            3,
        );
        assert_eq!(got, Ok(net("172.31.96.0/20")));
    }

    #[test]
    fn fragmented_free_space_skips_to_the_first_whole_20() {
        let vpc = nets(&["172.31.0.0/16"]);
        let mut taken = default_subnets();
        // One small subnet in each of the next four /20s.
        taken.extend(nets(&[
            "172.31.96.0/24",
            "172.31.120.0/26",
            "172.31.140.0/24",
            "172.31.159.240/28",
        ]));
        let got = propose(Placement::BesideDatabase, &vpc, &taken, &avoid(), 3).unwrap();
        assert_eq!(got, net("172.31.160.0/20"));
        assert!(free_of(got, &taken));
        assert!(vpc[0].contains(&got));
    }

    #[test]
    fn without_a_free_20_the_largest_free_block_is_taken() {
        let vpc = nets(&["10.1.0.0/20"]);
        // Taken: the first /21 and a /23 of the second; free: a /22 and a /23.
        let taken = nets(&["10.1.0.0/21", "10.1.10.0/23"]);
        let got = propose(Placement::BesideDatabase, &vpc, &taken, &avoid(), 2).unwrap();
        assert_eq!(got, net("10.1.12.0/22"));
        assert_eq!(
            free_blocks(&vpc, &taken),
            nets(&["10.1.8.0/23", "10.1.12.0/22"])
        );
    }

    #[test]
    fn a_second_vpc_range_is_used_when_the_first_is_full() {
        let vpc = nets(&["172.31.0.0/20", "100.64.0.0/16"]);
        let taken = nets(&["172.31.0.0/21", "172.31.8.0/21", "100.64.0.0/24"]);
        let got = propose(Placement::BesideDatabase, &vpc, &taken, &avoid(), 3).unwrap();
        assert_eq!(got, net("100.64.16.0/20"));
    }

    #[test]
    fn a_full_vpc_has_no_room_and_says_so() {
        let vpc = nets(&["172.31.0.0/24"]);
        let taken = nets(&["172.31.0.0/25", "172.31.0.128/26", "172.31.0.192/27"]);
        // Free: a /27 only; four /28 subnets need a /26.
        let err = propose(Placement::BesideDatabase, &vpc, &taken, &avoid(), 3).unwrap_err();
        assert_eq!(
            err,
            ProposeError::NoRoom {
                cidrs: vpc.clone(),
                smallest: 26
            }
        );
        assert_eq!(
            propose(Placement::BesideDatabase, &vpc, &[], &avoid(), 1),
            Err(ProposeError::TooFewZones)
        );
    }

    #[test]
    fn beside_never_lands_on_the_pod_or_service_range() {
        let vpc = nets(&["10.96.0.0/11"]);
        let got = propose(Placement::BesideDatabase, &vpc, &[], &avoid(), 3).unwrap();
        assert!(free_of(got, &avoid()), "{got}");
        assert_eq!(got, net("10.112.0.0/20"));
    }

    #[test]
    fn peered_takes_the_first_private_16_clear_of_the_vpc_and_cluster_ranges() {
        let got = propose(
            Placement::Peered,
            &nets(&["172.31.0.0/16"]),
            &[],
            &avoid(),
            3,
        );
        assert_eq!(got, Ok(net("10.0.0.0/16")));
        let got = propose(
            Placement::Peered,
            &nets(&["10.0.0.0/15", "10.2.0.0/16"]),
            &[],
            &avoid(),
            3,
        );
        assert_eq!(got, Ok(net("10.3.0.0/16")));
        // The whole of 10/8 taken: 172.16/16 next.
        let got = propose(Placement::Peered, &nets(&["10.0.0.0/8"]), &[], &avoid(), 3);
        assert_eq!(got, Ok(net("172.16.0.0/16")));
    }

    #[test]
    fn project_names_come_from_the_database_name() {
        assert_eq!(project_name("scope-db").as_deref(), Some("scope"));
        assert_eq!(project_name("Billing_Database").as_deref(), Some("billing"));
        assert_eq!(project_name("db").as_deref(), Some("db"));
        assert_eq!(project_name("42-orders").as_deref(), Some("orders"));
        assert_eq!(project_name("---"), None);
        assert_eq!(project_name(&"a".repeat(40)).map(|s| s.len()), Some(32));
    }

    fn survey() -> Survey {
        Survey {
            region: "us-east-1".into(),
            database: DatabaseFacts {
                identifier: "scope-db".into(),
                status: "available".into(),
                vpc_id: "vpc-1".into(),
                port: 5432,
                endpoint: Some("scope-db.abc.us-east-1.rds.amazonaws.com".into()),
                security_groups: vec!["sg-1".into()],
                subnets: vec!["subnet-0".into(), "subnet-1".into()],
            },
            engine: Some("postgres".into()),
            engine_version: Some("16.3".into()),
            vpc: VpcFacts {
                id: "vpc-1".into(),
                cidrs: vec!["172.31.0.0/16".into()],
                internet_gateway: Some("igw-1".into()),
                subnets: default_subnets()
                    .iter()
                    .enumerate()
                    .map(|(i, c)| SubnetFact {
                        id: format!("subnet-{i}"),
                        cidr: c.to_string(),
                        zone: format!("us-east-1{}", (b'a' + i as u8) as char),
                        owned: false,
                    })
                    .collect(),
                route_tables: Vec::new(),
            },
            zones: ["a", "b", "c", "d", "e", "f"]
                .iter()
                .map(|z| format!("us-east-1{z}"))
                .collect(),
        }
    }

    /// The written file is a config `plan` loads, with what was proposed.
    #[test]
    fn the_written_config_loads_for_both_placements() {
        for placement in [Placement::BesideDatabase, Placement::Peered] {
            let s = survey();
            let p = decide(&s, placement, "scope".into()).unwrap();
            let text = render(&s, &p, "scopectl init --database scope-db");
            let config = crate::config::parse(std::path::Path::new("scope.toml"), &text, FIRST_ENV)
                .unwrap_or_else(|e| panic!("{e}\n{text}"));
            assert_eq!(config.network.placement, placement);
            assert_eq!(config.network.cidr, p.cidr);
            assert_eq!(config.database.rds_instance, "scope-db");
            assert_eq!(config.aws.region, "us-east-1");
            assert_eq!(config.project, "scope");
            assert!(config.services.is_empty());
            assert!(
                text.contains(
                    "# VPC vpc-1: 172.31.0.0/16; 6 subnets; free: 172.31.128.0/17, 172.31.96.0/19"
                ),
                "{text}"
            );
            assert!(text.contains("# [services.users]"), "{text}");
            // The commented service block is valid once uncommented.
            let open = text
                .replace("# [services", "[services")
                .replace("\n# image", "\nimage")
                .replace("\n# replicas", "\nreplicas")
                .replace("\n# port", "\nport")
                .replace("\n# initial_tag", "\ninitial_tag")
                .replace("\n# readiness", "\nreadiness")
                .replace("\n# resources", "\nresources")
                .replace("\n# env =", "\nenv =")
                .replace("\n# secrets", "\nsecrets")
                .replace("\n# expose", "\nexpose");
            let config = crate::config::parse(std::path::Path::new("scope.toml"), &open, FIRST_ENV)
                .unwrap_or_else(|e| panic!("{e}\n{open}"));
            assert_eq!(config.services.len(), 1);
        }
    }

    #[test]
    fn a_vpc_without_gateway_is_warned_about_beside_the_database() {
        let mut s = survey();
        s.vpc.internet_gateway = None;
        let p = decide(&s, Placement::BesideDatabase, "scope".into()).unwrap();
        assert_eq!(p.warnings.len(), 1, "{:?}", p.warnings);
        let p = decide(&s, Placement::Peered, "scope".into()).unwrap();
        assert!(p.warnings.is_empty());
    }
}
