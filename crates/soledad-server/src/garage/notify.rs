//! Change notifications shared by every server over one Garage cluster
//! ([`GarageNotifier`], the [`ChangeNotifier`] of `backend = garage`): a
//! device waiting on one server is woken by a write through any other.
//!
//! Each user has a K2V partition `<prefix>notify-<uuid>` with one item per
//! [`ChangeKind`] (`docs`, `blobs`, `incoming`), apart from the stores' own
//! keys. [`ChangeNotifier::notify`] reads the kind's item and writes a new
//! value superseding what it read: a random stamp, a counter one past the
//! largest read, and for documents the uploading replica and the counter of
//! the last change by any other replica. Two servers announcing at once leave
//! two concurrent values, which the next announcement folds into one.
//!
//! A marker is `g<deployment>.<state>-<counter>` for each kind, where
//! `<state>` names exactly the set of values the device saw (the XOR of
//! their random stamps) and `<deployment>` is a hash of the key prefix. A
//! kind changed after a marker when its values are not that set any more;
//! documents are left out for the replica that uploaded every change since
//! (a single value of that replica whose "last other change" counter is not
//! past the marker's; concurrent values always wake, a spurious wake costs
//! one sync). A well-formed marker of another deployment or format is
//! unknown: every kind.
//!
//! [`ChangeNotifier::wait`] reads the partition with a K2V `PollRange`
//! (which also gives a seen marker), compares, and if nothing changed polls
//! from that seen marker, bounded by the wait's timeout; a change written
//! between the read and the poll is after the seen marker, so it ends the
//! poll: no wake-up is lost. If Garage refuses the poll, the wait falls back
//! to reading again every [`FALLBACK_READ`].

use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use super::error::GarageError;
use super::k2v::{Item, K2vClient, Polled};
use crate::blobs::UserId;
use crate::error::Error;
use crate::notify::{ChangeKind, ChangeNotifier, ChangesResponse};

/// How often a wait reads the user's state again when Garage refuses polls.
pub const FALLBACK_READ: Duration = Duration::from_secs(1);

/// The kinds with an item, in marker order.
const KINDS: [(ChangeKind, &str); 3] = [
    (ChangeKind::Docs, "docs"),
    (ChangeKind::Blobs, "blobs"),
    (ChangeKind::Incoming, "incoming"),
];

/// One announcement of a kind.
#[derive(Serialize, Deserialize, Clone, Debug)]
struct Value {
    /// Random: names this value.
    stamp: u64,
    /// One past the largest counter the announcer read.
    n: u64,
    /// The replica that uploaded the documents (documents only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    src: Option<String>,
    /// The counter of the last change by another replica than `src`.
    #[serde(default)]
    other: u64,
}

fn values(item: Option<&Item>) -> Vec<Value> {
    item.map(|item| {
        item.live()
            .filter_map(|v| serde_json::from_slice::<Value>(v).ok())
            .collect()
    })
    .unwrap_or_default()
}

/// What a device saw of one kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Seen {
    state: u64,
    n: u64,
}

impl Seen {
    fn of(values: &[Value]) -> Seen {
        Seen {
            state: values.iter().fold(0, |acc, v| acc ^ v.stamp),
            n: values.iter().map(|v| v.n).max().unwrap_or(0),
        }
    }
}

/// Whether `values` changed after `seen`, for a device of replica `source`.
fn changed(kind: ChangeKind, values: &[Value], seen: Seen, source: Option<&str>) -> bool {
    if Seen::of(values).state == seen.state {
        return false;
    }
    if let (ChangeKind::Docs, Some(me), [only]) = (kind, source, values) {
        // Every change since the marker was this replica's own.
        if only.src.as_deref() == Some(me) && only.other <= seen.n {
            return false;
        }
    }
    true
}

