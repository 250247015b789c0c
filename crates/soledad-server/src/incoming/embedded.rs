//! The embedded incoming box: message state in the blob flags of any
//! [`BlobBackend`], claims and failed versions in a small SQLite table, keys
//! as blobs of namespace `MX-keys`.
//!
//! Why a table of its own (`incoming.sqlite` in the data directory) and not
//! the blob flags or the user's document store: flags are the blobs API's
//! closed set (`PENDING`, `PROCESSING` …) with no room for a claim's deadline,
//! its secret or a processor version, and widening them would change every
//! [`BlobBackend`]; the user's document store holds what devices sync, and a
//! claim is server bookkeeping that must not create a user's store nor be
//! charged to their quota. A table of `(user, message)` rows, updated in one
//! statement under the box's lock, survives a restart and costs nothing when
//! the box is empty (rows go when a message is processed).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use rusqlite::OptionalExtension as _;
use tokio::sync::Mutex;

use super::listing::{Remembered, list_messages, message_state, now_ms};
use super::{
    Claim, IncomingBox, IncomingError, IncomingQuery, Listing, MessageState, Outcome, check_key,
    constant_time_eq, hash_claim, new_claim_secret, stored_key,
};
use crate::blobs::{BlobBackend, BlobError, BlobId, Flag, Namespace, UserId};
use crate::error::Error;
use crate::sqlite::SqliteActor;

/// One row per message the server remembers more of than its flag. Claim
/// secrets are kept as SHA-256 hashes; deadlines as wall-clock Unix
/// milliseconds (a claim must outlive a restart).
const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS incoming_records (
    owner TEXT NOT NULL,
    id TEXT NOT NULL,
    claim_hash BLOB,
    claim_expires_ms INTEGER,
    failed_version INTEGER,
    PRIMARY KEY (owner, id)
);";

/// What the server remembers of one message beyond its flag.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Record {
    /// The current claim: the hash of its secret and when it expires (Unix ms).
    claim: Option<([u8; 32], u64)>,
    /// The version of the processor that failed on it.
    failed_version: Option<u64>,
}

fn to_sql(value: u64) -> i64 {
    // Versions and deadlines past i64::MAX are clamped (never reached).
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn from_sql(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// The records table, on its own thread.
#[derive(Clone)]
struct Records {
    actor: SqliteActor,
}

impl Records {
    fn row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Record> {
        let hash: Option<Vec<u8>> = row.get(0)?;
        let expires: Option<i64> = row.get(1)?;
        let failed: Option<i64> = row.get(2)?;
        let claim = match (hash.and_then(|h| <[u8; 32]>::try_from(h).ok()), expires) {
            (Some(hash), Some(expires)) => Some((hash, from_sql(expires))),
            _ => None,
        };
        Ok(Record {
            claim,
            failed_version: failed.map(from_sql),
        })
    }

    async fn get(&self, user: &UserId, id: &BlobId) -> Result<Option<Record>, IncomingError> {
        let (owner, id) = (user.as_str().to_owned(), id.as_str().to_owned());
        self.actor
            .call(move |conn| {
                Ok(conn
                    .query_row(
                        "SELECT claim_hash, claim_expires_ms, failed_version \
                         FROM incoming_records WHERE owner = ?1 AND id = ?2",
                        [&owner, &id],
                        Self::row,
                    )
                    .optional()?)
            })
            .await
            .map_err(records_error)
    }

    async fn of_user(&self, user: &UserId) -> Result<HashMap<String, Record>, IncomingError> {
        let owner = user.as_str().to_owned();
        self.actor
            .call(move |conn| {
                let mut stmt = conn.prepare(
                    "SELECT claim_hash, claim_expires_ms, failed_version, id \
                     FROM incoming_records WHERE owner = ?1",
                )?;
                let mut rows = stmt.query([&owner])?;
                let mut out = HashMap::new();
                while let Some(row) = rows.next()? {
                    out.insert(row.get::<_, String>(3)?, Self::row(row)?);
                }
                Ok(out)
            })
            .await
            .map_err(records_error)
    }

    async fn put(&self, user: &UserId, id: &BlobId, record: Record) -> Result<(), IncomingError> {
        let (owner, id) = (user.as_str().to_owned(), id.as_str().to_owned());
        self.actor
            .call(move |conn| {
                let (hash, expires) = match record.claim {
                    Some((hash, expires)) => (Some(hash.to_vec()), Some(to_sql(expires))),
                    None => (None, None),
                };
                conn.execute(
                    "INSERT INTO incoming_records \
                     (owner, id, claim_hash, claim_expires_ms, failed_version) \
                     VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(owner, id) DO UPDATE SET \
                     claim_hash = ?3, claim_expires_ms = ?4, failed_version = ?5",
                    rusqlite::params![owner, id, hash, expires, record.failed_version.map(to_sql)],
                )?;
                Ok(())
            })
            .await
            .map_err(records_error)
    }

    async fn remove(&self, user: &UserId, id: &BlobId) -> Result<(), IncomingError> {
        let (owner, id) = (user.as_str().to_owned(), id.as_str().to_owned());
        self.actor
            .call(move |conn| {
                conn.execute(
                    "DELETE FROM incoming_records WHERE owner = ?1 AND id = ?2",
                    [&owner, &id],
                )?;
                Ok(())
            })
            .await
            .map_err(records_error)
    }
}

/// The embedded [`IncomingBox`] over a [`BlobBackend`].
///
/// Claims and failed versions are rows of a small SQLite table (see the
/// module doc for why), serialised by one lock (claims are short and rare
/// next to deliveries). They survive a restart: a claimed message stays
/// `PROCESSING` until its claim's deadline (wall clock), and a `FAILED`
/// message keeps the version that failed, so the same version still skips
/// it and only a newer one retries it.
pub struct EmbeddedIncomingBox {
    blobs: Arc<dyn BlobBackend>,
    threshold: Duration,
    records: Records,
    /// Serialises claims and outcomes (a flag change and its record row).
    lock: Mutex<()>,
}

impl std::fmt::Debug for EmbeddedIncomingBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedIncomingBox")
            .field("threshold", &self.threshold)
            .finish_non_exhaustive()
    }
}

