//! Opening per-user stores on demand, one worker thread per open store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use soledad_store::{Batch, OpaqueDatabase, StoreError, StoreWorker, StoredSize};

use crate::blobs::{DOC_ENTRY_OVERHEAD_BYTES, QuotaLedger, UsageSource, UserId};
use crate::error::Error;
use crate::userdb::EmbeddedUserDocStores;

/// A user's store on its worker thread.
pub(crate) type UserStore = Arc<StoreWorker<Vec<u8>>>;

/// Stores kept open at most; the least recently used one is closed beyond.
///
/// Keeping a store open matters: closing the last connection checkpoints the WAL
/// into the database file, which measured ~80 ms after a 10 MB sync, and the next
/// request of that user would pay a reopen too.
const MAX_OPEN_STORES: usize = 256;

/// Opens each user's store at most once at a time: concurrent syncs of one user
/// (several devices) share one worker, so their batches are serialised and each
/// is atomic.
pub(crate) struct UserStores {
    embedded: EmbeddedUserDocStores,
    open: Mutex<HashMap<String, (UserStore, Instant)>>,
}

impl UserStores {
    pub(crate) fn new(embedded: EmbeddedUserDocStores) -> Self {
        UserStores {
            embedded,
            open: Mutex::new(HashMap::new()),
        }
    }

    /// The store of `user`; created when `ensure`, else `None` if it does not exist.
    pub(crate) async fn get(
        &self,
        user: &UserId,
        ensure: bool,
    ) -> Result<Option<UserStore>, Error> {
        if let Some(worker) = self.cached(user) {
            return Ok(Some(worker));
        }
        let embedded = self.embedded.clone();
        let owned_user = user.clone();
        let opened: Option<OpaqueDatabase> = tokio::task::spawn_blocking(move || {
            if !ensure && !embedded.path_of(&owned_user).is_file() {
                return Ok(None);
            }
            embedded.open_blocking(&owned_user).map(Some)
        })
        .await
        .map_err(|_| Error::StorageUnavailable)??;
        let Some(db) = opened else {
            return Ok(None);
        };
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        // Another request may have opened it meanwhile: use theirs, drop ours.
        if let Some((worker, used)) = open.get_mut(user.as_str()) {
            *used = Instant::now();
            return Ok(Some(worker.clone()));
        }
        let worker = Arc::new(
            StoreWorker::spawn(db, "soledad-user-store").map_err(|_| Error::StorageUnavailable)?,
        );
        if open.len() >= MAX_OPEN_STORES {
            // Requests still holding the evicted store keep it alive until they end.
            let oldest = open
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                open.remove(&oldest);
            }
        }
        open.insert(user.as_str().to_owned(), (worker.clone(), Instant::now()));
        Ok(Some(worker))
    }

    fn cached(&self, user: &UserId) -> Option<UserStore> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.get_mut(user.as_str()).map(|(worker, used)| {
            *used = Instant::now();
            worker.clone()
        })
    }
}

/// How a [`charged_batch`] commits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Commit {
    /// In order, not yet on disk (`synchronous = NORMAL`): a later durable
    /// commit, or a clean close, makes it durable.
    Ordered,
    /// On disk before returning (`synchronous = FULL`).
    Durable,
}

/// What a document store's content costs against the quota: the bytes it
/// stores (ids, revisions, payloads, log rows, see [`StoredSize`]) plus
/// [`DOC_ENTRY_OVERHEAD_BYTES`] per document. The same formula charges writes
/// and measures after a restart, from the same count kept inside the store.
pub(crate) fn charge_of(size: StoredSize) -> u64 {
    size.bytes
        .saturating_add(size.entries.saturating_mul(DOC_ENTRY_OVERHEAD_BYTES))
}

/// Runs `write` as one batch (transaction) of `user`'s store and charges the
/// quota what it really stored: the store's size after the writes minus before,
/// read inside the transaction. A batch that would pass the quota is rolled
/// back whole ([`crate::blobs::BlobError::QuotaExceeded`]); one that stored less
/// (a revision replaced by a smaller one) is credited.
///
/// With [`Commit::Durable`] the commit is on disk before this returns, and
/// with it every earlier commit of the store (WAL commits reach the disk in
/// order): use it for the last write before answering a request with success.
pub(crate) async fn charged_batch<T, F>(
    store: &UserStore,
    ledger: Option<&Arc<QuotaLedger>>,
    user: &UserId,
    commit: Commit,
    write: F,
) -> Result<T, Error>
where
    T: Send + 'static,
    F: FnOnce(&mut Batch<'_, Vec<u8>>) -> Result<T, StoreError> + Send + 'static,
{
    // Measures the user first (after a restart), so this batch is not counted twice.
    let reservation = match ledger {
        Some(ledger) => Some(ledger.reserve(user, 0).await?),
        None => None,
    };
    let durable = commit == Commit::Durable;
    let (value, reservation, credit) = store
        .call(move |db| {
            if durable {
                db.set_durable_commits(true)?;
            }
            let result = db.batch(|batch| {
                let before = charge_of(batch.stored_size()?);
                let value = write(batch)?;
                let after = charge_of(batch.stored_size()?);
                let mut reservation = reservation;
                if let Some(reservation) = reservation.as_mut()
                    && after > before
                {
                    reservation.grow(after - before)?;
                }
                Ok::<_, Error>((value, reservation, before.saturating_sub(after)))
            });
            if durable && let Err(err) = db.set_durable_commits(false) {
                // Still correct (every commit durable), only slower.
                tracing::warn!(error = %err, "user store stays in durable-commit mode");
            }
            result
        })
        .await
        .map_err(|_| Error::StorageUnavailable)??;
    if let Some(reservation) = reservation {
        reservation.commit();
    }
    if let Some(ledger) = ledger
        && credit > 0
    {
        ledger.release(user, credit);
    }
    Ok(value)
}

/// Charges the document stores' content to the user's quota after a restart,
/// from the count each store keeps (the same measure as [`charged_batch`]).
pub(crate) struct DocStoreUsage(pub(crate) EmbeddedUserDocStores);

impl UsageSource for DocStoreUsage {
    fn measure(&self, user: &UserId) -> std::io::Result<u64> {
        if !self.0.path_of(user).is_file() {
            return Ok(0);
        }
        let db = self.0.open_blocking(user).map_err(std::io::Error::other)?;
        let size = db.stored_size().map_err(std::io::Error::other)?;
        Ok(charge_of(size))
    }
}
