//! The embedded incoming box: claims kept in memory, message state in the
//! blob flags of any [`BlobBackend`], keys as blobs of namespace `MX-keys`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt as _;
use futures_util::future::BoxFuture;
use tokio::sync::Mutex;

use super::{
    Claim, IncomingBox, IncomingError, IncomingQuery, Listing, MAX_PUBLIC_KEY_LEN, MessageInfo,
    MessageState, Outcome, check_key,
};
use crate::blobs::{
    BlobBackend, BlobError, BlobId, ByteStream, Flag, ListQuery, Namespace, Order, UserId,
};

/// Namespace of the published incoming keys (one blob per user).
const KEYS_NAMESPACE: &str = "MX-keys";
/// Blob id of a user's incoming public key.
const KEY_BLOB_ID: &str = "incoming-public-key";

/// What the server remembers of one message beyond its flag.
#[derive(Clone, Debug, Default)]
struct Record {
    /// The current claim: its secret and when it expires.
    claim: Option<(String, Instant)>,
    /// The version of the processor that failed on it.
    failed_version: Option<u64>,
}

/// The embedded [`IncomingBox`] over a [`BlobBackend`].
///
/// Claims live in this process's memory, serialised by one lock (claims are
/// short and rare next to deliveries): a restart forgets them, which makes
/// every `PROCESSING` message claimable again — the same as an expired claim,
/// so nothing is lost, at worst processed again (documents have ids derived
/// from the message id, so a second processing rewrites the same documents).
/// A restart also forgets failed versions: a `FAILED` message then counts as
/// failed at version 0, so any processor retries it once more.
pub struct EmbeddedIncomingBox {
    blobs: Arc<dyn BlobBackend>,
    threshold: Duration,
    records: Mutex<HashMap<(UserId, BlobId), Record>>,
}

impl std::fmt::Debug for EmbeddedIncomingBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedIncomingBox")
            .field("threshold", &self.threshold)
            .finish_non_exhaustive()
    }
}

