use std::io::Write;
use std::process::Command;
use std::sync::Arc;

use super::*;

struct Pki {
    cas: Vec<(&'static str, CaMaterial)>,
    leaves: Vec<(&'static str, Issued)>,
}

fn sans_for(leaf: &LeafSpec) -> Vec<String> {
    match leaf.names {
        Names::None => Vec::new(),
        Names::ApiServer => {
            let mut s = api_server_sans(
                "10.96.0.0/12".parse().unwrap(),
                "cluster.local",
                Some("api.example.com"),
                &["10.1.2.3".into()],
            );
            s.push("scope-test-api-1.us-east-1.elb.amazonaws.com".into());
            s.push("172.31.128.10".into());
            s
        }
        Names::Etcd => {
            let mut s = etcd_sans();
            s.push("172.31.128.10".into());
            s
        }
    }
}

fn issue_all() -> Pki {
    let cas: Vec<(&str, CaMaterial)> = CAS
        .iter()
        .map(|c| {
            let i = new_ca(c.common_name).unwrap();
            (
                c.stem,
                CaMaterial {
                    cert_pem: i.cert_pem,
                    key_pem: i.key_pem,
                },
            )
        })
        .collect();
    let leaves = LEAVES
        .iter()
        .map(|l| {
            let ca = &cas.iter().find(|(s, _)| *s == l.ca).unwrap().1;
            (l.stem, new_leaf(l, &sans_for(l), ca).unwrap())
        })
        .collect();
    Pki { cas, leaves }
}

fn write(dir: &std::path::Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name.replace('/', "-"));
    std::fs::File::create(&p)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    p
}

#[test]
fn every_chain_verifies_with_openssl() {
    let pki = issue_all();
    let dir = tempfile::tempdir().unwrap();
    for (stem, leaf) in &pki.leaves {
        let spec = leaf_spec(stem).unwrap();
        let ca = &pki.cas.iter().find(|(s, _)| *s == spec.ca).unwrap().1;
        let ca_file = write(dir.path(), &format!("{}.ca.crt", spec.ca), &ca.cert_pem);
        let leaf_file = write(dir.path(), &format!("{stem}.crt"), &leaf.cert_pem);
        let purpose = match spec.usage {
            Usage::Server => "sslserver",
            Usage::Client | Usage::Both => "sslclient",
        };
        let out = Command::new("openssl")
            .args(["verify", "-purpose", purpose, "-CAfile"])
            .arg(&ca_file)
            .arg(&leaf_file)
            .output()
            .expect("openssl is installed by scripts/setup-deb");
        assert!(
            out.status.success(),
            "{stem}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // A chain to another CA must not verify.
        let other = &pki.cas.iter().find(|(s, _)| *s != spec.ca).unwrap().1;
        let other_file = write(dir.path(), "other.crt", &other.cert_pem);
        let out = Command::new("openssl")
            .args(["verify", "-CAfile"])
            .arg(&other_file)
            .arg(&leaf_file)
            .output()
            .unwrap();
        assert!(
            !out.status.success(),
            "{stem} verified against the wrong CA"
        );
    }
}

#[test]
fn subjects_sans_and_usages_are_kubeadms() {
    let pki = issue_all();
    for (stem, ca) in &pki.cas {
        let c = read_certificate(&ca.cert_pem).unwrap();
        assert!(c.is_ca, "{stem}");
        assert_eq!(
            c.key_usage,
            ["digital signature", "key encipherment", "certificate sign"]
        );
        assert_eq!(c.subject, c.issuer);
        assert_eq!(
            c.subject,
            format!("CN={}", ca_spec(stem).unwrap().common_name)
        );
        // Ten years (allowing the five-minute backdate and leap days).
        let days = days_between(&c.not_before, &c.not_after);
        assert!((3650..=3651).contains(&days), "{stem}: {days} days");
    }
    for (stem, leaf) in &pki.leaves {
        let spec = leaf_spec(stem).unwrap();
        let c = read_certificate(&leaf.cert_pem).unwrap();
        assert!(!c.is_ca);
        let want_subject = match spec.organization {
            Some(o) => format!("O={o}, CN={}", spec.common_name),
            None => format!("CN={}", spec.common_name),
        };
        assert_eq!(c.subject, want_subject, "{stem}");
        assert_eq!(c.key_usage, ["digital signature", "key encipherment"]);
        let eku: &[&str] = match spec.usage {
            Usage::Server => &["server auth"],
            Usage::Client => &["client auth"],
            Usage::Both => &["server auth", "client auth"],
        };
        assert_eq!(c.extended_key_usage, eku, "{stem}");
        let days = days_between(&c.not_before, &c.not_after);
        assert!((365..=366).contains(&days), "{stem}: {days} days");
        let mut want = sans_for(spec);
        want.sort();
        let mut got = c.sans.clone();
        got.sort();
        assert_eq!(got, want, "{stem}");
    }
    let api = &pki
        .leaves
        .iter()
        .find(|(s, _)| *s == "apiserver")
        .unwrap()
        .1;
    let sans = read_certificate(&api.cert_pem).unwrap().sans;
    for name in [
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
        "10.96.0.1",
        "127.0.0.1",
        "api.example.com",
        "10.1.2.3",
        "scope-test-api-1.us-east-1.elb.amazonaws.com",
        "172.31.128.10",
    ] {
        assert!(
            sans.iter().any(|s| s == name),
            "apiserver lacks {name}: {sans:?}"
        );
    }
    let admin = &pki.leaves.iter().find(|(s, _)| *s == "admin").unwrap().1;
    assert!(read_certificate(&admin.cert_pem)
        .unwrap()
        .subject
        .contains("O=kubeadm:cluster-admins"));
}

fn days_between(a: &str, b: &str) -> i64 {
    let f = time::format_description::well_known::Rfc3339;
    let (a, b) = (
        time::OffsetDateTime::parse(a, &f).unwrap(),
        time::OffsetDateTime::parse(b, &f).unwrap(),
    );
    (b - a).whole_days()
}

/// The client side of a handshake, from a kubeconfig as `scopectl kubeconfig` writes it.
fn client_config(kubeconfig: &str) -> rustls::ClientConfig {
    use base64::Engine as _;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let v: serde_norway::Value = serde_norway::from_str(kubeconfig).unwrap();
    let b64 = |s: &serde_norway::Value| {
        base64::engine::general_purpose::STANDARD
            .decode(s.as_str().unwrap())
            .unwrap()
    };
    let cluster = &v["clusters"][0]["cluster"];
    let user = &v["users"][0]["user"];
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(&b64(&cluster["certificate-authority-data"])) {
        roots.add(c.unwrap()).unwrap();
    }
    let certs: Vec<CertificateDer> =
        CertificateDer::pem_slice_iter(&b64(&user["client-certificate-data"]))
            .map(|c| c.unwrap())
            .collect();
    let key = PrivateKeyDer::from_pem_slice(&b64(&user["client-key-data"])).unwrap();
    rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_client_auth_cert(certs, key)
        .unwrap()
}

fn kubeconfig_of(pki: &Pki) -> String {
    let ca = &pki.cas.iter().find(|(s, _)| *s == "ca").unwrap().1;
    let admin = &pki.leaves.iter().find(|(s, _)| *s == "admin").unwrap().1;
    admin_kubeconfig(&KubeconfigParts {
        name: "scope-test",
        server: "https://api.example.com:443",
        ca_pem: &ca.cert_pem,
        cert_pem: &admin.cert_pem,
        key_pem: &admin.key_pem,
    })
}

/// A handshake between a rustls server holding `server`'s API server
/// certificate (requiring client certificates from its CA) and a client
/// using `client_kubeconfig`.
async fn handshake(server: &Pki, client_kubeconfig: &str) -> Result<(), String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ca = &server.cas.iter().find(|(s, _)| *s == "ca").unwrap().1;
    let api = &server
        .leaves
        .iter()
        .find(|(s, _)| *s == "apiserver")
        .unwrap()
        .1;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.cert_pem.as_bytes()).unwrap())
        .unwrap();
    let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
        .build()
        .unwrap();
    let server_config = rustls::ServerConfig::builder()
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![CertificateDer::from_pem_slice(api.cert_pem.as_bytes()).unwrap()],
            PrivateKeyDer::from_pem_slice(api.key_pem.as_bytes()).unwrap(),
        )
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_config));
    let srv = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut tls = acceptor.accept(tcp).await.map_err(|e| e.to_string())?;
        tls.write_all(b"ok").await.map_err(|e| e.to_string())?;
        tls.shutdown().await.map_err(|e| e.to_string())
    });
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config(client_kubeconfig)));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let client = async {
        let mut tls = connector
            .connect(ServerName::try_from("kubernetes.default.svc").unwrap(), tcp)
            .await
            .map_err(|e| e.to_string())?;
        // TLS 1.3: the server judges the client certificate after the
        // client's handshake ends; reading shows its verdict.
        let mut buf = Vec::new();
        tls.read_to_end(&mut buf).await.map_err(|e| e.to_string())?;
        if buf == b"ok" {
            Ok(())
        } else {
            Err(format!("read {buf:?}"))
        }
    };
    let (c, s) = tokio::join!(client, srv);
    c?;
    s.unwrap()
}

