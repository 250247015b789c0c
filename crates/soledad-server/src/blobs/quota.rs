//! Per-user quota, counted incrementally and shared by every write path.
//!
//! A [`QuotaLedger`] keeps, per user, the bytes stored and the bytes reserved
//! by writes in flight. The first time a user is touched in this process, the
//! ledger asks every registered [`UsageSource`] what it holds for that user
//! (for blobs: one walk of the user's directory), so counts are right after a
//! restart; afterwards it is pure arithmetic, never a disk walk per call.
//!
//! Every write path charges by the same measure its source uses after a
//! restart (blobs: content plus [`ENTRY_OVERHEAD_BYTES`] per file; documents:
//! the store's own count plus [`DOC_ENTRY_OVERHEAD_BYTES`] per document), so
//! usage after a restart equals usage before it.
//!
//! A write reserves its bytes before (or while) writing, fails with
//! [`BlobError::QuotaExceeded`] when the reservation would pass the limit, and
//! [`Reservation::commit`]s once its data is durable. Dropping a reservation
//! (failed or cancelled write) gives the bytes back.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use tokio::sync::OnceCell;

use super::blocking::run_blocking;
use super::error::BlobError;
use super::ids::UserId;

/// Quota charged per file a blob store keeps, on top of its content: a blob's
/// content file, its flags sidecar, a deleted blob's tombstone each cost at
/// least this (one filesystem block and an inode), so empty entries are not
/// free. A live blob with flags costs `len + 2 × ENTRY_OVERHEAD_BYTES`.
pub const ENTRY_OVERHEAD_BYTES: u64 = 4096;

/// Quota charged per stored document entry (a current revision or tombstone
/// row of a user's document store, or a conflict row), on top of its bytes
/// (id, revision, payload): the row, its index entry and page slack. Rows of
/// the transaction and sync logs are charged by their bytes only.
pub const DOC_ENTRY_OVERHEAD_BYTES: u64 = 256;

/// A user's usage against their quota.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Usage {
    /// Bytes stored (committed writes only; writes in flight are not counted).
    pub used_bytes: u64,
    /// The quota.
    pub limit_bytes: u64,
}

/// Something that stores bytes charged to users' quota (blobs, documents…).
pub trait UsageSource: Send + Sync + 'static {
    /// Bytes this source holds for `user` right now. Blocking: it runs on the
    /// blocking pool, once per user per process, before any write of that user
    /// is charged.
    ///
    /// # Errors
    /// Any I/O error while measuring; the ledger retries on the next call.
    fn measure(&self, user: &UserId) -> std::io::Result<u64>;
}

#[derive(Default)]
struct Counts {
    used: u64,
    reserved: u64,
}

#[derive(Default)]
struct Account {
    loaded: OnceCell<()>,
    counts: Mutex<Counts>,
}

impl Account {
    fn counts(&self) -> MutexGuard<'_, Counts> {
        // The counts stay consistent even if a holder panicked: every update
        // is a single assignment.
        self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Tracks each user's stored and reserved bytes against one limit.
///
/// Share it (`Arc`) between every write path of the server so they all charge
/// the same quota. Register every [`UsageSource`] before the first request.
pub struct QuotaLedger {
    limit_bytes: u64,
    sources: RwLock<Vec<Arc<dyn UsageSource>>>,
    accounts: Mutex<HashMap<UserId, Arc<Account>>>,
}

impl std::fmt::Debug for QuotaLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuotaLedger")
            .field("limit_bytes", &self.limit_bytes)
            .finish_non_exhaustive()
    }
}

impl QuotaLedger {
    /// A ledger giving every user `limit_bytes` (use `u64::MAX` for no limit),
    /// with no usage source yet.
    pub fn new(limit_bytes: u64) -> Self {
        Self {
            limit_bytes,
            sources: RwLock::new(Vec::new()),
            accounts: Mutex::new(HashMap::new()),
        }
    }

    /// The quota of every user, in bytes.
    pub fn limit_bytes(&self) -> u64 {
        self.limit_bytes
    }

    /// Adds a source whose stored bytes count against the quota. Register all
    /// sources before the ledger serves its first user: a user already loaded
    /// is not measured again.
    pub fn register_source(&self, source: Arc<dyn UsageSource>) {
        self.sources
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .push(source);
    }

    fn account(&self, user: &UserId) -> Arc<Account> {
        let mut accounts = self.accounts.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(accounts.entry(user.clone()).or_default())
    }

    async fn loaded_account(&self, user: &UserId) -> Result<Arc<Account>, BlobError> {
        let account = self.account(user);
        account
            .loaded
            .get_or_try_init(|| async {
                let sources = self
                    .sources
                    .read()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone();
                let who = user.clone();
                let stored = run_blocking(move || {
                    let mut total = 0u64;
                    for source in &sources {
                        total = total.saturating_add(source.measure(&who)?);
                    }
                    Ok(total)
                })
                .await?;
                let mut counts = account.counts();
                counts.used = counts.used.saturating_add(stored);
                Ok::<(), BlobError>(())
            })
            .await?;
        Ok(account)
    }

