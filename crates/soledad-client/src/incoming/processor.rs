//! The processing loop: consumers, one pass, the background task.

use std::collections::HashMap;
use std::io::Read as _;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde_json::Value;
use soledad_crypto::{IncomingIdentity, Preamble};

use super::wire::{ClaimOutcome, Wire};
use crate::error::Error;
use crate::soledad::Soledad;

/// The namespace the server's incoming box uses (the MX's deliveries).
pub const INCOMING_NAMESPACE: &str = "MX";

/// Largest stored message downloaded (larger ones are skipped and reported).
pub const MAX_INCOMING_MESSAGE_BYTES: u64 = 64 * 1024 * 1024;

/// Why a consumer could not process a message (it is marked `FAILED` with the
/// consumer's version).
#[derive(Debug, thiserror::Error)]
#[error("consumer failed: {0}")]
pub struct ConsumerError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

impl ConsumerError {
    /// Wraps any error.
    pub fn new(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self(error.into())
    }
}

/// The id of the `index`-th document made from incoming message `message_id`:
/// the same whoever processes it, however often.
pub fn incoming_doc_id(message_id: &str, index: usize) -> String {
    format!("incoming-{message_id}-{index}")
}

/// What turns an incoming message into documents (the seed's
/// `IIncomingBoxConsumer`).
pub trait IncomingBoxConsumer: Send + Sync + 'static {
    /// The consumer's version: a message it fails on is marked `FAILED` with
    /// it, and only a consumer of a higher version claims it again.
    fn version(&self) -> u64;

    /// Turns the plaintext of message `message_id` into document contents.
    ///
    /// # Errors
    /// [`ConsumerError`]: the message is marked `FAILED`.
    fn process(&self, message_id: &str, plaintext: &[u8]) -> Result<Vec<Value>, ConsumerError>;

    /// Stores the contents `process` made. The default stores each as the
    /// document [`incoming_doc_id`]`(message_id, i)`, replacing an existing
    /// one (a reprocessing after an expired claim rewrites, never duplicates).
    ///
    /// # Errors
    /// Local store errors; the message stays claimed until its claim expires.
    fn save<'a>(
        &'a self,
        soledad: &'a Soledad,
        message_id: &'a str,
        docs: Vec<Value>,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(save_docs(soledad, message_id, docs))
    }
}

/// Stores `docs` under the ids derived from `message_id`.
async fn save_docs(soledad: &Soledad, message_id: &str, docs: Vec<Value>) -> Result<(), Error> {
    for (index, content) in docs.into_iter().enumerate() {
        let id = incoming_doc_id(message_id, index);
        match soledad.create_doc(&content, Some(&id)).await {
            Ok(_) => {}
            Err(Error::Store(soledad_store::StoreError::RevisionConflict)) => {
                if let Some(mut doc) = soledad.get_doc(&id, true).await? {
                    doc.content = Some(soledad_store::JsonContent::from_value(&content)?);
                    soledad.put_doc(&mut doc).await?;
                }
            }
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// Progress of a pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IncomingProgress {
    /// Messages handled so far in this pass (processed, failed or skipped).
    pub done: usize,
    /// Messages listed for this pass.
    pub total: usize,
}

/// What a pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IncomingReport {
    /// Messages turned into documents and marked `PROCESSED`.
    pub processed: Vec<String>,
    /// Messages marked `FAILED` (consumer error, or a seal this account's key
    /// does not open).
    pub failed: Vec<String>,
    /// Messages another device held (or took first).
    pub skipped_claimed: usize,
    /// Messages left out for their size (`size_limit` or
    /// [`MAX_INCOMING_MESSAGE_BYTES`]).
    pub skipped_oversized: Vec<String>,
}

/// Runs consumers over the user's incoming box. Cheap to clone.
#[derive(Clone)]
pub struct IncomingProcessor {
    soledad: Soledad,
    wire: Wire,
    identities: Arc<Vec<IncomingIdentity>>,
    consumers: Arc<Mutex<HashMap<String, Arc<dyn IncomingBoxConsumer>>>>,
    size_limit: Option<u64>,
}

impl std::fmt::Debug for IncomingProcessor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IncomingProcessor")
            .field("size_limit", &self.size_limit)
            .finish_non_exhaustive()
    }
}

