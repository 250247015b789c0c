//! A small encrypted notes database: create, index, query, and a sync conflict
//! resolved by hand. Run: `cargo run -p soledad-store --example local_notes`.

use serde_json::json;
use soledad_store::{
    Database, DocId, Document, JsonContent, Position, PutState, ReplicaUid, Rev, SaveConflict,
    Source, StoreError,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    // In the client the key is derived from the storage secret (HKDF "local-db").
    let key = [0x11u8; 32];
    let mut db = Database::open_encrypted(dir.path().join("notes.db"), &key)?;

    // Ids are parsed once, where they enter: a bad one is refused here.
    let taxes: DocId = "taxes".parse()?;
    db.create_index("by-tag", &["lower(tags)"])?;
    db.batch(|b| {
        b.create_doc(
            &json!({"title": "Groceries", "tags": ["Home", "todo"]}),
            Some(&DocId::parse("groceries")?),
        )?;
        b.create_doc_from_json(r#"{"title": "Taxes", "tags": ["todo"]}"#, Some(&taxes))?;
        Ok::<(), StoreError>(())
    })?;
    for doc in db.get_from_index("by-tag", &["todo"])? {
        println!(
            "todo: {} (rev {})",
            doc.json().unwrap_or_default(),
            doc.rev.as_deref().unwrap_or_default()
        );
    }

    // Another device edited "taxes" concurrently; sync brings its revision.
    let theirs = JsonContent::from_json(r#"{"title": "Taxes 2026", "tags": ["todo"]}"#)?;
    let mut incoming = Document::new(taxes.clone(), Some(Rev::parse("phone:1")?), Some(theirs));
    let phone = Source::new(
        ReplicaUid::parse("phone")?,
        Position::parse(1, "T-phone-1")?,
    );
    let (state, _) = db.put_doc_if_newer(&mut incoming, SaveConflict::Yes, Some(&phone))?;
    assert_eq!(state, PutState::Conflicted);
    let versions = db.get_doc_conflicts(&taxes)?;
    println!("{} versions of taxes", versions.len());
    let revs: Vec<Rev> = versions.iter().filter_map(|d| d.rev.clone()).collect();
    let mut merged = versions[0].clone();
    merged.set_value(&json!({"title": "Taxes 2026", "tags": ["todo", "urgent"]}))?;
    db.resolve_doc(&mut merged, &revs)?;
    println!(
        "resolved to rev {}",
        merged.rev.as_deref().unwrap_or_default()
    );
    Ok(())
}
