//! Every write of the store (u1db's rules), on a connection that is already
//! inside a transaction: the caller commits or rolls back. Each operation
//! checks everything it can before its first write.

use std::collections::HashSet;

use rusqlite::OptionalExtension;

use crate::conn::Conn;
use crate::document::Document;
use crate::error::{Result, StoreError};
use crate::ids::{self, DocId, Rev};
use crate::index::ExprCache;
use crate::payload::Payload;
use crate::payload::sealed::Sealed;
use crate::read::{self, from_generation};
use crate::size::{self, PendingSize};
use crate::sync::{self, PutState};
use crate::vectorclock::VectorClock;

/// Per-database state the writes need.
#[derive(Debug)]
pub(crate) struct Ctx {
    pub(crate) replica_uid: String,
    pub(crate) document_size_limit: Option<usize>,
    pub(crate) exprs: ExprCache,
    /// The last generation, cached while one transaction holds the write lock.
    pub(crate) tx_generation: Option<u64>,
    /// Randomness for document and transaction ids.
    pub(crate) random: ids::RandomPool,
    /// What this transaction stored, not yet written into the count (`size.rs`).
    pub(crate) size: PendingSize,
}

impl Ctx {
    /// Forgets what was cached for a transaction (call at its start and when a
    /// batch aborts).
    pub(crate) fn reset_transaction_cache(&mut self) {
        self.tx_generation = None;
        self.exprs.forget_fields();
        self.size.clear();
    }

    fn next_rev(&self, rev: Option<&Rev>) -> Result<Rev> {
        let mut clock = rev.map(Rev::clock).unwrap_or_default();
        clock.increment(&self.replica_uid)?;
        Rev::from_clock(&clock)
    }

    /// Refuses a document over the size limit, counted as u1db's `get_size`
    /// counts it: content + id + revision (bytes).
    fn check_size<P: Payload>(&self, doc: &Document<P>) -> Result<()> {
        let size = doc
            .content
            .as_ref()
            .map_or(0, Sealed::size)
            .saturating_add(doc.doc_id.len())
            .saturating_add(doc.rev.as_ref().map_or(0, |rev| rev.len()));
        match self.document_size_limit {
            Some(limit) if size > limit => Err(StoreError::DocumentTooBig),
            _ => Ok(()),
        }
    }
}

/// The counted size (`size.rs`) of a stored document row.
fn row_bytes<P: Payload>(doc: &Document<P>) -> i64 {
    size::doc_row_bytes(
        &doc.doc_id,
        doc.rev.as_ref().map_or(0, |rev| rev.len()),
        doc.content.as_ref().map_or(0, Sealed::size),
    )
}

/// Stores `doc` as the current revision: document row, index rows and a new
/// transaction log entry. `old` is the row it replaces (`None` for a new
/// document), for the stored-size count. Returns the new generation.
fn put_and_update_indexes<P: Payload>(
    conn: &Conn<'_>,
    ctx: &mut Ctx,
    old: Option<&Document<P>>,
    doc: &Document<P>,
) -> Result<u64> {
    let old_exists = old.is_some();
    let rev = doc.rev.as_ref().ok_or(StoreError::InvalidRevision)?;
    let current = match ctx.tx_generation {
        Some(generation) => generation,
        None => read::generation_info(conn)?.0,
    };
    let generation = current
        .checked_add(1)
        .ok_or(StoreError::InvalidGeneration)?;
    let gen_sql = from_generation(generation)?;
    let content = doc.content.as_ref().map(Sealed::to_sql);
    let params = rusqlite::params![doc.doc_id, rev, content, gen_sql];
    if old_exists {
        conn.with(
            "UPDATE document SET doc_rev = ?2, content = ?3, generation = ?4 WHERE doc_id = ?1",
            |stmt| Ok(stmt.execute(params)?),
        )?;
    } else {
        conn.with(
            "INSERT INTO document (doc_id, doc_rev, content, generation) VALUES (?1, ?2, ?3, ?4)",
            |stmt| Ok(stmt.execute(params)?),
        )?;
    }
    if P::INDEXED {
        crate::index::update_doc_fields(
            conn,
            &mut ctx.exprs,
            &doc.doc_id,
            doc.content.as_ref().and_then(Sealed::as_json),
            old_exists,
        )?;
    }
    let trans_id = ctx.random.new_transaction_id()?;
    conn.with(
        "INSERT INTO transaction_log (generation, doc_id, transaction_id) VALUES (?1, ?2, ?3)",
        |stmt| Ok(stmt.execute(rusqlite::params![gen_sql, doc.doc_id, trans_id])?),
    )?;
    if ctx.size.is_counted() {
        let log = size::log_row_bytes(&doc.doc_id);
        match old {
            Some(old) => ctx.size.add(0, row_bytes(doc) - row_bytes(old) + log),
            None => ctx.size.add(1, row_bytes(doc) + log),
        }
    }
    ctx.tx_generation = Some(generation);
    Ok(generation)
}

