//! Per-user document stores in K2V ([`GarageUserDocStores`]).
//!
//! One K2V partition per user (`<prefix>docs-<uuid>`), holding:
//!
//! | sort key          | value                                                   |
//! |-------------------|---------------------------------------------------------|
//! | `meta`            | the store's replica uid (JSON)                          |
//! | `head`            | the store's position: generation, transaction id (JSON) |
//! | `log/<gen:016x>`  | one document version: id, rev, transaction id, payload  |
//! | `doc/<hidden id>` | the document's current rev, generation, quota charge    |
//! | `src/<replica>`   | the position recorded for a source replica (JSON)       |
//! | `lease`           | the write lease ([`super::lease`])                      |
//!
//! The change feed is the `log/` range read in sort-key (= generation) order:
//! each version of a document is written at a new generation and the version
//! it supersedes is deleted, so the range holds each document once, at its
//! latest change, exactly like u1db's "changes since". Generations are dense
//! and positions are (generation, transaction id) as for the embedded store,
//! because every write of a user's store happens under that user's lease:
//! the writer reads `head`, decides with u1db's rules against the current
//! `doc/` items, writes the new `log/` versions, then the `doc/` items and the
//! source position (with the causality tokens of its reads), then `head`.
//! A writer that dies half-way leaves `log/` versions past `head`; the next
//! holder rolls them forward (they were decided under the lease) before
//! writing, and readers never read past `head`. Should the lease ever be
//! violated (a stalled holder), concurrent values of an item are resolved
//! deterministically (highest generation), and a `log/` version whose `doc/`
//! item points elsewhere is skipped, so a client never receives an older
//! revision after a newer one.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::{BufMut as _, Bytes, BytesMut};
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use soledad_protocol::{BatchLimits, ExchangeEnd, RecordSyncInfo, SyncInfo};
use soledad_store::vectorclock::{ClockOrdering, VectorClock};
use soledad_store::{Change, DocId, Position, Rev, StoreError};

use super::error::GarageError;
use super::k2v::{CausalityToken, Item, K2vClient, Range, Write};
use super::lease::Lease;
use crate::blobs::{DOC_ENTRY_OVERHEAD_BYTES, QuotaLedger, UsageSource, UserId};
use crate::error::Error;
use crate::userdb::{AppliedBatch, ChangesChunk, SkipChange, SourceDoc, UserDocStores};

const META: &str = "meta";
const HEAD: &str = "head";
const LOG: &str = "log/";
const DOC: &str = "doc/";
const SRC: &str = "src/";

/// Versions read per K2V request when following the log.
const LOG_PAGE: u64 = 500;

/// Magic and version of a stored log version.
const VERSION_MAGIC: [u8; 2] = [b'L', 1];

fn log_key(generation: u64) -> String {
    format!("{LOG}{generation:016x}")
}

fn doc_key(id: &str) -> String {
    format!("{DOC}{id}")
}

fn src_key(source: &str) -> String {
    format!("{SRC}{source}")
}

fn generation_of(log_sort_key: &str) -> Option<u64> {
    let hex = log_sort_key.strip_prefix(LOG)?;
    u64::from_str_radix(hex, 16).ok()
}

#[derive(Serialize, Deserialize)]
struct Meta {
    replica_uid: String,
}

#[derive(Serialize, Deserialize, Default, Clone)]
struct Mark {
    generation: u64,
    transaction_id: String,
}

#[derive(Serialize, Deserialize, Clone)]
struct Pointer {
    rev: String,
    generation: u64,
    charge: u64,
}

/// One document version as stored under `log/`.
#[derive(Debug, Clone)]
struct Version {
    id: String,
    rev: String,
    transaction_id: String,
    payload: Bytes,
}

impl Version {
    fn encode(&self) -> Result<Bytes, GarageError> {
        let mut out = BytesMut::with_capacity(
            8 + self.id.len() + self.rev.len() + self.transaction_id.len() + self.payload.len(),
        );
        out.put_slice(&VERSION_MAGIC);
        for field in [&self.id, &self.rev, &self.transaction_id] {
            let len = u16::try_from(field.len()).map_err(|_| GarageError::MalformedItem {
                what: "a document field longer than 64 KiB",
            })?;
            out.put_u16(len);
            out.put_slice(field.as_bytes());
        }
        out.put_slice(&self.payload);
        Ok(out.freeze())
    }

