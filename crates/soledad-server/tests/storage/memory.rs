//! In-memory implementations of the storage traits: the smallest code that
//! honours each contract, to show the seam does not assume SQLite or a
//! filesystem. Not for production (no persistence, one lock per store).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use bytes::Bytes;
use futures_util::StreamExt as _;
use futures_util::future::BoxFuture;
use soledad_protocol::{BatchLimits, ExchangeEnd, RecordSyncInfo, SyncInfo};
use soledad_server::blobs::{
    BlobBackend, BlobError, BlobId, BlobRead, ByteStream, DOC_ENTRY_OVERHEAD_BYTES,
    ENTRY_OVERHEAD_BYTES, Flag, ListQuery, Namespace, Order, QuotaCounters, QuotaLedger, RangeSpec,
    Usage, UsageSource, UserId,
};

/// What a live blob costs beyond its bytes in the quota model: its content and its
/// flags, one entry each.
const BLOB_ENTRIES: u64 = 2 * ENTRY_OVERHEAD_BYTES;
use soledad_server::{
    AppliedBatch, ChangesChunk, Error, IssuedToken, SharedDoc, SharedDocId, SharedRev, SharedStore,
    SharedWrite, SkipChange, SourceDoc, TokenStore, UserDocStores, UserRecord,
};
use soledad_store::vectorclock::ClockOrdering;
use soledad_store::{Change, DocId, Position, Rev, StoreError};

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap()
}

fn valid_user(uuid: &str) -> Result<(), Error> {
    UserId::parse(uuid)
        .map(|_| ())
        .map_err(|_| Error::InvalidUserId)
}

/// Users and their current token and expiry.
#[derive(Default)]
pub struct MemoryTokens {
    users: Mutex<BTreeMap<String, (String, Option<SystemTime>)>>,
}

impl TokenStore for MemoryTokens {
    fn verify<'a>(&'a self, uuid: &'a str, token: &'a str) -> BoxFuture<'a, Result<bool, Error>> {
        Box::pin(async move {
            Ok(lock(&self.users)
                .get(uuid)
                .is_some_and(|(current, expires)| {
                    current == token && expires.is_none_or(|at| SystemTime::now() < at)
                }))
        })
    }

    fn add<'a>(
        &'a self,
        uuid: &'a str,
        expires_at: Option<SystemTime>,
    ) -> BoxFuture<'a, Result<IssuedToken, Error>> {
        Box::pin(async move {
            valid_user(uuid)?;
            let token = IssuedToken::generate()?;
            let mut users = lock(&self.users);
            if users.contains_key(uuid) {
                return Err(Error::UserExists);
            }
            users.insert(uuid.to_owned(), (token.expose().to_owned(), expires_at));
            Ok(token)
        })
    }

    fn rotate<'a>(
        &'a self,
        uuid: &'a str,
        expires_at: Option<SystemTime>,
    ) -> BoxFuture<'a, Result<IssuedToken, Error>> {
        Box::pin(async move {
            valid_user(uuid)?;
            let token = IssuedToken::generate()?;
            let mut users = lock(&self.users);
            let entry = users.get_mut(uuid).ok_or(Error::NotFound)?;
            *entry = (token.expose().to_owned(), expires_at);
            Ok(token)
        })
    }

    fn remove<'a>(&'a self, uuid: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            valid_user(uuid)?;
            lock(&self.users)
                .remove(uuid)
                .map(|_| ())
                .ok_or(Error::NotFound)
        })
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<UserRecord>, Error>> {
        Box::pin(async move {
            Ok(lock(&self.users)
                .iter()
                .map(|(uuid, (_, expires_at))| UserRecord {
                    uuid: uuid.clone(),
                    expires_at: *expires_at,
                })
                .collect())
        })
    }
}

/// Shared documents by owner and id; revisions from one counter.
#[derive(Default)]
pub struct MemoryShared {
    docs: Mutex<HashMap<(UserId, String), SharedDoc>>,
    revisions: Mutex<u64>,
}

