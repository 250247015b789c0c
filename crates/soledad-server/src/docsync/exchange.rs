//! The three sync routes' work, without HTTP: where the target is, recording a
//! source's position, and the streamed exchange.
//!
//! Memory is bounded by a batch on both legs: the upload is applied
//! [`APPLY_BATCH_DOCS`] documents (or [`APPLY_BATCH_BYTES`]) at a time, and the
//! response is read from the store with a generation cursor, one batch of at
//! most [`RESPONSE_BATCH_DOCS`] documents (or [`RESPONSE_BATCH_BYTES`]) per
//! store call, never as a list of every changed id.
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
use futures_util::{Stream, StreamExt, TryStreamExt, stream};
use soledad_protocol::{
    DocFrame, ExchangeEnd, ExchangeRequestHeader, ExchangeResponseHeader, Frame, FrameDecoder,
    RecordSyncInfo, SyncInfo,
};
use soledad_store::vectorclock::is_valid_replica_uid;
use soledad_store::{
    Change, Document, Position, PutState, ReplicaUid, SaveConflict, Source, StoreError,
};

use super::stores::{Commit, UserStore, UserStores, charged_batch};
use crate::blobs::{QuotaLedger, UserId};
use crate::error::Error;

/// Documents applied per transaction (each also records the source's position).
const APPLY_BATCH_DOCS: usize = 256;
/// Payload bytes after which a batch is applied early (bounds memory).
const APPLY_BATCH_BYTES: usize = 8 << 20;
/// Documents read per response chunk.
const RESPONSE_BATCH_DOCS: usize = 256;
/// Payload bytes after which a response chunk ends early (bounds memory).
const RESPONSE_BATCH_BYTES: usize = 8 << 20;
/// Changed ids read per store call while counting the response's documents.
const COUNT_BATCH_IDS: usize = 4096;
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

async fn existing_store(
    stores: &UserStores,
    user: &UserId,
    ensure: bool,
) -> Result<UserStore, Error> {
    stores
        .get(user, ensure)
        .await?
        .ok_or(Error::DatabaseDoesNotExist)
}

/// `GET /user-{uuid}/sync-from/{source}`.
pub(crate) async fn sync_info(
    stores: &UserStores,
    user: &UserId,
    source_replica_uid: &str,
) -> Result<SyncInfo, Error> {
    check_source(source_replica_uid)?;
    let store = existing_store(stores, user, false).await?;
    let source = source_replica_uid.to_owned();
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
}

/// `PUT /user-{uuid}/sync-from/{source}`.
pub(crate) async fn record_sync_info(
    stores: &UserStores,
    ledger: Option<Arc<QuotaLedger>>,
    user: &UserId,
    source_replica_uid: &str,
    record: RecordSyncInfo,
) -> Result<(), Error> {
    check_source(source_replica_uid)?;
    let store = existing_store(stores, user, false).await?;
    let source = source_replica_uid.to_owned();
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
                Position::parse(record.generation, &record.transaction_id)?,
            ))
        },
    )
    .await
}

/// What the request stream has delivered so far.
enum Expect {
    Header,
    DocOrEnd,
    Done,
}

