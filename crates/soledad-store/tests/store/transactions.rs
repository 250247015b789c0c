//! Every write is one transaction; batches are all-or-nothing.

use crate::util::{pos, src, uid};
use serde_json::json;
use soledad_store::SaveConflict;
use soledad_store::{Document, JsonContent, PutState, StoreError};

use crate::util::{SIMPLE, db, doc, ids};
use crate::util::{id, revs_of};

#[test]
fn batch_commits_everything() {
    let mut db = db();
    db.create_index("by-key", &["key"]).unwrap();
    let generation = db
        .batch(|b| {
            for i in 0..10 {
                b.create_doc(
                    &json!({ "key": format!("k{i}") }),
                    Some(&id(&format!("doc{i}"))),
                )?;
            }
            let mut d = doc("remote", "other:1", Some(SIMPLE));
            let (state, _) =
                b.put_doc_if_newer(&mut d, SaveConflict::No, Some(&src("other", 1, "T-1")))?;
            assert_eq!(state, PutState::Inserted);
            // reads inside the batch see its writes
            assert!(b.get_doc(&id("doc3"), false)?.is_some());
            Ok::<_, StoreError>(b.get_generation_info()?.generation())
        })
        .unwrap();
    assert_eq!(generation, 11);
    assert_eq!(db.get_generation_info().unwrap().generation(), 11);
    assert_eq!(db.get_count_from_index("by-key", &["k*"]).unwrap(), 10);
    assert_eq!(
        db.get_replica_gen_and_trans_id(&uid("other")).unwrap(),
        pos(1, "T-1")
    );
    let changes = db.whats_changed(0).unwrap();
    assert_eq!(changes.changes.len(), 11);
    let gens: Vec<u64> = changes.changes.iter().map(|c| c.generation).collect();
    assert_eq!(gens, (1..=11).collect::<Vec<_>>());
}

#[test]
fn failing_write_in_the_middle_of_a_batch_leaves_nothing() {
    let mut db = db();
    db.create_index("by-key", &["key"]).unwrap();
    db.create_doc_from_json("{\"key\": \"before\"}", Some(&id("before")))
        .unwrap();
    let before = db.get_generation_info().unwrap();
    let err = db
        .batch(|b| {
            b.create_doc(&json!({"key": "one"}), Some(&id("one")))?;
            let mut d = doc("remote", "other:1", Some(SIMPLE));
            b.put_doc_if_newer(&mut d, SaveConflict::No, Some(&src("other", 1, "T-1")))?;
            b.create_doc(&json!({"key": "dup"}), Some(&id("before")))?; // RevisionConflict
            b.create_doc(&json!({"key": "never"}), Some(&id("never")))?;
            Ok::<(), StoreError>(())
        })
        .unwrap_err();
    assert!(matches!(err, StoreError::RevisionConflict));
    assert_eq!(db.get_generation_info().unwrap(), before);
    assert_eq!(db.get_doc(&id("one"), true).unwrap(), None);
    assert_eq!(db.get_doc(&id("remote"), true).unwrap(), None);
    assert_eq!(db.get_doc(&id("never"), true).unwrap(), None);
    assert_eq!(
        db.get_replica_gen_and_trans_id(&uid("other")).unwrap(),
        soledad_store::Position::origin()
    );
    assert_eq!(
        ids(&db.get_from_index("by-key", &["*"]).unwrap()),
        ["before"]
    );
    assert_eq!(
        db.get_index_keys("by-key").unwrap(),
        vec![vec!["before".to_owned()]]
    );
    // The database is still usable and the generation continues from where it was.
    db.create_doc_from_json(SIMPLE, Some(&id("after"))).unwrap();
    assert_eq!(
        db.get_generation_info().unwrap().generation(),
        before.generation() + 1
    );
}

#[test]
fn a_failed_operation_inside_a_batch_can_be_skipped() {
    let mut db = db();
    db.create_doc_from_json(SIMPLE, Some(&id("exists")))
        .unwrap();
    db.batch(|b| {
        b.create_doc_from_json(SIMPLE, Some(&id("a")))?;
        let err = b
            .create_doc_from_json(SIMPLE, Some(&id("exists")))
            .unwrap_err();
        assert!(matches!(err, StoreError::RevisionConflict));
        let err = b.create_doc_from_json("[1]", Some(&id("bad"))).unwrap_err();
        assert!(matches!(err, StoreError::InvalidContent));
        b.create_doc_from_json(SIMPLE, Some(&id("b")))?;
        Ok::<(), StoreError>(())
    })
    .unwrap();
    let changes = db.whats_changed(1).unwrap();
    let got: Vec<(&str, u64)> = changes
        .changes
        .iter()
        .map(|c| (c.doc_id.as_str(), c.generation))
        .collect();
    assert_eq!(got, [("a", 2), ("b", 3)], "generations stay dense");
}

#[test]
fn batch_with_custom_error_type_rolls_back() {
    #[derive(Debug)]
    enum AppError {
        Store,
        Cancelled,
    }
    impl From<StoreError> for AppError {
        fn from(_: StoreError) -> Self {
            Self::Store
        }
    }
    let mut db = db();
    let result: Result<(), AppError> = db.batch(|b| {
        b.create_doc_from_json(SIMPLE, Some(&id("x")))?;
        Err(AppError::Cancelled)
    });
    assert!(matches!(result, Err(AppError::Cancelled)));
    assert_eq!(db.get_doc(&id("x"), true).unwrap(), None);
    let result: Result<(), AppError> = db.batch(|b| {
        b.create_doc_from_json("[not an object]", Some(&id("y")))?;
        Ok(())
    });
    assert!(matches!(result, Err(AppError::Store)));
}

