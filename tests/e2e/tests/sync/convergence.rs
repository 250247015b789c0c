//! Devices of one user converge on the same documents.

use serde_json::json;

use crate::util::{Env, snapshot};

#[tokio::test]
async fn two_devices_converge_on_creates_edits_and_deletes() {
    let env = Env::start().await;
    let a = env.device("a").await;
    let b = env.device("b").await;

    let keep = a
        .create_doc_from_json(r#"{"name":  "Ann", "tags": ["x"]}"#, Some("keep"))
        .await
        .unwrap();
    let mut edit = a.create_doc(&json!({"name": "Bob"}), None).await.unwrap();
    let mut gone = a
        .create_doc(&json!({"name": "Cid"}), Some("gone"))
        .await
        .unwrap();
    edit.set_value(&json!({"name": "Bo"})).unwrap();
    a.put_doc(&mut edit).await.unwrap();
    a.delete_doc(&mut gone).await.unwrap();

    let sent = a.sync().await.unwrap();
    assert_eq!(sent.sent, 3);
    let got = b.sync().await.unwrap();
    assert_eq!(got.received, 3);

    assert_eq!(snapshot(&a).await, snapshot(&b).await);
    let on_b = b.get_doc("keep", false).await.unwrap().unwrap();
    assert_eq!(on_b.rev, keep.rev);
    // Byte-exact JSON text survives the trip.
    assert_eq!(on_b.json(), Some(r#"{"name":  "Ann", "tags": ["x"]}"#));
    assert!(b.get_doc("gone", false).await.unwrap().is_none());
    assert!(
        b.get_doc("gone", true)
            .await
            .unwrap()
            .unwrap()
            .is_tombstone()
    );

    // Indexes on B answer for the synced documents.
    b.create_index("by-name", &["lower(name)"]).await.unwrap();
    let found = b.get_from_index("by-name", &["b*"]).await.unwrap();
    assert_eq!(
        found.iter().map(|d| d.doc_id.as_str()).collect::<Vec<_>>(),
        vec![edit.doc_id.as_str()]
    );

    // And back: B's edit reaches A.
    let mut on_b = b.get_doc("keep", false).await.unwrap().unwrap();
    on_b.set_value(&json!({"name": "Ann B."})).unwrap();
    b.put_doc(&mut on_b).await.unwrap();
    b.sync().await.unwrap();
    a.sync().await.unwrap();
    assert_eq!(
        a.get_doc("keep", false).await.unwrap().unwrap().rev,
        on_b.rev
    );
    assert_eq!(snapshot(&a).await, snapshot(&b).await);
}

#[tokio::test]
async fn a_resync_with_nothing_changed_writes_nothing_anywhere() {
    let env = Env::start().await;
    let a = env.device("a").await;
    let b = env.device("b").await;
    for i in 0..5 {
        a.create_doc(&json!({"i": i}), None).await.unwrap();
    }
    a.sync().await.unwrap();
    b.sync().await.unwrap();
    a.sync().await.unwrap();

    let gen_a = a.get_all_docs(true).await.unwrap().0;
    let gen_b = b.get_all_docs(true).await.unwrap().0;
    let files = env.files();
    let store = files.user_store_path(crate::util::UUID).unwrap();
    let server_before = std::fs::metadata(&store).unwrap().len();
    let gen_server = files.generation(crate::util::UUID).unwrap();

    let again_a = a.sync().await.unwrap();
    let again_b = b.sync().await.unwrap();
    assert_eq!((again_a.sent, again_a.received), (0, 0));
    assert_eq!((again_b.sent, again_b.received), (0, 0));
    assert_eq!(a.get_all_docs(true).await.unwrap().0, gen_a);
    assert_eq!(b.get_all_docs(true).await.unwrap().0, gen_b);
    assert_eq!(files.generation(crate::util::UUID).unwrap(), gen_server);
    assert_eq!(std::fs::metadata(&store).unwrap().len(), server_before);
}

#[tokio::test]
async fn many_documents_sync_in_batches_both_ways() {
    let env = Env::start().await;
    let a = env.device("a").await;
    let b = env.device("b").await;
    for i in 0..700 {
        a.create_doc(&json!({"i": i, "pad": "x".repeat(100)}), None)
            .await
            .unwrap();
    }
    assert_eq!(a.sync().await.unwrap().sent, 700);
    assert_eq!(b.sync().await.unwrap().received, 700);
    assert_eq!(snapshot(&a).await, snapshot(&b).await);
    let stats = b.sync_stats();
    assert!(!b.syncing());
    assert_eq!(
        (stats.received, stats.to_receive, stats.sent),
        (700, 700, 0),
        "{stats:?}"
    );
}

#[tokio::test]
async fn two_devices_syncing_at_the_same_time_converge() {
    let env = Env::start().await;
    let a = env.device("a").await;
    let b = env.device("b").await;
    a.sync().await.unwrap();
    b.sync().await.unwrap();
    for i in 0..300 {
        a.create_doc(&json!({"from": "a", "i": i}), Some(&format!("a-{i}")))
            .await
            .unwrap();
        b.create_doc(&json!({"from": "b", "i": i}), Some(&format!("b-{i}")))
            .await
            .unwrap();
    }
    a.create_doc(&json!({"v": "a"}), Some("both"))
        .await
        .unwrap();
    b.create_doc(&json!({"v": "b"}), Some("both"))
        .await
        .unwrap();
    let (ra, rb) = tokio::join!(a.sync(), b.sync());
    ra.unwrap();
    rb.unwrap();
    // Whatever the interleaving, two more rounds bring both to the same state.
    for _ in 0..2 {
        a.sync().await.unwrap();
        b.sync().await.unwrap();
    }
    let (sa, sb) = (snapshot(&a).await, snapshot(&b).await);
    assert_eq!(sa.len(), 601);
    assert_eq!(sa, sb);
    // The concurrent creations of "both" are a conflict on exactly one side's view
    // until resolved; both devices agree on the current revision.
    let conflicts = a.get_doc_conflicts("both").await.unwrap().len()
        + b.get_doc_conflicts("both").await.unwrap().len();
    assert!(
        conflicts >= 2,
        "the concurrent creation is reported as a conflict"
    );
}

/// Issue 16: a merge made while applying the download (u1db: equal contents give the
/// join of both revisions, incremented) leaves the device in the same sync, so the
/// device that syncs right after it already gets the merged revision.
#[tokio::test]
async fn issue16_a_merge_is_sent_in_the_sync_that_made_it() {
    let env = Env::start().await;
    let a = env.device("a").await;
    let b = env.device("b").await;
    let c = env.device("c").await;
    let mut on_c = c.create_doc(&json!({"v": 1}), Some("doc00")).await.unwrap();
    c.sync().await.unwrap();
    let on_b = b.create_doc(&json!({"v": 2}), Some("doc00")).await.unwrap();
    let first = b.sync().await.unwrap();
    assert_eq!(first.conflicts, 1, "{first:?}");
    on_c.set_value(&json!({"v": 2})).unwrap();
    c.put_doc(&mut on_c).await.unwrap();

    // One round: C sends v2; B merges its conflict (same content) and sends the
    // merge before returning; A, syncing after B, gets the merged revision.
    let rc = c.sync().await.unwrap();
    assert!(rc.converged, "{rc:?}");
    let rb = b.sync().await.unwrap();
    assert_eq!((rb.merged, rb.rounds, rb.sent), (1, 2, 1), "{rb:?}");
    assert!(rb.converged, "{rb:?}");
    let ra = a.sync().await.unwrap();
    assert!(ra.converged, "{ra:?}");
    let merged = b.get_doc("doc00", false).await.unwrap().unwrap();
    assert!(!merged.has_conflicts);
    assert_eq!(snapshot(&a).await, snapshot(&b).await);

    // Only C, which synced before the merge existed, has something left to get.
    let again: Vec<_> = [&c, &b, &a]
        .into_iter()
        .map(|d| async move { d.sync().await.unwrap() })
        .collect();
    let mut reports = Vec::new();
    for sync in again {
        reports.push(sync.await);
    }
    assert_eq!(
        (reports[0].received, reports[0].sent),
        (1, 0),
        "{reports:?}"
    );
    for r in &reports[1..] {
        assert_eq!((r.received, r.sent, r.merged), (0, 0, 0), "{reports:?}");
    }
    let state = snapshot(&a).await;
    assert_eq!(state, snapshot(&b).await);
    assert_eq!(state, snapshot(&c).await);
    assert_eq!(state[0].1.as_deref(), merged.rev.as_deref());
    // Nothing was lost: the merged revision dominates both writes.
    let final_rev = soledad_store::VectorClock::parse(merged.rev.as_deref().unwrap()).unwrap();
    for written in [&on_b.rev, &on_c.rev] {
        let w = soledad_store::VectorClock::parse(written.as_deref().unwrap()).unwrap();
        assert!(final_rev.is_newer(&w), "{final_rev} vs {w}");
    }

    // And from then on nobody receives or sends anything.
    for d in [&c, &b, &a] {
        let r = d.sync().await.unwrap();
        assert_eq!((r.received, r.sent, r.merged), (0, 0, 0), "{r:?}");
        assert!(r.converged, "{r:?}");
    }
}