/// `POST /user-{uuid}/sync-from/{source}`: applies the request's documents in
/// committed batches, then returns the framed response stream.
///
/// Documents of batches committed before an error stay committed (and the source's
/// position with them), so a cut sync resumes where it stopped.
pub(crate) async fn exchange<S, E>(
    stores: &UserStores,
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
    let mut decoder = FrameDecoder::new();
    let mut expect = Expect::Header;
    let mut store: Option<UserStore> = None;
    let mut header: Option<ExchangeRequestHeader> = None;
    let mut applier = Applier {
        source: source_replica_uid.to_owned(),
        user: user.clone(),
        ledger,
        pending: Vec::new(),
        pending_bytes: 0,
        seen: Seen::default(),
        unsynced: false,
    };

    while !matches!(expect, Expect::Done) {
        let frame = match decoder.next_frame().map_err(|_| Error::BrokenSyncStream)? {
            Some(frame) => frame,
            None => match body.next().await {
                Some(Ok(chunk)) => {
                    decoder.push(&chunk);
                    continue;
                }
                Some(Err(_)) | None => {
                    // Cut off: keep what is complete, report the stream as broken.
                    if let Some(store) = &store {
                        applier.flush(store).await?;
                    }
                    return Err(Error::BrokenSyncStream);
                }
            },
        };
        expect = match (expect, frame) {
            (Expect::Header, Frame::RequestHeader(h)) => {
                let opened = existing_store(stores, user, h.ensure).await?;
                let known = Position::parse(h.last_known_generation, &h.last_known_trans_id)?;
                let source = applier.source.clone();
                opened
                    .run(move |db| {
                        if source == db.replica_uid() {
                            return Err(StoreError::InvalidReplicaUid);
                        }
                        db.validate_gen_and_trans_id(&known)
                    })
                    .await?;
                store = Some(opened);
                header = Some(h);
                Expect::DocOrEnd
            }
            (Expect::DocOrEnd, Frame::Doc(doc)) => {
                applier.pending_bytes += doc.payload.len();
                applier.pending.push(doc);
                if applier.pending.len() >= APPLY_BATCH_DOCS
                    || applier.pending_bytes >= APPLY_BATCH_BYTES
                {
                    let store = store.as_ref().ok_or(Error::BrokenSyncStream)?;
                    applier.flush(store).await?;
                }
                Expect::DocOrEnd
            }
            (Expect::DocOrEnd, Frame::End(end)) => {
                let store = store.as_ref().ok_or(Error::BrokenSyncStream)?;
                applier.flush(store).await?;
                applier.record_end(store, end).await?;
                Expect::Done
            }
            _ => return Err(Error::BrokenSyncStream),
        };
    }
    if decoder.buffered() > 0 {
        return Err(Error::BrokenSyncStream);
    }
    let (Some(store), Some(header)) = (store, header) else {
        return Err(Error::BrokenSyncStream);
    };
    respond(store, &applier, header.last_known_generation).await
}

/// What the source has of this store's changes after this exchange's upload.
#[derive(Debug, Default, Clone)]
struct Seen {
    /// Generation ranges `(after, upto]` written by this exchange's batches.
    ranges: Vec<(u64, u64)>,
    /// Converged documents: id → our generation once the batch was applied.
    converged: HashMap<String, u64>,
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