fn new_secret() -> Result<String, IncomingError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)
        .map_err(|_| BlobError::Io(std::io::Error::other("no randomness for a claim")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn keys_namespace() -> Result<(Namespace, BlobId), IncomingError> {
    Ok((
        Namespace::parse(KEYS_NAMESPACE)?,
        BlobId::parse(KEY_BLOB_ID)?,
    ))
}

/// The state of a message from its flags and record, at `now`.
fn state_of(flags: &[Flag], record: Option<&Record>, now: Instant) -> (MessageState, Option<u64>) {
    let claimed = record
        .and_then(|r| r.claim.as_ref())
        .is_some_and(|(_, until)| *until > now);
    let failed_version = record.and_then(|r| r.failed_version);
    // A retry by a newer version whose claim expired is still failed at the
    // recorded version: an older processor must not take it.
    if flags.contains(&Flag::Failed) || (!claimed && failed_version.is_some()) {
        return (MessageState::Failed, Some(failed_version.unwrap_or(0)));
    }
    if flags.contains(&Flag::Processing) && claimed {
        return (MessageState::Processing, None);
    }
    (MessageState::Pending, None)
}

impl EmbeddedIncomingBox {
    /// An incoming box over `blobs` whose claims hold for `threshold`.
    pub fn new(blobs: Arc<dyn BlobBackend>, threshold: Duration) -> Self {
        Self {
            blobs,
            threshold,
            records: Mutex::new(HashMap::new()),
        }
    }

    async fn claim_impl(
        &self,
        user: &UserId,
        id: &BlobId,
        version: u64,
    ) -> Result<Claim, IncomingError> {
        let ns = Namespace::incoming();
        let mut records = self.records.lock().await;
        let key = (user.clone(), id.clone());
        let flags = self.blobs.get_flags(user, &ns, id).await?;
        let now = Instant::now();
        let (state, failed) = state_of(&flags, records.get(&key), now);
        match state {
            MessageState::Pending => {}
            MessageState::Failed if failed.unwrap_or(0) < version => {}
            _ => return Err(IncomingError::Claimed),
        }
        let secret = new_secret()?;
        self.blobs
            .set_flags(user, &ns, id, vec![Flag::Processing])
            .await?;
        let record = records.entry(key).or_default();
        record.claim = Some((secret.clone(), now + self.threshold));
        Ok(Claim {
            claim: secret,
            expires_in_secs: self.threshold.as_secs(),
        })
    }

    async fn finish_impl(
        &self,
        user: &UserId,
        id: &BlobId,
        claim: &str,
        outcome: Outcome,
    ) -> Result<(), IncomingError> {
        let ns = Namespace::incoming();
        let mut records = self.records.lock().await;
        let key = (user.clone(), id.clone());
        let now = Instant::now();
        let held = records
            .get(&key)
            .and_then(|r| r.claim.as_ref())
            .is_some_and(|(secret, until)| {
                *until > now && constant_time_eq(secret.as_bytes(), claim.as_bytes())
            });
        if !held {
            // Tell a missing message apart from a lost claim.
            self.blobs.get_flags(user, &ns, id).await?;
            return Err(IncomingError::Claimed);
        }
        match outcome {
            Outcome::Processed => {
                self.blobs.delete(user, &ns, id).await?;
                records.remove(&key);
            }
            Outcome::Failed { version } => {
                self.blobs
                    .set_flags(user, &ns, id, vec![Flag::Failed])
                    .await?;
                records.insert(
                    key,
                    Record {
                        claim: None,
                        failed_version: Some(version),
                    },
                );
            }
        }
        Ok(())
    }

    async fn list_impl(
        &self,
        user: &UserId,
        query: &IncomingQuery,
    ) -> Result<Listing, IncomingError> {
        let ns = Namespace::incoming();
        let ids = self
            .blobs
            .list(
                user,
                &ListQuery {
                    namespace: ns.clone(),
                    filter_flag: None,
                    order: Some(Order::DateAscending),
                    deleted: false,
                },
            )
            .await?;
        let snapshot: HashMap<BlobId, Record> = {
            let records = self.records.lock().await;
            records
                .iter()
                .filter(|((owner, _), _)| owner == user)
                .map(|((_, id), record)| (id.clone(), record.clone()))
                .collect()
        };
        let now = Instant::now();
        let mut listing = Listing::default();
        let mut matching = Vec::new();
        for raw in ids {
            let Ok(id) = BlobId::parse(&raw) else {
                continue;
            };
            // A message may be finished between the listing and here.
            let flags = match self.blobs.get_flags(user, &ns, &id).await {
                Ok(flags) => flags,
                Err(BlobError::NotFound) => continue,
                Err(err) => return Err(err.into()),
            };
            let (state, failed_version) = state_of(&flags, snapshot.get(&id), now);
            let wanted = match state {
                MessageState::Pending => {
                    listing.pending = listing.pending.saturating_add(1);
                    true
                }
                MessageState::Processing => query.include_processing,
                MessageState::Failed => query
                    .version
                    .is_some_and(|v| failed_version.unwrap_or(0) < v),
            };
            if !wanted {
                continue;
            }
            let size = match self.blobs.get(user, &ns, &id, None).await {
                Ok(read) => read.total_size,
                Err(BlobError::NotFound) => continue,
                Err(err) => return Err(err.into()),
            };
            if query.size_limit.is_some_and(|limit| size > limit) {
                listing.skipped_oversized.push(raw);
                continue;
            }
            matching.push(MessageInfo {
                id: raw,
                size,
                state,
                failed_version,
            });
        }
        listing.messages = match query.limit {
            None => matching,
            Some(limit) => matching
                .into_iter()
                .skip(query.page.saturating_mul(limit))
                .take(limit)
                .collect(),
        };
        Ok(listing)
    }

    async fn set_key_impl(&self, user: &UserId, key: &str) -> Result<(), IncomingError> {
        check_key(key)?;
        let (ns, id) = keys_namespace()?;
        // Rotation replaces the key: blobs are immutable, so delete first.
        let _records = self.records.lock().await;
        match self.blobs.delete(user, &ns, &id).await {
            Ok(()) | Err(BlobError::NotFound) => {}
            Err(err) => return Err(err.into()),
        }
        let bytes = Bytes::from(key.to_owned().into_bytes());
        let len = u64::try_from(bytes.len()).ok();
        let body: ByteStream = Box::pin(futures_util::stream::once(async move {
            Ok::<_, std::io::Error>(bytes)
        }));
        self.blobs.put(user, &ns, &id, body, len, &[]).await?;
        Ok(())
    }

    async fn public_key_impl(&self, user: &UserId) -> Result<String, IncomingError> {
        let (ns, id) = keys_namespace()?;
        let mut read = self.blobs.get(user, &ns, &id, None).await?;
        let mut bytes = Vec::new();
        while let Some(chunk) = read.body.next().await {
            let chunk = chunk.map_err(BlobError::Io)?;
            if bytes.len().saturating_add(chunk.len()) > MAX_PUBLIC_KEY_LEN {
                return Err(IncomingError::InvalidKey);
            }
            bytes.extend_from_slice(&chunk);
        }
        let key = String::from_utf8(bytes).map_err(|_| IncomingError::InvalidKey)?;
        check_key(&key)?;
        Ok(key)
    }
}

/// Compares two secrets without an early exit on the first difference.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl IncomingBox for EmbeddedIncomingBox {
    fn claim<'a>(
        &'a self,
        user: &'a UserId,
        id: &'a BlobId,
        version: u64,
    ) -> BoxFuture<'a, Result<Claim, IncomingError>> {
        Box::pin(self.claim_impl(user, id, version))
    }

    fn finish<'a>(
        &'a self,
        user: &'a UserId,
        id: &'a BlobId,
        claim: &'a str,
        outcome: Outcome,
    ) -> BoxFuture<'a, Result<(), IncomingError>> {
        Box::pin(self.finish_impl(user, id, claim, outcome))
    }

    fn list<'a>(
        &'a self,
        user: &'a UserId,
        query: &'a IncomingQuery,
    ) -> BoxFuture<'a, Result<Listing, IncomingError>> {
        Box::pin(self.list_impl(user, query))
    }

    fn set_public_key<'a>(
        &'a self,
        user: &'a UserId,
        key: &'a str,
    ) -> BoxFuture<'a, Result<(), IncomingError>> {
        Box::pin(self.set_key_impl(user, key))
    }

    fn public_key<'a>(&'a self, user: &'a UserId) -> BoxFuture<'a, Result<String, IncomingError>> {
        Box::pin(self.public_key_impl(user))
    }
}