    fn decode(bytes: &Bytes) -> Result<Version, GarageError> {
        const BAD: GarageError = GarageError::MalformedItem {
            what: "a document version",
        };
        let mut rest = bytes.clone();
        let magic = rest.split_to(VERSION_MAGIC.len().min(rest.len()));
        if magic.as_ref() != VERSION_MAGIC {
            return Err(BAD);
        }
        let mut fields = Vec::with_capacity(3);
        for _ in 0..3 {
            if rest.len() < 2 {
                return Err(BAD);
            }
            let len_bytes = rest.split_to(2);
            let len = usize::from(u16::from_be_bytes([
                len_bytes.first().copied().unwrap_or(0),
                len_bytes.get(1).copied().unwrap_or(0),
            ]));
            if rest.len() < len {
                return Err(BAD);
            }
            let field = rest.split_to(len);
            fields.push(String::from_utf8(field.to_vec()).map_err(|_| BAD)?);
        }
        let mut fields = fields.into_iter();
        let (Some(id), Some(rev), Some(transaction_id)) =
            (fields.next(), fields.next(), fields.next())
        else {
            return Err(BAD);
        };
        Ok(Version {
            id,
            rev,
            transaction_id,
            payload: rest,
        })
    }
}

fn json<T: Serialize>(value: &T) -> Result<Bytes, GarageError> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|_| GarageError::MalformedItem { what: "a record" })
}

/// The values of `item` that parse as `T`.
fn parsed<T: for<'de> Deserialize<'de>>(item: &Item) -> Vec<T> {
    item.live()
        .filter_map(|v| serde_json::from_slice(v).ok())
        .collect()
}

/// The mark of highest generation among concurrent values.
fn latest_mark(item: Option<&Item>) -> Mark {
    item.map(parsed::<Mark>)
        .unwrap_or_default()
        .into_iter()
        .max_by_key(|m| m.generation)
        .unwrap_or_default()
}

/// The pointer of highest generation among concurrent values.
fn latest_pointer(item: Option<&Item>) -> Option<Pointer> {
    item.map(parsed::<Pointer>)
        .unwrap_or_default()
        .into_iter()
        .max_by_key(|p| p.generation)
}

/// The replica uid (the smallest, should `create` ever have raced).
fn replica_uid(item: Option<&Item>) -> Option<String> {
    item.map(parsed::<Meta>)
        .unwrap_or_default()
        .into_iter()
        .map(|m| m.replica_uid)
        .min()
}

fn random_hex(bytes: usize) -> Result<String, GarageError> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|_| GarageError::Config {
        what: "no randomness available".to_owned(),
    })?;
    Ok(hex::encode(buf))
}

fn charge(id: &str, rev: &str, payload: &[u8]) -> u64 {
    u64::try_from(id.len() + rev.len() + payload.len())
        .unwrap_or(u64::MAX)
        .saturating_add(DOC_ENTRY_OVERHEAD_BYTES)
}

/// Per-user document stores in a Garage cluster's K2V API; see the module
/// documentation for the layout and `docs/scale-out.md` for the guarantees.
/// Holds no state of its own: any number of servers may share the cluster.
#[derive(Clone, Debug)]
pub struct GarageUserDocStores {
    k2v: K2vClient,
    prefix: String,
}

/// What a writer read at the start of a write: the store's replica uid, its
/// head (and the head item's token).
struct Snapshot {
    replica_uid: String,
    head: Mark,
    head_token: Option<CausalityToken>,
    source: Option<Item>,
}

impl GarageUserDocStores {
    pub(crate) fn new(k2v: K2vClient, prefix: &str) -> GarageUserDocStores {
        GarageUserDocStores {
            k2v,
            prefix: prefix.to_owned(),
        }
    }

    fn partition(&self, user: &UserId) -> String {
        format!("{}docs-{}", self.prefix, user.as_str())
    }

