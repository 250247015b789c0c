//! Random operation sequences checked against a simple model: documents,
//! generations, whats_changed and index queries must agree with it.

use crate::util::parts;
use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::json;
use soledad_store::StoreError;

use crate::util::id;
use crate::util::{db, ids};

#[derive(Debug, Clone)]
enum Op {
    Create(usize, usize),
    Update(usize, usize),
    Delete(usize),
}

const IDS: [&str; 4] = ["a", "b", "c", "d"];
const VALUES: [&str; 5] = ["x", "X", "xy", "y", "z%_"];

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..IDS.len(), 0..VALUES.len()).prop_map(|(i, v)| Op::Create(i, v)),
        (0..IDS.len(), 0..VALUES.len()).prop_map(|(i, v)| Op::Update(i, v)),
        (0..IDS.len()).prop_map(Op::Delete),
    ]
}

/// Documents the model expects under `lower(k)` matching `keep`, ordered by key then id.
fn expected(model: &BTreeMap<&str, Option<&str>>, keep: impl Fn(&str) -> bool) -> Vec<String> {
    let mut hits: Vec<(String, &str)> = model
        .iter()
        .filter_map(|(id, v)| v.map(|v| (v.to_lowercase(), *id)))
        .filter(|(key, _)| keep(key))
        .collect();
    hits.sort();
    hits.into_iter().map(|(_, id)| id.to_owned()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn store_agrees_with_model(ops in proptest::collection::vec(op(), 1..40)) {
        let mut db = db();
        db.create_index("k", &["lower(k)"]).unwrap();
        let mut model: BTreeMap<&str, Option<&str>> = BTreeMap::new();
        let mut writes = 0u64;
        for op in ops {
            match op {
                Op::Create(i, v) => {
                    let result = db.create_doc(&json!({ "k": VALUES[v] }), Some(&id(IDS[i])));
                    if matches!(model.get(IDS[i]), Some(Some(_))) {
                        prop_assert!(matches!(result, Err(StoreError::RevisionConflict)));
                    } else {
                        result.unwrap();
                        model.insert(IDS[i], Some(VALUES[v]));
                        writes += 1;
                    }
                }
                Op::Update(i, v) => {
                    if let Some(mut d) = db.get_doc(&id(IDS[i]), false).unwrap() {
                        d.set_value(&json!({ "k": VALUES[v] })).unwrap();
                        db.put_doc(&mut d).unwrap();
                        model.insert(IDS[i], Some(VALUES[v]));
                        writes += 1;
                    }
                }
                Op::Delete(i) => {
                    match db.get_doc(&id(IDS[i]), true).unwrap() {
                        Some(mut d) if !d.is_tombstone() => {
                            db.delete_doc(&mut d).unwrap();
                            model.insert(IDS[i], None);
                            writes += 1;
                        }
                        Some(mut d) => {
                            prop_assert!(matches!(db.delete_doc(&mut d), Err(StoreError::DocumentAlreadyDeleted)));
                        }
                        None => {}
                    }
                }
            }
        }
        // documents
        for id in IDS {
            let stored = db.get_doc(&crate::util::id(id), true).unwrap();
            match model.get(id) {
                None => prop_assert!(stored.is_none()),
                Some(None) => prop_assert!(stored.unwrap().is_tombstone()),
                Some(Some(v)) => prop_assert_eq!(stored.unwrap().value().unwrap(), Some(json!({ "k": v }))),
            }
        }
        // generations and the change feed
        let (generation, trans_id) = parts(db.get_generation_info().unwrap());
        prop_assert_eq!(generation, writes);
        let changes = db.whats_changed(0).unwrap();
        prop_assert_eq!(changes.generation, writes);
        prop_assert_eq!(&changes.transaction_id, &trans_id);
        prop_assert_eq!(changes.changes.len(), model.len());
        prop_assert!(changes.changes.windows(2).all(|w| w[0].generation < w[1].generation));
        for change in &changes.changes {
            prop_assert_eq!(db.get_doc_with_generation(&change.doc_id).unwrap().unwrap().1, change.generation);
            prop_assert_eq!(db.get_trans_id_for_gen(change.generation).unwrap(), change.transaction_id.clone());
        }
        if let Some(last) = changes.changes.last() {
            prop_assert_eq!(last.generation, generation);
        }
        // indexes
        prop_assert_eq!(ids(&db.get_from_index("k", &["*"]).unwrap()), expected(&model, |_| true));
        prop_assert_eq!(ids(&db.get_from_index("k", &["x*"]).unwrap()), expected(&model, |k| k.starts_with('x')));
        prop_assert_eq!(ids(&db.get_from_index("k", &["x"]).unwrap()), expected(&model, |k| k == "x"));
        prop_assert_eq!(ids(&db.get_from_index("k", &["z%*"]).unwrap()), expected(&model, |k| k.starts_with("z%")));
        prop_assert_eq!(
            ids(&db.get_range_from_index("k", Some(&["xy"]), Some(&["z"])).unwrap()),
            expected(&model, |k| ("xy"..="z").contains(&k))
        );
        prop_assert_eq!(db.get_count_from_index("k", &["*"]).unwrap(), expected(&model, |_| true).len() as u64);
    }
}

#[derive(Debug, Clone)]
enum Edit {
    Write(usize, usize),
    Delete(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        3 => (0..IDS.len(), 0..VALUES.len()).prop_map(|(i, v)| Edit::Write(i, v)),
        1 => (0..IDS.len()).prop_map(Edit::Delete),
    ]
}

fn apply(db: &mut soledad_store::Database, edits: &[Edit]) {
    for edit in edits {
        match *edit {
            Edit::Write(i, v) => match db.get_doc(&id(IDS[i]), true).unwrap() {
                Some(mut d) if d.has_conflicts => {
                    // resolve first: the user picks the current revision's content
                    let revs: Vec<soledad_store::Rev> = db
                        .get_doc_conflicts(&id(IDS[i]))
                        .unwrap()
                        .into_iter()
                        .map(|c| c.rev.unwrap())
                        .collect();
                    db.resolve_doc(&mut d, &revs).unwrap();
                }
                Some(mut d) => {
                    d.set_value(&json!({ "k": VALUES[v] })).unwrap();
                    db.put_doc(&mut d).unwrap();
                }
                None => {
                    db.create_doc(&json!({ "k": VALUES[v] }), Some(&id(IDS[i])))
                        .unwrap();
                }
            },
            Edit::Delete(i) => {
                if let Some(mut d) = db.get_doc(&id(IDS[i]), false).unwrap()
                    && !d.has_conflicts
                {
                    db.delete_doc(&mut d).unwrap();
                }
            }
        }
    }
}

fn snapshot(
    db: &soledad_store::Database,
) -> Vec<(String, Option<String>, Option<serde_json::Value>)> {
    db.get_all_docs(true)
        .unwrap()
        .1
        .into_iter()
        .map(|d| {
            (
                d.doc_id.to_string(),
                d.rev.as_ref().map(ToString::to_string),
                d.value().unwrap(),
            )
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Syncing converges: within a few syncs (one, plus one more when the source
    /// auto-resolved a conflict and must send the merged revision back) both
    /// replicas hold the same current revision and content of every document,
    /// the target never stores conflicts, and a further sync exchanges nothing.
    #[test]
    fn sync_converges(rounds in proptest::collection::vec(
        (proptest::collection::vec(edit(), 0..6), proptest::collection::vec(edit(), 0..6)), 1..4)
    ) {
        let mut a = crate::util::db_named("alice");
        let mut b = crate::util::db_named("bob");
        for (on_a, on_b) in rounds {
            apply(&mut a, &on_a);
            apply(&mut b, &on_b);
            for _ in 0..3 {
                crate::util::sync(&mut a, &mut b).unwrap();
                if snapshot(&a) == snapshot(&b) {
                    break;
                }
            }
            prop_assert_eq!(snapshot(&a), snapshot(&b));
            for d in b.get_all_docs(true).unwrap().1 {
                prop_assert!(!d.has_conflicts, "the target never stores conflicts");
            }
            let generations = (a.get_generation_info().unwrap(), b.get_generation_info().unwrap());
            crate::util::sync(&mut a, &mut b).unwrap();
            prop_assert_eq!((a.get_generation_info().unwrap(), b.get_generation_info().unwrap()), generations);
        }
    }
}
