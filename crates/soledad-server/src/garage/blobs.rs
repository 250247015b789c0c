//! Blobs in Garage ([`GarageBlobStore`]): contents are S3 objects, streamed
//! in and out with bounded memory (multipart uploads of [`PART_BYTES`] parts,
//! at most [`PARTS_IN_FLIGHT`] at a time); everything else (state, flags,
//! upload/deletion order, size, which object holds the content) is one K2V
//! item per blob in the user's partition `<prefix>blobs-<uuid>`, sort key
//! `e/<namespace>/<id>`, so listings are one range read.
//!
//! An upload first *claims* the id (an `uploading` entry with an expiry,
//! renewed while the body streams), under the user's blob lease
//! ([`super::lease`]), so of concurrent uploads of one id through any servers
//! exactly one proceeds and the others get `AlreadyExists`. Each upload
//! writes its own object (`…/<id>.<nonce>`), so a loser never touches the
//! winner's bytes; the entry becomes `live`, pointing at the object, only
//! once the object is complete: a blob is visible all at once or not at all.
//! A claim left by a server that died expires after [`CLAIM_TTL`].

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use futures_util::future::BoxFuture;
use futures_util::{StreamExt as _, TryStreamExt as _};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{
    BackoffConfig, GetOptions, GetRange, ObjectStore, ObjectStoreExt as _, PutPayload, RetryConfig,
    WriteMultipart,
};
use serde::{Deserialize, Serialize};

use super::config::GarageConfig;
use super::error::GarageError;
use super::k2v::{Item, K2vClient, Range, Write};
use super::lease::Lease;
use crate::blobs::{
    BlobBackend, BlobError, BlobId, BlobRead, ByteStream, ENTRY_OVERHEAD_BYTES, Flag, ListQuery,
    Namespace, Order, QuotaLedger, RangeSpec, Usage, UsageSource, UserId,
};

/// Size of one part of a multipart upload (and the most a small blob is
/// buffered before the upload turns multipart).
pub const PART_BYTES: usize = 8 << 20;

/// Parts uploaded at the same time by one blob upload: memory per upload is
/// bounded by `PART_BYTES × (PARTS_IN_FLIGHT + 1)`.
pub const PARTS_IN_FLIGHT: usize = 2;

/// How long an upload's claim holds without renewal.
pub const CLAIM_TTL: Duration = Duration::from_secs(60);

/// An upload renews its claim this often.
const CLAIM_RENEW: Duration = Duration::from_secs(15);

/// What a live blob costs beyond its bytes (content and flags, as for the
/// embedded store).
const BLOB_ENTRIES: u64 = 2 * ENTRY_OVERHEAD_BYTES;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn io_error(error: GarageError) -> BlobError {
    BlobError::Io(std::io::Error::other(error))
}

fn random_hex(bytes: usize) -> Result<String, BlobError> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|_| BlobError::Io(std::io::Error::other("no randomness")))?;
    Ok(hex::encode(buf))
}

#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "lowercase")]
enum State {
    Uploading,
    Live,
    Deleted,
}

/// The K2V record of one blob.
#[derive(Serialize, Deserialize, Clone, Debug)]
struct Entry {
    state: State,
    /// The object holding the content (uploading, live).
    #[serde(default)]
    object: String,
    #[serde(default)]
    size: u64,
    #[serde(default)]
    flags: Vec<Flag>,
    /// Upload (live) or deletion (deleted) order: milliseconds since the
    /// epoch × 1000 plus a per-process counter.
    #[serde(default)]
    seq: u64,
    /// The uploading server's instance and the upload's nonce.
    #[serde(default)]
    owner: String,
    #[serde(default)]
    nonce: String,
    /// When an upload claim expires (ms since the epoch).
    #[serde(default)]
    until_ms: u64,
}

/// The entry among concurrent values: the most recent one.
fn current(item: Option<&Item>) -> Option<Entry> {
    item?
        .live()
        .filter_map(|v| serde_json::from_slice::<Entry>(v).ok())
        .max_by_key(|e| (e.seq, e.until_ms))
}

