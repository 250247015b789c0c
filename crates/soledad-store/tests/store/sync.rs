//! Sync primitives: whats_changed, generation validation, sync log and
//! put_doc_if_newer (u1db LocalDatabaseTests / test_sync).

use crate::util::{parts, pos, src, uid};
use serde_json::json;
use soledad_store::SaveConflict;
use soledad_store::{PutState, StoreError, VectorClock};

use crate::util::id;
use crate::util::{NESTED, SIMPLE, db, db_named, doc, sync, value_of};

#[test]
fn whats_changed_initial_database() {
    let db = db();
    let changes = db.whats_changed(0).unwrap();
    assert_eq!(
        (changes.generation, changes.transaction_id.as_str()),
        (0, "")
    );
    assert!(changes.changes.is_empty());
}

#[test]
fn whats_changed_returns_one_id_for_multiple_changes() {
    let mut db = db();
    let mut d = db.create_doc_from_json(SIMPLE, Some(&id("d"))).unwrap();
    d.set_json("{\"new\": \"contents\"}").unwrap();
    db.put_doc(&mut d).unwrap();
    let changes = db.whats_changed(0).unwrap();
    assert_eq!(changes.generation, 2);
    assert_eq!(changes.changes.len(), 1);
    assert_eq!(changes.changes[0].doc_id, "d");
    assert_eq!(changes.changes[0].generation, 2);
    assert_eq!(changes.changes[0].transaction_id, changes.transaction_id);
    let changes = db.whats_changed(2).unwrap();
    assert_eq!(changes.generation, 2);
    assert!(changes.changes.is_empty());
}

#[test]
fn whats_changed_returns_last_edits_ascending() {
    let mut db = db();
    let mut a = db.create_doc_from_json(SIMPLE, Some(&id("a"))).unwrap();
    db.create_doc_from_json(SIMPLE, Some(&id("b"))).unwrap();
    a.set_json(NESTED).unwrap();
    db.put_doc(&mut a).unwrap();
    let changes = db.whats_changed(0).unwrap();
    assert_eq!(changes.generation, 3);
    let got: Vec<(&str, u64)> = changes
        .changes
        .iter()
        .map(|c| (c.doc_id.as_str(), c.generation))
        .collect();
    assert_eq!(got, [("b", 2), ("a", 3)]);
    assert_eq!(
        changes.changes[0].transaction_id,
        db.get_trans_id_for_gen(2).unwrap()
    );
    assert_eq!(
        changes.changes[1].transaction_id,
        db.get_trans_id_for_gen(3).unwrap()
    );
}

#[test]
fn whats_changed_doesnt_include_old_gen() {
    let mut db = db();
    db.create_doc_from_json(SIMPLE, None).unwrap();
    db.create_doc_from_json(SIMPLE, None).unwrap();
    let c = db.create_doc_from_json(SIMPLE, None).unwrap();
    let (generation, last) = parts(db.get_generation_info().unwrap());
    let changes = db.whats_changed(2).unwrap();
    assert_eq!(
        (changes.generation, changes.transaction_id.clone()),
        (generation, last.clone())
    );
    assert_eq!(changes.changes.len(), 1);
    assert_eq!(
        (
            changes.changes[0].doc_id.as_str(),
            changes.changes[0].generation,
            changes.changes[0].transaction_id.as_str()
        ),
        (c.doc_id.as_str(), 3, last.as_str())
    );
    // A generation beyond ours yields nothing (and no error).
    assert!(db.whats_changed(99).unwrap().changes.is_empty());
}

