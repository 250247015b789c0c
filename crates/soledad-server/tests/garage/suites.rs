//! The conformance suites on the Garage stores, each case on keys of its own
//! in the cluster's bucket.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use soledad_server::blobs::BlobBackend;
use soledad_server::blobs::QuotaCounters;
use soledad_server::conformance::{blobs, docstores, incoming, notifier, quota, shared, tokens};
use soledad_server::garage::{GarageBackend, GarageConfig};
use soledad_server::incoming::IncomingBox;
use soledad_server::notify::ChangeNotifier;
use soledad_server::{SharedStore, TokenStore, UserDocStores};

use crate::cluster;

/// Fresh Garage stores: a new key prefix for every `fresh`.
pub struct Garage;

fn backend() -> GarageBackend {
    GarageBackend::connect(cluster::config()).unwrap()
}

impl docstores::Factory for Garage {
    fn fresh(&self) -> BoxFuture<'_, Arc<dyn UserDocStores>> {
        let stores = backend().user_doc_stores();
        Box::pin(async move { Arc::new(stores) as Arc<dyn UserDocStores> })
    }
}

impl blobs::Factory for Garage {
    fn fresh(&self, quota_bytes: u64) -> BoxFuture<'_, Arc<dyn BlobBackend>> {
        let store = backend().blob_store(quota_bytes).unwrap();
        Box::pin(async move { Arc::new(store) as Arc<dyn BlobBackend> })
    }
}

impl tokens::Factory for Garage {
    fn fresh(&self) -> BoxFuture<'_, Arc<dyn TokenStore>> {
        let store = backend().token_store();
        Box::pin(async move { Arc::new(store) as Arc<dyn TokenStore> })
    }
}

impl shared::Factory for Garage {
    fn fresh(&self) -> BoxFuture<'_, Arc<dyn SharedStore>> {
        let store = backend().shared_store();
        Box::pin(async move { Arc::new(store) as Arc<dyn SharedStore> })
    }
}

impl quota::Factory for Garage {
    fn fresh(&self) -> BoxFuture<'_, Arc<dyn QuotaCounters>> {
        let counters = backend().quota_counters().unwrap();
        Box::pin(async move { Arc::new(counters) as Arc<dyn QuotaCounters> })
    }
}

impl notifier::Factory for Garage {
    fn fresh(&self) -> BoxFuture<'_, Arc<dyn ChangeNotifier>> {
        let notifier = backend().change_notifier();
        Box::pin(async move { Arc::new(notifier) as Arc<dyn ChangeNotifier> })
    }
}

/// Incoming boxes over Garage; remembers the last one's keys so `reopen`
/// opens the same claims as a restarted server would.
#[derive(Default)]
pub struct GarageIncoming {
    last: std::sync::Mutex<Option<(GarageConfig, Arc<dyn BlobBackend>)>>,
}

impl incoming::Factory for GarageIncoming {
    fn fresh(
        &self,
        threshold: std::time::Duration,
    ) -> BoxFuture<'_, (Arc<dyn IncomingBox>, Arc<dyn BlobBackend>)> {
        let config = cluster::config();
        let backend = GarageBackend::connect(config.clone()).unwrap();
        let blobs = Arc::new(backend.blob_store(u64::MAX).unwrap()) as Arc<dyn BlobBackend>;
        let inbox = backend.incoming_box(Arc::clone(&blobs), threshold);
        *self.last.lock().unwrap() = Some((config, Arc::clone(&blobs)));
        Box::pin(async move { (Arc::new(inbox) as Arc<dyn IncomingBox>, blobs) })
    }

    fn reopen(&self, threshold: std::time::Duration) -> BoxFuture<'_, Arc<dyn IncomingBox>> {
        let (config, blobs) = self.last.lock().unwrap().clone().expect("fresh first");
        let backend = GarageBackend::connect(config).unwrap();
        let inbox = backend.incoming_box(blobs, threshold);
        Box::pin(async move { Arc::new(inbox) as Arc<dyn IncomingBox> })
    }
}

mod garage_incoming {
    soledad_server::conformance_tests!(incoming, super::GarageIncoming::default(), if crate::cluster::requested());
}

mod garage_tokens {
    soledad_server::conformance_tests!(tokens, super::Garage, if crate::cluster::requested());
}

mod garage_shared {
    soledad_server::conformance_tests!(shared, super::Garage, if crate::cluster::requested());
}

mod garage_blobs {
    soledad_server::conformance_tests!(blobs, super::Garage, if crate::cluster::requested());
}

mod garage_docstores {
    soledad_server::conformance_tests!(docstores, super::Garage, if crate::cluster::requested());
}

mod garage_quota {
    soledad_server::conformance_tests!(quota, super::Garage, if crate::cluster::requested());
}

mod garage_notifier {
    soledad_server::conformance_tests!(notifier, super::Garage, if crate::cluster::requested());
}
