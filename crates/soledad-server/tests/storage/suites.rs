//! Every conformance suite on the embedded implementations (SQLite files,
//! filesystem) and on the in-memory ones of `memory.rs`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;
use soledad_server::blobs::{
    BlobBackend, EmbeddedQuotaCounters, FsBlobConfig, FsBlobStore, QuotaCounters,
};
use soledad_server::conformance::{blobs, docstores, incoming, notifier, quota, shared, tokens};
use soledad_server::incoming::{EmbeddedIncomingBox, IncomingBox};
use soledad_server::notify::{ChangeNotifier, InProcessNotifier};
use soledad_server::{
    EmbeddedUserDocStores, SharedStore, SqliteSharedStore, SqliteTokenStore, TokenStore,
    UserDocStores, UserStores,
};
use tempfile::TempDir;

use crate::memory::{MemoryBlobs, MemoryDocStores, MemoryQuota, MemoryShared, MemoryTokens};

/// Fresh embedded stores, each in its own directory of one temporary
/// directory (removed when the factory is dropped, at the end of the case).
pub struct Embedded {
    dir: TempDir,
    next: AtomicUsize,
    /// The last incoming box's blobs and claim file, for `reopen`.
    last_incoming: Mutex<Option<(Arc<dyn BlobBackend>, PathBuf)>>,
}

impl Embedded {
    pub fn new() -> Embedded {
        Embedded {
            dir: tempfile::tempdir().unwrap(),
            next: AtomicUsize::new(0),
            last_incoming: Mutex::new(None),
        }
    }

    fn fresh_dir(&self) -> PathBuf {
        let n = self.next.fetch_add(1, Ordering::SeqCst);
        let path = self.dir.path().join(n.to_string());
        std::fs::create_dir_all(&path).unwrap();
        path
    }
}

impl tokens::Factory for Embedded {
    fn fresh(&self) -> BoxFuture<'_, Arc<dyn TokenStore>> {
        let path = self.fresh_dir().join("tokens.sqlite");
        Box::pin(
            async move { Arc::new(SqliteTokenStore::open(&path).unwrap()) as Arc<dyn TokenStore> },
        )
    }
}

impl shared::Factory for Embedded {
    fn fresh(&self) -> BoxFuture<'_, Arc<dyn SharedStore>> {
        let path = self.fresh_dir().join("shared.sqlite");
        Box::pin(async move {
            Arc::new(SqliteSharedStore::open(&path).unwrap()) as Arc<dyn SharedStore>
        })
    }
}

impl blobs::Factory for Embedded {
    fn fresh(&self, quota_bytes: u64) -> BoxFuture<'_, Arc<dyn BlobBackend>> {
        let root = self.fresh_dir().join("blobs");
        Box::pin(async move {
            let store = FsBlobStore::open(FsBlobConfig {
                root,
                concurrent_blob_writes: 8,
                per_user_blob_writes: 8,
                quota_bytes,
                deleted_retention: soledad_server::DEFAULT_DELETED_BLOB_RETENTION,
            })
            .unwrap();
            Arc::new(store) as Arc<dyn BlobBackend>
        })
    }
}

impl docstores::Factory for Embedded {
    fn fresh(&self) -> BoxFuture<'_, Arc<dyn UserDocStores>> {
        let dir = self.fresh_dir().join("users");
        Box::pin(async move {
            Arc::new(UserStores::new(EmbeddedUserDocStores::new(dir))) as Arc<dyn UserDocStores>
        })
    }
}

impl incoming::Factory for Embedded {
    fn fresh(
        &self,
        threshold: std::time::Duration,
    ) -> BoxFuture<'_, (Arc<dyn IncomingBox>, Arc<dyn BlobBackend>)> {
        Box::pin(async move {
            let blobs = blobs::Factory::fresh(self, u64::MAX).await;
            let path = self.fresh_dir().join("incoming.sqlite");
            let inbox = EmbeddedIncomingBox::open(Arc::clone(&blobs), threshold, &path).unwrap();
            *self.last_incoming.lock().unwrap() = Some((Arc::clone(&blobs), path));
            (Arc::new(inbox) as Arc<dyn IncomingBox>, blobs)
        })
    }

    fn reopen(&self, threshold: std::time::Duration) -> BoxFuture<'_, Arc<dyn IncomingBox>> {
        let (blobs, path) = self.last_incoming.lock().unwrap().clone().unwrap();
        Box::pin(async move {
            Arc::new(EmbeddedIncomingBox::open(blobs, threshold, &path).unwrap())
                as Arc<dyn IncomingBox>
        })
    }
}

/// Fresh in-memory stores.
pub struct Memory;

