//! The `Soledad` handle: opening (with secrets bootstrap), the document and index API
//! over the encrypted local store, and sync.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use secrecy::SecretString;
use serde_json::Value;
use soledad_crypto::{KdfParams, RecoveryCode, StorageSecret, SyncKeys};
use soledad_store::{DocId, Document, OpenOptions, Rev, StoreWorker};

use crate::batch::DocBatch;
use crate::blobs::{BlobConfig, BlobManager};
use crate::error::Error;
use crate::live::{LiveControl, LiveOptions, LiveSync};
use crate::secrets;
use crate::sync::{SyncContext, SyncReport, SyncStats};
use crate::transport::Transport;

/// Options of [`Soledad::open`], as the seed's constructor arguments.
#[derive(Debug)]
pub struct SoledadBuilder {
    uuid: String,
    passphrase: SecretString,
    secrets_path: PathBuf,
    local_db_path: PathBuf,
    server_url: Option<String>,
    cert_file: Option<PathBuf>,
    auth_token: Option<String>,
    kdf: KdfParams,
    recovery_code: Option<RecoveryCode>,
    blobs: Option<BlobConfig>,
}

impl SoledadBuilder {
    /// Recovers on a device without a secrets file using a recovery code (made
    /// earlier by [`Soledad::create_recovery_code`]): the storage secret is fetched
    /// from the server with the code, and the builder's passphrase becomes the new
    /// passphrase (locally and in the server backup).
    pub fn recovery_code(mut self, code: RecoveryCode) -> Self {
        self.recovery_code = Some(code);
        self
    }

    /// Where the passphrase-wrapped secrets file lives (`soledad.json`).
    pub fn secrets_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.secrets_path = path.into();
        self
    }

    /// Where the local encrypted database lives (`<uuid>.db`).
    pub fn local_db_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.local_db_path = path.into();
        self
    }

    /// The server's base URL (`https://host:2424`).
    pub fn server_url(mut self, url: impl Into<String>) -> Self {
        self.server_url = Some(url.into());
        self
    }

    /// The PEM certificate to trust for the server (the provider's `cert_file`).
    pub fn cert_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.cert_file = Some(path.into());
        self
    }

    /// The user's token for the server.
    pub fn auth_token(mut self, token: impl Into<String>) -> Self {
        self.auth_token = Some(token.into());
        self
    }

    /// Opens the local blob store too (`<uuid>_blobs.db` next to the documents),
    /// for [`Soledad::blobmanager`] and attachments (the seed's `with_blobs`).
    pub fn with_blobs(mut self, with_blobs: bool) -> Self {
        self.blobs = with_blobs.then(|| self.blobs.take().unwrap_or_default());
        self
    }

    /// Opens the blob store with these transfer settings (implies `with_blobs`).
    pub fn blob_config(mut self, config: BlobConfig) -> Self {
        self.blobs = Some(config);
        self
    }

    /// scrypt parameters for the secrets file, the backup and its id. Every device of
    /// an account must use the same; the default is [`KdfParams::interactive`]. Tests
    /// pass [`KdfParams::insecure_fast_for_tests`].
    pub fn danger_kdf_params(mut self, params: KdfParams) -> Self {
        self.kdf = params;
        self
    }

    /// Opens (see [`Soledad::open`]).
    ///
    /// # Errors
    /// As [`Soledad::open`].
    pub async fn open(self) -> Result<Soledad, Error> {
        Soledad::open_with(self).await
    }
}

/// A user's Soledad: the encrypted local document database, synchronised with the
/// server. Cheap to clone; every clone is the same client.
#[derive(Clone)]
pub struct Soledad {
    inner: Arc<Inner>,
}

struct Inner {
    uuid: String,
    secret: StorageSecret,
    secrets_path: PathBuf,
    kdf: KdfParams,
    actor: StoreWorker,
    transport: Option<Transport>,
    sync: SyncContextSlot,
    sync_lock: tokio::sync::Mutex<()>,
    syncing: AtomicBool,
    stats: Arc<SyncStats>,
    replica_uid: String,
    blobs: Option<BlobManager>,
    /// Told after every local document write (the live task uploads them).
    local_writes: tokio::sync::Notify,
    /// The live sync task, while one runs.
    live: std::sync::Mutex<Option<Arc<LiveControl>>>,
}

/// The sync context, present when a server is configured.
type SyncContextSlot = Option<SyncContext>;

