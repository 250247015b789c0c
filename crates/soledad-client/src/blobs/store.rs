//! The local blob store: metadata in `<uuid>_blobs.db` (SQLCipher, keyed like the
//! document database with the storage secret's `local-db` key) and the content,
//! encrypted in the blob stream format, in `<uuid>_blobs/` next to it.
//!
//! ```text
//! <dir>/<uuid>_blobs.db            rows (namespace, blob_id) → file, size, status
//! <dir>/<uuid>_blobs/<file>.blob   preamble ‖ sealed segments (exactly what the server stores)
//! <dir>/<uuid>_blobs/<file>.part   a download in progress (kept for `Range` resumption)
//! <dir>/<uuid>_blobs/tmp-<file>    an encryption in progress
//! ```
//! `<file>` is random (hex), so no blob id or namespace ever becomes a path. A
//! separate file (not tables in `<uuid>.db`) as DESIGN §4 says and the seed did:
//! blob bookkeeping never contends with document writes and sync for the lock.
//!
//! Crash safety: content is written to a temporary file, fsynced, renamed and its
//! directory fsynced *before* the row naming it is committed; rows are deleted
//! before their file. So a crash leaves the old state or the new one, plus at
//! worst an orphan file, removed at the next open.
//!
//! SQLite runs only on the store's own thread; callers send it closures.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rusqlite::{Connection, OptionalExtension as _, params};
use soledad_store::StoreError;
use tokio::sync::oneshot;

use super::types::SyncStatus;
use crate::error::Error;

/// Work for the store thread; `false` stops the thread (closing the database).
type Job = Box<dyn FnOnce(&mut Connection) -> bool + Send>;

/// Schema version kept in `PRAGMA user_version`.
const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS blobs (
    namespace  TEXT NOT NULL,
    blob_id    TEXT NOT NULL,
    file       TEXT NOT NULL UNIQUE,
    size       INTEGER,
    status     INTEGER NOT NULL,
    retries    INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (namespace, blob_id)
);
CREATE INDEX IF NOT EXISTS blobs_status ON blobs (namespace, status);
";

/// One row of the metadata table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct BlobRow {
    pub(crate) namespace: String,
    pub(crate) blob_id: String,
    /// Random stem of the content file.
    pub(crate) file: String,
    /// Plaintext size, once known.
    pub(crate) size: Option<u64>,
    pub(crate) status: SyncStatus,
    /// The server's copy failed authentication: never fetched again unasked.
    pub(crate) refused: bool,
}

/// Handle on the store thread and the content directory. Cheap to clone.
#[derive(Clone)]
pub(crate) struct LocalStore {
    jobs: std::sync::mpsc::Sender<Job>,
    dir: PathBuf,
    thread: Arc<std::sync::Mutex<Option<std::thread::JoinHandle<()>>>>,
}

fn storage(err: rusqlite::Error) -> Error {
    Error::Store(StoreError::Storage(err))
}

impl LocalStore {
    /// Opens (or creates) `db_path` with `key` and the content directory `dir`,
    /// removing what a crash may have left behind.
    pub(crate) async fn open(db_path: PathBuf, dir: PathBuf, key: [u8; 32]) -> Result<Self, Error> {
        let (ready_tx, ready_rx) = oneshot::channel();
        let (jobs, rx) = std::sync::mpsc::channel::<Job>();
        let open_dir = dir.clone();
        let thread = std::thread::Builder::new()
            .name("soledad-blobs".to_owned())
            .spawn(move || {
                let mut key = key;
                let opened = open_db(&db_path, &key);
                key.fill(0);
                std::hint::black_box(&key);
                let mut conn = match opened {
                    Ok(conn) => {
                        let _ = ready_tx.send(Ok(()));
                        conn
                    }
                    Err(err) => {
                        let _ = ready_tx.send(Err(err));
                        return;
                    }
                };
                while let Ok(job) = rx.recv() {
                    if !job(&mut conn) {
                        break;
                    }
                }
                drop(conn);
            })?;
        ready_rx.await.map_err(|_| Error::Closed)??;
        std::fs::create_dir_all(&open_dir)?;
        let store = LocalStore {
            jobs,
            dir,
            thread: Arc::new(std::sync::Mutex::new(Some(thread))),
        };
        store.clean_up().await?;
        Ok(store)
    }

    /// Runs `f` on the store thread.
    pub(crate) async fn call<T, F>(&self, f: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, Error> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        self.jobs
            .send(Box::new(move |conn| {
                let _ = tx.send(f(conn));
                true
            }))
            .map_err(|_| Error::Closed)?;
        rx.await.map_err(|_| Error::Closed)?
    }

    /// The content directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Path of a verified content file.
    pub(crate) fn content_path(&self, file: &str) -> PathBuf {
        self.dir.join(format!("{file}.blob"))
    }

