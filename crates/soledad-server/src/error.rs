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
}

impl From<soledad_store::WorkerCallError> for Error {
    fn from(error: soledad_store::WorkerCallError) -> Error {
        match error {
            soledad_store::WorkerCallError::Stopped(_) => Error::StorageUnavailable,
            soledad_store::WorkerCallError::Store(store) => Error::UserStore(store),
        }
    }
}

/// Kind and status of a user store error that the client caused (u1db's sync
/// errors), or `None` for an internal failure.
fn store_client_error(error: &soledad_store::StoreError) -> Option<(&'static str, StatusCode)> {
    use soledad_store::StoreError as S;
    Some(match error {
        S::InvalidGeneration => ("invalid_generation", StatusCode::CONFLICT),
        S::InvalidTransactionId => ("invalid_transaction_id", StatusCode::CONFLICT),
        S::InvalidReplicaUid => ("invalid_replica_uid", StatusCode::BAD_REQUEST),
        S::InvalidDocId => ("invalid_id", StatusCode::BAD_REQUEST),
        S::InvalidRevision => ("invalid_revision", StatusCode::BAD_REQUEST),
        S::DocumentTooBig => ("document_too_big", StatusCode::PAYLOAD_TOO_LARGE),
        _ => return None,
    })
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

    /// The stable machine-readable kind sent as `"error"` in JSON bodies.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Config { .. }
            | Error::Certificate { .. }
            | Error::Io { .. }
            | Error::Database(_)
            | Error::StorageUnavailable => "internal",
            Error::UserStore(store) => store_client_error(store).map_or("internal", |(k, _)| k),
            Error::DatabaseDoesNotExist => "database_does_not_exist",
            Error::BrokenSyncStream => "broken_sync_stream",
            Error::InvalidReplicaUid => "invalid_replica_uid",
            Error::Unauthorized => "unauthorized",
            Error::Forbidden => "forbidden",
            Error::NotFound => "not_found",
            Error::UserExists => "user_exists",
            Error::InvalidUserId => "invalid_user_id",
            Error::InvalidDocId => "invalid_doc_id",
            Error::InvalidRequest { .. } => "invalid_request",
            Error::RevisionConflict => "revision_conflict",
            Error::DocumentTooBig { .. } => "document_too_big",
            Error::Blob(blob) => blob_kind(blob),
        }
    }

    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::Config { .. }
            | Error::Certificate { .. }
            | Error::Io { .. }
            | Error::Database(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Error::UserStore(store) => {
                store_client_error(store).map_or(StatusCode::INTERNAL_SERVER_ERROR, |(_, s)| s)
            }
            Error::DatabaseDoesNotExist => StatusCode::NOT_FOUND,
            Error::BrokenSyncStream | Error::InvalidReplicaUid => StatusCode::BAD_REQUEST,
            Error::StorageUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Error::Unauthorized => StatusCode::UNAUTHORIZED,
            Error::Forbidden => StatusCode::FORBIDDEN,
            Error::NotFound => StatusCode::NOT_FOUND,
            Error::InvalidUserId | Error::InvalidDocId | Error::InvalidRequest { .. } => {
                StatusCode::BAD_REQUEST
            }
            Error::RevisionConflict | Error::UserExists => StatusCode::CONFLICT,
            Error::DocumentTooBig { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Error::Blob(blob) => blob_status(blob),
        }
    }

    /// The message sent to the client: never internal details.
    fn public_message(&self) -> String {
        if self.status().is_server_error() {
            match self {
                Error::StorageUnavailable => "the server is shutting down".to_owned(),
                _ => "internal server error".to_owned(),
            }
        } else {
            match self {
                Error::Blob(BlobError::Io(_)) => "internal server error".to_owned(),
                other => other.to_string(),
            }
        }
    }
}

fn blob_kind(error: &BlobError) -> &'static str {
    match error {
        BlobError::InvalidUserId => "invalid_user_id",
        BlobError::InvalidBlobId => "invalid_blob_id",
        BlobError::InvalidNamespace => "invalid_namespace",
        BlobError::InvalidFlag => "invalid_flag",
        BlobError::NotFound => "blob_not_found",
        BlobError::AlreadyExists => "blob_exists",
        BlobError::QuotaExceeded { .. } => "quota_exceeded",
        BlobError::RangeNotSatisfiable { .. } => "range_not_satisfiable",
        BlobError::BodyInterrupted => "body_interrupted",
        _ => "internal",
    }
}

fn blob_status(error: &BlobError) -> StatusCode {
    match error {
        BlobError::InvalidUserId | BlobError::InvalidBlobId | BlobError::InvalidNamespace => {
            StatusCode::BAD_REQUEST
        }
        BlobError::InvalidFlag => StatusCode::NOT_ACCEPTABLE,
        BlobError::NotFound => StatusCode::NOT_FOUND,
        BlobError::AlreadyExists => StatusCode::CONFLICT,
        BlobError::QuotaExceeded { .. } => StatusCode::INSUFFICIENT_STORAGE,
        BlobError::RangeNotSatisfiable { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
        BlobError::BodyInterrupted => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        } else {
            tracing::debug!(error = %self, status = status.as_u16(), "request refused");
        }
        let body = serde_json::json!({
            "error": self.kind(),
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
