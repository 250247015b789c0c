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
//!
//! Where the counts live is the [`QuotaCounters`] seam: the embedded default
//! ([`EmbeddedQuotaCounters`]) keeps them in this process and measures the
//! usage sources once per user after a start; another implementation (e.g.
//! counters in a distributed store, DESIGN §9) is given to
//! [`crate::ServerBuilder::quota_ledger`]. [`QuotaLedger`] is the front every
//! write path holds: the limit, plus these counters.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use futures_util::future::BoxFuture;
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

/// Where each user's quota counts live: bytes *stored* (committed writes) and
/// bytes *reserved* (writes in flight). The seam behind [`QuotaLedger`],
/// injected with [`crate::ServerBuilder::quota_ledger`]; the embedded default
/// is [`EmbeddedQuotaCounters`]. [`crate::conformance::quota`] (feature
/// `conformance`) is the behaviour every implementation must show.
///
/// [`load`](Self::load) is asynchronous (it may measure disks or read a remote
/// counter); every other call is synchronous and cheap, because writes adjust
/// the counts from blocking threads and from `Drop` (a cancelled upload). An
/// implementation backed by a remote store applies them to the counts it
/// loaded and writes them back in the background.
///
/// # Contract
/// - The counts of a user start at what [`load`](Self::load) found: an
///   implementation that keeps no count across restarts measures every
///   registered [`UsageSource`] on a user's first load, so usage after a
///   restart equals usage before it; one that persists its counts may ignore
///   sources (and must then count everything it is told).
/// - `try_reserve` and `try_charge` check and add in one step: two calls never
///   both pass on the same last bytes *within one implementation instance*.
///   On refusal nothing changes.
/// - **Overshoot bound.** Several instances sharing counts (several server
///   processes over one distributed store) may each admit a write on counts
///   that do not yet show the others' writes in flight. A user's stored bytes
///   may then pass the limit by at most the bytes reserved or charged
///   concurrently on *other* instances (at most their in-flight writes, each
///   bounded by its own reservation), never by an unbounded amount: counts
///   are written back within a bounded delay and re-read on each `load` of a
///   user that was idle. A single instance never overshoots.
/// - Counts never go below zero (`unreserve`, `commit`, `release` saturate).
/// - `try_charge` and `release` on a user not loaded in this instance do
///   nothing (the next load measures the result).
pub trait QuotaCounters: Send + Sync + 'static {
    /// Adds a source to measure on a user's first load (see the contract).
    fn register_source(&self, source: Arc<dyn UsageSource>);

    /// Makes `user`'s counts current in this instance (once per user for the
    /// embedded implementation).
    ///
    /// # Errors
    /// [`BlobError::Io`] if measuring or reading fails; the next call retries.
    fn load<'a>(&'a self, user: &'a UserId) -> BoxFuture<'a, Result<(), BlobError>>;

    /// `user`'s stored bytes (0 if not loaded).
    fn used(&self, user: &UserId) -> u64;

    /// Adds `bytes` to `user`'s reserved bytes unless stored + reserved +
    /// `bytes` would pass `limit_bytes`.
    ///
    /// # Errors
    /// [`BlobError::QuotaExceeded`] with the stored + reserved bytes.
    fn try_reserve(&self, user: &UserId, bytes: u64, limit_bytes: u64) -> Result<(), BlobError>;

    /// Takes `bytes` off `user`'s reserved bytes (a write that failed or
    /// stored less than it reserved).
    fn unreserve(&self, user: &UserId, bytes: u64);

    /// Moves `bytes` from `user`'s reserved to stored bytes (the write is durable).
    fn commit(&self, user: &UserId, bytes: u64);

    /// Adds `bytes` to `user`'s stored bytes unless stored + reserved +
    /// `bytes` would pass `limit_bytes`; nothing for a user not loaded.
    ///
    /// # Errors
    /// [`BlobError::QuotaExceeded`] with the stored + reserved bytes.
    fn try_charge(&self, user: &UserId, bytes: u64, limit_bytes: u64) -> Result<(), BlobError>;

    /// Takes `bytes` off `user`'s stored bytes (data removed); nothing for a
    /// user not loaded.
    fn release(&self, user: &UserId, bytes: u64);
}

