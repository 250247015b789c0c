//! Sync charges what it stores: replacing a revision credits the old one.

use serde_json::json;
use soledad_client::Error as ClientError;
use soledad_protocol::ErrorKind;

use crate::util::ServerProcess;

/// A quota of 1 MiB and a document of ~200 KB edited 200 times (40 MB sent).
const QUOTA: u64 = 1 << 20;
const DOC_BYTES: usize = 200 * 1024;
const EDITS: usize = 200;

fn content(edit: usize) -> serde_json::Value {
    // Different bytes each edit, same size.
    let fill = char::from(b'a' + u8::try_from(edit % 26).unwrap());
    json!({"edit": edit, "body": fill.to_string().repeat(DOC_BYTES)})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn editing_one_document_many_times_never_exceeds_the_quota() {
    let server = ServerProcess::start(&format!("quota_bytes = {QUOTA}")).await;
    let a = server.device("a").await;
    let mut doc = a.create_doc(&content(0), Some("the-doc")).await.unwrap();
    a.sync().await.unwrap();
    let first = server.used_bytes().await;
    assert!(first > DOC_BYTES as u64, "the document is charged: {first}");
    for edit in 1..=EDITS {
        doc.set_value(&content(edit)).unwrap();
        a.put_doc(&mut doc).await.unwrap();
        let report = a
            .sync()
            .await
            .unwrap_or_else(|e| panic!("edit {edit}: {e}"));
        assert_eq!(report.sent, 1, "edit {edit}");
    }
    let last = server.used_bytes().await;
    assert!(last <= QUOTA, "usage {last} passed the quota");
    // One stored revision plus small log rows, not 200 revisions.
    assert!(
        last < first + 64 * 1024,
        "usage grew with edits: {first} -> {last}"
    );

    let b = server.device("b").await;
    b.sync().await.unwrap();
    let got = b.get_doc("the-doc", false).await.unwrap().unwrap();
    assert_eq!(got.value().unwrap(), Some(content(EDITS)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_past_the_quota_is_refused_and_stores_nothing() {
    let server = ServerProcess::start(&format!("quota_bytes = {QUOTA}")).await;
    let a = server.device("a").await;
    a.create_doc(&json!({"small": true}), Some("small"))
        .await
        .unwrap();
    a.sync().await.unwrap();
    let before = server.used_bytes().await;

    for i in 0..3 {
        a.create_doc(&content(i), Some(&format!("big-{i}")))
            .await
            .unwrap();
    }
    // Over the quota with the one below: 4 × 200 KB + 300 KB > 1 MiB.
    a.create_doc(&json!({"body": "z".repeat(300 * 1024)}), Some("too-much"))
        .await
        .unwrap();
    a.create_doc(&content(9), Some("big-9")).await.unwrap();
    let refused = a.sync().await;
    match refused {
        Err(ClientError::Server {
            kind: Some(ErrorKind::QuotaExceeded),
            ..
        }) => {}
        other => panic!("expected a quota refusal, got {other:?}"),
    }
    assert_eq!(
        server.used_bytes().await,
        before,
        "a refused batch is not charged"
    );
    // Nothing of the refused batch reached the server.
    let b = server.device("b").await;
    b.sync().await.unwrap();
    assert!(b.get_doc("big-0", false).await.unwrap().is_none());
    assert!(b.get_doc("too-much", false).await.unwrap().is_none());
    assert!(b.get_doc("small", false).await.unwrap().is_some());
}
