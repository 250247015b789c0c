//! Indexes: definitions, maintenance, exact/glob/range queries, keys, counts
//! and the expression language (u1db DatabaseIndexTests).

use crate::util::src;
use serde_json::json;
use soledad_store::SaveConflict;
use soledad_store::{Database, StoreError};

use crate::util::id;
use crate::util::{NESTED, SIMPLE, db, doc, ids};

fn with_docs(index: &[&str], docs: &[(&str, &str)]) -> Database {
    let mut db = db();
    db.create_index("test-idx", index).unwrap();
    for (id, json) in docs {
        db.create_doc_from_json(json, Some(&crate::util::id(id)))
            .unwrap();
    }
    db
}

fn four_docs() -> Database {
    with_docs(
        &["key", "key2"],
        &[
            ("doc1", "{\"key\": \"value3\", \"key2\": \"value4\"}"),
            ("doc2", "{\"key\": \"value2\", \"key2\": \"value3\"}"),
            ("doc3", "{\"key\": \"value2\", \"key2\": \"value2\"}"),
            ("doc4", "{\"key\": \"value1\", \"key2\": \"value1\"}"),
        ],
    )
}

#[test]
fn create_list_and_delete_index() {
    let mut db = db();
    db.create_index("test-idx", &["name"]).unwrap();
    db.create_index("multi", &["a", "lower(b)"]).unwrap();
    assert_eq!(
        db.list_indexes().unwrap(),
        vec![
            (
                "multi".to_owned(),
                vec!["a".to_owned(), "lower(b)".to_owned()]
            ),
            ("test-idx".to_owned(), vec!["name".to_owned()]),
        ]
    );
    db.delete_index("test-idx").unwrap();
    db.delete_index("never-existed").unwrap();
    assert_eq!(db.list_indexes().unwrap().len(), 1);
    assert!(matches!(
        db.get_from_index("test-idx", &["x"]),
        Err(StoreError::IndexDoesNotExist)
    ));
}

#[test]
fn create_index_is_idempotent_and_name_taken() {
    let mut db = db();
    db.create_doc_from_json(SIMPLE, Some(&id("d"))).unwrap();
    db.create_index("test-idx", &["key"]).unwrap();
    db.create_index("test-idx", &["key"]).unwrap();
    assert_eq!(
        ids(&db.get_from_index("test-idx", &["value"]).unwrap()),
        ["d"]
    );
    let err = db.create_index("test-idx", &["stuff"]).unwrap_err();
    assert!(matches!(err, StoreError::IndexNameTakenError));
    let err = db.create_index("test-idx", &["key", "stuff"]).unwrap_err();
    assert!(matches!(err, StoreError::IndexNameTakenError));
    assert_eq!(
        db.list_indexes().unwrap(),
        vec![("test-idx".to_owned(), vec!["key".to_owned()])]
    );
}

#[test]
fn create_index_evaluates_existing_docs_but_not_deleted_ones() {
    let mut db = db();
    db.create_doc_from_json(SIMPLE, Some(&id("d1"))).unwrap();
    let mut d2 = db.create_doc_from_json(SIMPLE, Some(&id("d2"))).unwrap();
    db.delete_doc(&mut d2).unwrap();
    db.create_doc_from_json("{\"\u{e5}\": \"value\"}", Some(&id("unicode")))
        .unwrap();
    db.create_index("test-idx", &["key"]).unwrap();
    assert_eq!(
        ids(&db.get_from_index("test-idx", &["value"]).unwrap()),
        ["d1"]
    );
    db.create_index("non-ascii", &["\u{e5}"]).unwrap();
    assert_eq!(
        ids(&db.get_from_index("non-ascii", &["value"]).unwrap()),
        ["unicode"]
    );
    assert_eq!(db.list_indexes().unwrap()[0].1, ["\u{e5}"]);
}

#[test]
fn deleting_an_index_keeps_shared_expressions() {
    let mut db = with_docs(&["key"], &[("d", SIMPLE)]);
    db.create_index("test-idx2", &["key"]).unwrap();
    db.delete_index("test-idx").unwrap();
    assert_eq!(
        ids(&db.get_from_index("test-idx2", &["value"]).unwrap()),
        ["d"]
    );
    db.delete_index("test-idx2").unwrap();
    db.create_index("test-idx", &["key"]).unwrap();
    assert_eq!(
        ids(&db.get_from_index("test-idx", &["value"]).unwrap()),
        ["d"]
    );
}

