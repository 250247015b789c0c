//! The scale-out backend (DESIGN §9, `docs/scale-out.md`): every storage
//! trait over a Garage cluster, so the server keeps no state of its own and
//! any number of servers share one cluster. Blobs and incoming messages are
//! S3 objects; their flags, tombstones and metadata, the per-user document
//! stores, the token store, the shared store and incoming claims are K2V
//! items. Talks HTTP only (Garage is AGPL: its crates are never linked).
//!
//! [`GarageBackend::connect`] builds every store from one [`GarageConfig`].

mod blobs;
mod config;
mod docstores;
mod error;
mod incoming;
mod k2v;
mod lease;
mod notify;
mod quota;
mod shared;
mod tokens;

pub use blobs::{CLAIM_TTL, GarageBlobStore, PART_BYTES, PARTS_IN_FLIGHT};
pub use config::{DEFAULT_CONNECT_TIMEOUT, DEFAULT_REQUEST_TIMEOUT, GarageConfig, SecretKey};
#[cfg(feature = "test-hooks")]
pub use docstores::CutBatch;
pub use docstores::GarageUserDocStores;
pub use error::GarageError;
pub use incoming::GarageIncomingBox;
pub use notify::{FALLBACK_READ, GarageNotifier};
pub use quota::{GarageQuotaCounters, QUOTA_REFRESH, QUOTA_WRITE_BACK};
pub use shared::GarageSharedStore;
pub use tokens::GarageTokenStore;

use std::sync::Arc;

use k2v::K2vClient;

use crate::blobs::QuotaLedger;

/// Every store of the Garage backend, over one cluster.
#[derive(Clone, Debug)]
pub struct GarageBackend {
    k2v: K2vClient,
    config: GarageConfig,
}

impl GarageBackend {
    /// Clients of `config`'s cluster (nothing is contacted yet).
    ///
    /// # Errors
    /// [`GarageError::Config`] with no endpoint.
    pub fn connect(config: GarageConfig) -> Result<GarageBackend, GarageError> {
        // reqwest (ours and object_store's, one build with
        // `rustls-no-provider`) needs a process-wide rustls provider even for
        // plain-HTTP clients: the same `ring` provider the server's TLS uses.
        // An error only means one is installed already.
        let _ = rustls::crypto::ring::default_provider().install_default();
        // Partition keys travel in the URL path: keep them to characters
        // every signer canonicalises alike.
        if !config
            .key_prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return Err(GarageError::Config {
                what: "the key prefix may only hold [A-Za-z0-9._-]".to_owned(),
            });
        }
        Ok(GarageBackend {
            k2v: K2vClient::new(&config)?,
            config,
        })
    }

    /// The blob store, each user allowed `quota_bytes`, counted by new
    /// [`GarageQuotaCounters`].
    ///
    /// # Errors
    /// [`GarageError::Config`] without an S3 endpoint or randomness;
    /// [`GarageError::S3`].
    pub fn blob_store(&self, quota_bytes: u64) -> Result<GarageBlobStore, GarageError> {
        let counters = Arc::new(self.quota_counters()?);
        self.blob_store_with_ledger(
            Arc::new(QuotaLedger::with_counters(quota_bytes, counters)),
            crate::config::DEFAULT_DELETED_BLOB_RETENTION,
        )
    }

    /// The blob store charging `ledger` (share it with every other write path
    /// of the server; the store registers itself as a usage source on it),
    /// keeping deleted blobs' tombstones for `deleted_retention` (then a
    /// listing of their namespace purges them and credits their quota).
    ///
    /// # Errors
    /// [`GarageError::Config`] without an S3 endpoint; [`GarageError::S3`].
    pub fn blob_store_with_ledger(
        &self,
        ledger: Arc<QuotaLedger>,
        deleted_retention: std::time::Duration,
    ) -> Result<GarageBlobStore, GarageError> {
        GarageBlobStore::new(self.k2v.clone(), &self.config, ledger, deleted_retention)
    }

    /// Change notifications through the cluster, so a device waiting on one
    /// server is woken by writes through any other (give it to
    /// [`crate::ServerBuilder::change_notifier`]).
    pub fn change_notifier(&self) -> GarageNotifier {
        GarageNotifier::new(self.k2v.clone(), &self.config.key_prefix)
    }

    /// Quota counts kept in the cluster, shared by every server over it
    /// (give them to [`crate::ServerBuilder::quota_ledger`]).
    ///
    /// # Errors
    /// [`GarageError::Config`] when no randomness is available.
    pub fn quota_counters(&self) -> Result<GarageQuotaCounters, GarageError> {
        GarageQuotaCounters::new(self.k2v.clone(), &self.config.key_prefix)
    }

    /// The incoming box over `blobs` (this backend's blob store), claims
    /// holding for `threshold`.
    pub fn incoming_box(
        &self,
        blobs: Arc<dyn crate::blobs::BlobBackend>,
        threshold: std::time::Duration,
    ) -> GarageIncomingBox {
        GarageIncomingBox::new(blobs, threshold, self.k2v.clone(), &self.config.key_prefix)
    }

    /// The token store.
    pub fn token_store(&self) -> GarageTokenStore {
        GarageTokenStore::new(self.k2v.clone(), &self.config.key_prefix)
    }

    /// The shared store.
    pub fn shared_store(&self) -> GarageSharedStore {
        GarageSharedStore::new(self.k2v.clone(), &self.config.key_prefix)
    }

    /// The per-user document stores.
    pub fn user_doc_stores(&self) -> GarageUserDocStores {
        GarageUserDocStores::new(self.k2v.clone(), &self.config.key_prefix)
    }
}
