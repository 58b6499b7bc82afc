//! The PKI end to end: issued into the state store by `up`, never reissued
//! needlessly, rotated (leaves; the CA in three stages), read back as a
//! kubeconfig, kept or deleted by `down`, and never printed.

use crate::support;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::Command;

use support::{config_text, Sandbox};

const LEAVES: &[&str] = &[
    "apiserver",
    "apiserver-kubelet-client",
    "front-proxy-client",
    "apiserver-etcd-client",
    "etcd/server",
    "etcd/peer",
    "etcd/healthcheck-client",
    "admin",
    "controller-manager",
    "scheduler",
];
const CAS: &[&str] = &["ca", "front-proxy-ca", "etcd/ca"];

/// Every parameter under the env's `pki/`, decrypted: short name -> value.
fn params(sb: &Sandbox, env: &str) -> BTreeMap<String, String> {
    let out = sb.python_via_proxy(&format!(
        r#"
import boto3, json
ssm = boto3.client("ssm", region_name="us-east-1")
out = {{}}
for page in ssm.get_paginator("get_parameters_by_path").paginate(
        Path="/scopectl/scope/{env}/pki", Recursive=True, WithDecryption=True):
    for p in page["Parameters"]:
        assert p["Type"] == "SecureString", p["Name"]
        out[p["Name"].split("/pki/", 1)[1]] = p["Value"]
print(json.dumps(out))
"#
    ));
    serde_json::from_str(&out).unwrap()
}

fn blocks(v: &str, label: &str) -> Vec<String> {
    let (b, e) = (
        format!("-----BEGIN {label}-----"),
        format!("-----END {label}-----"),
    );
    let mut out = Vec::new();
    let mut cur: Option<String> = None;
    for line in v.lines() {
        if line == b {
            cur = Some(String::new());
        }
        if let Some(c) = cur.as_mut() {
            c.push_str(line);
            c.push('\n');
        }
        if line == e {
            out.extend(cur.take());
        }
    }
    out
}

fn verify(dir: &Path, ca_bundle: &str, leaf: &str) -> bool {
    let (ca, l) = (dir.join("ca.pem"), dir.join("leaf.pem"));
    std::fs::File::create(&ca)
        .unwrap()
        .write_all(ca_bundle.as_bytes())
        .unwrap();
    std::fs::File::create(&l)
        .unwrap()
        .write_all(leaf.as_bytes())
        .unwrap();
    Command::new("openssl")
        .args(["verify", "-CAfile"])
        .arg(&ca)
        .arg(&l)
        .output()
        .expect("openssl is installed by scripts/setup-deb")
        .status
        .success()
}