#[test]
fn docs_changed_since_in_generation_order_with_limit() {
    let mut db = db();
    let mut a = db.create_doc_from_json(SIMPLE, Some(&id("a"))).unwrap();
    db.create_doc_from_json(SIMPLE, Some(&id("b"))).unwrap();
    db.create_doc_from_json(SIMPLE, Some(&id("c"))).unwrap();
    db.delete_doc(&mut a).unwrap();
    let all = db.docs_changed_since(0, 100).unwrap();
    let got: Vec<(&str, u64)> = all
        .iter()
        .map(|c| (c.doc.doc_id.as_str(), c.generation))
        .collect();
    assert_eq!(got, [("b", 2), ("c", 3), ("a", 4)]);
    assert!(all[2].doc.is_tombstone());
    assert_eq!(all[2].transaction_id, db.get_trans_id_for_gen(4).unwrap());
    let first = db.docs_changed_since(0, 2).unwrap();
    assert_eq!(first.len(), 2);
    let rest = db.docs_changed_since(first[1].generation, 2).unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].doc.doc_id, "a");
}

#[test]
fn validate_gen_and_trans_id() {
    let mut db = db();
    db.create_doc_from_json(SIMPLE, None).unwrap();
    let (generation, trans_id) = parts(db.get_generation_info().unwrap());
    db.validate_gen_and_trans_id(&pos(generation, &trans_id))
        .unwrap();
    db.validate_gen_and_trans_id(&pos(0, "")).unwrap();
    assert!(matches!(
        db.validate_gen_and_trans_id(&pos(generation, "wrong")),
        Err(StoreError::InvalidTransactionId)
    ));
    assert!(matches!(
        db.validate_gen_and_trans_id(&pos(generation + 1, &trans_id)),
        Err(StoreError::InvalidGeneration)
    ));
    assert!(matches!(
        soledad_store::Position::parse(u64::MAX, "x"),
        Err(StoreError::InvalidGeneration)
    ));
}

#[test]
fn replica_gen_and_trans_id_roundtrip() {
    let mut db = db();
    assert_eq!(
        db.get_replica_gen_and_trans_id(&uid("other")).unwrap(),
        soledad_store::Position::origin()
    );
    db.set_replica_gen_and_trans_id(&src("other", 2, "T-transaction"))
        .unwrap();
    assert_eq!(
        db.get_replica_gen_and_trans_id(&uid("other")).unwrap(),
        pos(2, "T-transaction")
    );
    db.set_replica_gen_and_trans_id(&src("other", 3, "T-3"))
        .unwrap();
    assert_eq!(
        db.get_replica_gen_and_trans_id(&uid("other")).unwrap(),
        pos(3, "T-3")
    );
    assert!(matches!(
        soledad_store::ReplicaUid::parse("bad uid"),
        Err(StoreError::InvalidReplicaUid)
    ));
    assert!(matches!(
        soledad_store::Position::parse(u64::MAX, "T"),
        Err(StoreError::InvalidGeneration)
    ));
    assert!(matches!(
        soledad_store::Position::parse(1, &"x".repeat(1000)),
        Err(StoreError::InvalidTransactionId)
    ));
    // Setting sync info does not create a transaction.
    assert_eq!(db.get_generation_info().unwrap().generation(), 0);
}

#[test]
fn put_doc_if_newer_new_document() {
    let mut db = db();
    let mut d = doc("doc-id", "other:1", Some(SIMPLE));
    let result = db
        .put_doc_if_newer(&mut d, SaveConflict::No, Some(&src("r", 1, "foo")))
        .unwrap();
    assert_eq!(result, (PutState::Inserted, 1));
    let read = db.get_doc(&id("doc-id"), false).unwrap().unwrap();
    assert_eq!(read.rev.as_deref(), Some("other:1"));
    assert_eq!(read.json(), Some(SIMPLE));
    assert!(!read.has_conflicts);
    assert_eq!(
        db.get_replica_gen_and_trans_id(&uid("r")).unwrap(),
        pos(1, "foo")
    );
}

