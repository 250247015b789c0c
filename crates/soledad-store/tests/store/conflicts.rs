//! Conflicts: saved on sync, listed current-first, resolved, and blocking
//! put/delete (u1db DatabaseConflictTests).

use crate::util::{parts, src};
use soledad_store::SaveConflict;
use soledad_store::{PutState, StoreError, VectorClock};

use crate::util::{NESTED, SIMPLE, conflicts_of, db, doc, expect_conflicts, ids};
use crate::util::{id, ids_of, rev, revs_of};

#[test]
fn get_doc_conflicts_unconflicted_and_unknown() {
    let mut db = db();
    db.create_doc_from_json(SIMPLE, Some(&id("d"))).unwrap();
    assert!(db.get_doc_conflicts(&id("d")).unwrap().is_empty());
    assert!(db.get_doc_conflicts(&id("no-such-id")).unwrap().is_empty());
}

#[test]
fn put_doc_if_newer_save_conflicted() {
    let mut db = db();
    let d1 = db.create_doc_from_json(SIMPLE, Some(&id("d"))).unwrap();
    let mut d2 = doc("d", "alternate:1", Some(NESTED));
    let (state, generation) = db
        .put_doc_if_newer(&mut d2, SaveConflict::Yes, Some(&src("r", 1, "foo")))
        .unwrap();
    assert_eq!((state, generation), (PutState::Conflicted, 2));
    assert!(d2.has_conflicts);
    let read = db.get_doc(&id("d"), false).unwrap().unwrap();
    assert_eq!(
        (read.rev.as_deref(), read.json(), read.has_conflicts),
        (Some("alternate:1"), Some(NESTED), true)
    );
    assert_eq!(
        conflicts_of(&db, "d"),
        expect_conflicts(&[
            ("alternate:1", Some(NESTED)),
            (d1.rev.as_deref().unwrap(), Some(SIMPLE))
        ])
    );
    // has_conflicts on every read path
    assert!(db.get_docs(&ids_of(&["d"]), true, false).unwrap()[0].has_conflicts);
    assert!(
        !db.get_docs(&ids_of(&["d"]), false, false).unwrap()[0].has_conflicts,
        "check skipped"
    );
    assert!(db.get_all_docs(false).unwrap().1[0].has_conflicts);
    assert!(
        db.get_doc_with_generation(&id("d"))
            .unwrap()
            .unwrap()
            .0
            .has_conflicts
    );
    assert!(db.docs_changed_since(0, 10).unwrap()[0].doc.has_conflicts);
    let conflicts = db.get_doc_conflicts(&id("d")).unwrap();
    assert!(conflicts.iter().all(|c| c.has_conflicts));
}

#[test]
fn put_and_delete_of_a_conflicted_doc_fail() {
    let mut db = db();
    db.create_doc_from_json(SIMPLE, Some(&id("d"))).unwrap();
    let mut d2 = doc("d", "alternate:1", Some(NESTED));
    db.put_doc_if_newer(&mut d2, SaveConflict::Yes, None)
        .unwrap();
    let mut current = db.get_doc(&id("d"), false).unwrap().unwrap();
    current.set_json("{\"x\": 1}").unwrap();
    assert!(matches!(
        db.put_doc(&mut current),
        Err(StoreError::ConflictedDoc)
    ));
    assert_eq!(current.rev.as_deref(), Some("alternate:1"));
    assert!(matches!(
        db.delete_doc(&mut current),
        Err(StoreError::ConflictedDoc)
    ));
    assert_eq!(
        db.get_doc(&id("d"), false).unwrap().unwrap().json(),
        Some(NESTED)
    );
    assert_eq!(db.get_generation_info().unwrap().generation(), 2);
}

#[test]
fn force_doc_conflict_supersedes_properly() {
    let mut db = db();
    let d1 = db.create_doc_from_json(SIMPLE, Some(&id("d"))).unwrap();
    let mut d2 = doc("d", "alternate:1", Some("{\"b\": 1}"));
    db.put_doc_if_newer(&mut d2, SaveConflict::Yes, Some(&src("r", 1, "a")))
        .unwrap();
    let mut d3 = doc("d", "altalt:1", Some("{\"c\": 1}"));
    db.put_doc_if_newer(&mut d3, SaveConflict::Yes, Some(&src("r", 2, "b")))
        .unwrap();
    let mut d22 = doc("d", "alternate:2", Some("{\"b\": 2}"));
    db.put_doc_if_newer(&mut d22, SaveConflict::Yes, Some(&src("r", 3, "c")))
        .unwrap();
    assert_eq!(d22.rev.as_deref(), Some("alternate:2"));
    assert_eq!(
        conflicts_of(&db, "d"),
        expect_conflicts(&[
            ("alternate:2", Some("{\"b\": 2}")),
            ("altalt:1", Some("{\"c\": 1}")),
            (d1.rev.as_deref().unwrap(), Some(SIMPLE)),
        ])
    );
}

