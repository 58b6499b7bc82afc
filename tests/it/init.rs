//! `scopectl init` against the emulator: it reads the database, its VPC and
//! every subnet (Describe calls only), proposes a range that is free even
//! when the VPC's free space is fragmented, and writes a config that `plan`
//! takes as it is.

use crate::support;

use ipnet::Ipv4Net;
use support::Sandbox;

const DB: &str = "scope-db";

/// Subnets scattered over the default VPC past its six default /20s, so
/// that none of the next four /20s is whole, and a second CIDR block.
const FRAGMENT: &str = r#"
import boto3
ec2 = boto3.client("ec2", region_name="us-east-1")
vpc = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
for cidr, az in [("172.31.96.0/24", "us-east-1a"), ("172.31.118.0/26", "us-east-1b"),
                 ("172.31.130.0/24", "us-east-1c"), ("172.31.159.128/25", "us-east-1a")]:
    ec2.create_subnet(VpcId=vpc, CidrBlock=cidr, AvailabilityZone=az)
ec2.associate_vpc_cidr_block(VpcId=vpc, CidrBlock="100.64.0.0/16")
"#;

fn written_cidr(text: &str) -> Ipv4Net {
    let line = text
        .lines()
        .find(|l| l.starts_with("cidr = "))
        .unwrap_or_else(|| panic!("no network.cidr in\n{text}"));
    line.trim_start_matches("cidr = ")
        .trim_matches('"')
        .parse()
        .unwrap()
}

