//! The server's opaque store: payload bytes, no content comparison, conflicts
//! never stored when `save_conflict` is false.

use crate::util::{id, rev};
use crate::util::{pos, src, uid};
use soledad_store::SaveConflict;
use soledad_store::{Document, OpaqueDatabase, OpenOptions, PutState, StoreError, StoredSize};

fn server() -> OpaqueDatabase {
    OpenOptions::new()
        .replica_uid("server")
        .open_in_memory()
        .unwrap()
}

fn env(doc_id: &str, rev: &str, bytes: Option<&[u8]>) -> Document<Vec<u8>> {
    Document::new(id(doc_id), Some(self::rev(rev)), bytes.map(<[u8]>::to_vec))
}

#[test]
fn stores_bytes_byte_exact() {
    let mut db = server();
    let payload: Vec<u8> = (0..=255u8).chain([0, 0, 0xFF]).collect();
    let mut d = env("aGlkZGVuLWlk", "client:1", Some(&payload));
    let (state, generation) = db
        .put_doc_if_newer(&mut d, SaveConflict::No, Some(&src("client", 1, "T-a")))
        .unwrap();
    assert_eq!((state, generation), (PutState::Inserted, 1));
    let read = db.get_doc(&id("aGlkZGVuLWlk"), false).unwrap().unwrap();
    assert_eq!(read.content.as_deref(), Some(payload.as_slice()));
    let created = db.create_doc_with_content(vec![1, 2, 3], None).unwrap();
    assert!(created.doc_id.starts_with("D-"));
    let changed = db.docs_changed_since(0, 10).unwrap();
    assert_eq!(changed.len(), 2);
    assert_eq!(changed[0].doc.content.as_deref(), Some(payload.as_slice()));
}

#[test]
fn concurrent_equal_bytes_are_not_merged_and_not_stored() {
    let mut db = server();
    let mut first = env("id", "a:1", Some(b"ciphertext"));
    db.put_doc_if_newer(&mut first, SaveConflict::No, Some(&src("a", 1, "T-1")))
        .unwrap();
    // Same bytes, concurrent rev: no content comparison, so a conflict,
    // reported and not stored; the document is untouched.
    let mut other = env("id", "b:1", Some(b"ciphertext"));
    let (state, generation) = db
        .put_doc_if_newer(&mut other, SaveConflict::No, Some(&src("b", 1, "T-2")))
        .unwrap();
    assert_eq!((state, generation), (PutState::Conflicted, 1));
    assert_eq!(
        other.rev.as_deref(),
        Some("b:1"),
        "the rev is never rewritten"
    );
    let read = db.get_doc(&id("id"), false).unwrap().unwrap();
    assert_eq!(read.rev.as_deref(), Some("a:1"));
    assert!(!read.has_conflicts);
    assert!(db.get_doc_conflicts(&id("id")).unwrap().is_empty());
    assert_eq!(
        db.get_replica_gen_and_trans_id(&uid("b")).unwrap(),
        pos(1, "T-2")
    );
    // Concurrent tombstones are not merged either.
    let mut del_a = env("gone", "a:2", None);
    db.put_doc_if_newer(&mut del_a, SaveConflict::No, Some(&src("a", 2, "T-3")))
        .unwrap();
    let mut del_b = env("gone", "b:2", None);
    assert_eq!(
        db.put_doc_if_newer(&mut del_b, SaveConflict::No, Some(&src("b", 2, "T-4")))
            .unwrap()
            .0,
        PutState::Conflicted
    );
}