impl MemoryShared {
    fn next_rev(&self) -> SharedRev {
        let mut counter = lock(&self.revisions);
        *counter += 1;
        SharedRev::new(format!("{}-memory", *counter))
    }
}

fn content_len(doc: &SharedDoc) -> u64 {
    u64::try_from(doc.content.len()).unwrap()
}

impl SharedStore for MemoryShared {
    fn get<'a>(
        &'a self,
        owner: &'a UserId,
        id: &'a SharedDocId,
    ) -> BoxFuture<'a, Result<Option<SharedDoc>, Error>> {
        let key = (owner.clone(), id.as_str().to_owned());
        Box::pin(async move { Ok(lock(&self.docs).get(&key).cloned()) })
    }

    fn put<'a>(
        &'a self,
        owner: &'a UserId,
        id: &'a SharedDocId,
        old_rev: Option<&'a SharedRev>,
        content: Vec<u8>,
        content_type: Option<String>,
    ) -> BoxFuture<'a, Result<SharedWrite, Error>> {
        let key = (owner.clone(), id.as_str().to_owned());
        Box::pin(async move {
            let rev = self.next_rev();
            let mut docs = lock(&self.docs);
            let current = docs.get(&key);
            if current.map(|doc| &doc.rev) != old_rev {
                return Err(Error::RevisionConflict);
            }
            let replaced_bytes = current.map_or(0, content_len);
            let doc = SharedDoc {
                rev: rev.clone(),
                content,
                content_type,
            };
            docs.insert(key, doc);
            Ok(SharedWrite {
                rev,
                replaced_bytes,
            })
        })
    }

    fn delete<'a>(
        &'a self,
        owner: &'a UserId,
        id: &'a SharedDocId,
        rev: &'a SharedRev,
    ) -> BoxFuture<'a, Result<u64, Error>> {
        let key = (owner.clone(), id.as_str().to_owned());
        Box::pin(async move {
            let mut docs = lock(&self.docs);
            match docs.get(&key) {
                None => Err(Error::NotFound),
                Some(doc) if &doc.rev != rev => Err(Error::RevisionConflict),
                Some(_) => Ok(docs.remove(&key).as_ref().map_or(0, content_len)),
            }
        })
    }
}

type BlobKey = (UserId, Namespace, BlobId);

struct Blob {
    data: Bytes,
    flags: Vec<Flag>,
    /// Upload order.
    seq: u64,
}

#[derive(Default)]
struct BlobState {
    blobs: BTreeMap<BlobKey, Blob>,
    /// Deleted ids and their deletion order.
    tombstones: BTreeMap<BlobKey, u64>,
    in_flight: HashSet<BlobKey>,
    used: HashMap<UserId, u64>,
    reserved: HashMap<UserId, u64>,
    seq: u64,
}

impl BlobState {
    fn charged(&self, user: &UserId) -> u64 {
        self.used.get(user).copied().unwrap_or(0) + self.reserved.get(user).copied().unwrap_or(0)
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }
}

/// Blobs in memory with a per-user quota.
pub struct MemoryBlobs {
    quota_bytes: u64,
    state: Arc<Mutex<BlobState>>,
}

impl MemoryBlobs {
    pub fn new(quota_bytes: u64) -> MemoryBlobs {
        MemoryBlobs {
            quota_bytes,
            state: Arc::default(),
        }
    }

    /// Reserves `bytes` more for an upload of `user`.
    fn reserve(&self, state: &mut BlobState, user: &UserId, bytes: u64) -> Result<(), BlobError> {
        let charged = state.charged(user);
        if charged.saturating_add(bytes) > self.quota_bytes {
            return Err(BlobError::QuotaExceeded {
                used_bytes: charged,
                limit_bytes: self.quota_bytes,
            });
        }
        *state.reserved.entry(user.clone()).or_default() += bytes;
        Ok(())
    }
}

/// An upload in flight: on drop (done, failed or cancelled) it frees its id
/// and gives its reservation back.
struct Upload {
    state: Arc<Mutex<BlobState>>,
    key: BlobKey,
    reserved: u64,
}

