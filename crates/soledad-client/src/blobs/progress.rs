//! Progress of blob transfers: counters for the batch and one entry per transfer in
//! flight, read by [`BlobManager::sync_progress`](super::BlobManager::sync_progress).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::types::{SyncProgress, TransferProgress};

#[derive(Default)]
pub(crate) struct Progress {
    queued: AtomicU64,
    done: AtomicU64,
    failed: AtomicU64,
    done_bytes: AtomicU64,
    next: AtomicU64,
    live: Mutex<HashMap<u64, Live>>,
}

struct Live {
    namespace: String,
    blob_id: String,
    upload: bool,
    bytes: Arc<AtomicU64>,
    total: Arc<AtomicU64>,
}

/// One transfer in flight; removed from the snapshot when dropped.
pub(crate) struct Tracked<'a> {
    progress: &'a Progress,
    id: u64,
    /// Bytes transferred (or present, for a resumed download).
    pub(crate) bytes: Arc<AtomicU64>,
    /// Total stored bytes, 0 while unknown.
    pub(crate) total: Arc<AtomicU64>,
    outcome: Option<bool>,
}

impl Progress {
    pub(crate) fn start(&self, namespace: &str, blob_id: &str, upload: bool) -> Tracked<'_> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let bytes = Arc::new(AtomicU64::new(0));
        let total = Arc::new(AtomicU64::new(0));
        self.queued.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut live) = self.live.lock() {
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
        Tracked {
            progress: self,
            id,
            bytes,
            total,
            outcome: None,
        }
    }

    pub(crate) fn snapshot(&self) -> SyncProgress {
        let transfers = self
            .live
            .lock()
            .map(|live| {
                let mut list: Vec<(u64, TransferProgress)> = live
                    .iter()
                    .map(|(id, l)| {
                        let total = l.total.load(Ordering::Relaxed);
                        (
                            *id,
                            TransferProgress {
                                namespace: l.namespace.clone(),
                                blob_id: l.blob_id.clone(),
                                upload: l.upload,
                                done_bytes: l.bytes.load(Ordering::Relaxed),
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
}

impl Tracked<'_> {
    pub(crate) fn finish(mut self, ok: bool) {
        self.outcome = Some(ok);
    }
}

impl Drop for Tracked<'_> {
    fn drop(&mut self) {
        let p = self.progress;
        if self.outcome == Some(true) {
            p.done.fetch_add(1, Ordering::Relaxed);
        } else {
            p.failed.fetch_add(1, Ordering::Relaxed);
        }
        p.done_bytes
            .fetch_add(self.bytes.load(Ordering::Relaxed), Ordering::Relaxed);
        if let Ok(mut live) = p.live.lock() {
            live.remove(&self.id);
        }
    }
}