#[test]
fn newer_older_and_same_revisions() {
    let mut db = server();
    let mut v1 = env("id", "a:1", Some(b"one"));
    db.put_doc_if_newer(&mut v1, SaveConflict::No, Some(&src("a", 1, "T-1")))
        .unwrap();
    let mut v2 = env("id", "a:2|b:1", Some(b"two"));
    assert_eq!(
        db.put_doc_if_newer(&mut v2, SaveConflict::No, Some(&src("b", 1, "T-b1")))
            .unwrap()
            .0,
        PutState::Inserted
    );
    let mut old = env("id", "a:1", Some(b"one"));
    assert_eq!(
        db.put_doc_if_newer(&mut old, SaveConflict::No, Some(&src("a", 2, "T-2")))
            .unwrap()
            .0,
        PutState::Superseded
    );
    let mut same = env("id", "a:2|b:1", Some(b"two"));
    assert_eq!(
        db.put_doc_if_newer(&mut same, SaveConflict::No, Some(&src("a", 3, "T-3")))
            .unwrap()
            .0,
        PutState::Converged
    );
    assert_eq!(
        db.get_doc(&id("id"), false)
            .unwrap()
            .unwrap()
            .content
            .as_deref(),
        Some(&b"two"[..])
    );
    // an old source generation is refused
    let mut late = env("id", "a:9|b:1", Some(b"late"));
    assert!(matches!(
        db.put_doc_if_newer(&mut late, SaveConflict::No, Some(&src("a", 2, "T-2"))),
        Err(StoreError::InvalidGeneration)
    ));
    assert!(matches!(
        db.put_doc_if_newer(&mut late, SaveConflict::No, Some(&src("a", 3, "T-other"))),
        Err(StoreError::InvalidTransactionId)
    ));
    assert_eq!(
        db.get_doc(&id("id"), false)
            .unwrap()
            .unwrap()
            .rev
            .as_deref(),
        Some("a:2|b:1")
    );
}

#[test]
fn opaque_batch_applies_a_sync_upload_atomically() {
    let mut db = server();
    db.batch(|b| {
        for i in 1..=5u64 {
            let mut d = env(&format!("doc{i}"), &format!("c:{i}"), Some(&[i as u8; 16]));
            b.put_doc_if_newer(
                &mut d,
                SaveConflict::No,
                Some(&src("c", i, &format!("T-{i}"))),
            )?;
        }
        Ok::<(), StoreError>(())
    })
    .unwrap();
    assert_eq!(db.whats_changed(0).unwrap().changes.len(), 5);
    assert_eq!(
        db.get_replica_gen_and_trans_id(&uid("c")).unwrap(),
        pos(5, "T-5")
    );
    let failed = db.batch(|b| {
        let mut d = env("doc6", "c:6", Some(b"x"));
        b.put_doc_if_newer(&mut d, SaveConflict::No, Some(&src("c", 6, "T-6")))?;
        let mut bad = env("doc7", "c:7", Some(b"x"));
        b.put_doc_if_newer(&mut bad, SaveConflict::No, Some(&src("c", 2, "T-2")))?; // older generation
        Ok::<(), StoreError>(())
    });
    assert!(matches!(failed, Err(StoreError::InvalidGeneration)));
    assert_eq!(db.get_doc(&id("doc6"), true).unwrap(), None);
    assert_eq!(
        db.get_replica_gen_and_trans_id(&uid("c")).unwrap(),
        pos(5, "T-5")
    );
}

