//! In-memory implementations of the storage traits: the smallest code that
//! honours each contract, to show the seam does not assume SQLite or a
//! filesystem. Not for production (no persistence, one lock per store).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use bytes::Bytes;
use futures_util::StreamExt as _;
use futures_util::future::BoxFuture;
use soledad_server::blobs::{
    BlobBackend, BlobError, BlobId, BlobRead, ByteStream, ENTRY_OVERHEAD_BYTES, Flag, ListQuery,
    Namespace, Order, RangeSpec, Usage, UserId,
};

/// What a live blob costs beyond its bytes in the quota model: its content and its
/// flags, one entry each.
const BLOB_ENTRIES: u64 = 2 * ENTRY_OVERHEAD_BYTES;
use soledad_server::{
    Error, IssuedToken, SharedDoc, SharedDocId, SharedRev, SharedStore, SharedWrite, TokenStore,
    UserRecord,
};

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
