//! Document batches cut where a killed server would leave them (the
//! `test-hooks` cut points of the Garage document store): the next writer
//! finds a consistent store, with dense generations, every document once at
//! its latest revision, nothing acknowledged lost.

use std::sync::Arc;

use soledad_protocol::BatchLimits;
use soledad_server::blobs::UserId;
use soledad_server::garage::{CutBatch, GarageBackend, GarageUserDocStores};
use soledad_server::{SkipChange, SourceDoc, UserDocStores};
use soledad_store::{DocId, Position, Rev};

use crate::cluster;

const SOURCE: &str = "source-replica";

fn stores() -> GarageUserDocStores {
    GarageBackend::connect(cluster::config())
        .unwrap()
        .user_doc_stores()
}

fn doc(id: &str, rev: &str, position: u64, payload: &str) -> SourceDoc {
    SourceDoc::new(
        DocId::parse(id).unwrap(),
        Rev::parse(rev).unwrap(),
        Position::parse(position, &format!("T-{position}")).unwrap(),
        payload.as_bytes().to_vec().into(),
    )
}

/// `count` documents `d000`…, revision `s:rev`, payloads naming the revision.
fn docs(count: usize, rev: u32, first_position: u64) -> Vec<SourceDoc> {
    (0..count)
        .map(|i| {
            doc(
                &format!("d{i:03}"),
                &format!("s:{rev}"),
                first_position + i as u64,
                &format!("d{i:03} at {rev}"),
            )
        })
        .collect()
}

/// Every document the store sends from the origin: (id, rev, payload,
/// generation), checked to come in generation order.
async fn everything(
    stores: &GarageUserDocStores,
    user: &UserId,
) -> Vec<(String, String, String, u64)> {
    let (_, position) = stores.durable_position(user, SOURCE, None).await.unwrap();
    let limits = BatchLimits {
        docs: 7,
        bytes: 1 << 20,
    };
    let skip: SkipChange = Arc::new(|_| false);
    let mut cursor = 0;
    let mut out = Vec::new();
    for _ in 0..100 {
        let chunk = stores
            .read_changes(
                user,
                cursor,
                position.generation(),
                limits,
                Arc::clone(&skip),
            )
            .await
            .unwrap();
        for d in chunk.docs {
            out.push((
                d.id,
                d.rev,
                String::from_utf8(d.payload.to_vec()).unwrap(),
                d.generation,
            ));
        }
        match chunk.next {
            Some(next) => cursor = next,
            None => break,
        }
    }
    let generations: Vec<u64> = out.iter().map(|d| d.3).collect();
    let mut sorted = generations.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(generations, sorted, "in generation order, each once");
    let ids = stores.changes_after(user, 0, 10_000).await.unwrap();
    assert_eq!(
        ids.len(),
        out.len(),
        "changes_after lists what read_changes sends"
    );
    out
}

async fn fresh(name: &str) -> (GarageUserDocStores, UserId) {
    let stores = stores();
    let user = UserId::parse(name).unwrap();
    stores.create(&user).await.unwrap();
    (stores, user)
}

/// A batch cut in its first round (entries and bodies stored in part, out
/// of order): the next batch adopts the versions complete from the start,
/// drops the rest, and numbers its own right after them.
pub async fn cut_in_versions_keeps_the_complete_prefix(name: &str) {
    let (stores, user) = fresh(name).await;
    stores
        .apply_from_source(&user, SOURCE, docs(3, 1, 1), None)
        .await
        .unwrap();
    // 10 new documents: entries of 8 stored, bodies of 5.
    let batch: Vec<SourceDoc> = (0..10)
        .map(|i| doc(&format!("n{i:02}"), "s:1", 4 + i, &format!("n{i:02}")))
        .collect();
    let cut = stores
        .apply_cut(
            &user,
            SOURCE,
            batch.clone(),
            CutBatch::InVersions {
                entries: 8,
                bodies: 5,
            },
        )
        .await;
    assert!(cut.is_err());
    let info = stores.sync_info(&user, SOURCE).await.unwrap();
    assert_eq!(
        info.target_replica_generation, 3,
        "readers see nothing past head"
    );
    assert_eq!(
        info.source_replica_generation, 3,
        "the source's position did not move"
    );
    assert_eq!(everything(&stores, &user).await.len(), 3);

    // The source sends the batch again (its position did not move).
    let applied = stores
        .apply_from_source(&user, SOURCE, batch, None)
        .await
        .unwrap();
    assert_eq!(applied.generations, (8, 13), "5 adopted, then the 5 others");
    assert_eq!(applied.converged.len(), 5, "the adopted ones converge");
    let all = everything(&stores, &user).await;
    assert_eq!(all.len(), 13, "every document once: {all:?}");
    let generations: Vec<u64> = all.iter().map(|d| d.3).collect();
    assert_eq!(generations, (1..=13).collect::<Vec<_>>(), "dense");
    for (id, _, payload, _) in &all {
        assert_eq!(id, payload.split(' ').next().unwrap(), "each body its own");
    }
}

