//! The shared store of encrypted key backups: [`SharedStore`] and its embedded
//! SQLite implementation.
//!
//! Documents are opaque bytes under a client-chosen id (derived by the client
//! from its uuid and passphrase with a slow KDF, DESIGN §4). Every write needs
//! the current revision, so two devices cannot silently overwrite each other.
//!
//! Each document belongs to the user who stored it: ids are scoped per owner
//! (the key is `(owner, doc_id)`), so another user neither reads, replaces nor
//! deletes it, and cannot even learn that it exists. Documents count against
//! their owner's quota ([`SqliteSharedStore::usage_source`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::future::BoxFuture;
use rusqlite::OptionalExtension as _;

use crate::blobs::{ENTRY_OVERHEAD_BYTES, UsageSource, UserId};
use crate::error::Error;
use crate::sqlite::{SqliteActor, open_connection};

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

    pub(crate) fn next(previous: Option<&SharedRev>) -> Result<SharedRev, Error> {
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

/// What a successful write replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedWrite {
    /// The document's new revision.
    pub rev: SharedRev,
    /// Content bytes of the version it replaced (0 when created).
    pub replaced_bytes: u64,
}

/// Storage of shared documents. Narrow and asynchronous (DESIGN §9).
///
/// Every document belongs to the user who created it: each call names the
/// owner, and a document of another owner is absent for the caller (the same
/// id may exist independently under several owners, so a write reveals
/// nothing about another user's documents either).
///
/// Every write and delete is conditional on the current revision, and every
/// write gives a revision not given before for that document. The
/// conformance suite `conformance::shared` (feature `conformance`) checks
/// this contract on every implementation.
pub trait SharedStore: Send + Sync + 'static {
    /// `owner`'s document `id`, or `None` when `owner` has none.
    fn get<'a>(
        &'a self,
        owner: &'a UserId,
        id: &'a SharedDocId,
    ) -> BoxFuture<'a, Result<Option<SharedDoc>, Error>>;
    /// Creates (`old_rev` = `None`, document absent) or replaces (`old_rev` =
    /// the current revision) `owner`'s document; returns the new revision and
    /// the size of what it replaced. [`Error::RevisionConflict`] otherwise.
    fn put<'a>(
        &'a self,
        owner: &'a UserId,
        id: &'a SharedDocId,
        old_rev: Option<&'a SharedRev>,
        content: Vec<u8>,
        content_type: Option<String>,
    ) -> BoxFuture<'a, Result<SharedWrite, Error>>;
    /// Deletes `owner`'s document at revision `rev`; returns its content size.
    /// [`Error::NotFound`] when absent, [`Error::RevisionConflict`] when `rev`
    /// is not current.
    fn delete<'a>(
        &'a self,
        owner: &'a UserId,
        id: &'a SharedDocId,
        rev: &'a SharedRev,
    ) -> BoxFuture<'a, Result<u64, Error>>;
}

/// Owner recorded for documents stored before documents had owners (schema
/// version 0). No user id is empty, so nobody is served them; they are kept
/// for an operator to reassign (`UPDATE shared_docs SET owner = …`).
pub const LEGACY_OWNER: &str = "";

/// Schema version 1: documents keyed by `(owner, doc_id)`.
const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS shared_docs (
    owner TEXT NOT NULL,
    doc_id TEXT NOT NULL,
    rev TEXT NOT NULL,
    content BLOB NOT NULL,
    content_type TEXT,
    PRIMARY KEY (owner, doc_id)
);";

/// Moves a version-0 table (no owner column) into the version-1 shape, every
/// row owned by [`LEGACY_OWNER`]. Idempotent; one transaction.
fn migrate(conn: &mut rusqlite::Connection) -> Result<(), Error> {
    let tx = conn.transaction()?;
    let has_owner: bool = tx
        .query_row(
            "SELECT COUNT(*) FROM pragma_table_info('shared_docs') WHERE name = 'owner'",
            [],
            |row| row.get::<_, i64>(0),
        )
        .map(|n| n > 0)?;
    let exists: bool = tx
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'shared_docs'",
            [],
            |row| row.get::<_, i64>(0),
        )
        .map(|n| n > 0)?;
    if exists && !has_owner {
        tx.execute_batch("ALTER TABLE shared_docs RENAME TO shared_docs_v0;")?;
        tx.execute_batch(SCHEMA)?;
        let moved = tx.execute(
            "INSERT INTO shared_docs (owner, doc_id, rev, content, content_type)
             SELECT ?1, doc_id, rev, content, content_type FROM shared_docs_v0",
            [LEGACY_OWNER],
        )?;
        tx.execute_batch("DROP TABLE shared_docs_v0;")?;
        tracing::warn!(
            documents = moved,
            "shared store: documents stored before ownership are kept without an owner and served to nobody"
        );
    } else {
        tx.execute_batch(SCHEMA)?;
    }
    tx.commit()?;
    Ok(())
}