fn encode(entry: &Entry) -> Result<Bytes, BlobError> {
    serde_json::to_vec(entry).map(Bytes::from).map_err(|_| {
        io_error(GarageError::MalformedItem {
            what: "a blob entry",
        })
    })
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

/// What an entry costs against the quota.
fn entry_charge(entry: &Entry) -> u64 {
    match entry.state {
        State::Live => entry.size.saturating_add(BLOB_ENTRIES),
        // A withdrawn claim leaves a deleted entry of order 0: never a blob.
        State::Deleted if entry.seq > 0 => ENTRY_OVERHEAD_BYTES,
        State::Deleted | State::Uploading => 0,
    }
}

struct Inner {
    k2v: K2vClient,
    /// One S3 client per endpoint, tried in order.
    s3: Vec<AmazonS3>,
    prefix: String,
    /// This process's instance (claims name it).
    instance: String,
    /// Uploads of this process in flight (user, namespace, id, nonce).
    active: Mutex<HashSet<(String, String)>>,
    ledger: Arc<QuotaLedger>,
    seq: std::sync::atomic::AtomicU64,
    /// How long a deleted blob's tombstone is kept before a listing purges it.
    deleted_retention: Duration,
}

/// Blobs in a Garage cluster: S3 objects plus K2V entries (module doc).
#[derive(Clone)]
pub struct GarageBlobStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for GarageBlobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GarageBlobStore")
            .field("prefix", &self.inner.prefix)
            .finish_non_exhaustive()
    }
}

/// Removes an upload from the process's active set when it ends, however it
/// ends (so a claim of a dropped upload is known dead at once here).
struct Active {
    inner: Arc<Inner>,
    key: (String, String),
}

impl Drop for Active {
    fn drop(&mut self) {
        self.inner
            .active
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.key);
    }
}

/// Cleans up after an upload that did not publish: aborts its object and
/// gives its claim back (in a task, so it runs even when the upload's future
/// is dropped).
struct Unpublished {
    store: Option<GarageBlobStore>,
    pk: String,
    sort_key: String,
    object: ObjectPath,
    nonce: String,
    previous: Option<Entry>,
}

impl Unpublished {
    fn disarm(&mut self) {
        self.store = None;
    }
}

impl Drop for Unpublished {
    fn drop(&mut self) {
        let Some(store) = self.store.take() else {
            return;
        };
        let (pk, sort_key, object, nonce, previous) = (
            std::mem::take(&mut self.pk),
            std::mem::take(&mut self.sort_key),
            self.object.clone(),
            std::mem::take(&mut self.nonce),
            self.previous.take(),
        );
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                store.withdraw_claim(&pk, &sort_key, &nonce, previous).await;
                store.delete_object(&object).await;
            });
        }
    }
}

impl GarageBlobStore {
    /// A store over `config`'s cluster sharing `k2v`, charging `ledger`.
    ///
    /// # Errors
    /// [`GarageError::Config`] for an unusable S3 endpoint; [`GarageError::S3`].
    pub(crate) fn new(
        k2v: K2vClient,
        config: &GarageConfig,
        ledger: Arc<QuotaLedger>,
        deleted_retention: Duration,
    ) -> Result<GarageBlobStore, GarageError> {
        if config.s3_endpoints.is_empty() {
            return Err(GarageError::Config {
                what: "no S3 endpoint".to_owned(),
            });
        }
        let retry = RetryConfig {
            backoff: BackoffConfig::default(),
            max_retries: 2,
            retry_timeout: Duration::from_secs(20),
        };
        let s3 = config
            .s3_endpoints
            .iter()
            .map(|endpoint| {
                AmazonS3Builder::new()
                    .with_endpoint(endpoint.trim_end_matches('/'))
                    .with_allow_http(true)
                    .with_virtual_hosted_style_request(false)
                    .with_region(&config.region)
                    .with_bucket_name(&config.bucket)
                    .with_access_key_id(&config.key_id)
                    .with_secret_access_key(config.secret_key.expose())
                    .with_retry(retry.clone())
                    .build()
            })
            .collect::<Result<Vec<_>, _>>()?;
        let instance = {
            let mut buf = [0u8; 8];
            getrandom::fill(&mut buf).map_err(|_| GarageError::Config {
                what: "no randomness available".to_owned(),
            })?;
            hex::encode(buf)
        };
        let store = GarageBlobStore {
            inner: Arc::new(Inner {
                k2v,
                s3,
                prefix: config.key_prefix.clone(),
                instance,
                active: Mutex::new(HashSet::new()),
                ledger,
                seq: std::sync::atomic::AtomicU64::new(0),
                deleted_retention,
            }),
        };
        store
            .inner
            .ledger
            .register_source(Arc::new(store.clone()) as Arc<dyn UsageSource>);
        Ok(store)
    }