#[test]
fn batch_put_delete_resolve() {
    let mut db = db();
    db.create_doc_from_json(SIMPLE, Some(&id("c"))).unwrap();
    let mut alt = doc("c", "alternate:1", Some("{\"b\": 1}"));
    db.put_doc_if_newer(&mut alt, SaveConflict::Yes, None)
        .unwrap();
    let mut p = db.create_doc_from_json(SIMPLE, Some(&id("p"))).unwrap();
    db.batch(|b| {
        p.set_json("{\"updated\": true}")?;
        b.put_doc(&mut p)?;
        b.delete_doc(&mut p)?;
        let mut resolved = b.get_doc(&id("c"), false)?.unwrap();
        b.resolve_doc(&mut resolved, &revs_of(&["alternate:1", "test:1"]))?;
        assert!(!resolved.has_conflicts);
        b.set_replica_gen_and_trans_id(&src("peer", 7, "T-7"))?;
        assert_eq!(b.get_replica_gen_and_trans_id(&uid("peer"))?, pos(7, "T-7"));
        Ok::<(), StoreError>(())
    })
    .unwrap();
    assert!(db.get_doc(&id("p"), true).unwrap().unwrap().is_tombstone());
    assert!(db.get_doc_conflicts(&id("c")).unwrap().is_empty());
    assert_eq!(
        db.get_replica_gen_and_trans_id(&uid("peer")).unwrap(),
        pos(7, "T-7")
    );
}

#[test]
fn failed_single_write_leaves_previous_state() {
    let mut db = db();
    db.create_index("by-key", &["key"]).unwrap();
    let mut d = db
        .create_doc_from_json("{\"key\": \"v1\"}", Some(&id("d")))
        .unwrap();
    let before = db.get_generation_info().unwrap();
    // A put that fails (size limit) changes nothing, index included.
    db.set_document_size_limit(Some(16));
    d.set_json("{\"key\": \"a value that is too long\"}")
        .unwrap();
    assert!(matches!(
        db.put_doc(&mut d),
        Err(StoreError::DocumentTooBig)
    ));
    assert_eq!(d.rev.as_deref(), Some("test:1"));
    assert_eq!(db.get_generation_info().unwrap(), before);
    assert_eq!(ids(&db.get_from_index("by-key", &["v1"]).unwrap()), ["d"]);
    let mut fresh = Document::new(id("n"), None, Some(JsonContent::from_json("{}").unwrap()));
    db.set_document_size_limit(None);
    db.put_doc(&mut fresh).unwrap();
    assert_eq!(
        db.get_generation_info().unwrap().generation(),
        before.generation() + 1
    );
}

#[test]
fn two_handles_on_one_file_see_each_others_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    let key = [7u8; 32];
    let mut writer = soledad_store::Database::open_encrypted(&path, &key).unwrap();
    let reader = soledad_store::Database::open_encrypted(&path, &key).unwrap();
    assert_eq!(writer.replica_uid(), reader.replica_uid());
    writer.create_doc_from_json(SIMPLE, Some(&id("w"))).unwrap();
    assert_eq!(
        reader.get_doc(&id("w"), false).unwrap().unwrap().json(),
        Some(SIMPLE)
    );
    assert_eq!(
        reader.get_generation_info().unwrap(),
        writer.get_generation_info().unwrap()
    );
}

#[test]
fn an_operation_failing_half_way_aborts_the_whole_batch() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("corrupt.db");
    let mut db = soledad_store::OpenOptions::new()
        .replica_uid("test")
        .open_unencrypted::<JsonContent>(&path)
        .unwrap();
    db.create_doc_from_json(SIMPLE, Some(&id("d"))).unwrap();
    db.put_doc_if_newer(
        &mut doc("d", "a:1", Some("{\"a\": 1}")),
        SaveConflict::Yes,
        None,
    )
    .unwrap();
    db.put_doc_if_newer(
        &mut doc("d", "b:1", Some("{\"b\": 1}")),
        SaveConflict::Yes,
        None,
    )
    .unwrap();
    db.close().unwrap();
    // Damage the second stored conflict's content behind the store's back
    // (a damaged revision would be refused when read, before any write).
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        let n = conn
            .execute(
                "UPDATE conflicts SET content = '{damaged' WHERE doc_rev = 'a:1'",
                [],
            )
            .unwrap();
        assert_eq!(n, 1);
    }
    let mut db = soledad_store::Database::open_unencrypted(&path).unwrap();
    let before = db.get_generation_info().unwrap();
    let result = db.batch(|b| {
        b.create_doc_from_json(SIMPLE, Some(&id("new")))?;
        // Prunes the conflict test:1 (a write), then meets the damaged one.
        let err = b
            .put_doc_if_newer(
                &mut doc("d", "b:2|test:1", Some("{\"c\": 1}")),
                SaveConflict::Yes,
                None,
            )
            .unwrap_err();
        assert!(
            matches!(err, StoreError::Corrupt(_) | StoreError::InvalidJson),
            "{err:?}"
        );
        assert!(b.is_aborted());
        let err = b
            .create_doc_from_json(SIMPLE, Some(&id("later")))
            .unwrap_err();
        assert!(matches!(err, StoreError::BatchAborted));
        Ok::<(), StoreError>(())
    });
    assert!(
        matches!(result, Err(StoreError::BatchAborted)),
        "{result:?}"
    );
    assert_eq!(db.get_generation_info().unwrap(), before);
    assert_eq!(db.get_doc(&id("new"), true).unwrap(), None);
    assert_eq!(
        db.get_doc_conflicts(&id("d")).unwrap().len(),
        3,
        "the pruned conflict is back"
    );
}