/// u1db `put_doc`: a new revision on top of `doc.rev`. Returns the new rev.
pub(crate) fn put_doc<P: Payload>(
    conn: &Conn<'_>,
    ctx: &mut Ctx,
    doc: &mut Document<P>,
) -> Result<Rev> {
    ctx.check_size(doc)?;
    let old = read::get_doc_row::<P>(conn, &doc.doc_id, true)?;
    let new_rev = match &old {
        Some((old_doc, _)) if old_doc.has_conflicts => return Err(StoreError::ConflictedDoc),
        Some((old_doc, _)) if doc.rev.is_none() && old_doc.is_tombstone() => {
            ctx.next_rev(old_doc.rev.as_ref())?
        }
        Some((old_doc, _)) => {
            if old_doc.rev != doc.rev {
                return Err(StoreError::RevisionConflict);
            }
            ctx.next_rev(doc.rev.as_ref())?
        }
        None => {
            if doc.rev.is_some() {
                return Err(StoreError::RevisionConflict);
            }
            ctx.next_rev(None)?
        }
    };
    // On error the callers restore `doc.rev` (and roll the transaction back).
    doc.rev = Some(new_rev.clone());
    put_and_update_indexes(conn, ctx, old.as_ref().map(|(old, _)| old), doc)?;
    doc.has_conflicts = false;
    Ok(new_rev)
}

/// u1db `create_doc`: a new document (or a revived tombstone).
pub(crate) fn create_doc<P: Payload>(
    conn: &Conn<'_>,
    ctx: &mut Ctx,
    content: P,
    doc_id: Option<&DocId>,
) -> Result<Document<P>> {
    let doc_id = match doc_id {
        Some(id) => id.clone(),
        None => ctx.random.new_doc_id()?,
    };
    let mut doc = Document::new(doc_id, None, Some(content));
    put_doc(conn, ctx, &mut doc)?;
    Ok(doc)
}

/// u1db `delete_doc`: a tombstone on top of `doc.rev`. Returns the new rev.
pub(crate) fn delete_doc<P: Payload>(
    conn: &Conn<'_>,
    ctx: &mut Ctx,
    doc: &mut Document<P>,
) -> Result<Rev> {
    let Some((old_doc, _)) = read::get_doc_row::<P>(conn, &doc.doc_id, true)? else {
        return Err(StoreError::DocumentDoesNotExist);
    };
    if old_doc.rev != doc.rev {
        return Err(StoreError::RevisionConflict);
    }
    if old_doc.is_tombstone() {
        return Err(StoreError::DocumentAlreadyDeleted);
    }
    if old_doc.has_conflicts {
        return Err(StoreError::ConflictedDoc);
    }
    let new_rev = ctx.next_rev(doc.rev.as_ref())?;
    let tombstone = Document::<P>::new(doc.doc_id.clone(), Some(new_rev.clone()), None);
    put_and_update_indexes(conn, ctx, Some(&old_doc), &tombstone)?;
    doc.rev = Some(new_rev.clone());
    doc.content = None;
    doc.has_conflicts = false;
    Ok(new_rev)
}

