//! Per-user document stores (`user-<uuid>`): the seam for the document sync
//! routes (`/user-{uuid}/sync-from/{source_replica_uid}`, a later issue).
//!
//! The embedded backend keeps one plain SQLite file per user, made by
//! `soledad-store` with opaque byte payloads (the server never sees plaintext).
//! `soledad-server create-userdb user-<uuid>` uses it today; the sync routes
//! will open the same stores through [`EmbeddedUserDocStores::open_blocking`]
//! (or a distributed implementation of [`UserDocStores`]).

use std::path::{Path, PathBuf};

use futures_util::future::BoxFuture;

use crate::blobs::UserId;
use crate::error::Error;

/// Prefix of user database names, as in the seed (defined once, in the protocol).
pub use soledad_protocol::USER_DB_PREFIX;

/// A user database name, `user-<uuid>`, as the seed's `soledad-create-userdb`
/// takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserDbName(UserId);

impl UserDbName {
    /// Parses `user-<uuid>`.
    ///
    /// # Errors
    /// [`Error::InvalidUserId`] when the prefix is missing or the uuid is invalid.
    pub fn parse(name: &str) -> Result<UserDbName, Error> {
        let uuid = name
            .strip_prefix(USER_DB_PREFIX)
            .ok_or(Error::InvalidUserId)?;
        Ok(UserDbName(
            UserId::parse(uuid).map_err(|_| Error::InvalidUserId)?,
        ))
    }

    /// The database's user.
    pub fn user(&self) -> &UserId {
        &self.0
    }
}

impl std::fmt::Display for UserDbName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{USER_DB_PREFIX}{}", self.0.as_str())
    }
}

/// Where per-user document stores live. Narrow and asynchronous (DESIGN §9);
/// the sync routes will add what they need here.
pub trait UserDocStores: Send + Sync + 'static {
    /// Creates the store of `user` unless it exists; true when it was created.
    fn create<'a>(&'a self, user: &'a UserId) -> BoxFuture<'a, Result<bool, Error>>;
    /// Whether the store of `user` exists.
    fn exists<'a>(&'a self, user: &'a UserId) -> BoxFuture<'a, Result<bool, Error>>;
}

/// The embedded backend: `<dir>/user-<uuid>.db`, plain SQLite via
/// `soledad-store` with `Vec<u8>` payloads.
#[derive(Debug, Clone)]
pub struct EmbeddedUserDocStores {
    dir: PathBuf,
}

impl EmbeddedUserDocStores {
    /// Stores under `dir` (created on the first `create`).
    pub fn new(dir: impl Into<PathBuf>) -> EmbeddedUserDocStores {
        EmbeddedUserDocStores { dir: dir.into() }
    }

    /// The file of `user`'s store.
    pub fn path_of(&self, user: &UserId) -> PathBuf {
        self.dir
            .join(format!("{USER_DB_PREFIX}{}.db", user.as_str()))
    }

    /// Opens (creating if needed) `user`'s store. Blocking: call it from
    /// `spawn_blocking` or the store's own worker thread.
    ///
    /// # Errors
    /// [`Error::Io`] when the directory cannot be made, [`Error::UserStore`].
    pub fn open_blocking(&self, user: &UserId) -> Result<soledad_store::OpaqueDatabase, Error> {
        std::fs::create_dir_all(&self.dir)
            .map_err(Error::io("creating the user databases directory"))?;
        // Ordered commits (synchronous=NORMAL); the transaction right before
        // each acknowledgement is made durable (FULL), which with WAL also makes
        // every earlier commit durable: one fsync per sync, not one per batch.
        Ok(soledad_store::OpenOptions::new()
            .durable_commits(false)
            .open_unencrypted(self.path_of(user))?)
    }
}

fn exists_at(path: &Path) -> bool {
    path.is_file()
}

impl UserDocStores for EmbeddedUserDocStores {
    fn create<'a>(&'a self, user: &'a UserId) -> BoxFuture<'a, Result<bool, Error>> {
        let this = self.clone();
        let user = user.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                let existed = exists_at(&this.path_of(&user));
                this.open_blocking(&user)?;
                Ok(!existed)
            })
            .await
            .map_err(|_| Error::StorageUnavailable)?
        })
    }

    fn exists<'a>(&'a self, user: &'a UserId) -> BoxFuture<'a, Result<bool, Error>> {
        let path = self.path_of(user);
        Box::pin(async move {
            tokio::task::spawn_blocking(move || exists_at(&path))
                .await
                .map_err(|_| Error::StorageUnavailable)
        })
    }
}
