//! Soledad for real: a `soledad-server` on 127.0.0.1 in this process, on a runtime
//! of its own (as a separate daemon would have its own threads), and devices
//! through the public `soledad-client` API, one SQLCipher store each.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use soledad_client::{BlobConfig, KdfParams, SecretString, Soledad};
use soledad_server::{RunningServer, Server, SqliteTokenStore, TokenStore as _};

/// The server and where devices keep their stores.
pub(crate) struct Bench {
    server: RunningServer,
    tokens: Arc<SqliteTokenStore>,
    url: String,
    cert: PathBuf,
    devices_dir: PathBuf,
    next_user: AtomicUsize,
}

/// An account on the server.
pub(crate) struct User {
    uuid: String,
    token: String,
}

impl Bench {
    /// Starts the server under `dir` (on the caller's runtime: call it inside the
    /// server runtime's `block_on`).
    pub(crate) async fn start(dir: &Path) -> anyhow::Result<Bench> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut config = soledad_server::Config::loopback(dir.join("server"));
        config.quota_bytes = u64::MAX;
        std::fs::create_dir_all(&config.data_path)?;
        let tokens = Arc::new(SqliteTokenStore::open(&config.token_store_path())?);
        let server = Server::builder(config)
            .token_store(tokens.clone())
            .start()
            .await?;
        let devices_dir = dir.join("devices");
        std::fs::create_dir_all(&devices_dir)?;
        Ok(Bench {
            url: format!("https://{}", server.users_addr()),
            cert: server.cert_path().to_owned(),
            server,
            tokens,
            devices_dir,
            next_user: AtomicUsize::new(0),
        })
    }

    /// Stops the server (inside the server runtime's `block_on`).
    pub(crate) async fn shutdown(self) -> anyhow::Result<()> {
        self.server.shutdown().await?;
        Ok(())
    }

    /// A new account with its token. Its token store call runs on the server's
    /// runtime through the store's own thread, so any runtime may await it.
    pub(crate) async fn user(&self) -> anyhow::Result<User> {
        let n = self.next_user.fetch_add(1, Ordering::Relaxed);
        let uuid = format!("bench-{n:05}");
        let token = self.tokens.add(&uuid, None).await?.expose().to_owned();
        Ok(User { uuid, token })
    }

    /// A device of `user` called `name`, with a blob store, bootstrapped with the
    /// server (its first sync is done).
    pub(crate) async fn device(&self, user: &User, name: &str) -> anyhow::Result<Soledad> {
        let home = self.devices_dir.join(&user.uuid).join(name);
        std::fs::create_dir_all(&home)?;
        let device = Soledad::builder(&user.uuid, SecretString::from("bench passphrase"))
            .secrets_path(home.join("soledad.json"))
            .local_db_path(home.join("local.db"))
            .server_url(&self.url)
            .cert_file(&self.cert)
            .auth_token(&user.token)
            .danger_kdf_params(KdfParams::insecure_fast_for_tests())
            .blob_config(BlobConfig::default())
            .open()
            .await?;
        device.sync().await?;
        Ok(device)
    }

    /// Closes a user's devices and deletes their local stores (the server keeps
    /// the account's data, as a real server would).
    pub(crate) async fn forget(&self, user: &User, devices: Vec<Soledad>) -> anyhow::Result<()> {
        for device in devices {
            device.close().await?;
        }
        let home = self.devices_dir.join(&user.uuid);
        if home.exists() {
            std::fs::remove_dir_all(home)?;
        }
        Ok(())
    }
}