impl Drop for Upload {
    fn drop(&mut self) {
        let mut state = lock(&self.state);
        state.in_flight.remove(&self.key);
        if let Some(reserved) = state.reserved.get_mut(&self.key.0) {
            *reserved -= self.reserved;
        }
    }
}

fn dedup(flags: &[Flag]) -> Vec<Flag> {
    let mut out: Vec<Flag> = Vec::new();
    for flag in flags {
        if !out.contains(flag) {
            out.push(*flag);
        }
    }
    out
}

impl BlobBackend for MemoryBlobs {
    fn put<'a>(
        &'a self,
        user: &'a UserId,
        ns: &'a Namespace,
        id: &'a BlobId,
        mut body: ByteStream,
        content_length: Option<u64>,
        initial_flags: &'a [Flag],
    ) -> BoxFuture<'a, Result<u64, BlobError>> {
        Box::pin(async move {
            let key = (user.clone(), ns.clone(), id.clone());
            let mut upload = {
                let mut state = lock(&self.state);
                if state.blobs.contains_key(&key) || state.in_flight.contains(&key) {
                    return Err(BlobError::AlreadyExists);
                }
                // The quota model: a live blob costs its bytes plus two entries.
                let announced = content_length.unwrap_or(0) + BLOB_ENTRIES;
                self.reserve(&mut state, user, announced)?;
                state.in_flight.insert(key.clone());
                Upload {
                    state: Arc::clone(&self.state),
                    key: key.clone(),
                    reserved: announced,
                }
            };
            let mut data = Vec::new();
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|_| BlobError::BodyInterrupted)?;
                data.extend_from_slice(&chunk);
                let len = u64::try_from(data.len()).unwrap();
                if content_length.is_some_and(|announced| len > announced) {
                    return Err(BlobError::BodyInterrupted);
                }
                let len = len + BLOB_ENTRIES;
                if len > upload.reserved {
                    let more = len - upload.reserved;
                    let reserved = {
                        let mut state = lock(&self.state);
                        self.reserve(&mut state, user, more)
                    };
                    reserved?;
                    upload.reserved = len;
                }
            }
            let len = u64::try_from(data.len()).unwrap();
            if content_length.is_some_and(|announced| len != announced) {
                return Err(BlobError::BodyInterrupted);
            }
            let mut state = lock(&self.state);
            let seq = state.next_seq();
            let had_tombstone = state.tombstones.remove(&key).is_some();
            let used = state.used.entry(user.clone()).or_default();
            *used += len + BLOB_ENTRIES;
            if had_tombstone {
                *used -= ENTRY_OVERHEAD_BYTES;
            }
            let blob = Blob {
                data: Bytes::from(data),
                flags: dedup(initial_flags),
                seq,
            };
            state.blobs.insert(key, blob);
            drop(state);
            drop(upload);
            Ok(len)
        })
    }

    fn get<'a>(
        &'a self,
        user: &'a UserId,
        ns: &'a Namespace,
        id: &'a BlobId,
        range: Option<RangeSpec>,
    ) -> BoxFuture<'a, Result<BlobRead, BlobError>> {
        Box::pin(async move {
            let key = (user.clone(), ns.clone(), id.clone());
            let data = lock(&self.state)
                .blobs
                .get(&key)
                .map(|blob| blob.data.clone())
                .ok_or(BlobError::NotFound)?;
            let total_size = u64::try_from(data.len()).unwrap();
            let (start, len) = match range {
                None => (0, total_size),
                Some(range) => range.resolve(total_size)?,
            };
            let from = usize::try_from(start).unwrap();
            let to = usize::try_from(start + len).unwrap();
            let chunk: std::io::Result<Bytes> = Ok(data.slice(from..to));
            Ok(BlobRead {
                total_size,
                start,
                len,
                body: Box::pin(futures_util::stream::iter([chunk])),
            })
        })
    }

    fn delete<'a>(
        &'a self,
        user: &'a UserId,
        ns: &'a Namespace,
        id: &'a BlobId,
    ) -> BoxFuture<'a, Result<(), BlobError>> {
        Box::pin(async move {
            let key = (user.clone(), ns.clone(), id.clone());
            let mut state = lock(&self.state);
            let blob = state.blobs.remove(&key).ok_or(BlobError::NotFound)?;
            let seq = state.next_seq();
            state.tombstones.insert(key, seq);
            if let Some(used) = state.used.get_mut(user) {
                *used -= u64::try_from(blob.data.len()).unwrap() + BLOB_ENTRIES;
                *used += ENTRY_OVERHEAD_BYTES; // the tombstone
            }
            Ok(())
        })
    }

    fn get_flags<'a>(
        &'a self,
        user: &'a UserId,
        ns: &'a Namespace,
        id: &'a BlobId,
    ) -> BoxFuture<'a, Result<Vec<Flag>, BlobError>> {
        Box::pin(async move {
            let key = (user.clone(), ns.clone(), id.clone());
            let state = lock(&self.state);
            let blob = state.blobs.get(&key).ok_or(BlobError::NotFound)?;
            Ok(blob.flags.clone())
        })
    }

    fn set_flags<'a>(
        &'a self,
        user: &'a UserId,
        ns: &'a Namespace,
        id: &'a BlobId,
        flags: Vec<Flag>,
    ) -> BoxFuture<'a, Result<(), BlobError>> {
        Box::pin(async move {
            let key = (user.clone(), ns.clone(), id.clone());
            let mut state = lock(&self.state);
            let blob = state.blobs.get_mut(&key).ok_or(BlobError::NotFound)?;
            blob.flags = dedup(&flags);
            Ok(())
        })
    }

    fn list<'a>(
        &'a self,
        user: &'a UserId,
        query: &'a ListQuery,
    ) -> BoxFuture<'a, Result<Vec<String>, BlobError>> {
        Box::pin(async move {
            let state = lock(&self.state);
            let mine = |key: &BlobKey| &key.0 == user && key.1 == query.namespace;
            // (id, order) of the matching blobs, in id order.
            let mut found: Vec<(String, u64)> = if query.deleted {
                if query.filter_flag.is_some() {
                    Vec::new() // deleted blobs carry no flag
                } else {
                    state
                        .tombstones
                        .iter()
                        .filter(|(key, _)| mine(key))
                        .map(|(key, seq)| (key.2.to_string(), *seq))
                        .collect()
                }
            } else {
                state
                    .blobs
                    .iter()
                    .filter(|(key, blob)| {
                        mine(key) && query.filter_flag.is_none_or(|f| blob.flags.contains(&f))
                    })
                    .map(|(key, blob)| (key.2.to_string(), blob.seq))
                    .collect()
            };
            match query.order {
                None => {}
                Some(Order::DateAscending) => found.sort_by_key(|(_, seq)| *seq),
                Some(Order::DateDescending) => {
                    found.sort_by_key(|(_, seq)| std::cmp::Reverse(*seq))
                }
            }
            Ok(found.into_iter().map(|(id, _)| id).collect())
        })
    }

    fn count<'a>(
        &'a self,
        user: &'a UserId,
        query: &'a ListQuery,
    ) -> BoxFuture<'a, Result<u64, BlobError>> {
        Box::pin(async move {
            let ids = self.list(user, query).await?;
            Ok(u64::try_from(ids.len()).unwrap())
        })
    }

    fn usage<'a>(&'a self, user: &'a UserId) -> BoxFuture<'a, Result<Usage, BlobError>> {
        Box::pin(async move {
            Ok(Usage {
                used_bytes: lock(&self.state).used.get(user).copied().unwrap_or(0),
                limit_bytes: self.quota_bytes,
            })
        })
    }
}