    /// The quota ledger: share it with every other write path of the server.
    pub fn ledger(&self) -> Arc<QuotaLedger> {
        Arc::clone(&self.inner.ledger)
    }

    fn partition(&self, user: &UserId) -> String {
        format!("{}blobs-{}", self.inner.prefix, user.as_str())
    }

    fn object_path(&self, user: &UserId, ns: &Namespace, id: &BlobId, nonce: &str) -> ObjectPath {
        ObjectPath::from(format!(
            "{}blobs/{}/{}/{}.{nonce}",
            self.inner.prefix,
            user.as_str(),
            ns.as_str(),
            id.as_str()
        ))
    }

    fn next_seq(&self) -> u64 {
        let counter = self
            .inner
            .seq
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            % 1000;
        now_ms().saturating_mul(1000).saturating_add(counter)
    }

    fn is_dead_claim(&self, entry: &Entry) -> bool {
        if entry.state != State::Uploading {
            return false;
        }
        if entry.until_ms <= now_ms() {
            return true;
        }
        entry.owner == self.inner.instance
            && !self
                .inner
                .active
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .contains(&(entry.object.clone(), entry.nonce.clone()))
    }

    async fn entry(&self, pk: &str, sort_key: &str) -> Result<Option<(Entry, Item)>, BlobError> {
        let item = self
            .inner
            .k2v
            .read_item(pk, sort_key)
            .await
            .map_err(io_error)?;
        Ok(item.and_then(|item| current(Some(&item)).map(|entry| (entry, item))))
    }

    async fn live_entry(&self, pk: &str, sort_key: &str) -> Result<(Entry, Item), BlobError> {
        match self.entry(pk, sort_key).await? {
            Some((entry, item)) if entry.state == State::Live => Ok((entry, item)),
            _ => Err(BlobError::NotFound),
        }
    }

    /// Runs `write` under the user's blob lease.
    async fn locked<T>(
        &self,
        pk: &str,
        write: impl AsyncFnOnce(&Lease) -> Result<T, BlobError>,
    ) -> Result<T, BlobError> {
        let lease = Lease::acquire(&self.inner.k2v, pk)
            .await
            .map_err(io_error)?;
        let result = write(&lease).await;
        lease.release(&self.inner.k2v).await;
        result
    }

    async fn withdraw_claim(&self, pk: &str, sort_key: &str, nonce: &str, previous: Option<Entry>) {
        let done = self
            .locked(pk, async |lease| {
                let Some((entry, item)) = self.entry(pk, sort_key).await? else {
                    return Ok(());
                };
                if entry.state != State::Uploading || entry.nonce != nonce {
                    return Ok(());
                }
                lease.check().map_err(io_error)?;
                let restore = match previous {
                    Some(previous) => encode(&previous)?,
                    // A deleted entry without object or order: not listed.
                    None => encode(&Entry {
                        state: State::Deleted,
                        object: String::new(),
                        size: 0,
                        flags: Vec::new(),
                        seq: 0,
                        owner: String::new(),
                        nonce: String::new(),
                        until_ms: 0,
                    })?,
                };
                self.inner
                    .k2v
                    .insert_item(pk, sort_key, Some(&item.token), restore)
                    .await
                    .map_err(io_error)
            })
            .await;
        if let Err(error) = done {
            tracing::warn!(%error, "withdrawing a blob upload claim failed; it will expire");
        }
    }