#[test]
fn index_definition_parse_errors() {
    let mut db = db();
    for bad in [
        "lower(",
        "unknown(x)",
        "number(x)",
        "number(x, y)",
        "a.",
        "",
        "lower(a, b)",
        "combine()",
    ] {
        let err = db.create_index("bad", &[bad]).unwrap_err();
        assert!(
            matches!(err, StoreError::IndexDefinitionParseError { .. }),
            "{bad:?}: {err:?}"
        );
    }
    let no_expressions: [&str; 0] = [];
    assert!(matches!(
        db.create_index("bad", &no_expressions),
        Err(StoreError::IndexDefinitionParseError { .. })
    ));
    assert!(db.list_indexes().unwrap().is_empty());
}

#[test]
fn writes_maintain_the_index() {
    let mut db = with_docs(&["key"], &[]);
    // create adds
    let mut d = db.create_doc_from_json(SIMPLE, Some(&id("d"))).unwrap();
    let d2 = db.create_doc_from_json(SIMPLE, Some(&id("d2"))).unwrap();
    assert_eq!(
        ids(&db.get_from_index("test-idx", &["value"]).unwrap()),
        ["d", "d2"]
    );
    // put updates
    d.set_json("{\"key\": \"altval\"}").unwrap();
    db.put_doc(&mut d).unwrap();
    assert_eq!(
        ids(&db.get_from_index("test-idx", &["value"]).unwrap()),
        ["d2"]
    );
    assert_eq!(
        ids(&db.get_from_index("test-idx", &["altval"]).unwrap()),
        ["d"]
    );
    // delete removes
    let mut d2 = d2;
    db.delete_doc(&mut d2).unwrap();
    assert!(
        db.get_from_index("test-idx", &["value"])
            .unwrap()
            .is_empty()
    );
    // put adding the key
    let mut e = db.create_doc_from_json("{}", Some(&id("e"))).unwrap();
    assert_eq!(ids(&db.get_from_index("test-idx", &["*"]).unwrap()), ["d"]);
    e.set_json(SIMPLE).unwrap();
    db.put_doc(&mut e).unwrap();
    assert_eq!(
        ids(&db.get_from_index("test-idx", &["*"]).unwrap()),
        ["d", "e"]
    );
    // sync writes update indexes too
    let mut incoming = doc("s", "other:1", Some("{\"key\": \"synced\"}"));
    db.put_doc_if_newer(
        &mut incoming,
        SaveConflict::No,
        Some(&src("other", 1, "T-1")),
    )
    .unwrap();
    assert_eq!(
        ids(&db.get_from_index("test-idx", &["synced"]).unwrap()),
        ["s"]
    );
    // reviving a tombstone indexes it again
    db.create_doc_from_json("{\"key\": \"back\"}", Some(&id("d2")))
        .unwrap();
    assert_eq!(
        ids(&db.get_from_index("test-idx", &["back"]).unwrap()),
        ["d2"]
    );
}

#[test]
fn get_from_index_exact_multi_and_unmatched() {
    let db = with_docs(
        &["key", "key2"],
        &[
            ("multi", "{\"key\": \"value\", \"key2\": \"value2\"}"),
            (
                "list",
                "{\"key\": \"value\", \"key2\": [\"value2-1\", \"value2-2\", \"value2-3\"]}",
            ),
        ],
    );
    assert_eq!(
        ids(&db.get_from_index("test-idx", &["value", "value2"]).unwrap()),
        ["multi"]
    );
    for v in ["value2-1", "value2-2", "value2-3"] {
        assert_eq!(
            ids(&db.get_from_index("test-idx", &["value", v]).unwrap()),
            ["list"]
        );
    }
    assert!(
        db.get_from_index("test-idx", &["value", "nope"])
            .unwrap()
            .is_empty()
    );
    assert!(
        db.get_from_index("test-idx", &["VALUE", "value2"])
            .unwrap()
            .is_empty(),
        "case sensitive"
    );
    // a document matching through several values is returned once
    // ordered by the smallest matching key: ("value", "value2") < ("value", "value2-1")
    assert_eq!(
        ids(&db.get_from_index("test-idx", &["value", "*"]).unwrap()),
        ["multi", "list"]
    );
    assert_eq!(
        db.get_count_from_index("test-idx", &["value", "*"])
            .unwrap(),
        2
    );
    assert_eq!(
        db.get_count_from_index("test-idx", &["value", "value2-2"])
            .unwrap(),
        1
    );
    assert_eq!(
        db.get_count_from_index("test-idx", &["nope", "*"]).unwrap(),
        0
    );
}