/// The value announcing a change of `kind` by `source` after `read`.
fn next_value(read: &[Value], source: Option<&str>, stamp: u64) -> Value {
    let n = read
        .iter()
        .map(|v| v.n)
        .max()
        .unwrap_or(0)
        .saturating_add(1);
    let other = match read {
        [] => 0,
        // The same replica goes on: its run started after `previous.other`.
        [previous] if source.is_some() && previous.src.as_deref() == source => previous.other,
        [previous] => previous.n,
        // Concurrent announcements: wake everyone, this one included.
        _ => n,
    };
    Value {
        stamp,
        n,
        src: source.map(str::to_owned),
        other,
    }
}

fn random_u64() -> u64 {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        tracing::warn!("no randomness for a change stamp");
    }
    u64::from_le_bytes(bytes)
}

/// Change notifications in K2V, shared by every server over one cluster
/// (module doc: layout, markers, waits).
#[derive(Clone)]
pub struct GarageNotifier {
    k2v: K2vClient,
    prefix: String,
    /// Names the deployment in markers.
    tag: String,
}

impl std::fmt::Debug for GarageNotifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GarageNotifier")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// A parsed marker: what was seen of each kind (in [`KINDS`] order).
type Marker = [Seen; 3];

impl GarageNotifier {
    pub(crate) fn new(k2v: K2vClient, prefix: &str) -> GarageNotifier {
        let digest = Sha256::digest(format!("soledad-notify:{prefix}").as_bytes());
        let tag = hex::encode(digest.get(..4).unwrap_or_default());
        GarageNotifier {
            k2v,
            prefix: prefix.to_owned(),
            tag,
        }
    }

    fn partition(&self, user: &UserId) -> String {
        format!("{}notify-{}", self.prefix, user.as_str())
    }

    fn encode(&self, marker: &Marker) -> String {
        let mut out = format!("g{}", self.tag);
        for seen in marker {
            out.push_str(&format!(".{:x}-{:x}", seen.state, seen.n));
        }
        out
    }

    /// `None` for a well-formed marker this notifier did not make.
    fn decode(&self, marker: &str) -> Option<Marker> {
        let mut parts = marker.split('.');
        if parts.next()? != format!("g{}", self.tag) {
            return None;
        }
        let mut out = [Seen { state: 0, n: 0 }; 3];
        for slot in &mut out {
            let (state, n) = parts.next()?.split_once('-')?;
            *slot = Seen {
                state: u64::from_str_radix(state, 16).ok()?,
                n: u64::from_str_radix(n, 16).ok()?,
            };
        }
        parts.next().is_none().then_some(out)
    }

    /// What `items` (the partition) show of each kind.
    fn current(items: &[(String, Item)]) -> [Vec<Value>; 3] {
        KINDS.map(|(_, key)| {
            values(
                items
                    .iter()
                    .find(|(sort_key, _)| sort_key == key)
                    .map(|(_, item)| item),
            )
        })
    }

    fn answer(
        &self,
        now: &[Vec<Value>; 3],
        since: Option<&Marker>,
        source: Option<&str>,
    ) -> ChangesResponse {
        let marker: Marker = [Seen::of(&now[0]), Seen::of(&now[1]), Seen::of(&now[2])];
        let changed = match since {
            None => ChangeKind::ALL.to_vec(),
            Some(seen) => KINDS
                .iter()
                .zip(now.iter().zip(seen.iter()))
                .filter(|((kind, _), (values, seen))| changed(*kind, values, **seen, source))
                .map(|((kind, _), _)| *kind)
                .collect(),
        };
        ChangesResponse {
            changed,
            marker: self.encode(&marker),
        }
    }

    async fn announce(&self, user: &UserId, key: &str, source: Option<&str>) {
        let pk = self.partition(user);
        let result: Result<(), GarageError> = async {
            let item = self.k2v.read_item(&pk, key).await?;
            let value = next_value(&values(item.as_ref()), source, random_u64());
            let bytes = serde_json::to_vec(&value).map_err(|_| GarageError::MalformedItem {
                what: "a change announcement",
            })?;
            self.k2v
                .insert_item(
                    &pk,
                    key,
                    item.as_ref().map(|i| &i.token),
                    Bytes::from(bytes),
                )
                .await
        }
        .await;
        if let Err(error) = result {
            tracing::warn!(%error, "announcing a change in Garage failed; devices learn of it at their next wait");
        }
    }

