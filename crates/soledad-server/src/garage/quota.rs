//! Quota counts shared by every server over one Garage cluster
//! ([`GarageQuotaCounters`], the [`QuotaCounters`] of `backend = garage`).
//!
//! Each user has a K2V partition `<prefix>quota-<uuid>` holding:
//!
//! | sort key          | value                                                       |
//! |-------------------|-------------------------------------------------------------|
//! | `base`            | the user's stored bytes measured once, when the partition was made |
//! | `i/<instance>`    | the net bytes one server process charged since (signed)    |
//!
//! A user's stored bytes are `base` plus every instance's net bytes. Only the
//! process owning an `i/<instance>` item writes it (one write-back task, each
//! write superseding the last with its causality token), so counts converge
//! without coordination between servers.
//!
//! Reservations (writes in flight) stay in the process that holds them.
//! Commits, charges and releases change this process's own net bytes at once
//! (so one process never overshoots) and are written back right away in the
//! background, retried every [`QUOTA_WRITE_BACK`] on failure. A user's counts
//! are re-read (one range read) on the first use after [`QUOTA_REFRESH`], so
//! the other servers' charges show here within `QUOTA_REFRESH` plus their
//! write-back.
//!
//! **Overshoot bound.** With S servers writing for one user at once, each
//! admits a write on its own exact counts plus the others' counts as last
//! read; a user's stored bytes may pass the limit by at most what the S − 1
//! other servers committed within the last `QUOTA_REFRESH` + write-back delay
//! plus what they hold reserved at that moment (each write bounded by its own
//! reservation), never by an unbounded amount; a single server never
//! overshoots.
//!
//! **Restarts.** Counts live in the cluster, so usage after a restart equals
//! usage before it, on every server. The sources ([`UsageSource`]: the Garage
//! blob and document stores) are measured only when a user's partition does
//! not exist yet (a user whose data predates these counters; two servers
//! making it at once keep the larger measure, which may count a write made
//! meanwhile twice, never zero times). A server killed
//! before its write-back loses the changes it had not written back (at most
//! those of its last write-back pass, typically one K2V round trip).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use super::error::GarageError;
use super::k2v::{Item, K2vClient, Range};
use crate::blobs::quota::{admit, measure_sources};
use crate::blobs::{BlobError, QuotaCounters, UsageSource, UserId};

/// A user's counts are re-read from the cluster on the first use after this
/// long, so other servers' charges show within it (plus their write-back).
pub const QUOTA_REFRESH: Duration = Duration::from_secs(2);

/// Changes are written back at once in the background; a failed write-back
/// is retried this often.
pub const QUOTA_WRITE_BACK: Duration = Duration::from_secs(1);

const BASE: &str = "base";
const INSTANCE: &str = "i/";

fn io_error(error: GarageError) -> BlobError {
    BlobError::Io(std::io::Error::other(error))
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The `base` item.
#[derive(Serialize, Deserialize)]
struct BaseValue {
    bytes: u64,
}

/// An `i/<instance>` item: that process's net bytes and when it wrote them.
#[derive(Serialize, Deserialize)]
struct InstanceValue {
    delta: i64,
    ms: u64,
}

/// The largest `base` among concurrent values (two servers that made the
/// partition at once measured the same data).
fn base_of(item: &Item) -> Option<u64> {
    item.live()
        .filter_map(|v| serde_json::from_slice::<BaseValue>(v).ok())
        .map(|b| b.bytes)
        .max()
}

/// The latest value of an instance item (one writer: concurrent values only
/// after a write-back whose answer was lost).
fn delta_of(item: &Item) -> i64 {
    item.live()
        .filter_map(|v| serde_json::from_slice::<InstanceValue>(v).ok())
        .max_by_key(|v| v.ms)
        .map_or(0, |v| v.delta)
}

fn clamp(total: i128) -> u64 {
    u64::try_from(total.max(0)).unwrap_or(u64::MAX)
}

#[derive(Default)]
struct State {
    /// When the other servers' counts were last read (`None`: never).
    read_at: Option<Instant>,
    /// `base` plus every other instance's net bytes, as last read.
    others: i128,
    /// This process's net bytes for the user (what `i/<instance>` holds once
    /// written back).
    mine: i128,
    reserved: u64,
}

impl State {
    fn used(&self) -> u64 {
        clamp(self.others.saturating_add(self.mine))
    }

    fn try_add(&mut self, bytes: u64, limit_bytes: u64, reserve: bool) -> Result<(), BlobError> {
        admit(
            self.used().saturating_add(self.reserved),
            bytes,
            limit_bytes,
        )?;
        if reserve {
            self.reserved = self.reserved.saturating_add(bytes);
        } else {
            self.mine = self.mine.saturating_add(i128::from(bytes));
        }
        Ok(())
    }

    /// Takes `bytes` off the stored bytes, never below zero.
    fn take(&mut self, bytes: u64) {
        let taken = bytes.min(self.used());
        self.mine = self.mine.saturating_sub(i128::from(taken));
    }
}

#[derive(Default)]
struct Account {
    state: Mutex<State>,
    /// One re-read of the cluster at a time.
    reading: tokio::sync::Mutex<()>,
}

impl Account {
    fn state(&self) -> MutexGuard<'_, State> {
        // Every update is a few assignments: consistent after a panic.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn is_fresh(&self) -> bool {
        self.state()
            .read_at
            .is_some_and(|at| at.elapsed() < QUOTA_REFRESH)
    }
}