    /// Reads meta, head, the last log version and `source`'s position in one
    /// request; `None` when the store does not exist.
    async fn snapshot(
        &self,
        pk: &str,
        source: &str,
    ) -> Result<Option<(Snapshot, Option<u64>)>, GarageError> {
        let ranges = [
            Range::single(pk, META),
            Range::single(pk, HEAD),
            Range {
                limit: Some(1),
                reverse: true,
                ..Range::prefix(pk, LOG)
            },
            Range::single(pk, &src_key(source)),
        ];
        let pages = self.k2v.read_batch(&ranges).await?;
        let mut items = pages.into_iter().map(|p| p.items.into_iter().next());
        let meta = items.next().flatten().map(|(_, item)| item);
        let head = items.next().flatten().map(|(_, item)| item);
        let last_log = items
            .next()
            .flatten()
            .and_then(|(sk, _)| generation_of(&sk));
        let source = items.next().flatten().map(|(_, item)| item);
        let Some(replica_uid) = replica_uid(meta.as_ref()) else {
            return Ok(None);
        };
        Ok(Some((
            Snapshot {
                replica_uid,
                head: latest_mark(head.as_ref()),
                head_token: head.map(|item| item.token),
                source,
            },
            last_log,
        )))
    }

    /// Like [`snapshot`](Self::snapshot) under the lease, after rolling
    /// forward what a writer that died half-way left past `head`.
    async fn locked_snapshot(
        &self,
        pk: &str,
        source: &str,
        lease: &Lease,
    ) -> Result<Option<Snapshot>, GarageError> {
        let Some((mut snapshot, last_log)) = self.snapshot(pk, source).await? else {
            return Ok(None);
        };
        if last_log.is_some_and(|last| last > snapshot.head.generation) {
            self.roll_forward(pk, &mut snapshot, lease).await?;
        }
        Ok(Some(snapshot))
    }

    /// Adopts the versions written past `head` by a writer that died: the
    /// contiguous ones become current (their `doc/` items are brought up to
    /// them), anything after a gap is deleted (never acknowledged).
    async fn roll_forward(
        &self,
        pk: &str,
        snapshot: &mut Snapshot,
        lease: &Lease,
    ) -> Result<(), GarageError> {
        let after = snapshot.head.generation;
        let found = self
            .k2v
            .read_all(Range {
                start: Some(log_key(after.saturating_add(1))),
                ..Range::prefix(pk, LOG)
            })
            .await?;
        let mut adopted: Vec<(u64, Version)> = Vec::new();
        let mut orphans = Vec::new();
        let mut expected = after.saturating_add(1);
        for (sk, item) in found {
            let generation = generation_of(&sk);
            let version = item.live().next().map(Version::decode).transpose()?;
            match (generation, version) {
                (Some(g), Some(v)) if g == expected && orphans.is_empty() => {
                    adopted.push((g, v));
                    expected = expected.saturating_add(1);
                }
                _ => orphans.push(Range::single(pk, &sk)),
            }
        }
        tracing::warn!(
            adopted = adopted.len(),
            dropped = orphans.len(),
            "rolling forward a document batch left half-written"
        );
        let ids: Vec<String> = adopted.iter().map(|(_, v)| doc_key(&v.id)).collect();
        let pointers = self.k2v.read_items(pk, &ids).await?;
        let mut writes = Vec::new();
        let mut superseded = Vec::new();
        for ((generation, version), item) in adopted.iter().zip(pointers) {
            let current = latest_pointer(item.as_ref());
            if current
                .as_ref()
                .is_some_and(|p| p.generation >= *generation)
            {
                continue;
            }
            if let Some(old) = &current {
                superseded.push(Range::single(pk, &log_key(old.generation)));
            }
            writes.push(Write::put(
                pk,
                doc_key(&version.id),
                item.map(|i| i.token),
                json(&Pointer {
                    rev: version.rev.clone(),
                    generation: *generation,
                    charge: charge(&version.id, &version.rev, &version.payload),
                })?,
            ));
        }
        if let Some((generation, version)) = adopted.last() {
            let head = Mark {
                generation: *generation,
                transaction_id: version.transaction_id.clone(),
            };
            lease.check()?;
            self.k2v.insert_batch(&writes).await?;
            lease.check()?;
            self.k2v
                .insert_item(pk, HEAD, snapshot.head_token.as_ref(), json(&head)?)
                .await?;
            let head_item = self.k2v.read_item(pk, HEAD).await?;
            snapshot.head = latest_mark(head_item.as_ref());
            snapshot.head_token = head_item.map(|item| item.token);
        }
        superseded.extend(orphans);
        self.k2v.delete_batch(&superseded).await?;
        Ok(())
    }

    /// Runs `write` under `user`'s lease, releasing it whatever happens.
    async fn with_lease<T>(
        &self,
        pk: &str,
        write: impl AsyncFnOnce(&Lease) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let lease = Lease::acquire(&self.k2v, pk).await?;
        let result = write(&lease).await;
        lease.release(&self.k2v).await;
        result
    }