    async fn wait_inner(
        &self,
        user: &UserId,
        since: Option<&str>,
        source: Option<&str>,
        timeout: Duration,
    ) -> Result<ChangesResponse, Error> {
        let since = match since {
            None => None,
            Some(text) if !soledad_protocol::is_valid_marker(text) => {
                return Err(Error::InvalidRequest { what: "since" });
            }
            // Unknown markers: every kind.
            Some(text) => self.decode(text),
        };
        let deadline = Instant::now() + timeout;
        let pk = self.partition(user);
        loop {
            let Polled {
                items, seen_marker, ..
            } = self
                .k2v
                .poll_range(&pk, "", None, Duration::ZERO)
                .await
                .map_err(storage)?
                .ok_or(Error::StorageUnavailable)?;
            let answer = self.answer(&Self::current(&items), since.as_ref(), source);
            if !answer.changed.is_empty() {
                return Ok(answer);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(answer);
            }
            let poll = self.k2v.poll_range(&pk, "", Some(&seen_marker), left);
            match tokio::time::timeout_at(deadline, poll).await {
                // Time is up, here or in Garage.
                Err(_) | Ok(Ok(None)) => return Ok(answer),
                // Something changed: read again.
                Ok(Ok(Some(_))) => {}
                Ok(Err(error)) => {
                    tracing::debug!(%error, "K2V poll failed; reading again later");
                    let pause = FALLBACK_READ.min(left);
                    tokio::time::sleep(pause).await;
                }
            }
        }
    }
}

fn storage(error: GarageError) -> Error {
    tracing::warn!(%error, "reading change state from Garage failed");
    Error::StorageUnavailable
}

impl ChangeNotifier for GarageNotifier {
    fn notify<'a>(
        &'a self,
        user: &'a UserId,
        kind: ChangeKind,
        source: Option<&'a str>,
    ) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            match KINDS.iter().find(|(k, _)| *k == kind) {
                Some((ChangeKind::Docs, key)) => self.announce(user, key, source).await,
                Some((_, key)) => self.announce(user, key, None).await,
                // Kinds added later: wake everyone (a spurious wake costs a sync).
                None => {
                    for (_, key) in KINDS {
                        self.announce(user, key, None).await;
                    }
                }
            }
        })
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
    use super::*;

    fn announce(read: &[Value], source: Option<&str>, stamp: u64) -> Vec<Value> {
        vec![next_value(read, source, stamp)]
    }

    #[test]
    fn own_documents_do_not_wake_their_replica_but_others_do() {
        let start: Vec<Value> = Vec::new();
        let seen = Seen::of(&start);
        let mine = announce(&start, Some("a"), 1);
        assert!(!changed(ChangeKind::Docs, &mine, seen, Some("a")));
        assert!(changed(ChangeKind::Docs, &mine, seen, Some("b")));
        assert!(changed(ChangeKind::Docs, &mine, seen, None));
        let theirs = announce(&mine, Some("b"), 2);
        let mine_again = announce(&theirs, Some("a"), 3);
        assert!(changed(ChangeKind::Docs, &mine_again, seen, Some("a")));
        // Seen after b's change: only a's own since.
        assert!(!changed(
            ChangeKind::Docs,
            &mine_again,
            Seen::of(&theirs),
            Some("a")
        ));
    }

    #[test]
    fn concurrent_announcements_wake_everyone_until_folded() {
        let base = announce(&[], Some("a"), 0x11);
        let seen = Seen::of(&base);
        let siblings = vec![
            next_value(&base, Some("a"), 0x2200),
            next_value(&base, Some("b"), 0x33_0000),
        ];
        assert!(changed(ChangeKind::Docs, &siblings, seen, Some("a")));
        let folded = announce(&siblings, Some("a"), 0x4400_0000);
        assert!(changed(ChangeKind::Docs, &folded, seen, Some("a")));
        assert!(!changed(
            ChangeKind::Docs,
            &folded,
            Seen::of(&folded),
            Some("a")
        ));
    }
}
