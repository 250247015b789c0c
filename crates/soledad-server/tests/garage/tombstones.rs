//! The Garage blob store keeps a deleted blob's tombstone for the configured
//! retention, then a listing purges it and credits its quota (as the
//! embedded store does).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use soledad_server::blobs::{
    BlobBackend, BlobId, ENTRY_OVERHEAD_BYTES, ListQuery, Namespace, QuotaLedger, UserId,
};
use soledad_server::conformance::block_on;
use soledad_server::garage::{GarageBackend, GarageBlobStore};

use crate::cluster;

fn store(retention: Duration) -> GarageBlobStore {
    let backend = GarageBackend::connect(cluster::config()).unwrap();
    let ledger = QuotaLedger::with_counters(u64::MAX, Arc::new(backend.quota_counters().unwrap()));
    backend
        .blob_store_with_ledger(Arc::new(ledger), retention)
        .unwrap()
}

/// Puts, deletes and lists the deleted blobs of `store`: what the listing
/// shows and the usage after it.
async fn delete_then_list(store: &GarageBlobStore) -> (Vec<String>, u64) {
    let (alice, ns) = (UserId::parse("alice").unwrap(), Namespace::default());
    let id = BlobId::parse("gone").unwrap();
    let body = futures_util::stream::iter([Ok(Bytes::from_static(b"12345"))]);
    store
        .put(&alice, &ns, &id, Box::pin(body), Some(5), &[])
        .await
        .unwrap();
    store.delete(&alice, &ns, &id).await.unwrap();
    let deleted = ListQuery {
        deleted: true,
        ..ListQuery::default()
    };
    let listed = store.list(&alice, &deleted).await.unwrap();
    let used = store.usage(&alice).await.unwrap().used_bytes;
    (listed, used)
}

#[test]
fn tombstones_stay_for_the_retention() {
    if !cluster::requested() {
        return;
    }
    block_on(async {
        let store = store(Duration::from_secs(24 * 60 * 60));
        let (listed, used) = delete_then_list(&store).await;
        assert_eq!(listed, vec!["gone"]);
        assert_eq!(
            used, ENTRY_OVERHEAD_BYTES,
            "a tombstone is charged one entry"
        );
    });
}

#[test]
fn expired_tombstones_are_purged_by_a_listing_and_credited() {
    if !cluster::requested() {
        return;
    }
    block_on(async {
        // Retention 0: a tombstone expires at once and goes at the next listing.
        let store = store(Duration::ZERO);
        let (listed, used) = delete_then_list(&store).await;
        assert!(listed.is_empty(), "{listed:?}");
        assert_eq!(used, 0);
        // Gone for good: a second listing (any server) finds nothing either.
        let alice = UserId::parse("alice").unwrap();
        let again = store
            .list(
                &alice,
                &ListQuery {
                    deleted: true,
                    ..ListQuery::default()
                },
            )
            .await
            .unwrap();
        assert!(again.is_empty());
    });
}
