//! Blobs: the seed's `BlobManager` over a local encrypted blob store and the
//! server's blobs API.
//!
//! A blob is immutable binary data under an id in a namespace. [`BlobManager::put`]
//! encrypts it (blob stream format of `docs/crypto.md`, key from the storage
//! secret bound to the blob id) into the local store and uploads the very same
//! bytes; [`BlobManager::get`] returns a reader over the local copy, downloading
//! it first if needed. Downloads go to a partial file, resumed with `Range` after
//! a cut, and become visible only once the whole stream authenticates; a blob
//! that does not authenticate is `FAILED_DOWNLOAD` for good, other blobs are not
//! affected. Transfers run at most `concurrent_transfers` at a time and retry
//! with the seed's back-off.

mod progress;
mod reader;
mod store;
mod transport;
mod types;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use futures_util::StreamExt as _;
use soledad_crypto::{AsyncEncryptReader, BlobKey, MAX_PREAMBLE_LEN, StorageSecret};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::Semaphore;

pub use reader::BlobReader;
pub use types::{
    BlobConfig, BlobSyncReport, DEFAULT_NAMESPACE, Flag, MAX_BLOB_ID_LEN, MAX_NAMESPACE_LEN, Order,
    RemoteListQuery, SyncProgress, SyncStatus, TransferProgress,
};

use progress::Progress;
use store::{BlobRow, LocalStore, random_stem, sync_dir};
use transport::{BlobTransport, Failure};
use types::{check_blob_id, namespace};

use crate::error::Error;
use crate::transport::Transport;

/// Held while a blob is transferred.
type BlobLock = Arc<tokio::sync::Mutex<()>>;

/// Buffer of the encryption copy loop.
const COPY_BYTES: usize = 256 * 1024;

/// The seed's `BlobManager`: blob creation, retrieval, deletion, flags and sync.
/// Cheap to clone; every clone is the same manager. Get it from
/// [`Soledad::blobmanager`](crate::Soledad::blobmanager).
///
/// Every method takes a namespace; `""` is the seed's `default`.
#[derive(Clone)]
pub struct BlobManager {
    inner: Arc<Manager>,
}

struct Manager {
    store: LocalStore,
    remote: Option<BlobTransport>,
    key: BlobKey,
    config: BlobConfig,
    permits: Semaphore,
    progress: Progress,
    /// One transfer per blob at a time (a `get` racing a `fetch_missing` must not
    /// append to the same partial file).
    busy: std::sync::Mutex<HashMap<(String, String), BlobLock>>,
}

impl std::fmt::Debug for BlobManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobManager")
            .field("dir", &self.inner.store.dir())
            .finish_non_exhaustive()
    }
}

impl BlobManager {
    /// Opens the store `<dir>/<uuid>_blobs.db` + `<dir>/<uuid>_blobs/`.
    pub(crate) async fn open(
        dir: PathBuf,
        uuid: &str,
        secret: &StorageSecret,
        transport: Option<&Transport>,
        config: BlobConfig,
    ) -> Result<Self, Error> {
        let db_path = dir.join(format!("{uuid}_blobs.db"));
        let content_dir = dir.join(format!("{uuid}_blobs"));
        let db_key = *secret.local_db_key().expose_bytes();
        let store = LocalStore::open(db_path, content_dir, db_key).await?;
        let permits = Semaphore::new(config.concurrent_transfers.max(1));
        Ok(BlobManager {
            inner: Arc::new(Manager {
                store,
                remote: transport.map(BlobTransport::new),
                key: secret.blob_key(),
                config,
                permits,
                progress: Progress::default(),
                busy: std::sync::Mutex::default(),
            }),
        })
    }