#[test]
fn put_doc_if_newer_already_superseded() {
    let mut db = db();
    let orig = "{\"new\": \"doc\"}";
    let mut d = db.create_doc_from_json(orig, Some(&id("d"))).unwrap();
    let rev1 = d.rev.clone().unwrap();
    d.set_json(SIMPLE).unwrap();
    db.put_doc(&mut d).unwrap();
    let mut old = doc("d", &rev1, Some(orig));
    let (state, _) = db
        .put_doc_if_newer(&mut old, SaveConflict::No, Some(&src("r", 1, "foo")))
        .unwrap();
    assert_eq!(state, PutState::Superseded);
    let read = db.get_doc(&id("d"), false).unwrap().unwrap();
    assert_eq!(
        (read.rev.as_deref(), read.json()),
        (Some("test:2"), Some(SIMPLE))
    );
}

#[test]
fn put_doc_if_newer_autoresolve_equal_content() {
    let mut db = db();
    let d = db.create_doc_from_json(SIMPLE, Some(&id("d"))).unwrap();
    let rev = VectorClock::parse(d.rev.as_deref().unwrap()).unwrap();
    // Same content, written differently, concurrent revision.
    let mut incoming = doc("d", "whatever:1", Some("{\"key\":\"value\"}"));
    let (state, generation) = db
        .put_doc_if_newer(&mut incoming, SaveConflict::No, Some(&src("r", 1, "foo")))
        .unwrap();
    assert_eq!(state, PutState::Superseded);
    assert_eq!(generation, 2);
    let stored = db.get_doc(&id("d"), false).unwrap().unwrap();
    assert_eq!(
        stored.rev.as_deref(),
        Some("test:2|whatever:1"),
        "join, incremented"
    );
    assert_eq!(
        incoming.rev, stored.rev,
        "the caller's doc carries the merged rev"
    );
    let merged = VectorClock::parse(stored.rev.as_deref().unwrap()).unwrap();
    assert!(merged.is_newer(&rev));
    assert!(merged.is_newer(&VectorClock::parse("whatever:1").unwrap()));
    assert!(!stored.has_conflicts);
    assert_eq!(db.get_doc_conflicts(&id("d")).unwrap(), vec![]);
}

#[test]
fn put_doc_if_newer_already_converged() {
    let mut db = db();
    let mut d = db
        .create_doc_from_json("{\"new\": \"doc\"}", Some(&id("d")))
        .unwrap();
    let result = db
        .put_doc_if_newer(&mut d, SaveConflict::No, Some(&src("r", 1, "foo")))
        .unwrap();
    assert_eq!(result, (PutState::Converged, 1));
    assert_eq!(
        db.get_replica_gen_and_trans_id(&uid("r")).unwrap(),
        pos(1, "foo")
    );
}

#[test]
fn put_doc_if_newer_conflicted_without_saving_leaves_doc() {
    let mut db = db();
    let d = db.create_doc_from_json(SIMPLE, Some(&id("d"))).unwrap();
    let mut alt = doc("d", "alternate:1", Some(NESTED));
    let (state, generation) = db
        .put_doc_if_newer(&mut alt, SaveConflict::No, Some(&src("r", 1, "foo")))
        .unwrap();
    assert_eq!((state, generation), (PutState::Conflicted, 1));
    let read = db.get_doc(&id("d"), false).unwrap().unwrap();
    assert_eq!(
        (read.rev.clone(), read.json()),
        (d.rev.clone(), Some(SIMPLE))
    );
    assert!(!read.has_conflicts);
    assert!(db.get_doc_conflicts(&id("d")).unwrap().is_empty());
    // The source position is still recorded: no need to see it again.
    assert_eq!(
        db.get_replica_gen_and_trans_id(&uid("r")).unwrap(),
        pos(1, "foo")
    );
}