impl Soledad {
    /// A builder with the seed's defaults: secrets in `./soledad.json`, the local
    /// database in `./<uuid>.db`, no server.
    pub fn builder(uuid: impl Into<String>, passphrase: SecretString) -> SoledadBuilder {
        let uuid = uuid.into();
        SoledadBuilder {
            local_db_path: PathBuf::from(format!("{uuid}.db")),
            uuid,
            passphrase,
            secrets_path: PathBuf::from("soledad.json"),
            server_url: None,
            cert_file: None,
            auth_token: None,
            kdf: KdfParams::interactive(),
            recovery_code: None,
            blobs: None,
        }
    }

    /// Opens a user's Soledad as the seed's constructor does: loads the storage
    /// secret from `secrets_path` (unlocking it with `passphrase`), or else fetches
    /// the encrypted backup from the server, or else makes a new secret and uploads
    /// its backup; then opens the local database encrypted with a key derived from
    /// the secret.
    ///
    /// # Errors
    /// [`Error::Crypto`] (wrong passphrase, malformed secrets file), [`Error::Store`]
    /// (local database does not open with this secret), [`Error::Network`] /
    /// [`Error::Auth`] while bootstrapping through the server,
    /// [`Error::BackupNotFound`] when the server holds the account's documents but
    /// no backup for this passphrase (a new secret would make them unreadable).
    #[allow(clippy::too_many_arguments)]
    pub async fn open(
        uuid: &str,
        passphrase: SecretString,
        secrets_path: &Path,
        local_db_path: &Path,
        server_url: &str,
        cert_file: &Path,
        auth_token: &str,
    ) -> Result<Soledad, Error> {
        Soledad::builder(uuid, passphrase)
            .secrets_path(secrets_path)
            .local_db_path(local_db_path)
            .server_url(server_url)
            .cert_file(cert_file)
            .auth_token(auth_token)
            .open()
            .await
    }

    async fn open_with(options: SoledadBuilder) -> Result<Soledad, Error> {
        let transport = match (&options.server_url, &options.auth_token) {
            (Some(url), Some(token)) => Some(Transport::new(
                url,
                options.cert_file.as_deref(),
                &options.uuid,
                token,
            )?),
            _ => None,
        };
        let secret = secrets::bootstrap(
            &options.uuid,
            &options.passphrase,
            &options.secrets_path,
            options.kdf,
            transport.as_ref(),
            options.recovery_code.as_ref(),
        )
        .await?;

        let db_key = secret.local_db_key();
        let db_path = options.local_db_path.clone();
        let db = tokio::task::spawn_blocking(move || {
            // The limit every frame can carry (soledad-protocol's limits table).
            OpenOptions::new()
                .document_size_limit(Some(soledad_protocol::MAX_DOCUMENT_BYTES))
                .open_encrypted(&db_path, db_key.expose_bytes())
        })
        .await
        .map_err(Error::from)??;
        let replica_uid = db.replica_uid().to_owned();
        let blobs = match options.blobs {
            Some(config) => {
                let dir = options
                    .local_db_path
                    .parent()
                    .map(Path::to_owned)
                    .unwrap_or_default();
                Some(
                    BlobManager::open(dir, &options.uuid, &secret, transport.as_ref(), config)
                        .await?,
                )
            }
            None => None,
        };
        let actor = StoreWorker::spawn(db, "soledad-store")?;
        let keys = Arc::new(SyncKeys::new(&secret));
        let stats = Arc::new(SyncStats::default());
        let sync = transport.as_ref().map(|transport| SyncContext {
            actor: actor.clone(),
            transport: transport.clone(),
            keys: keys.clone(),
            replica_uid: replica_uid.clone(),
            stats: stats.clone(),
        });
        Ok(Soledad {
            inner: Arc::new(Inner {
                uuid: options.uuid,
                secret,
                secrets_path: options.secrets_path,
                kdf: options.kdf,
                actor,
                transport,
                sync,
                sync_lock: tokio::sync::Mutex::new(()),
                syncing: AtomicBool::new(false),
                stats,
                replica_uid,
                blobs,
                local_writes: tokio::sync::Notify::new(),
                live: std::sync::Mutex::new(None),
            }),
        })
    }

    /// The server connection, if any (the incoming box client shares it).
    pub(crate) fn transport(&self) -> Option<&Transport> {
        self.inner.transport.as_ref()
    }

    /// The storage secret (the incoming identity is derived from it).
    pub(crate) fn storage_secret(&self) -> &StorageSecret {
        &self.inner.secret
    }

