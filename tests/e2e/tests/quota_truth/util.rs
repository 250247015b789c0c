//! A real server process on 127.0.0.1 (random port) with one user, raw HTTPS
//! helpers for the blobs API, and Soledad client devices.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reqwest::StatusCode;
use soledad_client::{KdfParams, SecretString, Soledad};

pub const UUID: &str = "quota-user";

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

/// The server binary (the workspace's harness) with one user, `UUID`.
pub struct ServerProcess {
    pub process: soledad_testkit::ServerProcess,
    pub token: String,
    pub client: reqwest::Client,
}

impl ServerProcess {
    /// Starts a server whose INI section also holds `extra` lines (`key = value`).
    pub async fn start(extra: &str) -> ServerProcess {
        ServerProcess::start_with_env(extra, &[]).await
    }

    /// As [`start`](Self::start), with environment variables for the server.
    pub async fn start_with_env(extra: &str, env: &[(&str, &str)]) -> ServerProcess {
        let mut builder = soledad_testkit::ServerProcess::builder().user(UUID);
        for line in extra.lines().filter(|l| !l.trim().is_empty()) {
            let (key, value) = line.split_once('=').unwrap();
            builder = builder.option(key.trim(), value.trim());
        }
        for (key, value) in env {
            builder = builder.env(key, value);
        }
        let process = tokio::task::spawn_blocking(move || builder.start())
            .await
            .unwrap();
        ServerProcess {
            token: process.token(UUID).to_owned(),
            client: client_for(&process.cert()),
            process,
        }
    }

    /// Kills the server (SIGKILL: no graceful flush) and starts it again on the
    /// same data and port.
    pub async fn restart(&mut self) {
        self.process.restart();
    }

    pub fn pid(&self) -> u32 {
        self.process.pid().unwrap()
    }

    pub fn cert(&self) -> PathBuf {
        self.process.cert()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.process.url())
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
        let home = self.process.dir().join(name);
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
