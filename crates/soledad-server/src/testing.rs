//! Test hooks (cargo feature `test-hooks`, never in a release build): play a
//! dishonest or broken server on the files of a data directory, for the
//! end-to-end tests of clients (`tests/e2e`, the CLI's tests).
//!
//! A client must detect a server that flips a byte of a stored envelope, swaps
//! two envelopes, forges a revision, serves an old revision again (a
//! rollback), or alters, swaps or extends a blob. Those tests need to change
//! what the server stores behind its back; [`ServerFiles`] does it on the
//! embedded backends ([`EmbeddedUserDocStores`] files, [`FsBlobStore`]
//! layout), so the schema and layout knowledge stays here, next to the code
//! that defines them, instead of raw SQL in every test crate.
//!
//! Every operation works while the server runs (the document stores are
//! SQLite files in WAL mode; the server sees the change at its next read),
//! except [`ServerFiles::copy_user_store`] and [`ServerFiles::restore_user_store`],
//! which need it stopped. Document ids here are the server's (the hidden ids
//! clients send), listed by [`ServerFiles::doc_ids`].
//!
//! ```no_run
//! # fn run() -> Result<(), soledad_server::Error> {
//! use soledad_server::testing::ServerFiles;
//!
//! let files = ServerFiles::at("/tmp/soledad-data");
//! let ids = files.doc_ids("some-user")?;
//! if let Some(first) = ids.first() {
//!     files.flip_envelope_byte("some-user", first)?; // the next download fails
//! }
//! # Ok(()) }
//! ```
//!
//! [`FsBlobStore`]: crate::blobs::FsBlobStore

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension as _, params};

use crate::blobs::{BlobId, Namespace, UserId, layout};
use crate::config::Config;
use crate::error::Error;
use crate::userdb::EmbeddedUserDocStores;

/// How long a hook waits for the server's own transactions.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// A document as stored on the server: its revision and its envelope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredDoc {
    /// The revision the server serves.
    pub rev: String,
    /// The client's envelope (`None` for a tombstone).
    pub envelope: Option<Vec<u8>>,
}

/// The stores of a server's data directory, opened behind the server's back.
#[derive(Clone, Debug)]
pub struct ServerFiles {
    docs: EmbeddedUserDocStores,
    blobs: PathBuf,
}

impl ServerFiles {
    /// The stores of a server running with `config`.
    pub fn new(config: &Config) -> ServerFiles {
        ServerFiles {
            docs: EmbeddedUserDocStores::new(config.user_dbs_dir()),
            blobs: config.blobs_dir(),
        }
    }

    /// The stores of a server whose data directory is `data_path` (other
    /// options at their defaults).
    pub fn at(data_path: impl Into<PathBuf>) -> ServerFiles {
        ServerFiles::new(&Config::new(data_path))
    }

    /// The file of `user`'s document store.
    ///
    /// # Errors
    /// [`Error::InvalidUserId`].
    pub fn user_store_path(&self, user: &str) -> Result<PathBuf, Error> {
        Ok(self.docs.path_of(&user_id(user)?))
    }

    fn open(&self, user: &str, flags: OpenFlags) -> Result<Connection, Error> {
        let path = self.user_store_path(user)?;
        if !path.is_file() {
            return Err(Error::DatabaseDoesNotExist);
        }
        let conn = Connection::open_with_flags(path, flags)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        Ok(conn)
    }

    fn read(&self, user: &str) -> Result<Connection, Error> {
        self.open(user, OpenFlags::SQLITE_OPEN_READ_ONLY)
    }

    fn write(&self, user: &str) -> Result<Connection, Error> {
        self.open(user, OpenFlags::SQLITE_OPEN_READ_WRITE)
    }

    /// The ids of `user`'s stored documents (tombstones included), in the
    /// order of their latest change.
    ///
    /// # Errors
    /// [`Error::DatabaseDoesNotExist`] when the user has no store yet,
    /// [`Error::Database`].
    pub fn doc_ids(&self, user: &str) -> Result<Vec<String>, Error> {
        let conn = self.read(user)?;
        let mut stmt = conn.prepare(
            "SELECT doc_id FROM transaction_log GROUP BY doc_id ORDER BY MAX(generation)",
        )?;
        let ids = stmt
            .query_map([], |row| row.get(0))?
            .collect::<Result<Vec<String>, _>>()?;
        Ok(ids)
    }

    /// How many documents (tombstones included) `user`'s store holds: what the
    /// server has committed. 0 when the user has no store yet.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub fn doc_count(&self, user: &str) -> Result<u64, Error> {
        let conn = match self.read(user) {
            Err(Error::DatabaseDoesNotExist) => return Ok(0),
            other => other?,
        };
        let count: i64 = conn.query_row("SELECT COUNT(*) FROM document", [], |r| r.get(0))?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    /// The generation of `user`'s store (0 when empty).
    ///
    /// # Errors
    /// [`Error::DatabaseDoesNotExist`], [`Error::Database`].
    pub fn generation(&self, user: &str) -> Result<u64, Error> {
        let conn = self.read(user)?;
        let generation: i64 = conn.query_row(
            "SELECT COALESCE(MAX(generation), 0) FROM transaction_log",
            [],
            |r| r.get(0),
        )?;
        Ok(u64::try_from(generation).unwrap_or(0))
    }