/// A failure of the records table, as the incoming box reports storage
/// failures.
fn records_error(err: Error) -> IncomingError {
    match err {
        Error::Blob(blob) => IncomingError::Blob(blob),
        other => IncomingError::Blob(BlobError::Io(std::io::Error::other(other))),
    }
}

impl Record {
    /// What listing and claiming decide on.
    fn remembered(&self) -> Remembered {
        Remembered {
            claim_until: self.claim.map(|(_, until)| until),
            failed_version: self.failed_version,
        }
    }
}

impl EmbeddedIncomingBox {
    /// An incoming box over `blobs` whose claims hold for `threshold`, its
    /// claims and failed versions kept in the SQLite file at `records_path`
    /// (created if needed; reopening it after a restart keeps them).
    ///
    /// # Errors
    /// [`Error::Database`] or [`Error::Io`] when the file cannot be opened.
    pub fn open(
        blobs: Arc<dyn BlobBackend>,
        threshold: Duration,
        records_path: &Path,
    ) -> Result<Self, Error> {
        Ok(Self {
            blobs,
            threshold,
            records: Records {
                actor: SqliteActor::open(records_path, "incoming", SCHEMA)?,
            },
            lock: Mutex::new(()),
        })
    }

    fn deadline(&self, now: u64) -> u64 {
        let threshold = u64::try_from(self.threshold.as_millis()).unwrap_or(u64::MAX);
        now.saturating_add(threshold)
    }

    async fn claim_impl(
        &self,
        user: &UserId,
        id: &BlobId,
        version: u64,
    ) -> Result<Claim, IncomingError> {
        let ns = Namespace::incoming();
        let _lock = self.lock.lock().await;
        let flags = self.blobs.get_flags(user, &ns, id).await?;
        let record = self.records.get(user, id).await?;
        let now = now_ms();
        let remembered = record.as_ref().map(Record::remembered).unwrap_or_default();
        let (state, failed) = message_state(&flags, remembered, now);
        match state {
            MessageState::Pending => {}
            MessageState::Failed if failed.unwrap_or(0) < version => {}
            _ => return Err(IncomingError::Claimed),
        }
        let secret = new_claim_secret()?;
        // The record first: a crash in between leaves the flag as it was,
        // which decides the state (`message_state`), so the message stays
        // claimable by whoever could claim it before.
        let record = Record {
            claim: Some((hash_claim(&secret), self.deadline(now))),
            failed_version: record.and_then(|r| r.failed_version),
        };
        self.records.put(user, id, record).await?;
        self.blobs
            .set_flags(user, &ns, id, vec![Flag::Processing])
            .await?;
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
        let _lock = self.lock.lock().await;
        let now = now_ms();
        let offered = hash_claim(claim);
        let held = self
            .records
            .get(user, id)
            .await?
            .and_then(|r| r.claim)
            .is_some_and(|(hash, until)| until > now && constant_time_eq(&hash, &offered));
        if !held {
            // Tell a missing message apart from a lost claim.
            self.blobs.get_flags(user, &ns, id).await?;
            return Err(IncomingError::Claimed);
        }
        match outcome {
            Outcome::Processed => {
                self.blobs.delete(user, &ns, id).await?;
                self.records.remove(user, id).await?;
            }
            Outcome::Failed { version } => {
                // The version first: a crash in between leaves a PROCESSING
                // flag without a claim, which `message_state` reads as FAILED at
                // `version`.
                self.records
                    .put(
                        user,
                        id,
                        Record {
                            claim: None,
                            failed_version: Some(version),
                        },
                    )
                    .await?;
                self.blobs
                    .set_flags(user, &ns, id, vec![Flag::Failed])
                    .await?;
            }
        }
        Ok(())
    }

    async fn list_impl(
        &self,
        user: &UserId,
        query: &IncomingQuery,
    ) -> Result<Listing, IncomingError> {
        let records = async {
            let snapshot = self.records.of_user(user).await?;
            Ok(move |id: &str| snapshot.get(id).map(Record::remembered).unwrap_or_default())
        };
        list_messages(self.blobs.as_ref(), user, query, records).await
    }

    async fn set_key_impl(&self, user: &UserId, key: &str) -> Result<(), IncomingError> {
        check_key(key)?;
        // Rotation replaces the key: one rotation at a time on this server.
        let _lock = self.lock.lock().await;
        stored_key::replace(&*self.blobs, user, key).await
    }

    async fn public_key_impl(&self, user: &UserId) -> Result<String, IncomingError> {
        stored_key::read(&*self.blobs, user).await
    }
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