/// The embedded incoming box over in-memory blobs (its claim file in a
/// temporary directory).
pub struct MemoryIncoming {
    dir: TempDir,
    last: Mutex<Option<Arc<dyn BlobBackend>>>,
}

impl MemoryIncoming {
    pub fn new() -> MemoryIncoming {
        MemoryIncoming {
            dir: tempfile::tempdir().unwrap(),
            last: Mutex::new(None),
        }
    }
}

impl incoming::Factory for MemoryIncoming {
    fn fresh(
        &self,
        threshold: std::time::Duration,
    ) -> BoxFuture<'_, (Arc<dyn IncomingBox>, Arc<dyn BlobBackend>)> {
        Box::pin(async move {
            let blobs = Arc::new(MemoryBlobs::new(u64::MAX)) as Arc<dyn BlobBackend>;
            let path = self.dir.path().join("incoming.sqlite");
            let inbox = EmbeddedIncomingBox::open(Arc::clone(&blobs), threshold, &path).unwrap();
            *self.last.lock().unwrap() = Some(Arc::clone(&blobs));
            (Arc::new(inbox) as Arc<dyn IncomingBox>, blobs)
        })
    }

    fn reopen(&self, threshold: std::time::Duration) -> BoxFuture<'_, Arc<dyn IncomingBox>> {
        let blobs = self.last.lock().unwrap().clone().unwrap();
        let path = self.dir.path().join("incoming.sqlite");
        Box::pin(async move {
            Arc::new(EmbeddedIncomingBox::open(blobs, threshold, &path).unwrap())
                as Arc<dyn IncomingBox>
        })
    }
}

impl tokens::Factory for Memory {
    fn fresh(&self) -> BoxFuture<'_, Arc<dyn TokenStore>> {
        Box::pin(async { Arc::new(MemoryTokens::default()) as Arc<dyn TokenStore> })
    }
}

impl shared::Factory for Memory {
    fn fresh(&self) -> BoxFuture<'_, Arc<dyn SharedStore>> {
        Box::pin(async { Arc::new(MemoryShared::default()) as Arc<dyn SharedStore> })
    }
}

impl blobs::Factory for Memory {
    fn fresh(&self, quota_bytes: u64) -> BoxFuture<'_, Arc<dyn BlobBackend>> {
        Box::pin(async move { Arc::new(MemoryBlobs::new(quota_bytes)) as Arc<dyn BlobBackend> })
    }
}

impl docstores::Factory for Memory {
    fn fresh(&self) -> BoxFuture<'_, Arc<dyn UserDocStores>> {
        Box::pin(async { Arc::new(MemoryDocStores::default()) as Arc<dyn UserDocStores> })
    }
}

impl quota::Factory for Embedded {
    fn fresh(&self) -> BoxFuture<'_, Arc<dyn QuotaCounters>> {
        Box::pin(async { Arc::new(EmbeddedQuotaCounters::new()) as Arc<dyn QuotaCounters> })
    }
}

impl quota::Factory for Memory {
    fn fresh(&self) -> BoxFuture<'_, Arc<dyn QuotaCounters>> {
        Box::pin(async { Arc::new(MemoryQuota::default()) as Arc<dyn QuotaCounters> })
    }
}

mod embedded_quota {
    soledad_server::conformance_tests!(quota, super::Embedded::new());
}

mod memory_quota {
    soledad_server::conformance_tests!(quota, super::Memory);
}

mod sqlite_tokens {
    soledad_server::conformance_tests!(tokens, super::Embedded::new());
}

mod sqlite_shared {
    soledad_server::conformance_tests!(shared, super::Embedded::new());
}

mod fs_blobs {
    soledad_server::conformance_tests!(blobs, super::Embedded::new());
}

mod embedded_docstores {
    soledad_server::conformance_tests!(docstores, super::Embedded::new());
}

mod memory_tokens {
    soledad_server::conformance_tests!(tokens, super::Memory);
}

mod memory_shared {
    soledad_server::conformance_tests!(shared, super::Memory);
}

mod memory_docstores {
    soledad_server::conformance_tests!(docstores, super::Memory);
}

mod memory_blobs {
    soledad_server::conformance_tests!(blobs, super::Memory);
}

mod fs_incoming {
    soledad_server::conformance_tests!(incoming, super::Embedded::new());
}

mod memory_incoming {
    soledad_server::conformance_tests!(incoming, super::MemoryIncoming::new());
}

impl notifier::Factory for Memory {
    fn fresh(&self) -> BoxFuture<'_, Arc<dyn ChangeNotifier>> {
        Box::pin(async { Arc::new(InProcessNotifier::new()) as Arc<dyn ChangeNotifier> })
    }
}

mod in_process_notifier {
    soledad_server::conformance_tests!(notifier, super::Memory);
}
