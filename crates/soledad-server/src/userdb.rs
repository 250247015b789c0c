//! Per-user document stores (`user-<uuid>`): the [`UserDocStores`] seam of the
//! document sync routes (`/user-{uuid}/sync-from/{source_replica_uid}`).
//!
//! The embedded backend keeps one plain SQLite file per user
//! ([`EmbeddedUserDocStores`]), made by `soledad-store` with opaque byte
//! payloads (the server never sees plaintext); [`crate::UserStores`] serves the
//! sync routes from those files, one worker thread per open store.
//! `soledad-server create-userdb user-<uuid>` creates the same files.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::future::BoxFuture;
use soledad_protocol::{BatchLimits, DocFrame, ExchangeEnd, RecordSyncInfo, SyncInfo};
#[cfg(doc)]
use soledad_store::StoreError;
use soledad_store::{Change, DocId, Position, Rev};

use crate::blobs::{QuotaLedger, UserId};
use crate::error::Error;

/// Prefix of user database names, as in the seed (defined once, in the protocol).
pub use soledad_protocol::USER_DB_PREFIX;

/// A user database name, `user-<uuid>`, as the seed's `soledad-create-userdb`
/// takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserDbName(UserId);

impl UserDbName {
    /// Parses `user-<uuid>`.
    ///
    /// # Errors
    /// [`Error::InvalidUserId`] when the prefix is missing or the uuid is invalid.
    pub fn parse(name: &str) -> Result<UserDbName, Error> {
        let uuid = name
            .strip_prefix(USER_DB_PREFIX)
            .ok_or(Error::InvalidUserId)?;
        Ok(UserDbName(
            UserId::parse(uuid).map_err(|_| Error::InvalidUserId)?,
        ))
    }

    /// The database's user.
    pub fn user(&self) -> &UserId {
        &self.0
    }
}

impl std::fmt::Display for UserDbName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{USER_DB_PREFIX}{}", self.0.as_str())
    }
}

/// Where per-user document stores live: what the document sync routes need
/// from a user's store, and nothing more. Narrow and asynchronous (DESIGN §9).
///
/// Positions are the store's own (generation, transaction id); a source's
/// position is what that source sent. Every write that charges the quota takes
/// the ledger (`None`: not charged) and charges what it really stored, so a
/// write that would pass the quota is refused whole. The default is the
/// embedded SQLite implementation; [`crate::ServerBuilder::user_doc_stores`]
/// replaces it. [`crate::conformance::docstores`] (feature `conformance`) is
/// the behaviour every implementation must show.
pub trait UserDocStores: Send + Sync + 'static {
    /// Creates the store of `user` unless it exists; true when it was created.
    fn create<'a>(&'a self, user: &'a UserId) -> BoxFuture<'a, Result<bool, Error>>;

    /// Whether the store of `user` exists.
    fn exists<'a>(&'a self, user: &'a UserId) -> BoxFuture<'a, Result<bool, Error>>;

    /// The store's position and the position it recorded for `source`
    /// ([`Error::DatabaseDoesNotExist`] when there is no store).
    fn sync_info<'a>(
        &'a self,
        user: &'a UserId,
        source: &'a str,
    ) -> BoxFuture<'a, Result<SyncInfo, Error>>;

    /// Records `source`'s position durably; [`StoreError::InvalidReplicaUid`]
    /// when `source` is the store itself.
    fn record_position<'a>(
        &'a self,
        user: &'a UserId,
        source: &'a str,
        position: RecordSyncInfo,
        ledger: Option<Arc<QuotaLedger>>,
    ) -> BoxFuture<'a, Result<(), Error>>;

    /// Opens the store for an exchange from `source` (created when `ensure`)
    /// and checks the source's last known position of it
    /// ([`StoreError::InvalidGeneration`], [`StoreError::InvalidTransactionId`]);
    /// [`StoreError::InvalidReplicaUid`] when `source` is the store itself.
    fn begin_exchange<'a>(
        &'a self,
        user: &'a UserId,
        source: &'a str,
        ensure: bool,
        known: Position,
    ) -> BoxFuture<'a, Result<(), Error>>;

    /// Applies `docs` from `source` in one transaction with u1db's target
    /// rules (a newer revision is inserted, an older or concurrent one left
    /// out, the same one converged) and records the source's position of the
    /// last document with them. Committed in order, not necessarily on disk
    /// yet ([`record_end`](Self::record_end) makes it durable).
    fn apply_from_source<'a>(
        &'a self,
        user: &'a UserId,
        source: &'a str,
        docs: Vec<SourceDoc>,
        ledger: Option<Arc<QuotaLedger>>,
    ) -> BoxFuture<'a, Result<AppliedBatch, Error>>;

    /// Records that `source`'s documents up to `end` are all here (never moving
    /// its position back) and makes every earlier commit durable.
    fn record_end<'a>(
        &'a self,
        user: &'a UserId,
        source: &'a str,
        end: ExchangeEnd,
        ledger: Option<Arc<QuotaLedger>>,
    ) -> BoxFuture<'a, Result<(), Error>>;

    /// The store's replica uid and current position, every commit up to it
    /// made durable first (a success response never names a position that is
    /// not on disk).
    fn durable_position<'a>(
        &'a self,
        user: &'a UserId,
        source: &'a str,
        ledger: Option<Arc<QuotaLedger>>,
    ) -> BoxFuture<'a, Result<(String, Position), Error>>;

    /// At most `limit` changes after generation `after`, in generation order,
    /// each document once at its latest change (ids only).
    fn changes_after<'a>(
        &'a self,
        user: &'a UserId,
        after: u64,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<Change>, Error>>;

    /// The documents changed after `after` up to `upto`, in generation order,
    /// leaving out the changes `skip` names: at most `limits.docs` changes read
    /// and closed early past `limits.bytes` of payload. Deleted documents are
    /// not sent.
    fn read_changes<'a>(
        &'a self,
        user: &'a UserId,
        after: u64,
        upto: u64,
        limits: BatchLimits,
        skip: SkipChange,
    ) -> BoxFuture<'a, Result<ChangesChunk, Error>>;
}

