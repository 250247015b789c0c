//! The embedded blob store: files on the local filesystem, laid out as in the
//! seed (see `layout.rs`).
//!
//! Writes are atomic (temp file in `root/.tmp`, fsync, link into place, fsync
//! of the directory), uploads stream with bounded memory, and each user's
//! quota is tracked by a [`QuotaLedger`]. One process serves a root: two
//! processes writing the same root could clobber each other's flags files.

use std::io::{self, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

use super::backend::{BlobBackend, BlobRead, ByteStream};
use super::blocking::run_blocking;
use super::claims::Claims;
use super::clock::UploadClock;
use super::error::BlobError;
use super::flags::Flag;
use super::ids::{BlobId, Namespace, UserId};
use super::layout::{TEMP_DIR, blob_paths};
use super::listing::{FsUsage, content_charge, list, purge_tombstones};
use super::permits::WritePermits;
use super::put::put;
use super::query::ListQuery;
use super::quota::{ENTRY_OVERHEAD_BYTES, QuotaLedger, Usage};
use super::range::RangeSpec;
use super::sidecar::{encode_flags, read_flags, sync_dir, write_atomic};
use super::temp::clean_dir;

/// Chunk size of download streams.
const READ_CHUNK: usize = 64 * 1024;

/// Settings of a [`FsBlobStore`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FsBlobConfig {
    /// Directory holding every user's blobs (created if missing).
    pub root: PathBuf,
    /// Uploads written at the same time; more wait their turn (0 counts as 1).
    /// An upload takes its permit only once its first body bytes arrived.
    pub concurrent_blob_writes: usize,
    /// Of those, at most this many for one user (clamped to
    /// 1..=`concurrent_blob_writes`); see [`default_per_user_writes`](super::default_per_user_writes).
    pub per_user_blob_writes: usize,
    /// Quota of each user, in bytes (`u64::MAX` for no limit).
    pub quota_bytes: u64,
    /// How long a deleted blob's tombstone is kept. Expired tombstones are
    /// purged (and credited) when the user's usage is first measured after a
    /// start and whenever their namespace is listed.
    pub deleted_retention: Duration,
}

/// State shared by the store and its blocking tasks.
#[derive(Debug)]
pub(crate) struct StoreInner {
    pub(crate) root: PathBuf,
    pub(crate) temp_dir: PathBuf,
    pub(crate) writes: WritePermits,
    pub(crate) ledger: Arc<QuotaLedger>,
    pub(crate) claims: Arc<Claims>,
    pub(crate) clock: UploadClock,
    pub(crate) deleted_retention: Duration,
}

/// Blobs on the local filesystem: the embedded default [`BlobBackend`].
///
/// Cheap to clone (shared state). Needs a tokio runtime for every call but
/// [`open`](Self::open).
#[derive(Clone, Debug)]
pub struct FsBlobStore {
    inner: Arc<StoreInner>,
}

fn map_not_found(err: io::Error) -> BlobError {
    if err.kind() == io::ErrorKind::NotFound {
        BlobError::NotFound
    } else {
        BlobError::Io(err)
    }
}

/// Whether the content file exists (symlinks are never followed).
fn content_exists(path: &Path) -> Result<bool, BlobError> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) => Ok(meta.is_file()),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(err) => Err(err.into()),
    }
}

impl FsBlobStore {
    /// Opens (creating if needed) a store at `config.root` and removes the
    /// temporary files a previous run left behind. Users' usage is measured
    /// lazily, once per user, on first use.
    ///
    /// # Errors
    /// [`BlobError::Io`] if the root or its temporary directory cannot be
    /// created or cleaned.
    pub fn open(config: FsBlobConfig) -> Result<Self, BlobError> {
        let ledger = Arc::new(QuotaLedger::new(config.quota_bytes));
        Self::open_with_ledger(config, ledger)
    }

