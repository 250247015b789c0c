//! A real server process on 127.0.0.1 (random port) with one user, raw HTTPS
//! helpers for the blobs API, and Soledad client devices.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reqwest::StatusCode;
use soledad_client::{KdfParams, SecretString, Soledad};

pub const UUID: &str = "quota-user";

fn server_bin() -> &'static str {
    env!("CARGO_BIN_EXE_soledad-server")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn client_for(cert: &Path) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
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
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .build()
        .unwrap()
}

/// The server binary serving a temporary data directory.
pub struct ServerProcess {
    pub dir: tempfile::TempDir,
    config: PathBuf,
    port: u16,
    env: Vec<(String, String)>,
    child: Option<Child>,
    pub token: String,
    pub client: reqwest::Client,
}

impl ServerProcess {
    /// Starts a server whose INI section also holds `extra` lines.
    pub async fn start(extra: &str) -> ServerProcess {
        ServerProcess::start_with_env(extra, &[]).await
    }

    /// As [`start`](Self::start), with environment variables for the server.
    pub async fn start_with_env(extra: &str, env: &[(&str, &str)]) -> ServerProcess {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let config = dir.path().join("server.conf");
        std::fs::write(
            &config,
            format!(
                "[soledad-server]\ndata_path = {}\nusers_address = 127.0.0.1:{port}\n\
                 services_address = 127.0.0.1:0\n{extra}\n",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let out = Command::new(server_bin())
            .arg("--config")
            .arg(&config)
            .args(["user", "add", UUID])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        let mut server = ServerProcess {
            dir,
            config,
            port,
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            child: None,
            token,
            client: reqwest::Client::new(),
        };
        server.spawn().await;
        server.client = client_for(&server.cert());
        server
    }

    async fn spawn(&mut self) {
        let child = Command::new(server_bin())
            .arg("--config")
            .arg(&self.config)
            .arg("serve")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = Instant::now() + Duration::from_secs(30);
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            assert!(Instant::now() < deadline, "server did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Kills the server (SIGKILL: no graceful flush) and starts it again on the
    /// same data and port.
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn().await;
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    pub fn cert(&self) -> PathBuf {
        self.dir.path().join("data").join("tls").join("cert.pem")
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.port)
    }

    pub fn authorization(&self) -> String {
        format!(
            "Token {}",
            STANDARD.encode(format!("{UUID}:{}", self.token))
        )
    }

    /// `GET /usage/{uuid}` → `used_bytes`.
    pub async fn used_bytes(&self) -> u64 {
        let response = self
            .client
            .get(self.url(&format!("/usage/{UUID}")))
            .header("authorization", self.authorization())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body: serde_json::Value = response.json().await.unwrap();
        body["used_bytes"].as_u64().unwrap()
    }

    pub async fn put_blob(&self, id: &str, body: Vec<u8>) -> reqwest::Response {
        self.client
            .put(self.url(&format!("/blobs/{UUID}/{id}")))
            .header("authorization", self.authorization())
            .body(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn delete_blob(&self, id: &str) -> StatusCode {
        self.client
            .delete(self.url(&format!("/blobs/{UUID}/{id}")))
            .header("authorization", self.authorization())
            .send()
            .await
            .unwrap()
            .status()
    }

    pub async fn set_flags(&self, id: &str, flags: &str) -> StatusCode {
        self.client
            .post(self.url(&format!("/blobs/{UUID}/{id}")))
            .header("authorization", self.authorization())
            .body(flags.to_owned())
            .send()
            .await
            .unwrap()
            .status()
    }

    /// `GET /blobs/{uuid}` with `query` → the listed ids.
    pub async fn list_blobs(&self, query: &str) -> Vec<String> {
        let response = self
            .client
            .get(self.url(&format!("/blobs/{UUID}{query}")))
            .header("authorization", self.authorization())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    }

    /// A client device of the user with its own home under the data directory.
    pub async fn device(&self, name: &str) -> Soledad {
        let home = self.dir.path().join(name);
        std::fs::create_dir_all(&home).unwrap();
        Soledad::builder(UUID, SecretString::from("passphrase"))
            .secrets_path(home.join("soledad.json"))
            .local_db_path(home.join("local.db"))
            .server_url(self.url(""))
            .cert_file(self.cert())
            .auth_token(&self.token)
            .danger_kdf_params(KdfParams::insecure_fast_for_tests())
            .open()
            .await
            .unwrap()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
