//! The Soledad server: the users API (TLS: shared store, blobs, later document
//! sync) and the local services API (incoming box delivery), their
//! authentication, configuration and embedded storage backends.
//!
//! What it does not do: decrypt anything (every payload is client ciphertext),
//! read the environment or configuration files (the `soledad-server` binary
//! does that and hands a [`Config`] over), or install a logging subscriber.
//!
//! Storage sits behind narrow async traits so a distributed engine can replace
//! the embedded defaults (DESIGN §9): [`TokenStore`] ([`SqliteTokenStore`]),
//! [`SharedStore`] ([`SqliteSharedStore`]), [`blobs::BlobBackend`]
//! ([`blobs::FsBlobStore`]) and [`UserDocStores`] ([`EmbeddedUserDocStores`],
//! the seam for the sync routes).
//!
//! ```no_run
//! # async fn run() -> Result<(), soledad_server::Error> {
//! use soledad_server::{Config, Server};
//!
//! let config = Config::loopback("/tmp/soledad-data");
//! let server = Server::start(config).await?;
//! println!("users API on https://{}", server.users_addr());
//! println!("trust {}", server.cert_path().display());
//! server.shutdown().await?;
//! # Ok(()) }
//! ```

mod auth;
pub mod blobs;
mod config;
mod docsync;
mod error;
mod routes;
mod server;
mod shared;
mod sqlite;
mod tls;
mod userdb;

pub use auth::{
    IssuedToken, Principal, ServiceTokens, SqliteTokenStore, TokenStore, UserRecord,
    append_service_token,
};
pub use config::{
    Config, DEFAULT_DELETED_BLOB_RETENTION, DEFAULT_QUOTA_BYTES, DEFAULT_SERVICES_PORT,
    DEFAULT_SHARED_DOC_MAX_BYTES, DEFAULT_USERS_PORT, INI_SECTION,
};
pub use error::Error;
pub use server::{RunningServer, SHUTDOWN_GRACE, Server, ServerBuilder};
pub use shared::{SharedDoc, SharedDocId, SharedRev, SharedStore, SqliteSharedStore};
pub use userdb::{EmbeddedUserDocStores, UserDbName, UserDocStores};
