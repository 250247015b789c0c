//! What a database stores, kept as a running count in the file itself.
//!
//! SQLite triggers update one row of `stored_size` in the same transaction as
//! every write of documents, conflicts, the transaction log and the sync log,
//! so the count is exact after every commit, survives restarts, and costs O(1)
//! to read. A server charges it to the user's quota: the difference read before
//! and after a batch is what the batch really stored (a replaced revision is
//! credited, a document that was not written costs nothing).
//!
//! Only opaque (server) stores keep it: the client's JSON databases would pay
//! a trigger run per write for nothing.
//!
//! Files made before the count existed get the triggers and a count made by one
//! scan the first time they are opened (the schema version is unchanged: the
//! addition is idempotent and older code keeps working on the file).

use rusqlite::Connection;

use crate::conn::Conn;
use crate::error::{Result, StoreError};

/// Bytes and entries a database stores, as counted by [`crate::Database::stored_size`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoredSize {
    /// Document rows (current revisions and tombstones) plus stored conflicts.
    pub entries: u64,
    /// Bytes of their ids, revisions and payloads (+8 each), plus the rows of
    /// the transaction log (document id + 48) and the sync log (replica uid +
    /// 264). Text is counted in UTF-8 bytes. Index rows are not counted.
    pub bytes: u64,
}

/// The size of a document or conflict row (`r` is `new` or `old`).
macro_rules! doc_row {
    ($r:literal) => {
        concat!(
            "octet_length(",
            $r,
            ".doc_id) + octet_length(",
            $r,
            ".doc_rev) + coalesce(octet_length(",
            $r,
            ".content), 0) + 8"
        )
    };
}

/// The size of a transaction log row: its document id plus a fixed 48 bytes
/// (a `T-` + 32 hex transaction id and the generation).
macro_rules! log_row {
    ($r:literal) => {
        concat!("octet_length(", $r, ".doc_id) + 48")
    };
}

/// The size of a sync log row: the replica uid plus a fixed 264 bytes (the
/// longest transaction id accepted, 256, and the generation), so rewriting a
/// replica's position never changes it.
macro_rules! sync_row {
    ($r:literal) => {
        concat!("octet_length(", $r, ".replica_uid) + 264")
    };
}

