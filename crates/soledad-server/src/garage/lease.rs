//! A short write lease per K2V partition, so writes of one user's document
//! store through different servers are serialised (dense generations, u1db's
//! rules applied to what is really current).
//!
//! K2V has no compare-and-swap, but it has quorum writes and reads (2 of 3
//! nodes) and causality tokens. To take the lease a server reads the `lease`
//! item; if no value in it is live (unexpired and not released) it writes its
//! own value (a fresh random holder, an expiry) with the token of that read,
//! then reads the item again. It holds the lease only if that second read
//! shows its value and no other live one. Two servers racing both write
//! values concurrent with each other (neither token covers the other's write);
//! if A's second read does not show B's value, B's write reached its quorum
//! after A's read, so B's own second read (later still) meets A's value on the
//! node the quorums share, and B backs off: at most one holder at a time.
//! A loser's value stays in the item until it expires (contention costs at
//! most [`LEASE_TTL`]); a crashed holder's lease expires the same way.
//!
//! Within one process, the tasks that want a partition's lease queue on a
//! local mutex first, so they never contend through K2V; a lease value of
//! this process found in the item while holding that mutex is stale (its task
//! is gone) and ignored.
//!
//! A holder may park its lease for [`PARK_FOR`] after a write instead of
//! releasing it ([`Lease::park`]): the next local writer of the partition
//! takes it again without a K2V request (it is still this process's, and no
//! other server takes a live lease), else it is released then.
//!
//! Safety also rests on the holder finishing within the lease: each write
//! phase first checks that at least [`LEASE_MARGIN`] is left
//! ([`Lease::check`]), and servers' clocks are assumed within a second of each
//! other (NTP). See `docs/scale-out.md`, "Failure modes".

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::OwnedMutexGuard;

use super::error::GarageError;
use super::k2v::{CausalityToken, K2vClient, Page, Range};

/// How long a lease holds once taken.
pub(crate) const LEASE_TTL: Duration = Duration::from_secs(15);

/// A holder stops writing when less than this is left of its lease.
pub(crate) const LEASE_MARGIN: Duration = Duration::from_secs(3);

/// How long a writer waits for a busy lease before giving up
/// ([`GarageError::LeaseBusy`]).
pub(crate) const ACQUIRE_WAIT: Duration = Duration::from_secs(40);

/// How long a lease given back with [`Lease::park`] stays with this process
/// for its next write of the partition before it is released.
pub(crate) const PARK_FOR: Duration = Duration::from_millis(250);

/// A parked lease is taken again only with at least this much left beyond
/// [`LEASE_MARGIN`] (else a fresh one is taken).
const REUSE_LEFT: Duration = Duration::from_secs(6);

/// The sort key of the lease item in its partition.
const LEASE_KEY: &str = "lease";

#[derive(Serialize, Deserialize, PartialEq, Eq, Debug)]
struct LeaseValue {
    holder: String,
    until_ms: u64,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn random_hex(bytes: usize) -> Result<String, GarageError> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|_| GarageError::Config {
        what: "no randomness available".to_owned(),
    })?;
    Ok(hex::encode(buf))
}

/// This process's lease holders: its instance id (the prefix of its holder
/// names), one queue per partition, and the leases parked between writes.
struct Local {
    instance: String,
    queues: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    parked: Mutex<HashMap<String, Parked>>,
}

/// A lease this process holds with no write under it ([`Lease::park`]).
struct Parked {
    holder: String,
    deadline: Instant,
    token: CausalityToken,
}

fn local() -> Result<&'static Local, GarageError> {
    static LOCAL: OnceLock<Local> = OnceLock::new();
    if let Some(local) = LOCAL.get() {
        return Ok(local);
    }
    let instance = random_hex(8)?;
    Ok(LOCAL.get_or_init(|| Local {
        instance,
        queues: Mutex::new(HashMap::new()),
        parked: Mutex::new(HashMap::new()),
    }))
}