    async fn delete_object(&self, object: &ObjectPath) {
        for s3 in &self.inner.s3 {
            match s3.delete(object).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => return,
                Err(error) => tracing::debug!(%error, "deleting a blob object failed"),
            }
        }
        tracing::warn!("a blob object could not be deleted (garbage left in the bucket)");
    }

    /// Claims `id` for an upload: fails when the blob exists or another
    /// upload of it holds an unexpired claim.
    async fn claim(
        &self,
        pk: &str,
        sort_key: &str,
        object: &ObjectPath,
        nonce: &str,
    ) -> Result<(Option<Entry>, Item), BlobError> {
        self.locked(pk, async |lease| {
            let found = self.entry(pk, sort_key).await?;
            let previous = match &found {
                Some((entry, _)) if entry.state == State::Live => {
                    return Err(BlobError::AlreadyExists);
                }
                Some((entry, _))
                    if entry.state == State::Uploading && !self.is_dead_claim(entry) =>
                {
                    return Err(BlobError::AlreadyExists);
                }
                Some((entry, _)) if entry.state == State::Deleted && entry.seq > 0 => {
                    Some(entry.clone())
                }
                _ => None,
            };
            let claim = Entry {
                state: State::Uploading,
                object: object.to_string(),
                size: 0,
                flags: Vec::new(),
                seq: 0,
                owner: self.inner.instance.clone(),
                nonce: nonce.to_owned(),
                until_ms: now_ms()
                    .saturating_add(u64::try_from(CLAIM_TTL.as_millis()).unwrap_or(u64::MAX)),
            };
            lease.check().map_err(io_error)?;
            self.inner
                .k2v
                .insert_item(
                    pk,
                    sort_key,
                    found.as_ref().map(|(_, item)| &item.token),
                    encode(&claim)?,
                )
                .await
                .map_err(io_error)?;
            let (_, item) = self
                .entry(pk, sort_key)
                .await?
                .ok_or(BlobError::Io(std::io::Error::other("a claim vanished")))?;
            Ok((previous, item))
        })
        .await
    }

    /// Renews this upload's claim (it must still be ours).
    async fn renew(&self, pk: &str, sort_key: &str, nonce: &str) -> Result<(), BlobError> {
        let (mut entry, item) = self
            .entry(pk, sort_key)
            .await?
            .ok_or(BlobError::AlreadyExists)?;
        if entry.state != State::Uploading || entry.nonce != nonce {
            return Err(BlobError::AlreadyExists);
        }
        entry.until_ms =
            now_ms().saturating_add(u64::try_from(CLAIM_TTL.as_millis()).unwrap_or(u64::MAX));
        self.inner
            .k2v
            .insert_item(pk, sort_key, Some(&item.token), encode(&entry)?)
            .await
            .map_err(io_error)
    }

    /// Streams `body` into `object`; returns its length.
    #[allow(clippy::too_many_arguments)]
    async fn upload(
        &self,
        pk: &str,
        sort_key: &str,
        nonce: &str,
        object: &ObjectPath,
        mut body: ByteStream,
        content_length: Option<u64>,
        reservation: &mut crate::blobs::Reservation,
    ) -> Result<u64, BlobError> {
        let mut buffer = BytesMut::new();
        let mut multipart: Option<WriteMultipart> = None;
        let mut total: u64 = 0;
        let mut renewed = Instant::now();
        let result: Result<(), BlobError> = async {
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|_| BlobError::BodyInterrupted)?;
                total = total.saturating_add(u64::try_from(chunk.len()).unwrap_or(u64::MAX));
                if content_length.is_some_and(|announced| total > announced) {
                    return Err(BlobError::BodyInterrupted);
                }
                let wanted = total.saturating_add(BLOB_ENTRIES);
                if wanted > reservation.bytes() {
                    reservation.grow(wanted - reservation.bytes())?;
                }
                if renewed.elapsed() >= CLAIM_RENEW {
                    self.renew(pk, sort_key, nonce).await?;
                    renewed = Instant::now();
                }
                match &mut multipart {
                    Some(write) => {
                        write
                            .wait_for_capacity(PARTS_IN_FLIGHT)
                            .await
                            .map_err(|e| io_error(e.into()))?;
                        write.put(chunk);
                    }
                    None => {
                        buffer.extend_from_slice(&chunk);
                        if buffer.len() >= PART_BYTES {
                            let upload = self.put_multipart(object).await?;
                            let mut write = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
                            write.put(std::mem::take(&mut buffer).freeze());
                            multipart = Some(write);
                        }
                    }
                }
            }
            if content_length.is_some_and(|announced| total != announced) {
                return Err(BlobError::BodyInterrupted);
            }
            Ok(())
        }
        .await;
        match (result, multipart) {
            (Err(error), Some(write)) => {
                let _ = write.abort().await;
                Err(error)
            }
            (Err(error), None) => Err(error),
            (Ok(()), Some(write)) => {
                write.finish().await.map_err(|e| io_error(e.into()))?;
                Ok(total)
            }
            (Ok(()), None) => {
                // One PUT, failing over between the nodes.
                let payload = PutPayload::from(buffer.freeze());
                let mut last = None;
                for s3 in &self.inner.s3 {
                    match s3.put(object, payload.clone()).await {
                        Ok(_) => return Ok(total),
                        Err(error) => last = Some(error),
                    }
                }
                Err(io_error(match last {
                    Some(error) => error.into(),
                    None => GarageError::Config {
                        what: "no S3 endpoint".to_owned(),
                    },
                }))
            }
        }
    }

    async fn put_multipart(
        &self,
        object: &ObjectPath,
    ) -> Result<Box<dyn object_store::MultipartUpload>, BlobError> {
        let mut last = None;
        for s3 in &self.inner.s3 {
            match s3.put_multipart(object).await {
                Ok(upload) => return Ok(upload),
                Err(error) => last = Some(error),
            }
        }
        Err(io_error(match last {
            Some(error) => error.into(),
            None => GarageError::Config {
                what: "no S3 endpoint".to_owned(),
            },
        }))
    }

    async fn put_blob(
        &self,
        user: &UserId,
        ns: &Namespace,
        id: &BlobId,
        body: ByteStream,
        content_length: Option<u64>,
        initial_flags: &[Flag],
    ) -> Result<u64, BlobError> {
        let ledger = &self.inner.ledger;
        ledger.ensure_loaded(user).await?;
        let mut reservation = ledger
            .reserve(
                user,
                content_length.unwrap_or(0).saturating_add(BLOB_ENTRIES),
            )
            .await?;
        let pk = self.partition(user);
        let sort_key = format!("e/{}/{}", ns.as_str(), id.as_str());
        let nonce = random_hex(12)?;
        let object = self.object_path(user, ns, id, &nonce);
        let active_key = (object.to_string(), nonce.clone());
        {
            let mut active = self
                .inner
                .active
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            active.insert(active_key.clone());
        }
        let _active = Active {
            inner: Arc::clone(&self.inner),
            key: active_key,
        };
        let (previous, _) = self.claim(&pk, &sort_key, &object, &nonce).await?;
        let mut cleanup = Unpublished {
            store: Some(self.clone()),
            pk: pk.clone(),
            sort_key: sort_key.clone(),
            object: object.clone(),
            nonce: nonce.clone(),
            previous: previous.clone(),
        };
        let size = self
            .upload(
                &pk,
                &sort_key,
                &nonce,
                &object,
                body,
                content_length,
                &mut reservation,
            )
            .await?;
        reservation.shrink_to(size.saturating_add(BLOB_ENTRIES));
        let flags = dedup(initial_flags);
        let seq = self.next_seq();
        self.locked(&pk, async |lease| {
            let (entry, item) = self
                .entry(&pk, &sort_key)
                .await?
                .ok_or(BlobError::AlreadyExists)?;
            if entry.state != State::Uploading || entry.nonce != nonce {
                return Err(BlobError::AlreadyExists);
            }
            let live = Entry {
                state: State::Live,
                object: object.to_string(),
                size,
                flags,
                seq,
                owner: String::new(),
                nonce: nonce.clone(),
                until_ms: 0,
            };
            lease.check().map_err(io_error)?;
            self.inner
                .k2v
                .insert_item(&pk, &sort_key, Some(&item.token), encode(&live)?)
                .await
                .map_err(io_error)
        })
        .await?;
        cleanup.disarm();
        reservation.commit();
        if previous.is_some() {
            // The tombstone is gone.
            ledger.release(user, ENTRY_OVERHEAD_BYTES);
        }
        Ok(size)
    }

    async fn open(
        &self,
        object: &ObjectPath,
        options: GetOptions,
    ) -> Result<object_store::GetResult, BlobError> {
        let mut last = None;
        for s3 in &self.inner.s3 {
            match s3.get_opts(object, options.clone()).await {
                Ok(result) => return Ok(result),
                Err(object_store::Error::NotFound { .. }) => return Err(BlobError::NotFound),
                Err(error) => last = Some(error),
            }
        }
        Err(io_error(match last {
            Some(error) => error.into(),
            None => GarageError::Config {
                what: "no S3 endpoint".to_owned(),
            },
        }))
    }

    async fn entries(
        &self,
        user: &UserId,
        prefix: &str,
    ) -> Result<Vec<(String, Entry)>, BlobError> {
        let pk = self.partition(user);
        let items = self
            .inner
            .k2v
            .read_all(Range::prefix(&pk, prefix))
            .await
            .map_err(io_error)?;
        Ok(items
            .into_iter()
            .filter_map(|(sk, item)| {
                let entry = current(Some(&item))?;
                let id = sk.strip_prefix(prefix)?.to_owned();
                Some((id, entry))
            })
            .collect())
    }

    /// Whether `entry` is a tombstone (or a withdrawn claim) older than the
    /// retention.
    fn is_expired(&self, entry: &Entry) -> bool {
        let retention = u64::try_from(self.inner.deleted_retention.as_millis()).unwrap_or(u64::MAX);
        // The order of a deletion is its time in ms × 1000 (plus a counter).
        entry.state == State::Deleted
            && now_ms()
                .checked_sub(retention)
                .is_some_and(|cutoff| entry.seq / 1000 <= cutoff)
    }

    /// Removes the expired tombstones among `entries` (of the namespace
    /// `prefix` names) under the user's blob lease and credits their quota;
    /// returns the entries left. Best effort: on failure the tombstones stay
    /// until a later listing.
    async fn purge_expired(
        &self,
        user: &UserId,
        prefix: &str,
        entries: Vec<(String, Entry)>,
    ) -> Vec<(String, Entry)> {
        if !entries.iter().any(|(_, entry)| self.is_expired(entry)) {
            return entries;
        }
        let pk = self.partition(user);
        let expired: Vec<String> = entries
            .iter()
            .filter(|(_, entry)| self.is_expired(entry))
            .map(|(id, _)| format!("{prefix}{id}"))
            .collect();
        let purged = self
            .locked(&pk, async |lease| {
                // A put or delete may have changed them since the listing.
                let items = self
                    .inner
                    .k2v
                    .read_items(&pk, &expired)
                    .await
                    .map_err(io_error)?;
                let mut writes = Vec::new();
                let mut credit = 0u64;
                let mut gone = HashSet::new();
                for (sort_key, item) in expired.iter().zip(items) {
                    let Some(item) = item else { continue };
                    let Some(entry) = current(Some(&item)) else {
                        continue;
                    };
                    if !self.is_expired(&entry) {
                        continue;
                    }
                    credit = credit.saturating_add(entry_charge(&entry));
                    gone.insert(sort_key.clone());
                    writes.push(Write {
                        partition: pk.clone(),
                        sort_key: sort_key.clone(),
                        token: Some(item.token),
                        value: None,
                    });
                }
                lease.check().map_err(io_error)?;
                self.inner
                    .k2v
                    .insert_batch(&writes)
                    .await
                    .map_err(io_error)?;
                Ok((gone, credit))
            })
            .await;
        match purged {
            Ok((gone, credit)) => {
                self.inner.ledger.release(user, credit);
                entries
                    .into_iter()
                    .filter(|(id, _)| !gone.contains(&format!("{prefix}{id}")))
                    .collect()
            }
            Err(error) => {
                tracing::warn!(%error, "purging expired blob tombstones failed; a later listing retries");
                entries
            }
        }
    }
}