    /// Up to `limit` current versions after generation `after` and up to
    /// `upto`, in generation order, skipping versions superseded meanwhile.
    async fn read_log(
        &self,
        pk: &str,
        after: u64,
        upto: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Version)>, GarageError> {
        let mut out: Vec<(u64, Version)> = Vec::new();
        let mut cursor = after;
        while out.len() < limit && cursor < upto {
            let want = u64::try_from(limit - out.len()).unwrap_or(LOG_PAGE);
            let page = self
                .k2v
                .read_batch(&[Range {
                    start: Some(log_key(cursor.saturating_add(1))),
                    end: Some(log_key(upto.saturating_add(1))),
                    limit: Some(want.min(LOG_PAGE)),
                    ..Range::prefix(pk, LOG)
                }])
                .await?
                .pop()
                .unwrap_or_default();
            let more = page.next_start.is_some();
            let mut found = Vec::new();
            for (sk, item) in page.items {
                let Some(generation) = generation_of(&sk) else {
                    continue;
                };
                cursor = cursor.max(generation);
                for value in item.live() {
                    found.push((generation, Version::decode(value)?));
                }
            }
            // Keep a version only if its document still points at it.
            let ids: Vec<String> = found.iter().map(|(_, v)| doc_key(&v.id)).collect();
            let pointers = self.k2v.read_items(pk, &ids).await?;
            for ((generation, version), pointer) in found.into_iter().zip(pointers) {
                let current = latest_pointer(pointer.as_ref());
                if current.is_some_and(|p| p.generation == generation && p.rev == version.rev) {
                    out.push((generation, version));
                }
            }
            if !more {
                break;
            }
        }
        out.truncate(limit);
        Ok(out)
    }

    async fn head(&self, pk: &str) -> Result<Option<(String, Mark)>, GarageError> {
        let ranges = [Range::single(pk, META), Range::single(pk, HEAD)];
        let pages = self.k2v.read_batch(&ranges).await?;
        let mut items = pages.into_iter().map(|p| p.items.into_iter().next());
        let meta = items.next().flatten().map(|(_, item)| item);
        let head = items.next().flatten().map(|(_, item)| item);
        Ok(replica_uid(meta.as_ref()).map(|uid| (uid, latest_mark(head.as_ref()))))
    }

    async fn create_store(&self, user: &UserId) -> Result<bool, Error> {
        let pk = self.partition(user);
        if self.k2v.read_item(&pk, META).await?.is_some() {
            return Ok(false);
        }
        self.with_lease(&pk, async |lease| {
            let meta = self.k2v.read_item(&pk, META).await?;
            if replica_uid(meta.as_ref()).is_some() {
                return Ok(false);
            }
            let uid = format!("garage-{}", random_hex(16)?);
            lease.check()?;
            self.k2v
                .insert_item(
                    &pk,
                    META,
                    meta.as_ref().map(|m| &m.token),
                    json(&Meta { replica_uid: uid })?,
                )
                .await?;
            Ok(true)
        })
        .await
    }

    /// Bytes `user`'s documents are charged (the sum kept in their `doc/`
    /// items).
    async fn stored_charge(&self, user: &UserId) -> Result<u64, GarageError> {
        let pk = self.partition(user);
        let items = self.k2v.read_all(Range::prefix(&pk, DOC)).await?;
        Ok(items
            .iter()
            .filter_map(|(_, item)| latest_pointer(Some(item)))
            .fold(0u64, |sum, p| sum.saturating_add(p.charge)))
    }