#[test]
fn put_doc_if_newer_source_generation_rules() {
    // newer generation
    let mut db1 = db();
    db1.set_replica_gen_and_trans_id(&src("other", 1, "T-sid"))
        .unwrap();
    let mut d = doc("doc_id", "other:2", Some(SIMPLE));
    let (state, _) = db1
        .put_doc_if_newer(
            &mut d,
            SaveConflict::No,
            Some(&src("other", 2, "T-irrelevant")),
        )
        .unwrap();
    assert_eq!(state, PutState::Inserted);

    // same generation, same transaction id
    let mut db2 = db();
    db2.set_replica_gen_and_trans_id(&src("other", 1, "T-sid"))
        .unwrap();
    let mut created = db2.create_doc_from_json(SIMPLE, None).unwrap();
    let (state, _) = db2
        .put_doc_if_newer(
            &mut created,
            SaveConflict::No,
            Some(&src("other", 1, "T-sid")),
        )
        .unwrap();
    assert_eq!(state, PutState::Converged);

    // same generation, another transaction id
    let mut db3 = db();
    db3.set_replica_gen_and_trans_id(&src("other", 1, "T-sid"))
        .unwrap();
    let mut d = doc("doc_id", "other:1", Some(SIMPLE));
    let err = db3
        .put_doc_if_newer(&mut d, SaveConflict::No, Some(&src("other", 1, "T-sad")))
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidTransactionId));
    assert_eq!(db3.get_doc(&id("doc_id"), true).unwrap(), None);

    // older generation with an older doc: fine, superseded
    let mut db4 = db();
    let mut d = db4
        .create_doc_from_json("{\"new\": \"doc\"}", Some(&id("d")))
        .unwrap();
    let rev1 = d.rev.clone().unwrap();
    d.set_json(SIMPLE).unwrap();
    db4.put_doc(&mut d).unwrap();
    db4.set_replica_gen_and_trans_id(&src("other", 3, "T-sid"))
        .unwrap();
    let mut older = doc("d", &rev1, Some(SIMPLE));
    let (state, _) = db4
        .put_doc_if_newer(
            &mut older,
            SaveConflict::No,
            Some(&src("other", 8, "T-irrelevant")),
        )
        .unwrap();
    assert_eq!(state, PutState::Superseded);

    // older generation with a newer doc: the source was rolled back
    let mut db5 = db();
    db5.set_replica_gen_and_trans_id(&src("other", 5, "T-sid"))
        .unwrap();
    let mut d = doc("doc_id", "other:1", Some(SIMPLE));
    let err = db5
        .put_doc_if_newer(&mut d, SaveConflict::No, Some(&src("other", 1, "T-sad")))
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidGeneration));
    assert_eq!(db5.get_doc(&id("doc_id"), true).unwrap(), None);
    assert_eq!(
        db5.get_replica_gen_and_trans_id(&uid("other")).unwrap(),
        pos(5, "T-sid")
    );
}

#[test]
fn put_doc_if_newer_records_replica_position() {
    let mut db = db();
    let d1 = db.create_doc_from_json(SIMPLE, Some(&id("d"))).unwrap();
    db.set_replica_gen_and_trans_id(&src("other", 1, "T-sid"))
        .unwrap();
    let mut d2 = doc("d", "other:1|test:1", Some(NESTED));
    assert_eq!(
        db.put_doc_if_newer(&mut d2, SaveConflict::No, Some(&src("other", 2, "T-id2")))
            .unwrap()
            .0,
        PutState::Inserted
    );
    assert_eq!(
        db.get_replica_gen_and_trans_id(&uid("other")).unwrap(),
        pos(2, "T-id2")
    );
    let mut d3 = doc("d", d1.rev.as_deref().unwrap(), Some(NESTED));
    assert_eq!(
        db.put_doc_if_newer(&mut d3, SaveConflict::No, Some(&src("other", 3, "T-id3")))
            .unwrap()
            .0,
        PutState::Superseded
    );
    assert_eq!(
        db.get_replica_gen_and_trans_id(&uid("other")).unwrap(),
        pos(3, "T-id3")
    );
    let mut d4 = doc("d", "fourth:1|test:1", Some("{}"));
    assert_eq!(
        db.put_doc_if_newer(&mut d4, SaveConflict::No, Some(&src("other", 4, "T-id4")))
            .unwrap()
            .0,
        PutState::Conflicted
    );
    assert_eq!(
        db.get_replica_gen_and_trans_id(&uid("other")).unwrap(),
        pos(4, "T-id4")
    );
    // Without a replica uid nothing is recorded.
    let mut d5 = doc("e", "fifth:1", Some("{}"));
    assert_eq!(
        db.put_doc_if_newer(&mut d5, SaveConflict::No, None)
            .unwrap()
            .0,
        PutState::Inserted
    );
    assert_eq!(
        db.get_replica_gen_and_trans_id(&uid("other")).unwrap(),
        pos(4, "T-id4")
    );
}