#[test]
fn put_doc_if_newer_save_conflict_was_deleted() {
    let mut db = db();
    let mut d1 = db.create_doc_from_json(SIMPLE, Some(&id("d"))).unwrap();
    db.delete_doc(&mut d1).unwrap();
    let mut d2 = doc("d", "alternate:1", Some(NESTED));
    db.put_doc_if_newer(&mut d2, SaveConflict::Yes, None)
        .unwrap();
    assert!(d2.has_conflicts);
    let read = db.get_doc(&id("d"), false).unwrap().unwrap();
    assert_eq!(
        (read.rev.as_deref(), read.json(), read.has_conflicts),
        (Some("alternate:1"), Some(NESTED), true)
    );
    assert_eq!(
        conflicts_of(&db, "d"),
        expect_conflicts(&[
            ("alternate:1", Some(NESTED)),
            (d1.rev.as_deref().unwrap(), None)
        ])
    );
}

#[test]
fn put_doc_if_newer_propagates_full_resolution() {
    let mut db = db();
    let d1 = db.create_doc_from_json(SIMPLE, Some(&id("d"))).unwrap();
    let mut d2 = doc("d", "alternate:1", Some(NESTED));
    db.put_doc_if_newer(&mut d2, SaveConflict::Yes, None)
        .unwrap();
    let mut resolved = VectorClock::parse(d1.rev.as_deref().unwrap()).unwrap();
    resolved.maximize(&VectorClock::parse("alternate:1").unwrap());
    resolved.increment("alternate").unwrap();
    let mut d3 = doc("d", &resolved.to_string(), Some("{\"good\": 1}"));
    let (state, _) = db
        .put_doc_if_newer(&mut d3, SaveConflict::Yes, None)
        .unwrap();
    assert_eq!(state, PutState::Inserted);
    assert!(!d3.has_conflicts);
    assert!(db.get_doc_conflicts(&id("d")).unwrap().is_empty());
    assert!(!db.get_doc(&id("d"), false).unwrap().unwrap().has_conflicts);
}

#[test]
fn put_doc_if_newer_propagates_partial_resolution() {
    let mut db = db();
    db.create_doc_from_json(SIMPLE, Some(&id("d"))).unwrap();
    let mut d2 = doc("d", "altalt:1", Some("{}"));
    db.put_doc_if_newer(&mut d2, SaveConflict::Yes, None)
        .unwrap();
    let mut d3 = doc("d", "alternate:1", Some(NESTED));
    db.put_doc_if_newer(&mut d3, SaveConflict::Yes, None)
        .unwrap();
    assert_eq!(
        conflicts_of(&db, "d"),
        expect_conflicts(&[
            ("alternate:1", Some(NESTED)),
            ("altalt:1", Some("{}")),
            ("test:1", Some(SIMPLE))
        ])
    );
    // supersedes test:1 and alternate:1 but not altalt:1
    let mut partial = doc("d", "alternate:2|test:1", Some("{\"good\": 1}"));
    let (state, _) = db
        .put_doc_if_newer(&mut partial, SaveConflict::Yes, None)
        .unwrap();
    assert_eq!(state, PutState::Inserted);
    assert!(partial.has_conflicts);
    assert_eq!(
        conflicts_of(&db, "d"),
        expect_conflicts(&[
            ("alternate:2|test:1", Some("{\"good\": 1}")),
            ("altalt:1", Some("{}"))
        ])
    );
}

#[test]
fn put_doc_if_newer_autoresolve_2() {
    let mut db = db();
    db.create_doc_from_json(SIMPLE, Some(&id("d"))).unwrap();
    let mut a2 = doc("d", "test:2", Some("{}"));
    let mut a1b1 = doc("d", "other:1|test:1", Some("{\"a\":\"42\"}"));
    let mut a3 = doc("d", "other:1|test:2", Some("{}"));
    assert_eq!(
        db.put_doc_if_newer(&mut a2, SaveConflict::Yes, None)
            .unwrap()
            .0,
        PutState::Inserted
    );
    assert_eq!(
        db.put_doc_if_newer(&mut a1b1, SaveConflict::Yes, None)
            .unwrap()
            .0,
        PutState::Conflicted
    );
    assert_eq!(
        db.put_doc_if_newer(&mut a3, SaveConflict::Yes, None)
            .unwrap()
            .0,
        PutState::Inserted
    );
    assert!(!db.get_doc(&id("d"), false).unwrap().unwrap().has_conflicts);
}