#[tokio::test]
async fn admin_kubeconfig_authenticates_to_the_api_server_and_another_envs_does_not() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let ours = issue_all();
    let theirs = issue_all();
    handshake(&ours, &kubeconfig_of(&ours))
        .await
        .expect("our admin reaches our API server");
    let err = handshake(&ours, &kubeconfig_of(&theirs)).await.unwrap_err();
    assert!(!err.is_empty());
}

#[test]
fn tokens_are_kubeadm_bootstrap_tokens() {
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..50 {
        let t = new_token().unwrap();
        let (id, secret) = t.split_once('.').unwrap();
        assert_eq!((id.len(), secret.len()), (6, 16), "{t}");
        assert!(t
            .chars()
            .all(|c| c == '.' || c.is_ascii_lowercase() || c.is_ascii_digit()));
        assert!(seen.insert(t));
    }
}

#[test]
fn renewal_is_due_within_thirty_days() {
    let now = time::macros::datetime!(2026-11-25 12:00 UTC);
    assert_eq!(renewal(Some("2027-11-25T12:00:00Z"), now).0, NOT_DUE);
    assert_eq!(renewal(Some("2026-12-26T12:00:00Z"), now).0, NOT_DUE);
    assert_eq!(
        renewal(Some("2026-12-20T00:00:00Z"), now).0,
        "due: expires 2026-12-20T00:00:00Z (within 30 days)"
    );
    assert_eq!(
        renewal(Some("2026-11-01T00:00:00Z"), now).0,
        "due: expired 2026-11-01T00:00:00Z"
    );
    assert_eq!(renewal(None, now).0, "due: no recorded expiry");
}

