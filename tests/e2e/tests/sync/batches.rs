//! Several writes in one local transaction (`Soledad::batch`): all kept or none, and
//! a batch's documents sync like any others.

use serde_json::json;
use soledad_client::{Error, StoreError};

use crate::util::Env;

#[tokio::test]
async fn a_batch_keeps_every_write_and_they_sync() {
    let env = Env::start().await;
    let a = env.device("a").await;
    let (before, _) = a.get_all_docs(false).await.unwrap();
    let ids = a
        .batch(|batch| {
            let mut ids = Vec::new();
            for n in 0..50 {
                ids.push(batch.create_doc(&json!({ "n": n }), None)?.doc_id);
            }
            let mut first = batch
                .get_doc(&ids[0], false)?
                .expect("seen inside the batch");
            first.set_json(r#"{"n":"edited"}"#)?;
            batch.put_doc(&mut first)?;
            Ok(ids)
        })
        .await
        .unwrap();
    let (generation, docs) = a.get_all_docs(false).await.unwrap();
    assert_eq!(docs.len(), 50);
    assert_eq!(generation, before + 51);
    a.sync().await.unwrap();

    let b = env.device("b").await;
    b.sync().await.unwrap();
    let edited = b.get_doc(&ids[0], false).await.unwrap().unwrap();
    assert_eq!(edited.json(), Some(r#"{"n":"edited"}"#));
    assert_eq!(b.get_all_docs(false).await.unwrap().1.len(), 50);
}

#[tokio::test]
async fn a_failing_batch_keeps_nothing() {
    let env = Env::start().await;
    let a = env.device("a").await;
    a.create_doc(&json!({ "taken": true }), Some("taken"))
        .await
        .unwrap();
    let (before, _) = a.get_all_docs(false).await.unwrap();
    let result = a
        .batch(|batch| {
            batch.create_doc(&json!({ "n": 1 }), Some("new-1"))?;
            // The id exists: the closure gives up, and the whole batch with it.
            batch.create_doc(&json!({ "n": 2 }), Some("taken"))?;
            Ok(())
        })
        .await;
    assert!(matches!(
        result,
        Err(Error::Store(StoreError::RevisionConflict))
    ));
    assert!(a.get_doc("new-1", true).await.unwrap().is_none());
    assert_eq!(a.get_all_docs(false).await.unwrap().0, before);
}
