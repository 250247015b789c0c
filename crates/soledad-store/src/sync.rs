//! Synchronisation metadata: what changed since a generation, the positions
//! recorded for other replicas, and validation of positions they claim.

use rusqlite::OptionalExtension;

use crate::conn::Conn;
use crate::document::Document;
use crate::error::{Result, StoreError};
use crate::ids::DocId;
use crate::payload::Payload;
use crate::read::{self, from_generation, to_generation};
use crate::vectorclock::is_valid_replica_uid;

/// Longest transaction id accepted from another replica (bytes).
pub const MAX_TRANSACTION_ID_BYTES: usize = 256;

/// What `put_doc_if_newer` did with an incoming revision (u1db's states).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutState {
    /// The incoming revision was newer and is now current.
    Inserted,
    /// The incoming revision equals the current one.
    Converged,
    /// The local revision is newer (or a merged revision was made): the source
    /// must receive the local document back.
    Superseded,
    /// The revisions are concurrent with different content. With
    /// `save_conflict` the incoming one became current and the local one a
    /// conflict; without it nothing was changed.
    Conflicted,
}

/// One changed document in [`Changes`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The document.
    pub doc_id: DocId,
    /// The generation of its latest change.
    pub generation: u64,
    /// The transaction id of that change.
    pub transaction_id: String,
}

/// The answer of `whats_changed`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changes {
    /// The database's current generation.
    pub generation: u64,
    /// The transaction id of the current generation (`""` at generation 0).
    pub transaction_id: String,
    /// Each changed document once, at its latest generation, ascending.
    pub changes: Vec<Change>,
}

/// A document with the generation and transaction id of its latest change.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangedDoc<P: Payload> {
    /// The document (tombstones included).
    pub doc: Document<P>,
    /// Generation of its latest change.
    pub generation: u64,
    /// Transaction id of that change.
    pub transaction_id: String,
}

/// Each document changed after `?1` once, at its latest change, in generation
/// order: a walk of the generation index (which holds the id) joined to the log
/// by generation, both sequential, so the document table and its id index are
/// never read. A document's generation is always its latest log entry's.
const CHANGES: &str = "SELECT d.doc_id, d.generation, t.transaction_id \
     FROM document d INDEXED BY document_generation \
     CROSS JOIN transaction_log t ON t.generation = d.generation \
     WHERE d.generation > ?1 ORDER BY d.generation";

/// [`CHANGES`], at most `?2` of them.
const CHANGES_LIMITED: &str = "SELECT d.doc_id, d.generation, t.transaction_id \
     FROM document d INDEXED BY document_generation \
     CROSS JOIN transaction_log t ON t.generation = d.generation \
     WHERE d.generation > ?1 ORDER BY d.generation LIMIT ?2";

pub(crate) fn whats_changed(conn: &Conn<'_>, since: u64) -> Result<Changes> {
    let since = i64::try_from(since).unwrap_or(i64::MAX);
    let mut stmt = conn.prepare(CHANGES)?;
    let mut rows = stmt.query([since])?;
    let mut changes = Vec::new();
    while let Some(row) = rows.next()? {
        changes.push(Change {
            doc_id: DocId::from_stored(row.get(0)?)?,
            generation: to_generation(row.get(1)?)?,
            transaction_id: row.get(2)?,
        });
    }
    let (generation, transaction_id) = read::generation_info(conn)?;
    Ok(Changes {
        generation,
        transaction_id,
        changes,
    })
}

pub(crate) fn changes_since(conn: &Conn<'_>, since: u64, limit: usize) -> Result<Vec<Change>> {
    let since = i64::try_from(since).unwrap_or(i64::MAX);
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut stmt = conn.prepare(CHANGES_LIMITED)?;
    let mut rows = stmt.query([since, limit])?;
    let mut changes = Vec::new();
    while let Some(row) = rows.next()? {
        changes.push(Change {
            doc_id: DocId::from_stored(row.get(0)?)?,
            generation: to_generation(row.get(1)?)?,
            transaction_id: row.get(2)?,
        });
    }
    Ok(changes)
}

pub(crate) fn docs_changed_since<P: Payload>(
    conn: &Conn<'_>,
    since: u64,
    limit: usize,
) -> Result<Vec<ChangedDoc<P>>> {
    let since = i64::try_from(since).unwrap_or(i64::MAX);
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    // Rows in generation order from the generation index: each document's
    // row is read by rowid, in the order documents were written.
    let mut stmt = conn.prepare(
        "SELECT d.doc_id, d.doc_rev, d.content, d.generation, \
         EXISTS(SELECT 1 FROM conflicts c WHERE c.doc_id = d.doc_id), t.transaction_id \
         FROM document d INDEXED BY document_generation \
         CROSS JOIN transaction_log t ON t.generation = d.generation \
         WHERE d.generation > ?1 ORDER BY d.generation LIMIT ?2",
    )?;
    let mut rows = stmt.query([since, limit])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let (doc, generation) = read::doc_from_row(row)?;
        let transaction_id: String = row.get(5)?;
        out.push(ChangedDoc {
            doc,
            generation,
            transaction_id,
        });
    }
    Ok(out)
}

