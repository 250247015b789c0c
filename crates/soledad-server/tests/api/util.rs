//! Test helpers: a real server on 127.0.0.1 port 0 with TLS, clients that trust
//! its generated certificate, and a raw TLS/TCP request helper.

use std::io::Write as _;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use soledad_server::{Config, RunningServer, Server, SqliteTokenStore, TokenStore as _};
use tempfile::TempDir;

/// The service token written to every test server's tokens file.
pub const SERVICE_TOKEN: &str = "incoming-test-token";

/// A user's credentials.
#[derive(Clone, Debug)]
pub struct Creds {
    pub uuid: String,
    pub header: String,
}

pub fn auth_header(id: &str, token: &str) -> String {
    format!("Token {}", STANDARD.encode(format!("{id}:{token}")))
}

pub fn service_header() -> String {
    auth_header("incoming", SERVICE_TOKEN)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A rustls client configuration trusting only the certificate at `cert`.
pub fn tls_client_config(cert: &Path, alpn: &[&[u8]]) -> rustls::ClientConfig {
    let pem = std::fs::read(cert).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots.add(c.unwrap()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config
}

/// reqwest (built without a default provider) needs a process-wide one.
pub fn install_provider() {
    // Err only means another test installed it already.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A plain-HTTP client (services API).
pub fn plain_client() -> reqwest::Client {
    install_provider();
    reqwest::Client::new()
}

/// A reqwest client trusting the server's certificate (HTTP/2 or HTTP/1.1).
pub fn client_for(cert: &Path) -> reqwest::Client {
    install_provider();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls_client_config(cert, &[b"h2", b"http/1.1"]))
        .build()
        .unwrap()
}

pub struct TestServer {
    pub dir: TempDir,
    pub config: Config,
    pub tokens: Arc<SqliteTokenStore>,
    pub server: Option<RunningServer>,
    pub client: reqwest::Client,
    pub plain: reqwest::Client,
    pub alice: Creds,
    pub bob: Creds,
}

impl TestServer {
    pub async fn start() -> TestServer {
        TestServer::start_with(|_| {}).await
    }

    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::loopback(dir.path().join("data"));
        adjust(&mut config);
        let tokens_file = config.services_tokens_path();
        std::fs::create_dir_all(tokens_file.parent().unwrap()).unwrap();
        std::fs::write(&tokens_file, format!("incoming:{SERVICE_TOKEN}\n")).unwrap();
        let tokens = Arc::new(SqliteTokenStore::open(&config.token_store_path()).unwrap());
        let alice = add_user(&tokens, "alice").await;
        let bob = add_user(&tokens, "bob").await;
        let server = start_server(&config, &tokens).await;
        let client = client_for(server.cert_path());
        TestServer {
            dir,
            config,
            tokens,
            server: Some(server),
            client,
            plain: plain_client(),
            alice,
            bob,
        }
    }

    pub fn running(&self) -> &RunningServer {
        self.server.as_ref().unwrap()
    }

    /// Stops the server and starts a new one on the same data directory.
    pub async fn restart(&mut self) {
        self.server.take().unwrap().shutdown().await.unwrap();
        self.server = Some(start_server(&self.config, &self.tokens).await);
    }

    /// Starts a server again after `server` was taken and shut down.
    pub async fn start_again(&mut self) {
        assert!(self.server.is_none());
        self.server = Some(start_server(&self.config, &self.tokens).await);
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://{}{path}", self.running().users_addr())
    }

    pub fn services_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.running().services_addr())
    }

    pub fn users_addr(&self) -> SocketAddr {
        self.running().users_addr()
    }

    pub fn cert_path(&self) -> &Path {
        self.running().cert_path()
    }

    pub async fn shutdown(mut self) {
        self.server.take().unwrap().shutdown().await.unwrap();
    }
}

async fn start_server(config: &Config, tokens: &Arc<SqliteTokenStore>) -> RunningServer {
    Server::builder(config.clone())
        .token_store(tokens.clone())
        .start()
        .await
        .unwrap()
}

pub async fn add_user(tokens: &SqliteTokenStore, uuid: &str) -> Creds {
    let token = tokens.add(uuid, None).await.unwrap();
    Creds {
        uuid: uuid.to_owned(),
        header: auth_header(uuid, token.expose()),
    }
}

/// Reads a whole HTTP/1.1 response (the request asked for `Connection: close`)
/// and returns its status code and the raw response text.
fn read_response(stream: &mut impl std::io::Read) -> (u16, String) {
    let mut bytes = Vec::new();
    // A reset after the response is fine: keep what was read.
    let _ = stream.read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

/// Sends raw bytes over TLS to the users API and returns (status, response).
/// Blocking: call from `spawn_blocking`.
pub fn raw_tls(addr: SocketAddr, cert: &Path, request: &[u8]) -> (u16, String) {
    let config = Arc::new(tls_client_config(cert, &[b"http/1.1"]));
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let conn = rustls::ClientConnection::new(config, name).unwrap();
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    tls.write_all(request).unwrap();
    tls.flush().unwrap();
    read_response(&mut tls)
}

/// Opens a TLS connection to the users API.
pub fn tls_stream(
    addr: SocketAddr,
    cert: &Path,
) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    let config = Arc::new(tls_client_config(cert, &[b"http/1.1"]));
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let conn = rustls::ClientConnection::new(config, name).unwrap();
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    rustls::StreamOwned::new(conn, tcp)
}

/// Reads a whole response from a stream (see `read_response`).
pub fn response_of(stream: &mut impl std::io::Read) -> (u16, String) {
    read_response(stream)
}

/// Sends a request whose body is cut short: announces `announced` bytes,
/// writes `sent` bytes, then closes the TLS connection abruptly.
pub fn cut_upload(addr: SocketAddr, cert: &Path, head: &str, sent: usize) {
    let config = Arc::new(tls_client_config(cert, &[b"http/1.1"]));
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let conn = rustls::ClientConnection::new(config, name).unwrap();
    let tcp = TcpStream::connect(addr).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    tls.write_all(head.as_bytes()).unwrap();
    let chunk = vec![0x5a_u8; 16 * 1024];
    let mut left = sent;
    while left > 0 {
        let n = left.min(chunk.len());
        tls.write_all(&chunk[..n]).unwrap();
        left -= n;
    }
    tls.flush().unwrap();
    // Drop without close_notify and shut the socket: the peer sees the body end early.
    let (_, tcp) = tls.into_parts();
    tcp.shutdown(std::net::Shutdown::Both).unwrap();
}

/// Sends raw bytes over plain TCP and returns (status, response). Blocking.
pub fn raw_tcp(addr: SocketAddr, request: &[u8]) -> (u16, String) {
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    tcp.write_all(request).unwrap();
    read_response(&mut tcp)
}

/// Polls `check` until it returns true (bounded; no fixed sleep).
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
