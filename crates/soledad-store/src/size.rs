//! What a database stores, kept as a running count in the file itself.
//!
//! One row of `stored_size` holds the count. The store's own write path
//! (`write.rs`, `sync.rs`) adds what each statement stored or removed to a
//! [`PendingSize`] kept for the open transaction, and the transaction writes
//! the sum into the row once, right before it commits
//! ([`PendingSize::flush`]): the count is exact after every commit (a rolled
//! back transaction rolls the row back with everything else), survives
//! restarts, and costs O(1) to read. A server charges it to the user's quota:
//! the difference read before and after a batch is what the batch really
//! stored (a replaced revision is credited, a document that was not written
//! costs nothing).
//!
//! Counted in Rust rather than by SQLite triggers (the first way this was
//! kept): a trigger turns every insert into a multi-row statement, which makes
//! SQLite keep a statement journal for each one; that cost about a fifth of
//! the server's CPU applying an upload. Only writes made through this crate
//! are counted (tools writing the file with SQL directly, such as the
//! server's test hooks, are not).
//!
//! Only opaque (server) stores keep it: the client's JSON databases pay
//! nothing for it.
//!
//! On open (idempotent; the schema version is unchanged): a file made before
//! the count existed gets the table and a count made by one scan; a file made
//! while triggers kept the count has them dropped (their count is exact, this
//! code goes on from it). Older code that opens the file again re-creates its
//! triggers and keeps the same count exact.

use rusqlite::Connection;

use crate::conn::Conn;
use crate::error::{Result, StoreError};
use crate::ids::DocId;

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

/// Fixed bytes counted per document or conflict row, besides id, revision and payload.
const DOC_ROW_FIXED_BYTES: i64 = 8;
/// Fixed bytes counted per transaction log row besides the document id (a
/// `T-` + 32 hex transaction id and the generation).
const LOG_ROW_FIXED_BYTES: i64 = 48;
/// Fixed bytes counted per sync log row besides the replica uid: the longest
/// transaction id accepted (256) and the generation, so rewriting a replica's
/// position never changes the count.
const SYNC_ROW_FIXED_BYTES: i64 = 264;

fn to_delta(bytes: usize) -> i64 {
    i64::try_from(bytes).unwrap_or(i64::MAX)
}

/// The counted size of a document or conflict row.
pub(crate) fn doc_row_bytes(doc_id: &DocId, rev_bytes: usize, payload_bytes: usize) -> i64 {
    to_delta(doc_id.len())
        .saturating_add(to_delta(rev_bytes))
        .saturating_add(to_delta(payload_bytes))
        .saturating_add(DOC_ROW_FIXED_BYTES)
}

/// The counted size of a transaction log row.
pub(crate) fn log_row_bytes(doc_id: &DocId) -> i64 {
    to_delta(doc_id.len()).saturating_add(LOG_ROW_FIXED_BYTES)
}

/// The counted size of a sync log row.
pub(crate) fn sync_row_bytes(replica_uid: &str) -> i64 {
    to_delta(replica_uid.len()).saturating_add(SYNC_ROW_FIXED_BYTES)
}

/// A stored conflict's counted size, in SQL (`c` is the conflicts table).
pub(crate) const CONFLICT_ROW_SQL: &str = "octet_length(c.doc_id) + octet_length(c.doc_rev) \
     + coalesce(octet_length(c.content), 0) + 8";

/// What the open transaction stored so far and has not yet written into the
/// count: a handful of integers, whatever the transaction's size.
#[derive(Debug, Default)]
pub(crate) struct PendingSize {
    /// Whether this database keeps the count (opaque stores).
    counted: bool,
    entries: i64,
    bytes: i64,
}

impl PendingSize {
    /// Nothing pending; `counted` says whether the database keeps the count.
    pub(crate) fn new(counted: bool) -> Self {
        Self {
            counted,
            entries: 0,
            bytes: 0,
        }
    }

