//! Live sync: a background task that keeps this device in step with the
//! server without the application calling [`Soledad::sync`].
//!
//! [`Soledad::start_live_sync`] starts it. It waits on the server's change
//! notifications (`GET /changes/{uuid}`, a long poll: `docs/protocol.md`,
//! "Change notifications") and syncs when another device uploaded documents;
//! local writes trigger an upload, debounced so that a burst of writes goes in
//! few syncs ([`LiveOptions::debounce`]); failures are retried
//! with a growing back-off. What happens reaches the application as
//! [`LiveEvent`]s on a broadcast channel ([`LiveSync::subscribe`]). Syncs of
//! the live task and of the application never overlap (one sync at a time per
//! database, as [`Soledad::sync`] always does).
//!
//! ```no_run
//! # async fn run(soledad: soledad_client::Soledad) -> Result<(), soledad_client::Error> {
//! use soledad_client::{LiveEvent, LiveOptions};
//!
//! let live = soledad.start_live_sync(LiveOptions::default()).await?;
//! let mut events = live.subscribe();
//! while let Ok(event) = events.recv().await {
//!     match event {
//!         LiveEvent::DocumentsChanged { doc_ids, .. } => println!("changed: {doc_ids:?}"),
//!         LiveEvent::Conflicts { doc_ids } => println!("to resolve: {doc_ids:?}"),
//!         LiveEvent::Disconnected { .. } => break,
//!         _ => {}
//!     }
//! }
//! live.stop().await;
//! # Ok(()) }
//! ```

mod task;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use soledad_store::DocId;

use crate::error::Error;
use crate::sync::SyncReport;

#[cfg(doc)]
use crate::Soledad;

pub(crate) use task::run;

/// Default debounce of local writes (see [`LiveOptions::debounce`]).
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(5);
/// Default longest wait of one change request (the server caps it with its
/// own `live_wait_secs`).
pub const DEFAULT_WAIT: Duration = Duration::from_secs(25);
/// Default first pause after a failure; it doubles up to the maximum.
pub const DEFAULT_BACKOFF_MIN: Duration = Duration::from_millis(250);
/// Default longest pause after failures.
pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Default number of events kept for a subscriber that reads slowly.
pub const DEFAULT_EVENT_CAPACITY: usize = 256;
/// Most document ids one event carries (the count is always exact).
pub const MAX_EVENT_IDS: usize = 1000;

/// Settings of [`Soledad::start_live_sync`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveOptions {
    pub(crate) debounce: Duration,
    pub(crate) wait: Duration,
    pub(crate) backoff_min: Duration,
    pub(crate) backoff_max: Duration,
    pub(crate) event_capacity: usize,
}

impl Default for LiveOptions {
    fn default() -> Self {
        LiveOptions {
            debounce: DEFAULT_DEBOUNCE,
            wait: DEFAULT_WAIT,
            backoff_min: DEFAULT_BACKOFF_MIN,
            backoff_max: DEFAULT_BACKOFF_MAX,
            event_capacity: DEFAULT_EVENT_CAPACITY,
        }
    }
}

impl LiveOptions {
    /// The debounce of local writes ([`DEFAULT_DEBOUNCE`]): syncs started by
    /// local writes are at least this far apart. A write after a quiet moment
    /// is uploaded at once (leading edge: no added latency); the writes of a
    /// burst that arrive during a sync, or within `debounce` of its start,
    /// go together in the next one. Zero starts a sync after every sync that
    /// saw new writes.
    pub fn debounce(mut self, debounce: Duration) -> Self {
        self.debounce = debounce;
        self
    }

    /// The longest wait of one change request ([`DEFAULT_WAIT`], in whole
    /// seconds, at least one; the server may cap it lower). Shorter waits cost
    /// more requests and find a dead connection sooner.
    pub fn wait(mut self, wait: Duration) -> Self {
        self.wait = wait.max(Duration::from_secs(1));
        self
    }

    /// The pause after a failure, doubling from `min` up to `max`
    /// ([`DEFAULT_BACKOFF_MIN`], [`DEFAULT_BACKOFF_MAX`]); reset by a success.
    pub fn backoff(mut self, min: Duration, max: Duration) -> Self {
        self.backoff_min = min;
        self.backoff_max = max.max(min);
        self
    }

