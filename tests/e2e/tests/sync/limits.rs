//! The client store's document size limit comes from the protocol's limits table:
//! what it accepts always fits a frame and syncs; what it refuses never reaches a sync.

use serde_json::json;
use soledad_client::{Error, StoreError};
use soledad_protocol::MAX_DOCUMENT_BYTES;

use crate::util::Env;

/// A JSON object whose text is exactly `len` bytes.
fn json_of_len(len: usize) -> String {
    let overhead = r#"{"b":""}"#.len();
    format!(r#"{{"b":"{}"}}"#, "x".repeat(len - overhead))
}

#[tokio::test]
async fn a_70_mb_document_is_refused_locally_and_later_syncs_still_work() {
    let env = Env::start().await;
    let a = env.device("a").await;
    let huge = json_of_len(70_000_000);
    let err = a.create_doc_from_json(&huge, None).await.unwrap_err();
    assert!(
        matches!(err, Error::Store(StoreError::DocumentTooBig)),
        "{err:?}"
    );
    let mut doc = a.create_doc(&json!({"n": 1}), None).await.unwrap();
    doc.set_json(&huge).unwrap();
    let err = a.put_doc(&mut doc).await.unwrap_err();
    assert!(
        matches!(err, Error::Store(StoreError::DocumentTooBig)),
        "{err:?}"
    );
    a.sync().await.unwrap();
    let b = env.device("b").await;
    b.sync().await.unwrap();
    let (_, docs) = b.get_all_docs(false).await.unwrap();
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0].json(), Some(r#"{"n":1}"#));
}

#[tokio::test]
async fn the_limit_counts_id_and_revision_and_a_document_just_under_it_syncs() {
    let env = Env::start().await;
    let a = env.device("a").await;
    let id = "big";
    // u1db's size: JSON text + id + the revision the document carries (none yet).
    let at_limit = json_of_len(MAX_DOCUMENT_BYTES - id.len() + 1);
    // Content alone is under the limit; with the id it is over.
    assert!(at_limit.len() < MAX_DOCUMENT_BYTES);
    let err = a
        .create_doc_from_json(&at_limit, Some(id))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Store(StoreError::DocumentTooBig)),
        "{err:?}"
    );
    let just_under = json_of_len(MAX_DOCUMENT_BYTES - id.len());
    a.create_doc_from_json(&just_under, Some(id)).await.unwrap();
    a.sync().await.unwrap();
    let b = env.device("b").await;
    b.sync().await.unwrap();
    let got = b.get_doc(id, false).await.unwrap().expect("synced");
    assert_eq!(got.json().map(str::len), Some(just_under.len()));
}

#[test]
fn store_revisions_never_exceed_a_frame_field() {
    assert_eq!(
        soledad_store::vectorclock::MAX_REVISION_BYTES,
        soledad_protocol::MAX_FRAME_FIELD_BYTES
    );
}