/// A batch cut after its versions and pointers, before `head`: it was
/// complete, the next writer adopts it whole.
pub async fn cut_before_head_is_adopted_whole(name: &str) {
    let (stores, user) = fresh(name).await;
    stores
        .apply_from_source(&user, SOURCE, docs(4, 1, 1), None)
        .await
        .unwrap();
    // Two updates and two new documents.
    let mut batch = docs(2, 2, 5);
    batch.push(doc("e000", "s:1", 7, "e000 at 1"));
    batch.push(doc("e001", "s:1", 8, "e001 at 1"));
    assert!(
        stores
            .apply_cut(&user, SOURCE, batch, CutBatch::BeforeHead)
            .await
            .is_err()
    );
    assert_eq!(everything(&stores, &user).await.len(), 4, "not visible yet");
    let applied = stores
        .apply_from_source(
            &user,
            SOURCE,
            vec![doc("f000", "s:1", 9, "f000 at 1")],
            None,
        )
        .await
        .unwrap();
    assert_eq!(applied.generations, (8, 9), "the cut batch took 5..=8");
    let all = everything(&stores, &user).await;
    let seen: Vec<(&str, &str, u64)> = all
        .iter()
        .map(|(id, rev, _, g)| (id.as_str(), rev.as_str(), *g))
        .collect();
    assert_eq!(
        seen,
        [
            ("d002", "s:1", 3),
            ("d003", "s:1", 4),
            ("d000", "s:2", 5),
            ("d001", "s:2", 6),
            ("e000", "s:1", 7),
            ("e001", "s:1", 8),
            ("f000", "s:1", 9),
        ],
        "the superseded versions are gone, each document once"
    );
    let info = stores.sync_info(&user, SOURCE).await.unwrap();
    assert_eq!(info.source_replica_generation, 9);
}

/// A batch cut after `head`, before deleting what it superseded: readers
/// still see each document once, and the next writer deletes the rest.
pub async fn cut_before_deletes_leaves_no_duplicate(name: &str) {
    let (stores, user) = fresh(name).await;
    stores
        .apply_from_source(&user, SOURCE, docs(5, 1, 1), None)
        .await
        .unwrap();
    assert!(
        stores
            .apply_cut(&user, SOURCE, docs(5, 2, 6), CutBatch::BeforeDeletes)
            .await
            .is_err()
    );
    let all = everything(&stores, &user).await;
    assert_eq!(all.len(), 5, "each document once: {all:?}");
    assert!(all.iter().all(|d| d.1 == "s:2" && d.2.ends_with("at 2")));
    // The cut batch is committed: its documents converge.
    let again = stores
        .apply_from_source(&user, SOURCE, docs(5, 2, 11), None)
        .await
        .unwrap();
    assert_eq!(again.generations, (10, 10));
    assert_eq!(again.converged.len(), 5);
    // From the middle: only what changed after.
    let after = stores.changes_after(&user, 7, 100).await.unwrap();
    assert_eq!(after.len(), 3);
}

