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
    sb.expect(0, &cfg, &["--env", env, "up", "--yes", "--phase", "aws"]);
    let (out, _) = sb.expect(
        0,
        &cfg,
        &[
            "--env",
            env,
            "plan",
            "--phase",
            "aws",
            "--detailed-exitcode",
        ],
    );
    assert!(out.contains("No changes"), "{out}");

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