#[derive(Default)]
struct Counts {
    used: u64,
    reserved: u64,
}

/// Whether `bytes` more fit next to `charged` (stored + reserved) bytes under
/// `limit_bytes`: the one admission rule of every [`QuotaCounters`].
///
/// # Errors
/// [`BlobError::QuotaExceeded`] with `charged`.
pub(crate) fn admit(charged: u64, bytes: u64, limit_bytes: u64) -> Result<(), BlobError> {
    if charged
        .checked_add(bytes)
        .is_none_or(|wanted| wanted > limit_bytes)
    {
        return Err(BlobError::QuotaExceeded {
            used_bytes: charged,
            limit_bytes,
        });
    }
    Ok(())
}

/// What every source in `sources` holds for `user`, summed (measured on the
/// blocking pool).
///
/// # Errors
/// [`BlobError::Io`] from the first source that fails to measure.
pub(crate) async fn measure_sources(
    sources: &RwLock<Vec<Arc<dyn UsageSource>>>,
    user: &UserId,
) -> Result<u64, BlobError> {
    let sources = sources
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let who = user.clone();
    run_blocking(move || {
        let mut total = 0u64;
        for source in &sources {
            total = total.saturating_add(source.measure(&who)?);
        }
        Ok(total)
    })
    .await
}

impl Counts {
    /// Adds `bytes` to one count unless the total would pass `limit_bytes`.
    fn try_add(&mut self, bytes: u64, limit_bytes: u64, reserve: bool) -> Result<(), BlobError> {
        admit(self.used.saturating_add(self.reserved), bytes, limit_bytes)?;
        if reserve {
            self.reserved = self.reserved.saturating_add(bytes);
        } else {
            self.used = self.used.saturating_add(bytes);
        }
        Ok(())
    }
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

/// The embedded [`QuotaCounters`]: counts in this process's memory, measured
/// from the registered [`UsageSource`]s the first time a user is touched
/// after a start (for blobs: one walk of the user's directory), then pure
/// arithmetic.
#[derive(Default)]
pub struct EmbeddedQuotaCounters {
    sources: RwLock<Vec<Arc<dyn UsageSource>>>,
    accounts: Mutex<HashMap<UserId, Arc<Account>>>,
}

impl std::fmt::Debug for EmbeddedQuotaCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedQuotaCounters")
            .finish_non_exhaustive()
    }
}

impl EmbeddedQuotaCounters {
    /// Counters with no usage source yet.
    pub fn new() -> Self {
        Self::default()
    }

    fn account(&self, user: &UserId) -> Arc<Account> {
        let mut accounts = self.accounts.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(accounts.entry(user.clone()).or_default())
    }

    /// The account of a user already loaded, if any.
    fn loaded(&self, user: &UserId) -> Option<Arc<Account>> {
        let account = self.account(user);
        account.loaded.initialized().then_some(account)
    }
}

impl QuotaCounters for EmbeddedQuotaCounters {
    fn register_source(&self, source: Arc<dyn UsageSource>) {
        self.sources
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .push(source);
    }

    fn load<'a>(&'a self, user: &'a UserId) -> BoxFuture<'a, Result<(), BlobError>> {
        Box::pin(async move {
            let account = self.account(user);
            account
                .loaded
                .get_or_try_init(|| async {
                    let stored = measure_sources(&self.sources, user).await?;
                    let mut counts = account.counts();
                    counts.used = counts.used.saturating_add(stored);
                    Ok::<(), BlobError>(())
                })
                .await?;
            Ok(())
        })
    }

    fn used(&self, user: &UserId) -> u64 {
        self.loaded(user).map_or(0, |account| account.counts().used)
    }

    fn try_reserve(&self, user: &UserId, bytes: u64, limit_bytes: u64) -> Result<(), BlobError> {
        self.account(user)
            .counts()
            .try_add(bytes, limit_bytes, true)
    }

