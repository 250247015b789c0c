//! The client side of the sync exchange (docs/protocol.md): upload local changes
//! sealed, apply the server's changes in committed batches, refuse what does not
//! authenticate, and send back what applying them changed locally (merges) before
//! returning.
//!
//! The response is read by the exchange receiver shared with the server
//! ([`soledad_protocol::Receiver`]); this module applies what it hands out.
//!
//! What is an integrity failure and what is not (docs/protocol.md, "What the client
//! detects"): an envelope that does not authenticate (which includes a revision
//! that claims to be new but whose envelope is bound to another one) is refused and
//! reported as [`Error::Integrity`]; a server position that moves backwards is
//! [`Error::Diverged`]; an incoming revision that the local one dominates or equals
//! is simply superseded, as in u1db, whatever its origin (an own revision sent back
//! after a cut sync, or a replayed old one): nothing is lost on this device.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use futures_util::{Stream, StreamExt, stream};
use soledad_crypto::SyncKeys;
use soledad_protocol::{
    BATCH_BYTES, BATCH_DOCS, Batch, BatchLimits, Broken, DocFrame, ExchangeEnd,
    ExchangeRequestHeader, Frame, ProtocolError, Receiver, RecordSyncInfo, Response, Step,
};
use soledad_store::{
    DocId, Document, JsonContent, Position, PutState, ReplicaUid, Rev, SaveConflict, Source,
    StoreError, StoreWorker,
};

use crate::error::{DivergedKind, Error};
use crate::soledad::SyncStatsSnapshot;
use crate::transport::Transport;

/// Exchanges one sync runs at most: the first, then one more each time applying the
/// download made local revisions the server does not have (merges), so that they
/// leave the device in the same sync. Bounded because another device may keep
/// producing concurrent changes.
const MAX_ROUNDS: u32 = 3;

/// The largest local transaction of a download: more than a protocol batch
/// ([`BATCH_DOCS`], [`BATCH_BYTES`]). Each transaction rewrites (and
/// encrypts) every page of the id index it touches; with random ids in a
/// large store that is nearly every page (about 5 MB at 100,000 documents),
/// so fewer, larger transactions write several times less: measured on an
/// initial sync of 100,000 x 10 KB documents, 16 MiB transactions took 16%
/// less client CPU than 8 MiB ones (9.06 -> 7.65 s). Transactions only grow
/// this large while the database thread is busy (see `Applier`): a small
/// download is not held back to fill one.
const DOWNLOAD_TRANSACTION: BatchLimits = BatchLimits {
    docs: 8 * BATCH_DOCS,
    bytes: 2 * BATCH_BYTES,
};

/// What one sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SyncReport {
    /// Local changes sent to the server.
    pub sent: u64,
    /// Server changes received and applied (inserted, or stored as a conflict).
    pub received: u64,
    /// Of those, how many made a conflict the application must resolve.
    pub conflicts: u64,
    /// Server revisions ignored because the local revision already dominates them
    /// (u1db's "superseded"): the device's own older revision sent back after a cut
    /// sync, or an old revision replayed by the server. Harmless: the local one is
    /// kept (and sent if the server does not have it).
    pub superseded: u64,
    /// Local revisions made while applying the server's changes (u1db merges of
    /// equal contents, conflicts resolved by an incoming revision): these are sent
    /// before the sync returns, in an extra exchange (if merges still come out of
    /// the last exchange allowed, `converged` is false and the next sync sends them).
    pub merged: u64,
    /// Documents refused because their envelope failed authentication (the sync
    /// then fails with [`Error::Integrity`]).
    pub refused: u64,
    /// The server generation this device now knows.
    pub target_generation: u64,
    /// Exchanges run (1 unless merges had to be sent back, at most 3).
    pub rounds: u32,
    /// Whether, as far as this device knows at return, the server and the device
    /// have nothing for each other: every local revision is on the server (merges
    /// included) and every server change up to `target_generation` is applied.
    /// `false` when the application wrote during the sync (those writes are sent
    /// by the next sync) or when merges were still produced after the last round.
    pub converged: bool,
}

/// A progress callback of [`Soledad::sync_with_progress`](crate::Soledad::sync_with_progress).
pub(crate) type ProgressFn = Arc<dyn Fn(SyncStatsSnapshot) + Send + Sync>;