    async fn apply(
        &self,
        user: &UserId,
        source: &str,
        docs: Vec<SourceDoc>,
        ledger: Option<Arc<QuotaLedger>>,
    ) -> Result<AppliedBatch, Error> {
        let pk = self.partition(user);
        if self.head(&pk).await?.is_none() {
            return Err(Error::DatabaseDoesNotExist);
        }
        self.with_lease(&pk, async |lease| {
            let snapshot = self
                .locked_snapshot(&pk, source, lease)
                .await?
                .ok_or(Error::DatabaseDoesNotExist)?;
            if source == snapshot.replica_uid {
                return Err(StoreError::InvalidReplicaUid.into());
            }
            let mut ids: Vec<String> = docs.iter().map(|d| doc_key(&d.doc_id)).collect();
            ids.sort();
            ids.dedup();
            let items = self.k2v.read_items(&pk, &ids).await?;
            // Current state per document: (rev, generation, charge, token).
            let mut current: HashMap<String, (Option<Pointer>, Option<CausalityToken>)> = ids
                .iter()
                .zip(items)
                .map(|(key, item)| {
                    let pointer = latest_pointer(item.as_ref());
                    (key.clone(), (pointer, item.map(|i| i.token)))
                })
                .collect();
            let before = snapshot.head.generation;
            let mut generation = before;
            let mut versions: Vec<Write> = Vec::new();
            let mut superseded: Vec<Range> = Vec::new();
            let mut converged = Vec::new();
            let (mut grow, mut credit) = (0u64, 0u64);
            let mut last_transaction = snapshot.head.transaction_id.clone();
            for frame in &docs {
                let key = doc_key(&frame.doc_id);
                let incoming = VectorClock::parse(&frame.rev)?;
                let entry = current.entry(key).or_insert((None, None));
                let ordering = match &entry.0 {
                    None => ClockOrdering::Newer,
                    Some(pointer) => incoming.compare(&VectorClock::parse(&pointer.rev)?),
                };
                match ordering {
                    ClockOrdering::Newer => {
                        generation = generation.saturating_add(1);
                        let transaction_id = format!("T-{}", random_hex(16)?);
                        let cost = charge(&frame.doc_id, &frame.rev, &frame.payload);
                        grow = grow.saturating_add(cost);
                        if let Some(old) = &entry.0 {
                            credit = credit.saturating_add(old.charge);
                            superseded.push(Range::single(&pk, &log_key(old.generation)));
                        }
                        let version = Version {
                            id: frame.doc_id.to_string(),
                            rev: frame.rev.to_string(),
                            transaction_id: transaction_id.clone(),
                            payload: frame.payload.clone(),
                        };
                        versions.push(Write::put(
                            &pk,
                            log_key(generation),
                            None,
                            version.encode()?,
                        ));
                        entry.0 = Some(Pointer {
                            rev: frame.rev.to_string(),
                            generation,
                            charge: cost,
                        });
                        last_transaction = transaction_id;
                    }
                    ClockOrdering::Equal => converged.push(frame.doc_id.clone()),
                    ClockOrdering::Older | ClockOrdering::Concurrent => {}
                }
            }
            let reservation = match &ledger {
                Some(ledger) if grow > credit => Some(ledger.reserve(user, grow - credit).await?),
                _ => None,
            };
            let mut writes: Vec<Write> = current
                .into_iter()
                .filter_map(|(key, (pointer, token))| {
                    let pointer = pointer?;
                    (pointer.generation > before).then_some((key, pointer, token))
                })
                .map(|(key, pointer, token)| Ok(Write::put(&pk, key, token, json(&pointer)?)))
                .collect::<Result<_, GarageError>>()?;
            if let Some(last) = docs.last() {
                let mark = Mark {
                    generation: last.position.generation(),
                    transaction_id: last.position.transaction_id().as_str().to_owned(),
                };
                writes.push(Write::put(
                    &pk,
                    src_key(source),
                    snapshot.source.as_ref().map(|item| item.token.clone()),
                    json(&mark)?,
                ));
            }
            if generation > before {
                lease.check()?;
                self.k2v.insert_batch(&versions).await?;
            }
            lease.check()?;
            self.k2v.insert_batch(&writes).await?;
            if generation > before {
                let head = Mark {
                    generation,
                    transaction_id: last_transaction,
                };
                lease.check()?;
                self.k2v
                    .insert_item(&pk, HEAD, snapshot.head_token.as_ref(), json(&head)?)
                    .await?;
            }
            if let Some(reservation) = reservation {
                reservation.commit();
            }
            if let Some(ledger) = &ledger
                && credit > grow
            {
                ledger.release(user, credit - grow);
            }
            // The superseded versions are garbage now; readers skip them
            // anyway, so a failure here only leaves garbage behind.
            if let Err(error) = self.k2v.delete_batch(&superseded).await {
                tracing::warn!(%error, "deleting superseded document versions failed");
            }
            Ok(AppliedBatch::new((before, generation), converged))
        })
        .await
    }