/// Per-user document stores in memory: u1db's target rules on opaque
/// payloads, a log of changes, positions per source, the quota charged per
/// document as the embedded stores count it (id + revision + payload + a
/// fixed overhead).
#[derive(Default)]
pub struct MemoryDocStores {
    users: Mutex<HashMap<String, MemoryDocStore>>,
}

struct MemoryDocStore {
    replica_uid: String,
    /// id → (revision, payload, generation of its latest change).
    docs: HashMap<DocId, (Rev, Vec<u8>, u64)>,
    /// Transaction id of each generation (index = generation - 1).
    log: Vec<String>,
    sources: HashMap<String, (u64, String)>,
}

impl MemoryDocStore {
    fn new(user: &UserId) -> Self {
        MemoryDocStore {
            replica_uid: format!("memory-{}", user.as_str()),
            docs: HashMap::new(),
            log: Vec::new(),
            sources: HashMap::new(),
        }
    }

    fn generation(&self) -> u64 {
        self.log.len() as u64
    }

    fn position(&self) -> (u64, String) {
        (
            self.generation(),
            self.log.last().cloned().unwrap_or_default(),
        )
    }

    fn changes(&self) -> Vec<Change> {
        let mut changes: Vec<Change> = self
            .docs
            .iter()
            .map(|(id, (_, _, generation))| Change {
                doc_id: id.clone(),
                generation: *generation,
                transaction_id: self.log[(*generation - 1) as usize].clone(),
            })
            .collect();
        changes.sort_by_key(|c| c.generation);
        changes
    }
}