    /// An incoming box processor for this account (see
    /// [`IncomingProcessor::new`](crate::IncomingProcessor::new)).
    ///
    /// # Errors
    /// As [`IncomingProcessor::new`](crate::IncomingProcessor::new).
    pub fn incoming(&self, key_epoch: u32) -> Result<crate::IncomingProcessor, Error> {
        crate::IncomingProcessor::new(self, key_epoch)
    }

    /// The user's uuid.
    pub fn uuid(&self) -> &str {
        &self.inner.uuid
    }

    /// The blob manager, when opened [`with_blobs`](SoledadBuilder::with_blobs).
    pub fn blobmanager(&self) -> Option<&BlobManager> {
        self.inner.blobs.as_ref()
    }

    /// This device's replica uid (stable for the life of the local database).
    pub fn replica_uid(&self) -> &str {
        &self.inner.replica_uid
    }

    /// Runs `f` on the database thread.
    pub(crate) async fn call<T, F>(&self, f: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&mut soledad_store::Database) -> Result<T, soledad_store::StoreError>
            + Send
            + 'static,
    {
        Ok(self.inner.actor.call(f).await??)
    }

    /// [`call`](Self::call) for a write: a live sync uploads it.
    async fn write<T, F>(&self, f: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&mut soledad_store::Database) -> Result<T, soledad_store::StoreError>
            + Send
            + 'static,
    {
        let written = self.call(f).await?;
        self.inner.local_writes.notify_one();
        Ok(written)
    }

    /// Told after every local document write.
    pub(crate) fn local_writes(&self) -> &tokio::sync::Notify {
        &self.inner.local_writes
    }

    /// Creates a document from a JSON object (u1db `create_doc`); `doc_id` is
    /// generated when `None`.
    ///
    /// Like every method here that names a document, `doc_id` is text (a
    /// [`DocId`] passes as `&doc.doc_id`), parsed before anything is read or
    /// written: a bad id is refused with `InvalidDocId`.
    ///
    /// # Errors
    /// u1db's errors as [`Error::Store`] (`InvalidDocId`, `InvalidContent`,
    /// `RevisionConflict` if the id exists, `DocumentTooBig`).
    pub async fn create_doc(
        &self,
        content: &Value,
        doc_id: Option<&str>,
    ) -> Result<Document, Error> {
        let content = content.clone();
        let doc_id = doc_id.map(DocId::parse).transpose()?;
        self.write(move |db| db.create_doc(&content, doc_id.as_ref()))
            .await
    }

    /// Creates a document from JSON text, kept byte-exact (u1db `create_doc_from_json`).
    ///
    /// # Errors
    /// As [`create_doc`](Self::create_doc), plus `InvalidJson`.
    pub async fn create_doc_from_json(
        &self,
        json: &str,
        doc_id: Option<&str>,
    ) -> Result<Document, Error> {
        let json = json.to_owned();
        let doc_id = doc_id.map(DocId::parse).transpose()?;
        self.write(move |db| db.create_doc_from_json(&json, doc_id.as_ref()))
            .await
    }

    /// Stores a new version of `doc` (its `rev` must be the current one); updates
    /// `doc.rev` and returns the new revision (u1db `put_doc`).
    ///
    /// # Errors
    /// `RevisionConflict`, `ConflictedDoc`, `InvalidDocId`, `DocumentTooBig`, …
    pub async fn put_doc(&self, doc: &mut Document) -> Result<Rev, Error> {
        let mut owned = doc.clone();
        let (rev, owned) = self
            .write(move |db| db.put_doc(&mut owned).map(|rev| (rev, owned)))
            .await?;
        *doc = owned;
        Ok(rev)
    }

    /// Deletes `doc` (keeps a tombstone); updates `doc` (u1db `delete_doc`).
    ///
    /// # Errors
    /// `DocumentDoesNotExist`, `DocumentAlreadyDeleted`, `RevisionConflict`,
    /// `ConflictedDoc`.
    pub async fn delete_doc(&self, doc: &mut Document) -> Result<Rev, Error> {
        let mut owned = doc.clone();
        let (rev, owned) = self
            .write(move |db| db.delete_doc(&mut owned).map(|rev| (rev, owned)))
            .await?;
        *doc = owned;
        Ok(rev)
    }

