//! The public database handle: every method is one SQLite transaction.

use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};
use serde_json::Value;

use crate::batch::Batch;
use crate::conn::Conn;
use crate::document::Document;
use crate::error::{Result, StoreError};
use crate::ids::{DocId, Rev};
use crate::index::{self, ExprCache};
use crate::open::{KEY_BYTES, OpenOptions};
use crate::payload::{JsonContent, Payload};
use crate::position::{Position, ReplicaUid, SaveConflict, Source};
use crate::read;
use crate::size::StoredSize;
use crate::sync::{self, Change, ChangedDoc, Changes, PutState};
use crate::write::{self, Ctx};

/// A u1db database over SQLite. `P` is the payload: [`JsonContent`] for the
/// client (indexes, content comparison), `Vec<u8>` for the server's opaque
/// ciphertexts ([`OpaqueDatabase`]).
///
/// Synchronous and `Send` (not `Sync`): async callers own it on a dedicated
/// thread. Several handles may open the same file (WAL); writes serialise.
#[derive(Debug)]
pub struct Database<P: Payload = JsonContent> {
    conn: Connection,
    ctx: Ctx,
    /// Whether commits are durable (`synchronous = FULL`).
    pub(crate) durable_commits: bool,
    /// Every change up to this generation is known to be on disk.
    durable_generation: u64,
    _payload: std::marker::PhantomData<fn() -> P>,
}

/// The server's store of opaque payloads.
pub type OpaqueDatabase = Database<Vec<u8>>;

/// Reads documents with statements prepared once ([`Database::doc_reader`]).
#[derive(Debug)]
pub struct DocReader<'a, P: Payload> {
    conn: Conn<'a>,
    _payload: std::marker::PhantomData<fn() -> P>,
}

impl<P: Payload> DocReader<'_, P> {
    /// As [`Database::get_doc_at_generation`].
    ///
    /// # Errors
    /// As [`Database::get_doc_at_generation`].
    pub fn get_doc_at_generation(&self, generation: u64) -> Result<Option<Document<P>>> {
        read::get_doc_at_generation(&self.conn, generation)
    }
}

/// Keeps `doc`'s rev and conflict flag unchanged when an operation fails.
fn restoring<P: Payload, T>(
    doc: &mut Document<P>,
    op: impl FnOnce(&mut Document<P>) -> Result<T>,
) -> Result<T> {
    let rev = doc.rev.clone();
    let has_conflicts = doc.has_conflicts;
    let result = op(doc);
    if result.is_err() {
        doc.rev = rev;
        doc.has_conflicts = has_conflicts;
    }
    result
}

impl Database<JsonContent> {
    /// Opens (or creates) an encrypted JSON database with default options.
    ///
    /// # Errors
    /// See [`OpenOptions::open_encrypted`].
    pub fn open_encrypted(path: impl AsRef<Path>, key: &[u8; KEY_BYTES]) -> Result<Self> {
        OpenOptions::new().open_encrypted(path, key)
    }

    /// Opens (or creates) a plaintext JSON database.
    ///
    /// # Errors
    /// See [`OpenOptions::open_unencrypted`].
    pub fn open_unencrypted(path: impl AsRef<Path>) -> Result<Self> {
        OpenOptions::new().open_unencrypted(path)
    }

    /// A fresh in-memory JSON database (tests).
    ///
    /// # Errors
    /// [`StoreError::Storage`].
    pub fn open_in_memory() -> Result<Self> {
        OpenOptions::new().open_in_memory()
    }

    /// u1db `create_doc`: stores `content` (a JSON object) under `doc_id` or a
    /// new `D-…` id. Reviving a deleted id is allowed.
    ///
    /// # Errors
    /// [`StoreError::InvalidContent`], [`StoreError::InvalidDocId`],
    /// [`StoreError::RevisionConflict`] if the id exists, [`StoreError::DocumentTooBig`].
    pub fn create_doc(&mut self, content: &Value, doc_id: Option<&DocId>) -> Result<Document> {
        let content = JsonContent::from_value(content)?;
        self.write(|conn, ctx| write::create_doc(conn, ctx, content, doc_id))
    }

