//! Every stored entry costs quota: empty blobs are not free.

use reqwest::StatusCode;
use soledad_server::blobs::ENTRY_OVERHEAD_BYTES;

use crate::util::ServerProcess;

const QUOTA: u64 = 1 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_blobs_are_refused_long_before_two_thousand_fit_in_one_mib() {
    let server = ServerProcess::start(&format!("quota_bytes = {QUOTA}")).await;
    let mut stored = 0u64;
    let mut refused = None;
    for i in 0..2000u64 {
        let response = server.put_blob(&format!("empty-{i:04}"), Vec::new()).await;
        if response.status() == StatusCode::INSUFFICIENT_STORAGE {
            let body: serde_json::Value = response.json().await.unwrap();
            assert_eq!(body["error"], "quota_exceeded");
            refused = Some(i);
            break;
        }
        assert!(response.status().is_success(), "blob {i}");
        stored += 1;
    }
    assert!(refused.is_some(), "2,000 empty blobs fit in a 1 MiB quota");
    // A blob is a content file and a flags file.
    let per_blob = 2 * ENTRY_OVERHEAD_BYTES;
    assert_eq!(
        stored,
        QUOTA / per_blob,
        "empty blobs stored before the refusal"
    );
    assert_eq!(server.used_bytes().await, stored * per_blob);
    assert_eq!(
        server.list_blobs("").await.len() as u64,
        stored,
        "the refused upload left nothing behind"
    );

    // Deleting frees the blob's entries but keeps a tombstone, which costs one.
    assert!(server.delete_blob("empty-0000").await.is_success());
    assert_eq!(
        server.used_bytes().await,
        stored * per_blob - ENTRY_OVERHEAD_BYTES
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_tombstones_are_purged_and_credited() {
    // Retention 0: a tombstone expires at once and goes at the next listing.
    let server = ServerProcess::start("deleted_blob_retention_days = 0").await;
    assert!(
        server
            .put_blob("b1", vec![7; 100])
            .await
            .status()
            .is_success()
    );
    assert_eq!(server.used_bytes().await, 100 + 2 * ENTRY_OVERHEAD_BYTES);
    assert!(server.delete_blob("b1").await.is_success());
    assert_eq!(server.used_bytes().await, ENTRY_OVERHEAD_BYTES);
    assert!(server.list_blobs("?deleted=true").await.is_empty());
    assert_eq!(server.used_bytes().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tombstones_within_retention_are_listed_and_charged() {
    let server = ServerProcess::start("").await;
    assert!(
        server
            .put_blob("b1", vec![7; 100])
            .await
            .status()
            .is_success()
    );
    assert!(server.delete_blob("b1").await.is_success());
    assert_eq!(
        server.list_blobs("?deleted=true").await,
        vec!["b1".to_owned()]
    );
    assert_eq!(server.used_bytes().await, ENTRY_OVERHEAD_BYTES);
}
