//! The incoming box in Garage ([`GarageIncomingBox`]): message state in the
//! blob flags of the Garage blob store, keys as blobs of namespace `MX-keys`
//! (as for the embedded box), and claims as K2V items in the partition
//! `<prefix>incoming-<uuid>` (sort key: the message id), changed under that
//! partition's lease, so a claim is atomic across every server and survives
//! a server restart. A claim item holds the SHA-256 of the claim's secret,
//! never the secret, compared in constant time (as the embedded box does).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

use super::error::GarageError;
use super::k2v::{K2vClient, Range, Write};
use super::lease::Lease;
use crate::blobs::{BlobBackend, BlobError, BlobId, Flag, Namespace, UserId};
use crate::incoming::listing::{Remembered, list_messages, message_state, now_ms};
use crate::incoming::{
    Claim, IncomingBox, IncomingError, IncomingQuery, Listing, MessageState, Outcome, check_key,
    constant_time_eq, hash_claim, new_claim_secret, stored_key,
};

/// What the cluster remembers of one message beyond its flag.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Record {
    /// The current claim: the SHA-256 of its secret (hex; the secret itself
    /// is never stored) and when it expires (ms since the epoch). Records of
    /// older servers held the secret under `claim`: ignored, such a claim
    /// reads as expired.
    #[serde(default)]
    claim_hash: Option<(String, u64)>,
    /// The version of the processor that failed on it.
    failed_version: Option<u64>,
}

impl Record {
    /// Records a claim of `secret` holding until `until` (its hash only).
    fn claim(&mut self, secret: &str, until: u64) {
        self.claim_hash = Some((hex::encode(hash_claim(secret)), until));
    }

    /// What listing and claiming decide on.
    fn remembered(&self) -> Remembered {
        Remembered {
            claim_until: self.claim_hash.as_ref().map(|(_, until)| *until),
            failed_version: self.failed_version,
        }
    }

    /// Whether `claim` is the secret of the claim holding at `now`
    /// (compared in constant time).
    fn is_held_by(&self, claim: &str, now: u64) -> bool {
        self.claim_hash.as_ref().is_some_and(|(hash, until)| {
            let presented = hex::encode(hash_claim(claim));
            *until > now && constant_time_eq(hash.as_bytes(), presented.as_bytes())
        })
    }
}

fn storage(error: GarageError) -> IncomingError {
    IncomingError::Blob(BlobError::Io(std::io::Error::other(error)))
}

/// The Garage [`IncomingBox`] (module doc). A claim expires after the
/// threshold on the servers' wall clocks (kept in sync by NTP).
pub struct GarageIncomingBox {
    blobs: Arc<dyn BlobBackend>,
    threshold: Duration,
    k2v: K2vClient,
    prefix: String,
}

impl std::fmt::Debug for GarageIncomingBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GarageIncomingBox")
            .field("threshold", &self.threshold)
            .finish_non_exhaustive()
    }
}

impl GarageIncomingBox {
    /// An incoming box over `blobs` (the Garage blob store) whose claims hold
    /// for `threshold`, kept through `k2v`.
    pub(crate) fn new(
        blobs: Arc<dyn BlobBackend>,
        threshold: Duration,
        k2v: K2vClient,
        prefix: &str,
    ) -> Self {
        Self {
            blobs,
            threshold,
            k2v,
            prefix: prefix.to_owned(),
        }
    }

    fn partition(&self, user: &UserId) -> String {
        format!("{}incoming-{}", self.prefix, user.as_str())
    }

    async fn record(
        &self,
        pk: &str,
        id: &BlobId,
    ) -> Result<(Option<Record>, Option<super::k2v::CausalityToken>), IncomingError> {
        let item = self.k2v.read_item(pk, id.as_str()).await.map_err(storage)?;
        let record = item.as_ref().and_then(|item| {
            item.live()
                .filter_map(|v| serde_json::from_slice::<Record>(v).ok())
                .next()
        });
        Ok((record, item.map(|i| i.token)))
    }

    async fn store_record(
        &self,
        pk: &str,
        id: &BlobId,
        token: Option<super::k2v::CausalityToken>,
        record: Option<&Record>,
        lease: &Lease,
    ) -> Result<(), IncomingError> {
        let value = match record {
            Some(record) => {
                Some(Bytes::from(serde_json::to_vec(record).map_err(|_| {
                    storage(GarageError::MalformedItem { what: "a claim" })
                })?))
            }
            None => None,
        };
        lease.check().map_err(storage)?;
        self.k2v
            .insert_batch(&[Write {
                partition: pk.to_owned(),
                sort_key: id.as_str().to_owned(),
                token,
                value,
            }])
            .await
            .map_err(storage)
    }

    async fn locked<T>(
        &self,
        pk: &str,
        work: impl AsyncFnOnce(&Lease) -> Result<T, IncomingError>,
    ) -> Result<T, IncomingError> {
        let lease = Lease::acquire(&self.k2v, pk).await.map_err(storage)?;
        let result = work(&lease).await;
        lease.release(&self.k2v).await;
        result
    }

