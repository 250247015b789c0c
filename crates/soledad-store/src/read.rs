//! Reading documents, conflicts and generations (shared by the database,
//! batches and the index layer).

use rusqlite::types::ValueRef;
use rusqlite::{OptionalExtension, Row};

use crate::conn::Conn;
use crate::document::Document;
use crate::error::{Result, StoreError};
use crate::ids::{DocId, Rev};
use crate::payload::Payload;

/// Columns 0–4 of every document read: id, rev, content, generation, conflicts.
pub(crate) const DOC_SELECT: &str = "SELECT d.doc_id, d.doc_rev, d.content, d.generation, \
     EXISTS(SELECT 1 FROM conflicts c WHERE c.doc_id = d.doc_id) FROM document d";

/// A generation read from SQLite (stored as i64).
pub(crate) fn to_generation(value: i64) -> Result<u64> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt("negative generation"))
}

/// A generation to store; larger than SQLite's i64 is invalid.
pub(crate) fn from_generation(value: u64) -> Result<i64> {
    i64::try_from(value).map_err(|_| StoreError::InvalidGeneration)
}

/// Reads an optional payload column.
pub(crate) fn payload_column<P: Payload>(value: ValueRef<'_>) -> Result<Option<P>> {
    match value {
        ValueRef::Null => Ok(None),
        other => P::from_sql(other).map(Some),
    }
}

/// Reads a row selected with [`DOC_SELECT`].
pub(crate) fn doc_from_row<P: Payload>(row: &Row<'_>) -> Result<(Document<P>, u64)> {
    let doc = Document {
        doc_id: DocId::from_stored(row.get(0)?)?,
        rev: Some(Rev::from_stored(row.get(1)?)?),
        content: payload_column(row.get_ref(2)?)?,
        has_conflicts: row.get(4)?,
    };
    Ok((doc, to_generation(row.get(3)?)?))
}

/// The stored document (tombstones included) with its generation.
pub(crate) fn get_doc_row<P: Payload>(
    conn: &Conn<'_>,
    doc_id: &DocId,
    check_for_conflicts: bool,
) -> Result<Option<(Document<P>, u64)>> {
    let sql = if check_for_conflicts {
        "SELECT d.doc_id, d.doc_rev, d.content, d.generation, \
         EXISTS(SELECT 1 FROM conflicts c WHERE c.doc_id = d.doc_id) \
         FROM document d WHERE d.doc_id = ?1"
    } else {
        "SELECT d.doc_id, d.doc_rev, d.content, d.generation, 0 \
         FROM document d WHERE d.doc_id = ?1"
    };
    conn.with(sql, |stmt| {
        let mut rows = stmt.query([doc_id])?;
        match rows.next()? {
            Some(row) => doc_from_row(row).map(Some),
            None => Ok(None),
        }
    })
}

/// The stored document (tombstones included) whose latest change is
/// `generation`, found through the generation index; `None` when that change
/// was superseded by a later one (or there is no such generation).
pub(crate) fn get_doc_at_generation<P: Payload>(
    conn: &Conn<'_>,
    generation: u64,
) -> Result<Option<Document<P>>> {
    let generation = from_generation(generation)?;
    conn.with(
        "SELECT d.doc_id, d.doc_rev, d.content, d.generation, \
         EXISTS(SELECT 1 FROM conflicts c WHERE c.doc_id = d.doc_id) \
         FROM document d INDEXED BY document_generation WHERE d.generation = ?1",
        |stmt| {
            let mut rows = stmt.query([generation])?;
            match rows.next()? {
                Some(row) => doc_from_row(row).map(|(doc, _)| Some(doc)),
                None => Ok(None),
            }
        },
    )
}

/// True if the document has stored conflicts.
pub(crate) fn has_conflicts(conn: &Conn<'_>, doc_id: &DocId) -> Result<bool> {
    conn.with(
        "SELECT EXISTS(SELECT 1 FROM conflicts WHERE doc_id = ?1)",
        |stmt| Ok(stmt.query_row([doc_id], |r| r.get(0))?),
    )
}

/// The conflicting revisions stored for a document, oldest first.
pub(crate) fn get_conflicts<P: Payload>(
    conn: &Conn<'_>,
    doc_id: &DocId,
) -> Result<Vec<Document<P>>> {
    let mut stmt =
        conn.prepare("SELECT doc_rev, content FROM conflicts WHERE doc_id = ?1 ORDER BY rowid")?;
    let mut rows = stmt.query([doc_id])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(Document {
            doc_id: doc_id.clone(),
            rev: Some(Rev::from_stored(row.get(0)?)?),
            content: payload_column(row.get_ref(1)?)?,
            has_conflicts: true,
        });
    }
    Ok(out)
}

/// Current generation and its transaction id (`(0, "")` for an empty log).
/// The current position (the origin when empty).
pub(crate) fn generation_position(conn: &Conn<'_>) -> Result<crate::Position> {
    let (generation, trans_id) = generation_info(conn)?;
    crate::Position::parse(generation, &trans_id)
        .map_err(|_| StoreError::Corrupt("transaction log position"))
}

pub(crate) fn generation_info(conn: &Conn<'_>) -> Result<(u64, String)> {
    let row: Option<(i64, String)> = conn.with(
        "SELECT generation, transaction_id FROM transaction_log ORDER BY generation DESC LIMIT 1",
        |stmt| {
            Ok(stmt
                .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?)
        },
    )?;
    match row {
        Some((generation, trans_id)) => Ok((to_generation(generation)?, trans_id)),
        None => Ok((0, String::new())),
    }
}

/// The transaction id of `generation` (`""` for 0).
pub(crate) fn trans_id_for_gen(conn: &Conn<'_>, generation: u64) -> Result<String> {
    if generation == 0 {
        return Ok(String::new());
    }
    let generation = from_generation(generation)?;
    let mut stmt =
        conn.prepare("SELECT transaction_id FROM transaction_log WHERE generation = ?1")?;
    stmt.query_row([generation], |r| r.get(0))
        .optional()?
        .ok_or(StoreError::InvalidGeneration)
}