/// Live counters of the sync in progress (also the last one's totals), for UIs.
#[derive(Default)]
pub struct SyncStats {
    /// Documents sent so far.
    pub sent: AtomicU64,
    /// Documents the server announced it will send.
    pub to_receive: AtomicU64,
    /// Documents received and processed so far.
    pub received: AtomicU64,
    /// Who to tell after each batch, while a sync runs.
    watcher: Mutex<Option<ProgressFn>>,
}

impl std::fmt::Debug for SyncStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncStats")
            .field("sent", &self.sent)
            .field("to_receive", &self.to_receive)
            .field("received", &self.received)
            .finish_non_exhaustive()
    }
}

impl SyncStats {
    fn reset(&self) {
        self.sent.store(0, Ordering::Relaxed);
        self.to_receive.store(0, Ordering::Relaxed);
        self.received.store(0, Ordering::Relaxed);
    }

    /// The counters now.
    pub(crate) fn snapshot(&self) -> SyncStatsSnapshot {
        SyncStatsSnapshot {
            sent: self.sent.load(Ordering::Relaxed),
            received: self.received.load(Ordering::Relaxed),
            to_receive: self.to_receive.load(Ordering::Relaxed),
        }
    }

    /// Calls `progress` after each batch until the returned guard is dropped.
    pub(crate) fn watch(&self, progress: ProgressFn) -> WatchGuard<'_> {
        *self.watcher.lock().unwrap_or_else(PoisonError::into_inner) = Some(progress);
        WatchGuard(self)
    }

    /// Tells the watcher, if any, where the sync stands.
    fn notify(&self) {
        let watcher = self
            .watcher
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(progress) = watcher {
            progress(self.snapshot());
        }
    }
}

/// Stops the progress callback of a sync when dropped.
pub(crate) struct WatchGuard<'a>(&'a SyncStats);

impl Drop for WatchGuard<'_> {
    fn drop(&mut self) {
        *self
            .0
            .watcher
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
    }
}

/// Everything a sync needs, shared with the client.
pub(crate) struct SyncContext {
    pub(crate) actor: StoreWorker,
    pub(crate) transport: Transport,
    pub(crate) keys: Arc<SyncKeys>,
    pub(crate) replica_uid: String,
    pub(crate) stats: Arc<SyncStats>,
}

fn diverged(err: StoreError) -> Error {
    match err {
        StoreError::InvalidGeneration => Error::Diverged(DivergedKind::InvalidGeneration),
        StoreError::InvalidTransactionId => Error::Diverged(DivergedKind::InvalidTransactionId),
        other => Error::Store(other),
    }
}

/// Local generations whose document holds exactly the revision the server sent
/// (written while applying the download): the server has them, so they are neither
/// sent back nor a reason to think the device has something new.
///
/// Kept as ascending inclusive ranges: a download applied without interleaved
/// merges or application writes is one range, whatever its size.
#[derive(Debug, Default)]
struct ServerKnown {
    ranges: Vec<(u64, u64)>,
}

impl ServerKnown {
    /// Adds `generation`, which is larger than every generation added before.
    fn push(&mut self, generation: u64) {
        match self.ranges.last_mut() {
            Some((_, end)) if end.checked_add(1) == Some(generation) => *end = generation,
            _ => self.ranges.push((generation, generation)),
        }
    }

    fn contains(&self, generation: u64) -> bool {
        self.ranges
            .iter()
            .any(|(start, end)| (*start..=*end).contains(&generation))
    }

    /// The largest `g >= from` such that every generation in `(from, g]` is known.
    fn known_up_to(&self, from: u64) -> u64 {
        let mut cursor = from;
        for (start, end) in &self.ranges {
            if *start > cursor.saturating_add(1) {
                break;
            }
            cursor = cursor.max(*end);
        }
        cursor
    }
}

/// Runs one sync: a first exchange, then more (at most [`MAX_ROUNDS`] in all) while
/// applying the server's documents made local revisions the server does not have.
pub(crate) async fn sync(ctx: &SyncContext) -> Result<SyncReport, Error> {
    ctx.stats.reset();
    let mut report = SyncReport::default();
    let mut known = ServerKnown::default();
    loop {
        report.rounds += 1;
        let round = exchange_round(ctx, &mut known).await?;
        report.received += round.received;
        report.conflicts += round.conflicts;
        report.superseded += round.superseded;
        report.merged += round.merged;
        report.refused += round.refused;
        report.target_generation = round.target_generation;
        report.sent = ctx.stats.sent.load(Ordering::Relaxed);
        if report.refused > 0 {
            return Err(Error::Integrity {
                count: usize::try_from(report.refused).unwrap_or(usize::MAX),
            });
        }
        let again = round.merged > 0 && round.local_pending && report.rounds < MAX_ROUNDS;
        if !again {
            report.converged = !round.local_pending;
            return Ok(report);
        }
    }
}

