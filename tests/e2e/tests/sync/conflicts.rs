//! Concurrent edits become conflicts the application sees and resolves.

use serde_json::json;

use crate::util::{Env, snapshot};

#[tokio::test]
async fn concurrent_edits_conflict_and_a_resolution_reaches_every_device() {
    let env = Env::start().await;
    let a = env.device("a").await;
    let b = env.device("b").await;
    a.create_doc(&json!({"v": 0}), Some("doc")).await.unwrap();
    a.sync().await.unwrap();
    b.sync().await.unwrap();

    let mut on_a = a.get_doc("doc", false).await.unwrap().unwrap();
    on_a.set_value(&json!({"v": "a"})).unwrap();
    a.put_doc(&mut on_a).await.unwrap();
    let mut on_b = b.get_doc("doc", false).await.unwrap().unwrap();
    on_b.set_value(&json!({"v": "b"})).unwrap();
    b.put_doc(&mut on_b).await.unwrap();

    a.sync().await.unwrap();
    let report = b.sync().await.unwrap();
    assert_eq!(report.conflicts, 1);

    // B holds the server's (A's) version as current and its own as a conflict.
    let conflicts = b.get_doc_conflicts("doc").await.unwrap();
    assert_eq!(conflicts.len(), 2);
    let revs: Vec<soledad_client::Rev> = conflicts.iter().map(|d| d.rev.clone().unwrap()).collect();
    assert!(revs.contains(&on_a.rev.clone().unwrap()) && revs.contains(&on_b.rev.clone().unwrap()));
    let mut current = b.get_doc("doc", false).await.unwrap().unwrap();
    assert!(current.has_conflicts);
    // A put on a conflicted document is refused until it is resolved.
    assert!(matches!(
        b.put_doc(&mut current.clone()).await,
        Err(soledad_client::Error::Store(
            soledad_client::StoreError::ConflictedDoc
        ))
    ));

    current.set_value(&json!({"v": "merged"})).unwrap();
    b.resolve_doc(&mut current, &revs).await.unwrap();
    assert!(!current.has_conflicts);
    b.sync().await.unwrap();
    a.sync().await.unwrap();

    let on_a = a.get_doc("doc", false).await.unwrap().unwrap();
    assert!(!on_a.has_conflicts);
    assert_eq!(on_a.value().unwrap(), Some(json!({"v": "merged"})));
    assert!(a.get_doc_conflicts("doc").await.unwrap().is_empty());
    assert_eq!(snapshot(&a).await, snapshot(&b).await);
}

#[tokio::test]
async fn the_same_edit_on_two_devices_is_not_a_conflict() {
    let env = Env::start().await;
    let a = env.device("a").await;
    let b = env.device("b").await;
    a.create_doc(&json!({"v": 0}), Some("doc")).await.unwrap();
    a.sync().await.unwrap();
    b.sync().await.unwrap();
    for device in [&a, &b] {
        let mut doc = device.get_doc("doc", false).await.unwrap().unwrap();
        doc.set_value(&json!({"v": 1})).unwrap();
        device.put_doc(&mut doc).await.unwrap();
    }
    a.sync().await.unwrap();
    let report = b.sync().await.unwrap();
    assert_eq!(report.conflicts, 0);
    // B merged the equal contents into a revision that supersedes both; it travels
    // to A like any edit.
    b.sync().await.unwrap();
    a.sync().await.unwrap();
    for device in [&a, &b] {
        let doc = device.get_doc("doc", false).await.unwrap().unwrap();
        assert!(!doc.has_conflicts);
        assert_eq!(doc.value().unwrap(), Some(json!({"v": 1})));
    }
    assert_eq!(snapshot(&a).await, snapshot(&b).await);
}

#[tokio::test]
async fn three_devices_see_deletes_and_resolutions() {
    let env = Env::start().await;
    let a = env.device("a").await;
    let b = env.device("b").await;
    let c = env.device("c").await;
    a.create_doc(&json!({"k": "del"}), Some("del"))
        .await
        .unwrap();
    a.create_doc(&json!({"k": 0}), Some("fight")).await.unwrap();
    for d in [&a, &b, &c] {
        d.sync().await.unwrap();
    }
    // C deletes; A and B edit "fight" concurrently.
    let mut del = c.get_doc("del", false).await.unwrap().unwrap();
    c.delete_doc(&mut del).await.unwrap();
    for (d, v) in [(&a, "a"), (&b, "b")] {
        let mut doc = d.get_doc("fight", false).await.unwrap().unwrap();
        doc.set_value(&json!({"k": v})).unwrap();
        d.put_doc(&mut doc).await.unwrap();
    }
    for d in [&c, &a, &b] {
        d.sync().await.unwrap();
    }
    let conflicts = b.get_doc_conflicts("fight").await.unwrap();
    assert_eq!(conflicts.len(), 2);
    let mut winner = conflicts[0].clone();
    let revs: Vec<soledad_client::Rev> = conflicts.iter().map(|d| d.rev.clone().unwrap()).collect();
    b.resolve_doc(&mut winner, &revs).await.unwrap();
    for d in [&b, &a, &c, &a] {
        d.sync().await.unwrap();
    }
    for d in [&a, &b, &c] {
        assert!(d.get_doc("del", false).await.unwrap().is_none());
        let fight = d.get_doc("fight", false).await.unwrap().unwrap();
        assert!(!fight.has_conflicts);
        assert_eq!(fight.rev, winner.rev);
    }
    assert_eq!(snapshot(&a).await, snapshot(&b).await);
    assert_eq!(snapshot(&b).await, snapshot(&c).await);
}
