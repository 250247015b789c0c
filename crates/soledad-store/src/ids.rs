//! Document ids and revisions as types made only by fallible parsers (STYLE
//! §3: a bad id is refused where it enters and never reaches the store), and
//! the generation of new document and transaction ids.

use std::fmt;

use crate::error::{Result, StoreError};
use crate::vectorclock::VectorClock;

/// Longest document id accepted (bytes).
pub const MAX_DOC_ID_BYTES: usize = 1024;

/// True if `doc_id` matches u1db's `[A-Za-z0-9.%_-]+` (and is not absurdly long).
pub fn is_valid_doc_id(doc_id: &str) -> bool {
    !doc_id.is_empty()
        && doc_id.len() <= MAX_DOC_ID_BYTES
        && doc_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'%' | b'_' | b'-'))
}

/// The traits every text newtype shares: read as `&str` everywhere, compare
/// with plain strings, parse from text (fallibly), serde as a plain string that
/// is validated on the way in.
macro_rules! text_newtype {
    ($name:ident) => {
        impl $name {
            /// The text.
            #[must_use]
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The text as an owned string.
            #[must_use]
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<$name> for str {
            fn eq(&self, other: &$name) -> bool {
                self == other.0
            }
        }

        impl PartialEq<$name> for &str {
            fn eq(&self, other: &$name) -> bool {
                *self == other.0
            }
        }

        impl std::str::FromStr for $name {
            type Err = StoreError;
            fn from_str(s: &str) -> Result<Self> {
                Self::parse(s)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = StoreError;
            fn try_from(s: &str) -> Result<Self> {
                Self::parse(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = StoreError;
            fn try_from(s: String) -> Result<Self> {
                Self::check(&s)?;
                Ok(Self(s))
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(
                &self,
                serializer: S,
            ) -> std::result::Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(
                deserializer: D,
            ) -> std::result::Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                Self::try_from(text).map_err(serde::de::Error::custom)
            }
        }
    };
}

/// A document id: u1db's `[A-Za-z0-9.%_-]+` (so `%2F%2Ffoo` is valid, `a/b`,
/// `my doc`, `""` and non-ASCII are not), at most [`MAX_DOC_ID_BYTES`] bytes.
///
/// Made only by a parser, so a [`crate::Document`] always has a valid id. Reads
/// as a `&str` (`Deref`, `AsRef`, `Display`) and compares with plain strings:
///
/// ```
/// use soledad_store::{DocId, StoreError};
///
/// let id: DocId = "note-1".parse()?;
/// assert_eq!(id, "note-1");
/// assert!(id.starts_with("note"));
/// assert!(matches!(DocId::parse("a/b"), Err(StoreError::InvalidDocId)));
/// # Ok::<(), StoreError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DocId(String);

impl DocId {
    /// Parses a document id.
    ///
    /// # Errors
    /// [`StoreError::InvalidDocId`].
    pub fn parse(doc_id: &str) -> Result<Self> {
        Self::check(doc_id)?;
        Ok(Self(doc_id.to_owned()))
    }

    fn check(doc_id: &str) -> Result<()> {
        if is_valid_doc_id(doc_id) {
            Ok(())
        } else {
            Err(StoreError::InvalidDocId)
        }
    }

    /// An id read back from the database, which only ever stores parsed ids.
    pub(crate) fn from_stored(doc_id: String) -> Result<Self> {
        Self::try_from(doc_id).map_err(|_| StoreError::Corrupt("stored document id"))
    }
}

text_newtype!(DocId);

/// A revision: a non-empty vector clock in u1db's canonical text form
/// (`replica:counter|…`, sorted by replica, counters ≥ 1), at most
/// [`crate::vectorclock::MAX_REVISION_BYTES`] bytes (what one frame field
/// holds).
///
/// Made only by a parser. Compare revisions for *supersession* with
/// [`Rev::clock`]; `==` is text equality (two canonical clocks are equal iff
/// their texts are).
///
/// ```
/// use soledad_store::{ClockOrdering, Rev, StoreError};
///
/// let old: Rev = "laptop:1".parse()?;
/// let new: Rev = "laptop:2|phone:1".parse()?;
/// assert_eq!(new.clock().compare(&old.clock()), ClockOrdering::Newer);
/// assert!(matches!(Rev::parse("b:1|a:1"), Err(StoreError::InvalidRevision)));
/// # Ok::<(), StoreError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Rev(String);

impl Rev {
    /// Parses a revision.
    ///
    /// # Errors
    /// [`StoreError::InvalidRevision`].
    pub fn parse(rev: &str) -> Result<Self> {
        Self::check(rev)?;
        Ok(Self(rev.to_owned()))
    }

    fn check(rev: &str) -> Result<()> {
        crate::vectorclock::check_revision(rev)
    }

    /// The vector clock this revision writes down.
    #[must_use]
    pub fn clock(&self) -> VectorClock {
        // A `Rev` only holds text that parsed; the default is never reached.
        VectorClock::parse(&self.0).unwrap_or_default()
    }

    /// The revision of a non-empty clock.
    ///
    /// # Errors
    /// [`StoreError::InvalidRevision`] for the empty clock.
    pub fn from_clock(clock: &VectorClock) -> Result<Self> {
        if clock.is_empty() {
            return Err(StoreError::InvalidRevision);
        }
        Ok(Self(clock.to_string()))
    }

    /// A revision read back from the database, which only ever stores parsed
    /// revisions.
    pub(crate) fn from_stored(rev: String) -> Result<Self> {
        Self::try_from(rev).map_err(|_| StoreError::Corrupt("stored revision"))
    }
}

text_newtype!(Rev);

impl rusqlite::ToSql for DocId {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        self.0.to_sql()
    }
}

impl rusqlite::ToSql for Rev {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        self.0.to_sql()
    }
}

/// OS randomness fetched in blocks, so creating many documents does not cost
/// two `getrandom` system calls each.
#[derive(Default)]
pub(crate) struct RandomPool {
    buffer: Vec<u8>,
}

impl std::fmt::Debug for RandomPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Upcoming ids are nobody's business.
        f.debug_struct("RandomPool").finish_non_exhaustive()
    }
}

impl RandomPool {
    const BLOCK: usize = 1024;

    /// 16 random bytes as 32 lowercase hex digits.
    pub(crate) fn hex16(&mut self) -> Result<String> {
        if self.buffer.len() < 16 {
            let mut block = vec![0u8; Self::BLOCK];
            getrandom::fill(&mut block).map_err(|_| StoreError::RandomUnavailable)?;
            self.buffer = block;
        }
        let at = self.buffer.len() - 16;
        let hex = hex::encode(self.buffer.get(at..).unwrap_or_default());
        // Used bytes are dropped, never handed out twice.
        self.buffer.truncate(at);
        Ok(hex)
    }

    /// A new document id: `D-` + 32 hex digits.
    pub(crate) fn new_doc_id(&mut self) -> Result<DocId> {
        Ok(DocId(format!("D-{}", self.hex16()?)))
    }

    /// A new transaction id: `T-` + 32 hex digits.
    pub(crate) fn new_transaction_id(&mut self) -> Result<String> {
        Ok(format!("T-{}", self.hex16()?))
    }
}

/// 16 random bytes as 32 lowercase hex digits (one-off uses).
pub(crate) fn random_hex() -> Result<String> {
    RandomPool::default().hex16()
}
