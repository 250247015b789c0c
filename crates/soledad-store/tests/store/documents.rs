//! Documents: create, put, get, delete, tombstones, ids, sizes (u1db AllDatabaseTests).

use crate::util::parts;
use serde_json::json;
use soledad_store::{Document, JsonContent, OpenOptions, StoreError};

use crate::util::{NESTED, SIMPLE, db, doc, ids, obj, value_of};
use crate::util::{id, ids_of};

#[test]
fn create_doc_allocates_d_hex_id() {
    let mut db = db();
    let created = db.create_doc_from_json(SIMPLE, None).unwrap();
    let id = &created.doc_id;
    assert!(id.starts_with("D-"), "{id}");
    assert_eq!(id.len(), 34);
    assert!(id[2..].bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(created.rev.as_deref(), Some("test:1"));
    let read = db.get_doc(id, false).unwrap().unwrap();
    assert_eq!(read.json(), Some(SIMPLE));
    assert_eq!(read.rev.as_deref(), Some("test:1"));
    assert!(!read.has_conflicts);
    let other = db.create_doc_from_json(SIMPLE, None).unwrap();
    assert_ne!(other.doc_id, created.doc_id);
}

#[test]
fn create_doc_with_id_and_existing_id_conflicts() {
    let mut db = db();
    let created = db
        .create_doc(&obj("key", "value"), Some(&id("my-doc-id")))
        .unwrap();
    assert_eq!(created.doc_id, "my-doc-id");
    assert_eq!(value_of(&db, "my-doc-id"), Some(obj("key", "value")));
    let err = db
        .create_doc_from_json(NESTED, Some(&id("my-doc-id")))
        .unwrap_err();
    assert!(matches!(err, StoreError::RevisionConflict), "{err:?}");
    assert_eq!(
        db.get_doc(&id("my-doc-id"), false)
            .unwrap()
            .unwrap()
            .rev
            .as_deref(),
        Some("test:1")
    );
}

#[test]
fn create_doc_from_json_keeps_text_byte_exact() {
    let mut db = db();
    let text = "{ \"z\" : 1,\n  \"a\":[1, 2 ,3],\"m\": {\"y\":null , \"b\": \"\\u00e9\"} }";
    let created = db.create_doc_from_json(text, Some(&id("exact"))).unwrap();
    assert_eq!(created.json(), Some(text));
    assert_eq!(
        db.get_doc(&id("exact"), false).unwrap().unwrap().json(),
        Some(text)
    );
    let (_, all) = db.get_all_docs(false).unwrap();
    assert_eq!(all[0].json(), Some(text));
}

#[test]
fn content_must_be_a_json_object() {
    let mut db = db();
    for (bad, kind) in [
        ("not json", "json"),
        ("{\"a\": }", "json"),
        ("", "json"),
        ("{\"a\": 1} trailing", "json"),
        ("[1, 2]", "content"),
        ("\"string\"", "content"),
        ("42", "content"),
        ("null", "content"),
    ] {
        let err = db.create_doc_from_json(bad, None).unwrap_err();
        match kind {
            "json" => assert!(matches!(err, StoreError::InvalidJson), "{bad}: {err:?}"),
            _ => assert!(matches!(err, StoreError::InvalidContent), "{bad}: {err:?}"),
        }
    }
    let err = db.create_doc(&json!([1]), None).unwrap_err();
    assert!(matches!(err, StoreError::InvalidContent));
    let deep = format!("{}{}", "{\"a\":".repeat(1000), "}".repeat(1000));
    assert!(matches!(
        db.create_doc_from_json(&deep, None),
        Err(StoreError::InvalidJson)
    ));
    assert_eq!(db.get_all_docs(true).unwrap(), (0, vec![]));
}

#[test]
fn doc_id_validation() {
    let mut db = db();
    for bad in [
        "a/b", "my doc", "", "\u{00e9}", "tab\t", "a:b", "quote\"", "a\nb",
    ] {
        // A bad id is refused by the parser: no document, hence no store
        // call, can carry one.
        let err = soledad_store::DocId::parse(bad).unwrap_err();
        assert!(matches!(err, StoreError::InvalidDocId), "{bad:?}: {err:?}");
        assert!(bad.parse::<soledad_store::DocId>().is_err());
        assert!(soledad_store::DocId::try_from(bad.to_owned()).is_err());
        let json = serde_json::to_string(bad).unwrap();
        assert!(serde_json::from_str::<soledad_store::DocId>(&json).is_err());
    }
    for good in ["%2F%2Ffoo%2Fbar", "a.b_c-d", "D-0123", "x"] {
        db.create_doc_from_json(SIMPLE, Some(&id(good))).unwrap();
        assert!(db.get_doc(&id(good), false).unwrap().is_some());
    }
    assert!(soledad_store::is_valid_doc_id("%2F"));
    assert!(!soledad_store::is_valid_doc_id("a/b"));
    let parsed = id("%2F%2Ffoo");
    assert_eq!(parsed, "%2F%2Ffoo");
    assert_eq!(parsed.to_string(), "%2F%2Ffoo");
    assert_eq!(serde_json::to_string(&parsed).unwrap(), "\"%2F%2Ffoo\"");
    assert_eq!(
        serde_json::from_str::<soledad_store::DocId>("\"%2F%2Ffoo\"").unwrap(),
        parsed
    );
}

#[test]
fn put_doc_creating_initial_and_updating() {
    let mut db = db();
    let mut d = Document::new(
        id("my_doc_id"),
        None,
        Some(JsonContent::from_json(SIMPLE).unwrap()),
    );
    let rev = db.put_doc(&mut d).unwrap();
    assert_eq!(rev, "test:1");
    assert_eq!(d.rev.as_deref(), Some("test:1"));
    d.set_json(NESTED).unwrap();
    let rev2 = db.put_doc(&mut d).unwrap();
    assert_eq!(rev2, "test:2");
    let read = db.get_doc(&id("my_doc_id"), false).unwrap().unwrap();
    assert_eq!(read.json(), Some(NESTED));
    assert_eq!(read.rev.as_deref(), Some("test:2"));
}

#[test]
fn put_fails_with_bad_or_missing_rev() {
    let mut db = db();
    let created = db.create_doc_from_json(SIMPLE, Some(&id("d"))).unwrap();
    let mut stale = created.clone();
    let mut fresh = created.clone();
    fresh.set_json(NESTED).unwrap();
    db.put_doc(&mut fresh).unwrap();
    stale.set_json("{\"stale\": true}").unwrap();
    assert!(matches!(
        db.put_doc(&mut stale),
        Err(StoreError::RevisionConflict)
    ));
    assert_eq!(
        stale.rev.as_deref(),
        Some("test:1"),
        "rev untouched on error"
    );
    let mut no_rev = doc("d", "x:1", Some(SIMPLE));
    no_rev.rev = None;
    assert!(matches!(
        db.put_doc(&mut no_rev),
        Err(StoreError::RevisionConflict)
    ));
    // A revision that does not parse cannot reach the store at all.
    assert!(matches!(
        soledad_store::Rev::parse("not a rev"),
        Err(StoreError::InvalidRevision)
    ));
    let mut other_rev = doc("d", "other:9", Some(SIMPLE));
    assert!(matches!(
        db.put_doc(&mut other_rev),
        Err(StoreError::RevisionConflict)
    ));
    let mut new_with_rev = doc("new", "other:1", Some(SIMPLE));
    assert!(matches!(
        db.put_doc(&mut new_with_rev),
        Err(StoreError::RevisionConflict)
    ));
    assert_eq!(db.get_doc(&id("new"), true).unwrap(), None);
    assert_eq!(
        value_of(&db, "d"),
        Some(serde_json::from_str(NESTED).unwrap())
    );
}

#[test]
fn get_doc_nonexisting_and_deleted() {
    let mut db = db();
    assert_eq!(db.get_doc(&id("non-existing"), false).unwrap(), None);
    assert_eq!(db.get_doc(&id("non-existing"), true).unwrap(), None);
    let mut d = db.create_doc_from_json(SIMPLE, Some(&id("d"))).unwrap();
    db.delete_doc(&mut d).unwrap();
    assert_eq!(db.get_doc(&id("d"), false).unwrap(), None);
    let tomb = db.get_doc(&id("d"), true).unwrap().unwrap();
    assert!(tomb.is_tombstone());
    assert_eq!(tomb.json(), None);
    assert_eq!(tomb.rev.as_deref(), Some("test:2"));
}

#[test]
fn delete_doc_rules() {
    let mut db = db();
    let mut d = db.create_doc_from_json(SIMPLE, Some(&id("d"))).unwrap();
    let before = d.rev.clone();
    let rev = db.delete_doc(&mut d).unwrap();
    assert_eq!(rev, "test:2");
    assert_eq!(d.content, None, "delete sets content to None");
    assert_eq!(d.rev.as_deref(), Some("test:2"));
    assert_ne!(d.rev, before);
    // already deleted
    assert!(matches!(
        db.delete_doc(&mut d),
        Err(StoreError::DocumentAlreadyDeleted)
    ));
    // non existent
    let mut ghost = doc("ghost", "test:1", None);
    assert!(matches!(
        db.delete_doc(&mut ghost),
        Err(StoreError::DocumentDoesNotExist)
    ));
    // bad rev
    let mut other = db.create_doc_from_json(SIMPLE, Some(&id("o"))).unwrap();
    other.rev = Some(crate::util::rev("test:7"));
    assert!(matches!(
        db.delete_doc(&mut other),
        Err(StoreError::RevisionConflict)
    ));
    assert_eq!(other.rev.as_deref(), Some("test:7"));
    assert!(db.get_doc(&id("o"), false).unwrap().is_some());
}

#[test]
fn create_and_put_revive_tombstones() {
    let mut db = db();
    let mut d = db.create_doc_from_json(SIMPLE, Some(&id("d"))).unwrap();
    db.delete_doc(&mut d).unwrap();
    // create over a tombstone revives with a rev newer than the tombstone
    let revived = db.create_doc_from_json(NESTED, Some(&id("d"))).unwrap();
    assert_eq!(revived.rev.as_deref(), Some("test:3"));
    assert_eq!(
        db.get_doc(&id("d"), false).unwrap().unwrap().json(),
        Some(NESTED)
    );
    // put with no rev over a tombstone revives too
    let mut again = db.get_doc(&id("d"), false).unwrap().unwrap();
    db.delete_doc(&mut again).unwrap();
    let mut put = Document::new(id("d"), None, Some(JsonContent::from_json(SIMPLE).unwrap()));
    assert_eq!(db.put_doc(&mut put).unwrap(), "test:5");
    // put with the tombstone's rev also works (delete then put)
    let mut third = db.get_doc(&id("d"), false).unwrap().unwrap();
    db.delete_doc(&mut third).unwrap();
    third.set_json(SIMPLE).unwrap();
    assert_eq!(db.put_doc(&mut third).unwrap(), "test:7");
    assert_eq!(
        db.get_doc(&id("d"), false).unwrap().unwrap().json(),
        Some(SIMPLE)
    );
}

#[test]
fn get_docs_keeps_order_and_filters() {
    let mut db = db();
    let a = db.create_doc_from_json(SIMPLE, Some(&id("a"))).unwrap();
    let b = db.create_doc_from_json(NESTED, Some(&id("b"))).unwrap();
    let mut c = db.create_doc_from_json(SIMPLE, Some(&id("c"))).unwrap();
    db.delete_doc(&mut c).unwrap();
    assert_eq!(
        ids(&db.get_docs(&ids_of(&["b", "a"]), true, false).unwrap()),
        ["b", "a"]
    );
    assert_eq!(
        ids(&db.get_docs(&ids_of(&["a", "b"]), true, false).unwrap()),
        ["a", "b"]
    );
    assert_eq!(
        ids(&db
            .get_docs(&ids_of(&["c", "a", "nope"]), true, false)
            .unwrap()),
        ["a"]
    );
    assert_eq!(
        ids(&db.get_docs(&ids_of(&["c", "a"]), true, true).unwrap()),
        ["c", "a"]
    );
    assert!(db.get_docs(&[], true, true).unwrap().is_empty());
    let got = db.get_docs(&ids_of(&["a", "b"]), false, false).unwrap();
    assert_eq!(got[0].json(), a.json());
    assert_eq!(got[1].json(), b.json());
}

#[test]
fn get_all_docs_returns_generation_and_docs() {
    let mut db = db();
    assert_eq!(db.get_all_docs(false).unwrap(), (0, vec![]));
    db.create_doc_from_json(SIMPLE, Some(&id("a"))).unwrap();
    let mut b = db.create_doc_from_json(NESTED, Some(&id("b"))).unwrap();
    db.delete_doc(&mut b).unwrap();
    let (generation, docs) = db.get_all_docs(false).unwrap();
    assert_eq!(generation, 3);
    assert_eq!(ids(&docs), ["a"]);
    let (generation, docs) = db.get_all_docs(true).unwrap();
    assert_eq!(generation, 3);
    assert_eq!(ids(&docs), ["a", "b"]);
    assert!(docs[1].is_tombstone());
}

#[test]
fn generations_and_transaction_ids() {
    let mut db = db();
    assert_eq!(
        db.get_generation_info().unwrap(),
        soledad_store::Position::origin()
    );
    let mut d = db.create_doc_from_json(SIMPLE, Some(&id("d"))).unwrap();
    let (g1, t1) = parts(db.get_generation_info().unwrap());
    assert_eq!(g1, 1);
    assert!(
        t1.starts_with("T-") && t1.len() == 34 && t1[2..].bytes().all(|b| b.is_ascii_hexdigit()),
        "{t1}"
    );
    d.set_json(NESTED).unwrap();
    db.put_doc(&mut d).unwrap();
    db.delete_doc(&mut d).unwrap();
    let (g3, t3) = parts(db.get_generation_info().unwrap());
    assert_eq!(g3, 3);
    assert_ne!(t1, t3);
    assert_eq!(db.get_trans_id_for_gen(1).unwrap(), t1);
    assert_eq!(db.get_trans_id_for_gen(3).unwrap(), t3);
    assert_eq!(db.get_trans_id_for_gen(0).unwrap(), "");
    assert!(matches!(
        db.get_trans_id_for_gen(4),
        Err(StoreError::InvalidGeneration)
    ));
    let (found, generation) = db.get_doc_with_generation(&id("d")).unwrap().unwrap();
    assert!(found.is_tombstone());
    assert_eq!(generation, 3);
    // Failed writes do not advance the generation.
    assert!(db.create_doc_from_json("[1]", Some(&id("d2"))).is_err());
    assert_eq!(db.get_generation_info().unwrap().generation(), 3);
}

#[test]
fn document_size_limit() {
    let mut db = OpenOptions::new()
        .document_size_limit(Some(20))
        .open_in_memory()
        .unwrap();
    assert_eq!(db.document_size_limit(), Some(20));
    db.create_doc_from_json("{\"k\": \"small\"}", Some(&id("s")))
        .unwrap();
    let big = "{\"k\": \"this is far too big\"}";
    assert!(matches!(
        db.create_doc_from_json(big, Some(&id("b"))),
        Err(StoreError::DocumentTooBig)
    ));
    let mut s = db.get_doc(&id("s"), false).unwrap().unwrap();
    s.set_json(big).unwrap();
    assert!(matches!(
        db.put_doc(&mut s),
        Err(StoreError::DocumentTooBig)
    ));
    assert_eq!(
        db.get_doc(&id("s"), false).unwrap().unwrap().json(),
        Some("{\"k\": \"small\"}")
    );
    assert_eq!(db.get_doc(&id("b"), true).unwrap(), None);
    db.set_document_size_limit(None);
    db.put_doc(&mut s).unwrap();
    assert_eq!(
        db.get_doc(&id("s"), false).unwrap().unwrap().json(),
        Some(big)
    );
}

#[test]
fn replica_uid_is_stable_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plain.db");
    let db = soledad_store::Database::open_unencrypted(&path).unwrap();
    let uid = db.replica_uid().to_owned();
    assert_eq!(uid.len(), 32);
    db.close().unwrap();
    let db = soledad_store::Database::open_unencrypted(&path).unwrap();
    assert_eq!(db.replica_uid(), uid);
    db.close().unwrap();
    // Asking for another uid on an existing file is refused.
    let err = OpenOptions::new()
        .replica_uid("other")
        .open_unencrypted::<JsonContent>(&path)
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidReplicaUid));
    let err = OpenOptions::new()
        .replica_uid("bad uid")
        .open_in_memory::<JsonContent>()
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidReplicaUid));
}