#[test]
fn get_from_index_results_are_ordered_by_index_values() {
    let db = four_docs();
    assert_eq!(
        ids(&db.get_from_index("test-idx", &["v*", "*"]).unwrap()),
        ["doc4", "doc3", "doc2", "doc1"]
    );
    let db = with_docs(
        &["key"],
        &[
            ("doc1", "{\"key\": \"value x\"}"),
            ("doc2", "{\"key\": \"value b\"}"),
            ("doc3", "{\"key\": \"value a\"}"),
            ("doc4", "{\"key\": \"value m\"}"),
            ("nokey", "{\"other\": 1}"),
        ],
    );
    assert_eq!(
        ids(&db.get_from_index("test-idx", &["*"]).unwrap()),
        ["doc3", "doc2", "doc4", "doc1"]
    );
    assert_eq!(db.get_count_from_index("test-idx", &["*"]).unwrap(), 4);
}

#[test]
fn get_from_index_globbing() {
    let db = with_docs(
        &["key"],
        &[
            ("d1", "{\"key\": \"value\"}"),
            ("d2", "{\"key\": \"valuable\"}"),
            ("d3", "{\"key\": \"other\"}"),
            ("d4", "{\"key\": \"\"}"),
        ],
    );
    assert_eq!(
        ids(&db.get_from_index("test-idx", &["valu*"]).unwrap()),
        ["d2", "d1"]
    );
    assert_eq!(
        ids(&db.get_from_index("test-idx", &["value*"]).unwrap()),
        ["d1"]
    );
    assert_eq!(
        ids(&db.get_from_index("test-idx", &["V*"]).unwrap()),
        Vec::<String>::new()
    );
    assert_eq!(ids(&db.get_from_index("test-idx", &[""]).unwrap()), ["d4"]);
    assert_eq!(
        ids(&db.get_from_index("test-idx", &["*"]).unwrap()),
        ["d4", "d3", "d2", "d1"]
    );
    // a star inside a value is literal (u1db only globs a trailing star)
    assert!(
        db.get_from_index("test-idx", &["v*lue"])
            .unwrap()
            .is_empty()
    );
}

#[test]
fn get_from_index_sql_wildcards_are_literal() {
    let db = with_docs(
        &["key"],
        &[
            ("pct", "{\"key\": \"va%lue\"}"),
            ("plain", "{\"key\": \"value\"}"),
            ("under", "{\"key\": \"va_lue\"}"),
            ("glob", "{\"key\": \"va[l]ue?\"}"),
        ],
    );
    assert_eq!(
        ids(&db.get_from_index("test-idx", &["va%*"]).unwrap()),
        ["pct"]
    );
    assert_eq!(
        ids(&db.get_from_index("test-idx", &["va_*"]).unwrap()),
        ["under"]
    );
    assert_eq!(
        ids(&db.get_from_index("test-idx", &["va[*"]).unwrap()),
        ["glob"]
    );
    assert_eq!(
        ids(&db.get_from_index("test-idx", &["va%lue"]).unwrap()),
        ["pct"]
    );
    assert_eq!(
        ids(&db
            .get_range_from_index("test-idx", Some(&["va%*"]), Some(&["va_*"]))
            .unwrap()),
        ["pct", "glob", "under"]
    );
}