/// What one exchange did.
#[derive(Debug, Default)]
struct RoundOutcome {
    received: u64,
    conflicts: u64,
    superseded: u64,
    merged: u64,
    refused: u64,
    target_generation: u64,
    /// Whether the device has local revisions after this exchange that the server
    /// does not have (merges, or application writes made meanwhile).
    local_pending: bool,
}

/// One complete exchange with the server. `known` holds the local generations the
/// server already has (from earlier exchanges of this sync); this exchange adds its
/// own and does not send those.
async fn exchange_round(ctx: &SyncContext, known: &mut ServerKnown) -> Result<RoundOutcome, Error> {
    let info = ctx.transport.sync_info(&ctx.replica_uid).await?;

    // Where we are, where we think the server is, and what the server says it has
    // of ours. A server claim we cannot find in our own log means this database is
    // older than one the server synced with (restored from a backup): refuse.
    let (ensure, known_target, send_from) = match &info {
        Some(info) => {
            if info.target_replica_uid == ctx.replica_uid {
                return Err(Error::Store(StoreError::InvalidReplicaUid));
            }
            let claimed =
                Position::parse(info.source_replica_generation, &info.source_transaction_id)
                    .map_err(diverged)?;
            let claimed_gen = claimed.generation();
            let target_uid = ReplicaUid::parse(&info.target_replica_uid)?;
            let known = ctx
                .actor
                .call(move |db| {
                    db.validate_gen_and_trans_id(&claimed)?;
                    db.get_replica_gen_and_trans_id(&target_uid)
                })
                .await?
                .map_err(diverged)?;
            (false, known, claimed_gen)
        }
        None => (true, Position::origin(), 0),
    };
    let start = ctx.actor.call(|db| db.get_generation_info()).await??;
    let start_gen = start.generation();

    let header = ExchangeRequestHeader {
        last_known_generation: known_target.generation(),
        last_known_trans_id: known_target.transaction_id().as_str().to_owned(),
        ensure,
    };
    let upload = upload_stream(
        ctx.actor.clone(),
        ctx.keys.clone(),
        ctx.stats.clone(),
        header,
        send_from,
        (start_gen, start.transaction_id().as_str().to_owned()),
        std::mem::take(&mut known.ranges),
    );
    let response = ctx.transport.exchange(&ctx.replica_uid, upload).await?;

    let (mut outcome, applied) = download(ctx, response).await?;

    // Tell the server how far it has everything of ours: our position at the start
    // of this exchange (recorded by its end frame) extended by the generations that
    // applying its documents wrote with its own revisions. Stops before the first
    // local revision it does not have (a merge, or an application write made
    // meanwhile), which a later exchange sends.
    *known = applied;
    let (now_gen, last_known) = ctx
        .actor
        .call({
            let covered = known.known_up_to(start_gen);
            move |db| {
                let now = db.get_generation_info()?;
                let now_gen = now.generation();
                let covered = covered.min(now_gen);
                let tid = if covered == now_gen {
                    now.transaction_id().as_str().to_owned()
                } else {
                    db.get_trans_id_for_gen(covered)?
                };
                Ok::<_, StoreError>((now_gen, (covered, tid)))
            }
        })
        .await??;
    if last_known.0 > start_gen {
        ctx.transport
            .record_sync_info(
                &ctx.replica_uid,
                &RecordSyncInfo {
                    generation: last_known.0,
                    transaction_id: last_known.1,
                },
            )
            .await?;
    }
    outcome.local_pending = last_known.0 < now_gen;
    Ok(outcome)
}

