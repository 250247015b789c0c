//! The storage interface the HTTP layer calls: a narrow async trait, so a
//! distributed engine (Garage over S3, DESIGN §9) can replace the filesystem.

use std::pin::Pin;

use bytes::Bytes;
use futures_util::Stream;
use futures_util::future::BoxFuture;

use super::error::BlobError;
use super::flags::Flag;
use super::ids::{BlobId, Namespace, UserId};
use super::query::ListQuery;
use super::quota::Usage;
use super::range::RangeSpec;

/// A stream of body bytes (upload or download).
pub type ByteStream = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

/// A blob being read: which bytes, and a stream of them.
pub struct BlobRead {
    /// Size of the whole blob, in bytes.
    pub total_size: u64,
    /// Offset of the first byte `body` yields.
    pub start: u64,
    /// How many bytes `body` yields.
    pub len: u64,
    /// Exactly `len` bytes, read in chunks (memory bounded, whatever the size).
    pub body: ByteStream,
}

impl std::fmt::Debug for BlobRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobRead")
            .field("total_size", &self.total_size)
            .field("start", &self.start)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

/// Blob storage: immutable blobs per user and namespace, with flags, listing
/// and quota.
///
/// The conformance suite `conformance::blobs` (feature `conformance`) checks
/// the contract documented on each method on every implementation; what it
/// leaves to the implementation (layout, write permits, persistence) is said
/// there.
pub trait BlobBackend: Send + Sync + 'static {
    /// Streams `body` to storage and returns the bytes stored. The blob becomes
    /// visible only once complete and durable, with `initial_flags`.
    ///
    /// Waits for a write permit (`concurrent_blob_writes`). Checks the quota up
    /// front against `content_length` when known, and while streaming.
    ///
    /// # Errors
    /// [`BlobError::AlreadyExists`] if the id exists or another upload of it is
    /// in flight (one wins); [`BlobError::QuotaExceeded`];
    /// [`BlobError::BodyInterrupted`] if `body` yields an error or its length
    /// differs from `content_length`; [`BlobError::Io`]. On any error, and if
    /// the future is dropped before publishing, nothing is visible and usage is
    /// unchanged.
    fn put<'a>(
        &'a self,
        user: &'a UserId,
        ns: &'a Namespace,
        id: &'a BlobId,
        body: ByteStream,
        content_length: Option<u64>,
        initial_flags: &'a [Flag],
    ) -> BoxFuture<'a, Result<u64, BlobError>>;

    /// Opens a blob for reading, the whole of it or `range`.
    ///
    /// # Errors
    /// [`BlobError::NotFound`]; [`BlobError::RangeNotSatisfiable`];
    /// [`BlobError::Io`].
    fn get<'a>(
        &'a self,
        user: &'a UserId,
        ns: &'a Namespace,
        id: &'a BlobId,
        range: Option<RangeSpec>,
    ) -> BoxFuture<'a, Result<BlobRead, BlobError>>;

    /// Deletes a blob's content and flags (freeing its quota) and keeps a
    /// tombstone, so `deleted=true` listings show it. The id may be stored
    /// again afterwards (which removes the tombstone).
    ///
    /// # Errors
    /// [`BlobError::NotFound`]; [`BlobError::Io`].
    fn delete<'a>(
        &'a self,
        user: &'a UserId,
        ns: &'a Namespace,
        id: &'a BlobId,
    ) -> BoxFuture<'a, Result<(), BlobError>>;

    /// The flags of a blob (empty if none were set).
    ///
    /// # Errors
    /// [`BlobError::NotFound`]; [`BlobError::Io`] (also for a corrupt flags file).
    fn get_flags<'a>(
        &'a self,
        user: &'a UserId,
        ns: &'a Namespace,
        id: &'a BlobId,
    ) -> BoxFuture<'a, Result<Vec<Flag>, BlobError>>;

    /// Replaces the flag set of a blob, atomically (duplicates are dropped).
    ///
    /// # Errors
    /// [`BlobError::NotFound`]; [`BlobError::Io`].
    fn set_flags<'a>(
        &'a self,
        user: &'a UserId,
        ns: &'a Namespace,
        id: &'a BlobId,
        flags: Vec<Flag>,
    ) -> BoxFuture<'a, Result<(), BlobError>>;

    /// Ids of the blobs matching `query` (with `deleted`: ids of deleted blobs).
    ///
    /// # Errors
    /// [`BlobError::Io`].
    fn list<'a>(
        &'a self,
        user: &'a UserId,
        query: &'a ListQuery,
    ) -> BoxFuture<'a, Result<Vec<String>, BlobError>>;

    /// How many blobs `list` would return.
    ///
    /// # Errors
    /// [`BlobError::Io`].
    fn count<'a>(
        &'a self,
        user: &'a UserId,
        query: &'a ListQuery,
    ) -> BoxFuture<'a, Result<u64, BlobError>>;

    /// The user's usage against their quota (tracked incrementally).
    ///
    /// # Errors
    /// [`BlobError::Io`] if the first measurement of this user fails.
    fn usage<'a>(&'a self, user: &'a UserId) -> BoxFuture<'a, Result<Usage, BlobError>>;
}