struct Inner {
    k2v: K2vClient,
    prefix: String,
    /// This process (its `i/<instance>` items).
    instance: String,
    sources: RwLock<Vec<Arc<dyn UsageSource>>>,
    accounts: Mutex<HashMap<UserId, Arc<Account>>>,
    /// Users whose net bytes changed since their last write-back.
    dirty: Mutex<HashSet<UserId>>,
    wake: Arc<Notify>,
    writer_started: AtomicBool,
    /// One write-back pass at a time (so `write_back` returns only once a
    /// pass in flight has landed too).
    writing: tokio::sync::Mutex<()>,
}

/// Quota counts in K2V, shared by every server over one cluster (module doc:
/// layout, overshoot bound, restarts).
#[derive(Clone)]
pub struct GarageQuotaCounters {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for GarageQuotaCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GarageQuotaCounters")
            .field("prefix", &self.inner.prefix)
            .finish_non_exhaustive()
    }
}

impl GarageQuotaCounters {
    /// Counters of the cluster `k2v` talks to, under `prefix`, with no usage
    /// source yet.
    ///
    /// # Errors
    /// [`GarageError::Config`] when no randomness is available for the
    /// instance id.
    pub(crate) fn new(k2v: K2vClient, prefix: &str) -> Result<GarageQuotaCounters, GarageError> {
        let mut id = [0u8; 12];
        getrandom::fill(&mut id).map_err(|_| GarageError::Config {
            what: "no randomness available".to_owned(),
        })?;
        Ok(GarageQuotaCounters {
            inner: Arc::new(Inner {
                k2v,
                prefix: prefix.to_owned(),
                instance: hex::encode(id),
                sources: RwLock::new(Vec::new()),
                accounts: Mutex::new(HashMap::new()),
                dirty: Mutex::new(HashSet::new()),
                wake: Arc::new(Notify::new()),
                writer_started: AtomicBool::new(false),
                writing: tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// Writes back every change not written yet (also done in the background
    /// right after each change).
    ///
    /// # Errors
    /// [`BlobError::Io`] when a write-back failed (it is retried later).
    pub async fn write_back(&self) -> Result<(), BlobError> {
        self.inner.write_back().await
    }
}

impl Inner {
    fn partition(&self, user: &UserId) -> String {
        format!("{}quota-{}", self.prefix, user.as_str())
    }

    fn account(&self, user: &UserId) -> Arc<Account> {
        let mut accounts = self.accounts.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(accounts.entry(user.clone()).or_default())
    }

    /// Marks `user`'s net bytes for write-back (only once their partition
    /// exists: before that, the first load measures the change).
    fn changed(&self, user: &UserId, account: &Account) {
        if account.state().read_at.is_none() {
            return;
        }
        self.dirty
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(user.clone());
        self.wake.notify_one();
    }

    async fn read(&self, user: &UserId, account: &Account) -> Result<(), BlobError> {
        let pk = self.partition(user);
        let items = self
            .k2v
            .read_all(Range::prefix(&pk, ""))
            .await
            .map_err(io_error)?;
        let mine = format!("{INSTANCE}{}", self.instance);
        let mut base = None;
        let mut others: i128 = 0;
        for (sort_key, item) in &items {
            if sort_key == BASE {
                base = base_of(item);
            } else if sort_key.starts_with(INSTANCE) && *sort_key != mine {
                others = others.saturating_add(i128::from(delta_of(item)));
            }
        }
        let base = match base {
            Some(base) => base,
            None => {
                // A new partition: what the user stores so far.
                let measured = measure_sources(&self.sources, user).await?;
                let value = serde_json::to_vec(&BaseValue { bytes: measured })
                    .map_err(std::io::Error::other)?;
                self.k2v
                    .insert_item(&pk, BASE, None, Bytes::from(value))
                    .await
                    .map_err(io_error)?;
                // The measure saw every change made so far.
                account.state().mine = 0;
                measured
            }
        };
        let mut state = account.state();
        state.others = i128::from(base).saturating_add(others);
        state.read_at = Some(Instant::now());
        Ok(())
    }

    async fn write_back(&self) -> Result<(), BlobError> {
        let _writing = self.writing.lock().await;
        let users: Vec<UserId> = self
            .dirty
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain()
            .collect();
        let mut failed = None;
        for user in users {
            if let Err(error) = self.write_user(&user).await {
                self.dirty
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(user);
                failed = Some(error);
            }
        }
        failed.map_or(Ok(()), Err)
    }

    async fn write_user(&self, user: &UserId) -> Result<(), BlobError> {
        let pk = self.partition(user);
        let sort_key = format!("{INSTANCE}{}", self.instance);
        let delta = {
            let mine = self.account(user).state().mine;
            i64::try_from(mine).unwrap_or(if mine < 0 { i64::MIN } else { i64::MAX })
        };
        let token = self
            .k2v
            .read_item(&pk, &sort_key)
            .await
            .map_err(io_error)?
            .map(|item| item.token);
        let value = serde_json::to_vec(&InstanceValue {
            delta,
            ms: now_ms(),
        })
        .map_err(std::io::Error::other)?;
        self.k2v
            .insert_item(&pk, &sort_key, token.as_ref(), Bytes::from(value))
            .await
            .map_err(io_error)
    }
}

/// The background write-back: wakes on every change (or every
/// [`QUOTA_WRITE_BACK`] to retry), ends with the counters.
async fn write_back_task(inner: Weak<Inner>, wake: Arc<Notify>) {
    loop {
        {
            let Some(inner) = inner.upgrade() else {
                return;
            };
            if let Err(error) = inner.write_back().await {
                tracing::warn!(%error, "writing quota counts back to Garage failed; retrying");
            }
        }
        tokio::select! {
            () = wake.notified() => {}
            () = tokio::time::sleep(QUOTA_WRITE_BACK) => {}
        }
    }
}

impl QuotaCounters for GarageQuotaCounters {
    fn register_source(&self, source: Arc<dyn UsageSource>) {
        self.inner
            .sources
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .push(source);
    }

    fn load<'a>(&'a self, user: &'a UserId) -> BoxFuture<'a, Result<(), BlobError>> {
        Box::pin(async move {
            if !self.inner.writer_started.swap(true, Ordering::SeqCst) {
                tokio::spawn(write_back_task(
                    Arc::downgrade(&self.inner),
                    Arc::clone(&self.inner.wake),
                ));
            }
            let account = self.inner.account(user);
            if account.is_fresh() {
                return Ok(());
            }
            let _reading = account.reading.lock().await;
            if account.is_fresh() {
                return Ok(());
            }
            self.inner.read(user, &account).await
        })
    }

    fn used(&self, user: &UserId) -> u64 {
        self.inner.account(user).state().used()
    }

    fn try_reserve(&self, user: &UserId, bytes: u64, limit_bytes: u64) -> Result<(), BlobError> {
        self.inner
            .account(user)
            .state()
            .try_add(bytes, limit_bytes, true)
    }

    fn unreserve(&self, user: &UserId, bytes: u64) {
        let account = self.inner.account(user);
        let mut state = account.state();
        state.reserved = state.reserved.saturating_sub(bytes);
    }

    fn commit(&self, user: &UserId, bytes: u64) {
        let account = self.inner.account(user);
        {
            let mut state = account.state();
            state.reserved = state.reserved.saturating_sub(bytes);
            state.mine = state.mine.saturating_add(i128::from(bytes));
        }
        self.inner.changed(user, &account);
    }

    fn try_charge(&self, user: &UserId, bytes: u64, limit_bytes: u64) -> Result<(), BlobError> {
        let account = self.inner.account(user);
        {
            let mut state = account.state();
            if state.read_at.is_none() {
                // Not loaded: the first load measures this write.
                return Ok(());
            }
            state.try_add(bytes, limit_bytes, false)?;
        }
        self.inner.changed(user, &account);
        Ok(())
    }

    fn release(&self, user: &UserId, bytes: u64) {
        let account = self.inner.account(user);
        {
            let mut state = account.state();
            if state.read_at.is_none() {
                return;
            }
            state.take(bytes);
        }
        self.inner.changed(user, &account);
    }
}
