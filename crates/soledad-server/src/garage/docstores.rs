//! Per-user document stores in K2V ([`GarageUserDocStores`]).
//!
//! One K2V partition per user (`<prefix>docs-<uuid>`), holding:
//!
//! | sort key               | value                                              |
//! |------------------------|----------------------------------------------------|
//! | `meta`                 | the store's replica uid (JSON)                     |
//! | `head`                 | the store's position: generation, transaction id, |
//! |                        | the versions its batch superseded (JSON)           |
//! | `log/<gen:016x>`       | one document version's entry: id, rev, transaction |
//! |                        | id, quota charge, superseded generation (JSON)     |
//! | `body/<gen:016x>/<tx>` | that version's payload, as it came (raw bytes)     |
//! | `doc/<hidden id>`      | the document's current rev, generation, charge     |
//! | `src/<replica>`        | the position recorded for a source replica (JSON)  |
//! | `lease`                | the write lease ([`super::lease`])                 |
//!
//! The change feed is the `log/` range read in sort-key (= generation) order:
//! each version of a document is written at a new generation and the version
//! it supersedes is deleted (entry and body), so the range holds each document
//! once, at its latest change, exactly like u1db's "changes since". Entries
//! are small: listing changes never reads a payload, and a response reads the
//! bodies of only the documents it sends. Generations are dense and positions
//! are (generation, transaction id) as for the embedded store, because every
//! write of a user's store happens under that user's lease: the writer reads
//! `head`, decides with u1db's rules against the current `doc/` items, writes
//! the new entries and bodies, then (once all are stored) the `doc/` items
//! and the source position (with the causality tokens of its reads), then
//! `head`, naming the versions the batch superseded, then deletes those.
//! A writer that dies half-way leaves entries or bodies past `head`; the next
//! holder rolls forward the contiguous entries whose bodies are stored (they
//! were decided under the lease) and deletes everything after them, and it
//! deletes again what `head` names as superseded (a writer may die before its
//! deletes). Readers never read past `head`. Should the lease ever be violated
//! (a stalled holder), concurrent values of an item are resolved
//! deterministically (highest generation; an entry with several values is
//! kept only as the one its `doc/` item points at), so a client never
//! receives an older revision after a newer one.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use soledad_protocol::{BatchLimits, ExchangeEnd, RecordSyncInfo, SyncInfo};
use soledad_store::vectorclock::{ClockOrdering, VectorClock};
use soledad_store::{Change, DocId, Position, Rev, StoreError};

use super::error::GarageError;
use super::k2v::{CausalityToken, Item, K2vClient, Page, Range, Write};
use super::lease::Lease;
use crate::blobs::{DOC_ENTRY_OVERHEAD_BYTES, QuotaLedger, UsageSource, UserId};
use crate::error::Error;
use crate::userdb::{AppliedBatch, ChangesChunk, SkipChange, SourceDoc, UserDocStores};

const META: &str = "meta";
const HEAD: &str = "head";
const LOG: &str = "log/";
const BODY: &str = "body/";
const DOC: &str = "doc/";
const SRC: &str = "src/";

/// Entries read per K2V request when following the log.
const LOG_PAGE: u64 = 1000;

/// A batch's `doc/` items are read with one range read of the whole `doc/`
/// prefix, instead of one by one, when the store holds at most this many
/// times as many documents as the batch (it holds at most `head.generation`).
const RANGE_READ_FACTOR: u64 = 4;

fn log_key(generation: u64) -> String {
    format!("{LOG}{generation:016x}")
}

/// The prefix of the bodies written at `generation`.
fn body_prefix(generation: u64) -> String {
    format!("{BODY}{generation:016x}/")
}

