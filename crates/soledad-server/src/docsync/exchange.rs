//! The three sync routes' work, without HTTP: where the target is, recording a
//! source's position, and the streamed exchange.
//!
//! Memory is bounded by a batch on both legs, whatever the store's size: the
//! upload is applied a batch at a time as [`Receiver<Request>`] closes them
//! (the protocol's [`soledad_protocol::BATCH_DOCS`] documents or
//! [`soledad_protocol::BATCH_BYTES`] of payload), and the response is read
//! from the store with a generation cursor, one chunk per store call
//! ([`RESPONSE_LIMITS`]), never as a list of every changed id. A response
//! holds at most one chunk as read from the store and as framed, plus what
//! HTTP/2 flow control lets wait for the client (the previous chunk at most):
//! a few MiB with 10 KB documents, whatever their number. Framed chunks are
//! cut in pieces of at most [`RESPONSE_PIECE_BYTES`] (a larger document is
//! one piece), so no buffer is large enough for the allocator to move its
//! threshold for memory mapped blocks and keep what it freed: measured on an
//! initial sync of 10,000 documents, one buffer per chunk left the server's
//! peak RSS 6-8 MB higher, and the more chunks a response had, the higher.
//! A failure while the response streams is sent as an error frame, which
//! ends the stream.
//!
//! What the source just sent is not sent back. Instead of remembering every id
//! uploaded, the exchange keeps the generation ranges its own batches wrote
//! (each batch is one transaction, so every change in such a range is a revision
//! this source sent): normally one range, whatever the upload's size. Documents
//! the server already had at the source's revision ("converged") are remembered
//! by id up to [`MAX_CONVERGED_SEEN`]; past it they are sent back, which the
//! source ignores as converged (more bytes, same result).

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::{Stream, StreamExt, stream};
use soledad_protocol::{
    Batch as ReceivedBatch, BatchLimits, ErrorBody, ExchangeEnd, ExchangeResponseHeader, Frame,
    Receiver, RecordSyncInfo, Request, Step, SyncInfo,
};
use soledad_store::vectorclock::is_valid_replica_uid;
use soledad_store::{
    Change, DocId, Document, Position, PutState, ReplicaUid, SaveConflict, Source, StoreError,
};

#[cfg(doc)]
use super::stores::UserStores;
use super::stores::{Commit, UserStore, charged_batch};
use crate::blobs::{QuotaLedger, UserId};
use crate::error::Error;
use crate::userdb::{AppliedBatch, SkipChange, SourceDoc, UserDocStores};

/// Changed ids read per store call while counting the response's documents.
const COUNT_BATCH_IDS: usize = 4096;
/// What one store call reads for the response: a protocol batch of
/// documents, closed early past 2 MiB of payload.
const RESPONSE_LIMITS: BatchLimits = BatchLimits {
    docs: soledad_protocol::BATCH_DOCS,
    bytes: 2 << 20,
};
/// Largest piece of framed response handed to HTTP at once (unless one
/// document's frame is larger): under glibc's initial threshold for memory
/// mapped blocks (128 KiB), so every piece comes from, and goes back to, the
/// ordinary heap.
const RESPONSE_PIECE_BYTES: usize = 64 << 10;
/// Converged documents remembered per exchange (see the module doc).
const MAX_CONVERGED_SEEN: usize = 65_536;
/// Generation ranges remembered per exchange; another device syncing at the
/// same time splits them. Past this, documents are sent back (harmless).
const MAX_SEEN_RANGES: usize = 4096;

fn check_source(source_replica_uid: &str) -> Result<(), Error> {
    if is_valid_replica_uid(source_replica_uid) {
        Ok(())
    } else {
        Err(Error::InvalidReplicaUid)
    }
}

/// `GET /user-{uuid}/sync-from/{source}`.
pub(crate) async fn sync_info(
    stores: &dyn UserDocStores,
    user: &UserId,
    source_replica_uid: &str,
) -> Result<SyncInfo, Error> {
    check_source(source_replica_uid)?;
    stores.sync_info(user, source_replica_uid).await
}