#[test]
fn put_doc_if_newer_autoresolve_3() {
    let mut db = db();
    db.create_doc_from_json(SIMPLE, Some(&id("d"))).unwrap();
    let mut a1b1 = doc("d", "other:1|test:1", Some("{}"));
    let mut a2 = doc("d", "test:2", Some("{\"a\":\"42\"}"));
    let mut a3 = doc("d", "test:3", Some("{}"));
    assert_eq!(
        db.put_doc_if_newer(&mut a1b1, SaveConflict::Yes, None)
            .unwrap()
            .0,
        PutState::Inserted
    );
    assert_eq!(
        db.put_doc_if_newer(&mut a2, SaveConflict::Yes, None)
            .unwrap()
            .0,
        PutState::Conflicted
    );
    assert_eq!(
        db.put_doc_if_newer(&mut a3, SaveConflict::Yes, None)
            .unwrap()
            .0,
        PutState::Superseded
    );
    let stored = db.get_doc(&id("d"), true).unwrap().unwrap();
    assert!(!stored.has_conflicts);
    assert_eq!(stored.rev.as_deref(), Some("other:1|test:4"));
    let rev = VectorClock::parse(stored.rev.as_deref().unwrap()).unwrap();
    assert!(rev.is_newer(&VectorClock::parse("test:3").unwrap()));
    assert!(rev.is_newer(&VectorClock::parse("other:1|test:1").unwrap()));
}

#[test]
fn resolve_doc() {
    let mut db = db();
    let mut d = db.create_doc_from_json(SIMPLE, Some(&id("d"))).unwrap();
    let mut alt = doc("d", "alternate:1", Some(NESTED));
    db.put_doc_if_newer(&mut alt, SaveConflict::Yes, None)
        .unwrap();
    assert_eq!(
        conflicts_of(&db, "d"),
        expect_conflicts(&[("alternate:1", Some(NESTED)), ("test:1", Some(SIMPLE))])
    );
    let orig_rev = d.rev.clone();
    let (generation_before, _) = parts(db.get_generation_info().unwrap());
    db.resolve_doc(&mut d, &revs_of(&["alternate:1", "test:1"]))
        .unwrap();
    assert_ne!(d.rev, orig_rev);
    assert_eq!(d.rev.as_deref(), Some("alternate:1|test:2"));
    assert!(!d.has_conflicts);
    let read = db.get_doc(&id("d"), false).unwrap().unwrap();
    assert_eq!(
        (read.rev.clone(), read.json(), read.has_conflicts),
        (d.rev.clone(), Some(SIMPLE), false)
    );
    assert!(db.get_doc_conflicts(&id("d")).unwrap().is_empty());
    assert_eq!(
        db.get_generation_info().unwrap().generation(),
        generation_before + 1
    );
    let new = VectorClock::parse(d.rev.as_deref().unwrap()).unwrap();
    assert!(new.is_newer(&VectorClock::parse("alternate:1").unwrap()));
    assert!(new.is_newer(&VectorClock::parse("test:1").unwrap()));
    // now writable again
    d.set_json("{\"after\": 1}").unwrap();
    db.put_doc(&mut d).unwrap();
}

#[test]
fn resolve_doc_partial_not_winning() {
    let mut db = db();
    let mut d1 = db.create_doc_from_json(SIMPLE, Some(&id("d"))).unwrap();
    let mut d2 = doc("d", "alternate:1", Some(NESTED));
    db.put_doc_if_newer(&mut d2, SaveConflict::Yes, None)
        .unwrap();
    let content3 = "{\"key\": \"valin3\"}";
    let mut d3 = doc("d", "third:1", Some(content3));
    db.put_doc_if_newer(&mut d3, SaveConflict::Yes, None)
        .unwrap();
    assert_eq!(
        conflicts_of(&db, "d"),
        expect_conflicts(&[
            ("third:1", Some(content3)),
            ("test:1", Some(SIMPLE)),
            ("alternate:1", Some(NESTED))
        ])
    );
    db.resolve_doc(&mut d1, &revs_of(&["alternate:1", "test:1"]))
        .unwrap();
    assert!(d1.has_conflicts);
    let read = db.get_doc(&id("d"), false).unwrap().unwrap();
    assert_eq!(
        (read.rev.as_deref(), read.json(), read.has_conflicts),
        (Some("third:1"), Some(content3), true)
    );
    assert_eq!(
        conflicts_of(&db, "d"),
        expect_conflicts(&[
            ("third:1", Some(content3)),
            (d1.rev.as_deref().unwrap(), Some(SIMPLE))
        ])
    );
}

