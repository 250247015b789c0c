//! Usage after a restart equals usage before it: blobs (content, flags,
//! tombstones) and documents (inserted, edited, deleted, sync positions) are
//! measured after a restart exactly as they were charged while running.

use serde_json::json;

use crate::util::ServerProcess;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_is_the_same_after_a_restart() {
    let mut server = ServerProcess::start("").await;
    for (id, len) in [
        ("empty", 0usize),
        ("small", 10),
        ("big", 300_000),
        ("gone", 5000),
    ] {
        let status = server.put_blob(id, vec![1; len]).await.status();
        assert!(status.is_success(), "{id}: {status}");
    }
    assert!(
        server
            .set_flags("small", r#"["PROCESSING"]"#)
            .await
            .is_success()
    );
    assert!(server.delete_blob("gone").await.is_success());

    let a = server.device("a").await;
    let mut docs = Vec::new();
    for i in 0..50 {
        let doc = a
            .create_doc(&json!({"i": i, "pad": "x".repeat(100 * i)}), None)
            .await
            .unwrap();
        docs.push(doc);
    }
    a.sync().await.unwrap();
    for doc in docs.iter_mut().take(10) {
        doc.set_value(&json!({"edited": true})).unwrap();
        a.put_doc(doc).await.unwrap();
    }
    for doc in docs.iter_mut().skip(40) {
        a.delete_doc(doc).await.unwrap();
    }
    a.sync().await.unwrap();
    let b = server.device("b").await;
    b.sync().await.unwrap();

    let before = server.used_bytes().await;
    assert!(
        before > 300_000,
        "blobs and documents are charged: {before}"
    );
    server.restart().await;
    assert_eq!(server.used_bytes().await, before, "first restart");

    // Charged incrementally after the restart's measure, then measured again.
    assert!(server.delete_blob("big").await.is_success());
    assert!(
        server
            .put_blob("again", vec![2; 777])
            .await
            .status()
            .is_success()
    );
    for doc in docs.iter_mut().skip(20).take(10) {
        doc.set_value(&json!({"again": "y".repeat(3000)})).unwrap();
        a.put_doc(doc).await.unwrap();
    }
    a.sync().await.unwrap();
    b.sync().await.unwrap();
    let running = server.used_bytes().await;
    assert_ne!(running, before);
    server.restart().await;
    assert_eq!(server.used_bytes().await, running, "second restart");
}