/// `PUT /user-{uuid}/sync-from/{source}`.
pub(crate) async fn record_sync_info(
    stores: &dyn UserDocStores,
    ledger: Option<Arc<QuotaLedger>>,
    user: &UserId,
    source_replica_uid: &str,
    record: RecordSyncInfo,
) -> Result<(), Error> {
    check_source(source_replica_uid)?;
    stores
        .record_position(user, source_replica_uid, record, ledger)
        .await
}

/// `POST /user-{uuid}/sync-from/{source}`: applies the request's documents in
/// committed batches, then returns the framed response stream.
///
/// A thin driver of [`Receiver<Request>`]: it opens the store at the header,
/// applies each batch the receiver closes, and records the end. Documents of
/// batches committed before an error stay committed (and the source's position
/// with them), so a cut sync resumes where it stopped.
pub(crate) async fn exchange<S, E>(
    stores: Arc<dyn UserDocStores>,
    ledger: Option<Arc<QuotaLedger>>,
    user: &UserId,
    source_replica_uid: &str,
    body: S,
) -> Result<impl Stream<Item = Result<Bytes, std::io::Error>> + Send + use<S, E>, Error>
where
    S: Stream<Item = Result<Bytes, E>> + Send,
    E: std::error::Error,
{
    check_source(source_replica_uid)?;
    let mut body = std::pin::pin!(body);
    let mut receiver = Receiver::<Request>::with_limits(BatchLimits::DEFAULT);

    // Phase 1: the header, before any document.
    let header = loop {
        match receiver.poll() {
            Ok(Step::NeedInput) => match body.next().await {
                Some(Ok(chunk)) => receiver.push(&chunk),
                Some(Err(_)) | None => return Err(Error::BrokenSyncStream),
            },
            Ok(Step::Header(header)) => break header,
            // The receiver hands out nothing else before the header.
            Ok(_) | Err(_) => return Err(Error::BrokenSyncStream),
        }
    };
    stores
        .begin_exchange(
            user,
            source_replica_uid,
            header.ensure,
            Position::parse(header.last_known_generation, &header.last_known_trans_id)?,
        )
        .await?;
    let mut applier = Applier {
        source: source_replica_uid.to_owned(),
        user: user.clone(),
        ledger,
        seen: Seen::default(),
        applying: None,
    };
    let received = receive(&stores, &mut receiver, &mut body, &mut applier).await;
    // Whatever ended the upload, the batch still being applied is committed
    // (or its failure known) before the exchange answers.
    let applied = applier.wait().await;
    received?;
    applied?;
    receiver.finish().map_err(|_| Error::BrokenSyncStream)?;
    respond(stores, &applier, header.last_known_generation).await
}

/// Phase 2 of [`exchange`]: documents in batches, then the end.
async fn receive<S, E>(
    stores: &Arc<dyn UserDocStores>,
    receiver: &mut Receiver<Request>,
    body: &mut std::pin::Pin<&mut S>,
    applier: &mut Applier,
) -> Result<(), Error>
where
    S: Stream<Item = Result<Bytes, E>> + Send,
    E: std::error::Error,
{
    loop {
        let step = match receiver.poll() {
            Ok(step) => step,
            Err(broken) => {
                // Malformed or out of order: keep what is complete, then report.
                applier.flush(stores, broken.pending).await?;
                return Err(Error::BrokenSyncStream);
            }
        };
        match step {
            Step::NeedInput => match body.next().await {
                Some(Ok(chunk)) => receiver.push(&chunk),
                Some(Err(_)) | None => {
                    // Cut off: keep what is complete, report the stream as broken.
                    let rest = std::mem::replace(
                        receiver,
                        Receiver::<Request>::with_limits(BatchLimits::DEFAULT),
                    );
                    if let Err(broken) = rest.finish() {
                        applier.flush(stores, broken.pending).await?;
                    }
                    return Err(Error::BrokenSyncStream);
                }
            },
            Step::Batch(batch) => applier.flush(stores, batch).await?,
            Step::End { last, end } => {
                applier.flush(stores, last).await?;
                applier.record_end(&**stores, end).await?;
                return Ok(());
            }
            // A second header, or an error frame in a request: refused.
            Step::Header(_) | Step::PeerError { .. } => return Err(Error::BrokenSyncStream),
        }
    }
}

