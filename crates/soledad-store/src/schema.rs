//! The SQL schema, created in one transaction and versioned in `meta`.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use crate::error::{Result, StoreError};
use crate::ids;
use crate::vectorclock::is_valid_replica_uid;

/// Version written into new files; files with a larger version are refused.
pub(crate) const SCHEMA_VERSION: u32 = 1;

const CREATE: &str = "
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
-- generation before content: reading it never walks a large content's overflow pages
CREATE TABLE document (
    doc_id TEXT PRIMARY KEY,
    generation INTEGER NOT NULL,
    doc_rev TEXT NOT NULL,
    content BLOB
);
CREATE TABLE transaction_log (
    generation INTEGER PRIMARY KEY,
    doc_id TEXT NOT NULL,
    transaction_id TEXT NOT NULL
);
CREATE TABLE conflicts (
    doc_id TEXT NOT NULL,
    doc_rev TEXT NOT NULL,
    content BLOB,
    UNIQUE (doc_id, doc_rev)
);
CREATE TABLE sync_log (
    replica_uid TEXT PRIMARY KEY,
    known_generation INTEGER NOT NULL,
    known_transaction_id TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE index_definitions (
    name TEXT NOT NULL,
    offset INTEGER NOT NULL,
    field TEXT NOT NULL,
    PRIMARY KEY (name, offset)
) WITHOUT ROWID;
CREATE TABLE document_fields (
    doc_id TEXT NOT NULL,
    field_name TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (doc_id, field_name, value)
) WITHOUT ROWID;
CREATE INDEX document_fields_field_value ON document_fields(field_name, value, doc_id);
";

/// Documents by the generation of their latest change, with their id: the
/// change feed of the sync engine (`sync.rs`) walks it in order and never
/// looks a document up by id, so reading the changes of a large store costs
/// sequential pages, not one random page of the id index per document. Added
/// to older files on their first open (idempotent; the schema version is
/// unchanged, older code keeps working on the file and maintains the index).
const GENERATION_INDEX: &str =
    "CREATE INDEX IF NOT EXISTS document_generation ON document(generation, doc_id);";

fn meta(conn: &Connection, key: &str) -> Result<Option<String>> {
    Ok(conn
        .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
        .optional()?)
}

/// Creates the schema if the file is new, checks it otherwise; returns the
/// replica uid.
pub(crate) fn ensure(
    conn: &mut Connection,
    kind: &'static str,
    wanted_replica_uid: Option<&str>,
) -> Result<String> {
    if let Some(uid) = wanted_replica_uid
        && !is_valid_replica_uid(uid)
    {
        return Err(StoreError::InvalidReplicaUid);
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let exists: bool = tx.query_row(
        "SELECT EXISTS(SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta')",
        [],
        |r| r.get(0),
    )?;
    let replica_uid = if exists {
        let version: u32 = meta(&tx, "schema_version")?
            .and_then(|v| v.parse().ok())
            .ok_or(StoreError::Corrupt("schema version missing"))?;
        if version != SCHEMA_VERSION {
            return Err(StoreError::UnsupportedSchemaVersion { found: version });
        }
        let found = meta(&tx, "payload")?.ok_or(StoreError::Corrupt("payload kind missing"))?;
        if found != kind {
            return Err(StoreError::WrongPayloadKind {
                expected: kind,
                found,
            });
        }
        let uid = meta(&tx, "replica_uid")?.ok_or(StoreError::Corrupt("replica uid missing"))?;
        if wanted_replica_uid.is_some_and(|w| w != uid) {
            return Err(StoreError::InvalidReplicaUid);
        }
        uid
    } else {
        tx.execute_batch(CREATE)?;
        let uid = match wanted_replica_uid {
            Some(uid) => uid.to_owned(),
            None => ids::random_hex()?,
        };
        let mut insert = tx.prepare("INSERT INTO meta (key, value) VALUES (?1, ?2)")?;
        insert.execute(["schema_version", &SCHEMA_VERSION.to_string()])?;
        insert.execute(["payload", kind])?;
        insert.execute(["replica_uid", &uid])?;
        drop(insert);
        uid
    };
    tx.execute_batch(GENERATION_INDEX)?;
    if kind == <Vec<u8> as crate::payload::sealed::Sealed>::KIND {
        crate::size::ensure(&tx)?;
    }
    tx.commit()?;
    Ok(replica_uid)
}