#[test]
fn a_ca_value_round_trips_its_generations() {
    let a = new_ca("kubernetes").unwrap();
    let b = new_ca("kubernetes").unwrap();
    let (ma, mb) = (
        CaMaterial {
            cert_pem: a.cert_pem.clone(),
            key_pem: a.key_pem.clone(),
        },
        CaMaterial {
            cert_pem: b.cert_pem.clone(),
            key_pem: b.key_pem.clone(),
        },
    );
    let v = ca_value(&[(2, &mb), (1, &ma)]);
    assert_eq!(
        pem_blocks(&v, "CERTIFICATE"),
        [b.cert_pem.clone(), a.cert_pem.clone()]
    );
    let back = parse_ca_value(&v, &[2, 1]).unwrap();
    assert_eq!(back[0].0, 2);
    assert_eq!(back[0].1.key_pem, b.key_pem);
    assert_eq!(back[1].1.cert_pem, a.cert_pem);
    assert!(parse_ca_value(&v, &[1]).is_err());
}

#[test]
fn merging_a_kubeconfig_keeps_other_clusters() {
    let pki = issue_all();
    let ours = kubeconfig_of(&pki);
    let existing = "apiVersion: v1\nkind: Config\nclusters:\n- name: other\n  cluster:\n    server: https://other:6443\nusers:\n- name: other\n  user: {token: x}\ncontexts:\n- name: other\n  context: {cluster: other, user: other}\ncurrent-context: other\npreferences: {}\n";
    let ca = &pki.cas[0].1;
    let admin = &pki.leaves.iter().find(|(s, _)| *s == "admin").unwrap().1;
    let p = KubeconfigParts {
        name: "scope-test",
        server: "https://api.example.com:443",
        ca_pem: &ca.cert_pem,
        cert_pem: &admin.cert_pem,
        key_pem: &admin.key_pem,
    };
    let merged = merge_kubeconfig(existing, &p).unwrap();
    let twice = merge_kubeconfig(&merged, &p).unwrap();
    assert_eq!(merged, twice, "merging is idempotent");
    let v: serde_norway::Value = serde_norway::from_str(&merged).unwrap();
    assert_eq!(v["clusters"].as_sequence().unwrap().len(), 2);
    assert_eq!(v["current-context"].as_str(), Some("scope-test"));
    assert!(v.get("preferences").is_some());
    assert!(ours.contains("client-key-data"));
    assert!(merge_kubeconfig("- a list", &p).is_err());
}