/// Which changes [`UserDocStores::read_changes`] leaves out.
pub type SkipChange = Arc<dyn Fn(&Change) -> bool + Send + Sync>;

/// One document a source sent, parsed where it entered the server (the
/// exchange, [`SourceDoc::parse`]): a frame with a bad id, revision or position
/// is refused there, so no [`UserDocStores`] implementation ever sees one.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SourceDoc {
    /// The id as the server knows it (for Soledad clients, the hidden id).
    pub doc_id: DocId,
    /// The revision the source sent.
    pub rev: Rev,
    /// The source's position once this document is applied.
    pub position: Position,
    /// The opaque payload.
    pub payload: bytes::Bytes,
}

impl SourceDoc {
    /// A document from its parsed parts.
    pub fn new(doc_id: DocId, rev: Rev, position: Position, payload: bytes::Bytes) -> Self {
        SourceDoc {
            doc_id,
            rev,
            position,
            payload,
        }
    }

    /// Parses a received frame.
    ///
    /// # Errors
    /// [`StoreError::InvalidDocId`], [`StoreError::InvalidRevision`],
    /// [`StoreError::InvalidGeneration`], [`StoreError::InvalidTransactionId`]
    /// (as [`Error::UserStore`]).
    pub fn parse(frame: DocFrame) -> Result<Self, Error> {
        Ok(SourceDoc {
            doc_id: DocId::parse(&frame.id)?,
            rev: Rev::parse(&frame.rev)?,
            position: Position::parse(frame.generation, &frame.trans_id)?,
            payload: frame.payload,
        })
    }
}

/// What [`UserDocStores::apply_from_source`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AppliedBatch {
    /// The store's generation before and after the batch.
    pub generations: (u64, u64),
    /// Documents that were already here at the source's revision.
    pub converged: Vec<DocId>,
}

impl AppliedBatch {
    /// A batch's result.
    pub fn new(generations: (u64, u64), converged: Vec<DocId>) -> Self {
        AppliedBatch {
            generations,
            converged,
        }
    }
}

/// One chunk of [`UserDocStores::read_changes`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChangesChunk {
    /// The documents, in generation order.
    pub docs: Vec<DocFrame>,
    /// The generation to continue after, `None` when every change up to `upto`
    /// was read.
    pub next: Option<u64>,
}

impl ChangesChunk {
    /// A chunk.
    pub fn new(docs: Vec<DocFrame>, next: Option<u64>) -> Self {
        ChangesChunk { docs, next }
    }