    /// Document `doc_id` as `user`'s store holds it.
    ///
    /// # Errors
    /// [`Error::DatabaseDoesNotExist`], [`Error::Database`].
    pub fn stored_doc(&self, user: &str, doc_id: &str) -> Result<Option<StoredDoc>, Error> {
        let conn = self.read(user)?;
        Ok(conn
            .query_row(
                "SELECT doc_rev, content FROM document WHERE doc_id = ?1",
                [doc_id],
                |r| {
                    Ok(StoredDoc {
                        rev: r.get(0)?,
                        envelope: r.get(1)?,
                    })
                },
            )
            .optional()?)
    }

    /// Flips one bit of the last byte of `doc_id`'s stored envelope, in place
    /// (same revision, same generation): a server corrupting data at rest.
    ///
    /// # Errors
    /// [`Error::NotFound`] when the document or its envelope does not exist,
    /// [`Error::DatabaseDoesNotExist`], [`Error::Database`].
    pub fn flip_envelope_byte(&self, user: &str, doc_id: &str) -> Result<(), Error> {
        let mut envelope = self
            .stored_doc(user, doc_id)?
            .and_then(|doc| doc.envelope)
            .ok_or(Error::NotFound)?;
        let last = envelope.last_mut().ok_or(Error::NotFound)?;
        *last ^= 0x40;
        self.write(user)?.execute(
            "UPDATE document SET content = ?1 WHERE doc_id = ?2",
            params![envelope, doc_id],
        )?;
        Ok(())
    }

    /// [`flip_envelope_byte`](Self::flip_envelope_byte) on every stored
    /// document that has an envelope; returns how many were changed.
    ///
    /// # Errors
    /// As [`flip_envelope_byte`](Self::flip_envelope_byte).
    pub fn flip_every_envelope(&self, user: &str) -> Result<usize, Error> {
        let mut changed = 0;
        for id in self.doc_ids(user)? {
            if self
                .stored_doc(user, &id)?
                .is_some_and(|doc| doc.envelope.is_some())
            {
                self.flip_envelope_byte(user, &id)?;
                changed += 1;
            }
        }
        Ok(changed)
    }

    /// Stores `from`'s envelope as `to`'s, in place (`to` keeps its revision
    /// and generation): a server answering one document with another's data.
    ///
    /// # Errors
    /// [`Error::NotFound`] when `from` has no envelope, or `to` does not exist;
    /// [`Error::DatabaseDoesNotExist`], [`Error::Database`].
    pub fn copy_envelope(&self, user: &str, from: &str, to: &str) -> Result<(), Error> {
        let envelope = self
            .stored_doc(user, from)?
            .and_then(|doc| doc.envelope)
            .ok_or(Error::NotFound)?;
        let changed = self.write(user)?.execute(
            "UPDATE document SET content = ?1 WHERE doc_id = ?2",
            params![envelope, to],
        )?;
        if changed == 0 {
            return Err(Error::NotFound);
        }
        Ok(())
    }

    /// Replaces `doc_id`'s revision in place (same envelope, same generation):
    /// a server claiming another revision for what it stores.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::DatabaseDoesNotExist`], [`Error::Database`].
    pub fn set_rev_in_place(&self, user: &str, doc_id: &str, rev: &str) -> Result<(), Error> {
        let changed = self.write(user)?.execute(
            "UPDATE document SET doc_rev = ?1 WHERE doc_id = ?2",
            params![rev, doc_id],
        )?;
        if changed == 0 {
            return Err(Error::NotFound);
        }
        Ok(())
    }

    /// Serves `doc_id` as `stored` from a new generation, as if it had just
    /// changed: with an older [`StoredDoc`] of the same document this is a
    /// rollback; with a made-up revision, a forgery that every device will
    /// download. Returns the new generation.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::DatabaseDoesNotExist`], [`Error::Database`].
    pub fn republish(&self, user: &str, doc_id: &str, stored: &StoredDoc) -> Result<u64, Error> {
        let mut conn = self.write(user)?;
        let tx = conn.transaction()?;
        let next: i64 = tx.query_row(
            "SELECT COALESCE(MAX(generation), 0) + 1 FROM transaction_log",
            [],
            |r| r.get(0),
        )?;
        let changed = tx.execute(
            "UPDATE document SET doc_rev = ?1, content = ?2, generation = ?3 WHERE doc_id = ?4",
            params![stored.rev, stored.envelope, next, doc_id],
        )?;
        if changed == 0 {
            return Err(Error::NotFound);
        }
        tx.execute(
            "INSERT INTO transaction_log (generation, doc_id, transaction_id) \
             VALUES (?1, ?2, ?3)",
            params![next, doc_id, format!("T-republished-{next}")],
        )?;
        tx.commit()?;
        Ok(u64::try_from(next).unwrap_or(0))
    }

