//! The Soledad server: the users API (TLS: shared store, blobs, later document
//! sync) and the local services API (incoming box delivery), their
//! authentication, configuration and embedded storage backends.
//!
//! What it does not do: decrypt anything (every payload is client ciphertext),
//! read the environment or configuration files (the `soledad-server` binary
//! does that and hands a [`Config`] over, built by [`Config::load`]), or
//! install a logging subscriber. The binary and its own dependencies (`clap`,
//! `anyhow`, `tracing-subscriber`) sit behind the default feature `cli`:
//! embedders depend on this crate with `default-features = false`. Its admin
//! commands are [`admin`] functions.
//!
//! Access: every route is registered with one access rule, checked on the
//! decoded, parsed owner of the request (never on path text): a user reaches
//! only their own blobs, usage and document store, and only their own shared
//! documents; connections, request bodies, blob writes and sync exchanges are
//! bounded by [`Config`] options (`docs/protocol.md`, "Access rules" and
//! "Limits on slow and idle clients").
//!
//! Storage sits behind narrow async traits so a distributed engine can replace
//! the embedded defaults (DESIGN §9): [`TokenStore`] ([`SqliteTokenStore`]),
//! [`SharedStore`] ([`SqliteSharedStore`]), [`blobs::BlobBackend`]
//! ([`blobs::FsBlobStore`]), [`UserDocStores`] ([`UserStores`] over
//! [`EmbeddedUserDocStores`], the seam for the sync routes),
//! [`blobs::QuotaCounters`] ([`blobs::EmbeddedQuotaCounters`], the quota
//! ledger's counts) and [`notify::ChangeNotifier`] ([`notify::InProcessNotifier`],
//! what the change notifications of live sync wait on). [`ServerBuilder`] takes
//! any implementation of each. Every trait has a conformance suite (hidden module
//! `conformance`, cargo feature `conformance`) that any implementation runs
//! with one macro call, `soledad_server::conformance_tests!(blobs, factory)`.
//! With the cargo feature `garage` (on in the binary), [`garage`] implements
//! every trait over a Garage cluster (S3 + K2V), selected by `backend = garage`
//! in the configuration: the server then keeps no state of its own
//! (`docs/scale-out.md`).
//!
//! Tests of clients that must play a dishonest server (flipped, swapped or
//! rolled-back envelopes, altered blobs) use `soledad_server::testing` (feature
//! `test-hooks`, off by default), which changes the embedded stores behind the
//! server's back; no other crate needs to know their schema or file layout.
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

pub mod admin;
mod auth;
pub mod blobs;
mod config;
#[cfg(feature = "conformance")]
#[doc(hidden)]
pub mod conformance;
mod conn;
#[cfg(feature = "deliver")]
pub mod deliver;
mod docsync;
mod error;
#[doc(hidden)]
pub mod fuzzing;
#[cfg(feature = "garage")]
pub mod garage;
pub mod incoming;
mod limits;
pub mod notify;
mod routes;
mod server;
mod shared;
mod sqlite;
#[cfg(feature = "test-hooks")]
pub mod testing;
mod tls;
mod userdb;

pub use auth::{
    IssuedToken, Principal, ServiceTokens, SqliteTokenStore, TokenStore, UserRecord,
    append_service_token,
};
pub use config::{
    Config, ConfigLayers, DEFAULT_DELETED_BLOB_RETENTION, DEFAULT_LIVE_WAIT,
    DEFAULT_LIVE_WAITS_PER_USER, DEFAULT_MAX_LIVE_WAITS, DEFAULT_QUOTA_BYTES,
    DEFAULT_SERVICES_PORT, DEFAULT_SHARED_DOC_MAX_BYTES, DEFAULT_USERS_PORT, INI_SECTION,
    StorageBackend,
};
pub use docsync::UserStores;
pub use error::Error;
pub use server::{RunningServer, SHUTDOWN_GRACE, Server, ServerBuilder};
pub use shared::{
    LEGACY_OWNER, SharedDoc, SharedDocId, SharedRev, SharedStore, SharedWrite, SqliteSharedStore,
};
pub use userdb::{
    AppliedBatch, ChangesChunk, EmbeddedUserDocStores, SkipChange, SourceDoc, UserDbName,
    UserDocStores,
};