    async fn record_source(
        &self,
        user: &UserId,
        source: &str,
        mark: Mark,
        only_forward: bool,
    ) -> Result<(), Error> {
        let pk = self.partition(user);
        let (uid, _) = self.head(&pk).await?.ok_or(Error::DatabaseDoesNotExist)?;
        if source == uid {
            return Err(StoreError::InvalidReplicaUid.into());
        }
        let key = src_key(source);
        let item = self.k2v.read_item(&pk, &key).await?;
        let known = latest_mark(item.as_ref());
        if only_forward && mark.generation <= known.generation {
            return Ok(());
        }
        self.k2v
            .insert_item(&pk, &key, item.as_ref().map(|i| &i.token), json(&mark)?)
            .await?;
        Ok(())
    }
}

impl UserDocStores for GarageUserDocStores {
    fn create<'a>(&'a self, user: &'a UserId) -> BoxFuture<'a, Result<bool, Error>> {
        Box::pin(self.create_store(user))
    }

    fn exists<'a>(&'a self, user: &'a UserId) -> BoxFuture<'a, Result<bool, Error>> {
        Box::pin(async move {
            let pk = self.partition(user);
            Ok(self.head(&pk).await?.is_some())
        })
    }

    fn sync_info<'a>(
        &'a self,
        user: &'a UserId,
        source: &'a str,
    ) -> BoxFuture<'a, Result<SyncInfo, Error>> {
        Box::pin(async move {
            let pk = self.partition(user);
            let (snapshot, _) = self
                .snapshot(&pk, source)
                .await?
                .ok_or(Error::DatabaseDoesNotExist)?;
            let source_mark = latest_mark(snapshot.source.as_ref());
            Ok(SyncInfo {
                target_replica_uid: snapshot.replica_uid,
                target_replica_generation: snapshot.head.generation,
                target_replica_transaction_id: snapshot.head.transaction_id,
                source_replica_uid: source.to_owned(),
                source_replica_generation: source_mark.generation,
                source_transaction_id: source_mark.transaction_id,
            })
        })
    }

    fn record_position<'a>(
        &'a self,
        user: &'a UserId,
        source: &'a str,
        position: RecordSyncInfo,
        _ledger: Option<Arc<QuotaLedger>>,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let mark = Mark {
                generation: position.generation,
                transaction_id: position.transaction_id,
            };
            self.record_source(user, source, mark, false).await
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
            if ensure {
                self.create_store(user).await?;
            }
            let pk = self.partition(user);
            let (uid, head) = self.head(&pk).await?.ok_or(Error::DatabaseDoesNotExist)?;
            if source == uid {
                return Err(StoreError::InvalidReplicaUid.into());
            }
            let generation = known.generation();
            if generation == 0 {
                return Ok(());
            }
            if generation > head.generation {
                return Err(StoreError::InvalidGeneration.into());
            }
            let claimed = known.transaction_id().as_str();
            if generation == head.generation {
                return if claimed == head.transaction_id {
                    Ok(())
                } else {
                    Err(StoreError::InvalidTransactionId.into())
                };
            }
            // An older position: its version is still in the log unless the
            // document changed since (then its transaction id is gone, as
            // the version is; the generation is in range, which is all that
            // can be checked).
            match self.k2v.read_item(&pk, &log_key(generation)).await? {
                Some(item) => {
                    let mut versions = item.live().map(Version::decode);
                    let matches =
                        versions.any(|v| v.is_ok_and(|v| v.transaction_id.as_str() == claimed));
                    if matches || item.live().next().is_none() {
                        Ok(())
                    } else {
                        Err(StoreError::InvalidTransactionId.into())
                    }
                }
                None => Ok(()),
            }
        })
    }

    fn apply_from_source<'a>(
        &'a self,
        user: &'a UserId,
        source: &'a str,
        docs: Vec<SourceDoc>,
        ledger: Option<Arc<QuotaLedger>>,
    ) -> BoxFuture<'a, Result<AppliedBatch, Error>> {
        Box::pin(self.apply(user, source, docs, ledger))
    }

    fn record_end<'a>(
        &'a self,
        user: &'a UserId,
        source: &'a str,
        end: ExchangeEnd,
        _ledger: Option<Arc<QuotaLedger>>,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let mark = Mark {
                generation: end.generation,
                transaction_id: end.transaction_id,
            };
            self.record_source(user, source, mark, true).await
        })
    }

    fn durable_position<'a>(
        &'a self,
        user: &'a UserId,
        _source: &'a str,
        _ledger: Option<Arc<QuotaLedger>>,
    ) -> BoxFuture<'a, Result<(String, Position), Error>> {
        Box::pin(async move {
            // Every K2V write was acknowledged by a quorum of nodes: what
            // `head` names is durable.
            let pk = self.partition(user);
            let (uid, head) = self.head(&pk).await?.ok_or(Error::DatabaseDoesNotExist)?;
            let position = Position::parse(head.generation, &head.transaction_id)?;
            Ok((uid, position))
        })
    }

    fn changes_after<'a>(
        &'a self,
        user: &'a UserId,
        after: u64,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<Change>, Error>> {
        Box::pin(async move {
            let pk = self.partition(user);
            let (_, head) = self.head(&pk).await?.ok_or(Error::DatabaseDoesNotExist)?;
            let versions = self.read_log(&pk, after, head.generation, limit).await?;
            versions
                .into_iter()
                .map(|(generation, v)| {
                    Ok(Change {
                        doc_id: DocId::parse(&v.id)?,
                        generation,
                        transaction_id: v.transaction_id,
                    })
                })
                .collect()
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
            let pk = self.partition(user);
            let (_, head) = self.head(&pk).await?.ok_or(Error::DatabaseDoesNotExist)?;
            // One past `upto` so that `gather` sees where the range ends.
            let last = head.generation.min(upto.saturating_add(1));
            let versions = self.read_log(&pk, after, last, limits.docs.max(1)).await?;
            // Stored versions were parsed when written; a bad one means the
            // cluster's data is damaged, which parsing reports.
            let mut payloads: HashMap<DocId, (Rev, Bytes)> = HashMap::new();
            let changes: Vec<Change> = versions
                .into_iter()
                .map(|(generation, v)| {
                    let doc_id = DocId::parse(&v.id)?;
                    payloads.insert(doc_id.clone(), (Rev::parse(&v.rev)?, v.payload));
                    Ok(Change {
                        doc_id,
                        generation,
                        transaction_id: v.transaction_id,
                    })
                })
                .collect::<Result<_, Error>>()?;
            let chunk = ChangesChunk::gather(after, upto, limits, changes, &skip, |id| {
                Ok::<_, Error>(
                    payloads
                        .get(id)
                        .map(|(rev, payload)| (rev.clone(), payload.to_vec())),
                )
            })?;
            Ok(chunk)
        })
    }
}

