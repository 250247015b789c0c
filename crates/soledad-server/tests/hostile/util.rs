//! The real `soledad-server` binary on loopback, its accounts, and raw clients
//! (TLS with a chosen ALPN, or plain TCP) for requests no polite client sends.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use soledad_testkit::ServerProcess;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// Upper bound of every wait in these tests.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// An account: its uuid and `Authorization` header.
#[derive(Clone, Debug)]
pub struct User {
    pub uuid: String,
    pub header: String,
}

/// A running server process (the workspace's harness), killed on drop.
pub struct Server {
    pub process: ServerProcess,
    pub users: SocketAddr,
    pub services: SocketAddr,
    pub cert: PathBuf,
    pub alice: User,
    pub bob: User,
    pub service_header: String,
}

/// Alice's and Bob's uuids (uuid-shaped, with letters so case matters).
pub const ALICE: &str = "a11ce000-0000-4000-8000-00000000000a";
pub const BOB: &str = "b0b00000-0000-4000-8000-00000000000b";

impl Server {
    /// Starts the binary with `extra` INI lines (`key = value`), two users
    /// (Alice, Bob), a service token, and Bob's document store created.
    pub async fn start(extra: &str) -> Server {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = ServerProcess::builder()
            .binary(env!("CARGO_BIN_EXE_soledad-server"))
            .user(ALICE)
            .user(BOB)
            .service("incoming");
        for line in extra.lines().filter(|l| !l.trim().is_empty()) {
            let (key, value) = line.split_once('=').unwrap();
            builder = builder.option(key.trim(), value.trim());
        }
        let process = tokio::task::spawn_blocking(move || {
            let process = builder.start();
            process.admin(&["create-userdb", &format!("user-{BOB}")]);
            process
        })
        .await
        .unwrap();
        let user = |uuid: &str| User {
            uuid: uuid.to_owned(),
            header: process.user_authorization(uuid),
        };
        Server {
            users: process.users_addr(),
            services: process.services_addr(),
            cert: process.cert(),
            alice: user(ALICE),
            bob: user(BOB),
            service_header: process.service_authorization("incoming"),
            process,
        }
    }

    pub fn data(&self) -> PathBuf {
        self.process.data_path().to_owned()
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://{}{path}", self.users)
    }

    pub fn services_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.services)
    }

    /// A reqwest client trusting the server (HTTP/2 or HTTP/1.1), every
    /// request bounded by `PATIENCE`.
    pub fn client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .tls_backend_preconfigured(tls_config(&self.cert, &[b"h2", b"http/1.1"]))
            .timeout(PATIENCE)
            .build()
            .unwrap()
    }

    /// A plain-HTTP client for the services API.
    pub fn plain(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .timeout(PATIENCE)
            .build()
            .unwrap()
    }

    /// A TLS connection to the users API with the given ALPN.
    pub async fn tls(&self, alpn: &[u8]) -> std::io::Result<TlsStream<TcpStream>> {
        let connector = TlsConnector::from(Arc::new(tls_config(&self.cert, &[alpn])));
        let tcp = TcpStream::connect(self.users).await?;
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        connector.connect(name, tcp).await
    }

    /// Sends one raw HTTP/1.1 request over TLS (`Connection: close`) and
    /// returns the status and the body text.
    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        auth: Option<&str>,
        body: &str,
    ) -> (u16, String) {
        let mut stream = self.tls(b"http/1.1").await.unwrap();
        stream
            .write_all(request_head(method, path, auth, body.len()).as_bytes())
            .await
            .unwrap();
        stream.write_all(body.as_bytes()).await.unwrap();
        stream.flush().await.unwrap();
        read_response(&mut stream).await
    }

    /// Every `.part` file of uploads in flight (they hold a write permit).
    pub fn uploads_in_flight(&self) -> usize {
        std::fs::read_dir(self.data().join("blobs").join(".tmp"))
            .map(|dir| dir.filter_map(Result::ok).count())
            .unwrap_or(0)
    }
}

/// The head of an HTTP/1.1 request with a `Content-Length`.
pub fn request_head(method: &str, path: &str, auth: Option<&str>, len: usize) -> String {
    let auth = auth
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Content-Length: {len}\r\n\
         Connection: close\r\n\r\n"
    )
}

/// Reads a whole `Connection: close` response: status and body text.
pub async fn read_response(stream: &mut (impl AsyncRead + Unpin)) -> (u16, String) {
    let mut bytes = Vec::new();
    // A reset after the response is fine: keep what was read.
    let _ = tokio::time::timeout(PATIENCE, stream.read_to_end(&mut bytes)).await;
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// Waits until the peer closes `stream` (EOF or error); returns how long it took.
pub async fn time_until_closed(stream: &mut (impl AsyncRead + AsyncWrite + Unpin)) -> Duration {
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(PATIENCE, stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return start.elapsed(),
            Ok(Ok(_)) => {}
            Err(_) => panic!("connection still open after {PATIENCE:?}"),
        }
    }
}

/// Polls `check` until it is true (bounded by `PATIENCE`).
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + PATIENCE;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn tls_config(cert: &Path, alpn: &[&[u8]]) -> rustls::ClientConfig {
    let pem = std::fs::read(cert).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config
}
