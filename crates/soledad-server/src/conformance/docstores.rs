//! The [`UserDocStores`] contract: per-user stores created on demand and
//! isolated; a source's position recorded and read back; batches applied with
//! u1db's target rules (a newer revision inserted, an older or concurrent one
//! left out, the same one converged, no conflict stored); changes read back in
//! generation order in bounded chunks; the quota charged what is stored.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use soledad_protocol::{BatchLimits, DocFrame, ExchangeEnd, RecordSyncInfo};
use soledad_store::{DocId, Position, Rev, StoreError};

use crate::blobs::{BlobError, DOC_ENTRY_OVERHEAD_BYTES, QuotaLedger, UserId};
use crate::error::Error;
use crate::userdb::{SkipChange, SourceDoc, UserDocStores};

/// Makes the document stores the cases run on.
pub trait Factory: Sync {
    /// A new, empty set of stores (no user has one).
    fn fresh(&self) -> BoxFuture<'_, Arc<dyn UserDocStores>>;
}

const SOURCE: &str = "source-replica";

fn user(name: &str) -> UserId {
    UserId::parse(name).unwrap()
}

fn doc(id: &str, rev: &str, generation: u64, payload: &[u8]) -> SourceDoc {
    SourceDoc::new(
        DocId::parse(id).unwrap(),
        Rev::parse(rev).unwrap(),
        Position::parse(generation, &format!("T-{generation}")).unwrap(),
        payload.to_vec().into(),
    )
}

fn skip_none() -> SkipChange {
    Arc::new(|_| false)
}

/// Every document after `after` up to `upto`, chunk by chunk.
async fn read_all(
    stores: &dyn UserDocStores,
    user: &UserId,
    after: u64,
    upto: u64,
    limits: BatchLimits,
) -> (Vec<DocFrame>, usize) {
    let mut cursor = after;
    let mut docs = Vec::new();
    let mut chunks = 0;
    loop {
        let chunk = stores
            .read_changes(user, cursor, upto, limits, skip_none())
            .await
            .unwrap();
        chunks += 1;
        assert!(chunks <= 1000, "read_changes never ends");
        assert!(
            chunk.docs.len() <= limits.docs.max(1),
            "chunk over the limit"
        );
        docs.extend(chunk.docs);
        match chunk.next {
            Some(next) => {
                assert!(next > cursor, "the cursor moves forward");
                cursor = next;
            }
            None => return (docs, chunks),
        }
    }
}

/// `create` makes a store once, `exists` sees it, other users have none, and
/// a user without a store is `DatabaseDoesNotExist` to the sync calls.
pub async fn create_and_exists(factory: &dyn Factory) {
    let stores = factory.fresh().await;
    let (alice, bob) = (user("alice"), user("bob"));
    assert!(!stores.exists(&alice).await.unwrap());
    assert!(stores.create(&alice).await.unwrap(), "created");
    assert!(stores.exists(&alice).await.unwrap());
    assert!(!stores.create(&alice).await.unwrap(), "already there");
    assert!(!stores.exists(&bob).await.unwrap());
    let missing = stores.sync_info(&bob, SOURCE).await;
    assert!(
        matches!(missing, Err(Error::DatabaseDoesNotExist)),
        "{missing:?}"
    );
    let missing = stores
        .apply_from_source(&bob, SOURCE, vec![doc("d", "s:1", 1, b"x")], None)
        .await;
    assert!(
        matches!(missing, Err(Error::DatabaseDoesNotExist)),
        "{missing:?}"
    );
    // An exchange may create the store (`ensure`).
    stores
        .begin_exchange(&bob, SOURCE, true, Position::origin())
        .await
        .unwrap();
    assert!(stores.exists(&bob).await.unwrap());
}

