//! Progress of blob transfers: counters for the batch and one entry per transfer in
//! flight, read by [`BlobManager::sync_progress`](super::BlobManager::sync_progress)
//! and pushed to [`BlobManager::watch_progress`](super::BlobManager::watch_progress)
//! watchers when a transfer starts, moves by [`NOTIFY_STEP_BYTES`], learns its
//! size, or ends.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::watch;

use super::types::{SyncProgress, TransferProgress};

/// Watchers are woken each time a transfer moves by this many bytes (and at
/// its start and end): often enough for a progress bar, rarely enough that a
/// 1 GiB transfer makes a few thousand snapshots, not one per network chunk.
pub(crate) const NOTIFY_STEP_BYTES: u64 = 256 * 1024;

pub(crate) struct Progress {
    shared: Arc<Shared>,
}

struct Shared {
    queued: AtomicU64,
    done: AtomicU64,
    failed: AtomicU64,
    done_bytes: AtomicU64,
    next: AtomicU64,
    live: Mutex<HashMap<u64, Live>>,
    watch: watch::Sender<SyncProgress>,
}

struct Live {
    namespace: String,
    blob_id: String,
    upload: bool,
    bytes: Arc<Counter>,
    total: Arc<Counter>,
}

/// A byte count of one transfer. Changing it wakes the progress watchers (every
/// [`NOTIFY_STEP_BYTES`] for `fetch_add`, always for `store`).
pub(crate) struct Counter {
    value: AtomicU64,
    // Weak: the live entries that hold counters belong to `Shared` itself.
    shared: Weak<Shared>,
}

impl Counter {
    pub(crate) fn load(&self) -> u64 {
        self.value.load(Ordering::Relaxed)
    }

    /// Sets the count (a restart from 0, a resumed prefix, a known total).
    pub(crate) fn store(&self, value: u64) {
        self.value.store(value, Ordering::Relaxed);
        self.notify();
    }

    /// Adds `n` and returns the count before.
    pub(crate) fn fetch_add(&self, n: u64) -> u64 {
        let before = self.value.fetch_add(n, Ordering::Relaxed);
        if before / NOTIFY_STEP_BYTES != before.saturating_add(n) / NOTIFY_STEP_BYTES {
            self.notify();
        }
        before
    }

    fn notify(&self) {
        if let Some(shared) = self.shared.upgrade() {
            shared.notify();
        }
    }
}

/// One transfer in flight; removed from the snapshot when dropped.
pub(crate) struct Tracked<'a> {
    progress: &'a Progress,
    id: u64,
    /// Bytes transferred (or present, for a resumed download).
    pub(crate) bytes: Arc<Counter>,
    /// Total stored bytes, 0 while unknown.
    pub(crate) total: Arc<Counter>,
    outcome: Option<bool>,
}

impl Default for Progress {
    fn default() -> Self {
        let (watch, _) = watch::channel(SyncProgress::default());
        Progress {
            shared: Arc::new(Shared {
                queued: AtomicU64::new(0),
                done: AtomicU64::new(0),
                failed: AtomicU64::new(0),
                done_bytes: AtomicU64::new(0),
                next: AtomicU64::new(0),
                live: Mutex::new(HashMap::new()),
                watch,
            }),
        }
    }
}

impl Progress {
    pub(crate) fn start(&self, namespace: &str, blob_id: &str, upload: bool) -> Tracked<'_> {
        let shared = &self.shared;
        let id = shared.next.fetch_add(1, Ordering::Relaxed);
        let counter = || {
            Arc::new(Counter {
                value: AtomicU64::new(0),
                shared: Arc::downgrade(shared),
            })
        };
        let (bytes, total) = (counter(), counter());
        shared.queued.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut live) = shared.live.lock() {
            live.insert(
                id,
                Live {
                    namespace: namespace.to_owned(),
                    blob_id: blob_id.to_owned(),
                    upload,
                    bytes: bytes.clone(),
                    total: total.clone(),
                },
            );
        }
        shared.notify();
        Tracked {
            progress: self,
            id,
            bytes,
            total,
            outcome: None,
        }
    }

    pub(crate) fn snapshot(&self) -> SyncProgress {
        self.shared.snapshot()
    }

    /// A receiver of every new snapshot (see the module doc for when).
    pub(crate) fn subscribe(&self) -> watch::Receiver<SyncProgress> {
        let receiver = self.shared.watch.subscribe();
        // Current as of now, even if nothing moved since the last transfer.
        self.shared.notify();
        receiver
    }
}