/// The request body: header, every local change after `send_from` up to the start
/// position (sealed, in generation order, fetched a batch at a time) except those at
/// generations the server already has (`skip`, see [`ServerKnown`]), then the end.
fn upload_stream(
    actor: StoreWorker,
    keys: Arc<SyncKeys>,
    stats: Arc<SyncStats>,
    header: ExchangeRequestHeader,
    send_from: u64,
    start: (u64, String),
    skip: Vec<(u64, u64)>,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    let skip = Arc::new(ServerKnown { ranges: skip });
    enum Step {
        Header,
        Docs(u64),
        End,
        Done,
    }
    let first = Frame::RequestHeader(header)
        .to_bytes()
        .map_err(std::io::Error::other);
    stream::unfold((Step::Header, Some(first)), move |(step, first)| {
        let actor = actor.clone();
        let keys = keys.clone();
        let stats = stats.clone();
        let skip = skip.clone();
        let (start_gen, start_tid) = start.clone();
        async move {
            match step {
                Step::Header => match first {
                    Some(Ok(bytes)) => Some((Ok(bytes), (Step::Docs(send_from), None))),
                    Some(Err(e)) => Some((Err(e), (Step::Done, None))),
                    None => None,
                },
                Step::Docs(cursor) => {
                    let batch = actor
                        .call(move |db| db.docs_changed_since(cursor, BATCH_DOCS))
                        .await;
                    let changed = match batch {
                        Ok(Ok(changed)) => changed,
                        Ok(Err(e)) => {
                            return Some((Err(std::io::Error::other(e)), (Step::Done, None)));
                        }
                        Err(e) => return Some((Err(std::io::Error::other(e)), (Step::Done, None))),
                    };
                    let mut out = Vec::new();
                    let mut last = cursor;
                    let mut exhausted = changed.len() < BATCH_DOCS;
                    for item in changed {
                        if item.generation > start_gen {
                            exhausted = true;
                            break;
                        }
                        last = item.generation;
                        if skip.contains(item.generation) {
                            continue;
                        }
                        let sealed =
                            seal_frame(&keys, &item.doc, item.generation, item.transaction_id)
                                .and_then(|frame| Ok(frame.encode(&mut out)?));
                        match sealed {
                            Ok(()) => {}
                            Err(e) => {
                                return Some((Err(std::io::Error::other(e)), (Step::Done, None)));
                            }
                        }
                        stats.sent.fetch_add(1, Ordering::Relaxed);
                    }
                    stats.notify();
                    let next = if exhausted {
                        Step::End
                    } else {
                        Step::Docs(last)
                    };
                    Some((Ok(Bytes::from(out)), (next, None)))
                }
                Step::End => {
                    let end = Frame::End(ExchangeEnd {
                        generation: start_gen,
                        transaction_id: start_tid,
                    });
                    Some((
                        end.to_bytes().map_err(std::io::Error::other),
                        (Step::Done, None),
                    ))
                }
                Step::Done => None,
            }
        }
    })
}

fn seal_frame(
    keys: &SyncKeys,
    doc: &Document,
    generation: u64,
    trans_id: String,
) -> Result<Frame, Error> {
    let rev = doc
        .rev
        .clone()
        .ok_or(Error::Store(StoreError::InvalidRevision))?;
    let payload = keys.seal_for_server(&doc.doc_id, &rev, doc.json())?;
    let frame = DocFrame {
        id: keys.hidden_id(&doc.doc_id),
        rev: rev.into_string(),
        generation,
        trans_id,
        payload: payload.into(),
    };
    // Refused with a typed error, never cut (the store's limits keep this from
    // happening to a document it accepted).
    frame.check_fits()?;
    Ok(Frame::Doc(frame))
}