#[test]
fn stored_size_follows_what_is_stored_and_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("server.db");
    let mut db: OpaqueDatabase = OpenOptions::new()
        .replica_uid("server")
        .durable_commits(true)
        .open_unencrypted(&path)
        .unwrap();
    assert_eq!(db.stored_size().unwrap(), StoredSize::default());

    let mut big = env("doc", "c:1", Some(&[1; 10_000]));
    db.put_doc_if_newer(&mut big, SaveConflict::No, Some(&src("c", 1, "T-1")))
        .unwrap();
    let one = db.stored_size().unwrap();
    assert_eq!(one.entries, 1);
    assert!(one.bytes >= 10_000, "{one:?}");

    // A newer, smaller revision replaces the old one: the old bytes are gone.
    let mut small = env("doc", "c:2", Some(&[2; 100]));
    db.put_doc_if_newer(&mut small, SaveConflict::No, Some(&src("c", 2, "T-2")))
        .unwrap();
    let replaced = db.stored_size().unwrap();
    assert_eq!(replaced.entries, 1);
    assert!(replaced.bytes < 1_000, "{replaced:?}");

    // An older revision is not stored and changes nothing but the sync log.
    let mut stale = env("doc", "c:1", Some(&[3; 50_000]));
    let (state, _) = db
        .put_doc_if_newer(&mut stale, SaveConflict::No, Some(&src("c", 3, "T-3")))
        .unwrap();
    assert_eq!(state, PutState::Superseded);
    assert!(db.stored_size().unwrap().bytes < 1_000);

    // Measured in a batch, before and after.
    let (before, after) = db
        .batch(|batch| {
            let before = batch.stored_size()?;
            let mut other = env("other", "c:1", Some(&[4; 500]));
            batch.put_doc_if_newer(&mut other, SaveConflict::No, Some(&src("c", 4, "T-4")))?;
            Ok::<_, StoreError>((before, batch.stored_size()?))
        })
        .unwrap();
    assert_eq!(after.entries, before.entries + 1);
    assert!(after.bytes >= before.bytes + 500);

    let size = db.stored_size().unwrap();
    db.close().unwrap();
    let reopened: OpaqueDatabase = OpenOptions::new().open_unencrypted(&path).unwrap();
    assert_eq!(reopened.stored_size().unwrap(), size);
}

#[test]
fn durable_generation_follows_durable_commits_that_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let mut db: OpaqueDatabase = OpenOptions::new()
        .open_unencrypted(dir.path().join("server.db"))
        .unwrap();
    db.create_doc_with_content(vec![1], Some(&id("a"))).unwrap();
    assert_eq!(
        db.durable_generation(),
        0,
        "ordered commits are not durable"
    );
    db.set_durable_commits(true).unwrap();
    // A durable transaction that writes nothing syncs nothing.
    db.batch(|batch| batch.get_generation_info()).unwrap();
    assert_eq!(db.durable_generation(), 0);
    db.set_replica_gen_and_trans_id(&src("other", 1, "T-1"))
        .unwrap();
    assert_eq!(
        db.durable_generation(),
        1,
        "a durable write syncs everything before"
    );
    db.set_durable_commits(false).unwrap();
    db.create_doc_with_content(vec![2], Some(&id("b"))).unwrap();
    assert_eq!(db.durable_generation(), 1);

    let durable: OpaqueDatabase = OpenOptions::new()
        .durable_commits(true)
        .open_unencrypted(dir.path().join("durable.db"))
        .unwrap();
    assert_eq!(durable.durable_generation(), 0);
}

/// The reader a sync response uses finds each document at its latest
/// change, and nothing at a superseded or unknown generation.
#[test]
fn a_doc_reader_reads_documents_at_their_latest_generation() {
    let mut db = server();
    let mut a = env("a", "client:1", Some(b"first"));
    db.put_doc_if_newer(&mut a, SaveConflict::No, None).unwrap();
    let mut b = env("b", "client:1", Some(b"other"));
    db.put_doc_if_newer(&mut b, SaveConflict::No, None).unwrap();
    let mut a2 = env("a", "client:2", Some(b"second"));
    db.put_doc_if_newer(&mut a2, SaveConflict::No, None)
        .unwrap();
    let reader = db.doc_reader();
    assert!(
        reader.get_doc_at_generation(1).unwrap().is_none(),
        "superseded"
    );
    let b_read = reader.get_doc_at_generation(2).unwrap().unwrap();
    assert_eq!(
        (b_read.doc_id.as_str(), b_read.content.as_deref()),
        ("b", Some(&b"other"[..]))
    );
    let a_read = reader.get_doc_at_generation(3).unwrap().unwrap();
    assert_eq!(a_read.rev.as_deref(), Some("client:2"));
    assert_eq!(a_read.content.as_deref(), Some(&b"second"[..]));
    assert!(reader.get_doc_at_generation(4).unwrap().is_none());
    assert_eq!(
        reader.get_doc_at_generation(2).unwrap(),
        db.get_doc_at_generation(2).unwrap()
    );
}