    /// u1db `create_doc_from_json`: as [`Database::create_doc`], keeping the
    /// text byte-exact.
    ///
    /// # Errors
    /// [`StoreError::InvalidJson`], plus those of [`Database::create_doc`].
    pub fn create_doc_from_json(&mut self, json: &str, doc_id: Option<&DocId>) -> Result<Document> {
        let content = JsonContent::from_json(json)?;
        self.write(|conn, ctx| write::create_doc(conn, ctx, content, doc_id))
    }

    /// u1db `create_index`. Same name and expressions again is a no-op.
    ///
    /// # Errors
    /// [`StoreError::IndexDefinitionParseError`], [`StoreError::IndexNameTakenError`].
    pub fn create_index<S: AsRef<str>>(&mut self, name: &str, expressions: &[S]) -> Result<()> {
        let expressions: Vec<String> = expressions.iter().map(|e| e.as_ref().to_owned()).collect();
        self.write(|conn, ctx| index::create_index(conn, &mut ctx.exprs, name, &expressions))
    }

    /// u1db `delete_index` (an unknown name is not an error).
    ///
    /// # Errors
    /// [`StoreError::Storage`].
    pub fn delete_index(&mut self, name: &str) -> Result<()> {
        self.write(|conn, ctx| index::delete_index(conn, &mut ctx.exprs, name))
    }

    /// u1db `list_indexes`: `(name, expressions)`, sorted by name.
    ///
    /// # Errors
    /// [`StoreError::Storage`].
    pub fn list_indexes(&self) -> Result<Vec<(String, Vec<String>)>> {
        index::list_indexes(&self.reader())
    }

    /// u1db `get_from_index`: one value per expression; `*` matches anything
    /// and `prefix*` a prefix (trailing columns only). Ordered by index values.
    ///
    /// # Errors
    /// [`StoreError::IndexDoesNotExist`], [`StoreError::InvalidValueForIndex`],
    /// [`StoreError::InvalidGlobbing`].
    pub fn get_from_index<S: AsRef<str>>(&self, name: &str, values: &[S]) -> Result<Vec<Document>> {
        index::get_from_index(&self.reader(), name, values)
    }

    /// u1db `get_range_from_index`: inclusive; `None` (or empty) is an open
    /// end; each column is bounded separately; `prefix*` bounds as in u1db.
    ///
    /// # Errors
    /// As [`Database::get_from_index`].
    pub fn get_range_from_index<S: AsRef<str>>(
        &self,
        name: &str,
        start: Option<&[S]>,
        end: Option<&[S]>,
    ) -> Result<Vec<Document>> {
        index::get_range_from_index(&self.reader(), name, start, end)
    }

    /// u1db `get_index_keys`: the distinct key tuples, sorted.
    ///
    /// # Errors
    /// [`StoreError::IndexDoesNotExist`].
    pub fn get_index_keys(&self, name: &str) -> Result<Vec<Vec<String>>> {
        index::get_index_keys(&self.reader(), name)
    }

    /// Soledad `get_count_from_index`: how many documents
    /// [`Database::get_from_index`] would return.
    ///
    /// # Errors
    /// As [`Database::get_from_index`].
    pub fn get_count_from_index<S: AsRef<str>>(&self, name: &str, values: &[S]) -> Result<u64> {
        index::get_count_from_index(&self.reader(), name, values)
    }
}

impl Database<Vec<u8>> {
    /// What this store holds (see [`StoredSize`]): kept up to date in the
    /// same transaction as every write, so it is exact after each commit and
    /// the same after reopening. O(1). Only opaque (server) stores keep the
    /// count; the client's JSON databases pay nothing for it.
    ///
    /// # Errors
    /// [`StoreError::Storage`], [`StoreError::Corrupt`].
    pub fn stored_size(&self) -> Result<StoredSize> {
        // Outside a transaction nothing is pending.
        crate::size::stored_size(&self.reader(), &crate::size::PendingSize::new(true))
    }

    /// Opens (or creates) the server's plaintext store of opaque payloads.
    ///
    /// # Errors
    /// See [`OpenOptions::open_unencrypted`].
    pub fn open_opaque_unencrypted(path: impl AsRef<Path>) -> Result<Self> {
        OpenOptions::new().open_unencrypted(path)
    }