    /// As [`open`](Self::open), charging `ledger` (whose limit then applies
    /// instead of `config.quota_bytes`); the store registers its usage source
    /// on it.
    ///
    /// # Errors
    /// As [`open`](Self::open).
    pub fn open_with_ledger(
        config: FsBlobConfig,
        ledger: Arc<QuotaLedger>,
    ) -> Result<Self, BlobError> {
        std::fs::create_dir_all(&config.root)?;
        let temp_dir = config.root.join(TEMP_DIR);
        let stale = clean_dir(&temp_dir)?;
        if stale > 0 {
            tracing::info!(stale, "removed temporary blob files of a previous run");
        }
        let claims = Arc::new(Claims::new());
        ledger.register_source(Arc::new(FsUsage::new(
            config.root.clone(),
            Arc::clone(&claims),
            config.deleted_retention,
        )));
        Ok(Self {
            inner: Arc::new(StoreInner {
                root: config.root,
                temp_dir,
                writes: WritePermits::new(
                    config.concurrent_blob_writes,
                    config.per_user_blob_writes,
                ),
                ledger,
                claims,
                clock: UploadClock::new(),
                deleted_retention: config.deleted_retention,
            }),
        })
    }

    /// The quota ledger: share it with every other write path (incoming box,
    /// document store) so they charge the same quota, and register their
    /// [`UsageSource`](super::quota::UsageSource)s on it before serving.
    pub fn ledger(&self) -> Arc<QuotaLedger> {
        Arc::clone(&self.inner.ledger)
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    async fn get_impl(
        &self,
        user: &UserId,
        ns: &Namespace,
        id: &BlobId,
        range: Option<RangeSpec>,
    ) -> Result<BlobRead, BlobError> {
        let paths = blob_paths(&self.inner.root, user, ns, id);
        let mut file = tokio::fs::File::open(&paths.content)
            .await
            .map_err(map_not_found)?;
        let meta = file.metadata().await?;
        if !meta.is_file() {
            return Err(BlobError::NotFound);
        }
        let total_size = meta.len();
        let (start, len) = match range {
            None => (0, total_size),
            Some(range) => range.resolve(total_size)?,
        };
        if start > 0 {
            file.seek(SeekFrom::Start(start)).await?;
        }
        let body: ByteStream = Box::pin(ReaderStream::with_capacity(file.take(len), READ_CHUNK));
        Ok(BlobRead {
            total_size,
            start,
            len,
            body,
        })
    }

    async fn delete_impl(
        &self,
        user: &UserId,
        ns: &Namespace,
        id: &BlobId,
    ) -> Result<(), BlobError> {
        // Measure first, so the release below is not counted twice.
        self.inner.ledger.ensure_loaded(user).await?;
        let inner = Arc::clone(&self.inner);
        let paths = blob_paths(&inner.root, user, ns, id);
        let user = user.clone();
        run_blocking(move || {
            let _lock = inner.claims.lock(&paths.key);
            let meta = std::fs::symlink_metadata(&paths.content).map_err(map_not_found)?;
            if !meta.is_file() {
                return Err(BlobError::NotFound);
            }
            // A tombstone left beside live content (crash) is replaced, not added.
            let new_tombstone = !content_exists(&paths.tombstone)?;
            // Tombstone first: a crash after it leaves a live blob (content
            // wins over tombstone), never a blob gone without trace.
            let deleted_at = inner.clock.next();
            let stamp = deleted_at
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0)
                .to_string();
            write_atomic(
                &inner.temp_dir,
                &paths.tombstone,
                stamp.as_bytes(),
                Some(deleted_at),
                true,
            )?;
            std::fs::remove_file(&paths.content).map_err(map_not_found)?;
            let flags_removed = match std::fs::remove_file(&paths.flags) {
                Ok(()) => true,
                Err(err) if err.kind() == io::ErrorKind::NotFound => false,
                Err(err) => return Err(err.into()),
            };
            sync_dir(&paths.dir)?;
            // Content and flags files go, a tombstone comes: never a net charge.
            let mut freed = content_charge(meta.len());
            if flags_removed {
                freed = freed.saturating_add(ENTRY_OVERHEAD_BYTES);
            }
            if new_tombstone {
                freed = freed.saturating_sub(ENTRY_OVERHEAD_BYTES);
            }
            inner.ledger.release(&user, freed);
            Ok(())
        })
        .await
    }

    async fn get_flags_impl(
        &self,
        user: &UserId,
        ns: &Namespace,
        id: &BlobId,
    ) -> Result<Vec<Flag>, BlobError> {
        let inner = Arc::clone(&self.inner);
        let paths = blob_paths(&inner.root, user, ns, id);
        run_blocking(move || {
            let _lock = inner.claims.lock(&paths.key);
            if !content_exists(&paths.content)? {
                return Err(BlobError::NotFound);
            }
            read_flags(&paths.flags)
        })
        .await
    }

