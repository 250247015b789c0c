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
//! | `src/<replica>`        | the position recorded for a source replica (JSON)  |
//! | `lease`                | the write lease ([`super::lease`])                 |
//!
//! The change feed is the `log/` range read in sort-key (= generation) order:
//! each version of a document is written at a new generation and the version
//! it supersedes is deleted (entry and body), so the range holds each document
//! once, at its latest change, exactly like u1db's "changes since". Entries
//! are small: listing changes never reads a payload, and a response reads the
//! bodies of only the documents it sends. The entries are also the index of
//! the current documents: a writer keeps it in memory ([`Indexes`]) and
//! brings it up to date from the entries written since it last saw the store
//! (by other servers), or from all of them the first time.
//!
//! Generations are dense and positions are (generation, transaction id) as
//! for the embedded store, because every write of a user's store happens
//! under that user's lease: the writer reads `head` (with the lease), decides
//! with u1db's rules against the current documents, writes the new entries
//! and bodies, then (once all are stored) `head`, naming the versions the
//! batch superseded, with the source's position, then deletes those
//! versions. A writer that dies half-way leaves entries and bodies past
//! `head`; the next holder, finding an entry past `head`, rolls forward the
//! contiguous entries whose bodies are stored (they were decided under the
//! lease) and deletes everything after them (a body stored without any
//! entry past `head`, only possible for a body alone in its request, stays
//! as garbage: its key holds its version's random transaction id, so nothing
//! ever reads it), and it deletes again what `head` names as superseded (a writer
//! may die before its deletes). Readers never read past `head`, and leave
//! out a version whose document comes again later in what they read (its
//! deletion pending). Should the lease ever be violated (a stalled holder),
//! concurrent values of an item are resolved deterministically (highest
//! generation; of an entry's values, per document the newest revision by
//! u1db's clocks), so a client never receives an older revision after a
//! newer one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

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
const SRC: &str = "src/";

/// Entries read per K2V request when following the log.
const LOG_PAGE: u64 = 1000;

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
    indexes: Arc<Indexes>,
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
/// last entry's generation (past `head` after a writer died).
struct Snapshot {
    replica_uid: String,
    head: Mark,
    head_token: Option<CausalityToken>,
    source: Option<Item>,
    last_log: Option<u64>,
}

/// The current documents of a store (id → rev, generation, charge) at a
/// position (`mark`: generation, transaction id).
struct Index {
    mark: (u64, String),
    docs: HashMap<String, Pointer>,
}

/// Documents indexed by one process, in all stores: beyond, the least
/// recently used stores' indexes are dropped (~200 bytes a document).
const MAX_INDEXED_DOCS: usize = 200_000;

/// This process's [`Index`] of each store it wrote, kept between batches so
/// a writer reads only the log written since (by other servers) instead of
/// the batch's documents one by one. Only a lease holder takes and puts a
/// store's index, so one task at a time uses it; it is only a cache: a writer
/// checks it against `head` and brings it up to date from the log.
#[derive(Default)]
struct Indexes {
    inner: Mutex<IndexesInner>,
}

#[derive(Default)]
struct IndexesInner {
    stores: HashMap<String, (Index, u64)>,
    docs: usize,
    tick: u64,
}

impl Indexes {
    /// Takes `pk`'s index out (a lease holder's, until it puts it back).
    fn take(&self, pk: &str) -> Option<Index> {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let (index, _) = inner.stores.remove(pk)?;
        inner.docs = inner.docs.saturating_sub(index.docs.len());
        Some(index)
    }

    /// Keeps `pk`'s index, dropping the least recently used ones beyond
    /// [`MAX_INDEXED_DOCS`].
    fn put(&self, pk: String, index: Index) {
        if index.docs.len() > MAX_INDEXED_DOCS {
            return;
        }
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.tick = inner.tick.wrapping_add(1);
        inner.docs = inner.docs.saturating_add(index.docs.len());
        let tick = inner.tick;
        if let Some((old, _)) = inner.stores.insert(pk, (index, tick)) {
            inner.docs = inner.docs.saturating_sub(old.docs.len());
        }
        while inner.docs > MAX_INDEXED_DOCS {
            let oldest = inner
                .stores
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(pk, _)| pk.clone());
            let Some(oldest) = oldest else {
                break;
            };
            if let Some((dropped, _)) = inner.stores.remove(&oldest) {
                inner.docs = inner.docs.saturating_sub(dropped.docs.len());
            }
        }
    }
}

impl std::fmt::Debug for Indexes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Indexes").finish_non_exhaustive()
    }
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
    /// The batch's documents as they are after it, by id.
    pointers: HashMap<String, Option<Pointer>>,
    grow: u64,
    credit: u64,
}

impl GarageUserDocStores {
    pub(crate) fn new(k2v: K2vClient, prefix: &str) -> GarageUserDocStores {
        GarageUserDocStores {
            k2v,
            prefix: prefix.to_owned(),
            indexes: Arc::new(Indexes::default()),
        }
    }

