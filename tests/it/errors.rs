//! Errors a person can act on: missing or refused AWS credentials, an
//! unknown region, an RDS instance that does not exist, an API that never
//! gets ready and an expired admin certificate each read as one `error:`
//! line (what failed, in the user's terms), a `Caused by:` section (the
//! service's or the SDK's own answer) and a `hint:` with the next command,
//! and exit 1 (64 where the config names something that is not there).
//! Each reaches its error as early as it can: no `up` of the machines.

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::support::{config_text, output, Sandbox};

/// Checks the shape: exactly one `error:` line, and it is the first; the
/// causes under `Caused by:`, each expected one among them; a `hint:` line
/// holding the command; the exit code. Returns stderr.
fn expect_shape(
    what: &str,
    (code, out, err): (i32, String, String),
    exit: i32,
    error: &str,
    causes: &[&str],
    hint: &str,
) -> String {
    let shown = format!("{what}: exit {code}\n--- stdout\n{out}\n--- stderr\n{err}");
    if std::env::var_os("SHOW_ERRORS").is_some() {
        eprintln!("--- {what} (exit {code})\n{err}");
    }
    assert_eq!(code, exit, "{shown}");
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    // Progress lines (`Waiting for …`) may come before it, never after.
    assert_eq!(errors.len(), 1, "one error line: {shown}");
    assert!(
        err.lines().skip_while(|l| !l.starts_with("error:")).count() > 0,
        "{shown}"
    );
    assert!(errors[0].contains(error), "expected {error:?}: {shown}");
    let (_, after) = err
        .split_once("\nCaused by:\n")
        .unwrap_or_else(|| panic!("no Caused by: {shown}"));
    let (caused, _) = after.split_once("\nhint: ").unwrap_or((after, ""));
    for c in causes {
        assert!(caused.contains(c), "expected cause {c:?}: {shown}");
    }
    let hints: Vec<&str> = err.lines().filter(|l| l.starts_with("hint: ")).collect();
    assert_eq!(hints.len(), 1, "one hint line: {shown}");
    assert!(
        hints[0].contains(hint),
        "expected {hint:?} in the hint: {shown}"
    );
    err
}

fn timed<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let t = Instant::now();
    let r = f();
    eprintln!("{what}: {:.2} s", t.elapsed().as_secs_f64());
    r
}

#[test]
fn missing_credentials_say_none_were_found_and_send_nothing() {
    let sb = Sandbox::start();
    let cfg = sb.config("scope.toml", &config_text("it-nocreds", "nocreds-db", ""));
    let home = tempfile::tempdir().unwrap();
    let mut cmd = sb.scopectl(&cfg, &["--env", "it-nocreds", "plan"]);
    // Nothing for the default chain: no variables, an empty home (no
    // ~/.aws), no instance metadata.
    for v in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_CONFIG_FILE",
        "AWS_SHARED_CREDENTIALS_FILE",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    ] {
        cmd.env_remove(v);
    }
    cmd.env("HOME", home.path())
        .env("AWS_EC2_METADATA_DISABLED", "true");
    let result = timed("no credentials", || output(cmd));
    expect_shape(
        "no credentials",
        result,
        1,
        "no AWS credentials found from the default chain for us-east-1",
        &["CredentialsNotLoaded"],
        "aws configure",
    );
    assert_eq!(
        sb.proxy.calls.len(),
        0,
        "a call went out without credentials"
    );
}

#[test]
fn refused_credentials_say_so_with_the_services_answer() {
    let sb = Sandbox::start();
    sb.prepare_db("badcreds-db");
    let cfg = sb.config("scope.toml", &config_text("it-badcreds", "badcreds-db", ""));
    for args in [&["plan"][..], &["status"]] {
        let mut cmd = sb.scopectl(&cfg, &[&["--env", "it-badcreds"][..], args].concat());
        // A key AWS does not know: EC2 answers AuthFailure, SSM
        // UnrecognizedClientException, RDS and ELB InvalidClientTokenId.
        cmd.env("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE");
        let result = timed("refused credentials", || output(cmd));
        let err = expect_shape(
            "refused credentials",
            result,
            1,
            "AWS rejected the credentials from the default chain in us-east-1",
            &[],
            "aws sts get-caller-identity",
        );
        assert!(
            err.contains(
                "AuthFailure: AWS was not able to validate the provided access credentials"
            ) || err.contains("InvalidClientTokenId")
                || err.contains("UnrecognizedClientException"),
            "{err}"
        );
    }
}