pub(crate) fn check_replica_uid(replica_uid: &str) -> Result<()> {
    if is_valid_replica_uid(replica_uid) {
        Ok(())
    } else {
        Err(StoreError::InvalidReplicaUid)
    }
}

fn check_trans_id(trans_id: &str) -> Result<()> {
    if trans_id.len() > MAX_TRANSACTION_ID_BYTES {
        Err(StoreError::InvalidTransactionId)
    } else {
        Ok(())
    }
}

pub(crate) fn replica_gen_and_trans_id(
    conn: &Conn<'_>,
    replica_uid: &str,
) -> Result<(u64, String)> {
    let row: Option<(i64, String)> = conn.with(
        "SELECT known_generation, known_transaction_id FROM sync_log WHERE replica_uid = ?1",
        |stmt| {
            Ok(stmt
                .query_row([replica_uid], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?)
        },
    )?;
    match row {
        Some((generation, trans_id)) => Ok((to_generation(generation)?, trans_id)),
        None => Ok((0, String::new())),
    }
}

/// Records `source`'s position in the sync log.
pub(crate) fn set_source(
    conn: &Conn<'_>,
    ctx: &mut crate::write::Ctx,
    source: &crate::Source,
) -> Result<()> {
    set_replica_gen_and_trans_id(
        conn,
        ctx,
        source.replica.as_str(),
        source.position.generation(),
        source.position.transaction_id().as_str(),
    )
}

/// What the sync log holds for `replica` (the origin if nothing).
pub(crate) fn replica_position(
    conn: &Conn<'_>,
    replica: &crate::ReplicaUid,
) -> Result<crate::Position> {
    let (generation, trans_id) = replica_gen_and_trans_id(conn, replica.as_str())?;
    crate::Position::parse(generation, &trans_id)
        .map_err(|_| StoreError::Corrupt("sync log position"))
}

fn set_replica_gen_and_trans_id(
    conn: &Conn<'_>,
    ctx: &mut crate::write::Ctx,
    replica_uid: &str,
    generation: u64,
    trans_id: &str,
) -> Result<()> {
    check_replica_uid(replica_uid)?;
    check_trans_id(trans_id)?;
    let generation = from_generation(generation)?;
    // A sync log row's counted size is fixed per replica: only a new one counts.
    let new_replica = ctx.size.is_counted()
        && !conn.with(
            "SELECT EXISTS(SELECT 1 FROM sync_log WHERE replica_uid = ?1)",
            |stmt| Ok(stmt.query_row([replica_uid], |r| r.get::<_, bool>(0))?),
        )?;
    conn.with(
        "INSERT OR REPLACE INTO sync_log (replica_uid, known_generation, known_transaction_id) \
         VALUES (?1, ?2, ?3)",
        |stmt| Ok(stmt.execute(rusqlite::params![replica_uid, generation, trans_id])?),
    )?;
    if new_replica {
        ctx.size.add(0, crate::size::sync_row_bytes(replica_uid));
    }
    Ok(())
}

/// u1db's `_validate_source`: the source's generation must not be older than
/// what we recorded, and the same generation must come with the same
/// transaction id.
pub(crate) fn validate_source(
    conn: &Conn<'_>,
    replica_uid: &str,
    generation: u64,
    trans_id: &str,
) -> Result<()> {
    check_replica_uid(replica_uid)?;
    check_trans_id(trans_id)?;
    from_generation(generation)?;
    let (old_generation, old_trans_id) = replica_gen_and_trans_id(conn, replica_uid)?;
    if generation < old_generation {
        return Err(StoreError::InvalidGeneration);
    }
    if generation > old_generation || trans_id == old_trans_id {
        return Ok(());
    }
    Err(StoreError::InvalidTransactionId)
}

/// u1db's `validate_gen_and_trans_id`: does our log hold `trans_id` at `generation`?
pub(crate) fn validate_gen_and_trans_id(
    conn: &Conn<'_>,
    generation: u64,
    trans_id: &str,
) -> Result<()> {
    if generation == 0 {
        return Ok(());
    }
    if read::trans_id_for_gen(conn, generation)? == trans_id {
        Ok(())
    } else {
        Err(StoreError::InvalidTransactionId)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use rusqlite::Connection;

    use super::*;

    fn plan(conn: &Connection, sql: &str) -> String {
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let rows = stmt
            .query_map([1i64, 10], |r| r.get::<_, String>(3))
            .unwrap();
        rows.map(Result::unwrap).collect::<Vec<_>>().join("\n")
    }

    /// The change feed walks the generation index and the log by generation:
    /// no document is looked up by id, and nothing is sorted in memory.
    #[test]
    fn the_change_feed_never_looks_documents_up_by_id() {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::schema::ensure(&mut conn, "opaque", None).unwrap();
        for sql in [CHANGES_LIMITED, &format!("{CHANGES} LIMIT ?2")] {
            let plan = plan(&conn, sql);
            assert!(plan.contains("document_generation"), "{plan}");
            assert!(plan.contains("INTEGER PRIMARY KEY"), "{plan}");
            assert!(!plan.contains("autoindex"), "{plan}");
            assert!(!plan.contains("TEMP B-TREE"), "{plan}");
        }
    }
}