/// Batches of many documents, several updated in later batches, read back in
/// small chunks: every document once at its latest revision, in order.
pub async fn many_batches_read_back_in_order(name: &str) {
    let (stores, user) = fresh(name).await;
    let mut position = 1;
    for rev in 1..=3u32 {
        // Rev 1: 300 documents; then every third one, then every fifth one.
        let step = [1, 3, 5][rev as usize - 1];
        let batch: Vec<SourceDoc> = (0..300)
            .step_by(step)
            .map(|i| {
                position += 1;
                doc(
                    &format!("m{i:03}"),
                    &format!("s:{rev}"),
                    position,
                    &format!("m{i:03} at {rev}"),
                )
            })
            .collect();
        stores
            .apply_from_source(&user, SOURCE, batch, None)
            .await
            .unwrap();
    }
    let all = everything(&stores, &user).await;
    assert_eq!(all.len(), 300);
    for (id, rev, payload, _) in &all {
        let i: usize = id[1..].parse().unwrap();
        let latest = if i.is_multiple_of(5) {
            3
        } else if i.is_multiple_of(3) {
            2
        } else {
            1
        };
        assert_eq!(rev, &format!("s:{latest}"), "{id}");
        assert_eq!(payload, &format!("{id} at {latest}"));
    }
    let (_, position) = stores.durable_position(&user, SOURCE, None).await.unwrap();
    assert_eq!(position.generation(), 300 + 100 + 60, "dense");
}

/// Two servers (their own indexes of the current documents) write one store
/// in turn, and a third starts cold: each decides against what the others
/// wrote (a revision another server stored converges, it is not stored
/// twice), and generations stay dense.
pub async fn servers_writing_in_turn_see_each_others_documents(name: &str) {
    let config = cluster::config();
    let connect = || {
        GarageBackend::connect(config.clone())
            .unwrap()
            .user_doc_stores()
    };
    let (a, b) = (connect(), connect());
    let user = UserId::parse(name).unwrap();
    a.create(&user).await.unwrap();
    let first = a
        .apply_from_source(&user, SOURCE, docs(5, 1, 1), None)
        .await
        .unwrap();
    assert_eq!(first.generations, (0, 5));
    // B updates two documents and adds one.
    let mut batch = docs(2, 2, 6);
    batch.push(doc("x000", "s:1", 8, "x000 at 1"));
    let second = b
        .apply_from_source(&user, SOURCE, batch, None)
        .await
        .unwrap();
    assert_eq!(second.generations, (5, 8));
    // A gets B's revisions again: they converge; an older one is left out.
    let third = a
        .apply_from_source(
            &user,
            SOURCE,
            vec![
                doc("d000", "s:2", 9, "d000 at 2"),
                doc("x000", "s:1", 10, "x000 at 1"),
                doc("d001", "s:1", 11, "d001 at 1"),
            ],
            None,
        )
        .await
        .unwrap();
    assert_eq!(third.generations, (8, 8), "nothing stored twice");
    assert_eq!(third.converged.len(), 2);
    // A third server, starting with no index, updates one of B's.
    let c = connect();
    let fourth = c
        .apply_from_source(
            &user,
            SOURCE,
            vec![doc("d001", "s:3", 12, "d001 at 3")],
            None,
        )
        .await
        .unwrap();
    assert_eq!(fourth.generations, (8, 9));
    let fifth = a
        .apply_from_source(
            &user,
            SOURCE,
            vec![doc("d001", "s:3", 13, "d001 at 3")],
            None,
        )
        .await
        .unwrap();
    assert_eq!(fifth.generations, (9, 9), "A saw C's revision");
    let all = everything(&a, &user).await;
    let seen: Vec<(&str, &str, u64)> = all
        .iter()
        .map(|(id, rev, _, g)| (id.as_str(), rev.as_str(), *g))
        .collect();
    assert_eq!(
        seen,
        [
            ("d002", "s:1", 3),
            ("d003", "s:1", 4),
            ("d004", "s:1", 5),
            ("d000", "s:2", 6),
            ("x000", "s:1", 8),
            ("d001", "s:3", 9),
        ]
    );
}

macro_rules! cut_tests {
    ($($case:ident),* $(,)?) => {$(
        #[test]
        fn $case() {
            if !cluster::requested() {
                return;
            }
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(super::$case(stringify!($case)));
        }
    )*};
}

mod garage_cut {
    use super::cluster;
    cut_tests!(
        cut_in_versions_keeps_the_complete_prefix,
        cut_before_head_is_adopted_whole,
        cut_before_deletes_leaves_no_duplicate,
        many_batches_read_back_in_order,
        servers_writing_in_turn_see_each_others_documents,
    );
}