#[test]
fn put_doc_if_newer_rejects_bad_input() {
    let mut db = db();
    // Bad revisions and ids are refused by their parsers: no document can
    // carry one into the store.
    for bad_rev in ["", "garbage", "b:1|a:1", "a:0", "a:1|"] {
        let err = soledad_store::Rev::parse(bad_rev).unwrap_err();
        assert!(
            matches!(err, StoreError::InvalidRevision),
            "{bad_rev:?}: {err:?}"
        );
        let json = serde_json::to_string(bad_rev).unwrap();
        assert!(serde_json::from_str::<soledad_store::Rev>(&json).is_err());
    }
    let mut no_rev = doc("d", "a:1", Some(SIMPLE));
    no_rev.rev = None;
    assert!(matches!(
        db.put_doc_if_newer(&mut no_rev, SaveConflict::No, None),
        Err(StoreError::InvalidRevision)
    ));
    assert!(matches!(
        soledad_store::DocId::parse("a b"),
        Err(StoreError::InvalidDocId)
    ));
    assert!(matches!(
        soledad_store::ReplicaUid::parse("bad|uid"),
        Err(StoreError::InvalidReplicaUid)
    ));
    assert!(matches!(
        soledad_store::Position::parse(u64::MAX, "t"),
        Err(StoreError::InvalidGeneration)
    ));
    assert_eq!(db.get_generation_info().unwrap().generation(), 0);
    assert_eq!(
        db.get_replica_gen_and_trans_id(&uid("r")).unwrap(),
        soledad_store::Position::origin()
    );
}

#[test]
fn put_doc_if_newer_tombstones() {
    let mut db = db();
    // an incoming tombstone for a doc we never had is stored
    let mut t = doc("gone", "other:1", None);
    assert_eq!(
        db.put_doc_if_newer(&mut t, SaveConflict::No, None)
            .unwrap()
            .0,
        PutState::Inserted
    );
    assert_eq!(db.get_doc(&id("gone"), false).unwrap(), None);
    assert!(
        db.get_doc(&id("gone"), true)
            .unwrap()
            .unwrap()
            .is_tombstone()
    );
    // concurrent deletes on both sides merge (same "content": none)
    let mut d = db.create_doc_from_json(SIMPLE, Some(&id("d"))).unwrap();
    db.delete_doc(&mut d).unwrap();
    let mut remote_delete = doc("d", "other:1|test:1", None);
    let (state, _) = db
        .put_doc_if_newer(&mut remote_delete, SaveConflict::No, None)
        .unwrap();
    assert_eq!(state, PutState::Superseded);
    let stored = db.get_doc(&id("d"), true).unwrap().unwrap();
    assert_eq!(stored.rev.as_deref(), Some("other:1|test:3"));
    assert!(stored.is_tombstone());
}