/// What the source has of this store's changes after this exchange's upload.
#[derive(Debug, Default, Clone)]
struct Seen {
    /// Generation ranges `(after, upto]` written by this exchange's batches.
    ranges: Vec<(u64, u64)>,
    /// Converged documents: id → our generation once the batch was applied.
    converged: HashMap<DocId, u64>,
}

impl Seen {
    fn wrote(&mut self, after: u64, upto: u64) {
        if upto <= after {
            return;
        }
        if let Some(last) = self.ranges.last_mut()
            && last.1 == after
        {
            last.1 = upto;
        } else if self.ranges.len() < MAX_SEEN_RANGES {
            self.ranges.push((after, upto));
        }
    }

    fn converged(&mut self, doc_id: DocId, at: u64) {
        if self.converged.len() < MAX_CONVERGED_SEEN || self.converged.contains_key(&doc_id) {
            self.converged.insert(doc_id, at);
        }
    }

    /// Whether the source already has `change` (so it is not sent back).
    fn has(&self, change: &Change) -> bool {
        let generation = change.generation;
        self.ranges
            .iter()
            .any(|(after, upto)| *after < generation && generation <= *upto)
            || self
                .converged
                .get(&change.doc_id)
                .is_some_and(|at| generation <= *at)
    }
}

/// A batch being applied while the next one is received.
type Applying = tokio::task::JoinHandle<Result<AppliedBatch, Error>>;

/// Applies documents of one source in batches and remembers what the source
/// already has (u1db's "seen ids", see [`Seen`]).
///
/// Pipelined: a batch is applied while the next one is received, so the
/// source keeps sending instead of waiting for HTTP/2 flow control to let it
/// (a window is smaller than a batch). Batches are applied one at a time, in
/// order; at most two are held per exchange: the one being applied and the
/// one being received.
struct Applier {
    source: String,
    user: UserId,
    ledger: Option<Arc<QuotaLedger>>,
    seen: Seen,
    /// The batch being applied, if any.
    applying: Option<Applying>,
}

impl Applier {
    /// Hands a batch of documents to the store, to apply in one transaction
    /// ([`UserDocStores::apply_from_source`]) once the batch before it is
    /// applied. Returns without waiting for it ([`Applier::wait`]).
    async fn flush(
        &mut self,
        stores: &Arc<dyn UserDocStores>,
        batch: ReceivedBatch,
    ) -> Result<(), Error> {
        if batch.is_empty() {
            return Ok(());
        }
        // The edge: ids, revisions and positions are parsed here, before any
        // store sees them.
        let docs = batch
            .into_docs()
            .into_iter()
            .map(SourceDoc::parse)
            .collect::<Result<Vec<_>, _>>()?;
        self.wait().await?;
        let stores = Arc::clone(stores);
        let user = self.user.clone();
        let source = self.source.clone();
        let ledger = self.ledger.clone();
        self.applying = Some(tokio::spawn(async move {
            stores.apply_from_source(&user, &source, docs, ledger).await
        }));
        Ok(())
    }

    /// Waits until the batch being applied, if any, is committed, and notes
    /// what the source now has.
    async fn wait(&mut self) -> Result<(), Error> {
        let Some(applying) = self.applying.take() else {
            return Ok(());
        };
        let applied = applying.await.map_err(|_| Error::StorageUnavailable)??;
        let (before, after) = applied.generations;
        // Opaque payloads are never merged: every revision this batch wrote is
        // one the source sent (Inserted), so the whole range is the source's.
        self.seen.wrote(before, after);
        for doc_id in applied.converged {
            self.seen.converged(doc_id, after);
        }
        Ok(())
    }

    /// Records that the source's documents up to `end` are all here. The
    /// last write before the success response: durable, and with it every
    /// batch of this exchange.
    async fn record_end(
        &mut self,
        stores: &dyn UserDocStores,
        end: ExchangeEnd,
    ) -> Result<(), Error> {
        self.wait().await?;
        stores
            .record_end(&self.user, &self.source, end, self.ledger.clone())
            .await
    }
}

/// What one applied batch did.
pub(super) struct Applied {
    /// Our generation before and after the batch.
    pub(super) generations: (u64, u64),
    /// Documents that were already here at the source's revision.
    pub(super) converged: Vec<DocId>,
}