    fn unreserve(&self, user: &UserId, bytes: u64) {
        let account = self.account(user);
        let mut counts = account.counts();
        counts.reserved = counts.reserved.saturating_sub(bytes);
    }

    fn commit(&self, user: &UserId, bytes: u64) {
        let account = self.account(user);
        let mut counts = account.counts();
        counts.reserved = counts.reserved.saturating_sub(bytes);
        counts.used = counts.used.saturating_add(bytes);
    }

    fn try_charge(&self, user: &UserId, bytes: u64, limit_bytes: u64) -> Result<(), BlobError> {
        match self.loaded(user) {
            Some(account) => account.counts().try_add(bytes, limit_bytes, false),
            None => Ok(()),
        }
    }

    fn release(&self, user: &UserId, bytes: u64) {
        if let Some(account) = self.loaded(user) {
            let mut counts = account.counts();
            counts.used = counts.used.saturating_sub(bytes);
        }
    }
}

/// Tracks each user's stored and reserved bytes against one limit.
///
/// Share it (`Arc`) between every write path of the server so they all charge
/// the same quota. Register every [`UsageSource`] before the first request.
pub struct QuotaLedger {
    limit_bytes: u64,
    counters: Arc<dyn QuotaCounters>,
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
    /// on the embedded counters, with no usage source yet.
    pub fn new(limit_bytes: u64) -> Self {
        Self::with_counters(limit_bytes, Arc::new(EmbeddedQuotaCounters::new()))
    }

    /// A ledger giving every user `limit_bytes` on `counters`.
    pub fn with_counters(limit_bytes: u64, counters: Arc<dyn QuotaCounters>) -> Self {
        Self {
            limit_bytes,
            counters,
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
        self.counters.register_source(source);
    }

    /// Measures `user`'s stored bytes if this process has not done so yet.
    /// Call it before removing stored data whose size you will
    /// [`release`](Self::release), so the removal is not counted twice.
    ///
    /// # Errors
    /// [`BlobError::Io`] if a source fails to measure.
    pub async fn ensure_loaded(&self, user: &UserId) -> Result<(), BlobError> {
        self.counters.load(user).await
    }

    /// Reserves `bytes` for a write of `user`.
    ///
    /// # Errors
    /// [`BlobError::QuotaExceeded`] if stored plus reserved plus `bytes` would
    /// pass the limit; [`BlobError::Io`] if measuring the user's usage fails.
    pub async fn reserve(&self, user: &UserId, bytes: u64) -> Result<Reservation, BlobError> {
        self.counters.load(user).await?;
        let mut reservation = Reservation {
            counters: Arc::clone(&self.counters),
            user: user.clone(),
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
        self.counters.load(user).await?;
        Ok(Usage {
            used_bytes: self.counters.used(user),
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
        self.counters.try_charge(user, bytes, self.limit_bytes)
    }

    /// Gives back `bytes` of `user`'s stored data that was just removed.
    /// Does nothing if the user is not loaded yet (their next measure will
    /// not see the removed data anyway).
    pub fn release(&self, user: &UserId, bytes: u64) {
        self.counters.release(user, bytes);
    }
}

/// Bytes held for a write in flight. Dropping it gives them back;
/// [`commit`](Self::commit) turns them into stored bytes.
#[must_use = "dropping a reservation releases it"]
pub struct Reservation {
    counters: Arc<dyn QuotaCounters>,
    user: UserId,
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
        self.counters
            .try_reserve(&self.user, additional, self.limit_bytes)?;
        self.bytes = self.bytes.saturating_add(additional);
        Ok(())
    }

    /// Gives back reserved bytes down to `bytes` (a write shorter than announced).
    pub fn shrink_to(&mut self, bytes: u64) {
        if bytes < self.bytes {
            self.counters.unreserve(&self.user, self.bytes - bytes);
            self.bytes = bytes;
        }
    }

    /// Turns the reserved bytes into stored bytes: call once the data is durable.
    pub fn commit(mut self) {
        self.counters.commit(&self.user, self.bytes);
        self.bytes = 0;
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.bytes > 0 {
            self.counters.unreserve(&self.user, self.bytes);
        }
    }
}
