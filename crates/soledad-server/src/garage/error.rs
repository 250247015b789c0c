//! The one error type of the Garage backend.

use thiserror::Error;

/// Why a call to the Garage cluster failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum GarageError {
    /// No endpoint answered (every node refused the connection, timed out or
    /// answered with a server error); the last failure is kept.
    #[error("no Garage endpoint answered: {0}")]
    Unreachable(#[source] reqwest::Error),
    /// Every endpoint answered with a server error (5xx) status.
    #[error("Garage answered {status} on every endpoint")]
    ServerError {
        /// The last status seen.
        status: u16,
    },
    /// Garage refused the request (a client error status other than 404):
    /// bad credentials, no permission on the bucket, malformed request.
    #[error("Garage refused the request with status {status}")]
    Refused {
        /// The status.
        status: u16,
    },
    /// A response that is not what the K2V API specifies.
    #[error("malformed Garage response: {what}")]
    MalformedResponse {
        /// What was wrong.
        what: &'static str,
    },
    /// A stored item whose bytes are not what this backend writes (corrupt or
    /// written by something else).
    #[error("malformed stored item: {what}")]
    MalformedItem {
        /// Which kind of item.
        what: &'static str,
    },
    /// A request could not be signed (bad credentials text).
    #[error("cannot sign the request")]
    Signing,
    /// The per-user write lease could not be taken in time: another server
    /// keeps writing this user's documents.
    #[error("the user's document store is busy on another server")]
    LeaseBusy,
    /// The lease ran out before the write finished (the server stalled): the
    /// write was abandoned before anything that would need the lease.
    #[error("the write lease expired before the write finished")]
    LeaseLost,
    /// The S3 API failed.
    #[error("Garage S3 error: {0}")]
    S3(#[from] object_store::Error),
    /// The configuration is unusable (no endpoint, bad URL, unreadable key).
    #[error("invalid Garage configuration: {what}")]
    Config {
        /// What is wrong.
        what: String,
    },
}