#[test]
fn resolve_doc_partial_winning() {
    let mut db = db();
    let mut d1 = db.create_doc_from_json(SIMPLE, Some(&id("d"))).unwrap();
    let mut d2 = doc("d", "alternate:1", Some(NESTED));
    db.put_doc_if_newer(&mut d2, SaveConflict::Yes, None)
        .unwrap();
    let content3 = "{\"key\": \"valin3\"}";
    let mut d3 = doc("d", "third:1", Some(content3));
    db.put_doc_if_newer(&mut d3, SaveConflict::Yes, None)
        .unwrap();
    db.resolve_doc(&mut d1, &revs_of(&["third:1", "test:1"]))
        .unwrap();
    assert!(d1.has_conflicts);
    assert_eq!(
        conflicts_of(&db, "d"),
        expect_conflicts(&[
            (d1.rev.as_deref().unwrap(), Some(SIMPLE)),
            ("alternate:1", Some(NESTED))
        ])
    );
}

#[test]
fn resolve_doc_with_delete_conflict() {
    let mut db = db();
    let mut d1 = db.create_doc_from_json(SIMPLE, Some(&id("d"))).unwrap();
    db.delete_doc(&mut d1).unwrap();
    let mut d2 = doc("d", "alternate:1", Some(NESTED));
    db.put_doc_if_newer(&mut d2, SaveConflict::Yes, None)
        .unwrap();
    assert_eq!(
        conflicts_of(&db, "d"),
        expect_conflicts(&[
            ("alternate:1", Some(NESTED)),
            (d1.rev.as_deref().unwrap(), None)
        ])
    );
    let revs = [d1.rev.clone().unwrap(), rev("alternate:1")];
    db.resolve_doc(&mut d2, &revs).unwrap();
    assert!(db.get_doc_conflicts(&id("d")).unwrap().is_empty());
    let read = db.get_doc(&id("d"), false).unwrap().unwrap();
    assert_eq!(
        (read.rev.clone(), read.json(), read.has_conflicts),
        (d2.rev.clone(), Some(NESTED), false)
    );
}

#[test]
fn resolve_doc_with_delete_to_delete() {
    let mut db = db();
    let mut d1 = db.create_doc_from_json(SIMPLE, Some(&id("d"))).unwrap();
    db.delete_doc(&mut d1).unwrap();
    let mut d2 = doc("d", "alternate:1", Some(NESTED));
    db.put_doc_if_newer(&mut d2, SaveConflict::Yes, None)
        .unwrap();
    let revs = [d1.rev.clone().unwrap(), rev("alternate:1")];
    db.resolve_doc(&mut d1, &revs).unwrap();
    assert!(db.get_doc_conflicts(&id("d")).unwrap().is_empty());
    assert_eq!(db.get_doc(&id("d"), false).unwrap(), None);
    let read = db.get_doc(&id("d"), true).unwrap().unwrap();
    assert_eq!(
        (read.rev.clone(), read.is_tombstone(), read.has_conflicts),
        (d1.rev.clone(), true, false)
    );
}

#[test]
fn resolve_doc_errors() {
    let mut db = db();
    let mut ghost = doc("ghost", "test:1", Some(SIMPLE));
    assert!(matches!(
        db.resolve_doc(&mut ghost, &revs_of(&["test:1"])),
        Err(StoreError::DocumentDoesNotExist)
    ));
    let mut d = db.create_doc_from_json(SIMPLE, Some(&id("d"))).unwrap();
    assert!(matches!(
        soledad_store::Rev::parse("not a rev"),
        Err(StoreError::InvalidRevision)
    ));
    // A counter that would overflow is refused, nothing written.
    assert!(matches!(
        db.resolve_doc(&mut d, &revs_of(&["test:18446744073709551615"])),
        Err(StoreError::InvalidRevision)
    ));
    assert_eq!(d.rev.as_deref(), Some("test:1"));
    assert_eq!(db.get_generation_info().unwrap().generation(), 1);
}

#[test]
fn get_docs_conflicted_and_conflicts_ignored() {
    let mut db = db();
    db.create_doc_from_json(SIMPLE, Some(&id("d"))).unwrap();
    db.create_doc_from_json(SIMPLE, Some(&id("other"))).unwrap();
    let mut d2 = doc("d", "alternate:1", Some(NESTED));
    db.put_doc_if_newer(&mut d2, SaveConflict::Yes, None)
        .unwrap();
    let got = db.get_docs(&ids_of(&["d"]), true, false).unwrap();
    assert_eq!(got, vec![d2.clone()]);
    let mut no_conflict = d2.clone();
    no_conflict.has_conflicts = false;
    let got = db.get_docs(&ids_of(&["d", "other"]), false, false).unwrap();
    assert_eq!(ids(&got), ["d", "other"]);
    assert_eq!(got[0], no_conflict);
}
