//! The live task: one loop waits on the server's change notifications, the
//! other runs syncs when told (by the first, or by a local write), both with
//! back-off on failure.
//!
//! No change is lost between the two: the waiter signals the syncer only
//! after it has the marker of its answer, so the sync that follows starts
//! after that position and covers everything up to it; anything later wakes
//! the next wait. Signals are [`Notify`] permits: a signal that arrives during
//! a sync makes one more sync afterwards.

use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt as _;
use soledad_protocol::ChangeKind;
use soledad_store::DocId;
use tokio::sync::{Notify, broadcast};

use super::{LiveEvent, LiveOptions, MAX_EVENT_IDS};
use crate::error::Error;
use crate::soledad::Soledad;
use crate::sync::SyncReport;

/// Doubling pauses between `min` and `max`.
struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    fn new(options: &LiveOptions) -> Self {
        Backoff {
            min: options.backoff_min,
            max: options.backoff_max,
            next: options.backoff_min,
        }
    }

    fn reset(&mut self) {
        self.next = self.min;
    }

    async fn pause(&mut self) {
        let pause = self.next;
        self.next = self.next.saturating_mul(2).min(self.max);
        tokio::time::sleep(pause).await;
    }
}

fn emit(events: &broadcast::Sender<LiveEvent>, event: LiveEvent) {
    // No subscriber is fine: nobody listens.
    let _ = events.send(event);
}

/// Runs the live task until it is aborted.
pub(crate) async fn run(
    soledad: Soledad,
    options: LiveOptions,
    events: broadcast::Sender<LiveEvent>,
) {
    let pull = Notify::new();
    tokio::join!(
        watch_server(&soledad, &options, &events, &pull),
        sync_when_told(&soledad, &options, &events, &pull),
    );
}

/// Waits on `GET /changes/{uuid}` again and again: documents changed
/// elsewhere → `pull`; blobs or incoming → an event.
async fn watch_server(
    soledad: &Soledad,
    options: &LiveOptions,
    events: &broadcast::Sender<LiveEvent>,
    pull: &Notify,
) {
    let Some(transport) = soledad.transport() else {
        return;
    };
    let mut backoff = Backoff::new(options);
    let mut marker: Option<String> = None;
    // None at the start: the first outcome is always announced.
    let mut connected: Option<bool> = None;
    // Answers in a row that did not know our marker (every kind at once).
    let mut unknown = 0u32;
    loop {
        let answer = transport
            .wait_changes(marker.as_deref(), soledad.replica_uid(), options.wait)
            .await;
        match answer {
            Ok(answer) => {
                if connected != Some(true) {
                    connected = Some(true);
                    emit(events, LiveEvent::Connected);
                }
                // After a restart the marker is unknown once. Again and again
                // means servers that share no notifier (each answers at once):
                // slow down instead of syncing in a busy loop.
                let everything = ChangeKind::ALL.iter().all(|k| answer.changed.contains(k));
                unknown = if marker.is_some() && everything {
                    unknown.saturating_add(1)
                } else {
                    0
                };
                if unknown >= 2 {
                    backoff.pause().await;
                } else {
                    backoff.reset();
                }
                marker = Some(answer.marker);
                for kind in answer.changed {
                    match kind {
                        ChangeKind::Docs => pull.notify_one(),
                        ChangeKind::Blobs => emit(events, LiveEvent::BlobsChanged),
                        ChangeKind::Incoming => emit(events, LiveEvent::IncomingWaiting),
                        // A kind this client does not know: a sync is harmless.
                        _ => pull.notify_one(),
                    }
                }
            }
            Err(error) => {
                if connected != Some(false) {
                    connected = Some(false);
                    emit(
                        events,
                        LiveEvent::Disconnected {
                            error: Arc::new(error),
                        },
                    );
                }
                backoff.pause().await;
            }
        }
    }
}

/// Consumes a stored permit of `notify`, if any.
fn absorb(notify: &Notify) {
    let _ = notify.notified().now_or_never();
}

/// Syncs when `pull` or a local write says so; again after a failure (with
/// back-off) or while a sync leaves something to send.
async fn sync_when_told(
    soledad: &Soledad,
    options: &LiveOptions,
    events: &broadcast::Sender<LiveEvent>,
    pull: &Notify,
) {
    let local = soledad.local_writes();
    let mut backoff = Backoff::new(options);
    let mut again = false;
    // When the last sync started: local writes start one at most every
    // `debounce` (see `LiveOptions::debounce`).
    let mut last_start: Option<tokio::time::Instant> = None;
    loop {
        if !again {
            tokio::select! {
                () = pull.notified() => {}
                () = local.notified() => {
                    if let Some(ready) = last_start.map(|at| at + options.debounce) {
                        tokio::time::sleep_until(ready).await;
                    }
                }
            }
        }
        // This sync starts after every signal so far: it covers them.
        absorb(pull);
        absorb(local);
        last_start = Some(tokio::time::Instant::now());
        match sync_once(soledad).await {
            Ok((report, changed)) => {
                backoff.reset();
                // Merges or writes made during the sync: send them now.
                again = !report.converged;
                report_sync(events, report, changed);
            }
            Err(error) => {
                emit(
                    events,
                    LiveEvent::SyncFailed {
                        error: Arc::new(error),
                    },
                );
                backoff.pause().await;
                again = true;
            }
        }
    }
}

/// What a sync changed locally: ids, and which of them are conflicted.
#[derive(Default)]
struct Changed {
    doc_ids: Vec<DocId>,
    conflicted: Vec<DocId>,
}

/// One sync, and the ids of the documents it changed here.
async fn sync_once(soledad: &Soledad) -> Result<(SyncReport, Changed), Error> {
    let before = soledad
        .call(|db| db.get_generation_info().map(|p| p.generation()))
        .await?;
    let report = soledad.sync().await?;
    if report.received == 0 && report.conflicts == 0 {
        return Ok((report, Changed::default()));
    }
    let changed = soledad
        .call(move |db| {
            let doc_ids: Vec<DocId> = db
                .changes_since(before, MAX_EVENT_IDS)?
                .into_iter()
                .map(|change| change.doc_id)
                .collect();
            let conflicted = db
                .get_docs(&doc_ids, true, true)?
                .into_iter()
                .filter(|doc| doc.has_conflicts)
                .map(|doc| doc.doc_id)
                .collect();
            Ok(Changed {
                doc_ids,
                conflicted,
            })
        })
        .await?;
    Ok((report, changed))
}

fn report_sync(events: &broadcast::Sender<LiveEvent>, report: SyncReport, changed: Changed) {
    let (received, conflicts) = (report.received, report.conflicts);
    emit(events, LiveEvent::Synced { report });
    if received > 0 {
        emit(
            events,
            LiveEvent::DocumentsChanged {
                count: received,
                doc_ids: changed.doc_ids,
            },
        );
    }
    if conflicts > 0 && !changed.conflicted.is_empty() {
        emit(
            events,
            LiveEvent::Conflicts {
                doc_ids: changed.conflicted,
            },
        );
    }
}