/// The embedded store's batch of one source's documents, with u1db's target
/// rules (the body of [`UserDocStores::apply_from_source`] for [`UserStores`]).
pub(super) struct EmbeddedApply<'a> {
    pub(super) source: String,
    pub(super) user: UserId,
    pub(super) store: &'a UserStore,
    pub(super) ledger: Option<Arc<QuotaLedger>>,
}

impl EmbeddedApply<'_> {
    /// Applies `docs` in one transaction, charging the quota what they really
    /// stored (see [`charged_batch`]).
    pub(super) async fn apply(&self, docs: Vec<SourceDoc>) -> Result<Applied, Error> {
        let store = self.store;
        let source = self.source.clone();
        let docs_empty = docs.is_empty();
        // Ordered: `record_end` makes every batch durable before the response.
        let applied = charged_batch(
            store,
            self.ledger.as_ref(),
            &self.user,
            Commit::Ordered,
            move |batch| {
                let before = batch.get_generation_info()?.generation();
                let replica = ReplicaUid::parse(&source)?;
                // The source's positions, checked in the order it sent them
                // (u1db's rule, as a per-document source would check them).
                let mut last = batch.get_replica_gen_and_trans_id(&replica)?;
                let mut sent = Vec::with_capacity(docs.len());
                for doc in docs {
                    doc.position.check_follows(&last)?;
                    last = doc.position.clone();
                    sent.push(doc);
                }
                // Applied in id order: a large store's id index is then walked
                // once per batch, page after page, instead of one random page
                // per document (a stable sort keeps a repeated id's order).
                sent.sort_by(|a, b| a.doc_id.as_str().cmp(b.doc_id.as_str()));
                let mut converged = Vec::new();
                for received in sent {
                    let mut doc = Document::new(
                        received.doc_id,
                        Some(received.rev),
                        Some(received.payload.to_vec()),
                    );
                    let (state, _) = batch.put_doc_if_newer(&mut doc, SaveConflict::No, None)?;
                    if state == PutState::Converged {
                        converged.push(doc.doc_id);
                    }
                }
                if !docs_empty {
                    batch.set_replica_gen_and_trans_id(&Source::new(replica, last))?;
                }
                let after = batch.get_generation_info()?.generation();
                Ok(Applied {
                    generations: (before, after),
                    converged,
                })
            },
        )
        .await?;
        Ok(applied)
    }
}

/// How many changes after `since`, up to `upto`, the source does not have.
/// Walks ids only, [`COUNT_BATCH_IDS`] per store call.
async fn count_to_send(
    stores: &dyn UserDocStores,
    user: &UserId,
    since: u64,
    upto: u64,
    seen: &Seen,
) -> Result<u64, Error> {
    let mut cursor = since;
    let mut count = 0u64;
    while cursor < upto {
        let changes = stores.changes_after(user, cursor, COUNT_BATCH_IDS).await?;
        let full = changes.len() >= COUNT_BATCH_IDS;
        for change in &changes {
            if change.generation > upto {
                return Ok(count);
            }
            cursor = change.generation;
            if !seen.has(change) {
                count = count.saturating_add(1);
            }
        }
        if !full {
            break;
        }
    }
    Ok(count)
}

/// One response chunk: the documents after `cursor` (up to `upto`) the source
/// does not have, framed in pieces of whole frames (at most
/// [`RESPONSE_PIECE_BYTES`] unless one frame is larger), and the cursor to
/// continue from (`None` when done). Stops after [`RESPONSE_LIMITS`].
async fn next_chunk(
    stores: &dyn UserDocStores,
    user: &UserId,
    cursor: u64,
    upto: u64,
    seen: Arc<Seen>,
) -> Result<(Vec<Bytes>, Option<u64>), Error> {
    let skip: SkipChange = Arc::new(move |change| seen.has(change));
    let chunk = stores
        .read_changes(user, cursor, upto, RESPONSE_LIMITS, skip)
        .await?;
    let mut pieces = Vec::new();
    let mut piece: Vec<u8> = Vec::new();
    for doc in chunk.docs {
        // A frame is its payload plus a few short fields: estimated, so that
        // a piece is allocated once.
        let estimate = doc.payload.len() + doc.id.len() + doc.rev.len() + doc.trans_id.len() + 32;
        if !piece.is_empty() && piece.len() + estimate > RESPONSE_PIECE_BYTES {
            pieces.push(Bytes::from(std::mem::take(&mut piece)));
        }
        if piece.is_empty() {
            piece.reserve_exact(estimate.max(RESPONSE_PIECE_BYTES));
        }
        // Stored documents came in frames, so they fit one: one that does not
        // is refused (an error frame), never cut.
        Frame::Doc(doc)
            .encode(&mut piece)
            .map_err(|_| StoreError::Corrupt("stored document does not fit a frame"))?;
    }
    if !piece.is_empty() {
        pieces.push(Bytes::from(piece));
    }
    Ok((pieces, chunk.next))
}