    /// Measures `user`'s stored bytes if this process has not done so yet.
    /// Call it before removing stored data whose size you will
    /// [`release`](Self::release), so the removal is not counted twice.
    ///
    /// # Errors
    /// [`BlobError::Io`] if a source fails to measure.
    pub async fn ensure_loaded(&self, user: &UserId) -> Result<(), BlobError> {
        self.loaded_account(user).await.map(|_| ())
    }

    /// Reserves `bytes` for a write of `user`.
    ///
    /// # Errors
    /// [`BlobError::QuotaExceeded`] if stored plus reserved plus `bytes` would
    /// pass the limit; [`BlobError::Io`] if measuring the user's usage fails.
    pub async fn reserve(&self, user: &UserId, bytes: u64) -> Result<Reservation, BlobError> {
        let account = self.loaded_account(user).await?;
        let mut reservation = Reservation {
            account,
            limit_bytes: self.limit_bytes,
            bytes: 0,
        };
        reservation.grow(bytes)?;
        Ok(reservation)
    }

    /// `user`'s stored bytes and limit.
    ///
    /// # Errors
    /// [`BlobError::Io`] if measuring the user's usage fails.
    pub async fn usage(&self, user: &UserId) -> Result<Usage, BlobError> {
        let account = self.loaded_account(user).await?;
        let used_bytes = account.counts().used;
        Ok(Usage {
            used_bytes,
            limit_bytes: self.limit_bytes,
        })
    }

    /// Charges `bytes` that a small write is storing for `user` right now (a
    /// sidecar file made under the blob's lock), refusing past the limit. Call
    /// [`ensure_loaded`](Self::ensure_loaded) first; a user not loaded yet is
    /// not charged (their first measure will see the file).
    ///
    /// # Errors
    /// [`BlobError::QuotaExceeded`] if stored plus reserved plus `bytes` would
    /// pass the limit; nothing is charged then.
    pub fn charge(&self, user: &UserId, bytes: u64) -> Result<(), BlobError> {
        let account = self.account(user);
        if !account.loaded.initialized() {
            return Ok(());
        }
        let mut counts = account.counts();
        let charged = counts.used.saturating_add(counts.reserved);
        if charged
            .checked_add(bytes)
            .is_none_or(|wanted| wanted > self.limit_bytes)
        {
            return Err(BlobError::QuotaExceeded {
                used_bytes: charged,
                limit_bytes: self.limit_bytes,
            });
        }
        counts.used = counts.used.saturating_add(bytes);
        Ok(())
    }

    /// Gives back `bytes` of `user`'s stored data that was just removed.
    /// Does nothing if the user is not loaded yet (their next measure will
    /// not see the removed data anyway).
    pub fn release(&self, user: &UserId, bytes: u64) {
        let account = self.account(user);
        if account.loaded.initialized() {
            let mut counts = account.counts();
            counts.used = counts.used.saturating_sub(bytes);
        }
    }
}

/// Bytes held for a write in flight. Dropping it gives them back;
/// [`commit`](Self::commit) turns them into stored bytes.
#[must_use = "dropping a reservation releases it"]
pub struct Reservation {
    account: Arc<Account>,
    limit_bytes: u64,
    bytes: u64,
}

impl std::fmt::Debug for Reservation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reservation")
            .field("bytes", &self.bytes)
            .finish_non_exhaustive()
    }
}

impl Reservation {
    /// Bytes currently reserved.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Reserves `additional` more bytes (a write growing past what it announced).
    ///
    /// # Errors
    /// [`BlobError::QuotaExceeded`] if that would pass the limit; the
    /// reservation keeps its previous size.
    pub fn grow(&mut self, additional: u64) -> Result<(), BlobError> {
        let mut counts = self.account.counts();
        let charged = counts.used.saturating_add(counts.reserved);
        if charged
            .checked_add(additional)
            .is_none_or(|wanted| wanted > self.limit_bytes)
        {
            return Err(BlobError::QuotaExceeded {
                used_bytes: charged,
                limit_bytes: self.limit_bytes,
            });
        }
        counts.reserved = counts.reserved.saturating_add(additional);
        self.bytes = self.bytes.saturating_add(additional);
        Ok(())
    }

    /// Gives back reserved bytes down to `bytes` (a write shorter than announced).
    pub fn shrink_to(&mut self, bytes: u64) {
        if bytes < self.bytes {
            let freed = self.bytes - bytes;
            let mut counts = self.account.counts();
            counts.reserved = counts.reserved.saturating_sub(freed);
            self.bytes = bytes;
        }
    }

    /// Turns the reserved bytes into stored bytes: call once the data is durable.
    pub fn commit(mut self) {
        let mut counts = self.account.counts();
        counts.reserved = counts.reserved.saturating_sub(self.bytes);
        counts.used = counts.used.saturating_add(self.bytes);
        drop(counts);
        self.bytes = 0;
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.bytes > 0 {
            let mut counts = self.account.counts();
            counts.reserved = counts.reserved.saturating_sub(self.bytes);
        }
    }
}
