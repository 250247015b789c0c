//! The client side of the sync exchange (docs/protocol.md): upload local changes
//! sealed, apply the server's changes in committed batches, refuse what does not
//! authenticate or rolls a document back.
//!
//! Phases are explicit: [`Downloader`] only accepts the frame its state expects.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures_util::{Stream, StreamExt, stream};
use soledad_crypto::SyncKeys;
use soledad_protocol::{
    DocFrame, ExchangeEnd, ExchangeRequestHeader, Frame, FrameDecoder, ProtocolError,
    RecordSyncInfo,
};
use soledad_store::{
    ClockOrdering, Document, JsonContent, PutState, StoreError, StoreWorker, VectorClock,
};

use crate::error::{DivergedKind, Error};
use crate::transport::Transport;

/// Documents per upload chunk and per committed download batch.
const BATCH_DOCS: usize = 256;
/// Bytes of payload after which a download batch is committed early.
const BATCH_BYTES: usize = 8 << 20;

/// What one sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Local changes sent to the server.
    pub sent: u64,
    /// Server changes received and applied (inserted, or stored as a conflict).
    pub received: u64,
    /// Of those, how many made a conflict the application must resolve.
    pub conflicts: u64,
    /// Documents refused because they failed authentication or were rollbacks.
    pub refused: u64,
    /// The server generation this device now knows.
    pub target_generation: u64,
}

/// Live counters of the sync in progress (also the last one's totals), for UIs.
#[derive(Debug, Default)]
pub struct SyncStats {
    /// Documents sent so far.
    pub sent: AtomicU64,
    /// Documents the server announced it will send.
    pub to_receive: AtomicU64,
    /// Documents received and processed so far.
    pub received: AtomicU64,
}

