//! The document type: `(doc_id, rev, content | None = deleted, has_conflicts)`.

use serde_json::Value;

use crate::error::Result;
use crate::ids::{DocId, Rev};
use crate::payload::{JsonContent, Payload};

/// A document as u1db has it. `content == None` is a tombstone (deleted).
#[derive(Debug, Clone, PartialEq)]
pub struct Document<P: Payload = JsonContent> {
    /// The id (`[A-Za-z0-9.%_-]+`, checked when the [`DocId`] was parsed).
    pub doc_id: DocId,
    /// The revision (a vector clock), `None` for a document never stored.
    pub rev: Option<Rev>,
    /// The content; `None` once deleted.
    pub content: Option<P>,
    /// Whether the store holds conflicting revisions of this document (false
    /// when the read skipped the check).
    pub has_conflicts: bool,
}

impl<P: Payload> Document<P> {
    /// A document to store.
    pub fn new(doc_id: DocId, rev: Option<Rev>, content: Option<P>) -> Self {
        Self {
            doc_id,
            rev,
            content,
            has_conflicts: false,
        }
    }

    /// True if the document is deleted.
    pub fn is_tombstone(&self) -> bool {
        self.content.is_none()
    }
}

impl Document<JsonContent> {
    /// The JSON text as stored (byte-exact), `None` for a tombstone.
    pub fn json(&self) -> Option<&str> {
        self.content.as_ref().map(JsonContent::as_str)
    }

    /// The content parsed, `None` for a tombstone.
    ///
    /// # Errors
    /// [`crate::StoreError::InvalidJson`] if stored text was damaged.
    pub fn value(&self) -> Result<Option<Value>> {
        self.content.as_ref().map(JsonContent::to_value).transpose()
    }

    /// Replaces the content with a JSON value.
    ///
    /// # Errors
    /// [`crate::StoreError::InvalidContent`] if it is not an object.
    pub fn set_value(&mut self, value: &Value) -> Result<()> {
        self.content = Some(JsonContent::from_value(value)?);
        Ok(())
    }

    /// Replaces the content with JSON text (kept byte-exact).
    ///
    /// # Errors
    /// [`crate::StoreError::InvalidJson`] / [`crate::StoreError::InvalidContent`].
    pub fn set_json(&mut self, json: impl Into<String>) -> Result<()> {
        self.content = Some(JsonContent::from_json(json)?);
        Ok(())
    }
}
