//! The conformance suites on the Garage stores, each case on keys of its own
//! in the cluster's bucket.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use soledad_server::UserDocStores;
use soledad_server::conformance::docstores;
use soledad_server::garage::GarageBackend;

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

mod garage_docstores {
    soledad_server::conformance_tests!(docstores, super::Garage, if crate::cluster::requested());
}
