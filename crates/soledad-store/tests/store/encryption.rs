//! Opening: SQLCipher with a raw key, wrong keys, plaintext only on request,
//! schema checks, corrupt files.

use crate::util::id;
use crate::util::{pos, src, uid};
use soledad_store::{Database, JsonContent, OpaqueDatabase, OpenOptions, StoreError};

const MARKER: &str = "MARKER-9f3c2a7e-plaintext-must-not-appear";

fn files_of(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        out.push((
            entry.file_name().to_string_lossy().into_owned(),
            std::fs::read(entry.path()).unwrap(),
        ));
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn keyed_database_hides_content_and_needs_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("client.db");
    let key = [0x42u8; 32];
    let mut db = Database::open_encrypted(&path, &key).unwrap();
    db.create_index("m", &["marker"]).unwrap();
    let json = format!("{{\"marker\": \"{MARKER}\"}}");
    db.create_doc_from_json(&json, Some(&id(MARKER))).unwrap();
    db.set_replica_gen_and_trans_id(&src("peer", 1, MARKER))
        .unwrap();
    // While open (data in the -wal file) ...
    let open_files = files_of(dir.path());
    assert!(
        open_files.iter().any(|(name, _)| name.ends_with("-wal")),
        "WAL mode: {open_files:?}"
    );
    for (name, bytes) in &open_files {
        assert!(
            !contains(bytes, MARKER.as_bytes()),
            "marker found in {name} while open"
        );
    }
    db.close().unwrap();
    // ... and after close.
    let closed_files = files_of(dir.path());
    assert!(!closed_files.is_empty());
    for (name, bytes) in &closed_files {
        assert!(
            !contains(bytes, MARKER.as_bytes()),
            "marker found in {name} after close"
        );
        assert!(
            !contains(bytes, b"SQLite format 3"),
            "{name} has a plaintext header"
        );
    }
    // Wrong key: typed error.
    let err = Database::open_encrypted(&path, &[0x43u8; 32]).unwrap_err();
    assert!(matches!(err, StoreError::WrongKeyOrNotADatabase), "{err:?}");
    // No key: typed error too (never a silent plaintext database).
    let err = Database::open_unencrypted(&path).unwrap_err();
    assert!(matches!(err, StoreError::WrongKeyOrNotADatabase), "{err:?}");
    // Right key reads it back.
    let db = Database::open_encrypted(&path, &key).unwrap();
    let read = db.get_doc(&id(MARKER), false).unwrap().unwrap();
    assert_eq!(read.json(), Some(json.as_str()));
    assert_eq!(db.get_from_index("m", &[MARKER]).unwrap().len(), 1);
    assert_eq!(
        db.get_replica_gen_and_trans_id(&uid("peer")).unwrap(),
        pos(1, MARKER)
    );
}

#[test]
fn plaintext_file_cannot_be_opened_with_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plain.db");
    let mut db = Database::open_unencrypted(&path).unwrap();
    db.create_doc_from_json("{\"visible\": \"yes-plaintext\"}", Some(&id("p")))
        .unwrap();
    db.close().unwrap();
    let bytes = std::fs::read(&path).unwrap();
    assert!(
        bytes.starts_with(b"SQLite format 3"),
        "an unencrypted file is really plaintext"
    );
    let err = Database::open_encrypted(&path, &[1u8; 32]).unwrap_err();
    assert!(matches!(err, StoreError::WrongKeyOrNotADatabase), "{err:?}");
}

#[test]
fn garbage_and_truncated_files_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.db");
    std::fs::write(&garbage, vec![0xA5u8; 8192]).unwrap();
    assert!(matches!(
        Database::open_encrypted(&garbage, &[0u8; 32]),
        Err(StoreError::WrongKeyOrNotADatabase)
    ));
    assert!(matches!(
        Database::open_unencrypted(&garbage),
        Err(StoreError::WrongKeyOrNotADatabase)
    ));
    // a keyed file cut short
    let path = dir.path().join("cut.db");
    let key = [9u8; 32];
    let mut db = Database::open_encrypted(&path, &key).unwrap();
    db.create_doc_from_json("{\"a\": 1}", Some(&id("a")))
        .unwrap();
    db.close().unwrap();
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 3]).unwrap();
    let result = Database::open_encrypted(&path, &key)
        .and_then(|db| db.get_doc(&id("a"), false).map(|_| ()));
    assert!(result.is_err(), "a truncated file must not read as healthy");
    // a flipped byte inside every encrypted page (SQLCipher's per-page HMAC)
    let path = dir.path().join("flip.db");
    let mut db = Database::open_encrypted(&path, &key).unwrap();
    db.create_doc_from_json("{\"a\": 1}", Some(&id("a")))
        .unwrap();
    db.close().unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    let page = soledad_store::PAGE_SIZE_BYTES as usize;
    assert_eq!(bytes.len() % page, 0);
    for start in (0..bytes.len()).step_by(page) {
        bytes[start + 1000] ^= 0xFF;
    }
    std::fs::write(&path, &bytes).unwrap();
    let result =
        Database::open_encrypted(&path, &key).and_then(|db| db.get_all_docs(true).map(|_| ()));
    assert!(result.is_err(), "tampering must be detected");
}

#[test]
fn payload_kind_is_checked_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("server.db");
    let db = OpaqueDatabase::open_opaque_unencrypted(&path).unwrap();
    db.close().unwrap();
    let err = Database::open_unencrypted(&path).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::WrongPayloadKind {
                expected: "json",
                ..
            }
        ),
        "{err:?}"
    );
    let client = dir.path().join("client.db");
    Database::open_unencrypted(&client)
        .unwrap()
        .close()
        .unwrap();
    let err = OpenOptions::new()
        .open_unencrypted::<Vec<u8>>(&client)
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::WrongPayloadKind {
                expected: "opaque",
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn newer_schema_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("future.db");
    Database::open_unencrypted(&path).unwrap().close().unwrap();
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute(
            "UPDATE meta SET value = '99' WHERE key = 'schema_version'",
            [],
        )
        .unwrap();
    }
    let err = Database::open_unencrypted(&path).unwrap_err();
    assert!(
        matches!(err, StoreError::UnsupportedSchemaVersion { found: 99 }),
        "{err:?}"
    );
}

#[test]
fn page_size_is_fixed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plain.db");
    Database::open_unencrypted(&path).unwrap().close().unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    let page_size: u32 = conn
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .unwrap();
    assert_eq!(page_size, soledad_store::PAGE_SIZE_BYTES);
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    // the keyed variant reopens with the same page size
    let keyed = dir.path().join("keyed.db");
    let key = [3u8; 32];
    let mut db = OpenOptions::new()
        .open_encrypted::<JsonContent>(&keyed, &key)
        .unwrap();
    db.create_doc_from_json("{}", Some(&id("x"))).unwrap();
    db.close().unwrap();
    let db = OpenOptions::new()
        .open_encrypted::<JsonContent>(&keyed, &key)
        .unwrap();
    assert!(db.get_doc(&id("x"), false).unwrap().is_some());
}
