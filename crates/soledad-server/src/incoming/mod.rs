//! The incoming box's server side: atomic claims on delivered messages, their
//! outcome (processed, failed with the processor's version), the listing a
//! device's processing loop reads, and each user's published incoming key.
//!
//! Messages are blobs of namespace `MX` (delivered by a service through
//! `PUT /incoming/{uuid}/{id}`); their state is the blob's flag:
//!
//! ```text
//! PENDING ──claim──▶ PROCESSING ──processed──▶ (deleted)
//!                        │  └─ claim expired ─▶ claimable again
//!                        └──failed(version)──▶ FAILED ──claim by a newer version──▶ PROCESSING
//! ```
//!
//! [`IncomingBox`] is the interface the HTTP layer calls; [`EmbeddedIncomingBox`]
//! keeps claims and failed versions in a small SQLite table next to any
//! [`BlobBackend`](crate::blobs::BlobBackend), so they survive a restart. `docs/incoming.md` has the
//! protocol.

mod embedded;
pub(crate) mod listing;
pub(crate) mod stored_key;

use std::time::Duration;

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

use crate::blobs::{BlobError, BlobId, UserId};

pub use embedded::EmbeddedIncomingBox;

/// Default `processing_threshold_secs`: how long a claim holds (the seed's
/// `PROCESSING_THRESHOLD`, which it leaves open).
pub const DEFAULT_PROCESSING_THRESHOLD: Duration = Duration::from_secs(600);

/// Longest accepted published key (an age X25519 recipient is 62 bytes).
pub const MAX_PUBLIC_KEY_LEN: usize = 256;

/// The state of a message, as listed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
#[non_exhaustive]
pub enum MessageState {
    /// Delivered, not claimed (or its claim expired).
    Pending,
    /// Claimed by a device whose claim has not expired.
    Processing,
    /// A processor failed on it; only a newer processor version may claim it.
    Failed,
}

/// One message of a listing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageInfo {
    /// The message (blob) id.
    pub id: String,
    /// Stored size in bytes (preamble included).
    pub size: u64,
    /// Its state.
    pub state: MessageState,
    /// For a failed message: the version of the processor that failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_version: Option<u64>,
}

/// What a listing asks for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IncomingQuery {
    /// At most this many messages per page (`None`: all).
    pub limit: Option<usize>,
    /// Which page (0-based) of `limit` messages.
    pub page: usize,
    /// Skip messages larger than this many bytes (they are still counted in
    /// [`Listing::skipped_oversized`]).
    pub size_limit: Option<u64>,
    /// Also list messages under an unexpired claim.
    pub include_processing: bool,
    /// Also list failed messages whose recorded version is older than this
    /// processor version (claimable by it).
    pub version: Option<u64>,
}

/// A page of the incoming box, oldest message first.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listing {
    /// The messages of the page.
    pub messages: Vec<MessageInfo>,
    /// Messages pending (claimable by anyone) in the whole box.
    pub pending: u64,
    /// Ids of matching messages left out for `size_limit`.
    pub skipped_oversized: Vec<String>,
}

/// A granted claim.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    /// Secret naming this claim: marking the message needs it, so a device
    /// whose claim expired and was taken over cannot mark it.
    pub claim: String,
    /// Seconds the claim holds from now.
    pub expires_in_secs: u64,
}

/// How processing of a claimed message ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// Its results are saved: the message is deleted.
    Processed,
    /// The processor of this version failed on it: flagged `FAILED`, the claim
    /// released; only a newer version may claim it.
    Failed {
        /// The processor's version.
        version: u64,
    },
}

/// Why an incoming box operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IncomingError {
    /// Another claim holds the message, it failed at this version or newer,
    /// or the caller's claim is no longer the current one.
    #[error("message is claimed by another processor")]
    Claimed,
    /// A published key that is not a single line of printable ASCII of at
    /// most [`MAX_PUBLIC_KEY_LEN`] bytes.
    #[error("invalid incoming public key")]
    InvalidKey,
    /// The message storage failed (or the message does not exist).
    #[error(transparent)]
    Blob(#[from] BlobError),
}

/// Claims, outcomes, listings and published keys of the incoming box.
///
/// Contract (tested by the conformance suite `conformance::incoming`, feature
/// `conformance`, and the API tests of `tests/api/incoming.rs`):
/// - `claim` is atomic: of concurrent claimers of a claimable message exactly
///   one gets a [`Claim`], the others [`IncomingError::Claimed`];
/// - a claim expires after the threshold; the message is claimable again;
/// - `finish` needs the current claim's secret;
/// - claims (with their deadlines) and failed versions survive a restart of
///   the box over the same storage.
pub trait IncomingBox: Send + Sync + 'static {
    /// Claims message `id` for a processor of `version`: `PENDING` (or
    /// `PROCESSING` past its claim, or `FAILED` at an older version) becomes
    /// `PROCESSING`.
    ///
    /// # Errors
    /// [`IncomingError::Claimed`]; [`BlobError::NotFound`].
    fn claim<'a>(
        &'a self,
        user: &'a UserId,
        id: &'a BlobId,
        version: u64,
    ) -> BoxFuture<'a, Result<Claim, IncomingError>>;

    /// Ends the claim `claim` on message `id` with `outcome`.
    ///
    /// # Errors
    /// [`IncomingError::Claimed`] if `claim` is not the message's current,
    /// unexpired claim; [`BlobError::NotFound`].
    fn finish<'a>(
        &'a self,
        user: &'a UserId,
        id: &'a BlobId,
        claim: &'a str,
        outcome: Outcome,
    ) -> BoxFuture<'a, Result<(), IncomingError>>;

    /// The user's incoming box, oldest first.
    ///
    /// # Errors
    /// [`IncomingError::Blob`] if the storage fails.
    fn list<'a>(
        &'a self,
        user: &'a UserId,
        query: &'a IncomingQuery,
    ) -> BoxFuture<'a, Result<Listing, IncomingError>>;

    /// Publishes (or replaces: rotation) the user's incoming public key.
    ///
    /// # Errors
    /// [`IncomingError::InvalidKey`]; [`IncomingError::Blob`].
    fn set_public_key<'a>(
        &'a self,
        user: &'a UserId,
        key: &'a str,
    ) -> BoxFuture<'a, Result<(), IncomingError>>;

    /// The user's published incoming public key.
    ///
    /// # Errors
    /// [`BlobError::NotFound`] if none was published.
    fn public_key<'a>(&'a self, user: &'a UserId) -> BoxFuture<'a, Result<String, IncomingError>>;
}

/// A new claim secret: 128 random bits, hex.
pub(crate) fn new_claim_secret() -> Result<String, IncomingError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)
        .map_err(|_| BlobError::Io(std::io::Error::other("no randomness for a claim")))?;
    Ok(hex::encode(bytes))
}

/// What a box stores of a claim secret: its SHA-256 (a leaked store names no
/// live claim).
pub(crate) fn hash_claim(secret: &str) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(secret.as_bytes()).into()
}

/// Compares two claim secrets (or their hashes) in constant time.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq as _;
    a.ct_eq(b).into()
}

/// Checks a key to publish: one line of printable ASCII, bounded.
pub(crate) fn check_key(key: &str) -> Result<(), IncomingError> {
    let ok = !key.is_empty()
        && key.len() <= MAX_PUBLIC_KEY_LEN
        && key.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(())
    } else {
        Err(IncomingError::InvalidKey)
    }
}