/// The counted size of the stored conflict `(doc_id, rev)`, if there is one.
fn conflict_bytes(conn: &Conn<'_>, doc_id: &DocId, rev: &Rev) -> Result<Option<i64>> {
    let sql = format!(
        "SELECT {} FROM conflicts c WHERE c.doc_id = ?1 AND c.doc_rev = ?2",
        size::CONFLICT_ROW_SQL
    );
    let mut stmt = conn.prepare(&sql)?;
    Ok(stmt
        .query_row(rusqlite::params![doc_id, rev], |r| r.get(0))
        .optional()?)
}

pub(crate) fn add_conflict<P: Payload>(
    conn: &Conn<'_>,
    ctx: &mut Ctx,
    doc_id: &DocId,
    rev: &Rev,
    content: Option<&P>,
) -> Result<()> {
    // `INSERT OR REPLACE` replaces a stored conflict of the same revision.
    let replaced = if ctx.size.is_counted() {
        conflict_bytes(conn, doc_id, rev)?
    } else {
        None
    };
    let mut stmt = conn.prepare(
        "INSERT OR REPLACE INTO conflicts (doc_id, doc_rev, content) VALUES (?1, ?2, ?3)",
    )?;
    stmt.execute(rusqlite::params![doc_id, rev, content.map(Sealed::to_sql)])?;
    if ctx.size.is_counted() {
        let stored = size::doc_row_bytes(doc_id, rev.len(), content.map_or(0, Sealed::size));
        match replaced {
            Some(old) => ctx.size.add(0, stored - old),
            None => ctx.size.add(1, stored),
        }
    }
    Ok(())
}

fn delete_conflict(conn: &Conn<'_>, ctx: &mut Ctx, doc_id: &DocId, rev: &Rev) -> Result<()> {
    let removed = if ctx.size.is_counted() {
        conflict_bytes(conn, doc_id, rev)?
    } else {
        None
    };
    let mut stmt = conn.prepare("DELETE FROM conflicts WHERE doc_id = ?1 AND doc_rev = ?2")?;
    stmt.execute(rusqlite::params![doc_id, rev])?;
    if let Some(removed) = removed {
        ctx.size.add(-1, -removed);
    }
    Ok(())
}

/// u1db `_prune_conflicts`: drops the conflicts `doc` supersedes, merges those
/// with the same content (then `doc.rev` becomes the join, incremented).
fn prune_conflicts<P: Payload>(
    conn: &Conn<'_>,
    ctx: &mut Ctx,
    doc: &mut Document<P>,
    doc_clock: &mut VectorClock,
) -> Result<()> {
    if !read::has_conflicts(conn, &doc.doc_id)? {
        return Ok(());
    }
    let mut autoresolved = false;
    for conflict in read::get_conflicts::<P>(conn, &doc.doc_id)? {
        let conflict_rev = conflict
            .rev
            .as_ref()
            .ok_or(StoreError::Corrupt("stored conflict revision"))?;
        let conflict_clock = conflict_rev.clock();
        if doc_clock.is_newer(&conflict_clock) {
            delete_conflict(conn, ctx, &doc.doc_id, conflict_rev)?;
        } else if P::same_content(doc.content.as_ref(), conflict.content.as_ref())? {
            doc_clock.maximize(&conflict_clock);
            autoresolved = true;
            delete_conflict(conn, ctx, &doc.doc_id, conflict_rev)?;
        }
    }
    if autoresolved {
        doc_clock.increment(&ctx.replica_uid)?;
        doc.rev = Some(Rev::from_clock(doc_clock)?);
    }
    Ok(())
}