/// Reads the response through the shared exchange receiver
/// ([`soledad_protocol::Receiver`]) and applies it: the header is checked first,
/// then every batch the receiver hands out is opened and committed with the server
/// position of its last document, and the end position is recorded last. Whatever
/// breaks the stream (a cut connection, a malformed frame, an error frame), the
/// complete documents received before it are committed before the error is
/// reported, so the next sync resumes after them.
async fn download<S>(ctx: &SyncContext, response: S) -> Result<(RoundOutcome, ServerKnown), Error>
where
    S: Stream<Item = Result<Bytes, Error>>,
{
    let mut response = std::pin::pin!(response);
    let mut receiver = Receiver::<Response>::with_limits(BatchLimits::DEFAULT);

    // Phase 1: the header, before any document.
    let header = loop {
        match receiver.poll() {
            Ok(Step::NeedInput) => match response.next().await {
                Some(Ok(chunk)) => receiver.push(&chunk),
                Some(Err(e)) => return Err(e),
                None => return Err(broken_error(receiver.finish())),
            },
            Ok(Step::Header(header)) => break header,
            // The receiver hands out nothing else before the header.
            Ok(_) => return Err(Error::Protocol(ProtocolError::UnexpectedEof)),
            Err(broken) => return Err(broken.error.into()),
        }
    };
    if header.target_replica_uid == ctx.replica_uid {
        return Err(Error::Store(StoreError::InvalidReplicaUid));
    }
    // The server's positions are opaque: parsed, compared for equality, never
    // ordered (docs/protocol.md, "Positions"). The server itself refused the
    // position this device claimed if its log does not hold it.
    let target_uid = ReplicaUid::parse(&header.target_replica_uid)?;
    Position::parse(header.target_generation, &header.target_transaction_id).map_err(diverged)?;
    ctx.stats
        .to_receive
        .fetch_add(header.document_count, Ordering::Relaxed);
    let mut applier = Applier {
        ctx,
        target_uid,
        outcome: RoundOutcome {
            target_generation: header.target_generation,
            ..RoundOutcome::default()
        },
        applied: ServerKnown::default(),
        applying: None,
        gathered: Vec::new(),
        gathered_bytes: 0,
    };
    let read = read_batches(receiver, &mut response, &mut applier).await;
    // Whatever ended the stream, the documents opened and the transaction
    // still being applied are committed (or their failure known) before this
    // returns.
    let committed = applier.finish().await;
    read?;
    committed?;
    Ok((applier.outcome, applier.applied))
}

/// Phase 2 of [`download`]: documents in batches, then the end.
async fn read_batches<S>(
    mut receiver: Receiver<Response>,
    response: &mut std::pin::Pin<&mut S>,
    applier: &mut Applier<'_>,
) -> Result<(), Error>
where
    S: Stream<Item = Result<Bytes, Error>>,
{
    loop {
        let step = match receiver.poll() {
            Ok(step) => step,
            Err(broken) => {
                applier.apply(broken.pending).await?;
                return Err(broken.error.into());
            }
        };
        match step {
            Step::NeedInput => match response.next().await {
                Some(Ok(chunk)) => receiver.push(&chunk),
                Some(Err(e)) => {
                    // Keep the complete documents that arrived before the cut.
                    if let Err(broken) = receiver.finish() {
                        applier.apply(broken.pending).await?;
                    }
                    return Err(e);
                }
                None => {
                    return match receiver.finish() {
                        Ok(()) => Ok(()),
                        Err(broken) => {
                            applier.apply(broken.pending).await?;
                            Err(broken.error.into())
                        }
                    };
                }
            },
            Step::Batch(batch) => applier.apply(batch).await?,
            Step::End { last, end } => {
                applier.apply(last).await?;
                applier.record_end(end).await?;
            }
            Step::PeerError { last, error } => {
                // Commit what arrived before the server gave up, then report.
                applier.apply(last).await?;
                return Err(Error::from_server(500, error.kind(), error.message));
            }
            // Only one header per stream: the receiver refuses a second.
            Step::Header(_) => return Err(Error::Protocol(ProtocolError::UnexpectedEof)),
        }
    }
}

fn broken_error(finished: Result<(), Broken>) -> Error {
    match finished {
        Ok(()) => Error::Protocol(ProtocolError::UnexpectedEof),
        Err(broken) => broken.error.into(),
    }
}

/// A batch committing on the database thread.
type Applying =
    tokio::task::JoinHandle<Result<Result<BatchOutcome, StoreError>, soledad_store::WorkerStopped>>;

/// Applies the documents of one response once its header was checked.
///
/// Pipelined: while one transaction commits on the database thread
/// (SQLCipher's page encryption is most of a download's cost), the next
/// protocol batches are received and opened. Opened documents are handed to
/// the database thread as soon as it is idle, and gathered while it is busy,
/// up to [`DOWNLOAD_TRANSACTION`]: small downloads start writing at once, large
/// ones write in large transactions. Memory: at most one transaction
/// committing and one gathered, each at most [`DOWNLOAD_TRANSACTION`] plus one
/// protocol batch, and the protocol batch being received, whatever the number
/// of documents.
struct Applier<'a> {
    ctx: &'a SyncContext,
    target_uid: ReplicaUid,
    outcome: RoundOutcome,
    /// Local generations written with exactly the server's revision.
    applied: ServerKnown,
    /// The transaction committing on the database thread, if any.
    applying: Option<Applying>,
    /// Opened documents waiting for the next transaction, in the order sent.
    gathered: Vec<Opened>,
    /// Their payload bytes as received.
    gathered_bytes: usize,
}

