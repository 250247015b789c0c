//! The three sync routes' work, without HTTP: where the target is, recording a
//! source's position, and the streamed exchange.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::{Stream, StreamExt, stream};
use soledad_protocol::{
    DocFrame, ExchangeEnd, ExchangeRequestHeader, ExchangeResponseHeader, Frame, FrameDecoder,
    RecordSyncInfo, SyncInfo,
};
use soledad_store::vectorclock::is_valid_replica_uid;
use soledad_store::{Change, Document, PutState, StoreError};

use super::stores::{UserStore, UserStores};
use crate::blobs::{QuotaLedger, UserId};
use crate::error::Error;

/// Documents applied per transaction (each also records the source's position).
const APPLY_BATCH_DOCS: usize = 256;
/// Payload bytes after which a batch is applied early (bounds memory).
const APPLY_BATCH_BYTES: usize = 8 << 20;
/// Documents read per response chunk.
const RESPONSE_BATCH_DOCS: usize = 256;

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
            let (target_gen, target_tid) = db.get_generation_info()?;
            let (source_gen, source_tid) = db.get_replica_gen_and_trans_id(&source)?;
            Ok(SyncInfo {
                target_replica_uid: db.replica_uid().to_owned(),
                target_replica_generation: target_gen,
                target_replica_transaction_id: target_tid,
                source_replica_uid: source,
                source_replica_generation: source_gen,
                source_transaction_id: source_tid,
            })
        })
        .await?)
}

/// `PUT /user-{uuid}/sync-from/{source}`.
pub(crate) async fn record_sync_info(
    stores: &UserStores,
    user: &UserId,
    source_replica_uid: &str,
    record: RecordSyncInfo,
) -> Result<(), Error> {
    check_source(source_replica_uid)?;
    let store = existing_store(stores, user, false).await?;
    let source = source_replica_uid.to_owned();
    Ok(store
        .run(move |db| {
            if source == db.replica_uid() {
                return Err(StoreError::InvalidReplicaUid);
            }
            db.set_replica_gen_and_trans_id(&source, record.generation, &record.transaction_id)
        })
        .await?)
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
        seen: HashMap::new(),
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
                let (known_gen, known_tid) =
                    (h.last_known_generation, h.last_known_trans_id.clone());
                let source = applier.source.clone();
                opened
                    .run(move |db| {
                        if source == db.replica_uid() {
                            return Err(StoreError::InvalidReplicaUid);
                        }
                        db.validate_gen_and_trans_id(known_gen, &known_tid)
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
    respond(store, header.last_known_generation, applier.seen).await
}

/// Applies documents of one source in batches and remembers what the source
/// already has (u1db's "seen ids").
struct Applier {
    source: String,
    user: UserId,
    ledger: Option<Arc<QuotaLedger>>,
    pending: Vec<DocFrame>,
    pending_bytes: usize,
    /// Id → our generation at which the source's version is current here.
    seen: HashMap<String, u64>,
}

impl Applier {
    async fn flush(&mut self, store: &UserStore) -> Result<(), Error> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let docs = std::mem::take(&mut self.pending);
        let bytes = std::mem::take(&mut self.pending_bytes);
        // Charge the quota before writing: nothing is stored past it.
        let reservation = match &self.ledger {
            Some(ledger) => Some(ledger.reserve(&self.user, bytes as u64).await?),
            None => None,
        };
        let source = self.source.clone();
        let applied = store
            .run(move |db| {
                db.batch(|batch| {
                    let mut applied = Vec::with_capacity(docs.len());
                    let mut last = None;
                    for frame in docs {
                        let mut doc =
                            Document::new(frame.id, Some(frame.rev), Some(frame.payload.to_vec()));
                        let (state, at_gen) = batch.put_doc_if_newer(
                            &mut doc,
                            false,
                            Some(&source),
                            frame.generation,
                            &frame.trans_id,
                        )?;
                        last = Some((frame.generation, frame.trans_id));
                        applied.push((doc.doc_id, state, at_gen));
                    }
                    if let Some((generation, trans_id)) = last {
                        batch.set_replica_gen_and_trans_id(&source, generation, &trans_id)?;
                    }
                    Ok::<_, StoreError>(applied)
                })
            })
            .await?;
        if let Some(reservation) = reservation {
            reservation.commit();
        }
        for (doc_id, state, at_gen) in applied {
            if matches!(state, PutState::Inserted | PutState::Converged) {
                self.seen.insert(doc_id, at_gen);
            }
        }
        Ok(())
    }

    /// Records that the source's documents up to `end` are all here.
    async fn record_end(&self, store: &UserStore, end: ExchangeEnd) -> Result<(), Error> {
        let source = self.source.clone();
        Ok(store
            .run(move |db| {
                let (known, _) = db.get_replica_gen_and_trans_id(&source)?;
                if end.generation > known {
                    db.set_replica_gen_and_trans_id(&source, end.generation, &end.transaction_id)?;
                }
                Ok(())
            })
            .await?)
    }
}

/// The response: every document changed after `since` that the source did not
/// just send, read and framed a batch at a time.
async fn respond(
    store: UserStore,
    since: u64,
    seen: HashMap<String, u64>,
) -> Result<impl Stream<Item = Result<Bytes, std::io::Error>> + Send, Error> {
    let (replica_uid, changes) = store
        .run(move |db| Ok((db.replica_uid().to_owned(), db.whats_changed(since)?)))
        .await?;
    let to_send: Vec<Change> = changes
        .changes
        .into_iter()
        .filter(|c| seen.get(&c.doc_id).is_none_or(|at| *at < c.generation))
        .collect();
    let header = Frame::ResponseHeader(ExchangeResponseHeader {
        target_replica_uid: replica_uid,
        target_generation: changes.generation,
        target_transaction_id: changes.transaction_id.clone(),
        document_count: to_send.len() as u64,
    })
    .to_bytes();
    let end = Frame::End(ExchangeEnd {
        generation: changes.generation,
        transaction_id: changes.transaction_id,
    })
    .to_bytes();

    let chunks: Vec<Vec<Change>> = to_send
        .chunks(RESPONSE_BATCH_DOCS)
        .map(<[Change]>::to_vec)
        .collect();
    let docs = stream::iter(chunks).then(move |chunk| {
        let store = store.clone();
        async move {
            let ids: Vec<String> = chunk.iter().map(|c| c.doc_id.clone()).collect();
            let docs = store
                .run(move |db| db.get_docs(&ids, false, true))
                .await
                .map_err(std::io::Error::other)?;
            let mut by_id: HashMap<String, Document<Vec<u8>>> =
                docs.into_iter().map(|d| (d.doc_id.clone(), d)).collect();
            let mut out = Vec::new();
            for change in chunk {
                let Some(doc) = by_id.remove(&change.doc_id) else {
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
                .encode(&mut out);
            }
            Ok::<_, std::io::Error>(Bytes::from(out))
        }
    });
    Ok(stream::once(async move { Ok(header) })
        .chain(docs)
        .chain(stream::once(async move { Ok(end) })))
}
