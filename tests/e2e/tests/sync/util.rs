//! The real `soledad-server` binary on 127.0.0.1 (random port, TLS; the
//! workspace's harness) and devices of one user in temp dirs.

use std::path::{Path, PathBuf};

use soledad_client::{KdfParams, SecretString, Soledad};
use soledad_server::testing::ServerFiles;
use soledad_testkit::ServerProcess;

pub const UUID: &str = "0d1f7c3a-user";
pub const PASSPHRASE: &str = "correct horse battery staple";

pub struct Env {
    pub server: ServerProcess,
    pub token: String,
}

impl Env {
    pub async fn start() -> Env {
        Env::start_with(&[]).await
    }

    /// A server with these INI options (`quota_bytes`,
    /// `processing_threshold_secs`, …), the user `UUID` and an `incoming`
    /// service token.
    pub async fn start_with(options: &[(&str, &str)]) -> Env {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = ServerProcess::builder().user(UUID).service("incoming");
        for (key, value) in options {
            builder = builder.option(key, value);
        }
        let server = tokio::task::spawn_blocking(move || builder.start())
            .await
            .unwrap();
        Env {
            token: server.token(UUID).to_owned(),
            server,
        }
    }

    pub fn url(&self) -> String {
        self.server.url()
    }

    pub fn cert(&self) -> PathBuf {
        self.server.cert()
    }

    /// The temporary directory of the server; devices live under it too.
    pub fn dir(&self) -> &Path {
        self.server.dir()
    }

    /// The server's data directory.
    pub fn data_path(&self) -> &Path {
        self.server.data_path()
    }

    pub fn home(&self, device: &str) -> PathBuf {
        self.server.dir().join(device)
    }

    /// Opens (or reopens) a device of the user with the default passphrase.
    pub async fn device(&self, name: &str) -> Soledad {
        self.device_with(name, PASSPHRASE).await.unwrap()
    }

    pub async fn device_with(
        &self,
        name: &str,
        passphrase: &str,
    ) -> Result<Soledad, soledad_client::Error> {
        let home = self.home(name);
        std::fs::create_dir_all(&home).unwrap();
        Soledad::builder(UUID, SecretString::from(passphrase))
            .secrets_path(home.join("soledad.json"))
            .local_db_path(home.join(format!("{UUID}.db")))
            .server_url(self.url())
            .cert_file(self.cert())
            .auth_token(self.token.clone())
            .danger_kdf_params(KdfParams::insecure_fast_for_tests())
            .open()
            .await
    }

    /// The server's stores, to play a dishonest server (the server's test
    /// hooks: no test here knows its schema or file layout).
    pub fn files(&self) -> ServerFiles {
        ServerFiles::at(self.data_path())
    }

    /// SIGKILLs the server (its port then refuses connections).
    pub async fn stop(&mut self) {
        self.server.kill();
    }

    /// Kills the server if it runs and starts it again on the same port and
    /// data, so open devices reach it again.
    pub async fn restart(&mut self) {
        self.server.restart();
    }
}

/// Every file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        // A running server creates and removes temporary files meanwhile.
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out
}

/// (id, rev, json) of every live document, sorted by id.
pub async fn snapshot(device: &Soledad) -> Vec<(String, Option<String>, Option<String>)> {
    let (_, docs) = device.get_all_docs(true).await.unwrap();
    docs.into_iter()
        .map(|d| {
            (
                d.doc_id.to_string(),
                d.rev.as_ref().map(ToString::to_string),
                d.json().map(str::to_owned),
            )
        })
        .collect()
}
