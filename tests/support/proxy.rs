//! An HTTP proxy between scopectl and the AWS emulator. It records every call
//! (service, action, status) and adds latency; the proving-ground work adds
//! AWS's dependency rules and fault injection on top of the same hook.
//!
//! Deliberately small: HTTP/1.1 with Content-Length bodies, which is what the
//! AWS SDK sends and what moto answers.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    pub service: String,
    pub action: String,
    pub status: u16,
}

impl Call {
    /// Reads are Describe*, Get*, List*; everything else writes.
    pub fn is_write(&self) -> bool {
        !["Describe", "Get", "List"]
            .iter()
            .any(|p| self.action.starts_with(p))
    }
}

#[derive(Clone, Debug, Default)]
pub struct ProxyConfig {
    pub upstream: Option<SocketAddr>,
    pub latency: Duration,
}

#[derive(Clone, Default)]
pub struct Calls(Arc<Mutex<Vec<Call>>>);

impl Calls {
    pub fn all(&self) -> Vec<Call> {
        self.0.lock().unwrap().clone()
    }
    pub fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
    pub fn since(&self, mark: usize) -> Vec<Call> {
        self.0.lock().unwrap()[mark..].to_vec()
    }
    fn push(&self, c: Call) {
        self.0.lock().unwrap().push(c);
    }
}

pub struct Proxy {
    pub addr: SocketAddr,
    pub calls: Calls,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Proxy {
    /// Starts on a free loopback port, on its own thread and runtime.
    pub fn spawn(config: ProxyConfig) -> Proxy {
        let std_listener =
            std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        std_listener.set_nonblocking(true).expect("nonblocking");
        let addr = std_listener.local_addr().expect("local addr");
        let calls = Calls::default();
        let (tx, mut rx) = tokio::sync::oneshot::channel();
        let c = calls.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = TcpListener::from_std(std_listener).expect("listener");
                let config = Arc::new(config);
                loop {
                    tokio::select! {
                        _ = &mut rx => break,
                        accepted = listener.accept() => {
                            let Ok((stream, _)) = accepted else { continue };
                            let (config, calls) = (config.clone(), c.clone());
                            tokio::spawn(async move { let _ = serve(stream, &config, &calls).await; });
                        }
                    }
                }
            });
        });
        Proxy {
            addr,
            calls,
            stop: Some(tx),
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Request {
    head: String,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    /// The service from the SigV4 credential scope: .../region/SERVICE/aws4_request.
    fn service(&self) -> String {
        self.header("authorization")
            .and_then(|a| a.split("Credential=").nth(1))
            .and_then(|c| c.split('/').nth(3))
            .unwrap_or("unknown")
            .to_string()
    }

    /// Query protocols (EC2, RDS, ELB) put `Action=` in the form body; JSON
    /// protocols (SSM) name it in X-Amz-Target.
    fn action(&self) -> String {
        if let Some(t) = self.header("x-amz-target") {
            return t.rsplit('.').next().unwrap_or(t).to_string();
        }
        String::from_utf8_lossy(&self.body)
            .split('&')
            .find_map(|kv| kv.strip_prefix("Action="))
            .unwrap_or("unknown")
            .to_string()
    }
}

async fn read_request(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
) -> std::io::Result<Option<Request>> {
    loop {
        if let Some(end) = find(buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let len = head
                .lines()
                .find_map(|l| {
                    l.split_once(':')
                        .filter(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
                })
                .and_then(|(_, v)| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            while buf.len() < end + 4 + len {
                let mut chunk = [0u8; 16384];
                let n = stream.read(&mut chunk).await?;
                if n == 0 {
                    return Ok(None);
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            let body = buf[end + 4..end + 4 + len].to_vec();
            buf.drain(..end + 4 + len);
            return Ok(Some(Request { head, body }));
        }
        let mut chunk = [0u8; 16384];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

async fn serve(mut client: TcpStream, config: &ProxyConfig, calls: &Calls) -> std::io::Result<()> {
    let mut buf = Vec::new();
    while let Some(req) = read_request(&mut client, &mut buf).await? {
        if !config.latency.is_zero() {
            tokio::time::sleep(config.latency).await;
        }
        let (status, response) = forward(&req, config).await?;
        calls.push(Call {
            service: req.service(),
            action: req.action(),
            status,
        });
        client.write_all(&response).await?;
    }
    Ok(())
}

/// Sends the request upstream on a fresh connection and returns the response,
/// rewritten for a kept-alive client connection.
async fn forward(req: &Request, config: &ProxyConfig) -> std::io::Result<(u16, Vec<u8>)> {
    let upstream = config.upstream.expect("an upstream address");
    let mut up = TcpStream::connect(upstream).await?;
    let mut head: Vec<&str> = req
        .head
        .lines()
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        .collect();
    head.push("Connection: close");
    let mut out = head.join("\r\n").into_bytes();
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(&req.body);
    up.write_all(&out).await?;
    let mut resp = Vec::new();
    up.read_to_end(&mut resp).await?;
    let end = find(&resp, b"\r\n\r\n").unwrap_or(resp.len());
    let head = String::from_utf8_lossy(&resp[..end]).to_string();
    let body = resp.get(end + 4..).unwrap_or_default().to_vec();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(502);
    Ok((status, respond(&head, &body)))
}

/// A response with an exact Content-Length and no `Connection: close`.
pub fn respond(head: &str, body: &[u8]) -> Vec<u8> {
    let mut lines: Vec<String> = head
        .lines()
        .filter(|l| {
            let l = l.to_ascii_lowercase();
            !l.starts_with("connection:")
                && !l.starts_with("content-length:")
                && !l.starts_with("transfer-encoding:")
        })
        .map(str::to_string)
        .collect();
    lines.push(format!("Content-Length: {}", body.len()));
    let mut out = lines.join("\r\n").into_bytes();
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(body);
    out
}