    fn partition(&self, user: &UserId) -> String {
        format!("{}docs-{}", self.prefix, user.as_str())
    }

    /// The ranges of a [`Snapshot`]: meta, head, `source`'s position, the
    /// last entry.
    fn snapshot_ranges(pk: &str, source: &str) -> Vec<Range> {
        vec![
            Range::single(pk, META),
            Range::single(pk, HEAD),
            Range::single(pk, &src_key(source)),
            Range {
                limit: Some(1),
                reverse: true,
                ..Range::prefix(pk, LOG)
            },
        ]
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
        Some(Snapshot {
            replica_uid: replica_uid(meta.as_ref())?,
            head: latest_mark(head.as_ref()),
            head_token: head.map(|item| item.token),
            source,
            last_log,
        })
    }

    /// Reads a [`Snapshot`] in one request; `None` when the store does not
    /// exist.
    async fn snapshot(&self, pk: &str, source: &str) -> Result<Option<Snapshot>, GarageError> {
        let pages = self
            .k2v
            .read_batch(&Self::snapshot_ranges(pk, source))
            .await?;
        Ok(Self::parse_snapshot(pages))
    }

    /// Takes the lease of `pk` and reads the [`Snapshot`] with it, then
    /// rolls forward what a writer that died half-way left past `head` and
    /// deletes again what the last batch superseded. `None` (the lease
    /// released) when the store does not exist.
    async fn lock(&self, pk: &str, source: &str) -> Result<Option<(Lease, Snapshot)>, GarageError> {
        let ranges = Self::snapshot_ranges(pk, source);
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
        if snapshot.last_log.is_some_and(|g| g > head) {
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
    /// contiguous entries whose bodies are stored become current (`head` is
    /// moved past them), anything after them is deleted (never
    /// acknowledged).
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
        // What the last complete batch superseded is deleted again with the
        // adopted batch's own.
        let mut superseded = snapshot.head.superseded.clone();
        superseded.extend(adopted.iter().map(|(_, e)| e.prev).filter(|g| *g != 0));
        if let Some((_, last)) = adopted.last() {
            let head = Mark {
                generation: end,
                transaction_id: last.transaction_id.clone(),
                superseded: superseded.clone(),
            };
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
            for (sk, item) in page.items {
                let Some(generation) = generation_of(&sk) else {
                    continue;
                };
                cursor = cursor.max(generation);
                let entries = Self::resolve(parsed::<Entry>(&item));
                out.extend(entries.into_iter().map(|e| (generation, e)));
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

    /// Of an entry with several concurrent values (only a violated lease
    /// writes them): per document, the newest revision (by u1db's clocks;
    /// of concurrent ones, the highest transaction id), deterministically.
    fn resolve(entries: Vec<Entry>) -> Vec<Entry> {
        let mut best: HashMap<String, Entry> = HashMap::new();
        for entry in entries {
            let keep = match best.get(&entry.id) {
                None => true,
                Some(known) => {
                    let ordering = VectorClock::parse(&entry.rev)
                        .ok()
                        .zip(VectorClock::parse(&known.rev).ok())
                        .map(|(new, old)| new.compare(&old));
                    match ordering {
                        Some(ClockOrdering::Newer) => true,
                        Some(ClockOrdering::Older) => false,
                        _ => entry.transaction_id > known.transaction_id,
                    }
                }
            };
            if keep {
                best.insert(entry.id.clone(), entry);
            }
        }
        let mut out: Vec<Entry> = best.into_values().collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
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

    /// Bytes `user`'s documents are charged (the sum kept in their current
    /// entries).
    async fn stored_charge(&self, user: &UserId) -> Result<u64, GarageError> {
        let pk = self.partition(user);
        let Some((_, head)) = self.head(&pk).await? else {
            return Ok(0);
        };
        let index = self
            .read_index(&pk, 0, head.generation, HashMap::new())
            .await?;
        Ok(index
            .values()
            .fold(0u64, |sum, p| sum.saturating_add(p.charge)))
    }

    /// `docs` brought from generation `after` up to `upto` by the entries in
    /// between (each document at its latest entry): the current documents
    /// at `upto` when `docs` were those at `after` (or `after` is 0). Exact
    /// under the lease; without it, exact for every document not changed
    /// after `upto`.
    async fn read_index(
        &self,
        pk: &str,
        after: u64,
        upto: u64,
        mut docs: HashMap<String, Pointer>,
    ) -> Result<HashMap<String, Pointer>, GarageError> {
        if upto <= after {
            return Ok(docs);
        }
        let found = self
            .k2v
            .read_all(Range {
                start: Some(log_key(after.saturating_add(1))),
                end: Some(log_key(upto.saturating_add(1))),
                ..Range::prefix(pk, LOG)
            })
            .await?;
        for (sk, item) in found {
            let Some(generation) = generation_of(&sk) else {
                continue;
            };
            for entry in Self::resolve(parsed::<Entry>(&item)) {
                docs.insert(
                    entry.id,
                    Pointer {
                        rev: entry.rev,
                        generation,
                        charge: entry.charge,
                    },
                );
            }
        }
        Ok(docs)
    }

    /// The current documents of `pk` at `head` (under the lease): this
    /// process's index when it is at `head`, else brought up to it from the
    /// log (from where it was, or from the start).
    async fn index(&self, pk: &str, head: &Mark) -> Result<Index, GarageError> {
        let cached = self.indexes.take(pk);
        let (from, docs) = match cached {
            Some(index) if index.mark == (head.generation, head.transaction_id.clone()) => {
                return Ok(index);
            }
            Some(index) if index.mark.0 < head.generation => (index.mark.0, index.docs),
            _ => (0, HashMap::new()),
        };
        let docs = self.read_index(pk, from, head.generation, docs).await?;
        Ok(Index {
            mark: (head.generation, head.transaction_id.clone()),
            docs,
        })
    }

    /// u1db's target rules for `docs` against the current documents
    /// (`index`), new versions numbered from `before + 1`.
    fn decide(docs: &[SourceDoc], before: u64, index: &Index) -> Result<Decided, Error> {
        let mut pointers: HashMap<String, Option<Pointer>> = HashMap::new();
        let mut generation = before;
        let mut versions = Vec::new();
        let mut superseded = Vec::new();
        let mut converged = Vec::new();
        let (mut grow, mut credit) = (0u64, 0u64);
        for frame in docs {
            let incoming = VectorClock::parse(&frame.rev)?;
            let slot = pointers
                .entry(frame.doc_id.to_string())
                .or_insert_with(|| index.docs.get(frame.doc_id.as_str()).cloned());
            let ordering = match &slot {
                None => ClockOrdering::Newer,
                Some(pointer) => incoming.compare(&VectorClock::parse(&pointer.rev)?),
            };
            match ordering {
                ClockOrdering::Newer => {
                    generation = generation.saturating_add(1);
                    let cost = charge(&frame.doc_id, &frame.rev, &frame.payload);
                    grow = grow.saturating_add(cost);
                    let mut prev = 0;
                    if let Some(old) = &slot {
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
                    *slot = Some(Pointer {
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
        let index_key = pk.clone();
        let cut_here = cut.is_some();
        let batch = Incoming {
            pk,
            docs,
            ledger,
            cut,
        };
        let result = match self.index(&batch.pk, &snapshot.head).await {
            Ok(mut index) => {
                let result = self
                    .apply_locked(user, source, &lease, snapshot, batch, &mut index)
                    .await;
                self.indexes.put(index_key, index);
                result
            }
            Err(error) => Err(error.into()),
        };
        if cut_here {
            lease.release(&self.k2v).await;
        } else {
            // The next batch of this sync (through this server) takes it
            // again without a request.
            lease.park(&self.k2v);
        }
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
        index: &mut Index,
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
        let decided = Self::decide(&docs, before, index)?;
        let generation = decided.versions.last().map_or(before, |(g, _, _)| *g);
        let reservation = match &ledger {
            Some(ledger) if decided.grow > decided.credit => {
                Some(ledger.reserve(user, decided.grow - decided.credit).await?)
            }
            _ => None,
        };
        // Entries and bodies first (one round: a roll-forward adopts an
        // entry only with its body), then `head` and the source's position
        // (one request: either alone is consistent too, as the batch is
        // complete by then).
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
        let head = decided.versions.last().map(|(_, last, _)| Mark {
            generation,
            transaction_id: last.transaction_id.clone(),
            superseded: decided.superseded.clone(),
        });
        let mut last_round = Vec::new();
        if let Some(head) = &head {
            last_round.push(Write::put(
                &pk,
                HEAD,
                snapshot.head_token.clone(),
                json(head)?,
            ));
        }
        if let Some(last) = docs.last() {
            let mark = Mark {
                generation: last.position.generation(),
                transaction_id: last.position.transaction_id().as_str().to_owned(),
                superseded: Vec::new(),
            };
            last_round.push(Write::put(
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
        if cut == Some(CutBatch::BeforeHead) {
            return Err(Error::StorageUnavailable);
        }
        lease.check()?;
        self.k2v.insert_batch(&last_round).await?;
        if let Some(head) = head {
            // The index follows the store only once `head` is written.
            for (id, pointer) in decided.pointers {
                match pointer {
                    Some(pointer) => index.docs.insert(id, pointer),
                    None => index.docs.remove(&id),
                };
            }
            index.mark = (head.generation, head.transaction_id);
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
        assert!(body_key(16, "T-1").starts_with(&body_prefix(16)));
        assert!(!body_key(160, "T-1").starts_with(&body_prefix(16)));
    }
}
