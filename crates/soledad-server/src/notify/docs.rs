//! [`NotifyingDocStores`]: announces every sync batch that changed a user's
//! document store, whatever store backend sits underneath.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use soledad_protocol::{BatchLimits, ExchangeEnd, RecordSyncInfo, SyncInfo};
use soledad_store::{Change, Position};

use super::{ChangeKind, ChangeNotifier};
use crate::blobs::{QuotaLedger, UserId};
use crate::error::Error;
use crate::userdb::{AppliedBatch, ChangesChunk, SkipChange, SourceDoc, UserDocStores};

/// A [`UserDocStores`] that calls [`ChangeNotifier::notify`] (kind
/// [`ChangeKind::Docs`], with the uploading replica as source) after each
/// batch of [`apply_from_source`](UserDocStores::apply_from_source) that
/// moved the store's generation; everything else is passed through. A batch
/// that changed nothing (every document converged or older) wakes nobody, so
/// two devices' no-op syncs never wake each other.
pub struct NotifyingDocStores {
    inner: Arc<dyn UserDocStores>,
    notifier: Arc<dyn ChangeNotifier>,
}

impl NotifyingDocStores {
    /// Wraps `inner`, announcing its changes to `notifier`.
    pub fn new(inner: Arc<dyn UserDocStores>, notifier: Arc<dyn ChangeNotifier>) -> Self {
        NotifyingDocStores { inner, notifier }
    }
}

impl UserDocStores for NotifyingDocStores {
    fn create<'a>(&'a self, user: &'a UserId) -> BoxFuture<'a, Result<bool, Error>> {
        self.inner.create(user)
    }

    fn exists<'a>(&'a self, user: &'a UserId) -> BoxFuture<'a, Result<bool, Error>> {
        self.inner.exists(user)
    }

    fn sync_info<'a>(
        &'a self,
        user: &'a UserId,
        source: &'a str,
    ) -> BoxFuture<'a, Result<SyncInfo, Error>> {
        self.inner.sync_info(user, source)
    }

    fn record_position<'a>(
        &'a self,
        user: &'a UserId,
        source: &'a str,
        position: RecordSyncInfo,
        ledger: Option<Arc<QuotaLedger>>,
    ) -> BoxFuture<'a, Result<(), Error>> {
        self.inner.record_position(user, source, position, ledger)
    }

    fn begin_exchange<'a>(
        &'a self,
        user: &'a UserId,
        source: &'a str,
        ensure: bool,
        known: Position,
    ) -> BoxFuture<'a, Result<(), Error>> {
        self.inner.begin_exchange(user, source, ensure, known)
    }

    fn apply_from_source<'a>(
        &'a self,
        user: &'a UserId,
        source: &'a str,
        docs: Vec<SourceDoc>,
        ledger: Option<Arc<QuotaLedger>>,
    ) -> BoxFuture<'a, Result<AppliedBatch, Error>> {
        Box::pin(async move {
            let applied = self
                .inner
                .apply_from_source(user, source, docs, ledger)
                .await?;
            let (before, after) = applied.generations;
            if after != before {
                self.notifier
                    .notify(user, ChangeKind::Docs, Some(source))
                    .await;
            }
            Ok(applied)
        })
    }

    fn record_end<'a>(
        &'a self,
        user: &'a UserId,
        source: &'a str,
        end: ExchangeEnd,
        ledger: Option<Arc<QuotaLedger>>,
    ) -> BoxFuture<'a, Result<(), Error>> {
        self.inner.record_end(user, source, end, ledger)
    }

    fn durable_position<'a>(
        &'a self,
        user: &'a UserId,
        source: &'a str,
        ledger: Option<Arc<QuotaLedger>>,
    ) -> BoxFuture<'a, Result<(String, Position), Error>> {
        self.inner.durable_position(user, source, ledger)
    }

    fn changes_after<'a>(
        &'a self,
        user: &'a UserId,
        after: u64,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<Change>, Error>> {
        self.inner.changes_after(user, after, limit)
    }

    fn read_changes<'a>(
        &'a self,
        user: &'a UserId,
        after: u64,
        upto: u64,
        limits: BatchLimits,
        skip: SkipChange,
    ) -> BoxFuture<'a, Result<ChangesChunk, Error>> {
        self.inner.read_changes(user, after, upto, limits, skip)
    }
}
