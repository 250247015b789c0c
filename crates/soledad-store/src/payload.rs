//! What a document carries: JSON text for the client ([`JsonContent`], indexed,
//! compared by value) or opaque bytes for the server (`Vec<u8>`, never looked
//! into). The revision/log/conflict core is generic over [`Payload`].

use std::fmt;

use rusqlite::types::{ToSqlOutput, ValueRef};
use serde_json::Value;

use crate::error::{Result, StoreError};

/// A document payload kind. Sealed: implemented by [`JsonContent`] and `Vec<u8>`.
pub trait Payload: sealed::Sealed + Clone + fmt::Debug + Send + Sync + 'static {}

pub(crate) mod sealed {
    use super::{JsonContent, Result, ToSqlOutput, ValueRef};

    /// The behaviour the core needs from a payload.
    pub trait Sealed: Sized {
        /// Recorded in the `meta` table so a file is never opened as the other kind.
        const KIND: &'static str;
        /// Whether documents of this kind are indexed.
        const INDEXED: bool;
        /// Whether databases of this kind keep the stored-size count (`size.rs`).
        const COUNTS_SIZE: bool;
        /// The value stored in the `content` column.
        fn to_sql(&self) -> ToSqlOutput<'_>;
        /// Reads the `content` column back.
        fn from_sql(value: ValueRef<'_>) -> Result<Self>;
        /// Size in bytes, for the document size limit.
        fn size(&self) -> usize;
        /// u1db's `same_content_as` (both `None` = two tombstones).
        fn same_content(a: Option<&Self>, b: Option<&Self>) -> Result<bool>;
        /// The JSON content, for the index layer.
        fn as_json(&self) -> Option<&JsonContent>;
    }
}

/// A JSON object, kept as the exact text it was given (key order, spacing).
#[derive(Clone, PartialEq, Eq)]
pub struct JsonContent(String);

impl JsonContent {
    /// Checks that `text` is a JSON object and keeps it byte-exact.
    ///
    /// # Errors
    /// [`StoreError::InvalidJson`] if it does not parse,
    /// [`StoreError::InvalidContent`] if it is not an object.
    pub fn from_json(text: impl Into<String>) -> Result<Self> {
        let text = text.into();
        // Validate without building a tree: a well-formed value whose first
        // character is `{` is an object.
        serde_json::from_str::<serde::de::IgnoredAny>(&text)
            .map_err(|_| StoreError::InvalidJson)?;
        if !text.trim_start().starts_with('{') {
            return Err(StoreError::InvalidContent);
        }
        Ok(Self(text))
    }

    /// Serialises a JSON value (compact form).
    ///
    /// # Errors
    /// [`StoreError::InvalidContent`] if it is not an object.
    pub fn from_value(value: &Value) -> Result<Self> {
        if !value.is_object() {
            return Err(StoreError::InvalidContent);
        }
        serde_json::to_string(value)
            .map(Self)
            .map_err(|_| StoreError::InvalidJson)
    }

    /// The JSON text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The JSON text, owned.
    pub fn into_string(self) -> String {
        self.0
    }

    /// Parses the text.
    ///
    /// # Errors
    /// [`StoreError::InvalidJson`] if stored text was damaged.
    pub fn to_value(&self) -> Result<Value> {
        serde_json::from_str(&self.0).map_err(|_| StoreError::InvalidJson)
    }
}

impl fmt::Debug for JsonContent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Content is user data: do not print it.
        write!(f, "JsonContent({} bytes)", self.0.len())
    }
}

impl Payload for JsonContent {}

impl sealed::Sealed for JsonContent {
    const KIND: &'static str = "json";
    const INDEXED: bool = true;
    const COUNTS_SIZE: bool = false;

    fn to_sql(&self) -> ToSqlOutput<'_> {
        ToSqlOutput::Borrowed(ValueRef::Text(self.0.as_bytes()))
    }

    fn from_sql(value: ValueRef<'_>) -> Result<Self> {
        match value {
            ValueRef::Text(bytes) => std::str::from_utf8(bytes)
                .map(|s| Self(s.to_owned()))
                .map_err(|_| StoreError::Corrupt("document content is not UTF-8")),
            _ => Err(StoreError::Corrupt("document content is not text")),
        }
    }

    fn size(&self) -> usize {
        self.0.len()
    }

    fn same_content(a: Option<&Self>, b: Option<&Self>) -> Result<bool> {
        match (a, b) {
            (None, None) => Ok(true),
            (Some(a), Some(b)) => {
                if a.0 == b.0 {
                    return Ok(true);
                }
                Ok(a.to_value()? == b.to_value()?)
            }
            _ => Ok(false),
        }
    }

    fn as_json(&self) -> Option<&JsonContent> {
        Some(self)
    }
}

impl Payload for Vec<u8> {}

impl sealed::Sealed for Vec<u8> {
    const KIND: &'static str = "opaque";
    const INDEXED: bool = false;
    const COUNTS_SIZE: bool = true;

    fn to_sql(&self) -> ToSqlOutput<'_> {
        ToSqlOutput::Borrowed(ValueRef::Blob(self))
    }

    fn from_sql(value: ValueRef<'_>) -> Result<Self> {
        match value {
            ValueRef::Blob(bytes) => Ok(bytes.to_vec()),
            _ => Err(StoreError::Corrupt("document payload is not a blob")),
        }
    }

    fn size(&self) -> usize {
        self.len()
    }

    fn same_content(_a: Option<&Self>, _b: Option<&Self>) -> Result<bool> {
        // Opaque payloads are never compared (ciphertexts of equal plaintexts differ,
        // and a merged rev would break the envelope's binding of the rev).
        Ok(false)
    }

    fn as_json(&self) -> Option<&JsonContent> {
        None
    }
}