#[test]
fn get_from_index_errors() {
    let db = with_docs(&["key", "key2"], &[]);
    assert!(matches!(
        db.get_from_index("test-idx", &["v1"]),
        Err(StoreError::InvalidValueForIndex)
    ));
    assert!(matches!(
        db.get_from_index("test-idx", &["v1", "v2", "v3"]),
        Err(StoreError::InvalidValueForIndex)
    ));
    assert!(matches!(
        db.get_from_index("test-idx", &["*", "v2"]),
        Err(StoreError::InvalidGlobbing)
    ));
    assert!(matches!(
        db.get_from_index("test-idx", &["*", "v*"]),
        Err(StoreError::InvalidGlobbing)
    ));
    assert!(matches!(
        db.get_from_index("test-idx", &["v*", "v2"]),
        Err(StoreError::InvalidGlobbing)
    ));
    assert!(matches!(
        db.get_from_index("test-idx", &["v*", "v*"]),
        Err(StoreError::InvalidGlobbing)
    ));
    assert!(matches!(
        db.get_count_from_index("test-idx", &["*", "v2"]),
        Err(StoreError::InvalidGlobbing)
    ));
    assert!(matches!(
        db.get_count_from_index("test-idx", &["v"]),
        Err(StoreError::InvalidValueForIndex)
    ));
    assert!(matches!(
        db.get_from_index("nope", &["v"]),
        Err(StoreError::IndexDoesNotExist)
    ));
    assert!(matches!(
        db.get_count_from_index("nope", &["v"]),
        Err(StoreError::IndexDoesNotExist)
    ));
    assert!(matches!(
        db.get_index_keys("nope"),
        Err(StoreError::IndexDoesNotExist)
    ));
    assert!(matches!(
        db.get_range_from_index("nope", Some(&["a"]), None),
        Err(StoreError::IndexDoesNotExist)
    ));
    // allowed shapes
    db.get_from_index("test-idx", &["v", "*"]).unwrap();
    db.get_from_index("test-idx", &["v*", "*"]).unwrap();
    db.get_from_index("test-idx", &["v", "v*"]).unwrap();
    db.get_from_index("test-idx", &["*", "*"]).unwrap();
}

#[test]
fn get_from_index_sees_conflicts() {
    let mut db = with_docs(
        &["key", "key2"],
        &[("d", "{\"key\": \"value\", \"key2\": \"value2\"}")],
    );
    let mut alt = doc(
        "d",
        "alternate:1",
        Some("{\"key\": \"value\", \"key2\": \"value2\", \"x\": 1}"),
    );
    db.put_doc_if_newer(&mut alt, SaveConflict::Yes, None)
        .unwrap();
    let found = db.get_from_index("test-idx", &["value", "value2"]).unwrap();
    assert_eq!(found.len(), 1);
    assert!(found[0].has_conflicts);
    assert_eq!(found[0].rev.as_deref(), Some("alternate:1"));
    let ranged = db
        .get_range_from_index("test-idx", Some(&["a", "a"]), None)
        .unwrap();
    assert!(ranged[0].has_conflicts);
}

#[test]
fn range_single_column() {
    let db = with_docs(
        &["key"],
        &[
            ("doc1", "{\"key\": \"value3\"}"),
            ("doc2", "{\"key\": \"value2\"}"),
            ("doc3", "{\"key\": \"value4\"}"),
            ("doc4", "{\"key\": \"value1\"}"),
        ],
    );
    let r = |s: Option<&[&str]>, e: Option<&[&str]>| {
        ids(&db.get_range_from_index("test-idx", s, e).unwrap())
    };
    assert_eq!(r(Some(&["value2"]), Some(&["value3"])), ["doc2", "doc1"]);
    assert_eq!(r(Some(&["value2"]), None), ["doc2", "doc1", "doc3"]);
    assert_eq!(r(None, Some(&["value2"])), ["doc4", "doc2"]);
    assert_eq!(r(None, None), ["doc4", "doc2", "doc1", "doc3"]);
    assert_eq!(
        r(Some(&[]), Some(&[])),
        ["doc4", "doc2", "doc1", "doc3"],
        "empty is an open end"
    );
    assert_eq!(
        r(Some(&["value3"]), Some(&["value2"])),
        Vec::<String>::new()
    );
    assert_eq!(r(Some(&["val*"]), Some(&["value2*"])), ["doc4", "doc2"]);
    assert_eq!(r(Some(&["*"]), Some(&["value1"])), ["doc4"]);
    assert!(matches!(
        db.get_range_from_index("test-idx", Some(&["a", "b"]), None),
        Err(StoreError::InvalidValueForIndex)
    ));
}