/// u1db `_put_doc_if_newer`.
pub(crate) fn put_doc_if_newer<P: Payload>(
    conn: &Conn<'_>,
    ctx: &mut Ctx,
    doc: &mut Document<P>,
    save_conflict: bool,
    source: Option<&crate::Source>,
) -> Result<(PutState, u64)> {
    let incoming_rev = doc.rev.clone().ok_or(StoreError::InvalidRevision)?;
    let mut doc_clock = incoming_rev.clock();
    let current = read::get_doc_row::<P>(conn, &doc.doc_id, false)?;
    let current_clock = match &current {
        Some((cur, _)) => cur.rev.as_ref().map(Rev::clock).unwrap_or_default(),
        None => VectorClock::new(),
    };
    if let Some(source) = source {
        sync::validate_source(
            conn,
            source.replica.as_str(),
            source.position.generation(),
            source.position.transaction_id().as_str(),
        )?;
    }
    let state = if doc_clock.is_newer(&current_clock) {
        prune_conflicts(conn, ctx, doc, &mut doc_clock)?;
        put_and_update_indexes(conn, ctx, current.as_ref().map(|(cur, _)| cur), doc)?;
        doc.has_conflicts = read::has_conflicts(conn, &doc.doc_id)?;
        if doc.rev.as_ref() == Some(&incoming_rev) {
            PutState::Inserted
        } else {
            PutState::Superseded
        }
    } else if let Some((cur, _)) = current {
        if cur.rev.as_ref() == Some(&incoming_rev) {
            PutState::Converged
        } else if current_clock.is_newer(&doc_clock) {
            PutState::Superseded
        } else if P::same_content(cur.content.as_ref(), doc.content.as_ref())? {
            doc_clock.maximize(&current_clock);
            doc_clock.increment(&ctx.replica_uid)?;
            doc.rev = Some(Rev::from_clock(&doc_clock)?);
            put_and_update_indexes(conn, ctx, Some(&cur), doc)?;
            doc.has_conflicts = read::has_conflicts(conn, &doc.doc_id)?;
            PutState::Superseded
        } else {
            if save_conflict {
                // u1db `_force_doc_sync_conflict`: incoming becomes current,
                // ours is kept as a conflict.
                prune_conflicts(conn, ctx, doc, &mut doc_clock)?;
                let cur_rev = cur
                    .rev
                    .as_ref()
                    .ok_or(StoreError::Corrupt("stored revision"))?;
                add_conflict(conn, ctx, &doc.doc_id, cur_rev, cur.content.as_ref())?;
                put_and_update_indexes(conn, ctx, Some(&cur), doc)?;
                doc.has_conflicts = true;
            }
            PutState::Conflicted
        }
    } else {
        // Unreachable in practice: a non-empty clock is always newer than none.
        return Err(StoreError::InvalidRevision);
    };
    if let Some(source) = source {
        sync::set_source(conn, ctx, source)?;
    }
    let generation = match ctx.tx_generation {
        Some(generation) => generation,
        None => read::generation_info(conn)?.0,
    };
    Ok((state, generation))
}

/// u1db `resolve_doc`: `doc` supersedes `conflicted_revs`; its rev becomes the
/// join of the current rev and those, incremented.
pub(crate) fn resolve_doc<P: Payload>(
    conn: &Conn<'_>,
    ctx: &mut Ctx,
    doc: &mut Document<P>,
    conflicted_revs: &[Rev],
) -> Result<()> {
    ctx.check_size(doc)?;
    let Some((current, _)) = read::get_doc_row::<P>(conn, &doc.doc_id, false)? else {
        return Err(StoreError::DocumentDoesNotExist);
    };
    let cur_rev = current
        .rev
        .clone()
        .ok_or(StoreError::Corrupt("stored revision"))?;
    let mut clock = cur_rev.clock();
    for rev in conflicted_revs {
        clock.maximize(&rev.clock());
    }
    clock.increment(&ctx.replica_uid)?;
    let superseded: HashSet<&Rev> = conflicted_revs.iter().collect();
    let new_rev = Rev::from_clock(&clock)?;
    doc.rev = Some(new_rev.clone());
    if superseded.contains(&cur_rev) {
        put_and_update_indexes(conn, ctx, Some(&current), doc)?;
    } else {
        add_conflict(conn, ctx, &doc.doc_id, &new_rev, doc.content.as_ref())?;
    }
    for rev in &superseded {
        delete_conflict(conn, ctx, &doc.doc_id, rev)?;
    }
    doc.has_conflicts = read::has_conflicts(conn, &doc.doc_id)?;
    Ok(())
}