impl BlobBackend for GarageBlobStore {
    fn put<'a>(
        &'a self,
        user: &'a UserId,
        ns: &'a Namespace,
        id: &'a BlobId,
        body: ByteStream,
        content_length: Option<u64>,
        initial_flags: &'a [Flag],
    ) -> BoxFuture<'a, Result<u64, BlobError>> {
        Box::pin(self.put_blob(user, ns, id, body, content_length, initial_flags))
    }

    fn get<'a>(
        &'a self,
        user: &'a UserId,
        ns: &'a Namespace,
        id: &'a BlobId,
        range: Option<RangeSpec>,
    ) -> BoxFuture<'a, Result<BlobRead, BlobError>> {
        Box::pin(async move {
            let pk = self.partition(user);
            let sort_key = format!("e/{}/{}", ns.as_str(), id.as_str());
            let (entry, _) = self.live_entry(&pk, &sort_key).await?;
            let total_size = entry.size;
            let (start, len) = match range {
                None => (0, total_size),
                Some(range) => range.resolve(total_size)?,
            };
            let object = ObjectPath::from(entry.object.as_str());
            if len == 0 {
                return Ok(BlobRead {
                    total_size,
                    start,
                    len,
                    body: Box::pin(futures_util::stream::empty()),
                });
            }
            let options = GetOptions {
                range: Some(GetRange::Bounded(start..start.saturating_add(len))),
                ..GetOptions::default()
            };
            let result = self.open(&object, options).await?;
            let body = result
                .into_stream()
                .map_err(|error| std::io::Error::other(error.to_string()));
            Ok(BlobRead {
                total_size,
                start,
                len,
                body: Box::pin(body),
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
            self.inner.ledger.ensure_loaded(user).await?;
            let pk = self.partition(user);
            let sort_key = format!("e/{}/{}", ns.as_str(), id.as_str());
            let seq = self.next_seq();
            let removed = self
                .locked(&pk, async |lease| {
                    let (entry, item) = self.live_entry(&pk, &sort_key).await?;
                    let tombstone = Entry {
                        state: State::Deleted,
                        object: String::new(),
                        size: 0,
                        flags: Vec::new(),
                        seq,
                        owner: String::new(),
                        nonce: String::new(),
                        until_ms: 0,
                    };
                    lease.check().map_err(io_error)?;
                    self.inner
                        .k2v
                        .insert_item(&pk, &sort_key, Some(&item.token), encode(&tombstone)?)
                        .await
                        .map_err(io_error)?;
                    Ok(entry)
                })
                .await?;
            self.inner.ledger.release(
                user,
                entry_charge(&removed).saturating_sub(ENTRY_OVERHEAD_BYTES),
            );
            self.delete_object(&ObjectPath::from(removed.object.as_str()))
                .await;
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
            let pk = self.partition(user);
            let sort_key = format!("e/{}/{}", ns.as_str(), id.as_str());
            Ok(self.live_entry(&pk, &sort_key).await?.0.flags)
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
            let pk = self.partition(user);
            let sort_key = format!("e/{}/{}", ns.as_str(), id.as_str());
            self.locked(&pk, async |lease| {
                let (mut entry, item) = self.live_entry(&pk, &sort_key).await?;
                entry.flags = dedup(&flags);
                lease.check().map_err(io_error)?;
                self.inner
                    .k2v
                    .insert_item(&pk, &sort_key, Some(&item.token), encode(&entry)?)
                    .await
                    .map_err(io_error)
            })
            .await
        })
    }

    fn list<'a>(
        &'a self,
        user: &'a UserId,
        query: &'a ListQuery,
    ) -> BoxFuture<'a, Result<Vec<String>, BlobError>> {
        Box::pin(async move {
            let prefix = format!("e/{}/", query.namespace.as_str());
            // Loaded first, so the purge's credit is not counted twice.
            self.inner.ledger.ensure_loaded(user).await?;
            let entries = self.entries(user, &prefix).await?;
            let entries = self.purge_expired(user, &prefix, entries).await;
            let mut found: Vec<(String, u64)> = entries
                .into_iter()
                .filter(|(_, entry)| {
                    if query.deleted {
                        entry.state == State::Deleted
                            && entry.seq > 0
                            && query.filter_flag.is_none()
                    } else {
                        entry.state == State::Live
                            && query.filter_flag.is_none_or(|f| entry.flags.contains(&f))
                    }
                })
                .map(|(id, entry)| (id, entry.seq))
                .collect();
            match query.order {
                None => {}
                Some(Order::DateAscending) => found.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0))),
                Some(Order::DateDescending) => {
                    found.sort_by(|a, b| (b.1, &a.0).cmp(&(a.1, &b.0)));
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
            Ok(u64::try_from(ids.len()).unwrap_or(u64::MAX))
        })
    }

    fn usage<'a>(&'a self, user: &'a UserId) -> BoxFuture<'a, Result<Usage, BlobError>> {
        Box::pin(self.inner.ledger.usage(user))
    }
}

impl UsageSource for GarageBlobStore {
    fn measure(&self, user: &UserId) -> std::io::Result<u64> {
        let handle = tokio::runtime::Handle::try_current().map_err(std::io::Error::other)?;
        let entries = handle
            .block_on(self.entries(user, "e/"))
            .map_err(std::io::Error::other)?;
        Ok(entries
            .iter()
            .map(|(_, entry)| entry_charge(entry))
            .fold(0u64, u64::saturating_add))
    }
}