impl Applier<'_> {
    /// Opens a batch and gathers its documents; hands what is gathered to the
    /// database thread when that thread is idle or a transaction is full
    /// ([`Applier::transact`]).
    async fn apply(&mut self, batch: Batch) -> Result<(), Error> {
        if batch.is_empty() {
            return Ok(());
        }
        let bytes = batch.payload_bytes();
        let frames = batch.into_docs();
        let keys = self.ctx.keys.clone();
        // Decrypt off the database thread; a document that fails is refused alone.
        let opened = tokio::task::spawn_blocking(move || open_frames(&keys, frames))
            .await
            .map_err(Error::from)?;
        self.gathered.extend(opened);
        self.gathered_bytes = self.gathered_bytes.saturating_add(bytes);
        let idle = self
            .applying
            .as_ref()
            .is_none_or(tokio::task::JoinHandle::is_finished);
        if idle || DOWNLOAD_TRANSACTION.is_full(self.gathered.len(), self.gathered_bytes) {
            self.transact().await?;
        }
        Ok(())
    }

    /// Hands the gathered documents to the database thread, to apply in one
    /// transaction that also records the server generation of the last one,
    /// once the transaction before is committed. Returns without waiting for
    /// that commit ([`Applier::wait`]).
    async fn transact(&mut self) -> Result<(), Error> {
        if self.gathered.is_empty() {
            return Ok(());
        }
        let opened = std::mem::take(&mut self.gathered);
        self.gathered_bytes = 0;
        self.wait().await?;
        let target_uid = self.target_uid.clone();
        let actor = self.ctx.actor.clone();
        self.applying = Some(tokio::spawn(async move {
            actor
                .call(move |db| apply_batch(db, &target_uid, opened))
                .await
        }));
        Ok(())
    }

    /// Commits everything opened so far and waits for it.
    async fn finish(&mut self) -> Result<(), Error> {
        let handed = self.transact().await;
        let committed = self.wait().await;
        handed.and(committed)
    }

    /// Waits until the batch handed to the database thread, if any, is
    /// committed, and counts what it did.
    async fn wait(&mut self) -> Result<(), Error> {
        let Some(applying) = self.applying.take() else {
            return Ok(());
        };
        let batch = applying.await.map_err(Error::from)??.map_err(diverged)?;
        self.outcome.received += batch.received;
        self.outcome.conflicts += batch.conflicts;
        self.outcome.superseded += batch.superseded;
        self.outcome.merged += batch.merged;
        self.outcome.refused += batch.refused;
        for generation in batch.server_known {
            self.applied.push(generation);
        }
        self.ctx
            .stats
            .received
            .fetch_add(batch.processed, Ordering::Relaxed);
        self.ctx.stats.notify();
        Ok(())
    }

    /// Records the server's end position, even when no document came (the server may
    /// have moved by documents this device sent itself).
    async fn record_end(&mut self, end: ExchangeEnd) -> Result<(), Error> {
        self.finish().await?;
        let generation = end.generation;
        let end = Source::new(
            self.target_uid.clone(),
            Position::parse(end.generation, &end.transaction_id).map_err(diverged)?,
        );
        self.ctx
            .actor
            .call(move |db| {
                // Opaque: recorded when it differs, never ordered against ours.
                if db.get_replica_gen_and_trans_id(&end.replica)? != end.position {
                    db.set_replica_gen_and_trans_id(&end)?;
                }
                Ok::<_, StoreError>(())
            })
            .await??;
        self.outcome.target_generation = generation;
        Ok(())
    }
}

/// A received document after authentication: the plaintext doc, or a refusal.
struct Opened {
    generation: u64,
    trans_id: String,
    doc: Option<Document>,
}

impl Opened {
    /// The document's id (`None` for a refused one).
    fn doc_id(&self) -> Option<&str> {
        self.doc.as_ref().map(|doc| doc.doc_id.as_str())
    }
}