#[test]
fn range_multi_column() {
    let db = four_docs();
    let r = |s: Option<&[&str]>, e: Option<&[&str]>| {
        ids(&db.get_range_from_index("test-idx", s, e).unwrap())
    };
    assert_eq!(
        r(Some(&["value2", "value2"]), Some(&["value2", "value3"])),
        ["doc3", "doc2"]
    );
    assert_eq!(r(Some(&["value2", "value3"]), None), ["doc2", "doc1"]);
    assert_eq!(
        r(None, Some(&["value2", "value3"])),
        ["doc4", "doc3", "doc2"]
    );
    assert_eq!(r(None, Some(&["value2", "*"])), ["doc4", "doc3", "doc2"]);
    assert_eq!(r(Some(&["value2", "*"]), None), ["doc3", "doc2", "doc1"]);
    assert_eq!(r(Some(&["value2", "val*"]), None), ["doc3", "doc2", "doc1"]);
    assert_eq!(r(None, Some(&["value2", "val*"])), ["doc4", "doc3", "doc2"]);
    assert_eq!(
        r(Some(&["value1", "value3"]), Some(&["value3", "value3"])),
        ["doc2"],
        "each column bounded separately"
    );
    for (s, e) in [
        (Some(&["*", "value2"][..]), None),
        (Some(&["*", "v*"][..]), None),
        (None, Some(&["*", "value2"][..])),
        (None, Some(&["*", "v*"][..])),
    ] {
        assert!(matches!(
            db.get_range_from_index("test-idx", s, e),
            Err(StoreError::InvalidGlobbing)
        ));
    }
}