impl IncomingProcessor {
    /// A processor for `soledad`'s account, opening seals made to the incoming
    /// keys of epochs `0..=key_epoch` (the epoch grows by one at each rotation).
    ///
    /// # Errors
    /// [`Error::NoServer`] without a server; [`Error::Crypto`] for an epoch
    /// above [`soledad_crypto::MAX_INCOMING_EPOCH`].
    pub fn new(soledad: &Soledad, key_epoch: u32) -> Result<Self, Error> {
        let transport = soledad.transport().ok_or(Error::NoServer)?.clone();
        let identities = IncomingIdentity::up_to(soledad.storage_secret(), key_epoch)?;
        Ok(Self {
            soledad: soledad.clone(),
            wire: Wire::new(transport),
            identities: Arc::new(identities),
            consumers: Arc::new(Mutex::new(HashMap::new())),
            size_limit: None,
        })
    }

    /// Skips (and reports) messages larger than `bytes`.
    #[must_use]
    pub fn size_limit(mut self, bytes: u64) -> Self {
        self.size_limit = Some(bytes);
        self
    }

    /// Registers `consumer` for `namespace` (the server's incoming box is
    /// [`INCOMING_NAMESPACE`]), replacing an earlier one.
    pub fn register_consumer(&self, namespace: &str, consumer: Arc<dyn IncomingBoxConsumer>) {
        self.consumers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(namespace.to_owned(), consumer);
    }

    /// The public key of the current epoch (`age1…`), the one to publish.
    pub fn public_key(&self) -> String {
        self.identities
            .first()
            .map(IncomingIdentity::public_key)
            .unwrap_or_default()
    }

    /// Publishes the current epoch's public key on the server (replacing the
    /// previous one: rotation), so services seal new messages to it.
    ///
    /// # Errors
    /// [`Error::Network`], [`Error::Auth`], [`Error::Server`].
    pub async fn publish_key(&self) -> Result<(), Error> {
        self.wire.publish_key(&self.public_key()).await
    }

    /// One pass over the pending messages (see the module doc).
    ///
    /// # Errors
    /// Network, server, store or sync errors; messages already claimed then
    /// stay claimed until their claim expires, and are processed again later
    /// into the same documents.
    pub async fn process_incoming(&self) -> Result<IncomingReport, Error> {
        self.process_incoming_with_progress(|_| {}).await
    }

    /// [`process_incoming`](Self::process_incoming), calling `progress` after
    /// each message.
    ///
    /// # Errors
    /// As [`process_incoming`](Self::process_incoming).
    pub async fn process_incoming_with_progress(
        &self,
        mut progress: impl FnMut(IncomingProgress) + Send,
    ) -> Result<IncomingReport, Error> {
        let consumer = self
            .consumers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(INCOMING_NAMESPACE)
            .cloned();
        let mut report = IncomingReport::default();
        let Some(consumer) = consumer else {
            return Ok(report);
        };
        let version = consumer.version();
        let limit = self.size_limit.map_or(MAX_INCOMING_MESSAGE_BYTES, |l| {
            l.min(MAX_INCOMING_MESSAGE_BYTES)
        });
        let listing = self.wire.list(Some(limit), version).await?;
        report.skipped_oversized = listing.skipped_oversized;
        let total = listing.messages.len();
        let mut saved = Vec::new();
        for (done, message) in listing.messages.into_iter().enumerate() {
            self.handle(
                &*consumer,
                version,
                &message.id,
                message.size,
                &mut report,
                &mut saved,
            )
            .await?;
            progress(IncomingProgress {
                done: done.saturating_add(1),
                total,
            });
        }
        if !saved.is_empty() {
            // PROCESSED only once the documents are on the server.
            self.soledad.sync().await?;
            for (id, claim) in saved {
                self.wire.processed(&id, &claim).await?;
                report.processed.push(id);
            }
        }
        Ok(report)
    }