    fn converged(&mut self, doc_id: String, at: u64) {
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

/// Applies documents of one source in batches and remembers what the source
/// already has (u1db's "seen ids", see [`Seen`]).
struct Applier {
    source: String,
    user: UserId,
    ledger: Option<Arc<QuotaLedger>>,
    pending: Vec<DocFrame>,
    pending_bytes: usize,
    seen: Seen,
    /// A batch was committed in order but is not known to be on disk yet.
    unsynced: bool,
}

/// What one applied batch did.
struct Applied {
    /// Our generation before and after the batch.
    generations: (u64, u64),
    /// Documents that were already here at the source's revision.
    converged: Vec<String>,
}

impl Applier {
    /// Applies the pending documents in one transaction, charging the quota
    /// what they really stored (see [`charged_batch`]).
    async fn flush(&mut self, store: &UserStore) -> Result<(), Error> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let docs = std::mem::take(&mut self.pending);
        self.pending_bytes = 0;
        let source = self.source.clone();
        // Ordered: `record_end` makes every batch durable before the response.
        let applied = charged_batch(
            store,
            self.ledger.as_ref(),
            &self.user,
            Commit::Ordered,
            move |batch| {
                let before = batch.get_generation_info()?.generation();
                let replica = ReplicaUid::parse(&source)?;
                let mut converged = Vec::new();
                let mut last = None;
                for frame in docs {
                    let mut doc =
                        Document::new(frame.id, Some(frame.rev), Some(frame.payload.to_vec()));
                    let from = Source::new(
                        replica.clone(),
                        Position::parse(frame.generation, &frame.trans_id)?,
                    );
                    let (state, _) =
                        batch.put_doc_if_newer(&mut doc, SaveConflict::No, Some(&from))?;
                    last = Some(from);
                    if state == PutState::Converged {
                        converged.push(doc.doc_id);
                    }
                }
                if let Some(last) = last {
                    batch.set_replica_gen_and_trans_id(&last)?;
                }
                let after = batch.get_generation_info()?.generation();
                Ok(Applied {
                    generations: (before, after),
                    converged,
                })
            },
        )
        .await?;
        self.unsynced = true;
        let (before, after) = applied.generations;
        // Opaque payloads are never merged: every revision this batch wrote is
        // one the source sent (Inserted), so the whole range is the source's.
        self.seen.wrote(before, after);
        for doc_id in applied.converged {
            self.seen.converged(doc_id, after);
        }
        Ok(())
    }

    /// Makes every commit of the store durable: a durable commit that
    /// rewrites the source's recorded position (a commit must write to sync).
    async fn sync_to_disk(&self, store: &UserStore) -> Result<(), Error> {
        let source = self.source.clone();
        charged_batch(
            store,
            self.ledger.as_ref(),
            &self.user,
            Commit::Durable,
            move |batch| {
                let replica = ReplicaUid::parse(&source)?;
                let known = batch.get_replica_gen_and_trans_id(&replica)?;
                batch.set_replica_gen_and_trans_id(&Source::new(replica, known))
            },
        )
        .await
    }

    /// Records that the source's documents up to `end` are all here. The
    /// last write before the success response: durable, and with it every
    /// batch of this exchange.
    async fn record_end(&self, store: &UserStore, end: ExchangeEnd) -> Result<(), Error> {
        let source = self.source.clone();
        let unsynced = self.unsynced;
        charged_batch(
            store,
            self.ledger.as_ref(),
            &self.user,
            Commit::Durable,
            move |batch| {
                let replica = ReplicaUid::parse(&source)?;
                let known = batch.get_replica_gen_and_trans_id(&replica)?;
                // The source's own generations: ordered here (it is the client's
                // counter), unlike the server positions a client records.
                if end.generation > known.generation() {
                    let end = Position::parse(end.generation, &end.transaction_id)?;
                    batch.set_replica_gen_and_trans_id(&Source::new(replica, end))?;
                } else if unsynced {
                    // A commit that writes nothing does not sync: rewrite the
                    // position so this durable commit covers the ordered batches.
                    batch.set_replica_gen_and_trans_id(&Source::new(replica, known))?;
                }
                Ok(())
            },
        )
        .await
    }
}

/// How many changes after `since`, up to `upto`, the source does not have.
/// Walks ids only, [`COUNT_BATCH_IDS`] per store call.
async fn count_to_send(
    store: &UserStore,
    since: u64,
    upto: u64,
    seen: &Seen,
) -> Result<u64, Error> {
    let mut cursor = since;
    let mut count = 0u64;
    while cursor < upto {
        let changes = store
            .run(move |db| db.changes_since(cursor, COUNT_BATCH_IDS))
            .await?;
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
/// does not have, framed, and the cursor to continue from (`None` when done).
/// Stops after [`RESPONSE_BATCH_DOCS`] changes or [`RESPONSE_BATCH_BYTES`] of
/// payload, whichever comes first.
async fn next_chunk(
    store: &UserStore,
    cursor: u64,
    upto: u64,
    seen: Arc<Seen>,
) -> Result<(Bytes, Option<u64>), Error> {
    Ok(store
        .run(move |db| {
            let changes = db.changes_since(cursor, RESPONSE_BATCH_DOCS)?;
            let full = changes.len() >= RESPONSE_BATCH_DOCS;
            let mut out = Vec::new();
            let mut cursor = cursor;
            for change in changes {
                if change.generation > upto {
                    return Ok((Bytes::from(out), None));
                }
                cursor = change.generation;
                if seen.has(&change) {
                    continue;
                }
                // Same worker call as the query above: nothing changed meanwhile.
                let Some((doc, _)) = db.get_doc_with_generation(&change.doc_id)? else {
                    continue;
                };
                let (Some(rev), Some(payload)) = (doc.rev, doc.content) else {
                    continue;
                };
                Frame::Doc(DocFrame {
                    id: change.doc_id,
                    rev,
                    generation: change.generation,
                    trans_id: change.transaction_id,
                    payload: payload.into(),
                })
                .encode(&mut out)
                // Stored documents came in frames, so they fit one: one that
                // does not is refused, never cut.
                .map_err(|_| StoreError::Corrupt("stored document does not fit a frame"))?;
                if out.len() >= RESPONSE_BATCH_BYTES {
                    return Ok((Bytes::from(out), Some(cursor)));
                }
            }
            let next = (full && cursor < upto).then_some(cursor);
            Ok((Bytes::from(out), next))
        })
        .await?)
}

/// The response: every document changed after `since` that the source did not
/// just send, read from the store and framed a chunk at a time.
///
/// The position sent is the store's generation when the response starts; a
/// document changed again while the response streams moves past it and is sent
/// by the next sync instead (so `document_count` is an upper bound then).
async fn respond(
    store: UserStore,
    applier: &Applier,
    since: u64,
) -> Result<impl Stream<Item = Result<Bytes, std::io::Error>> + Send + use<>, Error> {
    let (replica_uid, (upto, transaction_id), durable) = store
        .run(move |db| {
            let position = db.get_generation_info()?;
            let durable = db.durable_generation() >= position.generation();
            let position = (
                position.generation(),
                position.transaction_id().as_str().to_owned(),
            );
            Ok((db.replica_uid().to_owned(), position, durable))
        })
        .await?;
    if !durable {
        // Another device's batches, committed in order but not acknowledged
        // yet: make them durable before a success response names them.
        applier.sync_to_disk(&store).await?;
    }
    let seen = applier.seen.clone();
    let document_count = count_to_send(&store, since, upto, &seen).await?;
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
    let start = (since < upto).then_some(since);
    let docs = stream::try_unfold(start, move |cursor| {
        let store = store.clone();
        let seen = Arc::clone(&seen);
        async move {
            let Some(cursor) = cursor else {
                return Ok(None);
            };
            let (chunk, next) = next_chunk(&store, cursor, upto, seen)
                .await
                .map_err(std::io::Error::other)?;
            Ok::<_, std::io::Error>(Some((chunk, next)))
        }
    })
    .try_filter(|chunk| std::future::ready(!chunk.is_empty()));
    Ok(stream::once(async move { Ok(header) })
        .chain(docs)
        .chain(stream::once(async move { Ok(end) })))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use soledad_store::{OpaqueDatabase, StoreWorker};

    use super::*;

    /// A store holding `count` documents written by source `src` (generations 1..=count).
    fn store_with(count: usize) -> UserStore {
        let mut db = OpaqueDatabase::open_opaque_in_memory().unwrap();
        for i in 0..count {
            let mut doc = Document::new(
                format!("d{i:04}"),
                Some("src:1".to_owned()),
                Some(vec![7; 10]),
            );
            db.put_doc_if_newer(&mut doc, SaveConflict::No, None)
                .unwrap();
        }
        Arc::new(StoreWorker::spawn(db, "test-store").unwrap())
    }

    /// An exchange's applier with what its source has seen.
    fn applier(seen: Seen) -> Applier {
        Applier {
            source: "source".to_owned(),
            user: UserId::parse("user").unwrap(),
            ledger: None,
            pending: Vec::new(),
            pending_bytes: 0,
            seen,
            unsynced: false,
        }
    }

    /// The response's chunks, decoded: (frames per chunk, all frames).
    async fn collect(store: UserStore, since: u64, seen: Seen) -> (Vec<usize>, Vec<Frame>) {
        let stream = respond(store, &applier(seen), since).await.unwrap();
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
        let count = 2 * RESPONSE_BATCH_DOCS + 10;
        let (per_chunk, frames) = collect(store_with(count), 0, Seen::default()).await;
        // Header, chunks of at most a batch, end.
        assert_eq!(per_chunk.first(), Some(&1));
        assert_eq!(per_chunk.last(), Some(&1));
        let middle = &per_chunk[1..per_chunk.len() - 1];
        assert_eq!(middle.len(), 3);
        assert!(
            middle.iter().all(|n| *n <= RESPONSE_BATCH_DOCS),
            "{middle:?}"
        );
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

    #[tokio::test]
    async fn what_the_source_just_wrote_or_already_had_is_not_sent_back() {
        let mut seen = Seen::default();
        // Two batches of this exchange wrote generations 3..=5 and 6..=8.
        seen.wrote(2, 5);
        seen.wrote(5, 8);
        assert_eq!(seen.ranges, vec![(2, 8)], "adjacent batches merge");
        seen.converged("d0009".to_owned(), 10);
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
        let stream = respond(store.clone(), &applier(Seen::default()), 0)
            .await
            .unwrap();
        // A concurrent writer changes a document after the header is made.
        store
            .run(|db| {
                let mut doc =
                    Document::new("d0000".to_owned(), Some("src:2".to_owned()), Some(vec![1]));
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
}
