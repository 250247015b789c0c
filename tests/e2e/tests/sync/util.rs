//! A real server on 127.0.0.1 (random port, TLS) and devices of one user in temp dirs.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use soledad_client::{KdfParams, SecretString, Soledad};
use soledad_server::{Config, RunningServer, Server, SqliteTokenStore, TokenStore as _};
use tempfile::TempDir;

pub const UUID: &str = "0d1f7c3a-user";
pub const PASSPHRASE: &str = "correct horse battery staple";

pub struct Env {
    pub dir: TempDir,
    pub config: Config,
    pub tokens: Arc<SqliteTokenStore>,
    pub server: Option<RunningServer>,
    pub token: String,
}

impl Env {
    pub async fn start() -> Env {
        Env::start_with(|_| {}).await
    }

    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> Env {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::loopback(dir.path().join("server"));
        adjust(&mut config);
        std::fs::create_dir_all(&config.data_path).unwrap();
        let tokens = Arc::new(SqliteTokenStore::open(&config.token_store_path()).unwrap());
        let token = tokens.add(UUID, None).await.unwrap().expose().to_owned();
        let server = start(&config, &tokens).await;
        // Restarts keep the address, so open devices reach the new server.
        config.users_address = server.users_addr();
        Env {
            dir,
            config,
            tokens,
            server: Some(server),
            token,
        }
    }

    pub fn server(&self) -> &RunningServer {
        self.server.as_ref().unwrap()
    }

    pub fn url(&self) -> String {
        format!("https://{}", self.server().users_addr())
    }

    pub fn cert(&self) -> PathBuf {
        self.server().cert_path().to_owned()
    }

    pub fn home(&self, device: &str) -> PathBuf {
        self.dir.path().join(device)
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

    /// The user's server-side document store file.
    pub fn server_db(&self) -> PathBuf {
        self.config
            .data_path
            .join("users")
            .join(format!("user-{UUID}.db"))
    }

    pub async fn stop(&mut self) {
        self.server.take().unwrap().shutdown().await.unwrap();
    }

    pub async fn restart(&mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await.unwrap();
        }
        self.server = Some(start(&self.config, &self.tokens).await);
    }
}

async fn start(config: &Config, tokens: &Arc<SqliteTokenStore>) -> RunningServer {
    Server::builder(config.clone())
        .token_store(tokens.clone())
        .start()
        .await
        .unwrap()
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
        .map(|d| (d.doc_id.clone(), d.rev.clone(), d.json().map(str::to_owned)))
        .collect()
}

/// Raw access to the server's store file, to play a dishonest server.
pub fn server_sql(env: &Env) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(env.server_db()).unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .unwrap();
    conn
}