/// A recorded position reads back; the store's own replica uid is refused
/// as a source; an exchange must know a position the store had.
pub async fn positions_are_recorded_and_read(factory: &dyn Factory) {
    let stores = factory.fresh().await;
    let alice = user("alice");
    stores.create(&alice).await.unwrap();
    let info = stores.sync_info(&alice, SOURCE).await.unwrap();
    assert_eq!(info.source_replica_uid, SOURCE);
    assert_eq!(info.source_replica_generation, 0);
    assert_eq!(info.target_replica_generation, 0);
    assert!(!info.target_replica_uid.is_empty());
    stores
        .record_position(
            &alice,
            SOURCE,
            RecordSyncInfo {
                generation: 7,
                transaction_id: "T-7".to_owned(),
            },
            None,
        )
        .await
        .unwrap();
    let info = stores.sync_info(&alice, SOURCE).await.unwrap();
    assert_eq!(
        (
            info.source_replica_generation,
            info.source_transaction_id.as_str()
        ),
        (7, "T-7")
    );
    let other = stores.sync_info(&alice, "another-source").await.unwrap();
    assert_eq!(
        other.source_replica_generation, 0,
        "positions are per source"
    );
    let itself = stores
        .record_position(
            &alice,
            &info.target_replica_uid,
            RecordSyncInfo {
                generation: 1,
                transaction_id: "T-1".to_owned(),
            },
            None,
        )
        .await;
    assert!(
        matches!(itself, Err(Error::UserStore(StoreError::InvalidReplicaUid))),
        "{itself:?}"
    );
    let unknown = stores
        .begin_exchange(
            &alice,
            SOURCE,
            false,
            Position::parse(5, "T-never").unwrap(),
        )
        .await;
    assert!(
        unknown.is_err(),
        "a position the store never had: {unknown:?}"
    );
    stores
        .begin_exchange(&alice, SOURCE, false, Position::origin())
        .await
        .unwrap();
}

/// u1db's target rules: newer inserted, same converged, older or concurrent
/// left out (no conflict stored); the source's position moves with each batch
/// and `record_end` never moves it back.
pub async fn apply_follows_u1db_target_rules(factory: &dyn Factory) {
    let stores = factory.fresh().await;
    let alice = user("alice");
    stores.create(&alice).await.unwrap();
    let stores = stores.as_ref();

    let inserted = stores
        .apply_from_source(&alice, SOURCE, vec![doc("a", "s:1", 1, b"one")], None)
        .await
        .unwrap();
    assert_eq!(inserted.generations, (0, 1));
    assert!(inserted.converged.is_empty());

    let converged = stores
        .apply_from_source(&alice, SOURCE, vec![doc("a", "s:1", 2, b"one")], None)
        .await
        .unwrap();
    assert_eq!(converged.generations, (1, 1), "nothing written");
    assert_eq!(converged.converged, ["a"]);

    let superseded = stores
        .apply_from_source(&alice, SOURCE, vec![doc("a", "s:2", 3, b"two")], None)
        .await
        .unwrap();
    assert_eq!(superseded.generations, (1, 2));

    // Older, then concurrent (a conflict): both left out, nothing stored.
    let older = stores
        .apply_from_source(&alice, SOURCE, vec![doc("a", "s:1", 4, b"old")], None)
        .await
        .unwrap();
    assert_eq!(older.generations, (2, 2));
    let conflict = stores
        .apply_from_source(&alice, SOURCE, vec![doc("a", "other:1", 5, b"c")], None)
        .await
        .unwrap();
    assert_eq!(conflict.generations, (2, 2));

    let (docs, _) = read_all(stores, &alice, 0, 2, BatchLimits::DEFAULT).await;
    assert_eq!(docs.len(), 1);
    let a = docs.first().unwrap();
    assert_eq!((a.id.as_str(), a.rev.as_str()), ("a", "s:2"));
    assert_eq!(a.payload.as_ref(), b"two");
    assert_eq!(a.generation, 2);

    // The batches recorded the source's position of their last document.
    let info = stores.sync_info(&alice, SOURCE).await.unwrap();
    assert_eq!(info.source_replica_generation, 5);
    assert_eq!(info.target_replica_generation, 2);
    stores
        .record_end(
            &alice,
            SOURCE,
            ExchangeEnd {
                generation: 9,
                transaction_id: "T-9".to_owned(),
            },
            None,
        )
        .await
        .unwrap();
    stores
        .record_end(
            &alice,
            SOURCE,
            ExchangeEnd {
                generation: 3,
                transaction_id: "T-3".to_owned(),
            },
            None,
        )
        .await
        .unwrap();
    let info = stores.sync_info(&alice, SOURCE).await.unwrap();
    assert_eq!(
        (
            info.source_replica_generation,
            info.source_transaction_id.as_str()
        ),
        (9, "T-9"),
        "the end position never moves back"
    );
    let (uid, position) = stores.durable_position(&alice, SOURCE, None).await.unwrap();
    assert_eq!(uid, info.target_replica_uid);
    assert_eq!(position.generation(), 2);
}

