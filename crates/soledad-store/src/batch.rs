//! A batch: many writes in one transaction (see [`crate::Database::batch`]).

use serde_json::Value;

use crate::conn::Conn;
use crate::document::Document;
use crate::error::{Result, StoreError};
use crate::ids::{DocId, Rev};
use crate::payload::{JsonContent, Payload};
use crate::position::{Position, ReplicaUid, SaveConflict, Source};
use crate::read;
use crate::sync::{self, PutState};
use crate::write::{self, Ctx};

/// The handle given to [`crate::Database::batch`]'s closure. The whole batch
/// commits when the closure returns `Ok`; an operation that fails without
/// writing anything (validation, revision conflicts …) can be handled and the
/// batch goes on.
#[derive(Debug)]
pub struct Batch<'a, P: Payload> {
    conn: Conn<'a>,
    ctx: &'a mut Ctx,
    aborted: bool,
    _payload: std::marker::PhantomData<fn() -> P>,
}

impl<'a, P: Payload> Batch<'a, P> {
    pub(crate) fn new(conn: Conn<'a>, ctx: &'a mut Ctx) -> Self {
        Self {
            conn,
            ctx,
            aborted: false,
            _payload: std::marker::PhantomData,
        }
    }

    /// Runs one operation. Operations check everything before they write, so
    /// one that fails usually wrote nothing and the batch goes on. One that
    /// fails after writing (an SQLite error, a corrupt row) aborts the batch:
    /// later operations and the commit fail with [`StoreError::BatchAborted`]
    /// and nothing of the batch is kept. (Cheaper than a savepoint per
    /// operation, which copies every touched page.)
    fn atomic<T>(&mut self, op: impl FnOnce(&Conn<'a>, &mut Ctx) -> Result<T>) -> Result<T> {
        if self.aborted {
            return Err(StoreError::BatchAborted);
        }
        let changes_before = self.conn.total_changes();
        let result = op(&self.conn, self.ctx);
        if result.is_err() && self.conn.total_changes() != changes_before {
            self.aborted = true;
            self.ctx.reset_transaction_cache();
        }
        result
    }

    /// The connection and write state (tests that call the write path directly).
    #[cfg(test)]
    pub(crate) fn parts(&mut self) -> (&Conn<'a>, &mut Ctx) {
        (&self.conn, self.ctx)
    }

    /// True once an operation failed half-way: the batch will not commit.
    pub fn is_aborted(&self) -> bool {
        self.aborted
    }

    fn atomic_doc<T>(
        &mut self,
        doc: &mut Document<P>,
        op: impl FnOnce(&Conn<'a>, &mut Ctx, &mut Document<P>) -> Result<T>,
    ) -> Result<T> {
        let rev = doc.rev.clone();
        let has_conflicts = doc.has_conflicts;
        let result = self.atomic(|conn, ctx| op(conn, ctx, doc));
        if result.is_err() {
            doc.rev = rev;
            doc.has_conflicts = has_conflicts;
        }
        result
    }

    /// As [`crate::Database::create_doc_with_content`].
    ///
    /// # Errors
    /// As [`crate::Database::create_doc`].
    pub fn create_doc_with_content(
        &mut self,
        content: P,
        doc_id: Option<&DocId>,
    ) -> Result<Document<P>> {
        self.atomic(|conn, ctx| write::create_doc(conn, ctx, content, doc_id))
    }

    /// As [`crate::Database::put_doc`].
    ///
    /// # Errors
    /// As [`crate::Database::put_doc`].
    pub fn put_doc(&mut self, doc: &mut Document<P>) -> Result<Rev> {
        self.atomic_doc(doc, write::put_doc)
    }

    /// As [`crate::Database::delete_doc`].
    ///
    /// # Errors
    /// As [`crate::Database::delete_doc`].
    pub fn delete_doc(&mut self, doc: &mut Document<P>) -> Result<Rev> {
        self.atomic_doc(doc, write::delete_doc)
    }

    /// As [`crate::Database::resolve_doc`].
    ///
    /// # Errors
    /// As [`crate::Database::resolve_doc`].
    pub fn resolve_doc(&mut self, doc: &mut Document<P>, conflicted_revs: &[Rev]) -> Result<()> {
        self.atomic_doc(doc, |conn, ctx, doc| {
            write::resolve_doc(conn, ctx, doc, conflicted_revs)
        })
    }

    /// As [`crate::Database::put_doc_if_newer`].
    ///
    /// # Errors
    /// As [`crate::Database::put_doc_if_newer`].
    pub fn put_doc_if_newer(
        &mut self,
        doc: &mut Document<P>,
        save_conflict: SaveConflict,
        source: Option<&Source>,
    ) -> Result<(PutState, u64)> {
        self.atomic_doc(doc, |conn, ctx, doc| {
            write::put_doc_if_newer(conn, ctx, doc, save_conflict == SaveConflict::Yes, source)
        })
    }

    /// As [`crate::Database::set_replica_gen_and_trans_id`].
    ///
    /// # Errors
    /// As [`crate::Database::set_replica_gen_and_trans_id`].
    pub fn set_replica_gen_and_trans_id(&mut self, source: &Source) -> Result<()> {
        self.atomic(|conn, ctx| sync::set_source(conn, ctx, source))
    }

    /// As [`crate::Database::get_doc`], seeing this batch's writes.
    ///
    /// # Errors
    /// As [`crate::Database::get_doc`].
    pub fn get_doc(&self, doc_id: &DocId, include_deleted: bool) -> Result<Option<Document<P>>> {
        Ok(read::get_doc_row(&self.conn, doc_id, true)?
            .map(|(doc, _)| doc)
            .filter(|doc| include_deleted || !doc.is_tombstone()))
    }

    /// As [`crate::Database::get_generation_info`], seeing this batch's writes.
    ///
    /// # Errors
    /// As [`crate::Database::get_generation_info`].
    pub fn get_generation_info(&self) -> Result<Position> {
        read::generation_position(&self.conn)
    }

    /// As [`crate::Database::get_replica_gen_and_trans_id`].
    ///
    /// # Errors
    /// As [`crate::Database::get_replica_gen_and_trans_id`].
    pub fn get_replica_gen_and_trans_id(&self, other_replica_uid: &ReplicaUid) -> Result<Position> {
        sync::replica_position(&self.conn, other_replica_uid)
    }
}

impl Batch<'_, Vec<u8>> {
    /// As [`crate::Database::stored_size`] (opaque stores), seeing this batch's writes: read it
    /// before and after the writes to learn what they stored.
    ///
    /// # Errors
    /// As [`crate::Database::stored_size`].
    pub fn stored_size(&self) -> Result<crate::StoredSize> {
        crate::size::stored_size(&self.conn, &self.ctx.size)
    }
}

impl Batch<'_, JsonContent> {
    /// As [`crate::Database::create_doc`].
    ///
    /// # Errors
    /// As [`crate::Database::create_doc`].
    pub fn create_doc(&mut self, content: &Value, doc_id: Option<&DocId>) -> Result<Document> {
        let content = JsonContent::from_value(content)?;
        self.create_doc_with_content(content, doc_id)
    }

    /// As [`crate::Database::create_doc_from_json`].
    ///
    /// # Errors
    /// As [`crate::Database::create_doc_from_json`].
    pub fn create_doc_from_json(&mut self, json: &str, doc_id: Option<&DocId>) -> Result<Document> {
        let content = JsonContent::from_json(json)?;
        self.create_doc_with_content(content, doc_id)
    }
}