    /// Whether this database keeps the count (callers skip reading old sizes
    /// otherwise).
    pub(crate) fn is_counted(&self) -> bool {
        self.counted
    }

    /// Adds what a write stored (negative: what it removed).
    pub(crate) fn add(&mut self, entries: i64, bytes: i64) {
        self.entries = self.entries.saturating_add(entries);
        self.bytes = self.bytes.saturating_add(bytes);
    }

    /// Forgets what is pending (the transaction was rolled back or is new).
    pub(crate) fn clear(&mut self) {
        self.entries = 0;
        self.bytes = 0;
    }

    /// Writes what is pending into the count, inside the transaction about to
    /// commit, and clears it. One statement per transaction, none when
    /// nothing counted changed.
    pub(crate) fn flush(&mut self, conn: &Connection) -> Result<()> {
        if !self.counted || (self.entries == 0 && self.bytes == 0) {
            return Ok(());
        }
        conn.execute(
            "UPDATE stored_size SET entries = entries + ?1, bytes = bytes + ?2 WHERE id = 0",
            [self.entries, self.bytes],
        )?;
        self.clear();
        Ok(())
    }
}

/// Names of the triggers that kept the count in files made by earlier
/// versions (dropped on open).
const OLD_TRIGGERS: [&str; 10] = [
    "stored_size_document_insert",
    "stored_size_document_update",
    "stored_size_document_delete",
    "stored_size_conflict_replace",
    "stored_size_conflict_insert",
    "stored_size_conflict_delete",
    "stored_size_log_delete",
    "stored_size_sync_new",
    "stored_size_sync_update",
    "stored_size_sync_delete",
];

/// The count made by scanning every counted table (files made before the
/// count existed; tests compare the running count with it).
const SCAN: &str = "SELECT (SELECT count(*) FROM document) + (SELECT count(*) FROM conflicts), \
     (SELECT coalesce(sum(octet_length(c.doc_id) + octet_length(c.doc_rev) \
        + coalesce(octet_length(c.content), 0) + 8), 0) FROM document c) + \
     (SELECT coalesce(sum(octet_length(c.doc_id) + octet_length(c.doc_rev) \
        + coalesce(octet_length(c.content), 0) + 8), 0) FROM conflicts c) + \
     (SELECT coalesce(sum(octet_length(t.doc_id) + 48), 0) FROM transaction_log t) + \
     (SELECT coalesce(sum(octet_length(s.replica_uid) + 264), 0) FROM sync_log s)";

fn to_count(value: i64) -> Result<u64> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt("negative stored size"))
}

/// Adds the count's table if missing and counts what the file already holds
/// the first time; drops the triggers of earlier versions. Runs inside the
/// opening transaction.
pub(crate) fn ensure(conn: &Connection) -> Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS stored_size (
            id INTEGER PRIMARY KEY CHECK (id = 0),
            entries INTEGER NOT NULL,
            bytes INTEGER NOT NULL
        );",
    )?;
    for name in OLD_TRIGGERS {
        conn.execute_batch(&format!("DROP TRIGGER IF EXISTS {name};"))?;
    }
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