    /// The chunk [`UserDocStores::read_changes`] returns, built from
    /// `changes` (the store's changes after `after`, in generation order, at
    /// most `limits.docs` of them): stops past `upto`, leaves out what `skip`
    /// names and what `current` does not find (a deleted document), closes
    /// early past `limits.bytes` of payload. `current` gives a document's
    /// revision and payload.
    ///
    /// # Errors
    /// The first error of `current`.
    pub fn gather<E>(
        after: u64,
        upto: u64,
        limits: BatchLimits,
        changes: Vec<Change>,
        skip: &SkipChange,
        mut current: impl FnMut(&DocId) -> Result<Option<(Rev, Vec<u8>)>, E>,
    ) -> Result<ChangesChunk, E> {
        let full = changes.len() >= limits.docs.max(1);
        let mut docs = Vec::new();
        let mut bytes = 0usize;
        let mut cursor = after;
        for change in changes {
            if change.generation > upto {
                return Ok(ChangesChunk::new(docs, None));
            }
            cursor = change.generation;
            if skip(&change) {
                continue;
            }
            let Some((rev, payload)) = current(&change.doc_id)? else {
                continue;
            };
            bytes = bytes.saturating_add(payload.len());
            docs.push(DocFrame {
                id: change.doc_id.into_string(),
                rev: rev.into_string(),
                generation: change.generation,
                trans_id: change.transaction_id,
                payload: payload.into(),
            });
            if limits.is_full(0, bytes) {
                return Ok(ChangesChunk::new(docs, Some(cursor)));
            }
        }
        let next = (full && cursor < upto).then_some(cursor);
        Ok(ChangesChunk::new(docs, next))
    }
}

/// The embedded backend: `<dir>/user-<uuid>.db`, plain SQLite via
/// `soledad-store` with `Vec<u8>` payloads.
#[derive(Debug, Clone)]
pub struct EmbeddedUserDocStores {
    dir: PathBuf,
}

impl EmbeddedUserDocStores {
    /// Stores under `dir` (created on the first `create`).
    pub fn new(dir: impl Into<PathBuf>) -> EmbeddedUserDocStores {
        EmbeddedUserDocStores { dir: dir.into() }
    }

    /// The file of `user`'s store.
    pub fn path_of(&self, user: &UserId) -> PathBuf {
        self.dir
            .join(format!("{USER_DB_PREFIX}{}.db", user.as_str()))
    }

    /// Opens (creating if needed) `user`'s store. Blocking: call it from
    /// `spawn_blocking` or the store's own worker thread.
    ///
    /// # Errors
    /// [`Error::Io`] when the directory cannot be made, [`Error::UserStore`].
    pub fn open_blocking(&self, user: &UserId) -> Result<soledad_store::OpaqueDatabase, Error> {
        std::fs::create_dir_all(&self.dir)
            .map_err(Error::io("creating the user databases directory"))?;
        // Ordered commits (synchronous=NORMAL); the transaction right before
        // each acknowledgement is made durable (FULL), which with WAL also makes
        // every earlier commit durable: one fsync per sync, not one per batch.
        Ok(soledad_store::OpenOptions::new()
            .durable_commits(false)
            .open_unencrypted(self.path_of(user))?)
    }
}

fn exists_at(path: &Path) -> bool {
    path.is_file()
}

impl EmbeddedUserDocStores {
    /// Creates the store of `user` unless it exists; true when it was created.
    ///
    /// # Errors
    /// [`Error::Io`], [`Error::UserStore`].
    pub fn create<'a>(&'a self, user: &'a UserId) -> BoxFuture<'a, Result<bool, Error>> {
        let this = self.clone();
        let user = user.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                let existed = exists_at(&this.path_of(&user));
                this.open_blocking(&user)?;
                Ok(!existed)
            })
            .await
            .map_err(|_| Error::StorageUnavailable)?
        })
    }

    /// Whether the store of `user` exists.
    ///
    /// # Errors
    /// [`Error::StorageUnavailable`] when the blocking task could not run.
    pub fn exists<'a>(&'a self, user: &'a UserId) -> BoxFuture<'a, Result<bool, Error>> {
        let path = self.path_of(user);
        Box::pin(async move {
            tokio::task::spawn_blocking(move || exists_at(&path))
                .await
                .map_err(|_| Error::StorageUnavailable)
        })
    }
}