    /// The current version of a document (u1db `get_doc`).
    ///
    /// # Errors
    /// `InvalidDocId`, storage errors; a missing document is `Ok(None)`.
    pub async fn get_doc(
        &self,
        doc_id: &str,
        include_deleted: bool,
    ) -> Result<Option<Document>, Error> {
        let doc_id = DocId::parse(doc_id)?;
        self.call(move |db| db.get_doc(&doc_id, include_deleted))
            .await
    }

    /// Several documents in the order asked, skipping missing ones (u1db `get_docs`).
    ///
    /// # Errors
    /// `InvalidDocId` if any id is invalid, storage errors.
    pub async fn get_docs<S: AsRef<str>>(
        &self,
        doc_ids: &[S],
        check_for_conflicts: bool,
        include_deleted: bool,
    ) -> Result<Vec<Document>, Error> {
        let ids = doc_ids
            .iter()
            .map(|id| DocId::parse(id.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        self.call(move |db| db.get_docs(&ids, check_for_conflicts, include_deleted))
            .await
    }

    /// The current generation and every document (u1db `get_all_docs`).
    ///
    /// # Errors
    /// Storage errors.
    pub async fn get_all_docs(&self, include_deleted: bool) -> Result<(u64, Vec<Document>), Error> {
        self.call(move |db| db.get_all_docs(include_deleted)).await
    }

    /// The current version and the conflicting ones, current first; empty without
    /// conflicts (u1db `get_doc_conflicts`).
    ///
    /// # Errors
    /// `InvalidDocId`, storage errors.
    pub async fn get_doc_conflicts(&self, doc_id: &str) -> Result<Vec<Document>, Error> {
        let doc_id = DocId::parse(doc_id)?;
        self.call(move |db| db.get_doc_conflicts(&doc_id)).await
    }

    /// Resolves a conflict: `doc` supersedes `conflicted_revs` (u1db `resolve_doc`).
    /// The revisions are text (the [`Rev`]s of [`get_doc_conflicts`](Self::get_doc_conflicts)
    /// or strings), parsed before anything is written.
    ///
    /// # Errors
    /// `DocumentDoesNotExist`, `InvalidRevision`, `DocumentTooBig`.
    pub async fn resolve_doc<S: AsRef<str>>(
        &self,
        doc: &mut Document,
        conflicted_revs: &[S],
    ) -> Result<(), Error> {
        let mut owned = doc.clone();
        let revs = parse_revs(conflicted_revs)?;
        let owned = self
            .write(move |db| db.resolve_doc(&mut owned, &revs).map(|()| owned))
            .await?;
        *doc = owned;
        Ok(())
    }

    /// Creates an index (u1db `create_index`); idempotent for the same definition.
    ///
    /// # Errors
    /// `IndexDefinitionParseError`, `IndexNameTakenError`.
    pub async fn create_index(&self, name: &str, expressions: &[&str]) -> Result<(), Error> {
        let name = name.to_owned();
        let exprs: Vec<String> = expressions.iter().map(|s| (*s).to_owned()).collect();
        self.call(move |db| db.create_index(&name, &exprs)).await
    }

    /// Deletes an index (u1db `delete_index`).
    ///
    /// # Errors
    /// Storage errors.
    pub async fn delete_index(&self, name: &str) -> Result<(), Error> {
        let name = name.to_owned();
        self.call(move |db| db.delete_index(&name)).await
    }

    /// Every index as `(name, expressions)` (u1db `list_indexes`).
    ///
    /// # Errors
    /// Storage errors.
    pub async fn list_indexes(&self) -> Result<Vec<(String, Vec<String>)>, Error> {
        self.call(|db| db.list_indexes()).await
    }

    /// Documents matching one value (or glob) per index expression
    /// (u1db `get_from_index`).
    ///
    /// # Errors
    /// `IndexDoesNotExist`, `InvalidValueForIndex`, `InvalidGlobbing`.
    pub async fn get_from_index(
        &self,
        name: &str,
        values: &[&str],
    ) -> Result<Vec<Document>, Error> {
        let name = name.to_owned();
        let values: Vec<String> = values.iter().map(|s| (*s).to_owned()).collect();
        self.call(move |db| db.get_from_index(&name, &values)).await
    }

    /// Documents whose index values lie in an inclusive range
    /// (u1db `get_range_from_index`); `None` is an open end.
    ///
    /// # Errors
    /// As [`get_from_index`](Self::get_from_index).
    pub async fn get_range_from_index(
        &self,
        name: &str,
        start: Option<&[&str]>,
        end: Option<&[&str]>,
    ) -> Result<Vec<Document>, Error> {
        let name = name.to_owned();
        let start: Option<Vec<String>> = start.map(|v| v.iter().map(|s| (*s).to_owned()).collect());
        let end: Option<Vec<String>> = end.map(|v| v.iter().map(|s| (*s).to_owned()).collect());
        self.call(move |db| db.get_range_from_index(&name, start.as_deref(), end.as_deref()))
            .await
    }

    /// The distinct key tuples of an index (u1db `get_index_keys`).
    ///
    /// # Errors
    /// `IndexDoesNotExist`.
    pub async fn get_index_keys(&self, name: &str) -> Result<Vec<Vec<String>>, Error> {
        let name = name.to_owned();
        self.call(move |db| db.get_index_keys(&name)).await
    }

    /// How many documents [`get_from_index`](Self::get_from_index) would return.
    ///
    /// # Errors
    /// As [`get_from_index`](Self::get_from_index).
    pub async fn get_count_from_index(&self, name: &str, values: &[&str]) -> Result<u64, Error> {
        let name = name.to_owned();
        let values: Vec<String> = values.iter().map(|s| (*s).to_owned()).collect();
        self.call(move |db| db.get_count_from_index(&name, &values))
            .await
    }

    /// Runs `writes` as one local transaction: every write is kept, or none is
    /// (u1db has no batches; this is what an application importing many documents
    /// wants, one commit instead of one per document). The closure runs on the
    /// database thread: keep it free of blocking I/O.
    ///
    /// ```no_run
    /// # async fn import(soledad: &soledad_client::Soledad) -> Result<(), soledad_client::Error> {
    /// let ids = soledad
    ///     .batch(|batch| {
    ///         let mut ids = Vec::new();
    ///         for n in 0..1000 {
    ///             ids.push(batch.create_doc(&serde_json::json!({ "n": n }), None)?.doc_id);
    ///         }
    ///         Ok(ids)
    ///     })
    ///     .await?;
    /// assert_eq!(ids.len(), 1000);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// The first error the closure returns (nothing of the batch is kept), or
    /// [`StoreError::BatchAborted`](soledad_store::StoreError::BatchAborted) when a
    /// write failed half-way and the closure went on.
    pub async fn batch<T, F>(&self, writes: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&mut DocBatch<'_, '_>) -> Result<T, soledad_store::StoreError> + Send + 'static,
    {
        self.write(move |db| db.batch(|batch| writes(&mut DocBatch::new(batch))))
            .await
    }

    /// Synchronises with the server: sends local changes, applies the server's,
    /// records conflicts for the application, and sends back what applying them
    /// changed locally (merges) before returning ([`SyncReport::converged`] says
    /// whether anything is left). Writes the application makes during the sync are
    /// kept and sent by the next one. One sync runs at a time; a second call waits
    /// for the first.
    ///
    /// # Errors
    /// [`Error::NoServer`], [`Error::Network`] and [`Error::Auth`] (nothing local
    /// changed), [`Error::Diverged`] (the server's position is behind what this
    /// device recorded, or the reverse; nothing merged), [`Error::Integrity`]
    /// (documents that failed authentication were skipped, everything else was
    /// applied).
    pub async fn sync(&self) -> Result<SyncReport, Error> {
        self.sync_with_progress(|_| {}).await
    }

    /// [`sync`](Self::sync), calling `progress` with the counters each time a batch
    /// of documents was sent or applied (for progress bars; keep it quick, it runs on
    /// the sync's task).
    ///
    /// # Errors
    /// As [`sync`](Self::sync).
    pub async fn sync_with_progress(
        &self,
        progress: impl Fn(SyncStatsSnapshot) + Send + Sync + 'static,
    ) -> Result<SyncReport, Error> {
        let ctx = self.inner.sync.as_ref().ok_or(Error::NoServer)?;
        let _one_at_a_time = self.inner.sync_lock.lock().await;
        // Reset even when the caller drops this future half-way.
        let _syncing = SyncingFlag::raise(&self.inner.syncing);
        let _progress = ctx.stats.watch(Arc::new(progress));
        crate::sync::sync(ctx).await
    }

    /// Starts live sync: a background task that syncs whenever another
    /// device changed the user's documents (told by the server's change
    /// notifications), uploads local writes after `options`' debounce, and
    /// reports what happens as [`LiveEvent`](crate::LiveEvent)s (see
    /// [`LiveSync`]). [`close`](Self::close) or [`LiveSync::stop`] stops it.
    ///
    /// # Errors
    /// [`Error::NoServer`] without a server; [`Error::LiveSyncRunning`] when
    /// this database already has a live sync running.
    pub async fn start_live_sync(&self, options: LiveOptions) -> Result<LiveSync, Error> {
        if self.inner.sync.is_none() {
            return Err(Error::NoServer);
        }
        let mut live = self
            .inner
            .live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if live.as_ref().is_some_and(|control| control.is_running()) {
            return Err(Error::LiveSyncRunning);
        }
        let (events, first) = tokio::sync::broadcast::channel(options.event_capacity);
        let task = tokio::spawn(crate::live::run(self.clone(), options, events.clone()));
        let control = Arc::new(LiveControl::new(task));
        *live = Some(Arc::clone(&control));
        Ok(LiveSync::new(control, events, first))
    }

    /// Whether a sync is running now.
    pub fn syncing(&self) -> bool {
        self.inner.syncing.load(Ordering::SeqCst)
    }

    /// Counters of the running (or last) sync: `(sent, received, to_receive)`.
    pub fn sync_stats(&self) -> SyncStatsSnapshot {
        let stats = &self.inner.stats;
        SyncStatsSnapshot {
            sent: stats.sent.load(Ordering::Relaxed),
            received: stats.received.load(Ordering::Relaxed),
            to_receive: stats.to_receive.load(Ordering::Relaxed),
        }
    }

    /// Changes the passphrase: re-wraps the storage secret locally (atomically) and
    /// replaces the server backup under the new passphrase's id, removing the old
    /// one. Nothing is re-encrypted.
    ///
    /// # Errors
    /// [`Error::Crypto`] if `old` is wrong; network errors while updating the backup
    /// (the local file is then unchanged).
    pub async fn change_passphrase(
        &self,
        old: &SecretString,
        new: &SecretString,
    ) -> Result<(), Error> {
        secrets::change_passphrase(
            &self.inner.uuid,
            &self.inner.secret,
            old,
            new,
            &self.inner.secrets_path,
            self.inner.kdf,
            self.inner.transport.as_ref(),
        )
        .await
    }

    /// Makes a recovery code, stores a copy of the storage secret wrapped under it on
    /// the server, and returns the code for the user to write down.
    ///
    /// # Errors
    /// [`Error::NoServer`], network errors.
    pub async fn create_recovery_code(&self) -> Result<RecoveryCode, Error> {
        let transport = self.inner.transport.as_ref().ok_or(Error::NoServer)?;
        secrets::create_recovery_code(&self.inner.secret, transport).await
    }

    /// Closes the local database once the running sync (if any) and the operations
    /// queued before this call are done (a live sync is stopped first), and reports a failure to close. Every clone
    /// of this handle is closed with it: their later calls fail with
    /// [`Error::Closed`]. The blob store, if any, is flushed and closed first.
    ///
    /// # Errors
    /// [`Error::Store`] if the database could not be closed cleanly (its data is
    /// still as last committed), [`Error::Closed`] if it was already closed.
    pub async fn close(self) -> Result<(), Error> {
        let live = self
            .inner
            .live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(live) = live {
            live.stop().await;
        }
        let _wait_for_sync = self.inner.sync_lock.lock().await;
        if let Some(blobs) = &self.inner.blobs {
            blobs.close().await?;
        }
        self.inner.actor.close().await?;
        Ok(())
    }
}

/// Revisions given as text, parsed at the edge.
fn parse_revs<S: AsRef<str>>(revs: &[S]) -> Result<Vec<Rev>, Error> {
    Ok(revs
        .iter()
        .map(|rev| Rev::parse(rev.as_ref()))
        .collect::<Result<Vec<_>, _>>()?)
}

/// Holds [`Soledad::syncing`] up for as long as it lives.
struct SyncingFlag<'a>(&'a AtomicBool);

impl<'a> SyncingFlag<'a> {
    fn raise(flag: &'a AtomicBool) -> Self {
        flag.store(true, Ordering::SeqCst);
        SyncingFlag(flag)
    }
}

impl Drop for SyncingFlag<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

/// A snapshot of [`Soledad::sync_stats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncStatsSnapshot {
    /// Documents sent so far.
    pub sent: u64,
    /// Documents received so far.
    pub received: u64,
    /// Documents the server announced.
    pub to_receive: u64,
}
