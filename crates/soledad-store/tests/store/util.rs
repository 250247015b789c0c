//! Shared helpers.

use serde_json::{Value, json};
use soledad_store::{Database, DocId, Document, JsonContent, OpenOptions, Rev};

/// A fresh in-memory JSON database whose replica uid is `test`.
pub fn db() -> Database {
    OpenOptions::new()
        .replica_uid("test")
        .open_in_memory()
        .unwrap()
}

/// A fresh in-memory JSON database with the given replica uid.
pub fn db_named(uid: &str) -> Database {
    OpenOptions::new()
        .replica_uid(uid)
        .open_in_memory()
        .unwrap()
}

pub const SIMPLE: &str = "{\"key\": \"value\"}";
pub const NESTED: &str = "{\"key\": \"value\", \"sub\": {\"doc\": \"underneath\"}}";

/// A document as it would arrive from another replica.
pub fn doc(doc_id: &str, rev: &str, json: Option<&str>) -> Document {
    Document::new(
        id(doc_id),
        Some(self::rev(rev)),
        json.map(|j| JsonContent::from_json(j).unwrap()),
    )
}

/// The stored content as a value.
pub fn value_of(db: &Database, doc_id: &str) -> Option<Value> {
    db.get_doc(&id(doc_id), true)
        .unwrap()
        .and_then(|d| d.value().unwrap())
}

/// Shorthand for a JSON object.
pub fn obj(key: &str, value: &str) -> Value {
    json!({ key: value })
}

/// Doc ids of a result list.
pub fn ids(docs: &[Document]) -> Vec<String> {
    docs.iter().map(|d| d.doc_id.to_string()).collect()
}

/// `(rev, content)` pairs of `get_doc_conflicts`, first kept in place and the
/// rest sorted (u1db's `assertGetDocConflicts`).
pub fn conflicts_of(db: &Database, doc_id: &str) -> Vec<(String, Option<Value>)> {
    let mut out: Vec<(String, Option<Value>)> = db
        .get_doc_conflicts(&id(doc_id))
        .unwrap()
        .into_iter()
        .map(|d| (d.rev.clone().unwrap().into_string(), d.value().unwrap()))
        .collect();
    if out.len() > 1 {
        out[1..].sort_by(|a, b| a.0.cmp(&b.0));
    }
    out
}

/// Expected conflicts, written like u1db's tests.
pub fn expect_conflicts(list: &[(&str, Option<&str>)]) -> Vec<(String, Option<Value>)> {
    let mut out: Vec<(String, Option<Value>)> = list
        .iter()
        .map(|(rev, json)| {
            (
                (*rev).to_owned(),
                json.map(|j| serde_json::from_str(j).unwrap()),
            )
        })
        .collect();
    if out.len() > 1 {
        out[1..].sort_by(|a, b| a.0.cmp(&b.0));
    }
    out
}

/// u1db's sync algorithm between two local databases (source pushes its
/// changes, target applies them without saving conflicts and returns what the
/// source has not seen, which the source applies saving conflicts). Returns
/// the source generation before the sync.
pub fn sync(
    source: &mut Database,
    target: &mut Database,
) -> Result<u64, soledad_store::StoreError> {
    use soledad_store::{Position, PutState, ReplicaUid, SaveConflict, Source};
    let source_uid = ReplicaUid::parse(source.replica_uid())?;
    let target_uid = ReplicaUid::parse(target.replica_uid())?;
    let start_gen = source.get_generation_info()?.generation();
    // What the target recorded about us must be in our log (we were not rolled back).
    let source_known = target.get_replica_gen_and_trans_id(&source_uid)?;
    source.validate_gen_and_trans_id(&source_known)?;
    // What we recorded about the target must be in its log.
    let target_known = source.get_replica_gen_and_trans_id(&target_uid)?;
    target.validate_gen_and_trans_id(&target_known)?;
    let outgoing = source.docs_changed_since(source_known.generation(), usize::MAX)?;
    let mut seen = std::collections::HashMap::new();
    target.batch(|b| {
        for changed in outgoing {
            let mut doc = changed.doc;
            let from = Source::new(
                source_uid.clone(),
                Position::parse(changed.generation, &changed.transaction_id)?,
            );
            let (state, at_gen) = b.put_doc_if_newer(&mut doc, SaveConflict::No, Some(&from))?;
            if matches!(state, PutState::Inserted | PutState::Converged) {
                seen.insert(doc.doc_id.clone(), at_gen);
            }
        }
        Ok::<(), soledad_store::StoreError>(())
    })?;
    let changes = target.whats_changed(target_known.generation())?;
    let returned: Vec<_> = target
        .docs_changed_since(target_known.generation(), usize::MAX)?
        .into_iter()
        .filter(|c| seen.get(&c.doc.doc_id).is_none_or(|g| *g < c.generation))
        .collect();
    let mut inserted = 0u64;
    source.batch(|b| {
        for changed in returned {
            let mut doc = changed.doc;
            let from = Source::new(
                target_uid.clone(),
                Position::parse(changed.generation, &changed.transaction_id)?,
            );
            let (state, _) = b.put_doc_if_newer(&mut doc, SaveConflict::Yes, Some(&from))?;
            if state != PutState::Converged && state != PutState::Superseded {
                inserted += 1;
            }
        }
        let at = Position::parse(changes.generation, &changes.transaction_id)?;
        b.set_replica_gen_and_trans_id(&Source::new(target_uid.clone(), at))
    })?;
    let current = source.get_generation_info()?;
    if current.generation() == start_gen + inserted {
        target.set_replica_gen_and_trans_id(&Source::new(source_uid, current))?;
    }
    Ok(start_gen)
}

/// A parsed document id (test input is valid).
pub fn id(doc_id: &str) -> DocId {
    DocId::parse(doc_id).unwrap()
}

/// Parsed document ids (test input is valid).
pub fn ids_of(doc_ids: &[&str]) -> Vec<DocId> {
    doc_ids.iter().map(|d| id(d)).collect()
}

/// A parsed revision (test input is valid).
pub fn rev(rev: &str) -> Rev {
    Rev::parse(rev).unwrap()
}

/// Parsed revisions (test input is valid).
pub fn revs_of(revs: &[&str]) -> Vec<Rev> {
    revs.iter().map(|r| rev(r)).collect()
}

/// A parsed replica uid (test input is valid).
pub fn uid(uid: &str) -> soledad_store::ReplicaUid {
    soledad_store::ReplicaUid::parse(uid).unwrap()
}

/// A parsed position (test input is valid).
pub fn pos(generation: u64, trans_id: &str) -> soledad_store::Position {
    soledad_store::Position::parse(generation, trans_id).unwrap()
}

/// A parsed source (test input is valid).
pub fn src(replica: &str, generation: u64, trans_id: &str) -> soledad_store::Source {
    soledad_store::Source::new(uid(replica), pos(generation, trans_id))
}

/// A position as `(generation, transaction id)` for comparisons.
pub fn parts(position: soledad_store::Position) -> (u64, String) {
    (
        position.generation(),
        position.transaction_id().as_str().to_owned(),
    )
}