fn overlaps(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// The subnets of `vpc`, from the emulator itself (not from scopectl).
fn subnets_of(sb: &Sandbox, vpc: &str) -> Vec<Ipv4Net> {
    sb.snapshot()
        .list("subnets")
        .iter()
        .filter(|s| s["vpc"] == vpc)
        .map(|s| s["cidr"].as_str().unwrap().parse().unwrap())
        .collect()
}

#[test]
fn init_proposes_a_free_range_in_a_fragmented_vpc_reading_only() {
    let sb = Sandbox::start();
    let db = sb.prepare_db(DB);
    let vpc = db["vpc"].as_str().unwrap().to_string();
    assert!(sb.python_code(FRAGMENT, &[]), "fragmenting the VPC");
    let subnets = subnets_of(&sb, &vpc);
    assert!(subnets.len() >= 8, "{subnets:?}");

    let config = sb.dir.path().join("scope.toml");
    let mark = sb.mark();
    let (out, err) = sb.expect(0, &config, &["init", "--database", DB]);
    let calls = sb.calls_since(mark);
    assert!(!calls.is_empty());
    for c in &calls {
        assert!(
            c.action.starts_with("Describe"),
            "init made a call that is not a Describe: {} {}",
            c.service,
            c.action
        );
    }
    for read in ["DescribeDBInstances", "DescribeVpcs", "DescribeSubnets"] {
        assert!(calls.iter().any(|c| c.action == read), "no {read}");
    }
    assert!(out.is_empty(), "{out}");

    let text = std::fs::read_to_string(&config).unwrap();
    let cidr = written_cidr(&text);
    // A /20 inside the VPC's first range, clear of every subnet; the first
    // such /20, which fragmentation pushed past the first gap (172.31.96.0/20).
    let primary: Ipv4Net = "172.31.0.0/16".parse().unwrap();
    assert_eq!(cidr.prefix_len(), 20, "{text}");
    assert!(primary.contains(&cidr), "{cidr} outside {primary}");
    assert!(
        !subnets.iter().any(|s| overlaps(s, &cidr)),
        "{cidr} overlaps one of {subnets:?}"
    );
    let earlier: Vec<Ipv4Net> = primary
        .subnets(20)
        .unwrap()
        .take_while(|b| *b != cidr)
        .collect();
    assert!(earlier.len() > 6, "{cidr} is among the first /20s");
    for b in earlier {
        assert!(
            subnets.iter().any(|s| overlaps(s, &b)),
            "{b} was free and comes before {cidr}"
        );
    }
    assert_eq!(cidr, "172.31.160.0/20".parse::<Ipv4Net>().unwrap());
    // What was found, in the file and on stderr.
    for found in [
        format!(
            "VPC {vpc}: 172.31.0.0/16, 100.64.0.0/16; {} subnets; free: 100.64.0.0/16, 172.31.192.0/18, ",
            subnets.len()
        ),
        format!("RDS {DB}: postgres"),
        "[services.users]".to_string(),
    ] {
        assert!(text.contains(&found), "file lacks {found:?}:\n{text}");
    }
    assert!(err.contains(&format!("VPC {vpc}: 172.31.0.0/16")), "{err}");
    assert!(err.contains("Next: scopectl"), "{err}");

    // The config loads as written, and its plan carves the zones' subnets
    // from the proposed range.
    let (plan, _) = sb.expect(
        0,
        &config,
        &["plan", "--env", "staging", "--output", "json"],
    );
    let plan: serde_json::Value = serde_json::from_str(&plan).unwrap();
    let carved: Vec<Ipv4Net> = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["address"].as_str().unwrap().starts_with("ec2/subnet/"))
        .map(|c| c["after"]["cidr"].as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(carved.len(), 3, "{plan}");
    assert!(carved.iter().all(|s| cidr.contains(s)), "{carved:?}");

    // Peered: an own range clear of both of the VPC's blocks; its plan too.
    let peered = sb.dir.path().join("peered.toml");
    let peered_s = peered.to_str().unwrap();
    let mark = sb.mark();
    sb.expect(
        0,
        &config,
        &[
            "init",
            "--database",
            DB,
            "--placement",
            "peered",
            "--out",
            peered_s,
        ],
    );
    assert!(sb
        .calls_since(mark)
        .iter()
        .all(|c| c.action.starts_with("Describe")));
    let text = std::fs::read_to_string(&peered).unwrap();
    let own = written_cidr(&text);
    assert!(text.contains("placement = \"peered\""), "{text}");
    for block in ["172.31.0.0/16", "100.64.0.0/16"] {
        assert!(
            !overlaps(&own, &block.parse().unwrap()),
            "{own} overlaps {block}"
        );
    }
    sb.expect(0, &peered, &["plan", "--env", "staging"]);
}

#[test]
fn init_never_overwrites_without_force_and_names_a_missing_database() {
    let sb = Sandbox::start();
    sb.prepare_db(DB);
    let config = sb.config("scope.toml", "# mine\n");

    // Refused before any call: exit 64, the hint names --force.
    let mark = sb.mark();
    let (_, err) = sb.expect(64, &config, &["init", "--database", DB]);
    assert!(err.contains("already exists"), "{err}");
    assert!(err.contains("hint:") && err.contains("--force"), "{err}");
    assert!(sb.calls_since(mark).is_empty(), "calls before refusing");
    assert_eq!(std::fs::read_to_string(&config).unwrap(), "# mine\n");

    // --out to a file that exists is refused the same way.
    let other = sb.config("other.toml", "# theirs\n");
    sb.expect(
        64,
        &config,
        &["init", "--database", DB, "--out", other.to_str().unwrap()],
    );
    assert_eq!(std::fs::read_to_string(&other).unwrap(), "# theirs\n");

    // A database that does not exist: an error naming it, with a hint, and
    // nothing written.
    let fresh = sb.dir.path().join("fresh.toml");
    let (_, err) = sb.expect(
        1,
        &config,
        &[
            "init",
            "--database",
            "no-such-db",
            "--out",
            fresh.to_str().unwrap(),
        ],
    );
    assert!(
        err.contains("error: RDS instance `no-such-db` was not found in us-east-1"),
        "{err}"
    );
    assert!(err.contains("hint:"), "{err}");
    assert!(!fresh.exists());

    // With --force it is replaced.
    sb.expect(0, &config, &["init", "--database", DB, "--force"]);
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("rds_instance = \"scope-db\""), "{text}");
}