#[test]
fn index_keys() {
    let mut db = with_docs(&["key"], &[]);
    assert!(db.get_index_keys("test-idx").unwrap().is_empty());
    for (id, v) in [("a", "value1"), ("b", "value2"), ("c", "value2")] {
        db.create_doc(&json!({ "key": v }), Some(&crate::util::id(id)))
            .unwrap();
    }
    assert_eq!(
        db.get_index_keys("test-idx").unwrap(),
        vec![vec!["value1".to_owned()], vec!["value2".to_owned()]]
    );
    let db = four_docs();
    let keys = db.get_index_keys("test-idx").unwrap();
    assert_eq!(
        keys,
        [
            ["value1", "value1"],
            ["value2", "value2"],
            ["value2", "value3"],
            ["value3", "value4"]
        ]
        .iter()
        .map(|k| k.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
        .collect::<Vec<_>>()
    );
}

#[test]
fn expression_lower_split_words_number_bool() {
    let mut db = db();
    db.create_index("lower", &["lower(name)"]).unwrap();
    db.create_index("plain", &["name"]).unwrap();
    db.create_index("words", &["split_words(name)"]).unwrap();
    db.create_index("num", &["number(foo, 5)"]).unwrap();
    db.create_index("flag", &["bool(flag)"]).unwrap();
    db.create_doc(
        &json!({"name": "Foo  Bar ", "foo": 12, "flag": true}),
        Some(&id("a")),
    )
    .unwrap();
    db.create_doc(
        &json!({"name": " baz", "foo": 123456, "flag": false}),
        Some(&id("b")),
    )
    .unwrap();
    db.create_doc(
        &json!({"foo": "this is not a maigret painting", "flag": 42}),
        Some(&id("c")),
    )
    .unwrap();
    assert_eq!(
        ids(&db.get_from_index("lower", &["foo  bar "]).unwrap()),
        ["a"]
    );
    assert!(
        db.get_from_index("lower", &["Foo  Bar "])
            .unwrap()
            .is_empty()
    );
    assert!(
        db.get_from_index("plain", &["foo  bar "])
            .unwrap()
            .is_empty()
    );
    assert_eq!(ids(&db.get_from_index("words", &["Foo"]).unwrap()), ["a"]);
    assert_eq!(ids(&db.get_from_index("words", &["Bar"]).unwrap()), ["a"]);
    assert_eq!(ids(&db.get_from_index("words", &["baz"]).unwrap()), ["b"]);
    assert_eq!(ids(&db.get_from_index("num", &["00012"]).unwrap()), ["a"]);
    assert_eq!(ids(&db.get_from_index("num", &["123456"]).unwrap()), ["b"]);
    assert_eq!(
        db.get_index_keys("num").unwrap(),
        vec![vec!["00012".to_owned()], vec!["123456".to_owned()]]
    );
    assert_eq!(ids(&db.get_from_index("flag", &["1"]).unwrap()), ["a"]);
    assert_eq!(ids(&db.get_from_index("flag", &["0"]).unwrap()), ["b"]);
    assert_eq!(
        db.get_index_keys("flag").unwrap().len(),
        2,
        "a non-bool is not indexed"
    );
}

#[test]
fn expression_combine_is_null_and_nesting() {
    let mut db = db();
    db.create_index("comb", &["combine(number(foo, 5), lower(bar))"])
        .unwrap();
    db.create_index("null", &["is_null(foo)"]).unwrap();
    db.create_index("nested", &["sub.doc"]).unwrap();
    db.create_index("list", &["foo.zap"]).unwrap();
    db.create_doc(&json!({"foo": 12, "bar": "ALLCAPS"}), Some(&id("a")))
        .unwrap();
    db.create_doc(&json!({"foo": null}), Some(&id("b")))
        .unwrap();
    db.create_doc(&json!({"bar": 1}), Some(&id("c"))).unwrap();
    db.create_doc_from_json(NESTED, Some(&id("n"))).unwrap();
    db.create_doc(
        &json!({"foo": [{"zap": "bar"}, {"zap": "baz"}, "x"]}),
        Some(&id("l")),
    )
    .unwrap();
    assert_eq!(ids(&db.get_from_index("comb", &["00012"]).unwrap()), ["a"]);
    assert_eq!(
        ids(&db.get_from_index("comb", &["allcaps"]).unwrap()),
        ["a"]
    );
    assert_eq!(
        ids(&db.get_from_index("null", &["1"]).unwrap()),
        ["b", "c", "n"]
    );
    assert_eq!(ids(&db.get_from_index("null", &["0"]).unwrap()), ["a", "l"]);
    assert_eq!(
        ids(&db.get_from_index("nested", &["underneath"]).unwrap()),
        ["n"]
    );
    assert_eq!(ids(&db.get_from_index("list", &["bar"]).unwrap()), ["l"]);
    assert_eq!(ids(&db.get_from_index("list", &["baz"]).unwrap()), ["l"]);
}

#[test]
fn unicode_values() {
    let mut db = with_docs(&["key"], &[]);
    db.create_doc(&json!({"key": "valu\u{e5}"}), Some(&id("u")))
        .unwrap();
    db.create_doc(&json!({"key": "\u{10FFFF}x"}), Some(&id("max")))
        .unwrap();
    assert_eq!(
        ids(&db.get_from_index("test-idx", &["valu\u{e5}"]).unwrap()),
        ["u"]
    );
    assert_eq!(
        ids(&db.get_from_index("test-idx", &["valu*"]).unwrap()),
        ["u"]
    );
    assert_eq!(
        ids(&db.get_from_index("test-idx", &["*"]).unwrap()),
        ["u", "max"]
    );
    assert_eq!(
        ids(&db.get_from_index("test-idx", &["\u{10FFFF}*"]).unwrap()),
        ["max"]
    );
}

#[test]
fn indexes_persist_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("idx.db");
    let mut db = Database::open_unencrypted(&path).unwrap();
    db.create_index("by-key", &["lower(key)"]).unwrap();
    db.create_doc(&json!({"key": "ONE"}), Some(&id("one")))
        .unwrap();
    db.close().unwrap();
    let mut db = Database::open_unencrypted(&path).unwrap();
    db.create_doc(&json!({"key": "Two"}), Some(&id("two")))
        .unwrap();
    assert_eq!(
        ids(&db.get_from_index("by-key", &["*"]).unwrap()),
        ["one", "two"]
    );
}