impl SyncStats {
    fn reset(&self) {
        self.sent.store(0, Ordering::Relaxed);
        self.to_receive.store(0, Ordering::Relaxed);
        self.received.store(0, Ordering::Relaxed);
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

/// Runs one complete exchange with the server.
pub(crate) async fn sync_once(ctx: &SyncContext) -> Result<SyncReport, Error> {
    ctx.stats.reset();
    let info = ctx.transport.sync_info(&ctx.replica_uid).await?;

    // Where we are, where we think the server is, and what the server says it has
    // of ours. A server claim we cannot find in our own log means this database is
    // older than one the server synced with (restored from a backup): refuse.
    let (ensure, known_target, send_from) = match &info {
        Some(info) => {
            if info.target_replica_uid == ctx.replica_uid {
                return Err(Error::Store(StoreError::InvalidReplicaUid));
            }
            let claimed_gen = info.source_replica_generation;
            let claimed_tid = info.source_transaction_id.clone();
            let target_uid = info.target_replica_uid.clone();
            let known = ctx
                .actor
                .call(move |db| {
                    db.validate_gen_and_trans_id(claimed_gen, &claimed_tid)?;
                    db.get_replica_gen_and_trans_id(&target_uid)
                })
                .await?
                .map_err(diverged)?;
            (false, known, claimed_gen)
        }
        None => (true, (0, String::new()), 0),
    };
    let (start_gen, start_tid) = ctx.actor.call(|db| db.get_generation_info()).await??;

    let header = ExchangeRequestHeader {
        last_known_generation: known_target.0,
        last_known_trans_id: known_target.1.clone(),
        ensure,
    };
    let upload = upload_stream(
        ctx.actor.clone(),
        ctx.keys.clone(),
        ctx.stats.clone(),
        header,
        send_from,
        (start_gen, start_tid),
    );
    let response = ctx.transport.exchange(&ctx.replica_uid, upload).await?;

    let mut downloader = Downloader::new(ctx);
    let mut response = std::pin::pin!(response);
    while let Some(chunk) = response.next().await {
        downloader.push(&chunk?).await?;
    }
    let mut report = downloader.finish().await?;
    report.sent = ctx.stats.sent.load(Ordering::Relaxed);

    // If applying the server's documents was all that changed locally, the server
    // already has those generations: record it so they are not sent back.
    let inserted = report.received;
    let (now_gen, now_tid) = ctx.actor.call(|db| db.get_generation_info()).await??;
    if now_gen != start_gen && now_gen == start_gen + inserted {
        ctx.transport
            .record_sync_info(
                &ctx.replica_uid,
                &RecordSyncInfo {
                    generation: now_gen,
                    transaction_id: now_tid,
                },
            )
            .await?;
    }
    if report.refused > 0 {
        return Err(Error::Integrity {
            count: report.refused as usize,
        });
    }
    Ok(report)
}

/// The request body: header, every local change after `send_from` up to the start
/// position (sealed, in generation order, fetched a batch at a time), then the end.
fn upload_stream(
    actor: StoreWorker,
    keys: Arc<SyncKeys>,
    stats: Arc<SyncStats>,
    header: ExchangeRequestHeader,
    send_from: u64,
    start: (u64, String),
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    enum Step {
        Header,
        Docs(u64),
        End,
        Done,
    }
    let first = Frame::RequestHeader(header).to_bytes();
    stream::unfold((Step::Header, Some(first)), move |(step, first)| {
        let actor = actor.clone();
        let keys = keys.clone();
        let stats = stats.clone();
        let (start_gen, start_tid) = start.clone();
        async move {
            match step {
                Step::Header => {
                    Some((Ok(first.unwrap_or_default()), (Step::Docs(send_from), None)))
                }
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
                        match seal_frame(&keys, &item.doc, item.generation, item.transaction_id) {
                            Ok(frame) => frame.encode(&mut out),
                            Err(e) => {
                                return Some((Err(std::io::Error::other(e)), (Step::Done, None)));
                            }
                        }
                        stats.sent.fetch_add(1, Ordering::Relaxed);
                    }
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
                    Some((Ok(end.to_bytes()), (Step::Done, None)))
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
    Ok(Frame::Doc(DocFrame {
        id: keys.hidden_id(&doc.doc_id),
        rev,
        generation,
        trans_id,
        payload: payload.into(),
    }))
}

/// What the download side waits for next.
enum Expect {
    ResponseHeader,
    DocOrEnd { target_uid: String },
    Nothing,
}

/// Applies the response: decodes frames, opens envelopes, commits in batches that
/// also record the server position reached.
struct Downloader<'a> {
    ctx: &'a SyncContext,
    decoder: FrameDecoder,
    expect: Expect,
    pending: Vec<DocFrame>,
    pending_bytes: usize,
    report: SyncReport,
}

impl<'a> Downloader<'a> {
    fn new(ctx: &'a SyncContext) -> Self {
        Downloader {
            ctx,
            decoder: FrameDecoder::new(),
            expect: Expect::ResponseHeader,
            pending: Vec::new(),
            pending_bytes: 0,
            report: SyncReport::default(),
        }
    }

    async fn push(&mut self, chunk: &[u8]) -> Result<(), Error> {
        self.decoder.push(chunk);
        while let Some(frame) = self.decoder.next_frame()? {
            self.handle(frame).await?;
        }
        Ok(())
    }

    async fn handle(&mut self, frame: Frame) -> Result<(), Error> {
        let expect = std::mem::replace(&mut self.expect, Expect::Nothing);
        self.expect = match (expect, frame) {
            (_, Frame::Error(body)) => {
                // Commit what arrived before the server gave up, then report.
                self.flush().await?;
                return Err(Error::from_server(500, body.kind(), body.message));
            }
            (Expect::ResponseHeader, Frame::ResponseHeader(header)) => {
                if header.target_replica_uid == self.ctx.replica_uid {
                    return Err(Error::Store(StoreError::InvalidReplicaUid));
                }
                self.ctx
                    .stats
                    .to_receive
                    .store(header.document_count, Ordering::Relaxed);
                self.report.target_generation = header.target_generation;
                Expect::DocOrEnd {
                    target_uid: header.target_replica_uid,
                }
            }
            (Expect::DocOrEnd { target_uid }, Frame::Doc(doc)) => {
                self.pending_bytes += doc.payload.len();
                self.pending.push(doc);
                let state = Expect::DocOrEnd { target_uid };
                self.expect = state;
                if self.pending.len() >= BATCH_DOCS || self.pending_bytes >= BATCH_BYTES {
                    self.flush().await?;
                }
                return Ok(());
            }
            (Expect::DocOrEnd { target_uid }, Frame::End(end)) => {
                self.expect = Expect::DocOrEnd {
                    target_uid: target_uid.clone(),
                };
                self.flush().await?;
                // Record the final position even when no document came (the server
                // may have moved by documents this device sent itself).
                let record_uid = target_uid.clone();
                self.ctx
                    .actor
                    .call(move |db| {
                        let (known, _) = db.get_replica_gen_and_trans_id(&record_uid)?;
                        if end.generation > known {
                            db.set_replica_gen_and_trans_id(
                                &record_uid,
                                end.generation,
                                &end.transaction_id,
                            )?;
                        }
                        Ok::<_, StoreError>(())
                    })
                    .await??;
                self.report.target_generation = end.generation;
                Expect::Nothing
            }
            (expect, frame) => {
                return Err(Error::Protocol(ProtocolError::UnexpectedFrame {
                    expected: match expect {
                        Expect::ResponseHeader => "response header",
                        Expect::DocOrEnd { .. } => "document or end",
                        Expect::Nothing => "end of stream",
                    },
                    got: frame.kind().name(),
                }));
            }
        };
        Ok(())
    }

    /// Opens and applies the pending documents in one transaction that also records
    /// the server generation of the last one.
    async fn flush(&mut self) -> Result<(), Error> {
        let Expect::DocOrEnd { target_uid } = &self.expect else {
            return Ok(());
        };
        if self.pending.is_empty() {
            return Ok(());
        }
        let target_uid = target_uid.clone();
        let frames = std::mem::take(&mut self.pending);
        self.pending_bytes = 0;
        let keys = self.ctx.keys.clone();
        // Decrypt off the database thread; a document that fails is refused alone.
        let opened = tokio::task::spawn_blocking(move || open_frames(&keys, frames))
            .await
            .map_err(|_| Error::Closed)?;
        let outcome = self
            .ctx
            .actor
            .call(move |db| apply_batch(db, &target_uid, opened))
            .await?
            .map_err(diverged)?;
        self.report.received += outcome.received;
        self.report.conflicts += outcome.conflicts;
        self.report.refused += outcome.refused;
        self.ctx
            .stats
            .received
            .fetch_add(outcome.processed, Ordering::Relaxed);
        Ok(())
    }

    async fn finish(mut self) -> Result<SyncReport, Error> {
        self.decoder.finish()?;
        match self.expect {
            Expect::Nothing => Ok(self.report),
            _ => {
                // Keep what was committed; the next sync resumes from there.
                self.flush().await?;
                Err(Error::Protocol(ProtocolError::UnexpectedEof))
            }
        }
    }
}

/// A received document after authentication: the plaintext doc, or a refusal.
struct Opened {
    generation: u64,
    trans_id: String,
    doc: Option<Document>,
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
                    Some(Document::new(doc_id, Some(frame.rev.clone()), content))
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
    refused: u64,
}

fn apply_batch(
    db: &mut soledad_store::Database,
    target_uid: &str,
    opened: Vec<Opened>,
) -> Result<BatchOutcome, StoreError> {
    db.batch(|batch| {
        let mut outcome = BatchOutcome::default();
        let mut last: Option<(u64, String)> = None;
        for item in opened {
            outcome.processed += 1;
            last = Some((item.generation, item.trans_id.clone()));
            let Some(mut doc) = item.doc else {
                outcome.refused += 1;
                continue;
            };
            // Never accept an older revision than ours: that is a rollback.
            if let Some(local) = batch.get_doc(&doc.doc_id, true)? {
                let local_rev = VectorClock::parse_opt(local.rev.as_deref())?;
                let incoming = VectorClock::parse_opt(doc.rev.as_deref())?;
                if local_rev.compare(&incoming) == ClockOrdering::Newer {
                    outcome.refused += 1;
                    continue;
                }
            }
            let (state, _) = batch.put_doc_if_newer(
                &mut doc,
                true,
                Some(target_uid),
                item.generation,
                &item.trans_id,
            )?;
            match state {
                PutState::Inserted => outcome.received += 1,
                PutState::Conflicted => {
                    outcome.received += 1;
                    outcome.conflicts += 1;
                }
                PutState::Converged | PutState::Superseded => {}
            }
        }
        if let Some((generation, trans_id)) = last {
            batch.set_replica_gen_and_trans_id(target_uid, generation, &trans_id)?;
        }
        Ok(outcome)
    })
}