fn body_key(generation: u64, transaction_id: &str) -> String {
    format!("{}{transaction_id}", body_prefix(generation))
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

fn body_generation(body_sort_key: &str) -> Option<u64> {
    let (hex, _) = body_sort_key.strip_prefix(BODY)?.split_once('/')?;
    u64::from_str_radix(hex, 16).ok()
}

#[derive(Serialize, Deserialize)]
struct Meta {
    replica_uid: String,
}

#[derive(Serialize, Deserialize, Default, Clone, Debug)]
struct Mark {
    generation: u64,
    transaction_id: String,
    /// The generations the batch that wrote this head superseded: deleted
    /// after `head` is written, and again by the next writer (idempotent), so
    /// a writer dying before its deletes leaves no stale version behind.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    superseded: Vec<u64>,
}

#[derive(Serialize, Deserialize, Clone)]
struct Pointer {
    rev: String,
    generation: u64,
    charge: u64,
}

/// One document version's entry under `log/` (its payload is the body).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
struct Entry {
    id: String,
    rev: String,
    #[serde(rename = "tx")]
    transaction_id: String,
    charge: u64,
    /// The generation of the version this one superseded (0: none).
    #[serde(default)]
    prev: u64,
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

/// The entry of a `log/` item, when it holds exactly one.
fn single_entry(item: &Item) -> Option<Entry> {
    let mut entries = parsed::<Entry>(item).into_iter();
    match (entries.next(), entries.next()) {
        (Some(entry), None) => Some(entry),
        _ => None,
    }
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

/// The ranges that delete the versions at `generations` (entries and bodies).
fn version_ranges(pk: &str, generations: &[u64]) -> Vec<Range> {
    generations
        .iter()
        .flat_map(|g| {
            [
                Range::single(pk, &log_key(*g)),
                Range::prefix(pk, &body_prefix(*g)),
            ]
        })
        .collect()
}

/// Per-user document stores in a Garage cluster's K2V API; see the module
/// documentation for the layout and `docs/scale-out.md` for the guarantees.
/// Holds no state of its own: any number of servers may share the cluster.
#[derive(Clone, Debug)]
pub struct GarageUserDocStores {
    k2v: K2vClient,
    prefix: String,
}

/// Where [`GarageUserDocStores::apply_cut`] stops a batch, as a server
/// killed there would (feature `test-hooks`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
#[cfg_attr(not(feature = "test-hooks"), allow(dead_code))]
pub enum CutBatch {
    /// In the first round: only the first `entries` entries (`log/`) and the
    /// first `bodies` bodies (`body/`) of the new versions are stored.
    InVersions {
        /// Entries stored.
        entries: usize,
        /// Bodies stored.
        bodies: usize,
    },
    /// After the versions, pointers and source position, before `head`.
    BeforeHead,
    /// After `head`, before the superseded versions are deleted.
    BeforeDeletes,
}

/// What a writer read at the start of a write: the store's replica uid, its
/// head (and the head item's token), the source's position item, and the
/// last entry and body keys (past `head` after a writer died).
struct Snapshot {
    replica_uid: String,
    head: Mark,
    head_token: Option<CausalityToken>,
    source: Option<Item>,
    last_log: Option<u64>,
    last_body: Option<u64>,
}

/// A batch to apply, once the lease is taken.
struct Incoming {
    pk: String,
    docs: Vec<SourceDoc>,
    ledger: Option<Arc<QuotaLedger>>,
    cut: Option<CutBatch>,
}

/// A batch's decisions: the versions to write, in generation order.
struct Decided {
    versions: Vec<(u64, Entry, Bytes)>,
    converged: Vec<DocId>,
    superseded: Vec<u64>,
    /// The batch's final pointers, by `doc/` key, with the tokens read.
    pointers: HashMap<String, (Option<Pointer>, Option<CausalityToken>)>,
    grow: u64,
    credit: u64,
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

    /// The ranges of a [`Snapshot`]: meta, head, `source`'s position, the
    /// last entry and (with `bodies`) the last body.
    fn snapshot_ranges(pk: &str, source: &str, bodies: bool) -> Vec<Range> {
        let last = |prefix: &str| Range {
            limit: Some(1),
            reverse: true,
            ..Range::prefix(pk, prefix)
        };
        let mut ranges = vec![
            Range::single(pk, META),
            Range::single(pk, HEAD),
            Range::single(pk, &src_key(source)),
            last(LOG),
        ];
        if bodies {
            ranges.push(last(BODY));
        }
        ranges
    }

    /// The snapshot read by [`snapshot_ranges`](Self::snapshot_ranges);
    /// `None` when the store does not exist.
    fn parse_snapshot(pages: Vec<Page>) -> Option<Snapshot> {
        let mut items = pages.into_iter().map(|p| p.items.into_iter().next());
        let meta = items.next().flatten().map(|(_, item)| item);
        let head = items.next().flatten().map(|(_, item)| item);
        let source = items.next().flatten().map(|(_, item)| item);
        let last_log = items
            .next()
            .flatten()
            .and_then(|(sk, _)| generation_of(&sk));
        let last_body = items
            .next()
            .flatten()
            .and_then(|(sk, _)| body_generation(&sk));
        Some(Snapshot {
            replica_uid: replica_uid(meta.as_ref())?,
            head: latest_mark(head.as_ref()),
            head_token: head.map(|item| item.token),
            source,
            last_log,
            last_body,
        })
    }

    /// Reads a [`Snapshot`] without the last body in one request; `None`
    /// when the store does not exist.
    async fn snapshot(&self, pk: &str, source: &str) -> Result<Option<Snapshot>, GarageError> {
        let pages = self
            .k2v
            .read_batch(&Self::snapshot_ranges(pk, source, false))
            .await?;
        Ok(Self::parse_snapshot(pages))
    }

    /// Takes the lease of `pk` and reads the [`Snapshot`] with it, then
    /// rolls forward what a writer that died half-way left past `head` and
    /// deletes again what the last batch superseded. `None` (the lease
    /// released) when the store does not exist.
    async fn lock(&self, pk: &str, source: &str) -> Result<Option<(Lease, Snapshot)>, GarageError> {
        let ranges = Self::snapshot_ranges(pk, source, true);
        let (lease, pages) = Lease::acquire_reading(&self.k2v, pk, &ranges).await?;
        let Some(mut snapshot) = Self::parse_snapshot(pages) else {
            lease.release(&self.k2v).await;
            return Ok(None);
        };
        match self.recover(pk, &mut snapshot, &lease).await {
            Ok(()) => Ok(Some((lease, snapshot))),
            Err(error) => {
                lease.release(&self.k2v).await;
                Err(error)
            }
        }
    }

    /// What a writer does first under the lease: roll forward, delete again.
    async fn recover(
        &self,
        pk: &str,
        snapshot: &mut Snapshot,
        lease: &Lease,
    ) -> Result<(), GarageError> {
        let head = snapshot.head.generation;
        if snapshot.last_log.is_some_and(|g| g > head)
            || snapshot.last_body.is_some_and(|g| g > head)
        {
            self.roll_forward(pk, snapshot, lease).await?;
        }
        if !snapshot.head.superseded.is_empty() {
            let again = version_ranges(pk, &snapshot.head.superseded);
            if let Err(error) = self.k2v.delete_batch(&again).await {
                tracing::warn!(%error, "deleting superseded document versions failed");
            }
        }
        Ok(())
    }

    /// Adopts the versions written past `head` by a writer that died: the
    /// contiguous entries whose bodies are stored become current (their
    /// `doc/` items are brought up to them), anything after them is deleted
    /// (never acknowledged).
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
        let mut candidates: Vec<(u64, Entry)> = Vec::new();
        let mut expected = after.saturating_add(1);
        for (sk, item) in &found {
            match (generation_of(sk), single_entry(item)) {
                (Some(g), Some(entry)) if g == expected => {
                    candidates.push((g, entry));
                    expected = expected.saturating_add(1);
                }
                _ => break,
            }
        }
        // An entry counts only with its body (written in the same round).
        let keys: Vec<String> = candidates
            .iter()
            .map(|(g, e)| body_key(*g, &e.transaction_id))
            .collect();
        let bodies = self.k2v.read_items(pk, &keys).await?;
        let adopted: Vec<(u64, Entry)> = candidates
            .into_iter()
            .zip(bodies)
            .take_while(|(_, body)| body.as_ref().is_some_and(|b| b.live().next().is_some()))
            .map(|(candidate, _)| candidate)
            .collect();
        let end = adopted.last().map_or(after, |(g, _)| *g);
        tracing::warn!(
            adopted = adopted.len(),
            dropped = found.len().saturating_sub(adopted.len()),
            "rolling forward a document batch left half-written"
        );
        let mut ids: Vec<String> = adopted.iter().map(|(_, e)| doc_key(&e.id)).collect();
        ids.sort();
        ids.dedup();
        let items = self.k2v.read_items(pk, &ids).await?;
        let mut pointers: HashMap<String, (Option<Pointer>, Option<CausalityToken>)> = ids
            .into_iter()
            .zip(items)
            .map(|(key, item)| (key, (latest_pointer(item.as_ref()), item.map(|i| i.token))))
            .collect();
        let mut changed: HashSet<String> = HashSet::new();
        // What the last complete batch superseded is deleted again with the
        // adopted batch's own.
        let mut superseded = snapshot.head.superseded.clone();
        for (generation, entry) in &adopted {
            if entry.prev != 0 {
                superseded.push(entry.prev);
            }
            let key = doc_key(&entry.id);
            let slot = pointers.entry(key.clone()).or_insert((None, None));
            if slot.0.as_ref().is_some_and(|p| p.generation >= *generation) {
                continue;
            }
            slot.0 = Some(Pointer {
                rev: entry.rev.clone(),
                generation: *generation,
                charge: entry.charge,
            });
            changed.insert(key);
        }
        if let Some((_, last)) = adopted.last() {
            let writes = pointer_writes(pk, pointers, |key| changed.contains(key))?;
            let head = Mark {
                generation: end,
                transaction_id: last.transaction_id.clone(),
                superseded: superseded.clone(),
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
        // Everything after the adopted versions, then what they superseded.
        let mut garbage = vec![
            Range {
                start: Some(log_key(end.saturating_add(1))),
                ..Range::prefix(pk, LOG)
            },
            Range {
                start: Some(body_prefix(end.saturating_add(1))),
                ..Range::prefix(pk, BODY)
            },
        ];
        garbage.extend(version_ranges(pk, &superseded));
        self.k2v.delete_batch(&garbage).await?;
        snapshot.last_log = Some(end);
        snapshot.last_body = Some(end);
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

    /// Up to `limit` current entries after generation `after` and up to
    /// `upto`, in generation order, each document once.
    async fn read_log(
        &self,
        pk: &str,
        after: u64,
        upto: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Entry)>, GarageError> {
        let mut out: Vec<(u64, Entry)> = Vec::new();
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
            let mut ambiguous: Vec<(u64, Vec<Entry>)> = Vec::new();
            for (sk, item) in page.items {
                let Some(generation) = generation_of(&sk) else {
                    continue;
                };
                cursor = cursor.max(generation);
                let mut entries = parsed::<Entry>(&item);
                match entries.len() {
                    0 => {}
                    1 => out.extend(entries.pop().map(|e| (generation, e))),
                    _ => ambiguous.push((generation, entries)),
                }
            }
            if !ambiguous.is_empty() {
                out.extend(self.resolve(pk, ambiguous).await?);
                out.sort_by_key(|(g, _)| *g);
            }
            // A version superseded while its deletion is still pending (a
            // writer died before it) is left out for the later one.
            let mut latest: HashMap<String, u64> = HashMap::new();
            for (generation, entry) in &out {
                let at = latest.entry(entry.id.clone()).or_insert(*generation);
                *at = (*at).max(*generation);
            }
            out.retain(|(g, e)| latest.get(&e.id) == Some(g));
            if !more {
                break;
            }
        }
        out.truncate(limit);
        Ok(out)
    }

    /// Of entries with several concurrent values (only a violated lease
    /// writes them), the one each document's `doc/` item points at.
    async fn resolve(
        &self,
        pk: &str,
        ambiguous: Vec<(u64, Vec<Entry>)>,
    ) -> Result<Vec<(u64, Entry)>, GarageError> {
        let mut ids: Vec<String> = ambiguous
            .iter()
            .flat_map(|(_, entries)| entries.iter().map(|e| doc_key(&e.id)))
            .collect();
        ids.sort();
        ids.dedup();
        let items = self.k2v.read_items(pk, &ids).await?;
        let pointers: HashMap<String, Pointer> = ids
            .into_iter()
            .zip(items)
            .filter_map(|(key, item)| Some((key, latest_pointer(item.as_ref())?)))
            .collect();
        Ok(ambiguous
            .into_iter()
            .filter_map(|(generation, entries)| {
                let entry = entries.into_iter().find(|e| {
                    pointers
                        .get(&doc_key(&e.id))
                        .is_some_and(|p| p.generation == generation && p.rev == e.rev)
                })?;
                Some((generation, entry))
            })
            .collect())
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

    /// The current `doc/` items of `keys` (sorted, distinct), with their
    /// tokens: none when the store has no version yet, one range read of
    /// `doc/` when the store is small next to the batch, else one by one.
    async fn read_pointers(
        &self,
        pk: &str,
        keys: &[String],
        head_generation: u64,
    ) -> Result<Vec<Option<Item>>, GarageError> {
        if head_generation == 0 {
            // Pointers are written only once a batch is complete, and a
            // complete batch past `head` was rolled forward: none exists.
            return Ok(vec![None; keys.len()]);
        }
        let batch = u64::try_from(keys.len()).unwrap_or(u64::MAX);
        if head_generation <= batch.saturating_mul(RANGE_READ_FACTOR) {
            let mut all: HashMap<String, Item> = self
                .k2v
                .read_all(Range::prefix(pk, DOC))
                .await?
                .into_iter()
                .collect();
            return Ok(keys.iter().map(|key| all.remove(key)).collect());
        }
        self.k2v.read_items(pk, keys).await
    }

    /// u1db's target rules for `docs` against the current `pointers`, new
    /// versions numbered from `before + 1`.
    fn decide(
        docs: &[SourceDoc],
        before: u64,
        mut pointers: HashMap<String, (Option<Pointer>, Option<CausalityToken>)>,
    ) -> Result<Decided, Error> {
        let mut generation = before;
        let mut versions = Vec::new();
        let mut superseded = Vec::new();
        let mut converged = Vec::new();
        let (mut grow, mut credit) = (0u64, 0u64);
        for frame in docs {
            let key = doc_key(&frame.doc_id);
            let incoming = VectorClock::parse(&frame.rev)?;
            let slot = pointers.entry(key).or_insert((None, None));
            let ordering = match &slot.0 {
                None => ClockOrdering::Newer,
                Some(pointer) => incoming.compare(&VectorClock::parse(&pointer.rev)?),
            };
            match ordering {
                ClockOrdering::Newer => {
                    generation = generation.saturating_add(1);
                    let cost = charge(&frame.doc_id, &frame.rev, &frame.payload);
                    grow = grow.saturating_add(cost);
                    let mut prev = 0;
                    if let Some(old) = &slot.0 {
                        credit = credit.saturating_add(old.charge);
                        superseded.push(old.generation);
                        prev = old.generation;
                    }
                    let entry = Entry {
                        id: frame.doc_id.to_string(),
                        rev: frame.rev.to_string(),
                        transaction_id: format!("T-{}", random_hex(16)?),
                        charge: cost,
                        prev,
                    };
                    versions.push((generation, entry, frame.payload.clone()));
                    slot.0 = Some(Pointer {
                        rev: frame.rev.to_string(),
                        generation,
                        charge: cost,
                    });
                }
                ClockOrdering::Equal => converged.push(frame.doc_id.clone()),
                ClockOrdering::Older | ClockOrdering::Concurrent => {}
            }
        }
        Ok(Decided {
            versions,
            converged,
            superseded,
            pointers,
            grow,
            credit,
        })
    }

    /// Applies `docs` (see [`UserDocStores::apply_from_source`]); `cut`
    /// stops it part-way, as a server killed there would (tests only).
    async fn apply(
        &self,
        user: &UserId,
        source: &str,
        docs: Vec<SourceDoc>,
        ledger: Option<Arc<QuotaLedger>>,
        cut: Option<CutBatch>,
    ) -> Result<AppliedBatch, Error> {
        let pk = self.partition(user);
        let (lease, snapshot) = self
            .lock(&pk, source)
            .await?
            .ok_or(Error::DatabaseDoesNotExist)?;
        let batch = Incoming {
            pk,
            docs,
            ledger,
            cut,
        };
        let result = self
            .apply_locked(user, source, &lease, snapshot, batch)
            .await;
        lease.release(&self.k2v).await;
        result
    }

    /// The body of [`apply`](Self::apply), under the lease.
    async fn apply_locked(
        &self,
        user: &UserId,
        source: &str,
        lease: &Lease,
        snapshot: Snapshot,
        batch: Incoming,
    ) -> Result<AppliedBatch, Error> {
        let Incoming {
            pk,
            docs,
            ledger,
            cut,
        } = batch;
        if source == snapshot.replica_uid {
            return Err(StoreError::InvalidReplicaUid.into());
        }
        let before = snapshot.head.generation;
        let mut ids: Vec<String> = docs.iter().map(|d| doc_key(&d.doc_id)).collect();
        ids.sort();
        ids.dedup();
        let items = self.read_pointers(&pk, &ids, before).await?;
        let current = ids
            .into_iter()
            .zip(items)
            .map(|(key, item)| (key, (latest_pointer(item.as_ref()), item.map(|i| i.token))))
            .collect();
        let decided = Self::decide(&docs, before, current)?;
        let generation = decided.versions.last().map_or(before, |(g, _, _)| *g);
        let reservation = match &ledger {
            Some(ledger) if decided.grow > decided.credit => {
                Some(ledger.reserve(user, decided.grow - decided.credit).await?)
            }
            _ => None,
        };
        // Entries and bodies first (one round: a roll-forward adopts an
        // entry only with its body), then pointers and the source's
        // position, then `head`.
        let mut versions = Vec::with_capacity(decided.versions.len() * 2);
        for (g, entry, payload) in &decided.versions {
            versions.push(Write::put(&pk, log_key(*g), None, json(entry)?));
            versions.push(Write::put(
                &pk,
                body_key(*g, &entry.transaction_id),
                None,
                payload.clone(),
            ));
        }
        // Only the pointers this batch moved.
        let moved: HashSet<String> = decided
            .versions
            .iter()
            .map(|(_, e, _)| doc_key(&e.id))
            .collect();
        let mut writes = pointer_writes(&pk, decided.pointers, |key| moved.contains(key))?;
        if let Some(last) = docs.last() {
            let mark = Mark {
                generation: last.position.generation(),
                transaction_id: last.position.transaction_id().as_str().to_owned(),
                superseded: Vec::new(),
            };
            writes.push(Write::put(
                &pk,
                src_key(source),
                snapshot.source.as_ref().map(|item| item.token.clone()),
                json(&mark)?,
            ));
        }
        if let Some(CutBatch::InVersions { entries, bodies }) = cut {
            // Some of the first round only, as a server killed in it.
            let mut stored = Vec::new();
            let (mut e, mut b) = (0, 0);
            for write in versions {
                let count = if write.sort_key.starts_with(LOG) {
                    &mut e
                } else {
                    &mut b
                };
                let limit = if write.sort_key.starts_with(LOG) {
                    entries
                } else {
                    bodies
                };
                if *count < limit {
                    stored.push(write);
                }
                *count += 1;
            }
            self.k2v.insert_batch(&stored).await?;
            return Err(Error::StorageUnavailable);
        }
        if generation > before {
            lease.check()?;
            self.k2v.insert_batch(&versions).await?;
        }
        lease.check()?;
        self.k2v.insert_batch(&writes).await?;
        if cut == Some(CutBatch::BeforeHead) {
            return Err(Error::StorageUnavailable);
        }
        if let Some((_, last, _)) = decided.versions.last() {
            let head = Mark {
                generation,
                transaction_id: last.transaction_id.clone(),
                superseded: decided.superseded.clone(),
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
            && decided.credit > decided.grow
        {
            ledger.release(user, decided.credit - decided.grow);
        }
        if cut == Some(CutBatch::BeforeDeletes) {
            return Err(Error::StorageUnavailable);
        }
        // The superseded versions are garbage now; `head` names them, so
        // the next writer deletes them again should this fail.
        if !decided.superseded.is_empty()
            && let Err(error) = self
                .k2v
                .delete_batch(&version_ranges(&pk, &decided.superseded))
                .await
        {
            tracing::warn!(%error, "deleting superseded document versions failed");
        }
        Ok(AppliedBatch::new((before, generation), decided.converged))
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

/// The writes of the `pointers` whose key `keep` accepts, each with the
/// token of its read.
fn pointer_writes(
    pk: &str,
    pointers: HashMap<String, (Option<Pointer>, Option<CausalityToken>)>,
    keep: impl Fn(&str) -> bool,
) -> Result<Vec<Write>, GarageError> {
    pointers
        .into_iter()
        .filter(|(key, _)| keep(key))
        .filter_map(|(key, (pointer, token))| Some((key, pointer?, token)))
        .map(|(key, pointer, token)| Ok(Write::put(pk, key, token, json(&pointer)?)))
        .collect()
}

#[cfg(feature = "test-hooks")]
impl GarageUserDocStores {
    /// Applies `docs` like [`UserDocStores::apply_from_source`] but stops
    /// where `cut` says, as a server killed there would, and fails
    /// ([`Error::StorageUnavailable`]); the lease is released (a killed
    /// server's would expire). For tests of what the next writer finds.
    ///
    /// # Errors
    /// [`Error::StorageUnavailable`] once cut; any error of a batch.
    pub async fn apply_cut(
        &self,
        user: &UserId,
        source: &str,
        docs: Vec<SourceDoc>,
        cut: CutBatch,
    ) -> Result<AppliedBatch, Error> {
        self.apply(user, source, docs, None, Some(cut)).await
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
            let snapshot = self
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
                superseded: Vec::new(),
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
            // An older position: its entry is still in the log unless the
            // document changed since (then its transaction id is gone, as
            // the version is; the generation is in range, which is all that
            // can be checked).
            match self.k2v.read_item(&pk, &log_key(generation)).await? {
                Some(item) => {
                    let entries = parsed::<Entry>(&item);
                    if entries.is_empty() || entries.iter().any(|e| e.transaction_id == claimed) {
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
        Box::pin(self.apply(user, source, docs, ledger, None))
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
                superseded: Vec::new(),
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
            let entries = self.read_log(&pk, after, head.generation, limit).await?;
            entries
                .into_iter()
                .map(|(generation, e)| {
                    Ok(Change {
                        doc_id: DocId::parse(&e.id)?,
                        generation,
                        transaction_id: e.transaction_id,
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
            let entries = self.read_log(&pk, after, last, limits.docs.max(1)).await?;
            // Stored entries were parsed when written; a bad one means the
            // cluster's data is damaged, which parsing reports.
            let mut revs: HashMap<DocId, Rev> = HashMap::new();
            let changes: Vec<Change> = entries
                .into_iter()
                .map(|(generation, e)| {
                    let doc_id = DocId::parse(&e.id)?;
                    revs.insert(doc_id.clone(), Rev::parse(&e.rev)?);
                    Ok(Change {
                        doc_id,
                        generation,
                        transaction_id: e.transaction_id,
                    })
                })
                .collect::<Result<_, Error>>()?;
            // Bodies of only what is sent: not past `upto`, not skipped. A
            // body deleted meanwhile (the document changed again) is left
            // out, as `gather` leaves out what it does not find.
            let wanted: Vec<&Change> = changes
                .iter()
                .filter(|c| c.generation <= upto && !skip(c))
                .collect();
            let keys: Vec<String> = wanted
                .iter()
                .map(|c| body_key(c.generation, &c.transaction_id))
                .collect();
            let found = self.k2v.read_items(&pk, &keys).await?;
            let mut bodies: HashMap<DocId, Bytes> = wanted
                .iter()
                .zip(found)
                .filter_map(|(c, item)| Some((c.doc_id.clone(), item?.live().next()?.clone())))
                .collect();
            let chunk = ChangesChunk::gather(after, upto, limits, changes, &skip, |id| {
                let body = bodies.remove(id);
                Ok::<_, Error>(
                    body.zip(revs.remove(id))
                        .map(|(payload, rev)| (rev, payload.to_vec())),
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

    #[test]
    fn entries_round_trip_and_old_ones_read_without_prev() {
        let entry = Entry {
            id: "D-abc".to_owned(),
            rev: "replica:3".to_owned(),
            transaction_id: "T-1f".to_owned(),
            charge: 1234,
            prev: 7,
        };
        let bytes = json(&entry).unwrap();
        let back: Entry = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(back, entry);
        let first: Entry =
            serde_json::from_slice(br#"{"id":"D-x","rev":"r:1","tx":"T-2","charge":9}"#).unwrap();
        assert_eq!(first.prev, 0, "no superseded version");
    }

    #[test]
    fn malformed_entries_are_left_out_not_panics() {
        let item = Item {
            token: CausalityToken::for_tests("ct"),
            values: vec![
                Some(Bytes::from_static(b"not json")),
                Some(Bytes::from_static(br#"{"id":"D-x"}"#)),
                None,
            ],
        };
        assert!(parsed::<Entry>(&item).is_empty());
        assert_eq!(single_entry(&item), None);
    }

    #[test]
    fn log_and_body_keys_sort_as_generations() {
        let keys: Vec<String> = [1u64, 2, 10, 255, 256, u64::MAX]
            .iter()
            .map(|g| log_key(*g))
            .collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
        assert_eq!(generation_of(&log_key(4096)), Some(4096));
        assert_eq!(generation_of("doc/x"), None);
        let bodies: Vec<String> = [1u64, 2, 10, 256]
            .iter()
            .map(|g| body_key(*g, "T-ff"))
            .collect();
        let mut sorted = bodies.clone();
        sorted.sort();
        assert_eq!(bodies, sorted);
        assert_eq!(body_generation(&body_key(4096, "T-1")), Some(4096));
        assert!(body_key(16, "T-1").starts_with(&body_prefix(16)));
        assert!(!body_key(160, "T-1").starts_with(&body_prefix(16)));
        assert_eq!(body_generation("log/0000000000000010"), None);
    }
}