    /// Path of a download in progress.
    pub(crate) fn partial_path(&self, file: &str) -> PathBuf {
        self.dir.join(format!("{file}.part"))
    }

    /// Path of an encryption in progress.
    pub(crate) fn temp_path(&self, file: &str) -> PathBuf {
        self.dir.join(format!("tmp-{file}"))
    }

    pub(crate) async fn row(
        &self,
        namespace: &str,
        blob_id: &str,
    ) -> Result<Option<BlobRow>, Error> {
        let (ns, id) = (namespace.to_owned(), blob_id.to_owned());
        self.call(move |conn| {
            conn.query_row(
                "SELECT namespace, blob_id, file, size, status, retries FROM blobs
                 WHERE namespace = ?1 AND blob_id = ?2",
                params![ns, id],
                read_row,
            )
            .optional()
            .map_err(storage)
        })
        .await
    }

    /// Inserts a row; `false` if one exists for this (namespace, blob_id).
    pub(crate) async fn insert(&self, row: BlobRow) -> Result<bool, Error> {
        self.call(move |conn| {
            let size = row.size.map(i64::try_from).transpose().map_err(|_| Error::InvalidBlobId)?;
            let changed = conn
                .execute(
                    "INSERT OR IGNORE INTO blobs (namespace, blob_id, file, size, status, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, strftime('%s','now'))",
                    params![row.namespace, row.blob_id, row.file, size, row.status.code()],
                )
                .map_err(storage)?;
            Ok(changed == 1)
        })
        .await
    }

    /// Sets the status (and the size when given) of a row.
    pub(crate) async fn set_status(
        &self,
        namespace: &str,
        blob_id: &str,
        status: SyncStatus,
        size: Option<u64>,
    ) -> Result<(), Error> {
        let (ns, id) = (namespace.to_owned(), blob_id.to_owned());
        self.call(move |conn| {
            let size = size
                .map(i64::try_from)
                .transpose()
                .map_err(|_| Error::InvalidBlobId)?;
            conn.execute(
                "UPDATE blobs SET status = ?3, size = coalesce(?4, size), retries = 0
                 WHERE namespace = ?1 AND blob_id = ?2",
                params![ns, id, status.code(), size],
            )
            .map_err(storage)?;
            Ok(())
        })
        .await
    }

    /// Marks a blob `FAILED_DOWNLOAD` because the server's copy does not
    /// authenticate (final, unlike a download that ran out of retries).
    pub(crate) async fn set_refused(&self, namespace: &str, blob_id: &str) -> Result<(), Error> {
        let (ns, id) = (namespace.to_owned(), blob_id.to_owned());
        self.call(move |conn| {
            conn.execute(
                "UPDATE blobs SET status = ?3, retries = -1 WHERE namespace = ?1 AND blob_id = ?2",
                params![ns, id, SyncStatus::FailedDownload.code()],
            )
            .map_err(storage)?;
            Ok(())
        })
        .await
    }

    /// Deletes a row; returns it if it existed.
    pub(crate) async fn remove(
        &self,
        namespace: &str,
        blob_id: &str,
    ) -> Result<Option<BlobRow>, Error> {
        let (ns, id) = (namespace.to_owned(), blob_id.to_owned());
        self.call(move |conn| {
            let tx = conn.transaction().map_err(storage)?;
            let row = tx
                .query_row(
                    "SELECT namespace, blob_id, file, size, status, retries FROM blobs
                     WHERE namespace = ?1 AND blob_id = ?2",
                    params![ns, id],
                    read_row,
                )
                .optional()
                .map_err(storage)?;
            tx.execute(
                "DELETE FROM blobs WHERE namespace = ?1 AND blob_id = ?2",
                params![ns, id],
            )
            .map_err(storage)?;
            tx.commit().map_err(storage)?;
            Ok(row)
        })
        .await
    }

    /// Rows of a namespace, optionally only those in `status`, by blob id.
    pub(crate) async fn list(
        &self,
        namespace: &str,
        status: Option<SyncStatus>,
    ) -> Result<Vec<BlobRow>, Error> {
        let ns = namespace.to_owned();
        self.call(move |conn| {
            let mut stmt = conn
                .prepare(
                    "SELECT namespace, blob_id, file, size, status, retries FROM blobs
                     WHERE namespace = ?1 AND (?2 IS NULL OR status = ?2) ORDER BY blob_id",
                )
                .map_err(storage)?;
            let rows = stmt
                .query_map(params![ns, status.map(SyncStatus::code)], read_row)
                .map_err(storage)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(storage)?;
            Ok(rows)
        })
        .await
    }