impl Local {
    async fn queue(&self, partition: &str) -> OwnedMutexGuard<()> {
        let queue = {
            let mut queues = self.queues.lock().unwrap_or_else(PoisonError::into_inner);
            // Forget queues nobody waits on (bounded by the partitions in use).
            if queues.len() > 1024 {
                queues.retain(|_, q| Arc::strong_count(q) > 1);
            }
            Arc::clone(queues.entry(partition.to_owned()).or_default())
        };
        queue.lock_owned().await
    }

    /// Takes `partition`'s parked lease, if any (a stale one is forgotten:
    /// the next acquisition supersedes its value).
    fn unpark(&self, partition: &str) -> Option<Parked> {
        let mut parked = self.parked.lock().unwrap_or_else(PoisonError::into_inner);
        let lease = parked.remove(partition)?;
        (Instant::now() + LEASE_MARGIN + REUSE_LEFT < lease.deadline).then_some(lease)
    }

    fn is_mine(&self, lease: &LeaseValue) -> bool {
        lease
            .holder
            .split_once(':')
            .is_some_and(|(instance, _)| instance == self.instance)
    }
}

fn parse(value: &Bytes) -> Option<LeaseValue> {
    serde_json::from_slice(value).ok()
}

/// A held lease on one partition.
#[derive(Debug)]
pub(crate) struct Lease {
    partition: String,
    holder: String,
    /// When it runs out, on this process's monotonic clock (a margin for
    /// clock skew is taken off).
    deadline: Instant,
    token: CausalityToken,
    /// This process's queue for the partition, held as long as the lease.
    _queued: OwnedMutexGuard<()>,
}

impl Lease {
    /// Takes the lease of `partition`, waiting while another holder has it.
    ///
    /// # Errors
    /// [`GarageError::LeaseBusy`] after [`ACQUIRE_WAIT`]; a K2V error.
    pub(crate) async fn acquire(k2v: &K2vClient, partition: &str) -> Result<Lease, GarageError> {
        Ok(Lease::acquire_reading(k2v, partition, &[]).await?.0)
    }

    /// Like [`acquire`](Self::acquire), and reads `also` in the same request
    /// as the read that confirms the lease: what it returns (one page per
    /// range) is read under the lease, as a read after taking it would be
    /// (a previous holder's writes all completed before its release, which
    /// this acquisition saw), one round trip fewer.
    ///
    /// # Errors
    /// As [`acquire`](Self::acquire).
    pub(crate) async fn acquire_reading(
        k2v: &K2vClient,
        partition: &str,
        also: &[Range],
    ) -> Result<(Lease, Vec<Page>), GarageError> {
        let give_up = Instant::now() + ACQUIRE_WAIT;
        let local = local()?;
        let queued = tokio::time::timeout(ACQUIRE_WAIT, local.queue(partition))
            .await
            .map_err(|_| GarageError::LeaseBusy)?;
        if let Some(parked) = local.unpark(partition) {
            // Still ours (no other server takes a live lease): only `also`
            // is read.
            let lease = Lease {
                partition: partition.to_owned(),
                holder: parked.holder,
                deadline: parked.deadline,
                token: parked.token,
                _queued: queued,
            };
            if also.is_empty() {
                return Ok((lease, Vec::new()));
            }
            return match k2v.read_batch(also).await {
                Ok(pages) => Ok((lease, pages)),
                Err(error) => {
                    lease.release(k2v).await;
                    Err(error)
                }
            };
        }
        let live = |lease: &LeaseValue, now: u64| lease.until_ms > now && !local.is_mine(lease);
        let mut backoff = Duration::from_millis(5);
        loop {
            let current = k2v.read_item(partition, LEASE_KEY).await?;
            let now = now_ms();
            let busy = current.as_ref().is_some_and(|item| {
                item.live()
                    .any(|v| parse(v).is_some_and(|lease| live(&lease, now)))
            });
            if !busy {
                let started = Instant::now();
                let mine = LeaseValue {
                    holder: format!("{}:{}", local.instance, random_hex(16)?),
                    until_ms: now
                        .saturating_add(u64::try_from(LEASE_TTL.as_millis()).unwrap_or(u64::MAX)),
                };
                let value = serde_json::to_vec(&mine)
                    .map_err(|_| GarageError::MalformedItem { what: "a lease" })?;
                k2v.insert_item(
                    partition,
                    LEASE_KEY,
                    current.as_ref().map(|item| &item.token),
                    value.into(),
                )
                .await?;
                let mut ranges = Vec::with_capacity(also.len() + 1);
                ranges.push(Range::single(partition, LEASE_KEY));
                ranges.extend_from_slice(also);
                let mut pages = k2v.read_batch(&ranges).await?.into_iter();
                let check = pages
                    .next()
                    .and_then(|page| page.items.into_iter().find(|(sk, _)| sk == LEASE_KEY))
                    .map(|(_, item)| item);
                if let Some(check) = check {
                    let now = now_ms();
                    let mut holds = false;
                    let mut contended = false;
                    for value in check.live() {
                        match parse(value) {
                            Some(lease) if lease == mine => holds = true,
                            Some(lease) if live(&lease, now) => contended = true,
                            _ => {}
                        }
                    }
                    if holds && !contended {
                        let lease = Lease {
                            partition: partition.to_owned(),
                            holder: mine.holder,
                            deadline: started + LEASE_TTL,
                            token: check.token,
                            _queued: queued,
                        };
                        return Ok((lease, pages.collect()));
                    }
                }
            }
            if Instant::now() >= give_up {
                return Err(GarageError::LeaseBusy);
            }
            // Jitter, so two contenders do not retry in step.
            let jitter = u64::from(random_hex(1)?.as_bytes().first().copied().unwrap_or(0) % 32);
            tokio::time::sleep(backoff + Duration::from_millis(jitter)).await;
            backoff = (backoff * 2).min(Duration::from_millis(500));
        }
    }

