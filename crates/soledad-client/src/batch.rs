//! Several document writes in one local transaction ([`Soledad::batch`]).
//!
//! A batch runs on the database thread, so its closure is synchronous. Either every
//! write of the batch is kept or none is: returning an error from the closure, or a
//! write failing half-way, rolls the whole batch back.
//!
//! [`Soledad::batch`]: crate::Soledad::batch

use serde_json::Value;
use soledad_store::{DocId, Document, JsonContent, Rev, StoreError};

/// The writes a [`Soledad::batch`](crate::Soledad::batch) closure can make. Sync
/// bookkeeping (replica positions, foreign revisions) is deliberately not reachable
/// from here: only the sync engine writes it.
#[derive(Debug)]
pub struct DocBatch<'b, 'c> {
    inner: &'b mut soledad_store::Batch<'c, JsonContent>,
}

impl<'b, 'c> DocBatch<'b, 'c> {
    pub(crate) fn new(inner: &'b mut soledad_store::Batch<'c, JsonContent>) -> Self {
        DocBatch { inner }
    }

    /// As [`Soledad::create_doc`](crate::Soledad::create_doc).
    ///
    /// # Errors
    /// As [`Soledad::create_doc`](crate::Soledad::create_doc).
    pub fn create_doc(
        &mut self,
        content: &Value,
        doc_id: Option<&str>,
    ) -> Result<Document, StoreError> {
        let doc_id = doc_id.map(DocId::parse).transpose()?;
        self.inner.create_doc(content, doc_id.as_ref())
    }

    /// As [`Soledad::create_doc_from_json`](crate::Soledad::create_doc_from_json).
    ///
    /// # Errors
    /// As [`Soledad::create_doc_from_json`](crate::Soledad::create_doc_from_json).
    pub fn create_doc_from_json(
        &mut self,
        json: &str,
        doc_id: Option<&str>,
    ) -> Result<Document, StoreError> {
        let doc_id = doc_id.map(DocId::parse).transpose()?;
        self.inner.create_doc_from_json(json, doc_id.as_ref())
    }

    /// As [`Soledad::put_doc`](crate::Soledad::put_doc).
    ///
    /// # Errors
    /// As [`Soledad::put_doc`](crate::Soledad::put_doc).
    pub fn put_doc(&mut self, doc: &mut Document) -> Result<Rev, StoreError> {
        self.inner.put_doc(doc)
    }

    /// As [`Soledad::delete_doc`](crate::Soledad::delete_doc).
    ///
    /// # Errors
    /// As [`Soledad::delete_doc`](crate::Soledad::delete_doc).
    pub fn delete_doc(&mut self, doc: &mut Document) -> Result<Rev, StoreError> {
        self.inner.delete_doc(doc)
    }

    /// As [`Soledad::resolve_doc`](crate::Soledad::resolve_doc).
    ///
    /// # Errors
    /// As [`Soledad::resolve_doc`](crate::Soledad::resolve_doc).
    pub fn resolve_doc<S: AsRef<str>>(
        &mut self,
        doc: &mut Document,
        conflicted_revs: &[S],
    ) -> Result<(), StoreError> {
        let revs = conflicted_revs
            .iter()
            .map(|rev| Rev::parse(rev.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        self.inner.resolve_doc(doc, &revs)
    }

    /// The current version of a document, seeing this batch's own writes.
    ///
    /// # Errors
    /// `InvalidDocId`, storage errors.
    pub fn get_doc(
        &self,
        doc_id: &str,
        include_deleted: bool,
    ) -> Result<Option<Document>, StoreError> {
        self.inner.get_doc(&DocId::parse(doc_id)?, include_deleted)
    }
}
