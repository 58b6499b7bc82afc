//! HTTPS: the API server certificate, client certificates checked against
//! the cluster CA after the handshake (so a foreign certificate gets a 401,
//! as from kube-apiserver, rather than a failed handshake), HTTP/1.1.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme,
};
use tokio::net::TcpListener;

use crate::api::{Auth, Body, Request};
use crate::{Cluster, Config};

/// The server's certificate and key, and the CA bundle client certificates
/// must chain to; all PEM.
#[derive(Clone, Debug)]
pub struct Tls {
    pub cert_pem: String,
    pub key_pem: String,
    pub client_ca_pem: String,
}

impl Tls {
    /// From the state store's values: the API server item (certificate then
    /// key) and the CA item (certificates, then keys, which are ignored).
    pub fn from_bundles(apiserver: &str, ca: &str) -> Tls {
        Tls {
            cert_pem: apiserver.into(),
            key_pem: apiserver.into(),
            client_ca_pem: ca.into(),
        }
    }
}

#[derive(Debug)]
struct Lenient(Arc<dyn ClientCertVerifier>);

impl ClientCertVerifier for Lenient {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        // Checked against the CA after the handshake: see `authenticate`.
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

type Acceptor = (tokio_rustls::TlsAcceptor, Arc<dyn ClientCertVerifier>);

fn acceptor(tls: &Tls) -> Result<Acceptor, String> {
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(tls.cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| format!("reading the server certificate: {e}"))?;
    if certs.is_empty() {
        return Err("no server certificate in the PEM".into());
    }
    let key = PrivateKeyDer::from_pem_slice(tls.key_pem.as_bytes())
        .map_err(|e| format!("reading the server key: {e}"))?;
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(tls.client_ca_pem.as_bytes()) {
        let c = c.map_err(|e| format!("reading the CA bundle: {e}"))?;
        roots.add(c).map_err(|e| format!("a CA certificate: {e}"))?;
    }
    if roots.is_empty() {
        return Err("no CA certificate in the bundle".into());
    }
    let inner = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .allow_unauthenticated()
        .build()
        .map_err(|e| format!("the client verifier: {e}"))?;
    let mut cfg = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_client_cert_verifier(Arc::new(Lenient(inner.clone())))
        .with_single_cert(certs, key)
        .map_err(|e| format!("the server certificate: {e}"))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((tokio_rustls::TlsAcceptor::from(Arc::new(cfg)), inner))
}

fn authenticate(certs: Option<&[CertificateDer<'_>]>, verifier: &dyn ClientCertVerifier) -> Auth {
    let Some((leaf, rest)) = certs.and_then(|c| c.split_first()) else {
        return Auth::Anonymous;
    };
    if verifier
        .verify_client_cert(leaf, rest, UnixTime::now())
        .is_err()
    {
        return Auth::Invalid;
    }
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(leaf.as_ref()) else {
        return Auth::Invalid;
    };
    let subject = cert.subject();
    let name = subject
        .iter_common_name()
        .next()
        .and_then(|a| a.as_str().ok())
        .unwrap_or_default()
        .to_string();
    let groups = subject
        .iter_organization()
        .filter_map(|a| a.as_str().ok().map(str::to_string))
        .collect();
    Auth::User { name, groups }
}

/// A response body: whole, or a watch's stream.
pub struct HttpBody(Option<Body>);

impl http_body::Body for HttpBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match &mut self.0 {
            None => Poll::Ready(None),
            Some(Body::Full(_)) => match self.0.take() {
                Some(Body::Full(b)) => Poll::Ready(Some(Ok(Frame::data(b)))),
                _ => Poll::Ready(None),
            },
            Some(Body::Stream(rx)) => rx.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_none() || matches!(&self.0, Some(Body::Full(b)) if b.is_empty())
    }

    fn size_hint(&self) -> SizeHint {
        match &self.0 {
            Some(Body::Full(b)) => SizeHint::with_exact(b.len() as u64),
            None => SizeHint::with_exact(0),
            Some(Body::Stream(_)) => SizeHint::default(),
        }
    }
}

/// One request; an error (a cut connection: [`crate::Response::cut`]) makes hyper
/// close the connection unanswered.
async fn serve(
    cluster: Cluster,
    auth: Auth,
    req: http::Request<Incoming>,
) -> Result<http::Response<HttpBody>, std::io::Error> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let header = |h: http::header::HeaderName| {
        parts
            .headers
            .get(h)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let request = Request {
        method: parts.method.clone(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().unwrap_or_default().to_string(),
        accept: header(http::header::ACCEPT),
        content_type: header(http::header::CONTENT_TYPE),
        user_agent: header(http::header::USER_AGENT),
        body,
        auth,
    };
    let resp = cluster.handle(request).await;
    if resp.is_cut() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "cut",
        ));
    }
    let mut b = http::Response::builder()
        .status(resp.status)
        .header(http::header::CONTENT_TYPE, resp.content_type)
        .header("Cache-Control", "no-cache, private");
    for (k, v) in resp.headers {
        b = b.header(k, v);
    }
    Ok(b.body(HttpBody(Some(resp.body)))
        .unwrap_or_else(|_| http::Response::new(HttpBody(None))))
}