impl Shared {
    fn snapshot(&self) -> SyncProgress {
        let transfers = self
            .live
            .lock()
            .map(|live| {
                let mut list: Vec<(u64, TransferProgress)> = live
                    .iter()
                    .map(|(id, l)| {
                        let total = l.total.load();
                        (
                            *id,
                            TransferProgress {
                                namespace: l.namespace.clone(),
                                blob_id: l.blob_id.clone(),
                                upload: l.upload,
                                done_bytes: l.bytes.load(),
                                total_bytes: (total > 0).then_some(total),
                            },
                        )
                    })
                    .collect();
                list.sort_by_key(|(id, _)| *id);
                list.into_iter().map(|(_, t)| t).collect()
            })
            .unwrap_or_default();
        SyncProgress {
            queued: self.queued.load(Ordering::Relaxed),
            done: self.done.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            done_bytes: self.done_bytes.load(Ordering::Relaxed),
            transfers,
        }
    }

    /// Publishes a new snapshot to the watchers, if there are any. Never called
    /// with `live` locked.
    fn notify(&self) {
        if self.watch.receiver_count() > 0 {
            self.watch.send_replace(self.snapshot());
        }
    }
}

impl Tracked<'_> {
    pub(crate) fn finish(mut self, ok: bool) {
        self.outcome = Some(ok);
    }
}

impl Drop for Tracked<'_> {
    fn drop(&mut self) {
        let p = &self.progress.shared;
        if self.outcome == Some(true) {
            p.done.fetch_add(1, Ordering::Relaxed);
        } else {
            p.failed.fetch_add(1, Ordering::Relaxed);
        }
        p.done_bytes.fetch_add(self.bytes.load(), Ordering::Relaxed);
        if let Ok(mut live) = p.live.lock() {
            live.remove(&self.id);
        }
        p.notify();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[tokio::test]
    async fn watchers_see_a_transfer_start_move_and_end() {
        let progress = Progress::default();
        let mut watch = progress.subscribe();
        assert_eq!(*watch.borrow_and_update(), SyncProgress::default());

        let tracked = progress.start("default", "b1", false);
        assert!(watch.has_changed().unwrap(), "a start is published");
        let seen = watch.borrow_and_update().clone();
        assert_eq!(seen.queued, 1);
        assert_eq!(seen.transfers.len(), 1);
        assert_eq!(seen.transfers[0].blob_id, "b1");
        assert_eq!(seen.transfers[0].total_bytes, None);

        tracked.total.store(3 * NOTIFY_STEP_BYTES);
        assert_eq!(
            watch.borrow_and_update().transfers[0].total_bytes,
            Some(3 * NOTIFY_STEP_BYTES)
        );
        // Small steps inside one window wake nobody; crossing it does.
        tracked.bytes.fetch_add(10);
        assert!(!watch.has_changed().unwrap());
        tracked.bytes.fetch_add(NOTIFY_STEP_BYTES);
        assert!(watch.has_changed().unwrap());
        assert_eq!(
            watch.borrow_and_update().transfers[0].done_bytes,
            NOTIFY_STEP_BYTES + 10
        );

        tracked.finish(true);
        let done = watch.borrow_and_update().clone();
        assert_eq!((done.done, done.failed), (1, 0));
        assert_eq!(done.done_bytes, NOTIFY_STEP_BYTES + 10);
        assert!(done.transfers.is_empty());
        assert_eq!(done, progress.snapshot());
    }

    #[tokio::test]
    async fn a_waiting_watcher_wakes_when_a_transfer_fails() {
        let progress = Arc::new(Progress::default());
        let mut watch = progress.subscribe();
        watch.borrow_and_update();
        let waiter = tokio::spawn(async move {
            loop {
                watch.changed().await.unwrap();
                if watch.borrow_and_update().failed == 1 {
                    return;
                }
            }
        });
        let tracked = progress.start("default", "b2", true);
        drop(tracked); // neither finished nor kept: a failure
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap();
    }
}