#[test]
fn sync_between_two_databases() {
    let mut a = db_named("alice");
    let mut b = db_named("bob");
    a.create_doc_from_json(SIMPLE, Some(&id("from-a"))).unwrap();
    b.create_doc_from_json(NESTED, Some(&id("from-b"))).unwrap();
    sync(&mut a, &mut b).unwrap();
    for db in [&a, &b] {
        assert_eq!(
            db.get_doc(&id("from-a"), false).unwrap().unwrap().json(),
            Some(SIMPLE)
        );
        assert_eq!(
            db.get_doc(&id("from-b"), false).unwrap().unwrap().json(),
            Some(NESTED)
        );
    }
    // deletes propagate
    let mut d = a.get_doc(&id("from-b"), false).unwrap().unwrap();
    a.delete_doc(&mut d).unwrap();
    sync(&mut a, &mut b).unwrap();
    assert_eq!(b.get_doc(&id("from-b"), false).unwrap(), None);
    assert_eq!(b.get_doc(&id("from-b"), true).unwrap().unwrap().rev, d.rev);
    // Concurrent edits: the source keeps a conflict, the target is untouched.
    let mut on_a = a.get_doc(&id("from-a"), false).unwrap().unwrap();
    on_a.set_value(&json!({"edited": "by a"})).unwrap();
    a.put_doc(&mut on_a).unwrap();
    let mut on_b = b.get_doc(&id("from-a"), false).unwrap().unwrap();
    on_b.set_value(&json!({"edited": "by b"})).unwrap();
    b.put_doc(&mut on_b).unwrap();
    sync(&mut a, &mut b).unwrap();
    assert_eq!(value_of(&b, "from-a"), Some(json!({"edited": "by b"})));
    assert!(
        !b.get_doc(&id("from-a"), false)
            .unwrap()
            .unwrap()
            .has_conflicts
    );
    let on_a_now = a.get_doc(&id("from-a"), false).unwrap().unwrap();
    assert!(on_a_now.has_conflicts);
    assert_eq!(
        on_a_now.rev, on_b.rev,
        "the target's revision became current"
    );
    // Resolve on a, sync: both converge on the resolution.
    let mut resolved = on_a_now.clone();
    resolved.set_value(&json!({"edited": "by both"})).unwrap();
    let revs: Vec<soledad_store::Rev> = a
        .get_doc_conflicts(&id("from-a"))
        .unwrap()
        .into_iter()
        .map(|d| d.rev.unwrap())
        .collect();
    a.resolve_doc(&mut resolved, &revs).unwrap();
    assert!(!resolved.has_conflicts);
    sync(&mut a, &mut b).unwrap();
    assert_eq!(value_of(&b, "from-a"), Some(json!({"edited": "by both"})));
    assert_eq!(
        b.get_doc(&id("from-a"), false).unwrap().unwrap().rev,
        resolved.rev
    );
    // Nothing left to exchange: a second sync changes nothing.
    let (gen_a, _) = parts(a.get_generation_info().unwrap());
    let (gen_b, _) = parts(b.get_generation_info().unwrap());
    sync(&mut a, &mut b).unwrap();
    assert_eq!(a.get_generation_info().unwrap().generation(), gen_a);
    assert_eq!(b.get_generation_info().unwrap().generation(), gen_b);
}

#[test]
fn sync_autoresolves_equal_edits() {
    let mut a = db_named("alice");
    let mut b = db_named("bob");
    a.create_doc_from_json(SIMPLE, Some(&id("d"))).unwrap();
    sync(&mut a, &mut b).unwrap();
    for db in [&mut a, &mut b] {
        let mut d = db.get_doc(&id("d"), false).unwrap().unwrap();
        d.set_json("{\"same\": \"edit\"}").unwrap();
        db.put_doc(&mut d).unwrap();
    }
    sync(&mut a, &mut b).unwrap();
    let on_a = a.get_doc(&id("d"), false).unwrap().unwrap();
    let on_b = b.get_doc(&id("d"), false).unwrap().unwrap();
    assert!(!on_a.has_conflicts && !on_b.has_conflicts);
    assert_eq!(on_a.rev, on_b.rev);
    assert_eq!(on_a.rev.as_deref(), Some("alice:2|bob:2"));
}