#[test]
fn an_unknown_region_is_named_with_where_it_is_set() {
    let sb = Sandbox::start();
    // Not shaped like a region: a config error, before any call.
    let text = config_text("it-region", "region-db", "");
    let cfg = sb.config("bad.toml", &text.replace("us-east-1", "us-east"));
    let result = output(sb.scopectl(&cfg, &["--env", "it-region", "plan"]));
    assert_eq!(result.0, 64, "{result:?}");
    assert!(result.2.starts_with("error: "), "{}", result.2);
    assert!(
        result.2.contains("is not an AWS region name"),
        "{}",
        result.2
    );
    assert!(result.2.contains("bad.toml:4:10"), "{}", result.2);
    assert!(
        result.2.contains("aws ec2 describe-regions"),
        "{}",
        result.2
    );
    assert_eq!(sb.proxy.calls.len(), 0);
    // Shaped like one, but AWS has no such region: the SDK signs for it,
    // and AWS (here the proxy, as AWS does) refuses the credential scope.
    let cfg = sb.config("scope.toml", &text.replace("us-east-1", "us-east-7"));
    let result = timed("unknown region", || {
        output(sb.scopectl(&cfg, &["--env", "it-region", "plan"]))
    });
    let err = expect_shape(
        "unknown region",
        result,
        1,
        "AWS does not know the region `us-east-7`",
        &["Credential should be scoped to a valid region"],
        "aws ec2 describe-regions --query 'Regions[].RegionName'",
    );
    let at = format!("`aws.region` at {}:4:10", cfg.display());
    assert!(err.contains(&at), "expected {at}: {err}");
}

#[test]
fn a_missing_rds_instance_names_the_key_and_how_to_list_them() {
    let sb = Sandbox::start();
    let cfg = sb.config("scope.toml", &config_text("it-nodb", "no-such-db", ""));
    let result = timed("missing database", || {
        output(sb.scopectl(&cfg, &["--env", "it-nodb", "plan"]))
    });
    let err = expect_shape(
        "missing database",
        result,
        64,
        "RDS instance `no-such-db` was not found in us-east-1",
        &["DBInstanceNotFound"],
        "aws rds describe-db-instances --region us-east-1 --query 'DBInstances[].DBInstanceIdentifier'",
    );
    let at = format!("`database.rds_instance` at {}:11:16", cfg.display());
    assert!(err.contains(&at), "expected {at}: {err}");
}

/// A config whose API is reached at `api.example` (no load balancer
/// needed), with the cluster CA and an admin certificate in the state store
/// (directly in the emulator): valid until `not_after` days from now.
fn with_admin(sb: &Sandbox, env: &str, db: &str, not_after_days: i64) -> std::path::PathBuf {
    sb.prepare_db(db);
    let text = config_text(env, db, "").replace(
        "[network]",
        "[cluster]\napi_endpoint = \"api.example\"\n\n[network]",
    );
    let cfg = sb.config("scope.toml", &text);
    let code = r#"
import sys, datetime, boto3
from cryptography import x509
from cryptography.x509.oid import NameOID
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
prefix, days = sys.argv[1], int(sys.argv[2])
now = datetime.datetime.now(datetime.timezone.utc)
def name(cn, org=None):
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)
ca_key = ec.generate_private_key(ec.SECP256R1())
ca = (x509.CertificateBuilder().subject_name(name("kubernetes")).issuer_name(name("kubernetes"))
      .public_key(ca_key.public_key()).serial_number(1)
      .not_valid_before(now - datetime.timedelta(days=400)).not_valid_after(now + datetime.timedelta(days=3000))
      .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
      .sign(ca_key, hashes.SHA256()))