fn doc_charge(id: &str, rev: &str, payload: &[u8]) -> u64 {
    (id.len() + rev.len() + payload.len()) as u64 + DOC_ENTRY_OVERHEAD_BYTES
}

impl MemoryDocStores {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, MemoryDocStore>> {
        self.users.lock().unwrap()
    }

    fn with<T>(
        &self,
        user: &UserId,
        f: impl FnOnce(&mut MemoryDocStore) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let mut users = self.lock();
        let store = users
            .get_mut(user.as_str())
            .ok_or(Error::DatabaseDoesNotExist)?;
        f(store)
    }

    /// The payload of `id` in `user`'s store.
    pub fn payload(&self, user: &UserId, id: &str) -> Option<Vec<u8>> {
        let users = self.lock();
        let (_, payload, _) = users.get(user.as_str())?.docs.get(id)?;
        Some(payload.clone())
    }
}

impl UserDocStores for MemoryDocStores {
    fn create<'a>(&'a self, user: &'a UserId) -> BoxFuture<'a, Result<bool, Error>> {
        let mut users = self.lock();
        let created = !users.contains_key(user.as_str());
        users
            .entry(user.as_str().to_owned())
            .or_insert_with(|| MemoryDocStore::new(user));
        Box::pin(async move { Ok(created) })
    }

    fn exists<'a>(&'a self, user: &'a UserId) -> BoxFuture<'a, Result<bool, Error>> {
        let exists = self.lock().contains_key(user.as_str());
        Box::pin(async move { Ok(exists) })
    }

