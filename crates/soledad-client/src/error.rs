//! The one error type of the client library.

use soledad_protocol::{ErrorKind, ProtocolError};
use soledad_store::StoreError;

/// Everything the client API can fail with.
///
/// Applications usually branch on a few kinds: [`Error::Store`] for document-level
/// errors (revision conflicts, missing documents, bad ids — u1db's errors),
/// [`Error::Auth`], [`Error::Network`] (retry later), and [`Error::Integrity`] (the
/// server sent data that does not authenticate: never retry silently).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A local database error (u1db's error kinds: see [`StoreError`]).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A cryptographic operation failed locally (wrong passphrase, malformed secrets
    /// file, recovery code typo …).
    #[error(transparent)]
    Crypto(#[from] soledad_crypto::Error),
    /// The server refused the token (401), or the token belongs to another user (403).
    #[error("authentication refused by the server")]
    Auth,
    /// The server could not be reached or the connection broke; nothing was lost
    /// locally and the operation can be retried.
    #[error("network error: {0}")]
    Network(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Data received from the server failed authentication: a flipped byte, an
    /// envelope moved to another document, or a revision that claims to be new but
    /// whose envelope is bound to another one. Only an attacker (or corrupted
    /// server storage) causes it, never a dropped connection. The affected documents
    /// were not applied; every other document of the same sync was. (An older
    /// revision than the local one is not an error: the local one is kept.)
    #[error("integrity check failed for {count} document(s) received from the server")]
    Integrity {
        /// How many documents were refused.
        count: usize,
    },
    /// The server's history does not contain the position this device recorded for
    /// it (the server was restored from an older copy, or answers with a position
    /// behind the recorded one, or with another transaction id for it), or the
    /// server recorded a position of this device that this device does not have
    /// (this local database was restored from an older copy). Nothing was merged.
    #[error("sync refused: replica histories diverged ({0})")]
    Diverged(DivergedKind),
    /// [`Soledad::start_live_sync`](crate::Soledad::start_live_sync) while a live
    /// sync of this database runs already (stop it first).
    #[error("a live sync is already running on this database")]
    LiveSyncRunning,
    /// The server answered with an error this request did not expect.
    #[error("server error {kind:?}: {message}")]
    Server {
        /// The error kind the server sent.
        kind: Option<ErrorKind>,
        /// The server's message.
        message: String,
    },
    /// The server's response is not well-formed.
    #[error("malformed response from the server: {0}")]
    Protocol(#[from] ProtocolError),
    /// A response body was longer than this client reads for its kind (a
    /// misbehaving or hostile server); nothing past the limit was read.
    #[error("response from the server exceeds {limit_bytes} bytes")]
    ResponseTooLarge {
        /// The limit for this kind of response.
        limit_bytes: u64,
    },
    /// No backup of the storage secret exists on the server for these credentials
    /// while the account already has data there: most likely a wrong passphrase
    /// (or use a recovery code). No new secret was made.
    #[error("no backup found on the server for these credentials")]
    BackupNotFound,
    /// The operation needs a server but the client was opened without one.
    #[error("no server configured")]
    NoServer,
    /// The certificate file to trust could not be used.
    #[error("unusable certificate file: {0}")]
    Certificate(&'static str),
    /// A local file operation failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The client was closed (or its database thread stopped).
    #[error("client is closed")]
    Closed,
    /// A background task of the client panicked (a bug in the client, not in the
    /// input); the operation did not complete and nothing of it was committed past
    /// its last completed batch.
    #[error("a background task of the client panicked")]
    TaskPanicked,
    /// A blob with this id already exists in this namespace (locally, or on the
    /// server with another content). Blobs are immutable: delete, then put.
    #[error("blob already exists")]
    BlobAlreadyExists,
    /// No blob with this id exists in this namespace (locally nor on the server).
    #[error("blob not found")]
    BlobNotFound,
    /// A blob id or namespace is empty, too long, or has a character outside
    /// `[A-Za-z0-9_-]`.
    #[error("invalid blob id or namespace")]
    InvalidBlobId,
    /// The server refused the flags (not `PENDING`/`PROCESSING`/`PROCESSED`/`FAILED`).
    #[error("invalid blob flags")]
    InvalidFlags,
    /// A blob transfer failed `attempts` times in a row with retriable errors; the
    /// blob is marked `FAILED_UPLOAD`/`FAILED_DOWNLOAD`. Over quota is
    /// [`Error::Server`] with kind `QuotaExceeded` (not retried).
    #[error("blob transfer failed after {attempts} attempts: {last}")]
    MaximumRetries {
        /// How many attempts were made.
        attempts: u32,
        /// The last attempt's error.
        #[source]
        last: Box<Error>,
    },
    /// A blob transfer failed in a way worth retrying later (network, server
    /// busy, cut body); returned when retries are disabled (`max_retries = 0`).
    #[error("retriable blob transfer error: {0}")]
    RetriableTransfer(#[source] Box<Error>),
}

/// Which side's history is not what the other recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DivergedKind {
    /// A generation that the other side never had (`InvalidGeneration`).
    InvalidGeneration,
    /// A generation known with another transaction id (`InvalidTransactionId`).
    InvalidTransactionId,
}

impl std::fmt::Display for DivergedKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DivergedKind::InvalidGeneration => "invalid generation",
            DivergedKind::InvalidTransactionId => "invalid transaction id",
        })
    }
}

impl From<soledad_store::WorkerStopped> for Error {
    fn from(_: soledad_store::WorkerStopped) -> Self {
        Error::Closed
    }
}

impl From<soledad_store::WorkerCallError> for Error {
    fn from(err: soledad_store::WorkerCallError) -> Self {
        match err {
            soledad_store::WorkerCallError::Store(e) => Error::Store(e),
            _ => Error::Closed,
        }
    }
}

impl From<tokio::task::JoinError> for Error {
    fn from(err: tokio::task::JoinError) -> Self {
        if err.is_panic() {
            Error::TaskPanicked
        } else {
            // Cancelled: the runtime is shutting down.
            Error::Closed
        }
    }
}

impl Error {
    pub(crate) fn network(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        Error::Network(Box::new(err))
    }

    /// Maps a server error body to the most specific client error.
    pub(crate) fn from_server(status: u16, kind: Option<ErrorKind>, message: String) -> Self {
        match kind {
            Some(ErrorKind::Unauthorized | ErrorKind::Forbidden) => Error::Auth,
            Some(ErrorKind::InvalidGeneration) => Error::Diverged(DivergedKind::InvalidGeneration),
            Some(ErrorKind::InvalidTransactionId) => {
                Error::Diverged(DivergedKind::InvalidTransactionId)
            }
            _ if status == 401 || status == 403 => Error::Auth,
            _ => Error::Server { kind, message },
        }
    }
}