    /// A fresh in-memory opaque store (tests).
    ///
    /// # Errors
    /// [`StoreError::Storage`].
    pub fn open_opaque_in_memory() -> Result<Self> {
        OpenOptions::new().open_in_memory()
    }
}

impl<P: Payload> Database<P> {
    pub(crate) fn from_parts(
        conn: Connection,
        replica_uid: String,
        document_size_limit: Option<usize>,
    ) -> Self {
        Self {
            conn,
            ctx: Ctx {
                replica_uid,
                document_size_limit,
                exprs: ExprCache::default(),
                tx_generation: None,
                random: crate::ids::RandomPool::default(),
                size: crate::size::PendingSize::new(
                    <P as crate::payload::sealed::Sealed>::COUNTS_SIZE,
                ),
            },
            durable_commits: false,
            durable_generation: 0,
            _payload: std::marker::PhantomData,
        }
    }

    /// After a commit: a durable commit that wrote something synced the log,
    /// so everything up to the current generation is on disk.
    fn note_commit(&mut self, changes_before: u64) {
        if !self.durable_commits || self.conn.total_changes() == changes_before {
            return;
        }
        let position = read::generation_info(&self.reader());
        // On a failed read the mark stays lower: later checks only sync again.
        if let Ok((generation, _)) = position {
            self.durable_generation = generation;
        }
    }

    /// The connection, for tests that check SQL-level invariants.
    #[cfg(test)]
    pub(crate) fn connection(&self) -> &Connection {
        &self.conn
    }

    /// The connection and replica uid back (tests that reopen a database).
    #[cfg(test)]
    pub(crate) fn into_parts(self) -> (Connection, String) {
        (self.conn, self.ctx.replica_uid)
    }

