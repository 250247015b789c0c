//! Opening per-user stores on demand, one worker thread per open store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use futures_util::future::BoxFuture;
use soledad_protocol::{BatchLimits, ExchangeEnd, RecordSyncInfo, SyncInfo};
use soledad_store::{
    Batch, Change, DocId, OpaqueDatabase, Position, ReplicaUid, Source, StoreError, StoreWorker,
    StoredSize,
};

use super::exchange::EmbeddedApply;
use crate::blobs::{DOC_ENTRY_OVERHEAD_BYTES, QuotaLedger, UsageSource, UserId};
use crate::error::Error;
use crate::userdb::{
    AppliedBatch, ChangesChunk, EmbeddedUserDocStores, SkipChange, SourceDoc, UserDocStores,
};

/// A user's store on its worker thread.
pub(crate) type UserStore = Arc<StoreWorker<Vec<u8>>>;

/// Stores kept open at most; the least recently used one is closed beyond.
///
/// Keeping a store open matters: closing the last connection checkpoints the WAL
/// into the database file, which measured ~80 ms after a 10 MB sync, and the next
/// request of that user would pay a reopen too.
const MAX_OPEN_STORES: usize = 256;

/// The embedded [`UserDocStores`]: one SQLite file per user
/// ([`EmbeddedUserDocStores`]), each open store on its own worker thread.
///
/// Opens each user's store at most once at a time: concurrent syncs of one user
/// (several devices) share one worker, so their batches are serialised and each
/// is atomic.
pub struct UserStores {
    embedded: EmbeddedUserDocStores,
    open: Mutex<HashMap<String, (UserStore, Instant)>>,
}

impl UserStores {
    /// The stores under `embedded`'s directory.
    pub fn new(embedded: EmbeddedUserDocStores) -> Self {
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

    /// Stores with `store` already open as `user`'s (tests of the exchange).
    #[cfg(test)]
    pub(crate) fn with_open(user: &UserId, store: UserStore) -> Self {
        let stores = UserStores::new(EmbeddedUserDocStores::new("/nonexistent"));
        stores
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(user.as_str().to_owned(), (store, Instant::now()));
        stores
    }

    /// The store of `user`, which must exist ([`Error::DatabaseDoesNotExist`]).
    async fn existing(&self, user: &UserId) -> Result<UserStore, Error> {
        self.get(user, false)
            .await?
            .ok_or(Error::DatabaseDoesNotExist)
    }

    fn cached(&self, user: &UserId) -> Option<UserStore> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.get_mut(user.as_str()).map(|(worker, used)| {
            *used = Instant::now();
            worker.clone()
        })
    }
}

impl UserDocStores for UserStores {
    fn create<'a>(&'a self, user: &'a UserId) -> BoxFuture<'a, Result<bool, Error>> {
        Box::pin(async move {
            if self.cached(user).is_some() {
                return Ok(false);
            }
            self.embedded.create(user).await
        })
    }

    fn exists<'a>(&'a self, user: &'a UserId) -> BoxFuture<'a, Result<bool, Error>> {
        Box::pin(async move {
            if self.cached(user).is_some() {
                return Ok(true);
            }
            self.embedded.exists(user).await
        })
    }