/// The embedded shared store: one SQLite file, driven by its own thread.
#[derive(Clone)]
pub struct SqliteSharedStore {
    actor: SqliteActor,
    path: PathBuf,
}

impl SqliteSharedStore {
    /// Opens (creating if needed) the shared database at `path`, migrating a
    /// database from before ownership (see [`LEGACY_OWNER`]).
    ///
    /// # Errors
    /// [`Error::Database`] or [`Error::Io`] when the file cannot be opened or
    /// migrated.
    pub fn open(path: &Path) -> Result<SqliteSharedStore, Error> {
        let mut conn = open_connection(path)?;
        migrate(&mut conn)?;
        drop(conn);
        Ok(SqliteSharedStore {
            actor: SqliteActor::open(path, "shared", SCHEMA)?,
            path: path.to_path_buf(),
        })
    }

    /// The bytes each owner stores here, for the quota ledger: register it
    /// with [`QuotaLedger::register_source`](crate::blobs::QuotaLedger::register_source).
    pub fn usage_source(&self) -> Arc<dyn UsageSource> {
        Arc::new(SharedUsage {
            path: self.path.clone(),
        })
    }
}

/// Measures an owner's shared documents (own read connection, blocking pool).
struct SharedUsage {
    path: PathBuf,
}

impl UsageSource for SharedUsage {
    fn measure(&self, user: &UserId) -> std::io::Result<u64> {
        let measure = || -> Result<u64, rusqlite::Error> {
            let conn = rusqlite::Connection::open_with_flags(
                &self.path,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
            )?;
            conn.busy_timeout(std::time::Duration::from_secs(5))?;
            let total: i64 = conn.query_row(
                "SELECT COALESCE(SUM(LENGTH(content)), 0) + COUNT(*) * ?2 FROM shared_docs WHERE owner = ?1",
                rusqlite::params![user.as_str(), i64::try_from(ENTRY_OVERHEAD_BYTES).unwrap_or(i64::MAX)],
                |row| row.get(0),
            )?;
            Ok(u64::try_from(total).unwrap_or(0))
        };
        measure().map_err(std::io::Error::other)
    }
}

fn current(
    tx: &rusqlite::Transaction<'_>,
    owner: &str,
    id: &str,
) -> Result<Option<(SharedRev, u64)>, Error> {
    Ok(tx
        .query_row(
            "SELECT rev, LENGTH(content) FROM shared_docs WHERE owner = ?1 AND doc_id = ?2",
            [owner, id],
            |row| Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?)),
        )
        .optional()?
        .map(|(rev, len)| (SharedRev(rev), u64::try_from(len).unwrap_or(0))))
}