#[test]
fn documents_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plain.db");
    let mut db = soledad_store::Database::open_unencrypted(&path).unwrap();
    db.create_doc_from_json(NESTED, Some(&id("keep"))).unwrap();
    db.close().unwrap();
    let db = soledad_store::Database::open_unencrypted(&path).unwrap();
    assert_eq!(
        db.get_doc(&id("keep"), false).unwrap().unwrap().json(),
        Some(NESTED)
    );
    assert_eq!(db.get_generation_info().unwrap().generation(), 1);
}

#[test]
fn database_is_send() {
    fn assert_send<T: Send>() {}
    assert_send::<soledad_store::Database>();
    assert_send::<soledad_store::OpaqueDatabase>();
    let mut db = db();
    let handle = std::thread::spawn(move || {
        db.create_doc_from_json(SIMPLE, Some(&id("moved"))).unwrap();
        db
    });
    let db = handle.join().unwrap();
    assert!(db.get_doc(&id("moved"), false).unwrap().is_some());
}

#[test]
fn the_size_limit_counts_content_id_and_revision() {
    let json = r#"{"k":"v"}"#;
    // As u1db counts the document given: content 9 + id 1 (+ its revision).
    let mut db = OpenOptions::new()
        .replica_uid("test")
        .document_size_limit(Some(10))
        .open_in_memory()
        .unwrap();
    assert!(matches!(
        db.create_doc_from_json(json, Some(&id("ab"))),
        Err(StoreError::DocumentTooBig)
    ));
    let mut doc = db.create_doc_from_json(json, Some(&id("a"))).unwrap();
    // The same content again, now carrying its revision "test:1": 9 + 1 + 6.
    assert!(matches!(
        db.put_doc(&mut doc),
        Err(StoreError::DocumentTooBig)
    ));
    db.set_document_size_limit(Some(16));
    db.put_doc(&mut doc).unwrap();
}
