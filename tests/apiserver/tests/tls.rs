//! Over HTTPS: only certificates from the cluster CA get in (another CA's
//! get 401, none gets the public health paths only); start-up time and the
//! server's own time for a get.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use scopectl_apiserver::{testpki, Config, NodeSpec, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn client(ca: &str, cert: Option<(&str, &str)>) -> tokio_rustls::TlsConnector {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let b = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let cfg = match cert {
        Some((c, k)) => b
            .with_client_auth_cert(
                CertificateDer::pem_slice_iter(c.as_bytes())
                    .map(Result::unwrap)
                    .collect(),
                PrivateKeyDer::from_pem_slice(k.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => b.with_no_client_auth(),
    };
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
}

/// One GET on its own connection: (status, body).
async fn get(
    addr: std::net::SocketAddr,
    tls: &tokio_rustls::TlsConnector,
    path: &str,
) -> (u16, String) {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let mut s = tls.connect(name, tcp).await.unwrap();
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out).await;
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (
        status,
        text.split("\r\n\r\n")
            .nth(1)
            .unwrap_or_default()
            .to_string(),
    )
}

fn node() -> NodeSpec {
    NodeSpec {
        name: "ip-10-0-0-10.ec2.internal".into(),
        internal_ip: "10.0.0.10".into(),
        master: true,
        zone: None,
        instance_id: None,
        instance_type: None,
    }
}

#[test]
fn only_the_cluster_cas_certificates_get_in_and_gets_are_fast() {
    let pki = testpki::generate(&["127.0.0.1", "kubernetes"]).unwrap();
    let other = testpki::generate(&["127.0.0.1"]).unwrap();
    let started = Instant::now();
    let server = Server::start(
        Config {
            nodes: vec![node()],
            ..Config::default()
        },
        &pki.tls(),
        "127.0.0.1:0",
    )
    .unwrap();
    let start_ms = started.elapsed().as_secs_f64() * 1000.0;
    println!("start: {start_ms:.1} ms");
    assert!(
        start_ms < 200.0,
        "the server took {start_ms:.1} ms to start"
    );

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let addr = server.addr;
    rt.block_on(async {
        let admin = client(&pki.ca_pem, Some((&pki.admin_cert_pem, &pki.admin_key_pem)));
        let (s, body) = get(addr, &admin, "/api/v1/nodes").await;
        assert_eq!(s, 200, "{body}");
        assert!(body.contains("ip-10-0-0-10.ec2.internal"));

        let foreign = client(
            &pki.ca_pem,
            Some((&other.admin_cert_pem, &other.admin_key_pem)),
        );
        let (s, body) = get(addr, &foreign, "/api/v1/nodes").await;
        assert_eq!(s, 401, "{body}");
        assert!(body.contains("\"reason\":\"Unauthorized\""), "{body}");
        assert_eq!(get(addr, &foreign, "/readyz").await.0, 401);

        let anonymous = client(&pki.ca_pem, None);
        assert_eq!(
            get(addr, &anonymous, "/readyz").await,
            (200, "ok".to_string())
        );
        assert_eq!(get(addr, &anonymous, "/api").await.0, 403);

        for _ in 0..200 {
            assert_eq!(
                get(addr, &admin, "/api/v1/nodes/ip-10-0-0-10.ec2.internal")
                    .await
                    .0,
                200
            );
        }
    });
    let users: Vec<String> = server
        .cluster
        .requests()
        .iter()
        .take(3)
        .map(|r| r.user.clone())
        .collect();
    assert_eq!(users, ["kubernetes-admin", "", ""]);
    let mut gets: Vec<u64> = server
        .cluster
        .requests()
        .iter()
        .filter(|r| r.verb == "get" && r.status == 200)
        .map(|r| r.micros)
        .collect();
    gets.sort();
    let median = gets[gets.len() / 2];
    let p90 = gets[gets.len() * 9 / 10];
    println!(
        "get, the server's own time: median {median} µs, p90 {p90} µs over {} gets",
        gets.len()
    );
    assert!(median < 1000, "median get {median} µs");
    drop(server);
    std::thread::sleep(Duration::from_millis(10));
}
