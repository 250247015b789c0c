//! Change notifications: what the long poll `GET /changes/{uuid}` waits on
//! (`docs/protocol.md`, "Change notifications").
//!
//! Every write path of a user calls [`ChangeNotifier::notify`] once its write
//! is committed: a sync batch that changed the document store (through
//! [`NotifyingDocStores`]), a blob put, delete or flag change, an incoming
//! delivery, claim or outcome. A device waits with [`ChangeNotifier::wait`],
//! naming the marker of its last answer; the answer says which kinds changed
//! since, never what. The default, [`InProcessNotifier`], keeps per-user
//! counters in memory; a distributed backend (several stateless servers) can
//! implement the trait over a shared store, e.g. Garage K2V `PollRange` with
//! its causality token as the marker.
//!
//! No wake-up is lost between a device reading its position and starting to
//! wait: a wait compares the device's marker with the user's current state
//! *after* subscribing to changes, so a change committed in between either
//! shows in that comparison or wakes the subscription.

mod docs;
mod memory;
mod waits;

use std::time::Duration;

use futures_util::future::BoxFuture;
pub use soledad_protocol::{ChangeKind, ChangesResponse};

pub use docs::NotifyingDocStores;
pub use memory::InProcessNotifier;
pub(crate) use waits::WaitSlots;

use crate::blobs::UserId;
use crate::error::Error;

/// Where the writes of each user are announced and awaited. Injected with
/// [`ServerBuilder::change_notifier`](crate::ServerBuilder::change_notifier);
/// the default is [`InProcessNotifier`].
pub trait ChangeNotifier: Send + Sync + 'static {
    /// Announces that `kind` of `user`'s state changed (after the write
    /// committed). `source` is the replica uid of the sync source that
    /// uploaded documents, so that replica's own wait is not woken by them;
    /// `None` for every other write. Never fails: an implementation logs what
    /// it could not announce (a missed announcement delays devices until their
    /// next wait times out, it loses no data).
    fn notify<'a>(
        &'a self,
        user: &'a UserId,
        kind: ChangeKind,
        source: Option<&'a str>,
    ) -> BoxFuture<'a, ()>;

    /// Answers as soon as something of `user` changed after `since` (leaving
    /// out documents uploaded by `source` itself), or after `timeout` with no
    /// change (`changed` empty). With no `since`, or a marker this notifier
    /// does not know (another process, an expired entry), answers at once with
    /// every kind. The answer's marker is where the user now is.
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] for a malformed `since`; an implementation's
    /// storage errors.
    fn wait<'a>(
        &'a self,
        user: &'a UserId,
        since: Option<&'a str>,
        source: Option<&'a str>,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<ChangesResponse, Error>>;
}