    /// Waits until no other transfer of this blob runs, and holds it.
    async fn lock_blob(&self, ns: &str, blob_id: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut busy = self
                .inner
                .busy
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            // Forget the locks nobody holds or waits for.
            busy.retain(|_, lock| Arc::strong_count(lock) > 1);
            busy.entry((ns.to_owned(), blob_id.to_owned()))
                .or_default()
                .clone()
        };
        lock.lock_owned().await
    }

    fn remote(&self) -> Result<&BlobTransport, Error> {
        self.inner.remote.as_ref().ok_or(Error::NoServer)
    }

    /// Stores `size` bytes read from `reader` as blob `blob_id` and, unless
    /// `local_only`, uploads it (with retries). The content is encrypted on the
    /// way to disk; it is never held in memory whole.
    ///
    /// The local copy is kept even when the upload fails: the blob is then
    /// `FAILED_UPLOAD` and [`send_missing`](Self::send_missing) tries again.
    ///
    /// # Errors
    /// [`Error::BlobAlreadyExists`] (locally or on the server with another content),
    /// [`Error::InvalidBlobId`], [`Error::Crypto`] (`SizeMismatch` if the reader does
    /// not yield exactly `size` bytes: nothing is stored), [`Error::Io`]; upload
    /// errors: [`Error::MaximumRetries`], [`Error::RetriableTransfer`],
    /// [`Error::Server`] with kind `QuotaExceeded`, [`Error::Auth`].
    pub async fn put<R>(
        &self,
        blob_id: &str,
        reader: R,
        size: u64,
        namespace: &str,
        local_only: bool,
    ) -> Result<(), Error>
    where
        R: AsyncRead + Unpin + Send,
    {
        let status = if local_only {
            SyncStatus::LocalOnly
        } else {
            SyncStatus::PendingUpload
        };
        self.put_local(blob_id, reader, size, namespace, status)
            .await?;
        if local_only || self.inner.remote.is_none() {
            return Ok(());
        }
        self.upload(blob_id, namespace).await
    }

    /// Encrypts into the store; returns the encoded preamble.
    pub(crate) async fn put_local<R>(
        &self,
        blob_id: &str,
        reader: R,
        size: u64,
        namespace: &str,
        status: SyncStatus,
    ) -> Result<Vec<u8>, Error>
    where
        R: AsyncRead + Unpin + Send,
    {
        check_blob_id(blob_id)?;
        let ns = namespace_of(namespace)?;
        let store = &self.inner.store;
        if store.row(&ns, blob_id).await?.is_some() {
            return Err(Error::BlobAlreadyExists);
        }
        let stem = random_stem()?;
        let temp = store.temp_path(&stem);
        let written = self.encrypt_to(&temp, blob_id, size, reader).await;
        let preamble = match written {
            Ok(preamble) => preamble,
            Err(err) => {
                let _ = tokio::fs::remove_file(&temp).await;
                return Err(err);
            }
        };
        let content = store.content_path(&stem);
        tokio::fs::rename(&temp, &content).await?;
        sync_dir(store.dir()).await?;
        let row = BlobRow {
            namespace: ns,
            blob_id: blob_id.to_owned(),
            file: stem,
            size: Some(size),
            status,
            refused: false,
        };
        if !store.insert(row).await? {
            let _ = tokio::fs::remove_file(&content).await;
            return Err(Error::BlobAlreadyExists);
        }
        Ok(preamble)
    }

    async fn encrypt_to<R>(
        &self,
        path: &std::path::Path,
        blob_id: &str,
        size: u64,
        reader: R,
    ) -> Result<Vec<u8>, Error>
    where
        R: AsyncRead + Unpin + Send,
    {
        let mut enc = AsyncEncryptReader::new(&self.inner.key, blob_id, size, reader)?;
        let preamble = enc.preamble().to_bytes();
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .await?;
        let mut buf = vec![0u8; COPY_BYTES];
        loop {
            let n = enc.read(&mut buf).await.map_err(crypto_io)?;
            if n == 0 {
                break;
            }
            file.write_all(buf.get(..n).unwrap_or_default()).await?;
        }
        file.flush().await?;
        file.sync_all().await?;
        Ok(preamble)
    }

    /// A reader over the blob's plaintext, from the local store or else downloaded
    /// first (the seed's `get`). `None` if the blob exists neither here nor on the
    /// server. The local copy is authenticated whole before the reader is returned.
    ///
    /// # Errors
    /// [`Error::Integrity`] when the blob does not authenticate (then
    /// `FAILED_DOWNLOAD`); transfer errors as [`put`](Self::put); [`Error::NoServer`]
    /// for a blob that is only remote on a client without a server.
    pub async fn get(&self, blob_id: &str, namespace: &str) -> Result<Option<BlobReader>, Error> {
        check_blob_id(blob_id)?;
        let ns = namespace_of(namespace)?;
        match self.ensure_local(&ns, blob_id, None).await {
            Ok(row) => self.open_reader(&row, None).await.map(Some),
            Err(Error::BlobNotFound) => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// The local row of a blob with its content present, downloading it if needed;
    /// `expected_preamble` pins the exact blob (attachments).
    pub(crate) async fn ensure_local(
        &self,
        ns: &str,
        blob_id: &str,
        expected_preamble: Option<&[u8]>,
    ) -> Result<BlobRow, Error> {
        if let Some(row) = self.inner.store.row(ns, blob_id).await?
            && row.status.is_local()
        {
            return Ok(row);
        }
        if self.inner.remote.is_none() {
            return match self.inner.store.row(ns, blob_id).await? {
                Some(_) => Err(Error::NoServer),
                None => Err(Error::BlobNotFound),
            };
        }
        self.download(ns, blob_id, expected_preamble).await
    }

    pub(crate) async fn open_reader(
        &self,
        row: &BlobRow,
        expected_preamble: Option<&[u8]>,
    ) -> Result<BlobReader, Error> {
        let path = self.inner.store.content_path(&row.file);
        let key = self.inner.key.clone();
        let id = row.blob_id.clone();
        let expected = expected_preamble.map(<[u8]>::to_vec);
        let (file, size) = tokio::task::spawn_blocking(move || {
            let mut file = std::fs::File::open(&path)?;
            let size = verify(&key, &id, &mut file, expected.as_deref())?;
            std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(0))?;
            Ok::<_, Error>((file, size))
        })
        .await
        .map_err(|_| Error::Closed)??;
        Ok(BlobReader::new(
            &self.inner.key,
            &row.blob_id,
            tokio::fs::File::from_std(file),
            size,
        ))
    }

    /// Downloads a blob into the store (resuming a partial download), verifies it
    /// whole, then makes it visible.
    pub(crate) async fn download(
        &self,
        ns: &str,
        blob_id: &str,
        expected_preamble: Option<&[u8]>,
    ) -> Result<BlobRow, Error> {
        let remote = self.remote()?;
        let store = &self.inner.store;
        let _one_transfer = self.lock_blob(ns, blob_id).await;
        let row = match store.row(ns, blob_id).await? {
            Some(row) => row,
            None => {
                let row = BlobRow {
                    namespace: ns.to_owned(),
                    blob_id: blob_id.to_owned(),
                    file: random_stem()?,
                    size: None,
                    status: SyncStatus::PendingDownload,
                    refused: false,
                };
                store.insert(row.clone()).await?;
                // A concurrent call may have inserted first: use what is stored.
                store.row(ns, blob_id).await?.unwrap_or(row)
            }
        };
        if row.status.is_local() {
            return Ok(row);
        }
        let part = store.partial_path(&row.file);
        // The stored length of the expected blob, when it is known.
        let max_len = expected_preamble
            .and_then(|bytes| soledad_crypto::Preamble::parse(bytes).ok())
            .map(|(preamble, len)| {
                u64::try_from(len)
                    .unwrap_or(u64::MAX)
                    .saturating_add(preamble.body_len())
            });
        let tracked = self.inner.progress.start(ns, blob_id, false);
        let key = self.inner.key.clone();
        let expected = expected_preamble.map(<[u8]>::to_vec);
        let result = self
            .with_retries(|| {
                let (part, key, expected) = (part.clone(), key.clone(), expected.clone());
                let (bytes, total) = (tracked.bytes.clone(), tracked.total.clone());
                async move {
                    remote
                        .download(ns, blob_id, &part, (&bytes, &total), max_len)
                        .await?;
                    let id = blob_id.to_owned();
                    tokio::task::spawn_blocking(move || {
                        let mut file = std::fs::File::open(&part)?;
                        verify(&key, &id, &mut file, expected.as_deref())
                    })
                    .await
                    .map_err(|_| Failure::Final(Error::Closed))?
                    .map_err(Failure::Final)
                }
            })
            .await;
        match result {
            Ok(size) => {
                tracked.finish(true);
                tokio::fs::rename(&part, store.content_path(&row.file)).await?;
                sync_dir(store.dir()).await?;
                store
                    .set_status(ns, blob_id, SyncStatus::Synced, Some(size))
                    .await?;
                Ok(BlobRow {
                    size: Some(size),
                    status: SyncStatus::Synced,
                    ..row
                })
            }
            Err(Error::BlobNotFound) => {
                tracked.finish(false);
                store.remove(ns, blob_id).await?;
                let _ = tokio::fs::remove_file(&part).await;
                Err(Error::BlobNotFound)
            }
            Err(err) => {
                tracked.finish(false);
                if matches!(err, Error::Integrity { .. }) {
                    // Final: the server's copy is not ours; never keep its bytes.
                    let _ = tokio::fs::remove_file(&part).await;
                    store.set_refused(ns, blob_id).await?;
                } else {
                    // The partial file of a cut download stays for `Range`
                    // resumption by the next fetch or get.
                    store
                        .set_status(ns, blob_id, SyncStatus::FailedDownload, None)
                        .await?;
                }
                Err(err)
            }
        }
    }

    /// Uploads a local blob (with retries) and records the outcome.
    pub(crate) async fn upload(&self, blob_id: &str, namespace: &str) -> Result<(), Error> {
        let ns = namespace_of(namespace)?;
        let ns = ns.as_str();
        let remote = self.remote()?;
        let store = &self.inner.store;
        let _one_transfer = self.lock_blob(ns, blob_id).await;
        let row = store.row(ns, blob_id).await?.ok_or(Error::BlobNotFound)?;
        // Sent already (maybe by a concurrent call), kept local, or not here.
        if matches!(row.status, SyncStatus::LocalOnly | SyncStatus::Synced)
            || !row.status.is_local()
        {
            return Ok(());
        }
        let path = store.content_path(&row.file);
        let tracked = self.inner.progress.start(ns, blob_id, true);
        if let Ok(meta) = tokio::fs::metadata(&path).await {
            tracked.total.store(meta.len());
        }
        let result = self
            .with_retries(|| {
                let (path, sent) = (path.clone(), tracked.bytes.clone());
                async move { remote.upload(ns, blob_id, &path, sent).await }
            })
            .await;
        let result = match result {
            // Ours already (an earlier attempt whose answer was lost) if the
            // server's preamble is ours: it holds a random per-blob salt.
            Err(Error::BlobAlreadyExists) => {
                let ours = read_head(&path).await?;
                let theirs = remote
                    .head_bytes(ns, blob_id, ours.len())
                    .await
                    .map_err(Failure::into_error)?;
                if theirs == ours {
                    Ok(())
                } else {
                    Err(Error::BlobAlreadyExists)
                }
            }
            other => other,
        };
        let status = if result.is_ok() {
            SyncStatus::Synced
        } else {
            SyncStatus::FailedUpload
        };
        tracked.finish(result.is_ok());
        store.set_status(ns, blob_id, status, None).await?;
        result
    }

    /// Runs `attempt` under a transfer permit until it succeeds, fails for good, or
    /// the retries are spent, sleeping the back-off between attempts.
    async fn with_retries<T, F, Fut>(&self, mut attempt: F) -> Result<T, Error>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Failure>>,
    {
        let config = &self.inner.config;
        let mut retries = 0u32;
        loop {
            let outcome = {
                let _permit = self
                    .inner
                    .permits
                    .acquire()
                    .await
                    .map_err(|_| Error::Closed)?;
                attempt().await
            };
            match outcome {
                Ok(value) => return Ok(value),
                Err(Failure::Final(err)) => return Err(err),
                Err(Failure::Retry(err)) => {
                    if retries >= config.max_retries {
                        return Err(if config.max_retries == 0 {
                            Error::RetriableTransfer(Box::new(err))
                        } else {
                            Error::MaximumRetries {
                                attempts: retries.saturating_add(1),
                                last: Box::new(err),
                            }
                        });
                    }
                    retries = retries.saturating_add(1);
                    tracing::debug!(retries, "blob transfer failed, retrying");
                    tokio::time::sleep(config.retry_delay(retries)).await;
                }
            }
        }
    }

    /// Deletes a blob here and on the server (the seed's `delete`). The server is
    /// asked first: if it cannot be reached, nothing is deleted.
    ///
    /// # Errors
    /// [`Error::BlobNotFound`] if it exists in neither place; network errors.
    pub async fn delete(&self, blob_id: &str, namespace: &str) -> Result<(), Error> {
        check_blob_id(blob_id)?;
        let ns = namespace_of(namespace)?;
        let store = &self.inner.store;
        let row = store.row(&ns, blob_id).await?;
        let local_only = row
            .as_ref()
            .is_some_and(|r| r.status == SyncStatus::LocalOnly);
        if let (Some(remote), false) = (&self.inner.remote, local_only) {
            match remote.delete(&ns, blob_id).await {
                Ok(()) => {}
                Err(Failure::Final(Error::BlobNotFound)) if row.is_some() => {}
                Err(failure) => return Err(failure.into_error()),
            }
        } else if row.is_none() {
            return Err(Error::BlobNotFound);
        }
        if let Some(row) = store.remove(&ns, blob_id).await? {
            remove_if_present(&store.content_path(&row.file)).await?;
            remove_if_present(&store.partial_path(&row.file)).await?;
        }
        Ok(())
    }

    /// The server's flags of a blob (the seed's `get_flags`).
    ///
    /// # Errors
    /// [`Error::BlobNotFound`], [`Error::NoServer`], network errors.
    pub async fn get_flags(&self, blob_id: &str, namespace: &str) -> Result<Vec<Flag>, Error> {
        check_blob_id(blob_id)?;
        let ns = namespace_of(namespace)?;
        self.remote()?
            .get_flags(&ns, blob_id)
            .await
            .map_err(Failure::into_error)
    }

    /// Replaces the server's flags of a blob (the seed's `set_flags`).
    ///
    /// # Errors
    /// [`Error::BlobNotFound`], [`Error::InvalidFlags`], [`Error::NoServer`],
    /// network errors.
    pub async fn set_flags(
        &self,
        blob_id: &str,
        flags: &[Flag],
        namespace: &str,
    ) -> Result<(), Error> {
        check_blob_id(blob_id)?;
        let ns = namespace_of(namespace)?;
        self.remote()?
            .set_flags(&ns, blob_id, flags)
            .await
            .map_err(Failure::into_error)
    }

    /// Ids of the blobs on the server (the seed's `remote_list`).
    ///
    /// # Errors
    /// [`Error::NoServer`], [`Error::InvalidBlobId`] (namespace), network errors.
    pub async fn remote_list(&self, query: &RemoteListQuery) -> Result<Vec<String>, Error> {
        let ns = namespace_of(&query.namespace)?;
        self.remote()?
            .list(&ns, query)
            .await
            .map_err(Failure::into_error)
    }

    /// How many blobs [`remote_list`](Self::remote_list) would return (the seed's
    /// `remote_list(only_count=True)`).
    ///
    /// # Errors
    /// As [`remote_list`](Self::remote_list).
    pub async fn remote_count(&self, query: &RemoteListQuery) -> Result<u64, Error> {
        let ns = namespace_of(&query.namespace)?;
        self.remote()?
            .count(&ns, query)
            .await
            .map_err(Failure::into_error)
    }

    /// Number of live blobs of a namespace on the server (the seed's `count`).
    ///
    /// # Errors
    /// As [`remote_list`](Self::remote_list).
    pub async fn count(&self, namespace: &str) -> Result<u64, Error> {
        self.remote_count(&RemoteListQuery {
            namespace: namespace.to_owned(),
            ..RemoteListQuery::default()
        })
        .await
    }

    /// Ids of the blobs known locally in a namespace, whatever their state (the
    /// seed's `local_list`).
    ///
    /// # Errors
    /// Local database errors.
    pub async fn local_list(&self, namespace: &str) -> Result<Vec<String>, Error> {
        let ns = namespace_of(namespace)?;
        let rows = self.inner.store.list(&ns, None).await?;
        Ok(rows.into_iter().map(|r| r.blob_id).collect())
    }

    /// Ids of the local blobs in `status` (the seed's `local_list_status`).
    ///
    /// # Errors
    /// Local database errors.
    pub async fn local_list_status(
        &self,
        status: SyncStatus,
        namespace: &str,
    ) -> Result<Vec<String>, Error> {
        let ns = namespace_of(namespace)?;
        let rows = self.inner.store.list(&ns, Some(status)).await?;
        Ok(rows.into_iter().map(|r| r.blob_id).collect())
    }

    /// The sync state of one blob, `None` if this device does not know it.
    ///
    /// # Errors
    /// Local database errors.
    pub async fn sync_status(
        &self,
        blob_id: &str,
        namespace: &str,
    ) -> Result<Option<SyncStatus>, Error> {
        let ns = namespace_of(namespace)?;
        Ok(self.inner.store.row(&ns, blob_id).await?.map(|r| r.status))
    }

    /// Compares the local list with the server's and updates the states: blobs
    /// only on the server become `PENDING_DOWNLOAD`, `SYNCED` blobs gone from the
    /// server `PENDING_UPLOAD`, and blobs deleted on the server (by another device)
    /// are deleted here.
    ///
    /// # Errors
    /// [`Error::NoServer`], network errors, local database errors.
    pub async fn refresh_sync_status_from_server(&self, namespace: &str) -> Result<(), Error> {
        let ns = namespace_of(namespace)?;
        let remote = self.remote()?;
        let query = RemoteListQuery::default();
        let live: HashSet<String> = remote
            .list(&ns, &query)
            .await
            .map_err(Failure::into_error)?
            .into_iter()
            .collect();
        let deleted: HashSet<String> = remote
            .list(
                &ns,
                &RemoteListQuery {
                    deleted: true,
                    ..query
                },
            )
            .await
            .map_err(Failure::into_error)?
            .into_iter()
            .collect();
        let store = &self.inner.store;
        let local = store.list(&ns, None).await?;
        let known: HashSet<&str> = local.iter().map(|r| r.blob_id.as_str()).collect();
        for row in &local {
            let on_server = live.contains(&row.blob_id);
            match row.status {
                SyncStatus::Synced if deleted.contains(&row.blob_id) && !on_server => {
                    if let Some(row) = store.remove(&ns, &row.blob_id).await? {
                        remove_if_present(&store.content_path(&row.file)).await?;
                    }
                }
                SyncStatus::Synced if !on_server => {
                    store
                        .set_status(&ns, &row.blob_id, SyncStatus::PendingUpload, None)
                        .await?;
                }
                _ => {}
            }
        }
        for id in live.iter().filter(|id| !known.contains(id.as_str())) {
            store
                .insert(BlobRow {
                    namespace: ns.clone(),
                    blob_id: id.clone(),
                    file: random_stem()?,
                    size: None,
                    status: SyncStatus::PendingDownload,
                    refused: false,
                })
                .await?;
        }
        Ok(())
    }

    /// Uploads every local blob the server lacks (`PENDING_UPLOAD`, and
    /// `FAILED_UPLOAD` again), `concurrent_transfers` at a time.
    ///
    /// # Errors
    /// [`Error::NoServer`], errors listing the server; failed transfers are
    /// reported in [`BlobSyncReport::failed`].
    pub async fn send_missing(&self, namespace: &str) -> Result<BlobSyncReport, Error> {
        let ns = namespace_of(namespace)?;
        self.remote()?;
        let rows = self.inner.store.list(&ns, None).await?;
        let ids: Vec<String> = rows
            .into_iter()
            .filter(|r| {
                matches!(
                    r.status,
                    SyncStatus::PendingUpload | SyncStatus::FailedUpload
                )
            })
            .map(|r| r.blob_id)
            .collect();
        let limit = self.inner.config.concurrent_transfers.max(1);
        let results: Vec<(String, Result<(), Error>)> = futures_util::stream::iter(ids)
            .map(|id| {
                let ns = ns.clone();
                async move {
                    let result = self.upload(&id, &ns).await;
                    (id, result)
                }
            })
            .buffer_unordered(limit)
            .collect()
            .await;
        let mut report = BlobSyncReport::default();
        for (id, result) in results {
            match result {
                Ok(()) => report.uploaded.push(id),
                Err(err) => report.failed.push((id, err.to_string())),
            }
        }
        report.uploaded.sort();
        Ok(report)
    }

    /// Downloads every blob of the namespace that is on the server and not here
    /// (`PENDING_DOWNLOAD`, and `FAILED_DOWNLOAD` after running out of retries,
    /// resuming what arrived), `concurrent_transfers` at a time. Blobs that
    /// failed to authenticate are not fetched again; ask for them with
    /// [`get`](Self::get).
    ///
    /// # Errors
    /// As [`send_missing`](Self::send_missing).
    pub async fn fetch_missing(&self, namespace: &str) -> Result<BlobSyncReport, Error> {
        let ns = namespace_of(namespace)?;
        self.refresh_sync_status_from_server(&ns).await?;
        let ids: Vec<String> = self
            .inner
            .store
            .list(&ns, None)
            .await?
            .into_iter()
            .filter(|r| {
                matches!(
                    r.status,
                    SyncStatus::PendingDownload | SyncStatus::FailedDownload
                ) && !r.refused
            })
            .map(|r| r.blob_id)
            .collect();
        let limit = self.inner.config.concurrent_transfers.max(1);
        let results: Vec<(String, Result<BlobRow, Error>)> = futures_util::stream::iter(ids)
            .map(|id| {
                let ns = ns.clone();
                async move {
                    let result = self.download(&ns, &id, None).await;
                    (id, result)
                }
            })
            .buffer_unordered(limit)
            .collect()
            .await;
        let mut report = BlobSyncReport::default();
        for (id, result) in results {
            match result {
                Ok(_) => report.downloaded.push(id),
                Err(err) => report.failed.push((id, err.to_string())),
            }
        }
        report.downloaded.sort();
        Ok(report)
    }

    /// The seed's `sync`: refresh the states from the server, send what it lacks,
    /// fetch what this device lacks.
    ///
    /// # Errors
    /// As [`send_missing`](Self::send_missing).
    pub async fn sync(&self, namespace: &str) -> Result<BlobSyncReport, Error> {
        let ns = namespace_of(namespace)?;
        self.refresh_sync_status_from_server(&ns).await?;
        let mut report = self.send_missing(&ns).await?;
        let fetched = self.fetch_missing(&ns).await?;
        report.downloaded = fetched.downloaded;
        report.failed.extend(fetched.failed);
        Ok(report)
    }

    /// Progress of transfers: counters and each transfer in flight.
    pub fn sync_progress(&self) -> SyncProgress {
        self.inner.progress.snapshot()
    }

    /// Progress as it happens, without polling: the receiver holds the latest
    /// [`SyncProgress`] and wakes ([`changed`](tokio::sync::watch::Receiver::changed))
    /// when a transfer starts, learns its size, moves by 256 KiB, or ends. It
    /// gives the total (`queued`, `done`, `failed`, `done_bytes`) and each blob
    /// in flight ([`SyncProgress::transfer`]); a blob's own outcome is the
    /// result of the call that moves it. Intermediate values may be skipped
    /// (only the latest is kept). Any number of watchers; each costs a snapshot
    /// per change.
    ///
    /// ```no_run
    /// # async fn show(blobs: &soledad_client::BlobManager) {
    /// let mut progress = blobs.watch_progress();
    /// while progress.changed().await.is_ok() {
    ///     let now = progress.borrow_and_update().clone();
    ///     if let Some(t) = now.transfer("default", "photo-1") {
    ///         println!("photo-1: {} of {:?} bytes", t.done_bytes, t.total_bytes);
    ///     }
    ///     println!("{} done, {} failed, {} bytes", now.done, now.failed, now.done_bytes);
    /// }
    /// # }
    /// ```
    pub fn watch_progress(&self) -> tokio::sync::watch::Receiver<SyncProgress> {
        self.inner.progress.subscribe()
    }

    /// Makes the local blob database durable and closes it (called by
    /// `Soledad::close`); every clone of this manager then fails with
    /// [`Error::Closed`].
    ///
    /// # Errors
    /// Local database errors.
    pub async fn close(&self) -> Result<(), Error> {
        self.inner.store.close().await
    }
}

