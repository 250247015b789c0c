//! A dishonest server: flipped bytes, swapped envelopes and forged revisions are
//! refused for the affected document only (everything else is applied) and reported
//! as `Error::Integrity`; a rolled-back revision is superseded by the newer one each
//! device holds (nothing lost, no alarm), as u1db does.

use serde_json::json;
use soledad_client::Error;

use soledad_server::testing::StoredDoc;

use crate::util::{Env, UUID, snapshot};

/// A creates `names` and syncs; returns the server-side (hidden) ids in the same order.
async fn seed(env: &Env, names: &[&str]) -> Vec<String> {
    let a = env.device("a").await;
    // One sync per document: the server applies a batch in its own order (by
    // hidden id), so only separate syncs fix the order of the server's log.
    for name in names {
        a.create_doc(&json!({"name": name}), Some(name))
            .await
            .unwrap();
        a.sync().await.unwrap();
    }
    // Ids appear in the server log in the order A synced them (one sync each:
    // the server applies a batch in id order).
    let hidden = env.files().doc_ids(UUID).unwrap();
    assert_eq!(hidden.len(), names.len());
    for (h, n) in hidden.iter().zip(names) {
        assert_ne!(h, n, "server must not see plaintext ids");
    }
    hidden
}

#[tokio::test]
async fn a_flipped_byte_is_refused_and_the_other_documents_arrive() {
    let env = Env::start().await;
    let hidden = seed(&env, &["one", "two", "three"]).await;
    env.files().flip_envelope_byte(UUID, &hidden[1]).unwrap();

    let b = env.device("b").await;
    let err = b.sync().await.unwrap_err();
    assert!(matches!(err, Error::Integrity { count: 1 }), "{err:?}");
    assert!(b.get_doc("one", false).await.unwrap().is_some());
    assert!(b.get_doc("three", false).await.unwrap().is_some());
    assert!(b.get_doc("two", true).await.unwrap().is_none());
}

#[tokio::test]
async fn swapped_envelopes_are_refused() {
    let env = Env::start().await;
    let hidden = seed(&env, &["left", "right", "other"]).await;
    // "left" now holds "right"'s envelope.
    env.files()
        .copy_envelope(UUID, &hidden[1], &hidden[0])
        .unwrap();
    let b = env.device("b").await;
    assert!(matches!(b.sync().await, Err(Error::Integrity { count: 1 })));
    assert!(b.get_doc("left", true).await.unwrap().is_none());
    assert_eq!(
        b.get_doc("right", false)
            .await
            .unwrap()
            .unwrap()
            .value()
            .unwrap(),
        Some(json!({"name": "right"}))
    );
    assert!(b.get_doc("other", false).await.unwrap().is_some());
}

#[tokio::test]
async fn a_forged_revision_is_refused() {
    let env = Env::start().await;
    let hidden = seed(&env, &["doc", "x"]).await;
    // The server claims a newer revision for an envelope sealed for the old one.
    let files = env.files();
    let stored = files.stored_doc(UUID, &hidden[0]).unwrap().unwrap();
    files
        .set_rev_in_place(UUID, &hidden[0], &format!("{}|zzzz:1", stored.rev))
        .unwrap();
    let b = env.device("b").await;
    assert!(matches!(b.sync().await, Err(Error::Integrity { count: 1 })));
    assert!(b.get_doc("doc", true).await.unwrap().is_none());
    assert!(b.get_doc("x", false).await.unwrap().is_some());
}

#[tokio::test]
async fn serving_an_older_revision_changes_nothing_and_the_newer_one_is_kept() {
    let env = Env::start().await;
    let hidden = seed(&env, &["doc", "y"]).await;
    let a = env.device("a").await;
    let b = env.device("b").await;
    b.sync().await.unwrap();
    let files = env.files();
    let old = files.stored_doc(UUID, &hidden[0]).unwrap().unwrap();

    let mut doc = a.get_doc("doc", false).await.unwrap().unwrap();
    doc.set_value(&json!({"name": "newer"})).unwrap();
    a.put_doc(&mut doc).await.unwrap();
    a.sync().await.unwrap();
    b.sync().await.unwrap();
    assert_eq!(b.get_doc("doc", false).await.unwrap().unwrap().rev, doc.rev);

    // Roll the document back to its first revision at a new server generation.
    files.republish(UUID, &hidden[0], &old).unwrap();

    // Each device already holds a revision that dominates the replayed one: the old
    // one is superseded (u1db), which loses nothing, so it is no integrity alarm.
    for device in [&a, &b] {
        let report = device.sync().await.unwrap();
        assert_eq!((report.received, report.superseded), (0, 1), "{report:?}");
        assert!(
            !device
                .get_doc("doc", false)
                .await
                .unwrap()
                .unwrap()
                .has_conflicts
        );
        let kept = device.get_doc("doc", false).await.unwrap().unwrap();
        assert_eq!(kept.rev, doc.rev);
        assert_eq!(kept.value().unwrap(), Some(json!({"name": "newer"})));
    }
    assert_eq!(snapshot(&a).await, snapshot(&b).await);
}

#[tokio::test]
async fn a_forged_revision_is_refused_even_when_the_device_has_a_newer_one() {
    // An envelope bound to another revision fails authentication before any
    // revision rule applies: an integrity failure, whatever the device holds.
    let env = Env::start().await;
    let hidden = seed(&env, &["doc", "x"]).await;
    let a = env.device("a").await;
    let mut doc = a.get_doc("doc", false).await.unwrap().unwrap();
    doc.set_value(&json!({"name": "newer"})).unwrap();
    a.put_doc(&mut doc).await.unwrap();
    a.sync().await.unwrap();
    // The current envelope, served at a new generation under a made-up revision.
    let files = env.files();
    let current = files.stored_doc(UUID, &hidden[0]).unwrap().unwrap();
    let forged = StoredDoc {
        rev: "aaaa:1".to_owned(),
        envelope: current.envelope,
    };
    files.republish(UUID, &hidden[0], &forged).unwrap();
    let err = a.sync().await.unwrap_err();
    assert!(matches!(err, Error::Integrity { count: 1 }), "{err:?}");
    let kept = a.get_doc("doc", false).await.unwrap().unwrap();
    assert_eq!(kept.rev, doc.rev);
}