#[test]
fn sync_detects_a_rolled_back_target() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("target.db");
    let mut a = db_named("alice");
    let mut b = soledad_store::OpenOptions::new()
        .replica_uid("bob")
        .open_unencrypted(&path)
        .unwrap();
    b.create_doc_from_json(SIMPLE, Some(&id("one"))).unwrap();
    b.close().unwrap();
    let backup = dir.path().join("backup.db");
    std::fs::copy(&path, &backup).unwrap();
    let mut b = soledad_store::Database::open_unencrypted(&path).unwrap();
    b.create_doc_from_json(SIMPLE, Some(&id("two"))).unwrap();
    sync(&mut a, &mut b).unwrap();
    assert_eq!(
        a.get_replica_gen_and_trans_id(&uid("bob"))
            .unwrap()
            .generation(),
        2
    );
    b.close().unwrap();
    // Restore the old copy and make a different change 2.
    let older_copy = dir.path().join("older.db");
    std::fs::copy(&backup, &older_copy).unwrap();
    let mut restored = soledad_store::Database::open_unencrypted(&backup).unwrap();
    restored
        .create_doc_from_json(NESTED, Some(&id("other-two")))
        .unwrap();
    let err = sync(&mut a, &mut restored).unwrap_err();
    assert!(matches!(err, StoreError::InvalidTransactionId), "{err:?}");
    assert!(a.get_doc(&id("other-two"), true).unwrap().is_none());
    // An even older copy (generation 1 < 2 recorded) is caught too.
    let mut older = soledad_store::Database::open_unencrypted(&older_copy).unwrap();
    let err = sync(&mut a, &mut older).unwrap_err();
    assert!(matches!(err, StoreError::InvalidGeneration), "{err:?}");
}

#[test]
fn positions_and_sources_are_made_only_by_parsers() {
    use soledad_store::{Position, ReplicaUid, TransId};
    assert!(matches!(
        ReplicaUid::parse(""),
        Err(StoreError::InvalidReplicaUid)
    ));
    assert!(matches!(
        ReplicaUid::parse(&"r".repeat(257)),
        Err(StoreError::InvalidReplicaUid)
    ));
    assert_eq!(ReplicaUid::parse("phone-1").unwrap().as_str(), "phone-1");
    assert!(matches!(
        TransId::parse(&"t".repeat(257)),
        Err(StoreError::InvalidTransactionId)
    ));
    // Only the origin has no transaction id.
    assert!(matches!(
        Position::parse(3, ""),
        Err(StoreError::InvalidTransactionId)
    ));
    assert!(Position::parse(0, "").unwrap().is_origin());
    assert_eq!(Position::parse(0, "").unwrap(), Position::origin());
    let at = Position::parse(7, "T-7").unwrap();
    assert_eq!((at.generation(), at.transaction_id().as_str()), (7, "T-7"));
    assert_ne!(at, Position::parse(7, "T-other").unwrap());
}

#[test]
fn doc_ids_and_revisions_are_parsed_at_the_boundary() {
    use soledad_store::{DocId, Rev};
    assert_eq!(DocId::parse("D-1.a%_").unwrap().as_str(), "D-1.a%_");
    for bad in ["", "a b", "é", &"d".repeat(1025)] {
        assert!(
            matches!(DocId::parse(bad), Err(StoreError::InvalidDocId)),
            "{bad:?}"
        );
    }
    assert_eq!(Rev::parse("a:1|b:2").unwrap().into_string(), "a:1|b:2");
    for bad in [
        "",
        "a",
        "b:1|a:1",
        "a:0",
        &format!("a:1|{}:1", "r".repeat(65_535)),
    ] {
        assert!(
            matches!(Rev::parse(bad), Err(StoreError::InvalidRevision)),
            "{bad:?}"
        );
    }
}