    async fn claim_impl(
        &self,
        user: &UserId,
        id: &BlobId,
        version: u64,
    ) -> Result<Claim, IncomingError> {
        let ns = Namespace::incoming();
        let pk = self.partition(user);
        self.locked(&pk, async |lease| {
            let (record, token) = self.record(&pk, id).await?;
            let flags = self.blobs.get_flags(user, &ns, id).await?;
            let now = now_ms();
            let remembered = record.as_ref().map(Record::remembered).unwrap_or_default();
            let (state, failed) = message_state(&flags, remembered, now);
            match state {
                MessageState::Pending => {}
                MessageState::Failed if failed.unwrap_or(0) < version => {}
                _ => return Err(IncomingError::Claimed),
            }
            let secret = new_claim_secret()?;
            self.blobs
                .set_flags(user, &ns, id, vec![Flag::Processing])
                .await?;
            // The claim holds for the threshold from when it is granted (the
            // flag is written first: a PROCESSING flag without a live claim
            // reads as PENDING meanwhile).
            let until = now_ms()
                .saturating_add(u64::try_from(self.threshold.as_millis()).unwrap_or(u64::MAX));
            let mut record = record.unwrap_or_default();
            record.claim(&secret, until);
            self.store_record(&pk, id, token, Some(&record), lease)
                .await?;
            Ok(Claim {
                claim: secret,
                expires_in_secs: self.threshold.as_secs(),
            })
        })
        .await
    }

    async fn finish_impl(
        &self,
        user: &UserId,
        id: &BlobId,
        claim: &str,
        outcome: Outcome,
    ) -> Result<(), IncomingError> {
        let ns = Namespace::incoming();
        let pk = self.partition(user);
        self.locked(&pk, async |lease| {
            let (record, token) = self.record(&pk, id).await?;
            let now = now_ms();
            let held = record.as_ref().is_some_and(|r| r.is_held_by(claim, now));
            if !held {
                // Tell a missing message apart from a lost claim.
                self.blobs.get_flags(user, &ns, id).await?;
                return Err(IncomingError::Claimed);
            }
            match outcome {
                Outcome::Processed => {
                    self.blobs.delete(user, &ns, id).await?;
                    self.store_record(&pk, id, token, None, lease).await?;
                }
                Outcome::Failed { version } => {
                    self.blobs
                        .set_flags(user, &ns, id, vec![Flag::Failed])
                        .await?;
                    let record = Record {
                        claim_hash: None,
                        failed_version: Some(version),
                    };
                    self.store_record(&pk, id, token, Some(&record), lease)
                        .await?;
                }
            }
            Ok(())
        })
        .await
    }

    async fn list_impl(
        &self,
        user: &UserId,
        query: &IncomingQuery,
    ) -> Result<Listing, IncomingError> {
        let records = async {
            let items = self
                .k2v
                .read_all(Range {
                    partition_key: self.partition(user),
                    ..Range::default()
                })
                .await
                .map_err(storage)?;
            let snapshot: HashMap<String, Remembered> = items
                .into_iter()
                .filter_map(|(sk, item)| {
                    let record = item
                        .live()
                        .filter_map(|v| serde_json::from_slice::<Record>(v).ok())
                        .next()?;
                    Some((sk, record.remembered()))
                })
                .collect();
            Ok(move |id: &str| snapshot.get(id).copied().unwrap_or_default())
        };
        list_messages(self.blobs.as_ref(), user, query, records).await
    }

    async fn set_key_impl(&self, user: &UserId, key: &str) -> Result<(), IncomingError> {
        check_key(key)?;
        // Rotation replaces the key: blobs are immutable, so delete first
        // (under the user's incoming lease, so two rotations do not mix).
        let pk = self.partition(user);
        let lease = Lease::acquire(&self.k2v, &pk).await.map_err(storage)?;
        let result = stored_key::replace(&*self.blobs, user, key).await;
        lease.release(&self.k2v).await;
        result
    }

    async fn public_key_impl(&self, user: &UserId) -> Result<String, IncomingError> {
        stored_key::read(&*self.blobs, user).await
    }
}

impl IncomingBox for GarageIncomingBox {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_claim_holds_its_secrets_hash_only() {
        let secret = new_claim_secret().unwrap();
        let mut record = Record::default();
        record.claim(&secret, 1_000);
        let stored = serde_json::to_string(&record).unwrap();
        assert!(!stored.contains(&secret), "{stored}");
        assert!(record.is_held_by(&secret, 999));
        assert!(!record.is_held_by(&new_claim_secret().unwrap(), 999));
        assert!(!record.is_held_by(&secret, 1_000), "expired");
        // A record of an older server (plain secret under `claim`) holds no claim.
        let old: Record = serde_json::from_str(&format!(
            r#"{{"claim":["{secret}",1000],"failed_version":null}}"#
        ))
        .unwrap();
        assert!(!old.is_held_by(&secret, 999));
    }
}
