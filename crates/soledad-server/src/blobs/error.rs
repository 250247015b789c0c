//! The one error type of the blob storage module.

use thiserror::Error;

/// Why a blob operation failed.
///
/// Every failure leaves storage as it was: a failed `put` stores nothing and
/// charges no quota.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum BlobError {
    /// The user id is empty, too long or has a character outside `[A-Za-z0-9_-]`.
    #[error("invalid user id")]
    InvalidUserId,
    /// The blob id is empty, too long or has a character outside `[A-Za-z0-9_-]`.
    #[error("invalid blob id")]
    InvalidBlobId,
    /// The namespace is empty, too long or has a character outside `[A-Za-z0-9_-]`.
    #[error("invalid namespace")]
    InvalidNamespace,
    /// The flag is not one of `PENDING`, `PROCESSING`, `PROCESSED`, `FAILED`.
    #[error("invalid flag")]
    InvalidFlag,
    /// No blob with this id exists in this namespace for this user.
    #[error("blob not found")]
    NotFound,
    /// A blob with this id already exists, or another upload of it is in flight.
    #[error("blob already exists")]
    AlreadyExists,
    /// Storing the data would take the user past their quota.
    #[error("quota exceeded: {used_bytes} of {limit_bytes} bytes used")]
    QuotaExceeded {
        /// Bytes already charged to the user (stored plus reserved by writes
        /// in flight) when the write was refused.
        used_bytes: u64,
        /// The user's quota.
        limit_bytes: u64,
    },
    /// The requested range does not overlap the blob.
    #[error("range not satisfiable for a blob of {size} bytes")]
    RangeNotSatisfiable {
        /// Size of the whole blob in bytes.
        size: u64,
    },
    /// The upload stream yielded an error, was cut, or did not match its
    /// announced length: nothing was stored.
    #[error("upload body interrupted")]
    BodyInterrupted,
    /// The storage itself failed (disk full, permissions, corrupt flags file…).
    #[error("blob storage i/o error: {0}")]
    Io(#[from] std::io::Error),
}
