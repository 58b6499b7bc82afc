//! Issue 26, read back from the emulator: what `up` made is secure by
//! default. Every instance requires IMDSv2 with one hop and boots from an
//! encrypted gp3 root volume; each role's policy passes the review (no
//! unused action, no change to `*` without the cluster's tag, no tagging of
//! an existing resource); the join token expires in 24 hours.

use crate::support;

use serde_json::Value;
use support::{config_text, Sandbox};

const READ_BACK: &str = r#"
import boto3, json
ec2 = boto3.client("ec2", region_name="us-east-1")
iam = boto3.client("iam", region_name="us-east-1")
ssm = boto3.client("ssm", region_name="us-east-1")
out = {"instances": [], "policies": {}, "token": None}
for r in ec2.describe_instances(Filters=[{"Name": "tag:scopectl:env", "Values": ["it-secure"]},
        {"Name": "instance-state-name", "Values": ["pending", "running"]}])["Reservations"]:
    for i in r["Instances"]:
        root = [m for m in i.get("BlockDeviceMappings", []) if m["DeviceName"] == i.get("RootDeviceName")]
        vol = ec2.describe_volumes(VolumeIds=[root[0]["Ebs"]["VolumeId"]])["Volumes"][0] if root else {}
        out["instances"].append({"id": i["InstanceId"], "metadata": i.get("MetadataOptions", {}),
            "root": {"type": vol.get("VolumeType"), "encrypted": vol.get("Encrypted"), "size": vol.get("Size")}})
for role in ("master", "node"):
    name = "scope-it-secure-" + role
    for p in iam.list_role_policies(RoleName=name)["PolicyNames"]:
        doc = iam.get_role_policy(RoleName=name, PolicyName=p)["PolicyDocument"]
        out["policies"][role] = doc if isinstance(doc, str) else json.dumps(doc)
for p in ssm.describe_parameters(ParameterFilters=[{"Key": "Name", "Option": "Equals",
        "Values": ["/scopectl/scope/it-secure/pki/bootstrap-token"]}])["Parameters"]:
    out["token"] = json.loads(p["Description"])
print(json.dumps(out))
"#;

#[test]
fn what_up_makes_is_secure_by_default() {
    let sb = Sandbox::start();
    let env = "it-secure";
    sb.prepare_db("secure-db");
    let cfg = sb.config(
        "scope.toml",
        &config_text(env, "secure-db", "cluster.nodes.count = 2"),
    );
    sb.up_aws_converged(&cfg, env);

    let seen: Value = serde_json::from_str(&sb.python_via_proxy(READ_BACK)).unwrap();
    let instances = seen["instances"].as_array().unwrap();
    assert_eq!(instances.len(), 3, "{seen}");
    for i in instances {
        assert_eq!(i["metadata"]["HttpTokens"], "required", "{i}");
        assert_eq!(i["metadata"]["HttpPutResponseHopLimit"], 1, "{i}");
        assert_eq!(i["root"]["encrypted"], true, "{i}");
        assert_eq!(i["root"]["type"], "gp3", "{i}");
    }

    for role in ["master", "node"] {
        let policy = seen["policies"][role]
            .as_str()
            .unwrap_or_else(|| panic!("no {role} policy: {seen}"));
        let problems = scopectl::desired::iam::review(policy, role, "scope-it-secure");
        assert!(problems.is_empty(), "{role}: {problems:?}\n{policy}");
    }
    // The review fails a policy with a change to `*` and no tag condition
    // (its own unit tests cover each rule).
    let mut widened: Value =
        serde_json::from_str(seen["policies"]["master"].as_str().unwrap()).unwrap();
    widened["Statement"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"Sid": "Widened", "Effect": "Allow",
            "Action": ["ec2:AuthorizeSecurityGroupIngress"], "Resource": ["*"]}));
    let problems =
        scopectl::desired::iam::review(&widened.to_string(), "master", "scope-it-secure");
    assert!(
        problems.iter().any(|p| p.starts_with("Widened:")),
        "{problems:?}"
    );

    let token = &seen["token"];
    assert_eq!(token["ttl"], "24h", "{seen}");
    let expires = time::OffsetDateTime::parse(
        token["expires"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let left = expires - time::OffsetDateTime::now_utc();
    assert!(
        left > time::Duration::hours(23) && left <= time::Duration::hours(24),
        "{left}"
    );
    assert_eq!(token["token_id"].as_str().map(str::len), Some(6), "{token}");
}

/// A join token lives while launches need it: an expired one is deleted
/// (and nothing else changes); a launch makes a new one; `pki rotate`
/// makes another.
#[test]
fn the_join_token_expires_and_a_launch_makes_a_new_one() {
    let sb = Sandbox::start();
    let env = "it-token";
    sb.prepare_db("token-db");
    let text = |nodes: u32| config_text(env, "token-db", &format!("cluster.nodes.count = {nodes}"));
    let cfg = sb.config("scope.toml", &text(1));
    let aws = ["--phase", "aws"];
    let run = |args: &[&str]| {
        let mut all = vec!["--env", env];
        all.extend_from_slice(args);
        all.extend_from_slice(&aws);
        sb.expect(0, &cfg, &all)
    };
    run(&["up", "--yes"]);
    let first = support::join_token_id(&sb, env);

    // A day later: the stored token's recorded expiry has passed.
    assert!(sb.python_code(
        r#"
import boto3, json, sys
ssm = boto3.client("ssm", region_name="us-east-1")
name = sys.argv[1]
p = ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]
d = [x for x in ssm.describe_parameters(ParameterFilters=[{"Key": "Name", "Option": "Equals", "Values": [name]}])["Parameters"]][0]
facts = json.loads(d["Description"])
facts["expires"] = "2026-01-01T00:00:00Z"
ssm.put_parameter(Name=name, Value=p["Value"], Type="SecureString", Overwrite=True, Description=json.dumps(facts))
"#,
        &[&format!("/scopectl/scope/{env}/pki/bootstrap-token")],
    ));
    let (out, _) = run(&["plan"]);
    assert!(out.contains("- pki/token/bootstrap-token"), "{out}");
    assert!(
        out.contains("Plan: 0 to create, 0 to update, 0 to replace, 1 to delete"),
        "{out}"
    );
    run(&["up", "--yes"]);
    let (out, _) = run(&["plan", "--detailed-exitcode"]);
    assert!(out.contains("No changes"), "{out}");

    // A new node needs a token: a new one is made with it.
    std::fs::write(&cfg, text(2)).unwrap();
    let (out, _) = run(&["plan"]);
    assert!(
        out.contains("+ pki/token/bootstrap-token") && out.contains("+ ec2/instance/node-1"),
        "{out}"
    );
    run(&["up", "--yes"]);
    let second = support::join_token_id(&sb, env);
    assert_ne!(first, second);
    let (out, _) = run(&["plan", "--detailed-exitcode"]);
    assert!(out.contains("No changes"), "{out}");

    // `pki rotate` makes another.
    run(&["pki", "rotate", "--yes"]);
    assert_ne!(support::join_token_id(&sb, env), second);
}