    /// Checkpoints the WAL, closes the database and waits for the store thread
    /// to end (so nothing runs SQLite while the process exits). Later calls fail
    /// with [`Error::Closed`].
    pub(crate) async fn close(&self) -> Result<(), Error> {
        let (tx, rx) = oneshot::channel();
        let sent = self.jobs.send(Box::new(move |conn| {
            let _ = tx.send(
                conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
                    .map_err(storage),
            );
            false
        }));
        let checkpoint = match sent {
            Ok(()) => rx.await.map_err(|_| Error::Closed)?,
            // Closed already.
            Err(_) => Ok(()),
        };
        let handle = self
            .thread
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(handle) = handle {
            tokio::task::spawn_blocking(move || handle.join())
                .await
                .map_err(|_| Error::Closed)?
                .map_err(|_| Error::Closed)?;
        }
        checkpoint
    }

    /// Removes temporary files, content files no row names, and partial downloads
    /// of blobs no longer pending.
    async fn clean_up(&self) -> Result<(), Error> {
        let rows = self
            .call(|conn| {
                let mut stmt = conn
                    .prepare("SELECT file, status FROM blobs")
                    .map_err(storage)?;
                let rows = stmt
                    .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
                    .map_err(storage)?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(storage)?;
                Ok(rows)
            })
            .await?;
        let known: HashSet<String> = rows.iter().map(|(file, _)| file.clone()).collect();
        let downloading: HashSet<String> = rows
            .iter()
            .filter(|(_, status)| {
                matches!(
                    SyncStatus::from_code(*status),
                    Some(SyncStatus::PendingDownload | SyncStatus::FailedDownload)
                )
            })
            .map(|(file, _)| file.clone())
            .collect();
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            for entry in std::fs::read_dir(&dir)? {
                let entry = entry?;
                let name = entry.file_name();
                let Some(name) = name.to_str() else { continue };
                let keep = if let Some(stem) = name.strip_suffix(".blob") {
                    known.contains(stem)
                } else if let Some(stem) = name.strip_suffix(".part") {
                    downloading.contains(stem)
                } else {
                    false
                };
                if !keep {
                    std::fs::remove_file(entry.path())?;
                }
            }
            Ok(())
        })
        .await
        .map_err(|_| Error::Closed)??;
        Ok(())
    }
}

fn read_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<BlobRow> {
    let size: Option<i64> = r.get(3)?;
    let status: i64 = r.get(4)?;
    let retries: i64 = r.get(5)?;
    Ok(BlobRow {
        namespace: r.get(0)?,
        blob_id: r.get(1)?,
        file: r.get(2)?,
        size: size.and_then(|s| u64::try_from(s).ok()),
        // An unknown code (a newer client's state) reads as pending download: the
        // content is fetched again rather than trusted.
        status: SyncStatus::from_code(status).unwrap_or(SyncStatus::PendingDownload),
        refused: retries < 0,
    })
}

fn open_db(path: &Path, key: &[u8; 32]) -> Result<Connection, Error> {
    let conn = Connection::open(path).map_err(storage)?;
    let mut sql = String::with_capacity(84);
    sql.push_str("PRAGMA key = \"x'");
    sql.push_str(&hex::encode(key));
    sql.push_str("'\";");
    let keyed = conn.execute_batch(&sql);
    // Best effort wipe of the statement text.
    let mut bytes = sql.into_bytes();
    bytes.fill(0);
    std::hint::black_box(&bytes);
    keyed.map_err(storage)?;
    conn.execute_batch("PRAGMA cipher_log_level = NONE;")
        .map_err(storage)?;
    let check: rusqlite::Result<i64> =
        conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0));
    if let Err(err) = check {
        return Err(match err {
            rusqlite::Error::SqliteFailure(e, _) if e.code == rusqlite::ErrorCode::NotADatabase => {
                Error::Store(StoreError::WrongKeyOrNotADatabase)
            }
            other => storage(other),
        });
    }
    let _: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(storage)?;
    conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA temp_store = MEMORY;")
        .map_err(storage)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(storage)?;
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(storage)?;
    if version > SCHEMA_VERSION {
        return Err(Error::Store(StoreError::UnsupportedSchemaVersion {
            found: u32::try_from(version).unwrap_or(u32::MAX),
        }));
    }
    conn.execute_batch(SCHEMA).map_err(storage)?;
    conn.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION};"))
        .map_err(storage)?;
    Ok(conn)
}

/// A fresh random file stem (32 hex characters).
pub(crate) fn random_stem() -> Result<String, Error> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|_| Error::Crypto(soledad_crypto::Error::Random))?;
    Ok(hex::encode(bytes))
}

/// Fsyncs a directory so a rename in it is durable.
pub(crate) async fn sync_dir(dir: &Path) -> Result<(), Error> {
    let dir = dir.to_owned();
    tokio::task::spawn_blocking(move || std::fs::File::open(&dir)?.sync_all())
        .await
        .map_err(|_| Error::Closed)??;
    Ok(())
}