    async fn handle(
        &self,
        consumer: &dyn IncomingBoxConsumer,
        version: u64,
        id: &str,
        size: u64,
        report: &mut IncomingReport,
        saved: &mut Vec<(String, String)>,
    ) -> Result<(), Error> {
        let claim = match self.wire.claim(id, version).await? {
            ClaimOutcome::Granted(claim) => claim.claim,
            ClaimOutcome::Taken => {
                report.skipped_claimed = report.skipped_claimed.saturating_add(1);
                return Ok(());
            }
        };
        let max = usize::try_from(size.min(MAX_INCOMING_MESSAGE_BYTES)).unwrap_or(usize::MAX);
        let stored = self.wire.download(id, max).await?;
        let identities = Arc::clone(&self.identities);
        let opened = tokio::task::spawn_blocking(move || open(&identities, &stored))
            .await
            .map_err(|_| Error::TaskPanicked)?;
        let docs = match opened {
            Ok(plaintext) => consumer.process(id, &plaintext).ok(),
            Err(_) => None,
        };
        match docs {
            Some(docs) => {
                consumer.save(&self.soledad, id, docs).await?;
                saved.push((id.to_owned(), claim));
            }
            None => {
                tracing::warn!(version, "incoming message failed; marked FAILED");
                self.wire.failed(id, &claim, version).await?;
                report.failed.push(id.to_owned());
            }
        }
        Ok(())
    }

    /// Runs [`process_incoming`](Self::process_incoming) now and then every
    /// `interval` until the returned handle is stopped or dropped. Errors of a
    /// pass are logged and the next pass retries.
    pub fn spawn(&self, interval: Duration) -> IncomingLoop {
        let (reports, receiver) = tokio::sync::watch::channel(None);
        let stop = Arc::new(tokio::sync::Notify::new());
        let processor = self.clone();
        let stopped = Arc::clone(&stop);
        let task = tokio::spawn(async move {
            loop {
                match processor.process_incoming().await {
                    Ok(report) => {
                        let _ = reports.send(Some(report));
                    }
                    Err(error) => tracing::warn!(%error, "incoming pass failed"),
                }
                tokio::select! {
                    () = stopped.notified() => break,
                    () = tokio::time::sleep(interval) => {}
                }
            }
        });
        IncomingLoop {
            task: Some(task),
            stop,
            reports: receiver,
        }
    }
}

/// Preamble, then the age seal: the plaintext.
fn open(identities: &[IncomingIdentity], stored: &[u8]) -> Result<Vec<u8>, Error> {
    let (_, used) = Preamble::parse(stored)?;
    let sealed = stored.get(used..).unwrap_or_default();
    let mut plaintext = Vec::new();
    soledad_crypto::open_incoming(identities, sealed)?.read_to_end(&mut plaintext)?;
    Ok(plaintext)
}

/// The background processing task; stops when dropped.
#[derive(Debug)]
pub struct IncomingLoop {
    task: Option<tokio::task::JoinHandle<()>>,
    stop: Arc<tokio::sync::Notify>,
    reports: tokio::sync::watch::Receiver<Option<IncomingReport>>,
}

impl IncomingLoop {
    /// The report of each finished pass (the latest one, as it changes).
    pub fn reports(&self) -> tokio::sync::watch::Receiver<Option<IncomingReport>> {
        self.reports.clone()
    }

    /// Stops after the pass in progress, if any, and waits for it.
    pub async fn stop(mut self) {
        self.stop.notify_one();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for IncomingLoop {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