fn namespace_of(ns: &str) -> Result<String, Error> {
    namespace(ns).map(str::to_owned)
}

/// A crypto error surfaced through `io::Error` by the async adapters.
fn crypto_io(err: std::io::Error) -> Error {
    match err
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<soledad_crypto::Error>())
    {
        Some(soledad_crypto::Error::SizeMismatch) => {
            Error::Crypto(soledad_crypto::Error::SizeMismatch)
        }
        Some(soledad_crypto::Error::Integrity) => Error::Integrity { count: 1 },
        _ => Error::Io(err),
    }
}

/// Authenticates a whole stored blob (and, if given, that its preamble is exactly
/// `expected`); returns its plaintext size. Any failure but a local read error is
/// [`Error::Integrity`].
fn verify(
    key: &BlobKey,
    blob_id: &str,
    file: &mut std::fs::File,
    expected: Option<&[u8]>,
) -> Result<u64, Error> {
    let mut reader = std::io::BufReader::with_capacity(COPY_BYTES, file);
    let preamble = match soledad_crypto::decrypt_blob(key, blob_id, &mut reader, std::io::sink()) {
        Ok(preamble) => preamble,
        Err(soledad_crypto::Error::Io(err)) => return Err(Error::Io(err)),
        Err(_) => return Err(Error::Integrity { count: 1 }),
    };
    if expected.is_some_and(|expected| preamble.to_bytes() != expected) {
        return Err(Error::Integrity { count: 1 });
    }
    Ok(preamble.plaintext_size())
}

/// The encoded preamble at the start of a stored blob file.
async fn read_head(path: &std::path::Path) -> Result<Vec<u8>, Error> {
    let mut file = tokio::fs::File::open(path).await?;
    let mut head = vec![0u8; MAX_PREAMBLE_LEN];
    let mut filled = 0;
    while filled < head.len() {
        let n = file
            .read(head.get_mut(filled..).unwrap_or_default())
            .await?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    head.truncate(filled);
    let (_, len) = soledad_crypto::Preamble::parse(&head)?;
    head.truncate(len);
    Ok(head)
}

async fn remove_if_present(path: &std::path::Path) -> Result<(), Error> {
    match tokio::fs::remove_file(path).await {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(Error::Io(err)),
        _ => Ok(()),
    }
}