/// Changes come back in generation order, each document once, in chunks
/// bounded by documents and by bytes, up to `upto`, without what `skip` names.
pub async fn changes_after_in_order_and_bounded(factory: &dyn Factory) {
    let stores = factory.fresh().await;
    let alice = user("alice");
    stores.create(&alice).await.unwrap();
    let stores = stores.as_ref();
    let batch: Vec<SourceDoc> = (1..=5)
        .map(|i| doc(&format!("d{i}"), "s:1", i, &[b'x'; 10]))
        .collect();
    stores
        .apply_from_source(&alice, SOURCE, batch, None)
        .await
        .unwrap();
    // d2 changes again: it moves to generation 6.
    stores
        .apply_from_source(&alice, SOURCE, vec![doc("d2", "s:2", 6, b"new")], None)
        .await
        .unwrap();

    let ids = stores.changes_after(&alice, 0, 100).await.unwrap();
    let listed: Vec<(&str, u64)> = ids
        .iter()
        .map(|c| (c.doc_id.as_str(), c.generation))
        .collect();
    assert_eq!(
        listed,
        [("d1", 1), ("d3", 3), ("d4", 4), ("d5", 5), ("d2", 6)]
    );
    let first_two = stores.changes_after(&alice, 0, 2).await.unwrap();
    assert_eq!(first_two.len(), 2, "bounded by the limit");
    let after_four = stores.changes_after(&alice, 4, 100).await.unwrap();
    assert_eq!(after_four.len(), 2);

    let by_docs = BatchLimits {
        docs: 2,
        bytes: 1 << 20,
    };
    let (docs, chunks) = read_all(stores, &alice, 0, 6, by_docs).await;
    let order: Vec<&str> = docs.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(order, ["d1", "d3", "d4", "d5", "d2"]);
    assert!(chunks >= 3, "{chunks} chunks of at most 2 changes");
    let by_bytes = BatchLimits {
        docs: 100,
        bytes: 1,
    };
    let (docs, chunks) = read_all(stores, &alice, 0, 6, by_bytes).await;
    assert_eq!(docs.len(), 5);
    assert!(chunks >= 5, "one document per chunk past the byte limit");

    let (upto_four, _) = read_all(stores, &alice, 0, 4, BatchLimits::DEFAULT).await;
    let order: Vec<&str> = upto_four.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(order, ["d1", "d3", "d4"], "nothing past upto");

    let skip: SkipChange = Arc::new(|change| change.doc_id == "d3");
    let chunk = stores
        .read_changes(&alice, 0, 6, BatchLimits::DEFAULT, skip)
        .await
        .unwrap();
    let order: Vec<&str> = chunk.docs.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(order, ["d1", "d4", "d5", "d2"]);
    assert_eq!(chunk.next, None);
}

/// A batch charges the quota what it stores (more than its payload: ids,
/// revisions and a per-document overhead); one that would pass the quota
/// stores nothing.
pub async fn quota_charged_by_stored_size(factory: &dyn Factory) {
    let stores = factory.fresh().await;
    let alice = user("alice");
    stores.create(&alice).await.unwrap();
    let stores = stores.as_ref();
    let ledger = Arc::new(QuotaLedger::new(1 << 20));
    let before = ledger.usage(&alice).await.unwrap().used_bytes;
    let payload = [7u8; 1000];
    stores
        .apply_from_source(
            &alice,
            SOURCE,
            vec![doc("a", "s:1", 1, &payload), doc("b", "s:1", 2, &payload)],
            Some(Arc::clone(&ledger)),
        )
        .await
        .unwrap();
    let charged = ledger.usage(&alice).await.unwrap().used_bytes - before;
    assert!(
        charged >= 2 * (1000 + DOC_ENTRY_OVERHEAD_BYTES),
        "charged {charged}"
    );

    let tight = Arc::new(QuotaLedger::new(1500));
    let refused = stores
        .apply_from_source(
            &alice,
            SOURCE,
            vec![doc("c", "s:1", 3, &[1u8; 4000])],
            Some(Arc::clone(&tight)),
        )
        .await;
    assert!(
        matches!(refused, Err(Error::Blob(BlobError::QuotaExceeded { .. }))),
        "{refused:?}"
    );
    let info = stores.sync_info(&alice, SOURCE).await.unwrap();
    assert_eq!(info.target_replica_generation, 2, "nothing of it stored");
    assert_eq!(info.source_replica_generation, 2, "position not moved");
}
