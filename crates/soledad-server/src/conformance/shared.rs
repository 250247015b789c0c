//! The [`SharedStore`] contract: documents per owner, every write and delete
//! conditional on the current revision, revisions new on every write.

use std::sync::Arc;

use futures_util::future::BoxFuture;

use crate::blobs::UserId;
use crate::error::Error;
use crate::shared::{SharedDocId, SharedRev, SharedStore};

/// Makes the shared stores the cases run on.
pub trait Factory: Sync {
    /// A new, empty store.
    fn fresh(&self) -> BoxFuture<'_, Arc<dyn SharedStore>>;
}

fn user(name: &str) -> UserId {
    UserId::parse(name).unwrap()
}

fn doc(id: &str) -> SharedDocId {
    SharedDocId::parse(id).unwrap()
}

fn conflict<T: std::fmt::Debug>(result: Result<T, Error>) {
    assert!(matches!(result, Err(Error::RevisionConflict)), "{result:?}");
}

/// A created document reads back as written, with its revision and content
/// type; an empty document is a document.
pub async fn put_creates_and_get_reads_back(factory: &dyn Factory) {
    let store = factory.fresh().await;
    let (alice, id) = (user("alice"), doc("backup-1"));
    assert!(store.get(&alice, &id).await.unwrap().is_none());
    let written = store
        .put(
            &alice,
            &id,
            None,
            b"{\"k\":1}".to_vec(),
            Some("application/json".to_owned()),
        )
        .await
        .unwrap();
    assert_eq!(written.replaced_bytes, 0, "created");
    assert!(!written.rev.as_str().is_empty());
    let got = store.get(&alice, &id).await.unwrap().unwrap();
    assert_eq!(got.rev, written.rev);
    assert_eq!(got.content, b"{\"k\":1}");
    assert_eq!(got.content_type.as_deref(), Some("application/json"));

    let empty = doc("x.y_z-1%2F");
    let written = store
        .put(&alice, &empty, None, Vec::new(), None)
        .await
        .unwrap();
    let got = store.get(&alice, &empty).await.unwrap().unwrap();
    assert_eq!(got.rev, written.rev);
    assert!(got.content.is_empty());
    assert_eq!(got.content_type, None);
    // The first document is untouched.
    let first = store.get(&alice, &id).await.unwrap().unwrap();
    assert_eq!(first.content, b"{\"k\":1}");
}

/// Creating needs the document absent, replacing needs its current
/// revision; each write gives a revision not seen before and reports the
/// size it replaced; a refused write changes nothing.
pub async fn put_needs_the_current_revision(factory: &dyn Factory) {
    let store = factory.fresh().await;
    let (alice, id) = (user("alice"), doc("backup"));
    let stale = SharedRev::new("1-0000000000000000");
    conflict(
        store
            .put(&alice, &id, Some(&stale), b"x".to_vec(), None)
            .await,
    );
    assert!(
        store.get(&alice, &id).await.unwrap().is_none(),
        "no create with a rev"
    );

    let mut rev = store
        .put(&alice, &id, None, b"v1".to_vec(), None)
        .await
        .unwrap()
        .rev;
    let mut seen = vec![rev.clone()];
    conflict(store.put(&alice, &id, None, b"again".to_vec(), None).await);
    conflict(
        store
            .put(&alice, &id, Some(&stale), b"stale".to_vec(), None)
            .await,
    );
    let mut len = 2;
    for round in 0..5u8 {
        let content = vec![round; usize::from(round) + 3];
        let written = store
            .put(&alice, &id, Some(&rev), content.clone(), None)
            .await
            .unwrap();
        assert_eq!(written.replaced_bytes, len);
        assert!(
            !seen.contains(&written.rev),
            "revision {:?} reused",
            written.rev
        );
        // The revision just replaced is stale now.
        conflict(
            store
                .put(&alice, &id, Some(&rev), b"late".to_vec(), None)
                .await,
        );
        let got = store.get(&alice, &id).await.unwrap().unwrap();
        assert_eq!((got.content, &got.rev), (content, &written.rev));
        len = u64::from(round) + 3;
        rev = written.rev;
        seen.push(rev.clone());
    }
}

/// Deleting needs the current revision, returns the content size, and
/// leaves the id free to be created again.
pub async fn delete_needs_the_current_revision(factory: &dyn Factory) {
    let store = factory.fresh().await;
    let (alice, id) = (user("alice"), doc("backup"));
    let any = SharedRev::new("1-0000000000000000");
    let missing = store.delete(&alice, &id, &any).await;
    assert!(matches!(missing, Err(Error::NotFound)), "{missing:?}");

    let first = store
        .put(&alice, &id, None, b"12345".to_vec(), None)
        .await
        .unwrap();
    let second = store
        .put(&alice, &id, Some(&first.rev), b"1234567".to_vec(), None)
        .await
        .unwrap();
    conflict(store.delete(&alice, &id, &first.rev).await);
    assert!(
        store.get(&alice, &id).await.unwrap().is_some(),
        "kept on conflict"
    );
    assert_eq!(store.delete(&alice, &id, &second.rev).await.unwrap(), 7);
    assert!(store.get(&alice, &id).await.unwrap().is_none());
    let again = store.delete(&alice, &id, &second.rev).await;
    assert!(matches!(again, Err(Error::NotFound)), "{again:?}");
    conflict(
        store
            .put(&alice, &id, Some(&second.rev), b"x".to_vec(), None)
            .await,
    );
    let reborn = store
        .put(&alice, &id, None, b"new".to_vec(), None)
        .await
        .unwrap();
    assert_eq!(reborn.replaced_bytes, 0);
    assert_ne!(reborn.rev, second.rev);
    assert_eq!(
        store.get(&alice, &id).await.unwrap().unwrap().content,
        b"new"
    );
}

/// Another owner's document is absent: not read, replaced nor deleted; the
/// same id is an independent document per owner.
pub async fn owners_are_isolated(factory: &dyn Factory) {
    let store = factory.fresh().await;
    let (alice, bob, id) = (user("alice"), user("bob"), doc("backup"));
    let written = store
        .put(&alice, &id, None, b"secret".to_vec(), None)
        .await
        .unwrap();
    assert!(store.get(&bob, &id).await.unwrap().is_none());
    let delete = store.delete(&bob, &id, &written.rev).await;
    assert!(matches!(delete, Err(Error::NotFound)), "{delete:?}");
    conflict(
        store
            .put(&bob, &id, Some(&written.rev), b"mine".to_vec(), None)
            .await,
    );
    // Bob's own document of the same id.
    let bobs = store
        .put(&bob, &id, None, b"b".to_vec(), None)
        .await
        .unwrap();
    assert_eq!(bobs.replaced_bytes, 0);
    assert_eq!(
        store.get(&alice, &id).await.unwrap().unwrap().content,
        b"secret"
    );
    assert_eq!(store.get(&bob, &id).await.unwrap().unwrap().content, b"b");
    assert_eq!(store.delete(&alice, &id, &written.rev).await.unwrap(), 6);
    assert_eq!(store.get(&bob, &id).await.unwrap().unwrap().content, b"b");
}