    /// Fails unless at least [`LEASE_MARGIN`] of the lease is left: call it
    /// before every write that needs the lease.
    ///
    /// # Errors
    /// [`GarageError::LeaseLost`].
    pub(crate) fn check(&self) -> Result<(), GarageError> {
        if Instant::now() + LEASE_MARGIN < self.deadline {
            Ok(())
        } else {
            Err(GarageError::LeaseLost)
        }
    }

    /// Keeps the lease with this process for [`PARK_FOR`], so its next write
    /// of the partition (the next batch of a sync) takes it again without a
    /// K2V request; then releases it, unless taken again meanwhile. Other
    /// servers wait that much longer for it.
    pub(crate) fn park(self, k2v: &K2vClient) {
        let Ok(local) = local() else {
            return;
        };
        let Lease {
            partition,
            holder,
            deadline,
            token,
            _queued,
        } = self;
        {
            let mut parked = local.parked.lock().unwrap_or_else(PoisonError::into_inner);
            parked.insert(
                partition.clone(),
                Parked {
                    holder: holder.clone(),
                    deadline,
                    token,
                },
            );
        }
        // The next local writer of the partition may go now.
        drop(_queued);
        let k2v = k2v.clone();
        tokio::spawn(async move {
            tokio::time::sleep(PARK_FOR).await;
            let idle = {
                let mut parked = local.parked.lock().unwrap_or_else(PoisonError::into_inner);
                match parked.get(&partition) {
                    Some(p) if p.holder == holder => parked.remove(&partition),
                    _ => None,
                }
            };
            if let Some(idle) = idle {
                release_value(&k2v, &partition, idle.holder, &idle.token).await;
            }
        });
    }

    /// Gives the lease back (best effort: an unreleased lease expires).
    pub(crate) async fn release(self, k2v: &K2vClient) {
        release_value(k2v, &self.partition, self.holder, &self.token).await;
    }
}

/// Writes `holder`'s lease of `partition` as released (best effort).
async fn release_value(k2v: &K2vClient, partition: &str, holder: String, token: &CausalityToken) {
    let released = LeaseValue {
        holder,
        until_ms: 0,
    };
    let Ok(value) = serde_json::to_vec(&released) else {
        return;
    };
    if let Err(error) = k2v
        .insert_item(partition, LEASE_KEY, Some(token), value.into())
        .await
    {
        tracing::warn!(%error, "releasing a K2V lease failed; it will expire");
    }
}