    fn sync_info<'a>(
        &'a self,
        user: &'a UserId,
        source: &'a str,
    ) -> BoxFuture<'a, Result<SyncInfo, Error>> {
        Box::pin(async move {
            let store = self.existing(user).await?;
            let source = source.to_owned();
            Ok(store
                .run(move |db| {
                    let target = db.get_generation_info()?;
                    let known = db.get_replica_gen_and_trans_id(&ReplicaUid::parse(&source)?)?;
                    Ok(SyncInfo {
                        target_replica_uid: db.replica_uid().to_owned(),
                        target_replica_generation: target.generation(),
                        target_replica_transaction_id: target.transaction_id().as_str().to_owned(),
                        source_replica_uid: source,
                        source_replica_generation: known.generation(),
                        source_transaction_id: known.transaction_id().as_str().to_owned(),
                    })
                })
                .await?)
        })
    }

    fn record_position<'a>(
        &'a self,
        user: &'a UserId,
        source: &'a str,
        position: RecordSyncInfo,
        ledger: Option<Arc<QuotaLedger>>,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let store = self.existing(user).await?;
            let source = source.to_owned();
            let replica_uid = store.run(|db| Ok(db.replica_uid().to_owned())).await?;
            if source == replica_uid {
                return Err(StoreError::InvalidReplicaUid.into());
            }
            // Acknowledged with 200: durable.
            charged_batch(
                &store,
                ledger.as_ref(),
                user,
                Commit::Durable,
                move |batch| {
                    batch.set_replica_gen_and_trans_id(&Source::new(
                        ReplicaUid::parse(&source)?,
                        Position::parse(position.generation, &position.transaction_id)?,
                    ))
                },
            )
            .await
        })
    }

    fn begin_exchange<'a>(
        &'a self,
        user: &'a UserId,
        source: &'a str,
        ensure: bool,
        known: Position,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let store = self
                .get(user, ensure)
                .await?
                .ok_or(Error::DatabaseDoesNotExist)?;
            let source = source.to_owned();
            store
                .run(move |db| {
                    if source == db.replica_uid() {
                        return Err(StoreError::InvalidReplicaUid);
                    }
                    db.validate_gen_and_trans_id(&known)
                })
                .await?;
            Ok(())
        })
    }

    fn apply_from_source<'a>(
        &'a self,
        user: &'a UserId,
        source: &'a str,
        docs: Vec<SourceDoc>,
        ledger: Option<Arc<QuotaLedger>>,
    ) -> BoxFuture<'a, Result<AppliedBatch, Error>> {
        Box::pin(async move {
            let store = self.existing(user).await?;
            let apply = EmbeddedApply {
                source: source.to_owned(),
                user: user.clone(),
                store: &store,
                ledger,
            };
            let applied = apply.apply(docs).await?;
            Ok(AppliedBatch::new(applied.generations, applied.converged))
        })
    }

    fn record_end<'a>(
        &'a self,
        user: &'a UserId,
        source: &'a str,
        end: ExchangeEnd,
        ledger: Option<Arc<QuotaLedger>>,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let store = self.existing(user).await?;
            let source = source.to_owned();
            let unsynced = store
                .run(|db| Ok(db.durable_generation() < db.get_generation_info()?.generation()))
                .await?;
            // The last write before a success response: durable, and with it
            // every batch committed in order before.
            let write = move |batch: &mut Batch<'_, Vec<u8>>| {
                let replica = ReplicaUid::parse(&source)?;
                let known = batch.get_replica_gen_and_trans_id(&replica)?;
                // The source's own generations: ordered here (it is the client's
                // counter), unlike the server positions a client records.
                let position = if end.generation > known.generation() {
                    Position::parse(end.generation, &end.transaction_id)?
                } else if unsynced {
                    // A commit that writes nothing does not sync: rewrite the
                    // position so this durable commit covers the ordered batches.
                    known
                } else {
                    return Ok(());
                };
                batch.set_replica_gen_and_trans_id(&Source::new(replica, position))
            };
            charged_batch(&store, ledger.as_ref(), user, Commit::Durable, write).await
        })
    }

    fn durable_position<'a>(
        &'a self,
        user: &'a UserId,
        source: &'a str,
        ledger: Option<Arc<QuotaLedger>>,
    ) -> BoxFuture<'a, Result<(String, Position), Error>> {
        Box::pin(async move {
            let store = self.existing(user).await?;
            let (replica_uid, position, durable) = store
                .run(move |db| {
                    let position = db.get_generation_info()?;
                    let durable = db.durable_generation() >= position.generation();
                    Ok((db.replica_uid().to_owned(), position, durable))
                })
                .await?;
            if !durable {
                // Another device's batches, committed in order but not acknowledged
                // yet: a durable commit (which must write to sync) rewrites the
                // source's recorded position.
                let source = source.to_owned();
                let rewrite = move |batch: &mut Batch<'_, Vec<u8>>| {
                    let replica = ReplicaUid::parse(&source)?;
                    let known = batch.get_replica_gen_and_trans_id(&replica)?;
                    batch.set_replica_gen_and_trans_id(&Source::new(replica, known))
                };
                charged_batch(&store, ledger.as_ref(), user, Commit::Durable, rewrite).await?;
            }
            Ok((replica_uid, position))
        })
    }

    fn changes_after<'a>(
        &'a self,
        user: &'a UserId,
        after: u64,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<Change>, Error>> {
        Box::pin(async move {
            let store = self.existing(user).await?;
            Ok(store.run(move |db| db.changes_since(after, limit)).await?)
        })
    }

    fn read_changes<'a>(
        &'a self,
        user: &'a UserId,
        after: u64,
        upto: u64,
        limits: BatchLimits,
        skip: SkipChange,
    ) -> BoxFuture<'a, Result<ChangesChunk, Error>> {
        Box::pin(async move {
            let store = self.existing(user).await?;
            Ok(store
                .run(move |db| {
                    let changes = db.changes_since(after, limits.docs.max(1))?;
                    // Read by generation (sequential), not by id (a random page
                    // of the id index per document in a large store).
                    let generations: HashMap<DocId, u64> = changes
                        .iter()
                        .map(|change| (change.doc_id.clone(), change.generation))
                        .collect();
                    // Same worker call as the query: nothing changed meanwhile.
                    let reader = db.doc_reader();
                    ChangesChunk::gather(after, upto, limits, changes, &skip, |id| {
                        let Some(generation) = generations.get(id) else {
                            return Ok(None);
                        };
                        let found = reader.get_doc_at_generation(*generation)?;
                        Ok(found.and_then(|doc| doc.rev.zip(doc.content)))
                    })
                })
                .await?)
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
