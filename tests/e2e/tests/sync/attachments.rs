//! Document attachments end to end (issue 11): selective sync and binding to the
//! document.

use serde_json::json;
use soledad_client::{ATTACHMENTS_NAMESPACE, AttachmentState, Error, SyncStatus};

use crate::blobs::{bm, data, device, read_all};
use crate::util::{Env, UUID};

#[tokio::test]
async fn attachment_is_remote_on_b_until_downloaded_then_synced() {
    let env = Env::start().await;
    let a = device(&env, "a").await;
    let b = device(&env, "b").await;
    let content = data(21, 150_000);
    let mut doc = a
        .create_doc(&json!({"title": "report"}), None)
        .await
        .unwrap();
    assert_eq!(
        a.get_attachment_state(&doc).await.unwrap(),
        AttachmentState::None
    );
    assert!(!a.is_dirty(&doc).await.unwrap());
    a.put_attachment(&mut doc, &content[..], content.len() as u64)
        .await
        .unwrap();
    assert!(a.is_dirty(&doc).await.unwrap());
    assert_eq!(
        a.get_attachment_state(&doc).await.unwrap(),
        AttachmentState::Local
    );
    a.put_doc(&mut doc).await.unwrap();
    assert!(!a.is_dirty(&doc).await.unwrap());
    assert!(matches!(
        a.put_attachment(&mut doc, &b"x"[..], 1).await,
        Err(Error::BlobAlreadyExists)
    ));
    assert_eq!(
        a.upload_attachment(&doc).await.unwrap(),
        AttachmentState::Synced
    );
    a.sync().await.unwrap();

    b.sync().await.unwrap();
    let doc_b = b.get_doc(&doc.doc_id, false).await.unwrap().unwrap();
    assert_eq!(doc_b.value().unwrap().unwrap()["title"], "report");
    assert_eq!(
        b.get_attachment_state(&doc_b).await.unwrap(),
        AttachmentState::Remote
    );
    // Document sync fetched no attachment bytes.
    assert!(
        bm(&b)
            .local_list(ATTACHMENTS_NAMESPACE)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        b.download_attachment(&doc_b).await.unwrap(),
        AttachmentState::Synced
    );
    let got = read_all(b.get_attachment(&doc_b).await.unwrap().unwrap()).await;
    assert_eq!(got, content);

    // Deleting removes the blob and the reference.
    let mut doc_b = doc_b;
    b.delete_attachment(&mut doc_b).await.unwrap();
    assert_eq!(
        b.get_attachment_state(&doc_b).await.unwrap(),
        AttachmentState::None
    );
    assert!(b.get_attachment(&doc_b).await.unwrap().is_none());
    b.put_doc(&mut doc_b).await.unwrap();
    assert_eq!(bm(&b).count(ATTACHMENTS_NAMESPACE).await.unwrap(), 0);
}

#[tokio::test]
async fn attachments_swapped_on_the_server_are_detected() {
    let env = Env::start().await;
    let a = device(&env, "a").await;
    let b = device(&env, "b").await;
    let mut docs = Vec::new();
    for n in 0..2u64 {
        let mut doc = a.create_doc(&json!({ "n": n }), None).await.unwrap();
        let content = data(30 + n, 70_000);
        a.put_attachment(&mut doc, &content[..], content.len() as u64)
            .await
            .unwrap();
        a.put_doc(&mut doc).await.unwrap();
        a.upload_attachment(&doc).await.unwrap();
        docs.push(doc);
    }
    a.sync().await.unwrap();
    let ids: Vec<String> = docs
        .iter()
        .map(|d| {
            d.value().unwrap().unwrap()["_attachment"]["blob_id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    env.files()
        .swap_blobs(UUID, ATTACHMENTS_NAMESPACE, &ids[0], &ids[1])
        .unwrap();

    b.sync().await.unwrap();
    for doc in &docs {
        let doc_b = b.get_doc(&doc.doc_id, false).await.unwrap().unwrap();
        let got = b.get_attachment(&doc_b).await;
        assert!(matches!(got, Err(Error::Integrity { .. })), "{got:?}");
        assert_eq!(
            b.get_attachment_state(&doc_b).await.unwrap(),
            AttachmentState::Remote
        );
    }
    assert_eq!(
        bm(&b)
            .local_list_status(SyncStatus::FailedDownload, ATTACHMENTS_NAMESPACE)
            .await
            .unwrap()
            .len(),
        2
    );
}

#[tokio::test]
async fn an_attachment_longer_than_referenced_is_refused_without_keeping_it() {
    let env = Env::start().await;
    let a = device(&env, "a").await;
    let b = device(&env, "b").await;
    let mut doc = a.create_doc(&json!({}), None).await.unwrap();
    let content = data(40, 10_000);
    a.put_attachment(&mut doc, &content[..], content.len() as u64)
        .await
        .unwrap();
    a.put_doc(&mut doc).await.unwrap();
    a.upload_attachment(&doc).await.unwrap();
    a.sync().await.unwrap();
    let id = doc.value().unwrap().unwrap()["_attachment"]["blob_id"]
        .as_str()
        .unwrap()
        .to_owned();
    env.files()
        .append_to_blob(UUID, ATTACHMENTS_NAMESPACE, &id, &vec![0u8; 4 << 20])
        .unwrap();

    b.sync().await.unwrap();
    let doc_b = b.get_doc(&doc.doc_id, false).await.unwrap().unwrap();
    let got = b.download_attachment(&doc_b).await;
    assert!(matches!(got, Err(Error::Integrity { .. })), "{got:?}");
    let kept: u64 =
        crate::util::files_under(&env.home("b").join(format!("{}_blobs", crate::util::UUID)))
            .iter()
            .map(|f| std::fs::metadata(f).unwrap().len())
            .sum();
    assert_eq!(kept, 0, "nothing of the oversized blob is kept");
    // Refused from its announced length, before reading the body.
    let progress = bm(&b).sync_progress();
    assert!(progress.done_bytes < 1 << 20, "{progress:?}");
}