/// The response: every document changed after `since` that the source did not
/// just send, read from the store and framed a chunk at a time.
///
/// The position sent is the store's generation when the response starts; a
/// document changed again while the response streams moves past it and is sent
/// by the next sync instead (so `document_count` is an upper bound then).
async fn respond(
    stores: Arc<dyn UserDocStores>,
    applier: &Applier,
    since: u64,
) -> Result<impl Stream<Item = Result<Bytes, std::io::Error>> + Send + use<>, Error> {
    let user = applier.user.clone();
    // Another device's batches may be committed in order but not acknowledged
    // yet: they are made durable before a success response names them.
    let (replica_uid, position) = stores
        .durable_position(&user, &applier.source, applier.ledger.clone())
        .await?;
    let upto = position.generation();
    let transaction_id = position.transaction_id().as_str().to_owned();
    let seen = applier.seen.clone();
    let document_count = count_to_send(&*stores, &user, since, upto, &seen).await?;
    let header = Frame::ResponseHeader(ExchangeResponseHeader {
        target_replica_uid: replica_uid,
        target_generation: upto,
        target_transaction_id: transaction_id.clone(),
        document_count,
    })
    .to_bytes()
    .map_err(|_| StoreError::Corrupt("response header does not fit a frame"))?;
    let end = Frame::End(ExchangeEnd {
        generation: upto,
        transaction_id,
    })
    .to_bytes()
    .map_err(|_| StoreError::Corrupt("end position does not fit a frame"))?;

    let seen = Arc::new(seen);
    let start = if since < upto {
        Cursor::At(since)
    } else {
        Cursor::End
    };
    let body = stream::unfold(start, move |cursor| {
        let stores = Arc::clone(&stores);
        let user = user.clone();
        let seen = Arc::clone(&seen);
        let end = end.clone();
        async move {
            match cursor {
                Cursor::At(cursor) => Some(
                    match next_chunk(&*stores, &user, cursor, upto, seen).await {
                        Ok((pieces, Some(next))) => (pieces, Cursor::At(next)),
                        Ok((pieces, None)) => (pieces, Cursor::End),
                        Err(error) => (vec![error_frame(&error)], Cursor::Done),
                    },
                ),
                Cursor::End => Some((vec![end], Cursor::Done)),
                Cursor::Done => None,
            }
        }
    })
    .flat_map(stream::iter)
    .filter(|chunk| std::future::ready(!chunk.is_empty()))
    .map(Ok::<_, std::io::Error>);
    Ok(stream::once(async move { Ok(header) }).chain(body))
}

/// Where the response stream stands.
enum Cursor {
    /// Documents after this generation are still to send.
    At(u64),
    /// Every document is sent: the end frame is next.
    End,
    /// The end or an error frame was sent: nothing follows.
    Done,
}

