//! The in-process [`ChangeNotifier`]: per-user counters in memory, woken
//! through a `tokio::sync::watch` channel per user.
//!
//! A marker is `{epoch}.{seq}`: `epoch` is random, drawn when the user's entry
//! is made (so a marker of another process or of an evicted entry is unknown,
//! which answers "everything may have changed"), `seq` counts that user's
//! changes. Nothing global shows in a marker: one user learns nothing about
//! the others' activity. Entries exist only for users who waited; a change of
//! a user without an entry needs no record (no marker of the current epoch
//! exists yet). Past [`MAX_TRACKED_USERS`] entries, those with no wait in
//! flight are dropped.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::sync::watch;

use super::{ChangeKind, ChangeNotifier, ChangesResponse};
use crate::blobs::UserId;
use crate::error::Error;

/// Entries kept before those with no wait in flight are dropped.
pub const MAX_TRACKED_USERS: usize = 65_536;

/// The default [`ChangeNotifier`]: in memory, for one server process.
#[derive(Debug, Default)]
pub struct InProcessNotifier {
    users: Mutex<HashMap<UserId, watch::Sender<UserChanges>>>,
}

/// One user's counters: the sequence number of the last change of each kind.
#[derive(Debug, Clone, Default)]
struct UserChanges {
    epoch: u64,
    last: u64,
    docs: u64,
    /// The replica that uploaded the documents of change `docs`.
    docs_source: Option<String>,
    /// The last document change of any other replica than `docs_source`.
    docs_other: u64,
    blobs: u64,
    incoming: u64,
}

impl UserChanges {
    fn record(&mut self, kind: ChangeKind, source: Option<&str>) {
        self.last = self.last.saturating_add(1);
        match kind {
            ChangeKind::Docs => {
                if self.docs_source.as_deref() != source {
                    self.docs_other = self.docs;
                    self.docs_source = source.map(str::to_owned);
                }
                self.docs = self.last;
            }
            ChangeKind::Blobs => self.blobs = self.last,
            ChangeKind::Incoming => self.incoming = self.last,
            // Kinds added later: wake everyone (a spurious wake costs a sync).
            _ => {
                self.docs = self.last;
                self.docs_other = self.last;
                self.blobs = self.last;
                self.incoming = self.last;
            }
        }
    }

    fn marker(&self) -> String {
        format!("{:016x}.{:x}", self.epoch, self.last)
    }

    /// The kinds changed after `since` that `source` does not know already.
    fn changed_after(&self, since: u64, source: Option<&str>) -> Vec<ChangeKind> {
        let docs = match (source, self.docs_source.as_deref()) {
            (Some(me), Some(last)) if me == last => self.docs_other,
            _ => self.docs,
        };
        [
            (ChangeKind::Docs, docs),
            (ChangeKind::Blobs, self.blobs),
            (ChangeKind::Incoming, self.incoming),
        ]
        .into_iter()
        .filter(|(_, seq)| *seq > since)
        .map(|(kind, _)| kind)
        .collect()
    }
}

/// A parsed marker: the epoch and the sequence number.
fn parse_marker(marker: &str) -> Result<(u64, u64), Error> {
    let invalid = Error::InvalidRequest { what: "since" };
    if !soledad_protocol::is_valid_marker(marker) {
        return Err(invalid);
    }
    // A well-formed marker of another notifier is not an error: unknown.
    let Some((epoch, seq)) = marker.split_once('.') else {
        return Ok((0, 0));
    };
    match (u64::from_str_radix(epoch, 16), u64::from_str_radix(seq, 16)) {
        (Ok(epoch), Ok(seq)) => Ok((epoch, seq)),
        _ => Ok((0, 0)),
    }
}

fn random_epoch() -> u64 {
    let mut bytes = [0u8; 8];
    // Without randomness, a fixed epoch only makes an old marker look known
    // after a restart; the counters restart at 0, so it names nothing newer.
    if getrandom::fill(&mut bytes).is_err() {
        tracing::warn!("no randomness for a change marker epoch");
    }
    // Epoch 0 is what an unknown marker parses to.
    u64::from_le_bytes(bytes).max(1)
}

impl InProcessNotifier {
    /// An empty notifier.
    pub fn new() -> Self {
        InProcessNotifier::default()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<UserId, watch::Sender<UserChanges>>> {
        // Every update is one map or counter operation: consistent after a panic.
        self.users.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Subscribes to `user`'s changes, making the entry if needed.
    fn subscribe(&self, user: &UserId) -> watch::Receiver<UserChanges> {
        let mut users = self.lock();
        if let Some(sender) = users.get(user) {
            return sender.subscribe();
        }
        if users.len() >= MAX_TRACKED_USERS {
            users.retain(|_, sender| sender.receiver_count() > 0);
        }
        let (sender, receiver) = watch::channel(UserChanges {
            epoch: random_epoch(),
            ..UserChanges::default()
        });
        users.insert(user.clone(), sender);
        receiver
    }

    async fn wait_inner(
        &self,
        user: &UserId,
        since: Option<&str>,
        source: Option<&str>,
        timeout: Duration,
    ) -> Result<ChangesResponse, Error> {
        let since = since.map(parse_marker).transpose()?;
        let deadline = tokio::time::Instant::now() + timeout;
        // Subscribed before the first comparison: a change committed after it
        // either shows in the comparison or wakes `changed()`.
        let mut changes = self.subscribe(user);
        loop {
            let answer = {
                let now = changes.borrow_and_update();
                let changed = match since {
                    Some((epoch, seq)) if epoch == now.epoch => now.changed_after(seq, source),
                    _ => ChangeKind::ALL.to_vec(),
                };
                ChangesResponse {
                    changed,
                    marker: now.marker(),
                }
            };
            if !answer.changed.is_empty() {
                return Ok(answer);
            }
            tokio::select! {
                woken = changes.changed() => {
                    if woken.is_err() {
                        // The entry is kept while it has receivers; defensive.
                        return Ok(ChangesResponse { changed: ChangeKind::ALL.to_vec(), ..answer });
                    }
                }
                () = tokio::time::sleep_until(deadline) => return Ok(answer),
            }
        }
    }
}

impl ChangeNotifier for InProcessNotifier {
    fn notify<'a>(
        &'a self,
        user: &'a UserId,
        kind: ChangeKind,
        source: Option<&'a str>,
    ) -> BoxFuture<'a, ()> {
        if let Some(sender) = self.lock().get(user) {
            sender.send_modify(|changes| changes.record(kind, source));
        }
        Box::pin(std::future::ready(()))
    }

    fn wait<'a>(
        &'a self,
        user: &'a UserId,
        since: Option<&'a str>,
        source: Option<&'a str>,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<ChangesResponse, Error>> {
        Box::pin(self.wait_inner(user, since, source, timeout))
    }
}

#[cfg(test)]
mod tests {
    // The contract is checked by the conformance suite (`conformance::notifier`,
    // run in `tests/storage`); here only what this implementation keeps.
    use super::*;

    #[tokio::test]
    async fn changes_of_users_nobody_waits_for_keep_no_entry() {
        let n = InProcessNotifier::new();
        let ghost = UserId::parse("ghost").unwrap();
        n.notify(&ghost, ChangeKind::Docs, None).await;
        assert!(n.lock().is_empty());
        n.wait(&ghost, None, None, Duration::ZERO).await.unwrap();
        assert_eq!(n.lock().len(), 1);
    }
}