    async fn set_flags_impl(
        &self,
        user: &UserId,
        ns: &Namespace,
        id: &BlobId,
        flags: Vec<Flag>,
    ) -> Result<(), BlobError> {
        // Measure first, so a charge below is not counted twice.
        self.inner.ledger.ensure_loaded(user).await?;
        let inner = Arc::clone(&self.inner);
        let paths = blob_paths(&inner.root, user, ns, id);
        let user = user.clone();
        run_blocking(move || {
            let _lock = inner.claims.lock(&paths.key);
            if !content_exists(&paths.content)? {
                return Err(BlobError::NotFound);
            }
            // Uploads always write a flags file; only a damaged store lacks one.
            if !content_exists(&paths.flags)? {
                inner.ledger.charge(&user, ENTRY_OVERHEAD_BYTES)?;
            }
            write_atomic(
                &inner.temp_dir,
                &paths.flags,
                &encode_flags(&flags),
                None,
                true,
            )?;
            Ok(())
        })
        .await
    }

    async fn list_impl(&self, user: &UserId, query: &ListQuery) -> Result<Vec<String>, BlobError> {
        // Measure first, so the purge's credit is not counted twice.
        self.inner.ledger.ensure_loaded(user).await?;
        let inner = Arc::clone(&self.inner);
        let user = user.clone();
        let query = query.clone();
        run_blocking(move || {
            let freed = purge_tombstones(
                &inner.root,
                &inner.claims,
                &user,
                &query.namespace,
                inner.deleted_retention,
            )?;
            inner.ledger.release(&user, freed);
            list(&inner.root, &user, &query)
        })
        .await
    }
}

impl BlobBackend for FsBlobStore {
    fn put<'a>(
        &'a self,
        user: &'a UserId,
        ns: &'a Namespace,
        id: &'a BlobId,
        body: ByteStream,
        content_length: Option<u64>,
        initial_flags: &'a [Flag],
    ) -> BoxFuture<'a, Result<u64, BlobError>> {
        Box::pin(put(
            &self.inner,
            user,
            ns,
            id,
            body,
            content_length,
            initial_flags,
        ))
    }

    fn get<'a>(
        &'a self,
        user: &'a UserId,
        ns: &'a Namespace,
        id: &'a BlobId,
        range: Option<RangeSpec>,
    ) -> BoxFuture<'a, Result<BlobRead, BlobError>> {
        Box::pin(self.get_impl(user, ns, id, range))
    }

    fn delete<'a>(
        &'a self,
        user: &'a UserId,
        ns: &'a Namespace,
        id: &'a BlobId,
    ) -> BoxFuture<'a, Result<(), BlobError>> {
        Box::pin(self.delete_impl(user, ns, id))
    }

    fn get_flags<'a>(
        &'a self,
        user: &'a UserId,
        ns: &'a Namespace,
        id: &'a BlobId,
    ) -> BoxFuture<'a, Result<Vec<Flag>, BlobError>> {
        Box::pin(self.get_flags_impl(user, ns, id))
    }

    fn set_flags<'a>(
        &'a self,
        user: &'a UserId,
        ns: &'a Namespace,
        id: &'a BlobId,
        flags: Vec<Flag>,
    ) -> BoxFuture<'a, Result<(), BlobError>> {
        Box::pin(self.set_flags_impl(user, ns, id, flags))
    }

    fn list<'a>(
        &'a self,
        user: &'a UserId,
        query: &'a ListQuery,
    ) -> BoxFuture<'a, Result<Vec<String>, BlobError>> {
        Box::pin(self.list_impl(user, query))
    }

    fn count<'a>(
        &'a self,
        user: &'a UserId,
        query: &'a ListQuery,
    ) -> BoxFuture<'a, Result<u64, BlobError>> {
        Box::pin(async move {
            let ids = self.list_impl(user, query).await?;
            Ok(u64::try_from(ids.len()).unwrap_or(u64::MAX))
        })
    }

    fn usage<'a>(&'a self, user: &'a UserId) -> BoxFuture<'a, Result<Usage, BlobError>> {
        Box::pin(self.inner.ledger.usage(user))
    }
}