/// The count, plus what the open transaction has not written into it yet.
pub(crate) fn stored_size(conn: &Conn<'_>, pending: &PendingSize) -> Result<StoredSize> {
    let (entries, bytes): (i64, i64) = conn.with(
        "SELECT entries, bytes FROM stored_size WHERE id = 0",
        |stmt| Ok(stmt.query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?),
    )?;
    Ok(StoredSize {
        entries: to_count(entries.saturating_add(pending.entries))?,
        bytes: to_count(bytes.saturating_add(pending.bytes))?,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::{Database, Document, OpaqueDatabase, SaveConflict};

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
        stored_size(&Conn::new(conn), &PendingSize::new(true)).unwrap()
    }

    fn check(db: &OpaqueDatabase) {
        assert_eq!(counted(db.connection()), scanned(db.connection()));
    }

    fn triggers(conn: &Connection) -> Vec<String> {
        conn.prepare("SELECT name FROM sqlite_master WHERE type = 'trigger'")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }

    #[test]
    fn every_database_write_keeps_the_count_equal_to_a_scan() {
        let mut db = OpaqueDatabase::open_opaque_in_memory().unwrap();
        assert_eq!(db.stored_size().unwrap(), StoredSize::default());
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
            SaveConflict::Yes,
            Some(&src("other", 1, "T-x")),
        )
        .unwrap();
        check(&db);
        let conflicts = db.get_doc_conflicts(&id("a")).unwrap();
        assert_eq!(conflicts.len(), 2);
        let revs: Vec<crate::Rev> = conflicts.iter().filter_map(|d| d.rev.clone()).collect();
        // Resolved without the current revision: one more conflict...
        let mut side = conflicts[1].clone();
        side.content = Some(vec![6; 70]);
        db.resolve_doc(&mut side, &revs[1..]).unwrap();
        check(&db);
        // ...then with every revision: the conflicts go.
        let conflicts = db.get_doc_conflicts(&id("a")).unwrap();
        let revs: Vec<crate::Rev> = conflicts.iter().filter_map(|d| d.rev.clone()).collect();
        let mut resolved = conflicts.into_iter().next().unwrap();
        resolved.content = Some(vec![5; 20]);
        db.resolve_doc(&mut resolved, &revs).unwrap();
        assert!(db.get_doc_conflicts(&id("a")).unwrap().is_empty());
        check(&db);
        db.set_replica_gen_and_trans_id(&src("other", 2, "T-longer-transaction-id"))
            .unwrap();
        db.set_replica_gen_and_trans_id(&src("third", 1, "T-1"))
            .unwrap();
        check(&db);
        assert_eq!(db.stored_size().unwrap().entries, 2);
    }

    /// A batch counts once at its commit, reads its own writes, and a batch
    /// that is rolled back (refused, or aborted half-way) leaves the count as
    /// it was.
    #[test]
    fn batches_count_at_commit_and_rollbacks_count_nothing() {
        let mut db = OpaqueDatabase::open_opaque_in_memory().unwrap();
        db.batch(|batch| {
            let before = batch.stored_size()?;
            for i in 0..20u8 {
                batch.create_doc_with_content(vec![i; usize::from(i) * 7], None)?;
            }
            let mut doc = Document::new(id("x"), Some(rev("other:1")), Some(vec![9; 33]));
            batch.put_doc_if_newer(&mut doc, SaveConflict::No, None)?;
            batch.set_replica_gen_and_trans_id(&src("other", 1, "T-1"))?;
            let after = batch.stored_size()?;
            assert_eq!(after.entries, before.entries + 21);
            assert!(after.bytes > before.bytes);
            Ok::<_, StoreError>(())
        })
        .unwrap();
        check(&db);
        let committed = db.stored_size().unwrap();

        // Refused by the caller after writing: nothing of it counts.
        let refused = db.batch(|batch| {
            batch.create_doc_with_content(vec![1; 500], None)?;
            batch.set_replica_gen_and_trans_id(&src("new-replica", 1, "T-1"))?;
            Err::<(), _>(StoreError::BatchAborted)
        });
        assert!(refused.is_err());
        assert_eq!(db.stored_size().unwrap(), committed);
        check(&db);

        // An operation that fails before writing does not stop the batch;
        // what the batch wrote still counts.
        db.batch(|batch| {
            let mut stale = Document::new(id("x"), Some(rev("zzz:1")), Some(vec![1]));
            assert!(batch.put_doc(&mut stale).is_err());
            batch.create_doc_with_content(vec![2; 40], None)?;
            Ok::<_, StoreError>(())
        })
        .unwrap();
        check(&db);
        // A single write that fails counts nothing either.
        let mut stale = Document::new(id("x"), Some(rev("zzz:1")), Some(vec![1]));
        assert!(db.put_doc(&mut stale).is_err());
        check(&db);
    }

    /// `INSERT OR REPLACE` of a conflict at the same revision replaces it.
    #[test]
    fn a_replaced_conflict_counts_once() {
        let mut db = OpaqueDatabase::open_opaque_in_memory().unwrap();
        db.create_doc_with_content(vec![1; 10], Some(&id("a")))
            .unwrap();
        db.batch(|batch| {
            let (conn, ctx) = batch.parts();
            crate::write::add_conflict(conn, ctx, &id("a"), &rev("x:1"), Some(&vec![0u8; 3]))?;
            crate::write::add_conflict(conn, ctx, &id("a"), &rev("x:1"), Some(&vec![0u8; 90]))?;
            crate::write::add_conflict::<Vec<u8>>(conn, ctx, &id("a"), &rev("y:1"), None)?;
            Ok::<_, StoreError>(())
        })
        .unwrap();
        check(&db);
        assert_eq!(db.stored_size().unwrap().entries, 3);
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
        conn.execute_batch(
            "DROP TABLE stored_size;
             INSERT INTO document VALUES ('a', 1, 'r:1', x'0102');
             INSERT INTO transaction_log VALUES (1, 'a', 'T-1');",
        )
        .unwrap();
        crate::schema::ensure(&mut conn, "opaque", None).unwrap();
        let expected = StoredSize {
            entries: 1,
            bytes: (1 + 3 + 2 + 8) + (1 + 48),
        };
        assert_eq!(counted(&conn), expected);
        // Counted once: opening again does not count again.
        crate::schema::ensure(&mut conn, "opaque", None).unwrap();
        assert_eq!(counted(&conn), expected);
    }

    /// A file made while triggers kept the count: they are dropped on open
    /// (every time one is found), and the count goes on from theirs without
    /// counting a write twice.
    #[test]
    fn the_triggers_of_earlier_versions_are_dropped_on_open() {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::schema::ensure(&mut conn, "opaque", None).unwrap();
        // What earlier versions made (one of their triggers is enough to tell).
        let old =
            "CREATE TRIGGER IF NOT EXISTS stored_size_document_insert AFTER INSERT ON document
             BEGIN UPDATE stored_size SET entries = entries + 1, bytes = bytes
               + octet_length(new.doc_id) + octet_length(new.doc_rev)
               + coalesce(octet_length(new.content), 0) + 8 + octet_length(new.doc_id) + 48
             WHERE id = 0; END;
             CREATE TRIGGER IF NOT EXISTS stored_size_sync_delete AFTER DELETE ON sync_log
             BEGIN UPDATE stored_size SET bytes = bytes - 1 WHERE id = 0; END;";
        conn.execute_batch(old).unwrap();
        conn.execute_batch(
            "INSERT INTO document VALUES ('a', 1, 'r:1', x'0102');
             INSERT INTO transaction_log VALUES (1, 'a', 'T-1');",
        )
        .unwrap();
        assert_eq!(counted(&conn), scanned(&conn), "the old count is exact");
        assert_eq!(triggers(&conn).len(), 2);
        crate::schema::ensure(&mut conn, "opaque", None).unwrap();
        assert!(triggers(&conn).is_empty());
        assert_eq!(counted(&conn), scanned(&conn));
        // Older code opened the file again: its triggers are back.
        conn.execute_batch(old).unwrap();
        crate::schema::ensure(&mut conn, "opaque", None).unwrap();
        assert!(triggers(&conn).is_empty());

        // Written through the store: counted once.
        let db = crate::OpenOptions::new()
            .open_in_memory::<Vec<u8>>()
            .unwrap();
        db.connection().execute_batch(old).unwrap();
        let mut db = reopen(db);
        db.create_doc_with_content(vec![7; 100], None).unwrap();
        check(&db);
    }

    /// `db` after the opening steps run again on its connection.
    fn reopen(db: OpaqueDatabase) -> OpaqueDatabase {
        let (mut conn, uid) = db.into_parts();
        let uid = crate::schema::ensure(&mut conn, "opaque", Some(&uid)).unwrap();
        Database::from_parts(conn, uid, None)
    }
}