fn open_frames(keys: &SyncKeys, frames: Vec<DocFrame>) -> Vec<Opened> {
    frames
        .into_iter()
        .map(|frame| {
            let doc = keys
                .open_from_server(&frame.id, &frame.rev, &frame.payload)
                .ok()
                .and_then(|(doc_id, json)| {
                    let content = match json {
                        Some(text) => Some(JsonContent::from_json(text).ok()?),
                        None => None,
                    };
                    // The envelope bound both; a sealed id or revision that does
                    // not parse is refused like a bad envelope.
                    let doc_id = DocId::parse(&doc_id).ok()?;
                    let rev = Rev::parse(&frame.rev).ok()?;
                    Some(Document::new(doc_id, Some(rev), content))
                });
            Opened {
                generation: frame.generation,
                trans_id: frame.trans_id,
                doc,
            }
        })
        .collect()
}

#[derive(Default)]
struct BatchOutcome {
    processed: u64,
    received: u64,
    conflicts: u64,
    superseded: u64,
    merged: u64,
    refused: u64,
    /// Local generations written with exactly the server's revision, ascending.
    server_known: Vec<u64>,
}

/// Applies one batch with u1db's rules (`put_doc_if_newer`, conflicts saved) in one
/// transaction that also records the server position of its last document.
///
/// An incoming revision that the local one dominates or equals changes nothing
/// (u1db's superseded/converged): it is not an integrity failure, since an honest
/// server sends one back after a cut sync, and a replayed old revision loses
/// nothing here. Only a document whose envelope fails authentication is refused.
fn apply_batch(
    db: &mut soledad_store::Database,
    target_uid: &ReplicaUid,
    opened: Vec<Opened>,
) -> Result<BatchOutcome, StoreError> {
    // The server position of the batch is its last document's, in the order
    // sent (the server's generation order).
    let mut last = None;
    for item in &opened {
        last = Some(Position::parse(item.generation, &item.trans_id)?);
    }
    // Applied in id order: a large store's id index is then walked once per
    // batch, page after page, instead of one random page (decrypted whole) per
    // document. A stable sort keeps a repeated id's order; local generations
    // are still handed out in ascending order, as `server_known` needs.
    let mut opened = opened;
    opened.sort_by(|a, b| a.doc_id().cmp(&b.doc_id()));
    db.batch(|batch| {
        let mut outcome = BatchOutcome::default();
        let mut generation = batch.get_generation_info()?.generation();
        for item in opened {
            outcome.processed += 1;
            let Some(mut doc) = item.doc else {
                outcome.refused += 1;
                continue;
            };
            let incoming_rev = doc.rev.clone();
            // No per-document source: the store would order the server's
            // generations; the batch records the last position once, below.
            let (state, now) = batch.put_doc_if_newer(&mut doc, SaveConflict::Yes, None)?;
            let wrote = now > generation;
            generation = now;
            if wrote {
                if doc.rev == incoming_rev {
                    outcome.server_known.push(now);
                } else {
                    // A merged revision (join of both, incremented): ours to send.
                    outcome.merged += 1;
                }
            }
            match state {
                PutState::Inserted => outcome.received += 1,
                PutState::Conflicted => {
                    outcome.received += 1;
                    outcome.conflicts += 1;
                }
                PutState::Superseded if !wrote => outcome.superseded += 1,
                PutState::Converged | PutState::Superseded => {}
            }
        }
        if let Some(position) = last {
            batch.set_replica_gen_and_trans_id(&Source::new(target_uid.clone(), position))?;
        }
        Ok(outcome)
    })
}

#[cfg(test)]
mod tests {
    use super::ServerKnown;

    fn known(generations: &[u64]) -> ServerKnown {
        let mut known = ServerKnown::default();
        for g in generations {
            known.push(*g);
        }
        known
    }

    #[test]
    fn contiguous_generations_are_one_range() {
        let k = known(&[5, 6, 7, 8]);
        assert_eq!(k.ranges, vec![(5, 8)]);
        assert!(k.contains(5) && k.contains(8));
        assert!(!k.contains(4) && !k.contains(9));
    }

    #[test]
    fn the_covered_prefix_stops_at_the_first_unknown_generation() {
        // 11 and 12 are the server's, 13 a merge, 14 the server's again.
        let k = known(&[11, 12, 14]);
        assert_eq!(k.known_up_to(10), 12);
        assert!(!k.contains(13));
        // Nothing known right after the start: the position does not move.
        assert_eq!(k.known_up_to(12), 12);
        assert_eq!(k.known_up_to(13), 14);
        assert_eq!(known(&[]).known_up_to(7), 7);
        assert_eq!(known(&[9]).known_up_to(7), 7);
    }
}