    fn sync_info<'a>(
        &'a self,
        user: &'a UserId,
        source: &'a str,
    ) -> BoxFuture<'a, Result<SyncInfo, Error>> {
        let info = self.with(user, |store| {
            let (target_gen, target_tid) = store.position();
            let (source_gen, source_tid) = store.sources.get(source).cloned().unwrap_or_default();
            Ok(SyncInfo {
                target_replica_uid: store.replica_uid.clone(),
                target_replica_generation: target_gen,
                target_replica_transaction_id: target_tid,
                source_replica_uid: source.to_owned(),
                source_replica_generation: source_gen,
                source_transaction_id: source_tid,
            })
        });
        Box::pin(async move { info })
    }

    fn record_position<'a>(
        &'a self,
        user: &'a UserId,
        source: &'a str,
        position: RecordSyncInfo,
        _ledger: Option<Arc<QuotaLedger>>,
    ) -> BoxFuture<'a, Result<(), Error>> {
        let done = self.with(user, |store| {
            if source == store.replica_uid {
                return Err(StoreError::InvalidReplicaUid.into());
            }
            store.sources.insert(
                source.to_owned(),
                (position.generation, position.transaction_id),
            );
            Ok(())
        });
        Box::pin(async move { done })
    }

    fn begin_exchange<'a>(
        &'a self,
        user: &'a UserId,
        source: &'a str,
        ensure: bool,
        known: Position,
    ) -> BoxFuture<'a, Result<(), Error>> {
        if ensure {
            self.lock()
                .entry(user.as_str().to_owned())
                .or_insert_with(|| MemoryDocStore::new(user));
        }
        let done = self.with(user, |store| {
            if source == store.replica_uid {
                return Err(StoreError::InvalidReplicaUid.into());
            }
            let generation = known.generation();
            if generation == 0 {
                return Ok(());
            }
            match store.log.get((generation - 1) as usize) {
                None => Err(StoreError::InvalidGeneration.into()),
                Some(at) if at.as_str() != known.transaction_id().as_str() => {
                    Err(StoreError::InvalidTransactionId.into())
                }
                Some(_) => Ok(()),
            }
        });
        Box::pin(async move { done })
    }

    fn apply_from_source<'a>(
        &'a self,
        user: &'a UserId,
        source: &'a str,
        docs: Vec<SourceDoc>,
        ledger: Option<Arc<QuotaLedger>>,
    ) -> BoxFuture<'a, Result<AppliedBatch, Error>> {
        Box::pin(async move {
            // Decide first (nothing is changed), charge, then write.
            let (plan, grow, credit, before, converged) = self.with(user, |store| {
                let mut plan = Vec::new();
                let mut converged = Vec::new();
                let (mut grow, mut credit) = (0u64, 0u64);
                for frame in &docs {
                    let incoming = frame.rev.clock();
                    let ordering = match store.docs.get(&frame.doc_id) {
                        None => ClockOrdering::Newer,
                        Some((rev, _, _)) => incoming.compare(&rev.clock()),
                    };
                    match ordering {
                        ClockOrdering::Newer => {
                            grow += doc_charge(&frame.doc_id, &frame.rev, &frame.payload);
                            if let Some((rev, payload, _)) = store.docs.get(&frame.doc_id) {
                                credit += doc_charge(&frame.doc_id, rev, payload);
                            }
                            plan.push(frame.clone());
                        }
                        ClockOrdering::Equal => converged.push(frame.doc_id.clone()),
                        ClockOrdering::Older | ClockOrdering::Concurrent => {}
                    }
                }
                Ok((plan, grow, credit, store.generation(), converged))
            })?;
            let reservation = match &ledger {
                Some(ledger) if grow > credit => Some(ledger.reserve(user, grow - credit).await?),
                _ => None,
            };
            let after = self.with(user, |store| {
                for frame in plan {
                    store.log.push(format!("T-mem-{}", store.log.len() + 1));
                    let generation = store.generation();
                    store.docs.insert(
                        frame.doc_id,
                        (frame.rev, frame.payload.to_vec(), generation),
                    );
                }
                if let Some(last) = docs.last() {
                    let position = &last.position;
                    store.sources.insert(
                        source.to_owned(),
                        (
                            position.generation(),
                            position.transaction_id().as_str().to_owned(),
                        ),
                    );
                }
                Ok(store.generation())
            })?;
            if let Some(reservation) = reservation {
                reservation.commit();
            }
            if let Some(ledger) = &ledger
                && credit > grow
            {
                ledger.release(user, credit - grow);
            }
            Ok(AppliedBatch::new((before, after), converged))
        })
    }

    fn record_end<'a>(
        &'a self,
        user: &'a UserId,
        source: &'a str,
        end: ExchangeEnd,
        _ledger: Option<Arc<QuotaLedger>>,
    ) -> BoxFuture<'a, Result<(), Error>> {
        let done = self.with(user, |store| {
            let known = store.sources.get(source).map_or(0, |(g, _)| *g);
            if end.generation > known {
                store
                    .sources
                    .insert(source.to_owned(), (end.generation, end.transaction_id));
            }
            Ok(())
        });
        Box::pin(async move { done })
    }

    fn durable_position<'a>(
        &'a self,
        user: &'a UserId,
        _source: &'a str,
        _ledger: Option<Arc<QuotaLedger>>,
    ) -> BoxFuture<'a, Result<(String, Position), Error>> {
        let position = self.with(user, |store| {
            let (generation, trans_id) = store.position();
            let position = Position::parse(generation, &trans_id)?;
            Ok((store.replica_uid.clone(), position))
        });
        Box::pin(async move { position })
    }

    fn changes_after<'a>(
        &'a self,
        user: &'a UserId,
        after: u64,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<Change>, Error>> {
        let changes = self.with(user, |store| {
            Ok(store
                .changes()
                .into_iter()
                .filter(|c| c.generation > after)
                .take(limit)
                .collect())
        });
        Box::pin(async move { changes })
    }

    fn read_changes<'a>(
        &'a self,
        user: &'a UserId,
        after: u64,
        upto: u64,
        limits: BatchLimits,
        skip: SkipChange,
    ) -> BoxFuture<'a, Result<ChangesChunk, Error>> {
        let chunk = self.with(user, |store| {
            let changes: Vec<Change> = store
                .changes()
                .into_iter()
                .filter(|c| c.generation > after)
                .take(limits.docs.max(1))
                .collect();
            ChangesChunk::gather(after, upto, limits, changes, &skip, |id| {
                Ok(store
                    .docs
                    .get(id)
                    .map(|(rev, payload, _)| (rev.clone(), payload.clone())))
            })
        });
        Box::pin(async move { chunk })
    }
}