fn text_of(cert: &str) -> String {
    let mut child = Command::new("openssl")
        .args(["x509", "-noout", "-text"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(cert.as_bytes())
        .unwrap();
    String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap()
}

fn assert_no_secrets(text: &str, secrets: &BTreeMap<String, String>) {
    assert!(!text.contains("PRIVATE KEY"), "a key was printed:\n{text}");
    let token = &secrets["bootstrap-token"];
    assert!(!text.contains(token.as_str()), "the token was printed");
    let (_, secret) = token.split_once('.').unwrap();
    assert!(!text.contains(secret));
}

fn assert_no_changes(sb: &Sandbox, cfg: &Path, env: &str) {
    let (out, _) = sb.expect(0, cfg, &["--env", env, "plan", "--detailed-exitcode"]);
    assert!(out.contains("No changes"), "{out}");
}

fn changed(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> Vec<String> {
    a.keys()
        .chain(b.keys())
        .filter(|k| a.get(*k) != b.get(*k))
        .cloned()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect()
}

#[test]
fn issue_reuse_rotate_kubeconfig_and_teardown() {
    let sb = Sandbox::start();
    let env = "it-pki";
    sb.prepare_db("pki-db");
    let cfg = sb.config(
        "scope.toml",
        &config_text(
            env,
            "pki-db",
            "cluster.nodes.count = 1\ncluster.extra_sans = [\"api.scope.example\", \"10.0.0.10\"]",
        ),
    );
    let dir = tempfile::tempdir().unwrap();

    // Issued by the first up, with the plan saying so and no secret shown.
    let (plan_out, _) = sb.expect(2, &cfg, &["--env", env, "plan", "--detailed-exitcode"]);
    assert!(plan_out.contains("+ pki/ca/ca"), "{plan_out}");
    assert!(plan_out.contains("+ pki/cert/apiserver"), "{plan_out}");
    let (up_out, up_err) = sb.expect(0, &cfg, &["--env", env, "up", "--yes"]);
    let first = params(&sb, env);
    let mut want: Vec<String> = CAS
        .iter()
        .flat_map(|c| [c.to_string(), format!("{c}.crt")])
        .chain(LEAVES.iter().map(|l| l.to_string()))
        .chain([
            "sa".to_string(),
            "bootstrap-token".to_string(),
            "encryption".to_string(),
        ])
        .collect();
    want.sort();
    assert_eq!(first.keys().cloned().collect::<Vec<_>>(), want);
    assert_no_secrets(&format!("{plan_out}{up_out}{up_err}"), &first);
    assert_no_changes(&sb, &cfg, env);

    // Chains, names and the kubeadm layout of what was stored.
    for (leaf, ca) in [
        ("apiserver", "ca"),
        ("admin", "ca"),
        ("front-proxy-client", "front-proxy-ca"),
        ("etcd/server", "etcd/ca"),
        ("etcd/peer", "etcd/ca"),
    ] {
        let cert = &blocks(&first[leaf], "CERTIFICATE")[0];
        assert_eq!(blocks(&first[leaf], "PRIVATE KEY").len(), 1);
        assert!(
            verify(dir.path(), &first[&format!("{ca}.crt")], cert),
            "{leaf}"
        );
        assert!(!verify(dir.path(), &first["etcd/ca.crt"], cert) || ca == "etcd/ca");
    }
    assert!(
        !first["ca.crt"].contains("PRIVATE KEY"),
        "nodes' copy holds no key"
    );
    let api = text_of(&blocks(&first["apiserver"], "CERTIFICATE")[0]);
    let snap = sb.snapshot();
    let lb_dns = snap
        .owned("scope", env)
        .into_iter()
        .find(|(k, v)| k == "load_balancers" && v["tags"]["scopectl:id"] == "elb/load-balancer/api")
        .map(|(_, v)| v["dns"].as_str().unwrap_or_default().to_string())
        .unwrap();
    let master_ip = snap
        .owned("scope", env)
        .into_iter()
        .find(|(k, v)| k == "instances" && v["tags"]["scopectl:id"] == "ec2/instance/master-0")
        .map(|(_, v)| v["private_ip"].as_str().unwrap_or_default().to_string())
        .unwrap();
    for name in [
        "DNS:kubernetes.default.svc.cluster.local",
        "IP Address:10.96.0.1",
        "DNS:api.scope.example",
        "IP Address:10.0.0.10",
        &format!("DNS:{lb_dns}"),
        &format!("IP Address:{master_ip}"),
    ] {
        assert!(api.contains(name), "apiserver lacks {name}:\n{api}");
    }
    assert!(
        api.contains("ECDSA") || api.contains("id-ecPublicKey"),
        "{api}"
    );
    assert!(
        text_of(&blocks(&first["admin"], "CERTIFICATE")[0]).contains("O = kubeadm:cluster-admins")
    );

    // A second up issues nothing.
    let (out, _) = sb.expect(0, &cfg, &["--env", env, "up", "--yes"]);
    assert!(out.contains("No changes"), "{out}");
    assert_eq!(params(&sb, env), first);

    // pki status: every certificate, no key.
    let (json, _) = sb.expect(
        0,
        &cfg,
        &["--env", env, "--output", "json", "pki", "status"],
    );
    support::assert_schema("pki-status", &json);
    assert_no_secrets(&json, &first);
    let (status, _) = sb.expect(0, &cfg, &["--env", env, "pki", "status"]);
    for l in LEAVES {
        assert!(status.contains(l), "{status}");
    }
    assert!(
        status.contains(&lb_dns) && status.contains("expires"),
        "{status}"
    );
    assert_no_secrets(&status, &first);

    // The kubeconfig: 0600, the API load balancer, a certificate of the
    // user's own, short-lived, in kubeadm:cluster-admins (issue 26).
    let kc = dir.path().join("admin.kubeconfig");
    let mut cmd = sb.scopectl(
        &cfg,
        &[
            "--env",
            env,
            "-vv",
            "kubeconfig",
            "--ttl",
            "2h",
            "--user",
            "alice",
            "--out",
            kc.to_str().unwrap(),
        ],
    );
    let out = cmd.env("SCOPECTL_LOG", "trace").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_no_secrets(
        &format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        &first,
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&kc).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let text = std::fs::read_to_string(&kc).unwrap();
    assert!(
        text.contains(&format!("server: https://{lb_dns}:443")),
        "{text}"
    );
    assert!(text.contains("client-key-data"));
    if let Ok(o) = Command::new("kubectl")
        .args([
            "config",
            "view",
            "--minify",
            "--raw",
            "-o",
            "jsonpath={.users[0].user.client-certificate-data}",
        ])
        .env("KUBECONFIG", &kc)
        .output()
    {
        // Checked against the real kubectl where it is installed.
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        use base64::Engine as _;
        let cert = base64::engine::general_purpose::STANDARD
            .decode(o.stdout)
            .unwrap();
        let cert = String::from_utf8(cert).unwrap();
        assert_ne!(cert, blocks(&first["admin"], "CERTIFICATE")[0]);
        let info = scopectl::pki::read_certificate(&cert).unwrap();
        assert_eq!(info.subject, "O=kubeadm:cluster-admins, CN=alice");
        let expires = time::OffsetDateTime::parse(
            &info.not_after,
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap();
        let left = expires - time::OffsetDateTime::now_utc();
        assert!(
            left > time::Duration::minutes(110) && left <= time::Duration::hours(2),
            "{left}"
        );
        assert!(
            verify(dir.path(), &first["ca.crt"], &cert),
            "not signed by the CA"
        );
    }

    // Rotating leaves changes exactly the leaves (logged at trace: no secret).
    let mut cmd = sb.scopectl(&cfg, &["--env", env, "-vv", "pki", "rotate", "--yes"]);
    let out = cmd.env("SCOPECTL_LOG", "trace").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(shown.contains("rotation requested"), "{shown}");
    let rotated = params(&sb, env);
    assert_no_secrets(&shown, &rotated);
    // Every leaf, and the join token (issue 26: a rotation makes a new one).
    let mut leaves: Vec<String> = LEAVES.iter().map(|l| l.to_string()).collect();
    leaves.push("bootstrap-token".into());
    leaves.sort();
    assert_eq!(changed(&first, &rotated), leaves);
    assert_no_changes(&sb, &cfg, env);

    // The CA in three stages, each a plan of its own.
    let stage = |expect: &str| {
        let (out, _) = sb.expect(0, &cfg, &["--env", env, "pki", "rotate", "--ca", "--yes"]);
        assert!(out.contains(expect), "{out}");
        assert_no_changes(&sb, &cfg, env);
        params(&sb, env)
    };
    let s1 = stage("~ pki/ca/ca");
    assert_eq!(
        blocks(&s1["ca.crt"], "CERTIFICATE").len(),
        2,
        "new CA trusted beside the old"
    );
    assert!(changed(&rotated, &s1)
        .iter()
        .all(|k| CAS.iter().any(|c| k.starts_with(c))));
    let s2 = stage("-/+ pki/cert/admin");
    // The leaves (the join token is `pki rotate`'s, not a CA stage's).
    let mut both: Vec<String> = leaves
        .iter()
        .filter(|l| *l != "bootstrap-token")
        .cloned()
        .collect();
    both.extend(CAS.iter().flat_map(|c| [c.to_string(), format!("{c}.crt")]));
    both.sort();
    assert_eq!(
        changed(&s1, &s2),
        both,
        "signing switched, every leaf reissued"
    );
    let new_ca = &blocks(&s2["ca.crt"], "CERTIFICATE")[0];
    assert!(verify(
        dir.path(),
        new_ca,
        &blocks(&s2["admin"], "CERTIFICATE")[0]
    ));
    let s3 = stage("~ pki/ca/ca");
    assert_eq!(
        blocks(&s3["ca.crt"], "CERTIFICATE"),
        std::slice::from_ref(new_ca),
        "the old CA dropped"
    );
    assert!(changed(&s2, &s3)
        .iter()
        .all(|k| CAS.iter().any(|c| k.starts_with(c))));
    assert!(!verify(
        dir.path(),
        &s3["ca.crt"],
        &blocks(&first["admin"], "CERTIFICATE")[0]
    ));

    // down --keep-pki leaves the PKI; down deletes it last.
    sb.expect(0, &cfg, &["--env", env, "down", "--yes", "--keep-pki"]);
    assert_eq!(params(&sb, env), s3);
    // What is still owned is the PKI's parameters, every one, and nothing else.
    let mut left: Vec<(String, String)> = sb
        .snapshot()
        .owned("scope", env)
        .into_iter()
        .map(|(k, v)| (k, v["id"].as_str().unwrap_or_default().to_string()))
        .collect();
    left.sort();
    let mut kept: Vec<(String, String)> = s3
        .keys()
        .map(|k| {
            (
                "parameters".to_string(),
                format!("/scopectl/scope/{env}/pki/{k}"),
            )
        })
        .collect();
    kept.sort();
    assert_eq!(left, kept, "down --keep-pki must leave the PKI and only it");
    let (out, _) = sb.expect(2, &cfg, &["--env", env, "plan", "--detailed-exitcode"]);
    // The kept CAs are reused; only certificates naming the new load
    // balancer and masters are reissued.
    assert!(!out.contains("pki/ca/"), "the kept PKI is reused:\n{out}");
    assert!(!out.contains("pki/cert/admin"), "{out}");
    assert!(out.contains("-/+ pki/cert/apiserver"), "{out}");
    let (down, _) = sb.expect(0, &cfg, &["--env", env, "down", "--yes"]);
    assert!(down.contains("pki/ca/ca"), "{down}");
    assert!(params(&sb, env).is_empty());
}

/// A PKI item whose description scopectl cannot read stops `plan` and `up`
/// with an error naming the parameter and a hint; nothing is reissued (read
/// as "nothing known", it would plan a new CA and break the cluster).
#[test]
fn an_unreadable_pki_description_is_an_error_never_a_new_ca() {
    let sb = Sandbox::start();
    let env = "it-pki-corrupt";
    sb.prepare_db("pki-corrupt-db");
    let cfg = sb.config("scope.toml", &config_text(env, "pki-corrupt-db", ""));
    sb.expect(0, &cfg, &["--env", env, "up", "--yes"]);
    let before = params(&sb, env);
    let name = format!("/scopectl/scope/{env}/pki/ca");
    sb.python_via_proxy(&format!(
        r#"
import boto3
ssm = boto3.client("ssm", region_name="us-east-1")
v = ssm.get_parameter(Name="{name}", WithDecryption=True)["Parameter"]["Value"]
ssm.put_parameter(Name="{name}", Value=v, Type="SecureString", Overwrite=True, Description="edited by hand")
"#
    ));
    for args in [&["plan"][..], &["up", "--yes"]] {
        let mut full = vec!["--env", env];
        full.extend_from_slice(args);
        let (_, err) = sb.expect(1, &cfg, &full);
        assert!(
            err.contains(&format!(
                "{name} (pki/ca/ca) has a description scopectl cannot read"
            )),
            "{err}"
        );
        assert!(
            err.contains("hint: ") && err.contains("restore it"),
            "{err}"
        );
    }
    assert_eq!(params(&sb, env), before, "the PKI changed");
}

/// A CA whose value does not parse stops a reissue with an error naming the
/// parameter and a hint; no new CA is made and nothing else changes.
#[test]
fn a_ca_value_that_does_not_parse_is_an_error_never_a_new_ca() {
    let sb = Sandbox::start();
    let env = "it-pki-garbled";
    sb.prepare_db("pki-garbled-db");
    let cfg = sb.config("scope.toml", &config_text(env, "pki-garbled-db", ""));
    sb.expect(0, &cfg, &["--env", env, "up", "--yes"]);
    let name = format!("/scopectl/scope/{env}/pki/ca");
    // The value garbled, the description (the public facts) kept.
    sb.python_via_proxy(&format!(
        r#"
import boto3
ssm = boto3.client("ssm", region_name="us-east-1")
d = [p for p in ssm.describe_parameters(ParameterFilters=[{{"Key": "Name", "Option": "Equals", "Values": ["{name}"]}}])["Parameters"]][0]["Description"]
ssm.put_parameter(Name="{name}", Value="not a certificate", Type="SecureString", Overwrite=True, Description=d)
"#
    ));
    let before = params(&sb, env);
    let (_, err) = sb.expect(1, &cfg, &["--env", env, "pki", "rotate", "--yes"]);
    assert!(
        err.contains(&format!("the state store's {name} holds no CA certificate")),
        "{err}"
    );
    assert!(err.contains("hint: restore its value"), "{err}");
    // No new CA, and nothing the garbled CA signs was reissued (leaves of
    // the other CAs may be: `pki rotate` reissues every leaf it can).
    let after = params(&sb, env);
    for key in [
        "ca",
        "ca.crt",
        "admin",
        "apiserver",
        "apiserver-kubelet-client",
    ] {
        assert!(after[key] == before[key], "{key} changed");
    }
}