    /// Copies `user`'s store files to `to` (a backup an operator could restore
    /// later). The server must be stopped.
    ///
    /// # Errors
    /// [`Error::Io`], [`Error::InvalidUserId`].
    pub fn copy_user_store(&self, user: &str, to: &Path) -> Result<(), Error> {
        copy_sqlite_files(&self.user_store_path(user)?, to)
    }

    /// Replaces `user`'s store files by the copy at `from` (see
    /// [`copy_user_store`](Self::copy_user_store)). The server must be stopped.
    ///
    /// # Errors
    /// [`Error::Io`], [`Error::InvalidUserId`].
    pub fn restore_user_store(&self, user: &str, from: &Path) -> Result<(), Error> {
        copy_sqlite_files(from, &self.user_store_path(user)?)
    }

    /// The directory holding every blob of every user.
    pub fn blobs_dir(&self) -> &Path {
        &self.blobs
    }

    /// The content file of blob `id` of `user` in `namespace` (which may not
    /// exist).
    ///
    /// # Errors
    /// [`Error::Blob`] when an id is invalid.
    pub fn blob_file(&self, user: &str, namespace: &str, id: &str) -> Result<PathBuf, Error> {
        let user = UserId::parse(user)?;
        let namespace = Namespace::parse(namespace)?;
        let id = BlobId::parse(id)?;
        Ok(layout::blob_paths(&self.blobs, &user, &namespace, &id).content)
    }

    /// Flips one bit of the middle byte of a stored blob, in place.
    ///
    /// # Errors
    /// [`Error::Io`] when the blob does not exist, [`Error::Blob`].
    pub fn flip_blob_byte(&self, user: &str, namespace: &str, id: &str) -> Result<(), Error> {
        let path = self.blob_file(user, namespace, id)?;
        let mut bytes = std::fs::read(&path).map_err(Error::io("reading a blob"))?;
        let middle = bytes.len() / 2;
        let byte = bytes.get_mut(middle).ok_or(Error::NotFound)?;
        *byte ^= 0x01;
        std::fs::write(&path, &bytes).map_err(Error::io("writing a blob"))
    }

    /// Swaps the contents of two stored blobs.
    ///
    /// # Errors
    /// [`Error::Io`] when a blob does not exist, [`Error::Blob`].
    pub fn swap_blobs(&self, user: &str, namespace: &str, a: &str, b: &str) -> Result<(), Error> {
        let (a, b) = (
            self.blob_file(user, namespace, a)?,
            self.blob_file(user, namespace, b)?,
        );
        let read = |path: &Path| std::fs::read(path).map_err(Error::io("reading a blob"));
        let (bytes_a, bytes_b) = (read(&a)?, read(&b)?);
        std::fs::write(&a, bytes_b).map_err(Error::io("writing a blob"))?;
        std::fs::write(&b, bytes_a).map_err(Error::io("writing a blob"))
    }

    /// Appends `extra` to a stored blob (a server serving more than was
    /// uploaded).
    ///
    /// # Errors
    /// [`Error::Io`] when the blob does not exist, [`Error::Blob`].
    pub fn append_to_blob(
        &self,
        user: &str,
        namespace: &str,
        id: &str,
        extra: &[u8],
    ) -> Result<(), Error> {
        use std::io::Write as _;
        let path = self.blob_file(user, namespace, id)?;
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(Error::io("opening a blob"))?;
        file.write_all(extra).map_err(Error::io("writing a blob"))
    }
}

fn user_id(user: &str) -> Result<UserId, Error> {
    UserId::parse(user).map_err(|_| Error::InvalidUserId)
}

/// Copies an SQLite database with its WAL (and drops a stale shared-memory
/// index at the destination).
fn copy_sqlite_files(from: &Path, to: &Path) -> Result<(), Error> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent).map_err(Error::io("creating a directory"))?;
    }
    for suffix in ["", "-wal"] {
        let src = PathBuf::from(format!("{}{suffix}", from.display()));
        let dst = PathBuf::from(format!("{}{suffix}", to.display()));
        if src.exists() {
            std::fs::copy(&src, &dst).map_err(Error::io("copying a store file"))?;
        } else if dst.exists() {
            std::fs::remove_file(&dst).map_err(Error::io("removing a store file"))?;
        }
    }
    let shm = PathBuf::from(format!("{}-shm", to.display()));
    if shm.exists() {
        std::fs::remove_file(&shm).map_err(Error::io("removing a store file"))?;
    }
    Ok(())
}
