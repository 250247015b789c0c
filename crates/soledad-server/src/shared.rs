//! The shared store of encrypted key backups: [`SharedStore`] and its embedded
//! SQLite implementation.
//!
//! Documents are opaque bytes under a client-chosen id (derived by the client
//! from its uuid and passphrase with a slow KDF, DESIGN §4). Every write needs
//! the current revision, so two devices cannot silently overwrite each other.

use std::path::Path;

use futures_util::future::BoxFuture;
use rusqlite::OptionalExtension as _;

use crate::error::Error;
use crate::sqlite::SqliteActor;

/// Longest shared document id.
const MAX_DOC_ID: usize = 255;
/// Longest stored content type.
const MAX_CONTENT_TYPE: usize = 128;

/// A validated shared document id: `[A-Za-z0-9._%-]{1,255}` (u1db's id rule).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SharedDocId(String);

impl SharedDocId {
    /// Parses a document id.
    ///
    /// # Errors
    /// [`Error::InvalidDocId`] for an empty, too long or badly formed id.
    pub fn parse(id: &str) -> Result<SharedDocId, Error> {
        let valid = !id.is_empty()
            && id.len() <= MAX_DOC_ID
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'%' | b'-'));
        if valid {
            Ok(SharedDocId(id.to_owned()))
        } else {
            Err(Error::InvalidDocId)
        }
    }

    /// The id's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A document's revision: `<counter>-<random hex>`, opaque to clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedRev(String);

impl SharedRev {
    /// Wraps a revision given by a client (compared, never interpreted).
    pub fn new(rev: impl Into<String>) -> SharedRev {
        SharedRev(rev.into())
    }

    /// The revision's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn next(previous: Option<&SharedRev>) -> Result<SharedRev, Error> {
        let counter = previous
            .and_then(|rev| rev.0.split_once('-'))
            .and_then(|(n, _)| n.parse::<u64>().ok())
            .unwrap_or(0)
            .saturating_add(1);
        let mut random = [0u8; 8];
        getrandom::fill(&mut random).map_err(|e| Error::Io {
            context: "reading the system random source",
            source: std::io::Error::other(e.to_string()),
        })?;
        Ok(SharedRev(format!("{counter}-{}", hex::encode(random))))
    }
}

/// A stored shared document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedDoc {
    /// Current revision.
    pub rev: SharedRev,
    /// The bytes as the client sent them.
    pub content: Vec<u8>,
    /// The content type the client sent, if any.
    pub content_type: Option<String>,
}

/// Storage of shared documents. Narrow and asynchronous (DESIGN §9).
pub trait SharedStore: Send + Sync + 'static {
    /// The document, or `None` when absent.
    fn get<'a>(&'a self, id: &'a SharedDocId) -> BoxFuture<'a, Result<Option<SharedDoc>, Error>>;
    /// Creates (`old_rev` = `None`, document absent) or replaces (`old_rev` =
    /// the current revision) a document; returns the new revision.
    /// [`Error::RevisionConflict`] otherwise.
    fn put<'a>(
        &'a self,
        id: &'a SharedDocId,
        old_rev: Option<&'a SharedRev>,
        content: Vec<u8>,
        content_type: Option<String>,
    ) -> BoxFuture<'a, Result<SharedRev, Error>>;
    /// Deletes a document at revision `rev`. [`Error::NotFound`] when absent,
    /// [`Error::RevisionConflict`] when `rev` is not current.
    fn delete<'a>(
        &'a self,
        id: &'a SharedDocId,
        rev: &'a SharedRev,
    ) -> BoxFuture<'a, Result<(), Error>>;
}

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS shared_docs (
    doc_id TEXT PRIMARY KEY NOT NULL,
    rev TEXT NOT NULL,
    content BLOB NOT NULL,
    content_type TEXT
);";

/// The embedded shared store: one SQLite file, driven by its own thread.
#[derive(Clone)]
pub struct SqliteSharedStore {
    actor: SqliteActor,
}

impl SqliteSharedStore {
    /// Opens (creating if needed) the shared database at `path`.
    ///
    /// # Errors
    /// [`Error::Database`] or [`Error::Io`] when the file cannot be opened.
    pub fn open(path: &Path) -> Result<SqliteSharedStore, Error> {
        Ok(SqliteSharedStore {
            actor: SqliteActor::open(path, "shared", SCHEMA)?,
        })
    }
}

fn current_rev(tx: &rusqlite::Transaction<'_>, id: &str) -> Result<Option<SharedRev>, Error> {
    Ok(tx
        .query_row(
            "SELECT rev FROM shared_docs WHERE doc_id = ?1",
            [id],
            |row| row.get::<_, String>(0),
        )
        .optional()?
        .map(SharedRev))
}

impl SharedStore for SqliteSharedStore {
    fn get<'a>(&'a self, id: &'a SharedDocId) -> BoxFuture<'a, Result<Option<SharedDoc>, Error>> {
        let id = id.0.clone();
        Box::pin(self.actor.call(move |conn| {
            Ok(conn
                .query_row(
                    "SELECT rev, content, content_type FROM shared_docs WHERE doc_id = ?1",
                    [&id],
                    |row| {
                        Ok(SharedDoc {
                            rev: SharedRev(row.get(0)?),
                            content: row.get(1)?,
                            content_type: row.get(2)?,
                        })
                    },
                )
                .optional()?)
        }))
    }

    fn put<'a>(
        &'a self,
        id: &'a SharedDocId,
        old_rev: Option<&'a SharedRev>,
        content: Vec<u8>,
        content_type: Option<String>,
    ) -> BoxFuture<'a, Result<SharedRev, Error>> {
        let id = id.0.clone();
        let old_rev = old_rev.cloned();
        let content_type = content_type.filter(|t| t.len() <= MAX_CONTENT_TYPE);
        Box::pin(self.actor.call(move |conn| {
            let tx = conn.transaction()?;
            let current = current_rev(&tx, &id)?;
            if current != old_rev {
                return Err(Error::RevisionConflict);
            }
            let new_rev = SharedRev::next(current.as_ref())?;
            tx.execute(
                "INSERT INTO shared_docs (doc_id, rev, content, content_type)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(doc_id) DO UPDATE SET rev = ?2, content = ?3, content_type = ?4",
                rusqlite::params![id, new_rev.0, content, content_type],
            )?;
            tx.commit()?;
            Ok(new_rev)
        }))
    }

    fn delete<'a>(
        &'a self,
        id: &'a SharedDocId,
        rev: &'a SharedRev,
    ) -> BoxFuture<'a, Result<(), Error>> {
        let id = id.0.clone();
        let rev = rev.clone();
        Box::pin(self.actor.call(move |conn| {
            let tx = conn.transaction()?;
            match current_rev(&tx, &id)? {
                None => return Err(Error::NotFound),
                Some(current) if current != rev => return Err(Error::RevisionConflict),
                Some(_) => {}
            }
            tx.execute("DELETE FROM shared_docs WHERE doc_id = ?1", [&id])?;
            tx.commit()?;
            Ok(())
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doc_ids() {
        for ok in ["a", "%2F%2Ffoo", "D-0123abcdef", "x.y_z-1"] {
            assert!(SharedDocId::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a/b", "my doc", "é", "a\0b", &"x".repeat(256)] {
            assert!(
                matches!(SharedDocId::parse(bad), Err(Error::InvalidDocId)),
                "{bad:?}"
            );
        }
    }
}