/// Quota counts in one map under one lock: `(stored, reserved)` per user,
/// measured from the sources on a user's first load (as the embedded counters).
#[derive(Default)]
pub struct MemoryQuota {
    sources: Mutex<Vec<Arc<dyn UsageSource>>>,
    counts: Mutex<HashMap<UserId, (u64, u64)>>,
}

impl MemoryQuota {
    fn try_add(
        &self,
        user: &UserId,
        bytes: u64,
        limit_bytes: u64,
        reserve: bool,
    ) -> Result<(), BlobError> {
        let mut counts = lock(&self.counts);
        let Some((stored, reserved)) = counts.get_mut(user) else {
            // Not loaded: a reservation always loads first; a charge is skipped.
            return Ok(());
        };
        let charged = *stored + *reserved;
        if charged + bytes > limit_bytes {
            return Err(BlobError::QuotaExceeded {
                used_bytes: charged,
                limit_bytes,
            });
        }
        if reserve {
            *reserved += bytes;
        } else {
            *stored += bytes;
        }
        Ok(())
    }
}

impl QuotaCounters for MemoryQuota {
    fn register_source(&self, source: Arc<dyn UsageSource>) {
        lock(&self.sources).push(source);
    }

    fn load<'a>(&'a self, user: &'a UserId) -> BoxFuture<'a, Result<(), BlobError>> {
        let result = (|| -> Result<(), BlobError> {
            if lock(&self.counts).contains_key(user) {
                return Ok(());
            }
            let mut stored = 0;
            for source in lock(&self.sources).iter() {
                stored += source.measure(user)?;
            }
            lock(&self.counts)
                .entry(user.clone())
                .or_insert((stored, 0));
            Ok(())
        })();
        Box::pin(async move { result })
    }

    fn used(&self, user: &UserId) -> u64 {
        lock(&self.counts)
            .get(user)
            .map_or(0, |(stored, _)| *stored)
    }

    fn try_reserve(&self, user: &UserId, bytes: u64, limit_bytes: u64) -> Result<(), BlobError> {
        self.try_add(user, bytes, limit_bytes, true)
    }

    fn unreserve(&self, user: &UserId, bytes: u64) {
        if let Some((_, reserved)) = lock(&self.counts).get_mut(user) {
            *reserved = reserved.saturating_sub(bytes);
        }
    }

    fn commit(&self, user: &UserId, bytes: u64) {
        if let Some((stored, reserved)) = lock(&self.counts).get_mut(user) {
            *reserved = reserved.saturating_sub(bytes);
            *stored += bytes;
        }
    }

    fn try_charge(&self, user: &UserId, bytes: u64, limit_bytes: u64) -> Result<(), BlobError> {
        self.try_add(user, bytes, limit_bytes, false)
    }

    fn release(&self, user: &UserId, bytes: u64) {
        if let Some((stored, _)) = lock(&self.counts).get_mut(user) {
            *stored = stored.saturating_sub(bytes);
        }
    }
}