/// An env made before issue 26 had one group for every balancer (`elb`):
/// `up` moves each balancer to its own and deletes the old one.
#[test]
fn an_env_with_the_shared_balancer_group_moves_to_one_group_per_balancer() {
    let sb = Sandbox::start();
    let env = "it-groups";
    sb.prepare_db("groups-db");
    let cfg = sb.config(
        "scope.toml",
        &config_text(env, "groups-db", "cluster.nodes.count = 1"),
    );
    sb.expect(0, &cfg, &["--env", env, "up", "--yes", "--phase", "aws"]);
    // The layout before: the shared group, on the API's balancer, admitted
    // by the masters on 6443.
    assert!(sb.python_code(
        r#"
import boto3, sys
env = sys.argv[1]
ec2 = boto3.client("ec2", region_name="us-east-1")
elb = boto3.client("elb", region_name="us-east-1")
def ours(name):
    return ec2.describe_security_groups(Filters=[{"Name": "tag:scopectl:env", "Values": [env]},
        {"Name": "tag:scopectl:id", "Values": ["ec2/security-group/" + name]}])["SecurityGroups"][0]
api = ours("elb-api")
old = ec2.create_security_group(GroupName="scope-" + env + "-elb", Description="scopectl: load balancers",
    VpcId=api["VpcId"], TagSpecifications=[{"ResourceType": "security-group", "Tags": [
        {"Key": "scopectl:project", "Value": "scope"}, {"Key": "scopectl:env", "Value": env},
        {"Key": "scopectl:id", "Value": "ec2/security-group/elb"}, {"Key": "Name", "Value": "scope-" + env + "-elb"},
        {"Key": "kubernetes.io/cluster/scope-" + env, "Value": "owned"}]}])["GroupId"]
elb.apply_security_groups_to_load_balancer(LoadBalancerName="scope-" + env + "-api", SecurityGroups=[old])
"#,
        &[env],
    ));
    let (out, _) = sb.expect(0, &cfg, &["--env", env, "plan", "--phase", "aws"]);
    assert!(
        out.contains("~ elb/load-balancer/api") && out.contains("- ec2/security-group/elb"),
        "{out}"
    );
    sb.up_aws_converged(&cfg, env);
}