/// The error frame that ends a response the server could not finish: the
/// error's kind and its public message (never internal details).
fn error_frame(error: &Error) -> Bytes {
    tracing::error!(error = %error, "sync response failed mid-stream");
    let body = ErrorBody::new(error.kind(), error.public_message());
    // An error body is a short kind and message: it always fits a frame.
    Frame::Error(body).to_bytes().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use soledad_protocol::{BATCH_DOCS, ErrorKind, FrameDecoder, Response};
    use soledad_store::{OpaqueDatabase, Rev, StoreWorker};

    use super::*;

    /// A store holding `count` documents written by source `src` (generations 1..=count).
    fn store_with(count: usize) -> UserStore {
        store_of(&vec![10; count])
    }

    /// A store holding one document per entry of `sizes`, of that payload size.
    fn store_of(sizes: &[usize]) -> UserStore {
        let mut db = OpaqueDatabase::open_opaque_in_memory().unwrap();
        for (i, size) in sizes.iter().enumerate() {
            let mut doc = Document::new(
                DocId::parse(&format!("d{i:04}")).unwrap(),
                Some(Rev::parse("src:1").unwrap()),
                Some(vec![7; *size]),
            );
            db.put_doc_if_newer(&mut doc, SaveConflict::No, None)
                .unwrap();
        }
        Arc::new(StoreWorker::spawn(db, "test-store").unwrap())
    }

    /// The stores with `store` open as the test user's.
    fn stores_of(store: &UserStore) -> Arc<dyn UserDocStores> {
        Arc::new(super::super::stores::UserStores::with_open(
            &UserId::parse("user").unwrap(),
            store.clone(),
        ))
    }

    /// An exchange's applier with what its source has seen.
    fn applier(seen: Seen) -> Applier {
        Applier {
            source: "source".to_owned(),
            user: UserId::parse("user").unwrap(),
            ledger: None,
            seen,
            applying: None,
        }
    }

    /// The response's chunks, decoded: (frames per chunk, all frames).
    async fn collect(store: UserStore, since: u64, seen: Seen) -> (Vec<usize>, Vec<Frame>) {
        let stream = respond(stores_of(&store), &applier(seen), since)
            .await
            .unwrap();
        let chunks: Vec<Bytes> = stream.map(|c| c.unwrap()).collect().await;
        let mut per_chunk = Vec::new();
        let mut frames = Vec::new();
        for chunk in chunks {
            let mut decoder = FrameDecoder::new();
            decoder.push(&chunk);
            let mut n = 0;
            while let Some(frame) = decoder.next_frame().unwrap() {
                frames.push(frame);
                n += 1;
            }
            assert_eq!(decoder.buffered(), 0, "chunks hold whole frames");
            per_chunk.push(n);
        }
        (per_chunk, frames)
    }

    fn doc_ids(frames: &[Frame]) -> Vec<String> {
        frames
            .iter()
            .filter_map(|f| match f {
                Frame::Doc(d) => Some(d.id.clone()),
                _ => None,
            })
            .collect()
    }

    #[tokio::test]
    async fn the_response_is_read_a_bounded_chunk_at_a_time() {
        let count = 2 * BATCH_DOCS + 10;
        let (per_chunk, frames) = collect(store_with(count), 0, Seen::default()).await;
        // Header, chunks of at most a batch, end.
        assert_eq!(per_chunk.first(), Some(&1));
        assert_eq!(per_chunk.last(), Some(&1));
        let middle = &per_chunk[1..per_chunk.len() - 1];
        assert_eq!(middle.len(), 3);
        assert!(middle.iter().all(|n| *n <= BATCH_DOCS), "{middle:?}");
        let Some(Frame::ResponseHeader(header)) = frames.first() else {
            panic!("no header");
        };
        assert_eq!(header.document_count, count as u64);
        assert_eq!(header.target_generation, count as u64);
        let ids = doc_ids(&frames);
        let expected: Vec<String> = (0..count).map(|i| format!("d{i:04}")).collect();
        assert_eq!(ids, expected, "every change once, in generation order");
        assert!(matches!(frames.last(), Some(Frame::End(end)) if end.generation == count as u64));
    }

    /// Large responses reach HTTP in pieces of whole frames, none larger than
    /// [`RESPONSE_PIECE_BYTES`] unless one document's frame is.
    #[tokio::test]
    async fn the_response_is_handed_out_in_small_pieces_of_whole_frames() {
        let mut sizes = vec![10 * 1024; 300];
        sizes[7] = 200 * 1024;
        let (per_piece, frames) = collect(store_of(&sizes), 0, Seen::default()).await;
        assert_eq!(doc_ids(&frames).len(), 300);
        let stream = respond(stores_of(&store_of(&sizes)), &applier(Seen::default()), 0)
            .await
            .unwrap();
        let pieces: Vec<Bytes> = stream.map(|c| c.unwrap()).collect().await;
        assert_eq!(pieces.len(), per_piece.len());
        let large: Vec<usize> = pieces
            .iter()
            .map(Bytes::len)
            .filter(|len| *len > RESPONSE_PIECE_BYTES)
            .collect();
        assert_eq!(large.len(), 1, "only the large document's frame: {large:?}");
        assert!(large[0] < 201 * 1024);
        // 300 documents of 10 KiB: six per piece, about fifty pieces.
        assert!(pieces.len() >= 300 / 6, "{}", pieces.len());
    }

    #[tokio::test]
    async fn what_the_source_just_wrote_or_already_had_is_not_sent_back() {
        let mut seen = Seen::default();
        // Two batches of this exchange wrote generations 3..=5 and 6..=8.
        seen.wrote(2, 5);
        seen.wrote(5, 8);
        assert_eq!(seen.ranges, vec![(2, 8)], "adjacent batches merge");
        seen.converged(DocId::parse("d0009").unwrap(), 10);
        let (_, frames) = collect(store_with(12), 1, seen).await;
        let ids = doc_ids(&frames);
        assert_eq!(ids, ["d0001", "d0008", "d0010", "d0011"]);
        let Some(Frame::ResponseHeader(header)) = frames.first() else {
            panic!("no header");
        };
        assert_eq!(header.document_count, 4);
    }

    #[tokio::test]
    async fn changes_after_the_response_started_wait_for_the_next_sync() {
        let store = store_with(3);
        let stream = respond(stores_of(&store), &applier(Seen::default()), 0)
            .await
            .unwrap();
        // A concurrent writer changes a document after the header is made.
        store
            .run(|db| {
                let mut doc = Document::new(
                    DocId::parse("d0000").unwrap(),
                    Some(Rev::parse("src:2").unwrap()),
                    Some(vec![1]),
                );
                db.put_doc_if_newer(&mut doc, SaveConflict::No, None)
                    .map(|_| ())
            })
            .await
            .unwrap();
        let chunks: Vec<Bytes> = stream.map(|c| c.unwrap()).collect().await;
        let mut decoder = FrameDecoder::new();
        for chunk in chunks {
            decoder.push(&chunk);
        }
        let mut frames = Vec::new();
        while let Some(frame) = decoder.next_frame().unwrap() {
            frames.push(frame);
        }
        // d0000 moved to generation 4, past the position sent (3): next sync.
        assert_eq!(doc_ids(&frames), ["d0001", "d0002"]);
        assert!(matches!(frames.last(), Some(Frame::End(end)) if end.generation == 3));
    }

    #[tokio::test]
    async fn a_failure_mid_response_is_sent_as_an_error_frame_after_the_documents_before_it() {
        let count = 2 * BATCH_DOCS + 10;
        let store = store_with(count);
        let mut stream = Box::pin(
            respond(stores_of(&store), &applier(Seen::default()), 0)
                .await
                .unwrap(),
        );
        let mut received = Vec::new();
        // The header and the first batch of documents arrive...
        for _ in 0..2 {
            received.push(stream.next().await.unwrap().unwrap());
        }
        // ...then the store fails (here: it is closed under the response).
        store.close().await.unwrap();
        while let Some(chunk) = stream.next().await {
            received.push(chunk.expect("a failure is a frame, not a cut stream"));
        }

        // What the client's downloader sees, through the same receiver.
        let mut receiver = Receiver::<Response>::new();
        for chunk in &received {
            receiver.push(chunk);
        }
        assert!(matches!(receiver.poll(), Ok(Step::Header(_))));
        let Ok(Step::Batch(batch)) = receiver.poll() else {
            panic!("the documents before the failure come first");
        };
        let expected: Vec<String> = (0..BATCH_DOCS).map(|i| format!("d{i:04}")).collect();
        let ids: Vec<String> = batch.docs().iter().map(|d| d.id.clone()).collect();
        assert_eq!(ids, expected);
        let Ok(Step::PeerError { last, error }) = receiver.poll() else {
            panic!("the failure arrives as an error frame");
        };
        assert!(last.is_empty());
        assert_eq!(error.kind(), Some(ErrorKind::Unavailable));
        assert!(
            !error.message.contains("stopped"),
            "no internal detail: {}",
            error.message
        );
        // The error frame ends the stream: no end frame, nothing after it.
        assert!(receiver.finish().is_ok());
    }
}