impl UsageSource for GarageUserDocStores {
    fn measure(&self, user: &UserId) -> std::io::Result<u64> {
        // Called on the blocking pool, inside the runtime.
        let handle = tokio::runtime::Handle::try_current().map_err(std::io::Error::other)?;
        handle
            .block_on(self.stored_charge(user))
            .map_err(std::io::Error::other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(payload: &'static [u8]) -> Version {
        Version {
            id: "D-abc".to_owned(),
            rev: "replica:3".to_owned(),
            transaction_id: "T-1f".to_owned(),
            payload: Bytes::from_static(payload),
        }
    }

    #[test]
    fn versions_round_trip() {
        for payload in [&b""[..], b"sealed envelope bytes"] {
            let encoded = version(payload).encode().unwrap();
            let decoded = Version::decode(&encoded).unwrap();
            assert_eq!(decoded.id, "D-abc");
            assert_eq!(decoded.rev, "replica:3");
            assert_eq!(decoded.transaction_id, "T-1f");
            assert_eq!(decoded.payload.as_ref(), payload);
        }
    }

    #[test]
    fn malformed_versions_are_errors_not_panics() {
        let encoded = version(b"payload").encode().unwrap();
        // Every truncation inside the header, a wrong magic, and no bytes.
        for cut in 0..12 {
            let short = encoded.slice(..cut.min(encoded.len()));
            assert!(Version::decode(&short).is_err(), "cut at {cut}");
        }
        let mut wrong = encoded.to_vec();
        wrong[0] = b'X';
        assert!(Version::decode(&Bytes::from(wrong)).is_err());
        let mut bad_len = encoded.to_vec();
        bad_len[2] = 0xff;
        assert!(Version::decode(&Bytes::from(bad_len)).is_err());
    }

    #[test]
    fn log_keys_sort_as_generations() {
        let keys: Vec<String> = [1u64, 2, 10, 255, 256, u64::MAX]
            .iter()
            .map(|g| log_key(*g))
            .collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
        assert_eq!(generation_of(&log_key(4096)), Some(4096));
        assert_eq!(generation_of("doc/x"), None);
    }
}