    fn reader(&self) -> Conn<'_> {
        Conn::new(&self.conn)
    }

    fn write<T>(&mut self, op: impl FnOnce(&Conn<'_>, &mut Ctx) -> Result<T>) -> Result<T> {
        let changes_before = self.conn.total_changes();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        self.ctx.reset_transaction_cache();
        let value = op(&Conn::new(&tx), &mut self.ctx)?;
        self.ctx.size.flush(&tx)?;
        tx.commit()?;
        self.note_commit(changes_before);
        Ok(value)
    }

    /// Runs `f` in one transaction: everything it wrote is committed if it
    /// returns `Ok`, nothing if it returns `Err`. An operation that fails
    /// before writing (validation, revision conflict …) leaves nothing, so `f`
    /// may handle its error and go on; one that fails half-way aborts the
    /// whole batch (see [`Batch::is_aborted`]).
    ///
    /// # Errors
    /// What `f` returns; [`StoreError::BatchAborted`] if an operation failed
    /// half-way and `f` still returned `Ok`; [`StoreError::Storage`] if the
    /// commit fails.
    pub fn batch<T, E: From<StoreError>>(
        &mut self,
        f: impl FnOnce(&mut Batch<'_, P>) -> Result<T, E>,
    ) -> Result<T, E> {
        let changes_before = self.conn.total_changes();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(StoreError::from)?;
        self.ctx.reset_transaction_cache();
        let mut batch = Batch::new(Conn::caching(&tx), &mut self.ctx);
        let result = f(&mut batch);
        let aborted = batch.is_aborted();
        drop(batch); // finalises the cached statements before the commit
        let value = result?;
        if aborted {
            return Err(StoreError::BatchAborted.into());
        }
        self.ctx.size.flush(&tx)?;
        tx.commit().map_err(StoreError::from)?;
        self.note_commit(changes_before);
        Ok(value)
    }

    /// Closes the database, reporting a failure to close.
    ///
    /// # Errors
    /// [`StoreError::Storage`].
    pub fn close(self) -> Result<()> {
        self.conn.close().map_err(|(_, e)| StoreError::from(e))
    }

    /// Switches durable commits (see [`OpenOptions::durable_commits`]) for the
    /// next transactions of this handle.
    ///
    /// # Errors
    /// [`StoreError::Storage`].
    pub fn set_durable_commits(&mut self, durable: bool) -> Result<()> {
        self.conn
            .execute_batch(crate::open::synchronous_pragma(durable))?;
        self.durable_commits = durable;
        Ok(())
    }

    /// Every change up to this generation is known to be on disk: the
    /// generation at this handle's last durable commit that wrote something
    /// (with WAL, it synced every earlier commit too). 0 until then, whatever
    /// the file held when opened. Compare it with
    /// [`Database::get_generation_info`] before acknowledging a position.
    pub fn durable_generation(&self) -> u64 {
        self.durable_generation
    }

    /// This replica's uid (stable across reopening).
    pub fn replica_uid(&self) -> &str {
        &self.ctx.replica_uid
    }

    /// The size limit given at open.
    pub fn document_size_limit(&self) -> Option<usize> {
        self.ctx.document_size_limit
    }

    /// Changes the size limit for later writes of this handle.
    pub fn set_document_size_limit(&mut self, bytes: Option<usize>) {
        self.ctx.document_size_limit = bytes;
    }

    /// A new document with an opaque or pre-built payload (see
    /// [`Database::create_doc`] for JSON).
    ///
    /// # Errors
    /// As [`Database::create_doc`].
    pub fn create_doc_with_content(
        &mut self,
        content: P,
        doc_id: Option<&DocId>,
    ) -> Result<Document<P>> {
        self.write(|conn, ctx| write::create_doc(conn, ctx, content, doc_id))
    }

    /// u1db `put_doc`: stores `doc.content` as a new revision on top of
    /// `doc.rev` (`None` for a new document or to revive a tombstone). Updates
    /// `doc.rev` and returns it.
    ///
    /// # Errors
    /// [`StoreError::InvalidDocId`], [`StoreError::RevisionConflict`],
    /// [`StoreError::ConflictedDoc`], [`StoreError::DocumentTooBig`],
    /// [`StoreError::InvalidRevision`].
    pub fn put_doc(&mut self, doc: &mut Document<P>) -> Result<Rev> {
        self.write(|conn, ctx| restoring(doc, |doc| write::put_doc(conn, ctx, doc)))
    }

    /// u1db `delete_doc`: makes `doc` a tombstone (`content = None`, new rev).
    ///
    /// # Errors
    /// [`StoreError::DocumentDoesNotExist`], [`StoreError::RevisionConflict`],
    /// [`StoreError::DocumentAlreadyDeleted`], [`StoreError::ConflictedDoc`].
    pub fn delete_doc(&mut self, doc: &mut Document<P>) -> Result<Rev> {
        self.write(|conn, ctx| restoring(doc, |doc| write::delete_doc(conn, ctx, doc)))
    }

    /// u1db `get_doc` (with `has_conflicts`). Deleted documents only with
    /// `include_deleted`; unknown ids give `None`.
    ///
    /// # Errors
    /// [`StoreError::Storage`], [`StoreError::Corrupt`].
    pub fn get_doc(&self, doc_id: &DocId, include_deleted: bool) -> Result<Option<Document<P>>> {
        Ok(self
            .get_doc_with_generation(doc_id)?
            .map(|(doc, _)| doc)
            .filter(|doc| include_deleted || !doc.is_tombstone()))
    }

    /// The stored document (tombstones included) with the generation of its
    /// latest change, for the sync engine.
    ///
    /// # Errors
    /// [`StoreError::Storage`], [`StoreError::Corrupt`].
    pub fn get_doc_with_generation(&self, doc_id: &DocId) -> Result<Option<(Document<P>, u64)>> {
        read::get_doc_row(&self.reader(), doc_id, true)
    }

    /// The stored document (tombstones included) whose latest change is
    /// `generation`, as [`Database::changes_since`] names it; `None` when a
    /// later change superseded it. Reads by generation, in the order changes are
    /// walked, instead of a random page of the id index per document.
    ///
    /// # Errors
    /// [`StoreError::Storage`], [`StoreError::Corrupt`],
    /// [`StoreError::InvalidGeneration`] past the largest storable generation.
    pub fn get_doc_at_generation(&self, generation: u64) -> Result<Option<Document<P>>> {
        read::get_doc_at_generation(&self.reader(), generation)
    }

    /// A reader of documents by generation that prepares its statement once,
    /// for a caller reading many in a row (a sync response reads a batch per
    /// call): [`DocReader::get_doc_at_generation`] as
    /// [`Database::get_doc_at_generation`], without parsing and planning the
    /// query for each document.
    pub fn doc_reader(&self) -> DocReader<'_, P> {
        DocReader {
            conn: Conn::caching(&self.conn),
            _payload: std::marker::PhantomData,
        }
    }

    /// u1db `get_docs`: the documents in `doc_ids` order; unknown ids are
    /// skipped; with `check_for_conflicts == false` `has_conflicts` is false.
    ///
    /// # Errors
    /// [`StoreError::Storage`], [`StoreError::Corrupt`].
    pub fn get_docs(
        &self,
        doc_ids: &[DocId],
        check_for_conflicts: bool,
        include_deleted: bool,
    ) -> Result<Vec<Document<P>>> {
        let mut out = Vec::with_capacity(doc_ids.len());
        for doc_id in doc_ids {
            if let Some((doc, _)) = read::get_doc_row(&self.reader(), doc_id, check_for_conflicts)?
                && (include_deleted || !doc.is_tombstone())
            {
                out.push(doc);
            }
        }
        Ok(out)
    }

    /// u1db `get_all_docs`: the current generation and every document
    /// (sorted by id).
    ///
    /// # Errors
    /// [`StoreError::Storage`], [`StoreError::Corrupt`].
    pub fn get_all_docs(&self, include_deleted: bool) -> Result<(u64, Vec<Document<P>>)> {
        let tx = self.conn.unchecked_transaction()?;
        let tx = Conn::new(&tx);
        let (generation, _) = read::generation_info(&tx)?;
        let sql = format!("{} ORDER BY d.doc_id", read::DOC_SELECT);
        let mut stmt = tx.prepare(&sql)?;
        let mut rows = stmt.query([])?;
        let mut docs = Vec::new();
        while let Some(row) = rows.next()? {
            let (doc, _) = read::doc_from_row::<P>(row)?;
            if include_deleted || !doc.is_tombstone() {
                docs.push(doc);
            }
        }
        Ok((generation, docs))
    }

    /// u1db `get_doc_conflicts`: empty without conflicts, else the current
    /// revision first, then the conflicting ones.
    ///
    /// # Errors
    /// [`StoreError::Storage`], [`StoreError::Corrupt`].
    pub fn get_doc_conflicts(&self, doc_id: &DocId) -> Result<Vec<Document<P>>> {
        let tx = self.conn.unchecked_transaction()?;
        let tx = Conn::new(&tx);
        let conflicts = read::get_conflicts::<P>(&tx, doc_id)?;
        if conflicts.is_empty() {
            return Ok(conflicts);
        }
        let Some((mut current, _)) = read::get_doc_row::<P>(&tx, doc_id, false)? else {
            return Err(StoreError::Corrupt("conflicts without a document"));
        };
        current.has_conflicts = true;
        let mut out = Vec::with_capacity(conflicts.len() + 1);
        out.push(current);
        out.extend(conflicts);
        Ok(out)
    }

    /// u1db `resolve_doc`: `doc` (new content) supersedes `conflicted_revs`.
    /// Its rev becomes the join of those and the current rev, incremented. If
    /// the current rev is among them `doc` becomes current, otherwise it is
    /// stored as one more conflict. Sets `doc.has_conflicts` to what remains.
    ///
    /// # Errors
    /// [`StoreError::DocumentDoesNotExist`], [`StoreError::InvalidRevision`]
    /// if a counter would overflow, [`StoreError::DocumentTooBig`].
    pub fn resolve_doc(&mut self, doc: &mut Document<P>, conflicted_revs: &[Rev]) -> Result<()> {
        self.write(|conn, ctx| {
            restoring(doc, |doc| {
                write::resolve_doc(conn, ctx, doc, conflicted_revs)
            })
        })
    }

    /// u1db `_put_doc_if_newer` (sync): stores `doc` if its rev supersedes ours,
    /// merges equal content (JSON only), keeps a conflict if `save_conflict`,
    /// and records the source replica's position. `doc.rev`/`has_conflicts` are
    /// updated. Returns the state and our generation afterwards.
    ///
    /// # Errors
    /// [`StoreError::InvalidDocId`], [`StoreError::InvalidRevision`],
    /// [`StoreError::InvalidReplicaUid`], [`StoreError::InvalidGeneration`] if
    /// `replica_gen` is older than what we recorded for the source,
    /// [`StoreError::InvalidTransactionId`] for the same generation with
    /// another transaction id.
    pub fn put_doc_if_newer(
        &mut self,
        doc: &mut Document<P>,
        save_conflict: SaveConflict,
        source: Option<&Source>,
    ) -> Result<(PutState, u64)> {
        self.write(|conn, ctx| {
            restoring(doc, |doc| {
                write::put_doc_if_newer(conn, ctx, doc, save_conflict == SaveConflict::Yes, source)
            })
        })
    }

    /// u1db `whats_changed`: each document changed after `since` once, at its
    /// latest generation, ascending; plus the current generation and trans id.
    ///
    /// # Errors
    /// [`StoreError::Storage`].
    pub fn whats_changed(&self, since: u64) -> Result<Changes> {
        let tx = self.conn.unchecked_transaction()?;
        let tx = Conn::new(&tx);
        sync::whats_changed(&tx, since)
    }

    /// Up to `limit` of [`Database::whats_changed`]'s changes after `since`, in
    /// generation order, without the documents: walk a large history with a
    /// cursor (the last generation returned) in bounded memory.
    ///
    /// # Errors
    /// [`StoreError::Storage`], [`StoreError::Corrupt`].
    pub fn changes_since(&self, since: u64, limit: usize) -> Result<Vec<Change>> {
        sync::changes_since(&self.reader(), since, limit)
    }

    /// Up to `limit` documents changed after `since`, with their generation and
    /// transaction id, in generation order (bounded batches for the sync engine).
    ///
    /// # Errors
    /// [`StoreError::Storage`], [`StoreError::Corrupt`].
    pub fn docs_changed_since(&self, since: u64, limit: usize) -> Result<Vec<ChangedDoc<P>>> {
        let tx = self.conn.unchecked_transaction()?;
        let tx = Conn::new(&tx);
        sync::docs_changed_since(&tx, since, limit)
    }

    /// The current generation and its transaction id (`(0, "")` when empty).
    ///
    /// # Errors
    /// [`StoreError::Storage`].
    pub fn get_generation_info(&self) -> Result<Position> {
        read::generation_position(&self.reader())
    }

    /// The transaction id of `generation` (`""` for 0).
    ///
    /// # Errors
    /// [`StoreError::InvalidGeneration`] if we have no such generation.
    pub fn get_trans_id_for_gen(&self, generation: u64) -> Result<String> {
        read::trans_id_for_gen(&self.reader(), generation)
    }

    /// u1db `validate_gen_and_trans_id`: does our log hold `trans_id` at
    /// `generation` (generation 0 always validates)?
    ///
    /// # Errors
    /// [`StoreError::InvalidGeneration`] for a generation we never had,
    /// [`StoreError::InvalidTransactionId`] for another transaction id.
    pub fn validate_gen_and_trans_id(&self, position: &Position) -> Result<()> {
        sync::validate_gen_and_trans_id(
            &self.reader(),
            position.generation(),
            position.transaction_id().as_str(),
        )
    }

    /// What we recorded for another replica (`(0, "")` if nothing).
    ///
    /// # Errors
    /// [`StoreError::Storage`].
    pub fn get_replica_gen_and_trans_id(&self, other_replica_uid: &ReplicaUid) -> Result<Position> {
        sync::replica_position(&self.reader(), other_replica_uid)
    }

    /// Records another replica's generation and transaction id.
    ///
    /// # Errors
    /// [`StoreError::InvalidReplicaUid`], [`StoreError::InvalidGeneration`]
    /// (beyond `i64::MAX`), [`StoreError::InvalidTransactionId`] (too long).
    pub fn set_replica_gen_and_trans_id(&mut self, source: &Source) -> Result<()> {
        self.write(|conn, ctx| sync::set_source(conn, ctx, source))
    }
}