    /// Events kept for a subscriber that reads slowly
    /// ([`DEFAULT_EVENT_CAPACITY`], at least 1); a subscriber further behind
    /// gets [`broadcast::error::RecvError::Lagged`] and goes on with the newest.
    pub fn event_capacity(mut self, capacity: usize) -> Self {
        self.event_capacity = capacity.max(1);
        self
    }
}

/// What the live task did or saw, for the application.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum LiveEvent {
    /// A change request was answered: the server is reachable (first at the
    /// start, then after each [`Disconnected`](LiveEvent::Disconnected)).
    Connected,
    /// A change request failed (server down, network gone, token refused):
    /// the task retries with back-off and says [`Connected`](LiveEvent::Connected)
    /// once through again.
    Disconnected {
        /// Why.
        error: Arc<Error>,
    },
    /// A sync ran (uploads, downloads or neither).
    Synced {
        /// What it did.
        report: SyncReport,
    },
    /// A sync brought documents from the server.
    DocumentsChanged {
        /// How many documents it received.
        count: u64,
        /// Their ids (at most [`MAX_EVENT_IDS`]; documents the application
        /// wrote during that sync may be among them).
        doc_ids: Vec<DocId>,
    },
    /// A sync left documents in conflict: resolve them with
    /// [`Soledad::get_doc_conflicts`] and [`Soledad::resolve_doc`].
    Conflicts {
        /// The conflicted documents among those the sync changed.
        doc_ids: Vec<DocId>,
    },
    /// The user's blobs may have changed on the server (see
    /// [`BlobManager::sync`](crate::BlobManager::sync)).
    BlobsChanged,
    /// The incoming box may hold new messages (see
    /// [`IncomingProcessor`](crate::IncomingProcessor)).
    IncomingWaiting,
    /// A sync failed; it is retried after a back-off pause.
    SyncFailed {
        /// Why.
        error: Arc<Error>,
    },
}

/// The running task, shared by its [`LiveSync`] and the [`Soledad`] that
/// [`close`](Soledad::close)s it.
#[derive(Debug, Default)]
pub(crate) struct LiveControl {
    task: Mutex<Option<JoinHandle<()>>>,
}

impl LiveControl {
    pub(crate) fn new(task: JoinHandle<()>) -> Self {
        LiveControl {
            task: Mutex::new(Some(task)),
        }
    }

    fn take(&self) -> Option<JoinHandle<()>> {
        self.task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    /// Whether the task still runs.
    pub(crate) fn is_running(&self) -> bool {
        self.task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_some_and(|task| !task.is_finished())
    }

    /// Stops the task and waits until it is gone (a sync it was running is
    /// abandoned as a dropped [`Soledad::sync`] is: the next one resumes).
    pub(crate) async fn stop(&self) {
        if let Some(task) = self.take() {
            task.abort();
            // Cancelled (or, had it panicked, gone all the same).
            let _ = task.await;
        }
    }
}

/// A running live sync, from [`Soledad::start_live_sync`]. Dropping it stops
/// the task too (without waiting for it); [`stop`](LiveSync::stop) waits.
#[derive(Debug)]
pub struct LiveSync {
    control: Arc<LiveControl>,
    events: broadcast::Sender<LiveEvent>,
    first: Mutex<Option<broadcast::Receiver<LiveEvent>>>,
}

impl LiveSync {
    pub(crate) fn new(
        control: Arc<LiveControl>,
        events: broadcast::Sender<LiveEvent>,
        first: broadcast::Receiver<LiveEvent>,
    ) -> Self {
        LiveSync {
            control,
            events,
            first: Mutex::new(Some(first)),
        }
    }

    /// A receiver of the events. The first call's receiver has every event
    /// since the start; later ones get the events from their call on. The
    /// stream ends ([`broadcast::error::RecvError::Closed`]) once the task
    /// stopped and this handle is gone.
    pub fn subscribe(&self) -> broadcast::Receiver<LiveEvent> {
        self.first
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .unwrap_or_else(|| self.events.subscribe())
    }

    /// Whether the task still runs ([`Soledad::close`] stops it too).
    pub fn is_running(&self) -> bool {
        self.control.is_running()
    }

    /// Stops the task and waits until it is gone: no request of it stays in
    /// flight, no sync of it runs afterwards.
    pub async fn stop(self) {
        self.control.stop().await;
    }
}

impl Drop for LiveSync {
    fn drop(&mut self) {
        if let Some(task) = self.control.take() {
            task.abort();
        }
    }
}