impl SharedStore for SqliteSharedStore {
    fn get<'a>(
        &'a self,
        owner: &'a UserId,
        id: &'a SharedDocId,
    ) -> BoxFuture<'a, Result<Option<SharedDoc>, Error>> {
        let owner = owner.as_str().to_owned();
        let id = id.0.clone();
        Box::pin(self.actor.call(move |conn| {
            Ok(conn
                .query_row(
                    "SELECT rev, content, content_type FROM shared_docs
                     WHERE owner = ?1 AND doc_id = ?2",
                    [&owner, &id],
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
        owner: &'a UserId,
        id: &'a SharedDocId,
        old_rev: Option<&'a SharedRev>,
        content: Vec<u8>,
        content_type: Option<String>,
    ) -> BoxFuture<'a, Result<SharedWrite, Error>> {
        let owner = owner.as_str().to_owned();
        let id = id.0.clone();
        let old_rev = old_rev.cloned();
        let content_type = content_type.filter(|t| t.len() <= MAX_CONTENT_TYPE);
        Box::pin(self.actor.call(move |conn| {
            let tx = conn.transaction()?;
            let current = current(&tx, &owner, &id)?;
            if current.as_ref().map(|(rev, _)| rev) != old_rev.as_ref() {
                return Err(Error::RevisionConflict);
            }
            let new_rev = SharedRev::next(current.as_ref().map(|(rev, _)| rev))?;
            tx.execute(
                "INSERT INTO shared_docs (owner, doc_id, rev, content, content_type)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(owner, doc_id)
                 DO UPDATE SET rev = ?3, content = ?4, content_type = ?5",
                rusqlite::params![owner, id, new_rev.0, content, content_type],
            )?;
            tx.commit()?;
            Ok(SharedWrite {
                rev: new_rev,
                replaced_bytes: current.map_or(0, |(_, len)| len),
            })
        }))
    }

    fn delete<'a>(
        &'a self,
        owner: &'a UserId,
        id: &'a SharedDocId,
        rev: &'a SharedRev,
    ) -> BoxFuture<'a, Result<u64, Error>> {
        let owner = owner.as_str().to_owned();
        let id = id.0.clone();
        let rev = rev.clone();
        Box::pin(self.actor.call(move |conn| {
            let tx = conn.transaction()?;
            let freed = match current(&tx, &owner, &id)? {
                None => return Err(Error::NotFound),
                Some((current, _)) if current != rev => return Err(Error::RevisionConflict),
                Some((_, len)) => len,
            };
            tx.execute(
                "DELETE FROM shared_docs WHERE owner = ?1 AND doc_id = ?2",
                [&owner, &id],
            )?;
            tx.commit()?;
            Ok(freed)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str) -> UserId {
        UserId::parse(name).unwrap()
    }

    #[tokio::test]
    async fn documents_are_scoped_to_their_owner() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteSharedStore::open(&dir.path().join("shared.sqlite")).unwrap();
        let (alice, bob) = (user("alice"), user("bob"));
        let id = SharedDocId::parse("backup").unwrap();
        let written = store
            .put(&alice, &id, None, b"secret".to_vec(), None)
            .await
            .unwrap();
        assert_eq!(written.replaced_bytes, 0);
        assert!(store.get(&bob, &id).await.unwrap().is_none());
        assert!(matches!(
            store.delete(&bob, &id, &written.rev).await,
            Err(Error::NotFound)
        ));
        // Bob's document of the same id is his own; Alice's is untouched.
        store
            .put(&bob, &id, None, b"b".to_vec(), None)
            .await
            .unwrap();
        let doc = store.get(&alice, &id).await.unwrap().unwrap();
        assert_eq!(doc.content, b"secret");
        let again = store
            .put(&alice, &id, Some(&written.rev), b"xy".to_vec(), None)
            .await
            .unwrap();
        assert_eq!(again.replaced_bytes, 6);
        assert_eq!(store.delete(&alice, &id, &again.rev).await.unwrap(), 2);
        assert_eq!(
            store.usage_source().measure(&bob).unwrap(),
            1 + ENTRY_OVERHEAD_BYTES
        );
        assert_eq!(store.usage_source().measure(&alice).unwrap(), 0);
    }

    #[test]
    fn version_0_rows_are_kept_without_an_owner() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shared.sqlite");
        {
            let conn = rusqlite::Connection::open(&path).unwrap();
            conn.execute_batch(
                "CREATE TABLE shared_docs (doc_id TEXT PRIMARY KEY NOT NULL, rev TEXT NOT NULL,
                 content BLOB NOT NULL, content_type TEXT);
                 INSERT INTO shared_docs VALUES ('old', '1-aa', x'0102', NULL);",
            )
            .unwrap();
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let store = SqliteSharedStore::open(&path).unwrap();
        let id = SharedDocId::parse("old").unwrap();
        let got = runtime.block_on(store.get(&user("alice"), &id)).unwrap();
        assert!(got.is_none());
        drop(store);
        // Opening again is a no-op.
        SqliteSharedStore::open(&path).unwrap();
        let conn = rusqlite::Connection::open(&path).unwrap();
        let owner: String = conn
            .query_row(
                "SELECT owner FROM shared_docs WHERE doc_id = 'old'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(owner, LEGACY_OWNER);
    }

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
