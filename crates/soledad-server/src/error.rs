//! The crate's one error type and its single mapping to HTTP responses.
//!
//! Every fallible operation of the server returns [`Error`]. Handlers return it
//! directly; [`IntoResponse`] turns it into `{"error": kind, "message": …}` with
//! the status code of the seed's APIs. Internal details (I/O, SQLite) are logged
//! here and never sent to the client.

use std::path::PathBuf;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use soledad_protocol::ErrorKind;

use crate::blobs::BlobError;

/// Everything that can go wrong in the server library.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration option has an unusable value (reported at start).
    #[error("invalid configuration option `{option}`: {reason}")]
    Config {
        /// The option's name as written in the INI file / environment.
        option: String,
        /// Why the value was refused.
        reason: String,
    },
    /// The TLS certificate or key could not be loaded or generated.
    #[error("TLS certificate {}: {reason}", path.display())]
    Certificate {
        /// The certificate or key file concerned.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
    /// A file or socket operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What the server was doing.
        context: &'static str,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// An embedded SQLite store failed.
    #[error("database error: {0}")]
    Database(#[from] rusqlite::Error),
    /// A per-user document store failed.
    #[error("user database error: {0}")]
    UserStore(#[from] soledad_store::StoreError),
    /// A storage worker thread is gone (the server is shutting down).
    #[error("storage worker is not running")]
    StorageUnavailable,
    /// No credentials, malformed credentials, unknown or expired token.
    #[error("missing or invalid credentials")]
    Unauthorized,
    /// Valid credentials that do not grant access to the named resource.
    #[error("access to this resource is not allowed")]
    Forbidden,
    /// No such route or resource.
    #[error("not found")]
    NotFound,
    /// A user that is already registered in the token store.
    #[error("user already exists")]
    UserExists,
    /// A user id that is not `[A-Za-z0-9_-]{1,64}`.
    #[error("invalid user id")]
    InvalidUserId,
    /// A shared document id outside `[A-Za-z0-9._%-]{1,255}`.
    #[error("invalid document id")]
    InvalidDocId,
    /// The request lacks a required part or has a malformed one.
    #[error("invalid request: {what}")]
    InvalidRequest {
        /// Which part of the request is wrong.
        what: &'static str,
    },
    /// The given revision is not the document's current one.
    #[error("revision conflict")]
    RevisionConflict,
    /// A shared document larger than the configured cap.
    #[error("document too big (limit {limit_bytes} bytes)")]
    DocumentTooBig {
        /// The cap that was exceeded.
        limit_bytes: u64,
    },
    /// A blob storage error.
    #[error(transparent)]
    Blob(#[from] BlobError),
    /// An incoming box error.
    #[error(transparent)]
    Incoming(#[from] crate::incoming::IncomingError),
    /// The user's document store does not exist and the sync did not ask to
    /// create it.
    #[error("user database does not exist")]
    DatabaseDoesNotExist,
    /// A sync request body that is not a well-formed frame sequence (or was cut).
    #[error("broken sync stream")]
    BrokenSyncStream,
    /// A source replica uid that is malformed or is the server store's own.
    #[error("invalid replica uid")]
    InvalidReplicaUid,
    /// The user has too many sync exchanges in flight, or too many recent
    /// misses on the shared store; retry later.
    #[error("too many requests, retry later")]
    TooManyRequests,
    /// The server holds as many waiting change requests as it allows
    /// (`max_live_waits`); retry later.
    #[error("too many waiting requests on this server, retry later")]
    Overloaded,
    /// The Garage cluster of the scale-out backend failed or refused.
    #[cfg(feature = "garage")]
    #[error(transparent)]
    Garage(#[from] crate::garage::GarageError),
}

impl From<soledad_store::WorkerCallError> for Error {
    fn from(error: soledad_store::WorkerCallError) -> Error {
        match error {
            soledad_store::WorkerCallError::Stopped(_) => Error::StorageUnavailable,
            soledad_store::WorkerCallError::Store(store) => Error::UserStore(store),
            _ => Error::StorageUnavailable,
        }
    }
}

impl Error {
    /// Builds an [`Error::Io`] with its context.
    pub(crate) fn io(context: &'static str) -> impl FnOnce(std::io::Error) -> Error {
        move |source| Error::Io { context, source }
    }

    /// Builds an [`Error::Config`] for `option`.
    pub(crate) fn config(option: &str, reason: impl Into<String>) -> Error {
        Error::Config {
            option: option.to_owned(),
            reason: reason.into(),
        }
    }

    /// The stable machine-readable kind sent as `"error"` in JSON bodies; the
    /// table of kinds and their statuses is shared with clients
    /// ([`soledad_protocol::ErrorKind`]).
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Config { .. }
            | Error::Certificate { .. }
            | Error::Io { .. }
            | Error::Database(_) => ErrorKind::Internal,
            Error::StorageUnavailable | Error::Overloaded => ErrorKind::Unavailable,
            Error::UserStore(store) => store_kind(store),
            Error::DatabaseDoesNotExist => ErrorKind::DatabaseDoesNotExist,
            Error::BrokenSyncStream => ErrorKind::BrokenSyncStream,
            Error::InvalidReplicaUid => ErrorKind::InvalidReplicaUid,
            Error::TooManyRequests => ErrorKind::TooManyRequests,
            Error::Unauthorized => ErrorKind::Unauthorized,
            Error::Forbidden => ErrorKind::Forbidden,
            Error::NotFound => ErrorKind::NotFound,
            Error::UserExists => ErrorKind::UserExists,
            Error::InvalidUserId => ErrorKind::InvalidUserId,
            Error::InvalidDocId => ErrorKind::InvalidDocId,
            Error::InvalidRequest { .. } => ErrorKind::InvalidRequest,
            Error::RevisionConflict => ErrorKind::RevisionConflict,
            Error::DocumentTooBig { .. } => ErrorKind::DocumentTooBig,
            Error::Blob(blob) => blob_kind(blob),
            Error::Incoming(incoming) => incoming_kind(incoming),
            // A busy user store (another server writing it) is retried by
            // the client like any overload; the rest is the storage being
            // unavailable for now.
            #[cfg(feature = "garage")]
            Error::Garage(crate::garage::GarageError::LeaseBusy) => ErrorKind::TooManyRequests,
            #[cfg(feature = "garage")]
            Error::Garage(_) => ErrorKind::Unavailable,
        }
    }

    /// The HTTP status this error is answered with (from the shared table).
    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.kind().status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// The message sent to the client: never internal details.
    pub(crate) fn public_message(&self) -> String {
        if self.status().is_server_error() {
            match self {
                Error::StorageUnavailable => "the server is shutting down".to_owned(),
                Error::Overloaded => self.to_string(),
                #[cfg(feature = "garage")]
                Error::Garage(_) => "the storage cluster is unavailable, retry later".to_owned(),
                _ => "internal server error".to_owned(),
            }
        } else {
            match self {
                Error::Blob(BlobError::Io(_))
                | Error::Incoming(crate::incoming::IncomingError::Blob(BlobError::Io(_))) => {
                    "internal server error".to_owned()
                }
                other => other.to_string(),
            }
        }
    }
}

fn blob_kind(error: &BlobError) -> ErrorKind {
    match error {
        BlobError::InvalidUserId => ErrorKind::InvalidUserId,
        BlobError::InvalidBlobId => ErrorKind::InvalidBlobId,
        BlobError::InvalidNamespace => ErrorKind::InvalidNamespace,
        BlobError::InvalidFlag => ErrorKind::InvalidFlag,
        BlobError::NotFound => ErrorKind::BlobNotFound,
        BlobError::AlreadyExists => ErrorKind::BlobExists,
        BlobError::QuotaExceeded { .. } => ErrorKind::QuotaExceeded,
        BlobError::RangeNotSatisfiable { .. } => ErrorKind::RangeNotSatisfiable,
        BlobError::BodyInterrupted => ErrorKind::BodyInterrupted,
        _ => ErrorKind::Internal,
    }
}

fn incoming_kind(error: &crate::incoming::IncomingError) -> ErrorKind {
    use crate::incoming::IncomingError as I;
    match error {
        I::Claimed => ErrorKind::MessageClaimed,
        I::InvalidKey => ErrorKind::InvalidRequest,
        I::Blob(blob) => blob_kind(blob),
    }
}

/// A user store error the client caused (u1db's sync errors), or internal.
fn store_kind(error: &soledad_store::StoreError) -> ErrorKind {
    use soledad_store::StoreError as S;
    match error {
        S::InvalidGeneration => ErrorKind::InvalidGeneration,
        S::InvalidTransactionId => ErrorKind::InvalidTransactionId,
        S::InvalidReplicaUid => ErrorKind::InvalidReplicaUid,
        S::InvalidDocId => ErrorKind::InvalidDocId,
        S::InvalidRevision => ErrorKind::InvalidRevision,
        S::DocumentTooBig => ErrorKind::DocumentTooBig,
        _ => ErrorKind::Internal,
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status();
        if matches!(self, Error::Overloaded) {
            // Expected under load, and the operator's cap: not an error.
            tracing::warn!(error = %self, "request refused");
        } else if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        } else {
            tracing::debug!(error = %self, status = status.as_u16(), "request refused");
        }
        let body = serde_json::json!({
            "error": self.kind().as_str(),
            "message": self.public_message(),
        });
        let mut response = (status, Json(body)).into_response();
        if let Error::Blob(BlobError::RangeNotSatisfiable { size }) = &self
            && let Ok(value) = format!("bytes */{size}").parse()
        {
            response
                .headers_mut()
                .insert(axum::http::header::CONTENT_RANGE, value);
        }
        if matches!(self, Error::Unauthorized) {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Token"),
            );
        }
        response
    }
}