/// Table and triggers keeping the count, with as few trigger runs per write as
/// possible (a sync applies thousands of documents): every document write
/// appends exactly one log row (`write.rs`), so the document triggers count
/// that row too; a sync log row has a fixed size, so only a new replica costs
/// (a `WHEN` test, no update, when a position is rewritten). `INSERT OR
/// REPLACE` deletes the row it replaces without firing delete triggers
/// (recursive triggers are off), so conflicts subtract the replaced row in a
/// `BEFORE INSERT`. Deletes of log rows (no code does so today) are counted.
const TRIGGERS: &str = concat!(
    "CREATE TABLE IF NOT EXISTS stored_size (
        id INTEGER PRIMARY KEY CHECK (id = 0),
        entries INTEGER NOT NULL,
        bytes INTEGER NOT NULL
    );
    CREATE TRIGGER IF NOT EXISTS stored_size_document_insert AFTER INSERT ON document BEGIN
        UPDATE stored_size SET entries = entries + 1, bytes = bytes + ",
    doc_row!("new"),
    " + ",
    log_row!("new"),
    " WHERE id = 0; END;
    CREATE TRIGGER IF NOT EXISTS stored_size_document_update AFTER UPDATE ON document BEGIN
        UPDATE stored_size SET bytes = bytes + (",
    doc_row!("new"),
    ") - (",
    doc_row!("old"),
    ") + ",
    log_row!("new"),
    " WHERE id = 0; END;
    CREATE TRIGGER IF NOT EXISTS stored_size_document_delete AFTER DELETE ON document BEGIN
        UPDATE stored_size SET entries = entries - 1, bytes = bytes - (",
    doc_row!("old"),
    ") WHERE id = 0; END;
    CREATE TRIGGER IF NOT EXISTS stored_size_conflict_replace BEFORE INSERT ON conflicts BEGIN
        UPDATE stored_size SET
            entries = entries - (SELECT count(*) FROM conflicts old
                WHERE old.doc_id = new.doc_id AND old.doc_rev = new.doc_rev),
            bytes = bytes - coalesce((SELECT ",
    doc_row!("old"),
    " FROM conflicts old WHERE old.doc_id = new.doc_id AND old.doc_rev = new.doc_rev), 0)
        WHERE id = 0; END;
    CREATE TRIGGER IF NOT EXISTS stored_size_conflict_insert AFTER INSERT ON conflicts BEGIN
        UPDATE stored_size SET entries = entries + 1, bytes = bytes + ",
    doc_row!("new"),
    " WHERE id = 0; END;
    CREATE TRIGGER IF NOT EXISTS stored_size_conflict_delete AFTER DELETE ON conflicts BEGIN
        UPDATE stored_size SET entries = entries - 1, bytes = bytes - (",
    doc_row!("old"),
    ") WHERE id = 0; END;
    CREATE TRIGGER IF NOT EXISTS stored_size_log_delete AFTER DELETE ON transaction_log BEGIN
        UPDATE stored_size SET bytes = bytes - (",
    log_row!("old"),
    ") WHERE id = 0; END;
    CREATE TRIGGER IF NOT EXISTS stored_size_sync_new BEFORE INSERT ON sync_log
        WHEN NOT EXISTS (SELECT 1 FROM sync_log WHERE replica_uid = new.replica_uid) BEGIN
        UPDATE stored_size SET bytes = bytes + ",
    sync_row!("new"),
    " WHERE id = 0; END;
    CREATE TRIGGER IF NOT EXISTS stored_size_sync_update AFTER UPDATE ON sync_log BEGIN
        UPDATE stored_size SET bytes = bytes + (",
    sync_row!("new"),
    ") - (",
    sync_row!("old"),
    ") WHERE id = 0; END;
    CREATE TRIGGER IF NOT EXISTS stored_size_sync_delete AFTER DELETE ON sync_log BEGIN
        UPDATE stored_size SET bytes = bytes - (",
    sync_row!("old"),
    ") WHERE id = 0; END;"
);

/// The count made by scanning every counted table (files made before the
/// count existed; tests compare the triggers with it).
const SCAN: &str = concat!(
    "SELECT (SELECT count(*) FROM document) + (SELECT count(*) FROM conflicts), ",
    "(SELECT coalesce(sum(",
    doc_row!("old"),
    "), 0) FROM document old) + ",
    "(SELECT coalesce(sum(",
    doc_row!("old"),
    "), 0) FROM conflicts old) + ",
    "(SELECT coalesce(sum(",
    log_row!("old"),
    "), 0) FROM transaction_log old) + ",
    "(SELECT coalesce(sum(",
    sync_row!("old"),
    "), 0) FROM sync_log old)"
);

fn to_count(value: i64) -> Result<u64> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt("negative stored size"))
}

/// Adds the count's table and triggers if missing, and counts what the file
/// already holds the first time. Runs inside the opening transaction.
pub(crate) fn ensure(conn: &Connection) -> Result<()> {
    conn.execute_batch(TRIGGERS)?;
    let counted: bool =
        conn.query_row("SELECT EXISTS(SELECT 1 FROM stored_size)", [], |r| r.get(0))?;
    if !counted {
        let (entries, bytes): (i64, i64) =
            conn.query_row(SCAN, [], |r| Ok((r.get(0)?, r.get(1)?)))?;
        conn.execute(
            "INSERT INTO stored_size (id, entries, bytes) VALUES (0, ?1, ?2)",
            [entries, bytes],
        )?;
    }
    Ok(())
}

/// The current count.
pub(crate) fn stored_size(conn: &Conn<'_>) -> Result<StoredSize> {
    let (entries, bytes): (i64, i64) = conn.with(
        "SELECT entries, bytes FROM stored_size WHERE id = 0",
        |stmt| Ok(stmt.query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?),
    )?;
    Ok(StoredSize {
        entries: to_count(entries)?,
        bytes: to_count(bytes)?,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn id(text: &str) -> crate::DocId {
        crate::DocId::parse(text).unwrap()
    }

    fn rev(text: &str) -> crate::Rev {
        crate::Rev::parse(text).unwrap()
    }

    fn src(replica: &str, generation: u64, trans_id: &str) -> crate::Source {
        crate::Source::new(
            crate::ReplicaUid::parse(replica).unwrap(),
            crate::Position::parse(generation, trans_id).unwrap(),
        )
    }

    fn scanned(conn: &Connection) -> StoredSize {
        let (entries, bytes): (i64, i64) = conn
            .query_row(SCAN, [], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap();
        StoredSize {
            entries: to_count(entries).unwrap(),
            bytes: to_count(bytes).unwrap(),
        }
    }

    fn counted(conn: &Connection) -> StoredSize {
        stored_size(&Conn::new(conn)).unwrap()
    }

    /// Writes in the order `write.rs` makes them (each document write with
    /// its log row), then every other kind of change.
    #[test]
    fn triggers_count_what_a_scan_counts() {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::schema::ensure(&mut conn, "opaque", None).unwrap();
        assert_eq!(counted(&conn), StoredSize::default());
        conn.execute_batch(
            "INSERT INTO document VALUES ('a', 1, 'r:1', x'0102');
             INSERT INTO transaction_log VALUES (1, 'a', 'T-1');
             INSERT INTO document VALUES ('b', 2, 'r:1', NULL);
             INSERT INTO transaction_log VALUES (2, 'b', 'T-2');
             INSERT INTO document VALUES ('ü', 3, 'r:1', 'ünïcode');
             INSERT INTO transaction_log VALUES (3, 'ü', 'T-3');
             UPDATE document SET doc_rev = 'r:22', content = x'010203040506' WHERE doc_id = 'a';
             INSERT INTO transaction_log VALUES (4, 'a', 'T-4');
             DELETE FROM transaction_log WHERE generation = 1;
             INSERT OR REPLACE INTO conflicts VALUES ('a', 'x:1', x'00');
             INSERT OR REPLACE INTO conflicts VALUES ('a', 'x:1', x'0000000000');
             INSERT OR REPLACE INTO conflicts VALUES ('a', 'y:1', NULL);
             DELETE FROM conflicts WHERE doc_rev = 'y:1';
             INSERT OR REPLACE INTO sync_log VALUES ('s', 1, 'T-1');
             INSERT OR REPLACE INTO sync_log VALUES ('s', 2, 'T-123456');
             UPDATE sync_log SET known_transaction_id = 'T-9' WHERE replica_uid = 's';
             INSERT OR REPLACE INTO sync_log VALUES ('t', 1, 'T-1');
             DELETE FROM sync_log WHERE replica_uid = 't';
             DELETE FROM document WHERE doc_id = 'b';",
        )
        .unwrap();
        let expected = scanned(&conn);
        assert_eq!(expected.entries, 3);
        assert_eq!(counted(&conn), expected);
    }

    #[test]
    fn every_database_write_keeps_the_count_equal_to_a_scan() {
        use crate::{Document, OpaqueDatabase};

        let mut db = OpaqueDatabase::open_opaque_in_memory().unwrap();
        let check = |db: &OpaqueDatabase| {
            assert_eq!(counted(db.connection()), scanned(db.connection()));
        };
        let mut a = db
            .create_doc_with_content(vec![1; 10], Some(&id("a")))
            .unwrap();
        let mut b = db.create_doc_with_content(vec![2; 300], None).unwrap();
        check(&db);
        a.content = Some(vec![3; 1000]);
        db.put_doc(&mut a).unwrap();
        db.delete_doc(&mut b).unwrap();
        check(&db);
        // A concurrent revision from another replica, kept as a conflict.
        let mut theirs = Document::new(id("a"), Some(rev("other:5")), Some(vec![4; 50]));
        db.put_doc_if_newer(
            &mut theirs,
            crate::SaveConflict::Yes,
            Some(&src("other", 1, "T-x")),
        )
        .unwrap();
        check(&db);
        let conflicts = db.get_doc_conflicts(&id("a")).unwrap();
        assert_eq!(conflicts.len(), 2);
        let revs: Vec<crate::Rev> = conflicts.iter().filter_map(|d| d.rev.clone()).collect();
        let mut resolved = conflicts.into_iter().next().unwrap();
        resolved.content = Some(vec![5; 20]);
        db.resolve_doc(&mut resolved, &revs).unwrap();
        check(&db);
        db.set_replica_gen_and_trans_id(&src("other", 2, "T-longer-transaction-id"))
            .unwrap();
        db.set_replica_gen_and_trans_id(&src("third", 1, "T-1"))
            .unwrap();
        check(&db);
        assert_eq!(db.stored_size().unwrap().entries, 2);
    }

    #[test]
    fn json_databases_keep_no_count() {
        let db = crate::Database::open_in_memory().unwrap();
        let tables: i64 = db
            .connection()
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name LIKE 'stored_size%'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(tables, 0);
    }

    #[test]
    fn a_file_without_the_count_is_counted_once_when_opened() {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::schema::ensure(&mut conn, "opaque", None).unwrap();
        let triggers: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'trigger'")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert!(!triggers.is_empty());
        for name in triggers {
            conn.execute_batch(&format!("DROP TRIGGER {name};"))
                .unwrap();
        }
        conn.execute_batch(
            "DROP TABLE stored_size;
             INSERT INTO document VALUES ('a', 1, 'r:1', x'0102');
             INSERT INTO transaction_log VALUES (1, 'a', 'T-1');",
        )
        .unwrap();
        crate::schema::ensure(&mut conn, "opaque", None).unwrap();
        assert_eq!(
            counted(&conn),
            StoredSize {
                entries: 1,
                bytes: (1 + 3 + 2 + 8) + (1 + 48)
            }
        );
    }
}