/// Serves `cluster` on `listener` until the task is dropped or aborted.
pub fn spawn(
    cluster: Cluster,
    tls: &Tls,
    listener: TcpListener,
) -> Result<tokio::task::JoinHandle<()>, String> {
    let (acceptor, verifier) = acceptor(tls)?;
    Ok(tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let (acceptor, verifier, cluster) =
                (acceptor.clone(), verifier.clone(), cluster.clone());
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(tcp).await else {
                    return;
                };
                let auth = authenticate(stream.get_ref().1.peer_certificates(), verifier.as_ref());
                let svc = service_fn(move |req| {
                    let (cluster, auth) = (cluster.clone(), auth.clone());
                    async move { serve(cluster, auth, req).await }
                });
                let _ = http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    }))
}

/// A running server with its own runtime, for synchronous callers (tests):
/// dropping it stops it.
pub struct Server {
    pub addr: SocketAddr,
    pub cluster: Cluster,
    runtime: Option<tokio::runtime::Runtime>,
}

/// An address held for a server that starts later ([`Server::start_on`]):
/// bound but not listening, so no other process can take the port and,
/// until the server starts, connections to it are refused (as by a load
/// balancer with no healthy backend) rather than left waiting.
pub struct Reservation {
    pub addr: SocketAddr,
    socket: tokio::net::TcpSocket,
}

impl Reservation {
    /// Binds `addr` (port 0: any free port), without `SO_REUSEADDR`.
    pub fn new(addr: &str) -> Result<Reservation, String> {
        let want: SocketAddr = addr.parse().map_err(|e| format!("address {addr}: {e}"))?;
        let socket = if want.is_ipv4() {
            tokio::net::TcpSocket::new_v4()
        } else {
            tokio::net::TcpSocket::new_v6()
        }
        .map_err(|e| format!("a socket for {addr}: {e}"))?;
        socket
            .bind(want)
            .map_err(|e| format!("binding {addr}: {e}"))?;
        let addr = socket.local_addr().map_err(|e| e.to_string())?;
        Ok(Reservation { addr, socket })
    }
}

enum Bind<'a> {
    Addr(&'a str),
    Reserved(Reservation),
}

impl Server {
    pub fn start(config: Config, tls: &Tls, addr: &str) -> Result<Server, String> {
        Self::start_with(config, tls, Bind::Addr(addr))
    }

    /// Starts listening on a reserved address.
    pub fn start_on(config: Config, tls: &Tls, reserved: Reservation) -> Result<Server, String> {
        Self::start_with(config, tls, Bind::Reserved(reserved))
    }

    fn start_with(config: Config, tls: &Tls, on: Bind<'_>) -> Result<Server, String> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let cluster = Cluster::new(config);
        let addr = runtime.block_on(async {
            let listener = match on {
                Bind::Reserved(r) => r
                    .socket
                    .listen(1024)
                    .map_err(|e| format!("listening on {}: {e}", r.addr))?,
                Bind::Addr(addr) => TcpListener::bind(addr)
                    .await
                    .map_err(|e| format!("binding {addr}: {e}"))?,
            };
            let local = listener.local_addr().map_err(|e| e.to_string())?;
            spawn(cluster.clone(), tls, listener)?;
            cluster.spawn_controllers();
            Ok::<_, String>(local)
        })?;
        Ok(Server {
            addr,
            cluster,
            runtime: Some(runtime),
        })
    }

    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}