key = ec.generate_private_key(ec.SECP256R1())
cert = (x509.CertificateBuilder().subject_name(name("kubernetes-admin", "kubeadm:cluster-admins"))
        .issuer_name(ca.subject).public_key(key.public_key()).serial_number(2)
        .not_valid_before(now - datetime.timedelta(days=400)).not_valid_after(now + datetime.timedelta(days=days))
        .sign(ca_key, hashes.SHA256()))
pem = lambda c: c.public_bytes(serialization.Encoding.PEM).decode()
key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
ssm = boto3.client("ssm")
ssm.put_parameter(Name=prefix + "ca.crt", Value=pem(ca), Type="SecureString")
# The public facts scopectl keeps in the description: the expiry it plans renewals by.
expires = cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
ssm.put_parameter(Name=prefix + "admin", Value=pem(cert) + key_pem, Type="SecureString",
                  Description='{"expires": "%s"}' % expires)
"#;
    let prefix = format!("/scopectl/scope/{env}/pki/");
    assert!(sb.python_code(code, &[&prefix, &not_after_days.to_string()]));
    cfg
}

/// A port nobody listens on (connections refused, as by a load balancer
/// with no healthy master).
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// All phases (the harness's default is the AWS phase only).
fn all_phases(sb: &Sandbox, cfg: &Path, args: &[&str]) -> Command {
    let mut cmd = sb.scopectl(cfg, args);
    cmd.env("SCOPECTL_PHASE", "all");
    cmd
}

#[test]
fn an_api_that_never_gets_ready_says_where_to_look_next() {
    let sb = Sandbox::start();
    let env = "it-noapi";
    let cfg = with_admin(&sb, env, "noapi-db", 300);
    let api = format!("https://127.0.0.1:{}", closed_port());
    // The cluster phase alone: no machines to make, straight to the wait.
    let cmd = all_phases(
        &sb,
        &cfg,
        &[
            "--env",
            env,
            "--phase",
            "cluster",
            "--api-server",
            &api,
            "up",
            "--yes",
            "--timeout",
            "1s",
        ],
    );
    let result = timed("API never ready", || output(cmd));
    let err = expect_shape(
        "API never ready",
        result,
        1,
        "the Kubernetes API did not become ready within 1s",
        &[&format!("last seen: {api}")],
        &format!("`scopectl status --env {env}`"),
    );
    assert!(
        err.contains("`aws ec2 get-console-output --instance-id"),
        "{err}"
    );
}

#[test]
fn an_expired_admin_certificate_is_found_before_the_api_is_contacted() {
    let sb = Sandbox::start();
    let env = "it-expired";
    let cfg = with_admin(&sb, env, "expired-db", -3);
    // The API's stand-in counts connections: there must be none.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let api = format!("https://{}", listener.local_addr().unwrap());
    let connections = Arc::new(AtomicUsize::new(0));
    let seen = connections.clone();
    std::thread::spawn(move || {
        for _ in listener.incoming().flatten() {
            seen.fetch_add(1, Ordering::SeqCst);
        }
    });
    let cmd = all_phases(
        &sb,
        &cfg,
        &[
            "--env",
            env,
            "--api-server",
            &api,
            "rollout",
            "users=v1.1.0",
        ],
    );
    let result = timed("expired admin certificate", || output(cmd));
    let err = expect_shape(
        "expired admin certificate",
        result,
        1,
        &format!("the admin certificate of scope/{env} expired on 20"),
        &[&format!(
            "/scopectl/scope/{env}/pki/admin in the state store"
        )],
        &format!("`scopectl pki rotate --env {env}`"),
    );
    assert_eq!(connections.load(Ordering::SeqCst), 0, "{err}");
    // A plan of the AWS phase (what `up` and `pki rotate` apply) renews the
    // certificate rather than stopping at it, and says why the cluster is
    // not observed.
    let (code, out, err) = output(all_phases(
        &sb,
        &cfg,
        &["--env", env, "--api-server", &api, "plan"],
    ));
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains("-/+ pki/cert/admin") && out.contains("renewal: \"due: expired 20"),
        "{out}"
    );
    assert!(
        format!("{out}{err}").contains("the admin certificate expired on"),
        "{out}\n{err}"
    );
    assert_eq!(connections.load(Ordering::SeqCst), 0, "{out}\n{err}");
}
